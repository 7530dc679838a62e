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
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
