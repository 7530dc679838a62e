//! The backbone's tables, created in each service's own schema by [`BusTables`], which the
//! service lists in its migrator. Portable between Postgres and SQLite like every schema here.

use sea_orm_migration::prelude::*;

/// Add to a service's `Migrator::migrations()` to get the outbox, inbox, jobs, schedules and
/// audit tables.
pub struct BusTables;

impl MigrationName for BusTables {
    fn name(&self) -> &str {
        "m_mas_bus_0001_tables"
    }
}

const SQL: &str = r#"
CREATE TABLE mas_outbox (
    id TEXT PRIMARY KEY,
    dest_kind TEXT NOT NULL,
    dest TEXT NOT NULL,
    headers TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    sent_at TIMESTAMPTZ NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NULL
);
CREATE INDEX mas_outbox_unsent ON mas_outbox (id) WHERE sent_at IS NULL;
CREATE INDEX mas_outbox_sent ON mas_outbox (sent_at);

CREATE TABLE mas_inbox (
    consumer TEXT NOT NULL,
    message_id TEXT NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (consumer, message_id)
);
CREATE INDEX mas_inbox_processed ON mas_inbox (processed_at);

CREATE TABLE mas_jobs (
    id TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    business_keys TEXT NOT NULL DEFAULT '',
    platform TEXT NOT NULL DEFAULT '',
    payload TEXT NOT NULL,
    headers TEXT NOT NULL DEFAULT '{}',
    last_error TEXT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NULL
);
CREATE INDEX mas_jobs_queue_state ON mas_jobs (queue, state);
CREATE INDEX mas_jobs_state_finished ON mas_jobs (state, finished_at);

CREATE TABLE mas_schedules (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    expr TEXT NOT NULL,
    tz TEXT NOT NULL,
    task TEXT NOT NULL,
    payload TEXT NOT NULL DEFAULT '{}',
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    next_run TIMESTAMPTZ NOT NULL,
    last_run TIMESTAMPTZ NULL,
    last_success TIMESTAMPTZ NULL,
    last_failure TIMESTAMPTZ NULL,
    last_error TEXT NULL,
    last_duration_ms BIGINT NOT NULL DEFAULT 0,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    total_runs BIGINT NOT NULL DEFAULT 0,
    total_failures BIGINT NOT NULL DEFAULT 0,
    total_duration_ms BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE mas_ops_audit (
    id TEXT PRIMARY KEY,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    at TIMESTAMPTZ NOT NULL
);
CREATE INDEX mas_ops_audit_at ON mas_ops_audit (at);

CREATE TABLE mas_bus_counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
)
"#;

#[async_trait::async_trait]
impl MigrationTrait for BusTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        mas_db::run_script(manager.get_connection(), SQL).await
    }
}

pub mod outbox {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "mas_outbox")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// `events` or `queue`
        pub dest_kind: String,
        pub dest: String,
        pub headers: String,
        pub body: String,
        pub created_at: DateTimeUtc,
        pub sent_at: Option<DateTimeUtc>,
        pub attempts: i32,
        pub last_error: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod inbox {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "mas_inbox")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub consumer: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub message_id: String,
        pub processed_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod job {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "mas_jobs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub queue: String,
        /// `job` (a work-queue job) or `event` (a consumed event that failed)
        pub kind: String,
        /// waiting, active, delayed, completed, failed
        pub state: String,
        pub attempts: i32,
        pub max_attempts: i32,
        /// `|key1|key2|`, so one key is found with a LIKE.
        pub business_keys: String,
        pub platform: String,
        pub payload: String,
        pub headers: String,
        pub last_error: Option<String>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub finished_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod schedule {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "mas_schedules")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// `cron` or `interval`
        pub kind: String,
        /// The cron pattern, or the interval in seconds.
        pub expr: String,
        pub tz: String,
        pub task: String,
        pub payload: String,
        pub enabled: bool,
        pub next_run: DateTimeUtc,
        pub last_run: Option<DateTimeUtc>,
        pub last_success: Option<DateTimeUtc>,
        pub last_failure: Option<DateTimeUtc>,
        pub last_error: Option<String>,
        pub last_duration_ms: i64,
        pub consecutive_failures: i32,
        pub total_runs: i64,
        pub total_failures: i64,
        pub total_duration_ms: i64,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod audit {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "mas_ops_audit")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub actor: String,
        pub action: String,
        pub target: String,
        pub detail: String,
        pub at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod counter {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "mas_bus_counters")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub value: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
