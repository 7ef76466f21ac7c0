-- What became of each replay of a quarantined record (`POST /v1/rejected/replay`): one row
-- per record and replay, never updated; a record's latest row is its outcome. `result` is
-- `replayed` (produced as an event again) or `rejected` (still breaks a rule: `codes` and
-- `reasons`, a JSON array of `{field, code, message}`, say which now). Ordered by record,
-- so the outcomes of a page of the quarantine are a key look-up.
CREATE TABLE IF NOT EXISTS rejected_replays
(
    rejection_id   UUID,
    replay_id      UUID,
    replayed_at_us Int64,
    replayed_by    String,
    result         String,
    codes          Array(String),
    reasons        String,
    replayed_at    DateTime('UTC') MATERIALIZED toDateTime(intDiv(replayed_at_us, 1000000), 'UTC')
)
ENGINE = MergeTree()
PARTITION BY toYYYYMM(replayed_at)
ORDER BY (rejection_id, replayed_at_us, replay_id);
