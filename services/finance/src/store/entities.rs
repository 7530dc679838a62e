//! sea-orm entities for finance's tables (see migrations/).

pub mod account {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "accounts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub platform: String,
        pub ledger: i32,
        pub kind: i32,
        pub owner: String,
        pub no_overdraft: bool,
        pub debits_pending: i64,
        pub debits_posted: i64,
        pub credits_pending: i64,
        pub credits_posted: i64,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod transfer {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "transfers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub platform: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub ledger: i32,
        pub debit_account_id: String,
        pub credit_account_id: String,
        pub amount: i64,
        /// 1 posted, 2 pending, 3 post of `pending_id`, 4 void of `pending_id`.
        pub kind: i32,
        pub pending_id: Option<String>,
        pub timeout_seconds: i32,
        pub timeout_at: Option<DateTimeUtc>,
        pub code: String,
        pub reference: String,
        pub memo: String,
        pub actor: String,
        pub impersonator: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod booking_hold {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "booking_holds")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub platform: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub booking_id: String,
        pub student_id: String,
        pub mentor_id: String,
        pub tokens: i64,
        pub ends_at: DateTimeUtc,
        /// `held`, `confirmed`, `posted`, `voided`.
        pub state: String,
        pub transfer_id: String,
        pub mentor_tokens: i64,
        pub commission_tokens: i64,
        pub outcome: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub mentor_paise: i64,
        pub payout_id: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod product {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "products")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub platform: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// `token_pack` or `course`.
        pub kind: String,
        pub name: String,
        pub price_paise: i64,
        pub gst_rate_percent: i32,
        pub tokens: i64,
        pub course_id: String,
        pub active: bool,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod razorpay_credentials {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "razorpay_credentials")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub platform: String,
        pub key_id: String,
        pub key_secret_sealed: String,
        pub webhook_secret_sealed: String,
        pub updated_by: String,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod payment {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "payments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub platform: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: String,
        pub product_id: String,
        pub product_kind: String,
        pub product_name: String,
        pub amount_paise: i64,
        pub taxable_paise: i64,
        pub gst_paise: i64,
        pub gst_rate_percent: i32,
        pub currency: String,
        pub tokens: i64,
        pub course_id: String,
        /// `created`, `failed`, `authorized`, `captured`.
        pub state: String,
        pub razorpay_order_id: String,
        pub key_id: String,
        pub razorpay_payment_id: String,
        pub failure_reason: String,
        pub captured_at: Option<DateTimeUtc>,
        pub granted_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub billing_name: String,
        pub billing_state: String,
        pub billing_gstin: String,
        pub billing_email: String,
        pub invoice_id: String,
        pub invoice_number: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod razorpay_event {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "razorpay_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub event_id: String,
        pub platform: String,
        pub event: String,
        pub payment_id: String,
        /// `verified`, `mismatch`, `ignored`.
        pub outcome: String,
        pub detail: String,
        pub received_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod gst_settings {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "gst_settings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub platform: String,
        pub legal_name: String,
        pub gstin: String,
        pub state_code: String,
        pub address: String,
        pub invoice_prefix: String,
        pub sac_code: String,
        pub updated_by: String,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod invoice {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "invoices")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub platform: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub kind: String,
        pub number: String,
        pub fy: String,
        pub seq: i64,
        pub payment_id: String,
        pub user_id: String,
        pub issued_at: DateTimeUtc,
        pub supplier_name: String,
        pub supplier_gstin: String,
        pub supplier_state: String,
        pub supplier_address: String,
        pub buyer_name: String,
        pub buyer_state: String,
        pub buyer_gstin: String,
        pub buyer_email: String,
        pub b2b: bool,
        pub place_of_supply: String,
        pub description: String,
        pub sac_code: String,
        pub gst_rate_percent: i32,
        pub taxable_paise: i64,
        pub cgst_paise: i64,
        pub sgst_paise: i64,
        pub igst_paise: i64,
        pub total_paise: i64,
        /// A credit note's refund; empty for an invoice.
        pub refund_id: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod gst_audit {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "gst_audit_log")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub platform: String,
        pub invoice_id: String,
        pub payment_id: String,
        pub action: String,
        pub field: String,
        pub old_value: String,
        pub new_value: String,
        pub actor: String,
        pub impersonator: String,
        pub at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod refund {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "refunds")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub platform: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub payment_id: String,
        pub razorpay_refund_id: String,
        pub amount_paise: i64,
        pub taxable_paise: i64,
        pub gst_paise: i64,
        pub tokens: i64,
        /// Razorpay's: `pending`, then `processed` or `failed` (its webhook).
        pub status: String,
        pub reason: String,
        pub credit_note_id: String,
        pub credit_note_number: String,
        pub actor: String,
        pub impersonator: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod bank_account {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "bank_accounts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub platform: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub mentor_id: String,
        pub holder_name: String,
        pub ifsc: String,
        pub account_number_sealed: String,
        pub account_last4: String,
        pub updated_by: String,
        pub updated_by_impersonator: String,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod payout_run {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "payout_runs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub platform: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// `on_demand`, `monthly`.
        pub run_trigger: String,
        /// `open`, `completed`, `failed`.
        pub state: String,
        pub note: String,
        pub cutoff: DateTimeUtc,
        pub mentors_without_bank_account: i32,
        pub actor: String,
        pub impersonator: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod payout {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "payouts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub platform: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub run_id: String,
        pub mentor_id: String,
        pub tokens: i64,
        pub amount_paise: i64,
        pub meetings: i32,
        /// `pending`, `in_transit`, `paid`, `failed`.
        pub state: String,
        pub holder_name: String,
        pub ifsc: String,
        pub account_last4: String,
        pub account_number_sealed: String,
        pub bank_reference: String,
        pub failure_reason: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod pipeline_cost {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pipeline_costs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub platform: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub service: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub pipeline: String,
        /// `ai_call`, `telephony`.
        pub kind: String,
        pub amount_minor: i64,
        pub currency: String,
        pub rate_paise: i64,
        pub amount_paise: i64,
        pub quantity: i64,
        pub detail: String,
        pub occurred_at: DateTimeUtc,
        /// India's calendar month of `occurred_at`, `2026-04`.
        pub month: String,
        pub recorded_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
