-- Events, one row per accepted event; the sort key serves a session's time-ordered reads.
--
-- Portable to ClickHouse 18.16 (Debian) and current releases, so:
-- * time is an Int64 of microseconds since the epoch, UTC (18.16 has no DateTime64);
--   `ts` is a second-resolution copy for partitioning and bucketing;
-- * ReplacingMergeTree removes replayed copies of an event at merge time. Merges are
--   eventual, so every read also deduplicates by event_id (see common/src/store/sql.rs).
CREATE TABLE IF NOT EXISTS events
(
    event_id       UUID,
    session_id     String,
    category       String,
    name           String,
    ts_us          Int64,
    received_at_us Int64,
    data           String,
    value          Nullable(Float64),
    ts             DateTime('UTC') MATERIALIZED toDateTime(intDiv(ts_us, 1000000), 'UTC')
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (session_id, ts_us, event_id)
