//! Moving money: other services' transfers (internal), finance staff's grants and reversals,
//! and the journal and accounts they read.

use mas_kit::paging::Page;
use mas_kit::proto::mas::finance::v1 as pb;
use pb::{AccountKind, Ledger, Refusal, TransferKind};

use sea_orm::EntityTrait;

use super::App;
use crate::error::{AppError, AppResult};
use crate::ledger::{self, Actor, Applied, Request, Spec, reads};
use crate::store::entities::{account, transfer};

/// Other services' transfers, applied in order; each one's result, refusals included.
pub async fn create(
    app: &App,
    platform: &str,
    actor: Actor,
    r: &pb::CreateTransfersRequest,
) -> AppResult<pb::CreateTransfersResponse> {
    let mut specs = Vec::with_capacity(r.transfers.len());
    let mut open = vec![];
    for t in &r.transfers {
        let (spec, accounts) = ledger::spec(platform, t)?;
        specs.push(spec);
        open.extend(accounts);
    }
    let applied = app.ledger.submit(Request { specs, actor, open }).await?;
    let mut results: Vec<pb::TransferResult> = applied.into_iter().map(ledger::result_pb).collect();
    // A pending transfer answered again may have been posted or voided since.
    let again: Vec<String> = results
        .iter()
        .filter_map(|r| r.transfer.as_ref())
        .filter(|t| t.kind == TransferKind::Pending as i32)
        .map(|t| t.id.clone())
        .collect();
    let resolved = reads::resolutions(&app.db, platform, &again).await?;
    for t in results.iter_mut().filter_map(|r| r.transfer.as_mut()) {
        if let Some(res) = resolved.get(&t.id) {
            t.pending_state = ledger::Resolution::state(Some(*res)) as i32;
        }
    }
    Ok(pb::CreateTransfersResponse { results })
}

/// One transfer the API itself makes: created or answered again, else the refusal as an error.
async fn one(
    app: &App,
    actor: Actor,
    spec: Spec,
    open: Vec<account::Model>,
) -> AppResult<pb::Transfer> {
    let platform = spec.platform.clone();
    let applied = app
        .ledger
        .submit(Request {
            specs: vec![spec],
            actor,
            open,
        })
        .await?;
    match applied.into_iter().next() {
        Some(Applied::Created(t) | Applied::Exists(t)) => {
            let mut shown = reads::shown(&app.db, &platform, std::slice::from_ref(&t)).await?;
            shown
                .pop()
                .ok_or_else(|| AppError::internal("a transfer without its view"))
        }
        Some(Applied::Refused(refusal, reason)) => Err(refused(refusal, reason)),
        None => Err(AppError::internal("the ledger answered no result")),
    }
}

/// A refusal as the REST caller sees it.
fn refused(refusal: Refusal, reason: String) -> AppError {
    match refusal {
        Refusal::ExistsWithDifferentFields => AppError::Conflict(
            "this was done already with other values (a retry must repeat the first request)"
                .into(),
        ),
        Refusal::ExceedsCredits => {
            AppError::Precondition(format!("not enough in the account: {reason}").into())
        }
        Refusal::Invalid => AppError::invalid("transfer", reason),
        _ => AppError::Precondition(reason.into()),
    }
}

/// Tokens from the platform's promotions account into a user's wallet.
pub async fn grant(
    app: &App,
    platform: &str,
    actor: Actor,
    key: Option<&str>,
    r: &pb::GrantTokensRequest,
) -> AppResult<pb::Transfer> {
    // With an Idempotency-Key the transfer's id is the caller's key: a retry is the same
    // transfer, answered again; without one every call is a new grant.
    let id = match key {
        Some(k) => format!("grant:{}:{k}", actor.subject),
        None => format!("grant:{}", uuid::Uuid::new_v4()),
    };
    let now = chrono::Utc::now();
    let promotions =
        ledger::new_account(platform, Ledger::Tokens, AccountKind::Promotions, "", now);
    let wallet = ledger::new_account(
        platform,
        Ledger::Tokens,
        AccountKind::Wallet,
        &r.user_id,
        now,
    );
    let spec = Spec {
        platform: platform.to_owned(),
        id,
        ledger: Ledger::Tokens as i32,
        debit: promotions.id.clone(),
        credit: wallet.id.clone(),
        amount: i64::from(r.tokens),
        kind: TransferKind::Posted,
        pending_id: None,
        timeout_seconds: 0,
        code: "grant".into(),
        reference: r.user_id.clone(),
        memo: r.reason.clone(),
        linked: false,
    };
    let t = one(app, actor, spec, vec![promotions, wallet]).await?;
    tracing::info!(platform, transfer = %t.id, tokens = r.tokens, "tokens granted");
    Ok(t)
}

/// A correcting transfer: the posted amount back from the credit account to the debit one,
/// at most once (its id is the original's with `reverse:` before it).
pub async fn reverse(
    app: &App,
    platform: &str,
    actor: Actor,
    r: &pb::ReverseTransferRequest,
) -> AppResult<pb::Transfer> {
    let t = transfer::Entity::find_by_id((platform.to_owned(), r.id.clone()))
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound("transfer"))?;
    let kind = TransferKind::try_from(t.kind).unwrap_or(TransferKind::Unspecified);
    if !matches!(kind, TransferKind::Posted | TransferKind::PostPending) {
        return Err(AppError::Precondition(
            "only posted money can be reversed: a pending transfer is voided instead".into(),
        ));
    }
    let spec = Spec {
        platform: platform.to_owned(),
        id: format!("reverse:{}", t.id),
        ledger: t.ledger,
        debit: t.credit_account_id.clone(),
        credit: t.debit_account_id.clone(),
        amount: t.amount,
        kind: TransferKind::Posted,
        pending_id: None,
        timeout_seconds: 0,
        code: "reversal".into(),
        reference: t.id.clone(),
        memo: r.reason.clone(),
        linked: false,
    };
    let out = one(app, actor, spec, vec![]).await.map_err(|e| match e {
        AppError::Conflict(_) => AppError::Conflict("this transfer is reversed already".into()),
        e => e,
    })?;
    tracing::info!(platform, transfer = %t.id, reversal = %out.id, "transfer reversed");
    Ok(out)
}

pub async fn list(
    app: &App,
    platform: &str,
    r: &pb::ListTransfersRequest,
) -> AppResult<pb::ListTransfersResponse> {
    let page = Page::parse(r.page_size, &r.page_token)?;
    let account = (!r.account_id.is_empty()).then_some(r.account_id.as_str());
    let (transfers, next_page_token) = reads::transfers(&app.db, platform, account, page).await?;
    Ok(pb::ListTransfersResponse {
        transfers,
        next_page_token,
    })
}

pub async fn accounts(
    app: &App,
    platform: &str,
    r: &pb::ListAccountsRequest,
) -> AppResult<pb::ListAccountsResponse> {
    let page = Page::parse(r.page_size, &r.page_token)?;
    let (rows, next_page_token) = reads::accounts(&app.db, platform, page).await?;
    Ok(pb::ListAccountsResponse {
        accounts: rows.iter().map(ledger::account_pb).collect(),
        next_page_token,
    })
}
