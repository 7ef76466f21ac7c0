-- Session lifecycle: one row per start or end record, merged at read time, so
-- records may arrive in any order and before or after the session's events.
CREATE TABLE IF NOT EXISTS sessions
(
    update_id      UUID,
    session_id     String,
    kind           String,
    user_id        String,
    machine_id     String,
    org_id         String,
    at_us          Int64,
    received_at_us Int64
)
ENGINE = ReplacingMergeTree()
ORDER BY (session_id, kind, update_id)
