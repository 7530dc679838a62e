-- Mentor payouts: bank accounts (the number sealed with SECRET_KEYS), payout runs, one payout
-- per mentor per run, and which payout each paid meeting's earnings belong to. Portable.
CREATE TABLE bank_accounts (
    platform TEXT NOT NULL,
    mentor_id TEXT NOT NULL,
    holder_name TEXT NOT NULL,
    ifsc TEXT NOT NULL,
    account_number_sealed TEXT NOT NULL,
    account_last4 TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_by_impersonator TEXT NOT NULL DEFAULT '',
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, mentor_id)
);

CREATE TABLE payout_runs (
    platform TEXT NOT NULL,
    id TEXT NOT NULL,
    -- on_demand, monthly
    run_trigger TEXT NOT NULL,
    -- open, completed, failed
    state TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    cutoff TIMESTAMPTZ NOT NULL,
    mentors_without_bank_account INTEGER NOT NULL DEFAULT 0,
    actor TEXT NOT NULL,
    impersonator TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, id),
    CONSTRAINT payout_runs_trigger CHECK (run_trigger IN ('on_demand', 'monthly')),
    CONSTRAINT payout_runs_state CHECK (state IN ('open', 'completed', 'failed'))
);
CREATE INDEX payout_runs_by_time ON payout_runs (platform, created_at);

CREATE TABLE payouts (
    platform TEXT NOT NULL,
    id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    mentor_id TEXT NOT NULL,
    tokens BIGINT NOT NULL,
    amount_paise BIGINT NOT NULL,
    meetings INTEGER NOT NULL,
    -- pending (claimed, not yet moved in the ledger), in_transit, paid, failed
    state TEXT NOT NULL,
    holder_name TEXT NOT NULL,
    ifsc TEXT NOT NULL,
    account_last4 TEXT NOT NULL,
    -- The account number as it was when the run was made, sealed like bank_accounts'.
    account_number_sealed TEXT NOT NULL,
    bank_reference TEXT NOT NULL DEFAULT '',
    failure_reason TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, id),
    FOREIGN KEY (platform, run_id) REFERENCES payout_runs (platform, id),
    CONSTRAINT payouts_once_per_run UNIQUE (platform, run_id, mentor_id),
    CONSTRAINT payouts_positive CHECK (tokens > 0 AND amount_paise >= 0 AND meetings > 0),
    CONSTRAINT payouts_state CHECK (state IN ('pending', 'in_transit', 'paid', 'failed'))
);
CREATE INDEX payouts_by_state ON payouts (state, updated_at);

-- The payout a paid meeting's earnings belong to: claimed (NULL to an id) by one run only; a
-- failed payout gives its meetings back (to NULL) for the next run.
ALTER TABLE booking_holds ADD COLUMN payout_id TEXT NULL;
CREATE INDEX booking_holds_unpaid ON booking_holds (platform, state, payout_id, mentor_id);
