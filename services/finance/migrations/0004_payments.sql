-- Razorpay purchases: what the platform sells, its Razorpay account, each order's payment, and
-- every webhook event seen (deduplicated by Razorpay's event id). Money moves only in the
-- ledger; a payment says what was bought and where Razorpay's payment is. Portable between
-- Postgres and SQLite.
CREATE TABLE products (
    platform TEXT NOT NULL,
    id TEXT NOT NULL,
    -- token_pack or course
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    -- What the buyer pays, GST included.
    price_paise BIGINT NOT NULL,
    gst_rate_percent INTEGER NOT NULL,
    tokens BIGINT NOT NULL DEFAULT 0,
    course_id TEXT NOT NULL DEFAULT '',
    active BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, id),
    CONSTRAINT products_kind CHECK (
        (kind = 'token_pack' AND tokens > 0 AND course_id = '')
        OR (kind = 'course' AND tokens = 0 AND course_id <> '')
    ),
    CONSTRAINT products_price CHECK (price_paise > 0),
    CONSTRAINT products_gst_rate CHECK (gst_rate_percent IN (0, 5, 12, 18, 28))
);

-- One Razorpay account per platform; the secrets sealed with SECRET_KEYS (mas_kit::secrets),
-- bound to this table, column and platform.
CREATE TABLE razorpay_credentials (
    platform TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    key_secret_sealed TEXT NOT NULL,
    webhook_secret_sealed TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE payments (
    platform TEXT NOT NULL,
    id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    product_kind TEXT NOT NULL,
    product_name TEXT NOT NULL,
    amount_paise BIGINT NOT NULL,
    taxable_paise BIGINT NOT NULL,
    gst_paise BIGINT NOT NULL,
    gst_rate_percent INTEGER NOT NULL,
    currency TEXT NOT NULL,
    tokens BIGINT NOT NULL,
    course_id TEXT NOT NULL,
    -- created, failed, authorized, captured (forward only: app::payments::state)
    state TEXT NOT NULL,
    razorpay_order_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    razorpay_payment_id TEXT NOT NULL DEFAULT '',
    failure_reason TEXT NOT NULL DEFAULT '',
    captured_at TIMESTAMPTZ NULL,
    granted_at TIMESTAMPTZ NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, id),
    CONSTRAINT payments_order UNIQUE (razorpay_order_id),
    CONSTRAINT payments_state CHECK (state IN ('created', 'failed', 'authorized', 'captured')),
    CONSTRAINT payments_split CHECK (
        amount_paise > 0 AND taxable_paise >= 0 AND gst_paise >= 0
        AND taxable_paise + gst_paise = amount_paise
    ),
    CONSTRAINT payments_captured CHECK (state = 'captured' OR granted_at IS NULL),
    CONSTRAINT payments_granted_after_capture CHECK (granted_at IS NULL OR captured_at IS NOT NULL)
);
CREATE INDEX payments_by_state ON payments (state, created_at);
CREATE INDEX payments_by_user ON payments (platform, user_id, created_at);

-- Every webhook delivery that verified, once per Razorpay event id.
CREATE TABLE razorpay_events (
    event_id TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    event TEXT NOT NULL,
    payment_id TEXT NOT NULL DEFAULT '',
    -- verified, mismatch, ignored
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    received_at TIMESTAMPTZ NOT NULL
);
