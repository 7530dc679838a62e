-- Paid bookings: a mentor's price in tokens (0: free), and on each booking the tokens finance
-- holds for it. Portable between Postgres and SQLite.
ALTER TABLE mentors ADD COLUMN price_tokens BIGINT NOT NULL DEFAULT 0 CHECK (price_tokens >= 0);
ALTER TABLE bookings ADD COLUMN price_tokens BIGINT NOT NULL DEFAULT 0 CHECK (price_tokens >= 0);
