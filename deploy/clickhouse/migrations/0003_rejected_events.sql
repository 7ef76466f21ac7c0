-- Quarantine: every event ingest refused and every message the consumer could not decode,
-- with the raw payload exactly as received and the reasons. Nothing rejected vanishes.
-- Sorted by arrival so that time-range listings read a key prefix.
CREATE TABLE IF NOT EXISTS rejected_events
(
    rejection_id   UUID,
    received_at_us Int64,
    source         String,
    client         String,
    codes          Array(String),
    reasons        String,
    raw            String,
    event_id       String,
    session_id     String,
    category       String,
    name           String,
    received_at    DateTime('UTC') MATERIALIZED toDateTime(intDiv(received_at_us, 1000000), 'UTC')
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(received_at)
ORDER BY (received_at_us, rejection_id)
