-- Who is who across Segment's ids. `identify` (userId + anonymousId) and `alias` (userId +
-- previousId) messages link an id to a user; ordered by user_id, so "the ids of user u" is
-- a key prefix. One row per pair once merged: a user identified again adds nothing, and a
-- replayed batch folds. Reads take DISTINCT, as merges are eventual.
CREATE TABLE IF NOT EXISTS identity_links
(
    user_id        String,
    anonymous_id   String,
    via            String,
    event_id       UUID,
    session_id     String,
    ts_us          Int64
)
ENGINE = ReplacingMergeTree()
ORDER BY (user_id, anonymous_id);
-- Every stored event that names a userId or an anonymousId in its data, once per id it
-- names: the event's identity (session_id, event_id, client_ts_us) under the id, in event
-- time. A user's events are found here whatever their session key (context.sessionId,
-- anonymousId or userId), then read from `events` by session, a key prefix there too.
-- Ordered like an event listing within each id, so a page of a user's events is a range
-- of this key. Partitioned by month like `events`, so both can be cut by month alike.
CREATE TABLE IF NOT EXISTS identity_actors
(
    actor_id       String,
    ts_us          Int64,
    event_id       UUID,
    session_id     String,
    client_ts_us   Int64,
    ts             DateTime('UTC') MATERIALIZED toDateTime(intDiv(ts_us, 1000000), 'UTC')
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(ts)
ORDER BY (actor_id, ts_us, event_id, session_id, client_ts_us);
