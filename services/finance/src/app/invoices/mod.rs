//! GST tax invoices. A platform is a supplier with its GST registration (`gst_settings`); every
//! captured payment gets a tax invoice in the capture's own transaction ([`issue`]), numbered
//! from its platform's series for the financial year, so numbers are consecutive and a capture
//! that rolls back leaves no gap. The buyer's billing details come with the order; a GSTIN
//! makes it B2B. The GST is CGST + SGST when the place of supply (the buyer's state) is the
//! supplier's state, IGST otherwise ([`gst::split`]). Every field written is one row of
//! `gst_audit_log`, which the database keeps append-only.

pub mod email;
pub mod gst;
pub mod pdf;

use chrono::{DateTime, Utc};
use mas_kit::auth::Principal;
use mas_kit::proto::mas::finance::v1 as pb;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, Set, Statement,
};

use super::App;
use super::payments::is_staff;
use crate::error::{AppError, AppResult};
use crate::ledger::{Actor, timestamp};
use crate::store::entities::{gst_audit, gst_settings, invoice, payment, refund};

pub const INVOICE: &str = "invoice";
pub const CREDIT_NOTE: &str = "credit_note";

fn settings_pb(s: &gst_settings::Model) -> pb::GstSettings {
    pb::GstSettings {
        legal_name: s.legal_name.clone(),
        gstin: s.gstin.clone(),
        state_code: s.state_code.clone(),
        address: s.address.clone(),
        invoice_prefix: s.invoice_prefix.clone(),
        sac_code: s.sac_code.clone(),
        updated_by: s.updated_by.clone(),
        updated_at: Some(timestamp(s.updated_at)),
    }
}

pub async fn find_settings<C: ConnectionTrait>(
    db: &C,
    platform: &str,
) -> AppResult<Option<gst_settings::Model>> {
    Ok(gst_settings::Entity::find_by_id(platform.to_owned())
        .one(db)
        .await?)
}

pub async fn settings(app: &App, platform: &str) -> AppResult<pb::GstSettings> {
    find_settings(&app.db, platform)
        .await?
        .map(|s| settings_pb(&s))
        .ok_or(AppError::NotFound("GST settings"))
}

pub async fn set_settings(
    app: &App,
    platform: &str,
    actor: &str,
    r: &pb::SetGstSettingsRequest,
) -> AppResult<pb::GstSettings> {
    if let Some(why) = gst::gstin_error(&r.gstin) {
        return Err(AppError::invalid("gstin", why));
    }
    if r.gstin[..2] != r.state_code {
        return Err(AppError::invalid(
            "stateCode",
            "must be the state of the GSTIN (its first two digits)",
        ));
    }
    let row = gst_settings::ActiveModel {
        platform: Set(platform.to_owned()),
        legal_name: Set(r.legal_name.trim().to_owned()),
        gstin: Set(r.gstin.clone()),
        state_code: Set(r.state_code.clone()),
        address: Set(r.address.trim().to_owned()),
        invoice_prefix: Set(r.invoice_prefix.clone()),
        sac_code: Set(r.sac_code.clone()),
        updated_by: Set(actor.to_owned()),
        updated_at: Set(Utc::now()),
    };
    gst_settings::Entity::insert(row)
        .on_conflict(
            OnConflict::column(gst_settings::Column::Platform)
                .update_columns([
                    gst_settings::Column::LegalName,
                    gst_settings::Column::Gstin,
                    gst_settings::Column::StateCode,
                    gst_settings::Column::Address,
                    gst_settings::Column::InvoicePrefix,
                    gst_settings::Column::SacCode,
                    gst_settings::Column::UpdatedBy,
                    gst_settings::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&app.db)
        .await?;
    tracing::info!(platform, gstin = %r.gstin, prefix = %r.invoice_prefix, actor, "GST settings set");
    settings(app, platform).await
}

/// Checks a buyer's billing details before an order is made.
pub fn check_billing(b: &pb::BillingDetails) -> AppResult<()> {
    if gst::state_name(&b.state_code).is_none() {
        return Err(AppError::invalid(
            "billing.stateCode",
            "is not an Indian state or union territory code",
        ));
    }
    if !b.gstin.is_empty() {
        if let Some(why) = gst::gstin_error(&b.gstin) {
            return Err(AppError::invalid("billing.gstin", why));
        }
        if b.gstin[..2] != b.state_code {
            return Err(AppError::invalid(
                "billing.stateCode",
                "must be the state of the GSTIN (its first two digits)",
            ));
        }
    }
    Ok(())
}

/// The next number of a platform's series for the financial year, taken inside `txn`: the
/// row stays locked until the transaction ends, so concurrent captures queue for it and a
/// rollback gives the number back.
async fn next_number<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    kind: &str,
    fy: &str,
) -> AppResult<i64> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "INSERT INTO invoice_series (platform, kind, fy, last_number) VALUES ($1, $2, $3, 1) \
             ON CONFLICT (platform, kind, fy) DO UPDATE SET last_number = invoice_series.last_number + 1 \
             RETURNING last_number"
        }
        _ => {
            "INSERT INTO invoice_series (platform, kind, fy, last_number) VALUES (?, ?, ?, 1) \
             ON CONFLICT (platform, kind, fy) DO UPDATE SET last_number = invoice_series.last_number + 1 \
             RETURNING last_number"
        }
    };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [platform.into(), kind.into(), fy.into()],
        ))
        .await?
        .ok_or_else(|| AppError::internal("the invoice series answered no number"))?;
    Ok(row.try_get::<i64>("", "last_number")?)
}

/// What one document (an invoice, or a refund's credit note) of payment `p` carries.
struct Document {
    kind: &'static str,
    description: String,
    taxable: i64,
    gst: i64,
    total: i64,
    refund_id: String,
}

/// Numbers `d` from its series inside `txn`, writes it and its audit rows.
async fn write<C: ConnectionTrait>(
    txn: &C,
    p: &payment::Model,
    d: Document,
    at: DateTime<Utc>,
    actor: &Actor,
) -> AppResult<invoice::Model> {
    let s = find_settings(txn, &p.platform).await?.ok_or_else(|| {
        AppError::Precondition("the platform has no GST settings; invoices cannot be issued".into())
    })?;
    let fy = gst::financial_year(at);
    let seq = next_number(txn, &p.platform, d.kind, &fy).await?;
    let number = if d.kind == CREDIT_NOTE {
        gst::credit_note_number(&s.invoice_prefix, &fy, seq)
    } else {
        gst::invoice_number(&s.invoice_prefix, &fy, seq)
    }
    .ok_or_else(|| {
        AppError::internal(format!(
            "{} {seq} of {fy} does not fit 16 characters with prefix {}",
            d.kind, s.invoice_prefix
        ))
    })?;
    // The place of supply is the buyer's state (the supplier's for a payment without one).
    let place = if p.billing_state.is_empty() {
        s.state_code.clone()
    } else {
        p.billing_state.clone()
    };
    let split = gst::split(d.gst, &s.state_code, &place);
    let row = invoice::Model {
        platform: p.platform.clone(),
        id: uuid::Uuid::new_v4().to_string(),
        kind: d.kind.into(),
        number,
        fy,
        seq,
        payment_id: p.id.clone(),
        user_id: p.user_id.clone(),
        issued_at: at,
        supplier_name: s.legal_name.clone(),
        supplier_gstin: s.gstin.clone(),
        supplier_state: s.state_code.clone(),
        supplier_address: s.address.clone(),
        buyer_name: p.billing_name.clone(),
        buyer_state: p.billing_state.clone(),
        buyer_gstin: p.billing_gstin.clone(),
        buyer_email: p.billing_email.clone(),
        b2b: !p.billing_gstin.is_empty(),
        place_of_supply: place,
        description: d.description,
        sac_code: s.sac_code.clone(),
        gst_rate_percent: p.gst_rate_percent,
        taxable_paise: d.taxable,
        cgst_paise: split.cgst,
        sgst_paise: split.sgst,
        igst_paise: split.igst,
        total_paise: d.total,
        refund_id: d.refund_id,
    };
    invoice::ActiveModel::from(row.clone()).insert(txn).await?;
    audit(txn, &row, actor, at).await?;
    Ok(row)
}

/// Issues `p`'s tax invoice at `at`, inside the capture's transaction `txn`. Answers the
/// invoice, or the one issued before (a payment has one).
pub async fn issue<C: ConnectionTrait>(
    txn: &C,
    p: &payment::Model,
    at: DateTime<Utc>,
    actor: &Actor,
) -> AppResult<invoice::Model> {
    if let Some(done) = invoice::Entity::find()
        .filter(invoice::Column::Platform.eq(p.platform.clone()))
        .filter(invoice::Column::Kind.eq(INVOICE))
        .filter(invoice::Column::PaymentId.eq(p.id.clone()))
        .one(txn)
        .await?
    {
        return Ok(done);
    }
    let d = Document {
        kind: INVOICE,
        description: p.product_name.clone(),
        taxable: p.taxable_paise,
        gst: p.gst_paise,
        total: p.amount_paise,
        refund_id: String::new(),
    };
    write(txn, p, d, at, actor).await
}

/// The credit note of refund `r` of `p`, inside the refund's transaction: its own series, the
/// refunded taxable value and GST split as the invoice's was (same place of supply).
pub async fn credit_note<C: ConnectionTrait>(
    txn: &C,
    p: &payment::Model,
    r: &refund::Model,
    at: DateTime<Utc>,
    actor: &Actor,
) -> AppResult<invoice::Model> {
    let d = Document {
        kind: CREDIT_NOTE,
        description: format!("Refund: {} (invoice {})", p.product_name, p.invoice_number),
        taxable: r.taxable_paise,
        gst: r.gst_paise,
        total: r.amount_paise,
        refund_id: r.id.clone(),
    };
    write(txn, p, d, at, actor).await
}

/// The invoice's fields as written, one `create` row each, then its `issue`.
async fn audit<C: ConnectionTrait>(
    txn: &C,
    i: &invoice::Model,
    actor: &Actor,
    at: DateTime<Utc>,
) -> AppResult<()> {
    let fields: [(&str, String); 17] = [
        ("kind", i.kind.clone()),
        ("number", i.number.clone()),
        ("issued_at", i.issued_at.to_rfc3339()),
        ("supplier_gstin", i.supplier_gstin.clone()),
        ("supplier_state", i.supplier_state.clone()),
        ("buyer_name", i.buyer_name.clone()),
        ("buyer_state", i.buyer_state.clone()),
        ("buyer_gstin", i.buyer_gstin.clone()),
        ("place_of_supply", i.place_of_supply.clone()),
        ("description", i.description.clone()),
        ("sac_code", i.sac_code.clone()),
        ("gst_rate_percent", i.gst_rate_percent.to_string()),
        ("taxable_paise", i.taxable_paise.to_string()),
        ("cgst_paise", i.cgst_paise.to_string()),
        ("sgst_paise", i.sgst_paise.to_string()),
        ("igst_paise", i.igst_paise.to_string()),
        ("total_paise", i.total_paise.to_string()),
    ];
    let row = |action: &str, field: &str, new: String| gst_audit::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        platform: Set(i.platform.clone()),
        invoice_id: Set(i.id.clone()),
        payment_id: Set(i.payment_id.clone()),
        action: Set(action.to_owned()),
        field: Set(field.to_owned()),
        old_value: Set(String::new()),
        new_value: Set(new),
        actor: Set(actor.subject.clone()),
        impersonator: Set(actor.impersonator.clone()),
        at: Set(at),
    };
    let mut rows: Vec<gst_audit::ActiveModel> = fields
        .into_iter()
        .map(|(f, v)| row("create", f, v))
        .collect();
    rows.push(row("issue", "status", "issued".into()));
    gst_audit::Entity::insert_many(rows)
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

pub fn invoice_pb(i: &invoice::Model) -> pb::Invoice {
    pb::Invoice {
        id: i.id.clone(),
        number: i.number.clone(),
        kind: i.kind.clone(),
        refund_id: i.refund_id.clone(),
        payment_id: i.payment_id.clone(),
        user_id: i.user_id.clone(),
        issued_at: Some(timestamp(i.issued_at)),
        financial_year: i.fy.clone(),
        supplier_name: i.supplier_name.clone(),
        supplier_gstin: i.supplier_gstin.clone(),
        supplier_state_code: i.supplier_state.clone(),
        buyer_name: i.buyer_name.clone(),
        buyer_state_code: i.buyer_state.clone(),
        buyer_gstin: i.buyer_gstin.clone(),
        b2b: i.b2b,
        place_of_supply: i.place_of_supply.clone(),
        description: i.description.clone(),
        sac_code: i.sac_code.clone(),
        gst_rate_percent: i.gst_rate_percent,
        taxable_paise: i.taxable_paise,
        cgst_paise: i.cgst_paise,
        sgst_paise: i.sgst_paise,
        igst_paise: i.igst_paise,
        total_paise: i.total_paise,
    }
}

/// An invoice for its buyer or finance staff; anyone else is told it does not exist.
pub async fn find_for(
    app: &App,
    platform: &str,
    caller: &Principal,
    id: &str,
) -> AppResult<invoice::Model> {
    let i = invoice::Entity::find_by_id((platform.to_owned(), id.to_owned()))
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound("invoice"))?;
    if i.user_id != caller.subject && !is_staff(caller) {
        return Err(AppError::NotFound("invoice"));
    }
    Ok(i)
}

pub async fn list(
    app: &App,
    platform: &str,
    r: &pb::ListInvoicesRequest,
) -> AppResult<pb::ListInvoicesResponse> {
    let page = mas_kit::paging::Page::parse(r.page_size, &r.page_token)?;
    let mut q = invoice::Entity::find().filter(invoice::Column::Platform.eq(platform));
    if !r.payment_id.is_empty() {
        q = q.filter(invoice::Column::PaymentId.eq(r.payment_id.clone()));
    }
    if !r.financial_year.is_empty() {
        q = q.filter(invoice::Column::Fy.eq(r.financial_year.clone()));
    }
    use sea_orm::QuerySelect;
    let rows = q
        .order_by_desc(invoice::Column::IssuedAt)
        .order_by_desc(invoice::Column::Seq)
        .offset(page.offset)
        .limit(page.limit())
        .all(&app.db)
        .await?;
    let (rows, next_page_token) = page.split(rows);
    Ok(pb::ListInvoicesResponse {
        invoices: rows.iter().map(invoice_pb).collect(),
        next_page_token,
    })
}

pub async fn audit_log(
    app: &App,
    platform: &str,
    payment_id: &str,
) -> AppResult<pb::ListGstAuditLogResponse> {
    let rows = gst_audit::Entity::find()
        .filter(gst_audit::Column::Platform.eq(platform))
        .filter(gst_audit::Column::PaymentId.eq(payment_id))
        .order_by_asc(gst_audit::Column::At)
        .order_by_asc(gst_audit::Column::Id)
        .all(&app.db)
        .await?;
    Ok(pb::ListGstAuditLogResponse {
        entries: rows
            .iter()
            .map(|a| pb::GstAuditEntry {
                invoice_id: a.invoice_id.clone(),
                payment_id: a.payment_id.clone(),
                action: a.action.clone(),
                field: a.field.clone(),
                old_value: a.old_value.clone(),
                new_value: a.new_value.clone(),
                actor: a.actor.clone(),
                impersonator: a.impersonator.clone(),
                at: Some(timestamp(a.at)),
            })
            .collect(),
    })
}
