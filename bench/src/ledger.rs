//! `--suite ledger`: finance's ledger on Postgres (`synchronous_commit` on), one transfer per
//! gRPC call (`CreateTransfers`), 64 concurrent callers in a closed loop, the median of five
//! runs. Two cases: each caller moving tokens between accounts of its own (distinct accounts),
//! and every transfer crediting the platform's revenue (one hot account). Each case runs on the
//! service as it ships (group commit, `LEDGER_MAX_BATCH=512`) and, side by side, on the same
//! service committing each request in a transaction of its own (`LEDGER_MAX_BATCH=1`): what a
//! transaction-per-request ledger does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use mas_cli::stack;
use mas_kit::config::Secret;
use mas_kit::link::IdentityLink;
use mas_kit::proto::mas::finance::v1 as pb;
use mas_kit::proto::mas::finance::v1::finance_client::FinanceClient;
use pb::{AccountKind, AccountRef, Ledger, TransferKind};
use sea_orm::ConnectionTrait;
use tonic::transport::Channel;

const PLATFORM: &str = "mr-mentor";
const RUNS: usize = 5;
const CALLERS: usize = 64;
const CHANNELS: usize = 8;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    Distinct,
    Hot,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Distinct => "distinct accounts",
            Case::Hot => "hot account (revenue)",
        }
    }
}

struct Platform {
    stack: stack::Stack,
    clients: Vec<FinanceClient<Channel>>,
    token: String,
    schema_prefix: String,
}

fn postgres_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn start(max_batch: usize) -> anyhow::Result<Platform> {
    let secret = stack::random_secret();
    let schema_prefix = format!("bench_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let database = stack::Database::Postgres {
        url: postgres_url(),
        schema_prefix: schema_prefix.clone(),
    };
    let mut opts = stack::Options::ephemeral(database, stack::random_secret());
    opts.service_accounts = vec![("bench".into(), secret.clone())];
    opts.set("finance", "LEDGER_MAX_BATCH", &max_batch.to_string());
    opts.set("finance", "DATABASE_MAX_CONNECTIONS", "8");
    // To compare writer counts: LEDGER_WRITERS in the bench's environment.
    if let Ok(w) = std::env::var("LEDGER_WRITERS") {
        opts.set("finance", "LEDGER_WRITERS", &w);
    }
    let stack = stack::start(opts).await.context("starting the platform")?;
    let url = format!("http://{}", stack.identity_grpc_addr);
    let link = IdentityLink::new(
        Channel::from_shared(url)?.connect().await?,
        "bench",
        Secret::new(secret),
    );
    let token = link.service_token().await.context("a service token")?;
    let mut clients = vec![];
    for _ in 0..CHANNELS {
        let ch = Channel::from_shared(format!("http://{}", stack.finance_grpc_addr))?
            .connect()
            .await?;
        clients.push(FinanceClient::new(ch));
    }
    Ok(Platform {
        stack,
        clients,
        token,
        schema_prefix,
    })
}

fn wallet(user: &str) -> Option<AccountRef> {
    Some(AccountRef {
        kind: AccountKind::Wallet as i32,
        owner: user.into(),
    })
}

fn system(kind: AccountKind) -> Option<AccountRef> {
    Some(AccountRef {
        kind: kind as i32,
        owner: String::new(),
    })
}

fn transfer(
    id: String,
    debit: Option<AccountRef>,
    credit: Option<AccountRef>,
    amount: i64,
) -> pb::TransferSpec {
    pb::TransferSpec {
        id,
        ledger: Ledger::Tokens as i32,
        debit,
        credit,
        amount,
        kind: TransferKind::Posted as i32,
        code: "bench".into(),
        ..Default::default()
    }
}

async fn call(
    p: &Platform,
    client: usize,
    specs: Vec<pb::TransferSpec>,
) -> anyhow::Result<pb::CreateTransfersResponse> {
    let mut req = tonic::Request::new(pb::CreateTransfersRequest { transfers: specs });
    req.metadata_mut()
        .insert("authorization", format!("Bearer {}", p.token).parse()?);
    req.metadata_mut().insert("x-platform", PLATFORM.parse()?);
    let mut c = p.clients[client % p.clients.len()].clone();
    Ok(c.create_transfers(req).await?.into_inner())
}

/// Every caller's wallet funded well past what a run spends.
async fn fund(p: &Platform, run: &str) -> anyhow::Result<()> {
    let specs: Vec<_> = (0..CALLERS)
        .map(|c| {
            transfer(
                format!("fund-{run}-{c}"),
                system(AccountKind::Promotions),
                wallet(&format!("caller-{c}")),
                1_000_000_000,
            )
        })
        .collect();
    let r = call(p, 0, specs).await?;
    anyhow::ensure!(
        r.results
            .iter()
            .all(|r| r.outcome == pb::transfer_result::Outcome::Created as i32),
        "funding refused: {:?}",
        r.results.first()
    );
    Ok(())
}

/// One closed-loop run: transfers per second.
async fn run(p: &Arc<Platform>, case: Case, tag: &str, seconds: u64) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|c| {
            let (p, done, tag) = (p.clone(), done.clone(), tag.to_owned());
            tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let credit = match case {
                        Case::Distinct => wallet(&format!("payee-{c}")),
                        Case::Hot => system(AccountKind::Revenue),
                    };
                    let id = format!("{tag}-{c}-{i}");
                    let r = call(
                        &p,
                        c,
                        vec![transfer(id, wallet(&format!("caller-{c}")), credit, 1)],
                    )
                    .await?;
                    anyhow::ensure!(
                        r.results[0].outcome == pb::transfer_result::Outcome::Created as i32,
                        "refused: {:?}",
                        r.results[0]
                    );
                    i += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// Where a group commit's time went: the mean of each step of finance's ledger transactions
/// (`finance_ledger_phase_seconds`) over the runs, read from its /metrics.
async fn phases(p: &Platform) -> anyhow::Result<String> {
    let url = format!("http://{}/metrics", p.stack.finance_admin_addr);
    let text = reqwest::get(&url).await?.text().await?;
    let value = |name: &str, phase: &str| -> f64 {
        let key = format!("{name}{{phase=\"{phase}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let mut out = vec![];
    let mut total = 0.0;
    for phase in finance::ledger::metrics::PHASES {
        let (sum, count) = (
            value("finance_ledger_phase_seconds_sum", phase),
            value("finance_ledger_phase_seconds_count", phase),
        );
        let mean = if count > 0.0 {
            sum / count * 1000.0
        } else {
            0.0
        };
        total += mean;
        out.push(format!("{phase} {mean:.2}"));
    }
    let batch = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let (sum, count) = (
        batch("finance_ledger_batch_transfers_sum "),
        batch("finance_ledger_batch_transfers_count "),
    );
    let mean_batch = if count > 0.0 { sum / count } else { 0.0 };
    Ok(format!(
        "{} = {total:.2} ms per transaction of {mean_batch:.1} transfers",
        out.join(", ")
    ))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn synchronous_commit() -> anyhow::Result<String> {
    let cfg = mas_kit::db::DbConfig::Postgres {
        url: postgres_url(),
        schema: "public".into(),
        max_connections: 1,
    };
    let db = mas_kit::db::connect(&cfg).await?;
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SHOW synchronous_commit",
        ))
        .await?
        .context("no answer")?;
    let v: String = row.try_get("", "synchronous_commit")?;
    db.close().await.ok();
    Ok(v)
}

pub async fn bench(seconds: u64) -> anyhow::Result<()> {
    let sync = synchronous_commit()
        .await
        .context("Postgres (DATABASE_URL) for the ledger suite")?;
    println!(
        "\n== ledger: CreateTransfers over gRPC on Postgres (synchronous_commit = {sync}), {CALLERS} callers, one transfer per call, median of {RUNS} runs of {seconds}s =="
    );
    let mut rows = vec![];
    for case in [Case::Distinct, Case::Hot] {
        let mut figures = vec![];
        for max_batch in [512, 1] {
            let p = Arc::new(start(max_batch).await?);
            fund(&p, "all").await?;
            let mut runs = vec![];
            for r in 0..RUNS {
                runs.push(run(&p, case, &format!("r{r}"), seconds).await?);
            }
            println!(
                "  {:24} LEDGER_MAX_BATCH={max_batch}: {}",
                case.name(),
                phases(&p).await?
            );
            let prefix = p.schema_prefix.clone();
            let p = Arc::into_inner(p).context("callers still hold the platform")?;
            p.stack.stop().await?;
            stack::drop_schemas(&postgres_url(), &prefix).await;
            let range = format!(
                "{:.0}-{:.0}",
                runs.iter().copied().fold(f64::MAX, f64::min),
                runs.iter().copied().fold(0.0, f64::max)
            );
            figures.push((median(runs), range));
        }
        let ((grouped, grange), (single, srange)) = (figures[0].clone(), figures[1].clone());
        println!(
            "  {:24} group commit {grouped:>8.0}/s ({grange})   a transaction per call {single:>8.0}/s ({srange})   ratio {:.1}x",
            case.name(),
            grouped / single
        );
        rows.push((case, grouped));
    }
    for (case, grouped) in rows {
        let verdict = if grouped >= 5000.0 { "meets" } else { "misses" };
        println!(
            "  goal 5,000 transfers/s, {}: {verdict} ({grouped:.0}/s)",
            case.name()
        );
    }
    Ok(())
}
