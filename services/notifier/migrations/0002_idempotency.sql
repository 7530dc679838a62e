-- Send's idempotency key: at most one delivery per key and platform, whichever replica takes
-- the call. Portable between Postgres and SQLite: both let any number of rows leave it NULL.
ALTER TABLE deliveries ADD COLUMN idempotency_key TEXT NULL;
CREATE UNIQUE INDEX deliveries_idempotency ON deliveries (platform, idempotency_key)
