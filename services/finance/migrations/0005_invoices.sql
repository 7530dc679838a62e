-- GST tax invoices. Each platform is a supplier with its own GST registration and invoice
-- series; a captured payment gets its invoice in the capture's own transaction, numbered from
-- invoice_series (consecutive per platform, kind and financial year, CGST Rule 46(b)), so a
-- capture that rolls back leaves no gap. Invoices are written once; gst_audit_log records each
-- field as it was written and refuses any change (triggers in store/migrations.rs). Portable.
CREATE TABLE gst_settings (
    platform TEXT PRIMARY KEY,
    legal_name TEXT NOT NULL,
    gstin TEXT NOT NULL,
    state_code TEXT NOT NULL,
    address TEXT NOT NULL,
    -- 1-3 letters or digits: MM/26-27/000123
    invoice_prefix TEXT NOT NULL,
    -- the SAC of what the platform sells (999293: commercial training and coaching)
    sac_code TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE invoice_series (
    platform TEXT NOT NULL,
    -- invoice, credit_note
    kind TEXT NOT NULL,
    fy TEXT NOT NULL,
    last_number BIGINT NOT NULL,
    PRIMARY KEY (platform, kind, fy),
    CONSTRAINT invoice_series_positive CHECK (last_number > 0)
);

-- The buyer's billing details, given with the order.
ALTER TABLE payments ADD COLUMN billing_name TEXT NOT NULL DEFAULT '';
ALTER TABLE payments ADD COLUMN billing_state TEXT NOT NULL DEFAULT '';
ALTER TABLE payments ADD COLUMN billing_gstin TEXT NOT NULL DEFAULT '';
ALTER TABLE payments ADD COLUMN billing_email TEXT NOT NULL DEFAULT '';
-- The tax invoice, set in the capture's transaction.
ALTER TABLE payments ADD COLUMN invoice_id TEXT NOT NULL DEFAULT '';
ALTER TABLE payments ADD COLUMN invoice_number TEXT NOT NULL DEFAULT '';

CREATE TABLE invoices (
    platform TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    number TEXT NOT NULL,
    fy TEXT NOT NULL,
    seq BIGINT NOT NULL,
    payment_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    issued_at TIMESTAMPTZ NOT NULL,
    supplier_name TEXT NOT NULL,
    supplier_gstin TEXT NOT NULL,
    supplier_state TEXT NOT NULL,
    supplier_address TEXT NOT NULL,
    buyer_name TEXT NOT NULL,
    buyer_state TEXT NOT NULL,
    buyer_gstin TEXT NOT NULL,
    buyer_email TEXT NOT NULL,
    b2b BOOLEAN NOT NULL,
    place_of_supply TEXT NOT NULL,
    description TEXT NOT NULL,
    sac_code TEXT NOT NULL,
    gst_rate_percent INTEGER NOT NULL,
    taxable_paise BIGINT NOT NULL,
    cgst_paise BIGINT NOT NULL,
    sgst_paise BIGINT NOT NULL,
    igst_paise BIGINT NOT NULL,
    total_paise BIGINT NOT NULL,
    -- A credit note's refund (empty for an invoice).
    refund_id TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (platform, id),
    CONSTRAINT invoices_number UNIQUE (platform, number),
    CONSTRAINT invoices_kind CHECK (kind IN ('invoice', 'credit_note')),
    CONSTRAINT invoices_number_rule CHECK (length(number) <= 16),
    CONSTRAINT invoices_sum CHECK (taxable_paise + cgst_paise + sgst_paise + igst_paise = total_paise),
    CONSTRAINT invoices_split CHECK (igst_paise = 0 OR (cgst_paise = 0 AND sgst_paise = 0)),
    CONSTRAINT invoices_b2b CHECK (b2b = (buyer_gstin <> ''))
);
CREATE INDEX invoices_by_payment ON invoices (platform, payment_id);
-- One tax invoice per payment; a payment may have several credit notes (partial refunds).
CREATE UNIQUE INDEX invoices_one_per_payment ON invoices (platform, payment_id) WHERE kind = 'invoice';

CREATE TABLE gst_audit_log (
    id TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    invoice_id TEXT NOT NULL,
    payment_id TEXT NOT NULL,
    -- create, update, issue
    action TEXT NOT NULL,
    field TEXT NOT NULL,
    old_value TEXT NOT NULL,
    new_value TEXT NOT NULL,
    actor TEXT NOT NULL,
    impersonator TEXT NOT NULL,
    at TIMESTAMPTZ NOT NULL,
    CONSTRAINT gst_audit_action CHECK (action IN ('create', 'update', 'issue'))
);
CREATE INDEX gst_audit_by_payment ON gst_audit_log (platform, payment_id, at);
