-- Paid bookings: which pending transfer holds each booking's tokens, and what became of it. The
-- money itself is only in the ledger (accounts, transfers); this table says which of a booking's
-- transfers is the live hold and when its meeting ends, so a redelivered event finds it and a
-- hold outliving its meeting is seen. Portable between Postgres and SQLite.
CREATE TABLE booking_holds (
    platform TEXT NOT NULL,
    booking_id TEXT NOT NULL,
    student_id TEXT NOT NULL,
    mentor_id TEXT NOT NULL,
    tokens BIGINT NOT NULL,
    ends_at TIMESTAMPTZ NOT NULL,
    -- held (awaiting the booked event), confirmed, posted, voided
    state TEXT NOT NULL,
    -- The pending transfer that holds the tokens now.
    transfer_id TEXT NOT NULL,
    mentor_tokens BIGINT NOT NULL DEFAULT 0,
    commission_tokens BIGINT NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, booking_id),
    CONSTRAINT booking_holds_tokens_positive CHECK (tokens > 0),
    CONSTRAINT booking_holds_state CHECK (state IN ('held', 'confirmed', 'posted', 'voided')),
    CONSTRAINT booking_holds_split CHECK (
        mentor_tokens >= 0 AND commission_tokens >= 0
        AND (state <> 'posted' OR mentor_tokens + commission_tokens = tokens)
    )
);
CREATE INDEX booking_holds_open ON booking_holds (state, ends_at);
