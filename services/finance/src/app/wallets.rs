//! Token wallets: a user's balance, holds and journal.

use chrono::Utc;
use mas_kit::paging::Page;
use mas_kit::proto::mas::finance::v1 as pb;
use pb::{AccountKind, Ledger};

use super::App;
use crate::error::AppResult;
use crate::ledger::{self, reads};

/// The wallet's account id of `user` on `platform`.
pub fn wallet_id(platform: &str, user: &str) -> String {
    ledger::account_id(platform, Ledger::Tokens, AccountKind::Wallet, user)
}

/// A user's wallet; one that has never moved money is empty.
pub async fn get(app: &App, platform: &str, user: &str) -> AppResult<pb::Wallet> {
    let account = reads::account(&app.db, &wallet_id(platform, user))
        .await?
        .unwrap_or_else(|| {
            ledger::new_account(
                platform,
                Ledger::Tokens,
                AccountKind::Wallet,
                user,
                Utc::now(),
            )
        });
    let balance = account.credits_posted - account.debits_posted;
    Ok(pb::Wallet {
        user_id: user.to_owned(),
        balance,
        held: account.debits_pending,
        available: balance - account.debits_pending,
    })
}

pub async fn transfers(
    app: &App,
    platform: &str,
    user: &str,
    r: &pb::ListMyWalletTransfersRequest,
) -> AppResult<pb::ListTransfersResponse> {
    let page = Page::parse(r.page_size, &r.page_token)?;
    let id = wallet_id(platform, user);
    let (transfers, next_page_token) = reads::transfers(&app.db, platform, Some(&id), page).await?;
    Ok(pb::ListTransfersResponse {
        transfers,
        next_page_token,
    })
}
