-- The pipeline cost ledger: what other services' pipelines spent (AI calls, telephony), one row
-- per entry, keyed by the service and the caller's id so a retry is found. The INR amount is
-- fixed when the entry is recorded, at the rate then in force; `month` is India's calendar
-- month of `occurred_at`, so the report groups in SQL on both backends. Portable.
CREATE TABLE pipeline_costs (
    platform TEXT NOT NULL,
    service TEXT NOT NULL,
    id TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    kind TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    currency TEXT NOT NULL,
    -- Paise per unit of `currency` used for `amount_paise`.
    rate_paise BIGINT NOT NULL,
    amount_paise BIGINT NOT NULL,
    quantity BIGINT NOT NULL DEFAULT 0,
    detail TEXT NOT NULL DEFAULT '',
    occurred_at TIMESTAMPTZ NOT NULL,
    month TEXT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, service, id),
    CONSTRAINT pipeline_costs_kind CHECK (kind IN ('ai_call', 'telephony')),
    CONSTRAINT pipeline_costs_amounts CHECK (
        amount_minor >= 0 AND amount_paise >= 0 AND rate_paise > 0 AND quantity >= 0
    )
);
CREATE INDEX pipeline_costs_by_month ON pipeline_costs (platform, month);
