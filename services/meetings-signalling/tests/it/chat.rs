//! The chat writer on Postgres with several lanes (CHAT_WRITERS): every line is committed before
//! its sender is answered, and a meeting's lines, handed over together, are committed in the
//! order they were handed over (each meeting has one lane; a lane commits one batch at a time);
//! a line the database refuses fails alone.

use mas_kit::db::DbConfig;
use meetings_signalling::signal::chat::{ChatWriter, batch_histogram};
use meetings_signalling::store::{entities::chat_message, migrations::Migrator};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::MigratorTrait;

use crate::migrations::{admin, postgres_url};

/// A schema of its own for the test, named `<prefix>_<random>`, with the service's tables.
async fn migrated_schema(prefix: &str) -> (String, DbConfig, sea_orm::DatabaseConnection) {
    let schema = format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let cfg = DbConfig::Postgres {
        url: postgres_url(),
        schema: schema.clone(),
        max_connections: 2,
    };
    let db = mas_kit::db::connect(&cfg).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    (schema, cfg, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, read top to bottom; its steps share the stack"
)]
async fn lanes_commit_every_line_and_keep_each_meetings_order() {
    let Some(admin) = admin().await else {
        return;
    };
    admin.close().await.ok();
    let (schema, cfg, db) = migrated_schema("chat_lanes").await;
    let batches = batch_histogram();
    let writer = ChatWriter::connect(&cfg, 3, batches.clone()).await.unwrap();

    // 8 meetings x 40 lines, handed over at once and in the order of n, the way the socket
    // handlers do it (`then`, no await between lines).
    let base = chrono::Utc::now();
    let (answered, mut answers) = tokio::sync::mpsc::unbounded_channel();
    for n in 0..40i64 {
        for m in 0..8 {
            let row = chat_message::Model {
                id: format!("m{m}-{n:03}"),
                meeting_id: format!("m{m}"),
                user_id: format!("u{m}"),
                body: format!("line {n}"),
                sent_at: base + chrono::Duration::milliseconds(n),
            };
            let answered = answered.clone();
            writer.then(
                row,
                Box::new(move |stored| {
                    Box::pin(async move {
                        let _ = answered.send(stored.map(|row| row.id));
                    })
                }),
            );
        }
    }
    drop(answered);
    let mut stored = 0;
    while let Some(outcome) = answers.recv().await {
        outcome.expect("every line is stored");
        stored += 1;
    }
    assert_eq!(stored, 320);
    assert_eq!(batches.get_sample_sum(), 320.0);

    // Each batch is one transaction: a later commit of the same lane has a later xid.
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT meeting_id, id, xmin::text AS tx FROM \"{schema}\".chat_messages \
                 ORDER BY meeting_id, id"
            ),
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 320, "every answered line is in the table");
    let mut last: Option<(String, u64)> = None;
    for row in &rows {
        let meeting: String = row.try_get("", "meeting_id").unwrap();
        let tx: u64 = row.try_get::<String>("", "tx").unwrap().parse().unwrap();
        if let Some((m, t)) = &last
            && *m == meeting
        {
            assert!(
                tx >= *t,
                "{meeting}: a later line committed before an earlier one"
            );
        }
        last = Some((meeting, tx));
    }

    // A line the database refuses (an id already stored) fails alone; the lines around it are
    // stored.
    let line = |id: &str| chat_message::Model {
        id: id.into(),
        meeting_id: "m0".into(),
        user_id: "u0".into(),
        body: "again".into(),
        sent_at: chrono::Utc::now(),
    };
    let (before, taken, after) = tokio::join!(
        writer.store(line("m0-new-1")),
        writer.store(line("m0-000")),
        writer.store(line("m0-new-2")),
    );
    before.expect("stored");
    after.expect("stored");
    assert!(
        matches!(
            taken,
            Err(meetings_signalling::error::AppError::Conflict(_))
        ),
        "{taken:?}"
    );

    db.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
    db.close().await.ok();
}

/// A chat writer keeps its connection only while lines keep coming: one the server dropped
/// while the writer was idle is not used again, and the next line is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_dropped_while_the_writer_was_idle_is_not_used_again() {
    let Some(admin) = admin().await else {
        return;
    };
    let (schema, cfg, db) = migrated_schema("chat_drop").await;
    db.close().await.ok();
    let writer = ChatWriter::connect(&cfg, 1, batch_histogram())
        .await
        .unwrap();
    let line = |id: &str| chat_message::Model {
        id: id.into(),
        meeting_id: "m0".into(),
        user_id: "u0".into(),
        body: format!("line {id}"),
        sent_at: chrono::Utc::now(),
    };

    writer.store(line("before")).await.expect("stored");
    // Ends the writer's sessions (named after the schema), waiting until they are gone.
    let ended = admin
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT pg_terminate_backend(pid, 5000) AS gone FROM pg_stat_activity \
                 WHERE application_name = 'mas-{schema}' AND pid <> pg_backend_pid()"
            ),
        ))
        .await
        .unwrap();
    assert!(!ended.is_empty(), "the writer's connection was found");
    writer
        .store(line("after"))
        .await
        .expect("the next line goes on a connection that works");

    let stored = admin
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT id FROM \"{schema}\".chat_messages ORDER BY id"),
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String>("", "id").unwrap())
        .collect::<Vec<_>>();
    assert_eq!(stored, ["after", "before"]);
    drop(writer);
    admin
        .execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
    admin.close().await.ok();
}
