//! WhatsApp's rules for messages a business sends (Cloud API): a message the business starts
//! must be an approved template (name, language, body parameters); free text is allowed only
//! inside the 24-hour customer-service window that the recipient's own last message opens. The
//! inbound side records when each number last wrote ([`record_inbound`]; a webhook route will
//! call it), and free text to a number without a message in the window is refused.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use crate::error::{AppError, AppResult};
use crate::store::entities::whatsapp_inbound;

/// How long after a recipient's message free text may be sent to them.
pub const WINDOW: Duration = Duration::hours(24);

/// A phone number in E.164 form (`+919876543210`), as deliveries and the window store it.
pub fn valid_phone(phone: &str) -> bool {
    phone.starts_with('+')
        && phone.len() >= 8
        && phone.len() <= 16
        && phone[1..].bytes().all(|b| b.is_ascii_digit())
}

/// Records that `phone` wrote to `platform`'s WhatsApp number at `at` (keeps the latest).
pub async fn record_inbound<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    phone: &str,
    at: DateTime<Utc>,
) -> AppResult<()> {
    if platform.trim().is_empty() {
        return Err(AppError::invalid("platform", "is required"));
    }
    // The Cloud API's webhook gives `from` without the '+'.
    let phone = if phone.starts_with('+') {
        phone.to_owned()
    } else {
        format!("+{phone}")
    };
    if !valid_phone(&phone) {
        return Err(AppError::invalid(
            "phone",
            "expected a phone number in E.164 form (+919876543210)",
        ));
    }
    whatsapp_inbound::Entity::insert(whatsapp_inbound::ActiveModel {
        platform: Set(platform.to_owned()),
        phone: Set(phone),
        last_at: Set(at),
    })
    .on_conflict(
        OnConflict::columns([
            whatsapp_inbound::Column::Platform,
            whatsapp_inbound::Column::Phone,
        ])
        .update_column(whatsapp_inbound::Column::LastAt)
        // A late, older event does not move the window back.
        .action_and_where(
            Expr::col((whatsapp_inbound::Entity, whatsapp_inbound::Column::LastAt)).lt(at),
        )
        .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// When `phone` last wrote to the platform, if it did.
pub async fn last_inbound<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    phone: &str,
) -> AppResult<Option<DateTime<Utc>>> {
    Ok(whatsapp_inbound::Entity::find()
        .filter(whatsapp_inbound::Column::Platform.eq(platform))
        .filter(whatsapp_inbound::Column::Phone.eq(phone))
        .one(db)
        .await?
        .map(|r| r.last_at))
}

/// Refuses free text to `phone` unless it wrote within the window before `now`.
pub async fn check_window<C: ConnectionTrait>(
    db: &C,
    platform: &str,
    phone: &str,
    now: DateTime<Utc>,
) -> AppResult<()> {
    match last_inbound(db, platform, phone).await? {
        Some(at) if now - at < WINDOW => Ok(()),
        last => Err(AppError::Precondition(format!(
            "WhatsApp free text is only allowed within 24 hours of the recipient's last message \
             ({}); a message the business starts must be an approved template: set the \
             template's whatsappTemplate and whatsappLanguage",
            match last {
                Some(at) => format!("last message {}", at.format("%Y-%m-%d %H:%M UTC")),
                None => "none received".to_owned(),
            }
        ).into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_e164() {
        assert!(valid_phone("+919876543210"));
        for bad in [
            "919876543210",
            "+91 98765",
            "+12",
            "+1234567890123456",
            "+91abc45678",
        ] {
            assert!(!valid_phone(bad), "{bad}");
        }
    }
}
