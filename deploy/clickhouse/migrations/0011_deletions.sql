-- Deletions of a subject's data (a user, a session or a machine; docs/lifecycle-deletion.md).
-- One row per state a deletion passes through (pending, running, done or failed), the
-- latest by `updated_at_us` winning at merge and at read. It is the audit record: who asked
-- (the client id), when, what, and how many rows each table lost. It holds no personal data
-- beyond the subject's id; `error` holds a ClickHouse error code and the step, never a
-- message (those can quote the statement, and so the ids). 18.16 has no Map: the counts
-- are parallel arrays, `tables[i]` lost `counts[i]` rows. `finished_at_us` is 0 until the
-- deletion ends.
CREATE TABLE IF NOT EXISTS deletions
(
    deletion_id     UUID,
    subject_kind    String,
    subject_id      String,
    requested_by    String,
    requested_at_us Int64,
    status          String,
    tables          Array(String),
    counts          Array(UInt64),
    finished_at_us  Int64,
    error           String,
    updated_at_us   Int64
)
ENGINE = ReplacingMergeTree(updated_at_us)
ORDER BY deletion_id;
-- What the consumer must no longer store: events, sessions, quarantined records and
-- identity rows of a suppressed session, user or machine, until `expires_at_us`
-- (EYE_DELETION_SUPPRESSION_DAYS after the deletion). Ordered by `added_at_us`, so the
-- consumer's incremental read ("added since I last looked") is a key range.
CREATE TABLE IF NOT EXISTS suppressions
(
    subject_kind  String,
    subject_id    String,
    deletion_id   UUID,
    added_at_us   Int64,
    expires_at_us Int64
)
ENGINE = ReplacingMergeTree()
ORDER BY (added_at_us, subject_kind, subject_id);
