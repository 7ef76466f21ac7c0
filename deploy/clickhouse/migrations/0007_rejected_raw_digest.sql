-- A quarantined payload longer than the quarantine keeps is stored cut; these say what the
-- whole original was: its length in bytes and its SHA-256 (hex). Rows from before hold
-- their payload whole, so their length is that of `raw`.
ALTER TABLE rejected_events ADD COLUMN raw_bytes UInt64 DEFAULT length(raw);
ALTER TABLE rejected_events ADD COLUMN raw_sha256 String DEFAULT '';
