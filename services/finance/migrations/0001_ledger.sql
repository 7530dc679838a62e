-- finance's ledger: accounts and their transfers (the journal), on two ledgers per platform
-- (1 TOKENS, 2 INR; kinds as in finance.proto). Portable between Postgres and SQLite; the
-- triggers that make the journal append-only are per backend (store/migrations.rs).

CREATE TABLE accounts (
    -- `<platform>:<ledger>:<kind>[:<owner>]`
    id TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    ledger INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    -- Wallets and earnings: debits (posted and pending) may never exceed posted credits.
    no_overdraft BOOLEAN NOT NULL,
    debits_pending BIGINT NOT NULL DEFAULT 0,
    debits_posted BIGINT NOT NULL DEFAULT 0,
    credits_pending BIGINT NOT NULL DEFAULT 0,
    credits_posted BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT accounts_totals_not_negative CHECK (
        debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 AND credits_posted >= 0
    ),
    CONSTRAINT accounts_no_overdraft CHECK (
        NOT no_overdraft OR debits_pending + debits_posted <= credits_posted
    )
);
CREATE UNIQUE INDEX accounts_by_identity ON accounts (platform, ledger, kind, owner);

-- kind: 1 posted, 2 pending, 3 post of `pending_id`, 4 void of `pending_id`.
CREATE TABLE transfers (
    platform TEXT NOT NULL,
    id TEXT NOT NULL,
    ledger INTEGER NOT NULL,
    debit_account_id TEXT NOT NULL REFERENCES accounts (id),
    credit_account_id TEXT NOT NULL REFERENCES accounts (id),
    amount BIGINT NOT NULL,
    kind INTEGER NOT NULL,
    pending_id TEXT NULL,
    timeout_seconds INTEGER NOT NULL DEFAULT 0,
    timeout_at TIMESTAMPTZ NULL,
    code TEXT NOT NULL,
    reference TEXT NOT NULL DEFAULT '',
    memo TEXT NOT NULL DEFAULT '',
    actor TEXT NOT NULL,
    impersonator TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, id),
    CONSTRAINT transfers_amount_positive CHECK (amount > 0),
    CONSTRAINT transfers_two_accounts CHECK (debit_account_id <> credit_account_id),
    CONSTRAINT transfers_kind CHECK (kind IN (1, 2, 3, 4)),
    CONSTRAINT transfers_resolves_a_pending CHECK ((kind IN (3, 4)) = (pending_id IS NOT NULL)),
    CONSTRAINT transfers_timeout_only_pending CHECK (kind = 2 OR timeout_at IS NULL)
);
-- A pending transfer is posted or voided at most once (NULLs, the other kinds, never collide).
CREATE UNIQUE INDEX transfers_resolve_once ON transfers (platform, pending_id);
CREATE INDEX transfers_by_debit ON transfers (debit_account_id, created_at);
CREATE INDEX transfers_by_credit ON transfers (credit_account_id, created_at);
CREATE INDEX transfers_by_platform ON transfers (platform, created_at);
CREATE INDEX transfers_timeouts ON transfers (timeout_at);
