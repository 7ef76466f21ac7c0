-- The event contract's clock-skew correction: `ts_us` holds the corrected time
-- (timestamp + (received_at - sent_at)), `client_ts_us` the timestamp as the client sent
-- it, `sent_at_us` the client's send time when it gave one.
-- 18.16 has no ADD COLUMN IF NOT EXISTS; the migration runner treats "already exists" as
-- done, so a concurrent second run is harmless.
ALTER TABLE events ADD COLUMN client_ts_us Int64 DEFAULT ts_us;
ALTER TABLE events ADD COLUMN sent_at_us Nullable(Int64);
