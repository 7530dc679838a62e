//! The chat writer of meetings-signalling alone on SQLite, three ways side by side in one run:
//! on one of the service's pooled connections, on a connection of its own with SQLite's default
//! checkpoint interval, and as built (its own connection, a checkpoint every 10000 WAL pages).
//! 500 senders store lines for 250 meetings, each waiting for its line's commit before the
//! next, as the closed-loop chat of the signalling benchmark does. Figures are for this whole
//! process (all threads): lines a second and CPU per line.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use mas_kit::db::sea_orm::ConnectionTrait;
use mas_kit::db::sea_orm_migration::MigratorTrait;
use meetings_signalling::app::new_id;
use meetings_signalling::signal::chat::{ChatWriter, batch_histogram};
use meetings_signalling::store::{entities::chat_message, migrations::Migrator};

use crate::signal::cpu_secs;

const SENDERS: usize = 500;

pub async fn suite(seconds: u64) -> anyhow::Result<()> {
    println!(
        "\n### Chat writer on SQLite: {SENDERS} senders, {} meetings, {seconds} s each\n",
        SENDERS / 2
    );
    println!("| writer's connection | lines/s | CPU per line µs (all threads) |");
    println!("|---|---|---|");
    for way in ["pool", "own-1000", "own"] {
        let dir = tempfile::tempdir()?;
        let cfg = mas_kit::db::DbConfig::Sqlite {
            path: dir.path().join("chat.db"),
        };
        let pool = mas_kit::db::connect(&cfg).await?;
        Migrator::up(&pool, None).await.context("migrations")?;
        let (label, writer) = match way {
            "pool" => (
                "one of the service's pool of 8",
                ChatWriter::start([pool.clone()], batch_histogram()),
            ),
            "own-1000" => {
                let own = mas_kit::db::connect_writer(&cfg).await?;
                // SQLite's default interval, on the writer's one connection.
                own.execute_unprepared("PRAGMA wal_autocheckpoint = 1000")
                    .await?;
                (
                    "its own, checkpoint every 1000 pages",
                    ChatWriter::start([own], batch_histogram()),
                )
            }
            _ => (
                "its own, checkpoint every 10000 pages (as built)",
                ChatWriter::connect(&cfg, 1, batch_histogram()).await?,
            ),
        };
        let (lines_per_sec, cpu_us) = measure(writer, seconds).await?;
        println!("| {label} | {lines_per_sec:.0} | {cpu_us:.1} |");
        pool.close().await.ok();
    }
    Ok(())
}

/// Lines a second and this process's CPU µs per line over `seconds`, after 2 s of warm-up.
async fn measure(writer: ChatWriter, seconds: u64) -> anyhow::Result<(f64, f64)> {
    let stop = Arc::new(AtomicBool::new(false));
    let stored = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    let meetings: Vec<String> = (0..SENDERS / 2).map(|_| new_id()).collect();
    for i in 0..SENDERS {
        let (w, stop, stored) = (writer.clone(), stop.clone(), stored.clone());
        let (meeting, user) = (meetings[i / 2].clone(), new_id());
        senders.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let row = chat_message::Model {
                    id: new_id(),
                    meeting_id: meeting.clone(),
                    user_id: user.clone(),
                    body: "t=1234567 how does this look?".into(),
                    sent_at: chrono::Utc::now(),
                };
                w.store(row).await?;
                stored.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    let me = std::process::id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu0, n0, t0) = (
        cpu_secs(me)?,
        stored.load(Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (cpu1, n1) = (cpu_secs(me)?, stored.load(Ordering::Relaxed));
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await??;
    }
    let lines = (n1 - n0).max(1) as f64;
    Ok((lines / elapsed, (cpu1 - cpu0) / lines * 1e6))
}
