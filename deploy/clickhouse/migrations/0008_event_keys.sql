-- Every stored copy's identity, ordered by the time the client gave the event: what the
-- consumer looks a batch up in before inserting it, so that a retried event is stored once
-- (consumer/src/dedup.rs). A retry repeats the client's timestamp, and a batch's events are
-- mostly recent, so a look-up reads the few granules of the batch's times, whatever the
-- table's size and however many sessions the batch touches (`events`, ordered by session,
-- would be read nearly whole). Filled by every insert into `events`.
CREATE MATERIALIZED VIEW IF NOT EXISTS event_keys
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(client_ts_us, 1000000), 'UTC'))
ORDER BY (client_ts_us, session_id, event_id, ts_us, received_at_us)
AS SELECT client_ts_us, session_id, event_id, ts_us, received_at_us
FROM events;
-- The rows stored before the view existed. Rows inserted meanwhile may arrive twice (here
-- and through the view); identical rows fold, and a second run of this statement is as
-- harmless.
INSERT INTO event_keys SELECT client_ts_us, session_id, event_id, ts_us, received_at_us FROM events;
