-- Refunds of captured payments, each accepted by Razorpay and with its GST credit note (an
-- `invoices` row of kind credit_note). The tokens and INR it took back are in the ledger
-- (transfers `refund:<id>:*`); this row says what was refunded, why, by whom. Portable.
CREATE TABLE refunds (
    platform TEXT NOT NULL,
    id TEXT NOT NULL,
    payment_id TEXT NOT NULL,
    razorpay_refund_id TEXT NOT NULL,
    amount_paise BIGINT NOT NULL,
    taxable_paise BIGINT NOT NULL,
    gst_paise BIGINT NOT NULL,
    tokens BIGINT NOT NULL,
    -- Razorpay's: pending or processed
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    credit_note_id TEXT NOT NULL,
    credit_note_number TEXT NOT NULL,
    actor TEXT NOT NULL,
    impersonator TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, id),
    CONSTRAINT refunds_razorpay UNIQUE (razorpay_refund_id),
    CONSTRAINT refunds_amounts CHECK (
        amount_paise > 0 AND taxable_paise >= 0 AND gst_paise >= 0 AND tokens >= 0
        AND taxable_paise + gst_paise = amount_paise
    )
);
CREATE INDEX refunds_by_payment ON refunds (platform, payment_id, created_at);
