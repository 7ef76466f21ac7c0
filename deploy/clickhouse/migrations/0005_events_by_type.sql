-- The second ordering: events by (category, name, time), so reads filtered by type and time
-- range scan a key prefix instead of the whole table. Filled by every insert into
-- `events` from now on (18.16 has no safe backfill; POPULATE would miss concurrent
-- inserts). Replays fold here too, and reads deduplicate by event_id as on `events`.
CREATE MATERIALIZED VIEW IF NOT EXISTS events_by_type
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (category, name, ts_us, event_id)
AS SELECT event_id, session_id, category, name, ts_us, received_at_us, data, value, client_ts_us, sent_at_us, ts
FROM events
