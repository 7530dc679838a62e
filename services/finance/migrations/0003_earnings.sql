-- A paid meeting's earnings in INR: the mentor's tokens at TOKEN_VALUE_PAISE when it was paid,
-- so a later change of the rate does not rewrite what was earned. Portable.
ALTER TABLE booking_holds ADD COLUMN mentor_paise BIGINT NOT NULL DEFAULT 0 CHECK (mentor_paise >= 0);
CREATE INDEX booking_holds_by_mentor ON booking_holds (platform, mentor_id, state, updated_at);
