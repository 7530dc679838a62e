//! A run's bank file (what finance uploads to the bank) and the bank's confirmation file (what
//! the bank sends back): each payout in transit is then paid (its tokens leave payouts in
//! transit for TOKEN_ISSUANCE: the platform has paid them in rupees) or failed (back to the
//! mentor's EARNINGS, its meetings free for the next run).

use std::collections::{HashMap, HashSet};

use mas_kit::proto::mas::finance::v1 as pb;
use pb::AccountKind;
use sea_orm::TransactionTrait;
use serde::Deserialize;

use super::{
    FAILED, IN_TRANSIT, PAID, PENDING, RUN_COMPLETED, earnings, find_run, get_run, payout_spec,
    payouts_of, set_run_state, settle, system,
};
use crate::app::App;
use crate::error::{AppError, AppResult};
use crate::ledger::{Actor, Applied, Request};
use crate::store::entities::payout;

/// Row errors reported at most; the rest are counted.
const MAX_ERRORS: usize = 20;

/// Rupees with two decimals, from paise.
fn rupees(paise: i64) -> String {
    format!("{}.{:02}", paise / 100, paise % 100)
}

/// The run's bank-upload CSV: one row per payout in transit, the payout id as its reference.
pub async fn bank_file(app: &App, platform: &str, id: &str, actor: &Actor) -> AppResult<Vec<u8>> {
    let run = find_run(&app.db, platform, id)
        .await?
        .ok_or(AppError::NotFound("payout run"))?;
    let payouts = payouts_of(&app.db, platform, id).await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let failed = |e: csv::Error| AppError::internal(format!("writing the bank file: {e}"));
    w.write_record([
        "payout_id",
        "beneficiary_name",
        "account_number",
        "ifsc",
        "amount_inr",
        "mentor_id",
        "narration",
    ])
    .map_err(failed)?;
    let mut rows = 0;
    for p in payouts.iter().filter(|p| p.state == IN_TRANSIT) {
        let narration = format!("{} payout {}", platform, run.id);
        w.write_record([
            p.id.as_str(),
            &p.holder_name,
            &super::account_number(app, p)?,
            &p.ifsc,
            &rupees(p.amount_paise),
            &p.mentor_id,
            &narration,
        ])
        .map_err(failed)?;
        rows += 1;
    }
    let data = w
        .into_inner()
        .map_err(|e| AppError::internal(format!("writing the bank file: {e}")))?;
    tracing::info!(platform, run = id, rows, actor = %actor.subject,
        impersonator = %actor.impersonator, "payout bank file downloaded");
    Ok(data)
}

/// One row of the bank's confirmation file.
#[derive(Debug, Deserialize)]
struct Row {
    payout_id: String,
    status: String,
    #[serde(default)]
    bank_reference: String,
    #[serde(default)]
    reason: String,
}

/// What a valid row asks of its payout.
struct Change {
    payout: payout::Model,
    paid: bool,
    reference: String,
    reason: String,
}

fn reference_ok(r: &str) -> bool {
    (1..=64).contains(&r.len())
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'/')
}

/// Checks one row against its payout: `Ok(None)` when the payout is already where the row
/// says (applying a file again), `Err((conflict, message))` when it cannot be applied.
fn check(
    row: &Row,
    p: Option<&payout::Model>,
    seen: &mut HashSet<String>,
) -> Result<Option<Change>, (bool, String)> {
    let bad = |m: String| Err((false, m));
    let Some(p) = p else {
        return bad(format!("payout {:?} is not in this run", row.payout_id));
    };
    if !seen.insert(p.id.clone()) {
        return bad(format!("payout {} is listed twice", p.id));
    }
    let paid = match row.status.to_ascii_lowercase().as_str() {
        "paid" => true,
        "failed" => false,
        other => return bad(format!("status {other:?}: must be paid or failed")),
    };
    if paid && !reference_ok(&row.bank_reference) {
        return bad(
            "bank_reference: a paid payout needs the bank's reference (1-64 letters, digits, '-' or '/')"
                .into(),
        );
    }
    if row.reason.chars().count() > 200 {
        return bad("reason: at most 200 characters".into());
    }
    let want = if paid { PAID } else { FAILED };
    match p.state.as_str() {
        IN_TRANSIT => Ok(Some(Change {
            payout: p.clone(),
            paid,
            reference: row.bank_reference.clone(),
            reason: if row.reason.is_empty() && !paid {
                "returned by the bank".into()
            } else {
                row.reason.clone()
            },
        })),
        PENDING => bad(format!("payout {} is not in transit yet", p.id)),
        s if s == want && (!paid || p.bank_reference == row.bank_reference) => Ok(None),
        s => Err((
            true,
            format!(
                "payout {} is already {s}; the file says {}",
                p.id, row.status
            ),
        )),
    }
}

/// Reads and checks the whole file: the changes to make, or the refusal with each bad row.
fn changes(text: &str, payouts: &[payout::Model]) -> AppResult<Vec<Change>> {
    let by_id: HashMap<&str, &payout::Model> = payouts.iter().map(|p| (p.id.as_str(), p)).collect();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let (mut out, mut errors, mut conflicts) = (vec![], vec![], vec![]);
    let mut seen = HashSet::new();
    let mut rows = 0;
    for (i, rec) in reader.deserialize::<Row>().enumerate() {
        rows += 1;
        // Line 1 is the header.
        let line = i + 2;
        let row = match rec {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("line {line}: {e}"));
                continue;
            }
        };
        match check(&row, by_id.get(row.payout_id.as_str()).copied(), &mut seen) {
            Ok(Some(c)) => out.push(c),
            Ok(None) => {}
            Err((true, m)) => conflicts.push(format!("line {line}: {m}")),
            Err((false, m)) => errors.push(format!("line {line}: {m}")),
        }
    }
    if rows == 0 && errors.is_empty() {
        errors.push("the file has no rows (header: payout_id,status,bank_reference,reason)".into());
    }
    let summary = |list: &[String]| {
        let mut s = list
            .iter()
            .take(MAX_ERRORS)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        if list.len() > MAX_ERRORS {
            s.push_str(&format!("; and {} more", list.len() - MAX_ERRORS));
        }
        s
    };
    if !errors.is_empty() {
        return Err(AppError::invalid(
            "csv",
            format!("nothing applied: {}", summary(&errors)),
        ));
    }
    if !conflicts.is_empty() {
        return Err(AppError::Conflict(
            format!("nothing applied: {}", summary(&conflicts)).into(),
        ));
    }
    Ok(out)
}

/// Applies the bank's confirmation file to the run's payouts in transit.
pub async fn confirm(
    app: &App,
    platform: &str,
    actor: &Actor,
    r: &pb::ConfirmPayoutsRequest,
) -> AppResult<pb::PayoutRun> {
    find_run(&app.db, platform, &r.id)
        .await?
        .ok_or(AppError::NotFound("payout run"))?;
    let payouts = payouts_of(&app.db, platform, &r.id).await?;
    let todo = changes(&r.csv, &payouts)?;
    if !todo.is_empty() {
        let in_transit = system(platform, AccountKind::PayoutsInTransit);
        let specs = todo
            .iter()
            .map(|c| {
                let p = &c.payout;
                if c.paid {
                    let issued = system(platform, AccountKind::TokenIssuance);
                    payout_spec(p, "paid", in_transit.clone(), issued)
                } else {
                    payout_spec(
                        p,
                        "returned",
                        in_transit.clone(),
                        earnings(platform, &p.mentor_id),
                    )
                }
            })
            .collect();
        let open = vec![crate::ledger::new_account(
            platform,
            pb::Ledger::Tokens,
            AccountKind::TokenIssuance,
            "",
            chrono::Utc::now(),
        )];
        let applied = app
            .ledger
            .submit(Request {
                specs,
                actor: actor.clone(),
                open,
            })
            .await?;
        if let Some(Applied::Refused(refusal, reason)) =
            applied.iter().find(|a| matches!(a, Applied::Refused(..)))
        {
            return Err(AppError::internal(format!(
                "the ledger refused a payout's confirmation ({refusal:?}): {reason}"
            )));
        }
        let txn = app.db.begin().await?;
        for c in &todo {
            let (to, reference, reason) = if c.paid {
                (PAID, c.reference.as_str(), "")
            } else {
                (FAILED, "", c.reason.as_str())
            };
            if settle(&txn, &c.payout, IN_TRANSIT, to, (reference, reason)).await? {
                app.payment_metrics.payouts.with_label_values(&[to]).inc();
            }
        }
        let left = payouts_of(&txn, platform, &r.id)
            .await?
            .iter()
            .any(|p| p.state == PENDING || p.state == IN_TRANSIT);
        if !left {
            set_run_state(&txn, platform, &r.id, RUN_COMPLETED).await?;
        }
        txn.commit().await?;
    }
    let paid = todo.iter().filter(|c| c.paid).count();
    tracing::info!(platform, run = %r.id, paid, failed = todo.len() - paid,
        actor = %actor.subject, impersonator = %actor.impersonator, "payout confirmations applied");
    get_run(app, platform, &r.id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paise_are_written_as_rupees() {
        assert_eq!(rupees(4000), "40.00");
        assert_eq!(rupees(5), "0.05");
        assert_eq!(rupees(123_456), "1234.56");
    }

    #[test]
    fn a_bank_reference_is_short_and_plain() {
        assert!(reference_ok("UTR123/45-A"));
        assert!(!reference_ok(""));
        assert!(!reference_ok("has space"));
        assert!(!reference_ok(&"9".repeat(65)));
    }
}
