-- Sessions by who ran them (a user's or machine's history across sessions): one row per start record
-- and owner (user, machine, org), ordered so that "the sessions of machine m" reads a key
-- prefix. Reads then fetch those sessions' events through the session ordering of
-- `events`. End records carry no owner, so only starts are indexed. Like migration 0005,
-- filled by inserts from now on.
CREATE MATERIALIZED VIEW IF NOT EXISTS sessions_by_owner
ENGINE = ReplacingMergeTree()
ORDER BY (owner_kind, owner_id, session_id, update_id)
AS SELECT owner.1 AS owner_kind, owner.2 AS owner_id, session_id, update_id, at_us
FROM sessions
ARRAY JOIN [('user', user_id), ('machine', machine_id), ('org', org_id)] AS owner
WHERE kind = 'start' AND owner.2 != ''
