//! Finance staff's reports, each for the caller's platform only: invoiced revenue per month,
//! one month's GST in GSTR-1's shape (B2B documents, B2C sums per place of supply and rate,
//! credit notes), the tokens the platform owes, and the journal as CSV. Months are India's
//! calendar months (the invoices' financial year is too).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use mas_kit::proto::mas::finance::v1 as pb;
use pb::{AccountKind, Ledger};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::App;
use super::invoices::{CREDIT_NOTE, gst};
use crate::error::{AppError, AppResult};
use crate::ledger::timestamp;
use crate::store::entities::{account, invoice, transfer};

/// The longest revenue report, in months.
const MAX_MONTHS: i32 = 36;

/// `2026-04` as (year, month).
pub(crate) fn month_of(field: &'static str, s: &str) -> AppResult<(i32, u32)> {
    let (y, m) = s
        .split_once('-')
        .and_then(|(y, m)| Some((y.parse().ok()?, m.parse().ok()?)))
        .filter(|(_, m): &(i32, u32)| (1..=12).contains(m))
        .ok_or_else(|| AppError::invalid(field, "is a month, as 2026-04"))?;
    Ok((y, m))
}

/// The instant a month of India's calendar starts.
fn month_start(y: i32, m: u32) -> AppResult<DateTime<Utc>> {
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|t| gst::ist().from_local_datetime(&t).single())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| AppError::invalid("month", "is not a month"))
}

/// The months of a report from `from` to `to`, both included, as labels (`2026-04`): `to`
/// before `from`, or more than MAX_MONTHS, is refused.
pub(crate) fn months_between(from: (i32, u32), to: (i32, u32)) -> AppResult<Vec<String>> {
    let span = (to.0 - from.0) * 12 + i32::try_from(to.1).unwrap_or(0)
        - i32::try_from(from.1).unwrap_or(0);
    if span < 0 {
        return Err(AppError::invalid("to", "is before `from`"));
    }
    if span >= MAX_MONTHS {
        return Err(AppError::invalid(
            "to",
            format!("at most {MAX_MONTHS} months in one report"),
        ));
    }
    let (mut y, mut m) = from;
    let mut out = vec![];
    for _ in 0..=span {
        out.push(format!("{y:04}-{m:02}"));
        (y, m) = next_month(y, m);
    }
    Ok(out)
}

fn next_month(y: i32, m: u32) -> (i32, u32) {
    if m == 12 { (y + 1, 1) } else { (y, m + 1) }
}

pub(crate) fn label(at: DateTime<Utc>) -> String {
    let l = at.with_timezone(&gst::ist());
    format!("{:04}-{:02}", l.year(), l.month())
}

/// A document's amounts, negative for a credit note.
fn signed(i: &invoice::Model) -> pb::TaxTotals {
    let k = if i.kind == CREDIT_NOTE { -1 } else { 1 };
    pb::TaxTotals {
        taxable_paise: k * i.taxable_paise,
        cgst_paise: k * i.cgst_paise,
        sgst_paise: k * i.sgst_paise,
        igst_paise: k * i.igst_paise,
        total_paise: k * i.total_paise,
    }
}

fn add(into: &mut pb::TaxTotals, t: &pb::TaxTotals) {
    into.taxable_paise += t.taxable_paise;
    into.cgst_paise += t.cgst_paise;
    into.sgst_paise += t.sgst_paise;
    into.igst_paise += t.igst_paise;
    into.total_paise += t.total_paise;
}

async fn documents(
    app: &App,
    platform: &str,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> AppResult<Vec<invoice::Model>> {
    Ok(invoice::Entity::find()
        .filter(invoice::Column::Platform.eq(platform))
        .filter(invoice::Column::IssuedAt.gte(from))
        .filter(invoice::Column::IssuedAt.lt(until))
        .order_by_asc(invoice::Column::IssuedAt)
        .order_by_asc(invoice::Column::Number)
        .all(&app.db)
        .await?)
}

pub async fn revenue(
    app: &App,
    platform: &str,
    r: &pb::RevenueReportRequest,
) -> AppResult<pb::RevenueReport> {
    let (fy, fm) = month_of("from", &r.from)?;
    let (ty, tm) = month_of("to", &r.to)?;
    months_between((fy, fm), (ty, tm))?;
    let (ny, nm) = next_month(ty, tm);
    let docs = documents(app, platform, month_start(fy, fm)?, month_start(ny, nm)?).await?;
    let mut months: BTreeMap<String, pb::RevenueMonth> = BTreeMap::new();
    let mut totals = pb::TaxTotals::default();
    for d in &docs {
        let key = label(d.issued_at);
        let m = months
            .entry(key.clone())
            .or_insert_with(|| pb::RevenueMonth {
                month: key,
                totals: Some(pb::TaxTotals::default()),
                ..Default::default()
            });
        if d.kind == CREDIT_NOTE {
            m.credit_notes += 1;
        } else {
            m.invoices += 1;
        }
        let t = signed(d);
        add(m.totals.get_or_insert_with(Default::default), &t);
        add(&mut totals, &t);
    }
    Ok(pb::RevenueReport {
        months: months.into_values().collect(),
        totals: Some(totals),
    })
}

fn document_pb(d: &invoice::Model) -> pb::GstDocument {
    pb::GstDocument {
        number: d.number.clone(),
        kind: d.kind.clone(),
        issued_at: Some(timestamp(d.issued_at)),
        buyer_gstin: d.buyer_gstin.clone(),
        buyer_name: d.buyer_name.clone(),
        place_of_supply: d.place_of_supply.clone(),
        gst_rate_percent: d.gst_rate_percent,
        totals: Some(signed(d)),
    }
}

pub async fn gst_summary(
    app: &App,
    platform: &str,
    r: &pb::GstSummaryRequest,
) -> AppResult<pb::GstSummary> {
    let (y, m) = month_of("month", &r.month)?;
    let (ny, nm) = next_month(y, m);
    let docs = documents(app, platform, month_start(y, m)?, month_start(ny, nm)?).await?;
    let mut b2c: BTreeMap<(String, i32), pb::GstB2cRow> = BTreeMap::new();
    let mut out = pb::GstSummary {
        month: r.month.clone(),
        totals: Some(pb::TaxTotals::default()),
        ..Default::default()
    };
    for d in &docs {
        let t = signed(d);
        add(out.totals.get_or_insert_with(Default::default), &t);
        if d.kind == CREDIT_NOTE {
            out.credit_notes.push(document_pb(d));
        }
        if d.b2b {
            if d.kind != CREDIT_NOTE {
                out.b2b.push(document_pb(d));
            }
        } else {
            let row = b2c
                .entry((d.place_of_supply.clone(), d.gst_rate_percent))
                .or_insert_with(|| pb::GstB2cRow {
                    place_of_supply: d.place_of_supply.clone(),
                    gst_rate_percent: d.gst_rate_percent,
                    documents: 0,
                    totals: Some(pb::TaxTotals::default()),
                });
            row.documents += 1;
            add(row.totals.get_or_insert_with(Default::default), &t);
        }
    }
    out.b2c = b2c.into_values().collect();
    Ok(out)
}

pub async fn wallet_liability(app: &App, platform: &str) -> AppResult<pb::WalletLiability> {
    let wallets = account::Entity::find()
        .filter(account::Column::Platform.eq(platform))
        .filter(account::Column::Ledger.eq(Ledger::Tokens as i32))
        .filter(account::Column::Kind.eq(AccountKind::Wallet as i32))
        .all(&app.db)
        .await?;
    let tokens: i64 = wallets
        .iter()
        .map(|w| w.credits_posted - w.debits_posted)
        .sum();
    let rate = app.cfg.token_value_paise;
    Ok(pb::WalletLiability {
        wallets: i32::try_from(wallets.len()).unwrap_or(i32::MAX),
        tokens,
        paise: tokens.saturating_mul(rate),
        token_value_paise: rate,
    })
}

/// A free-text cell that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`) is
/// quoted with a leading apostrophe (OWASP's CSV injection advice).
fn cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    }
}

/// The platform's journal as CSV, oldest first.
pub async fn ledger_csv(app: &App, platform: &str) -> AppResult<Vec<u8>> {
    let rows = transfer::Entity::find()
        .filter(transfer::Column::Platform.eq(platform))
        .order_by_asc(transfer::Column::CreatedAt)
        .order_by_asc(transfer::Column::Id)
        .all(&app.db)
        .await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let failed = |e: csv::Error| AppError::internal(format!("writing the ledger CSV: {e}"));
    w.write_record([
        "created_at",
        "id",
        "ledger",
        "kind",
        "debit_account",
        "credit_account",
        "amount",
        "pending_id",
        "code",
        "reference",
        "actor",
        "impersonator",
        "memo",
    ])
    .map_err(failed)?;
    for t in &rows {
        let ledger = Ledger::try_from(t.ledger).map_or("", |l| l.as_str_name());
        let kind = pb::TransferKind::try_from(t.kind).map_or("", |k| k.as_str_name());
        w.write_record([
            t.created_at.to_rfc3339().as_str(),
            &t.id,
            ledger,
            kind,
            &t.debit_account_id,
            &t.credit_account_id,
            &t.amount.to_string(),
            t.pending_id.as_deref().unwrap_or(""),
            &t.code,
            &cell(&t.reference),
            &t.actor,
            &t.impersonator,
            &cell(&t.memo),
        ])
        .map_err(failed)?;
    }
    w.into_inner()
        .map_err(|e| AppError::internal(format!("writing the ledger CSV: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_spans_whole_months_in_order() {
        assert_eq!(
            months_between((2026, 11), (2027, 2)).unwrap(),
            ["2026-11", "2026-12", "2027-01", "2027-02"]
        );
        assert!(months_between((2026, 5), (2026, 4)).is_err());
        assert!(months_between((2020, 1), (2026, 1)).is_err());
    }
}
