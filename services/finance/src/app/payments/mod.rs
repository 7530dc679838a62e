//! Buying tokens and courses with Razorpay. Products are per platform; so is the Razorpay
//! account, its secrets sealed with SECRET_KEYS. An order is made server-side at the product's
//! price ([`flow::create_order`]); Razorpay then reports the payment through the checkout
//! callback, the webhook and the reconciliation schedule, three paths into one state machine
//! ([`flow::advance`]) that only moves forward and, on capture, queues the one job that grants
//! the product ([`flow::Grants`]).

pub mod flow;
pub mod metrics;
pub mod razorpay;
pub mod reconcile;
pub mod refunds;
pub mod webhook;

use chrono::Utc;
use mas_kit::auth::Principal;
use mas_kit::config::Secret;
use mas_kit::proto::mas::finance::v1 as pb;
use mas_kit::proto::{Capability, Role};
use mas_kit::secrets::{Sealed, SecretKeys};
use pb::ProductKind;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
};

use super::App;
use crate::error::{AppError, AppResult};
use crate::ledger::timestamp;
use crate::store::entities::{payment, product, razorpay_credentials};

pub const TOKEN_PACK: &str = "token_pack";
pub const COURSE: &str = "course";
/// Every price and payment is in Indian rupees (paise).
pub const CURRENCY: &str = "INR";

/// Finance staff: the FINANCE capability, or ADMIN and SUPERADMIN.
pub fn is_staff(p: &Principal) -> bool {
    matches!(p.role, Role::Admin | Role::Superadmin) || p.has_capability(Capability::Finance)
}

/// The GST inside a GST-inclusive price, in paise: the taxable value is the price times
/// 100 / (100 + rate), rounded half up to the paisa, and the GST is the rest, so the two always
/// add up to the price.
pub fn split_gst(price_paise: i64, rate_percent: i32) -> (i64, i64) {
    let rate = i128::from(rate_percent);
    let price = i128::from(price_paise);
    // round(price * 100 / (100 + rate)) = floor((2 * price * 100 + (100 + rate)) / (2 * (100 + rate)))
    let taxable = (2 * price * 100 + (100 + rate)) / (2 * (100 + rate));
    let taxable = i64::try_from(taxable).unwrap_or(price_paise);
    (taxable, price_paise - taxable)
}

fn kind_str(kind: ProductKind) -> AppResult<&'static str> {
    match kind {
        ProductKind::TokenPack => Ok(TOKEN_PACK),
        ProductKind::Course => Ok(COURSE),
        ProductKind::Unspecified => Err(AppError::invalid("kind", "is required")),
    }
}

pub fn kind_pb(kind: &str) -> ProductKind {
    match kind {
        TOKEN_PACK => ProductKind::TokenPack,
        COURSE => ProductKind::Course,
        _ => ProductKind::Unspecified,
    }
}

pub fn product_pb(p: &product::Model) -> pb::Product {
    pb::Product {
        id: p.id.clone(),
        kind: kind_pb(&p.kind) as i32,
        name: p.name.clone(),
        price_paise: p.price_paise,
        gst_rate_percent: p.gst_rate_percent,
        tokens: p.tokens,
        course_id: p.course_id.clone(),
        active: p.active,
        created_at: Some(timestamp(p.created_at)),
        updated_at: Some(timestamp(p.updated_at)),
    }
}

/// A product's kind-specific fields: a token pack grants tokens and names no course; a course
/// product names its course and grants no tokens.
fn kind_fields(kind: ProductKind, tokens: i32, course_id: &str) -> AppResult<(i64, String)> {
    let course = course_id.trim();
    match kind {
        ProductKind::TokenPack if tokens < 1 => Err(AppError::invalid(
            "tokens",
            "a token pack grants at least 1 token",
        )),
        ProductKind::TokenPack if !course.is_empty() => Err(AppError::invalid(
            "courseId",
            "a token pack names no course",
        )),
        ProductKind::TokenPack => Ok((i64::from(tokens), String::new())),
        ProductKind::Course if course.is_empty() => Err(AppError::invalid(
            "courseId",
            "a course product names its lms course",
        )),
        ProductKind::Course if tokens != 0 => Err(AppError::invalid(
            "tokens",
            "a course product grants no tokens",
        )),
        ProductKind::Course => Ok((0, course.to_owned())),
        ProductKind::Unspecified => Err(AppError::invalid("kind", "is required")),
    }
}

pub async fn list_products(
    app: &App,
    platform: &str,
    caller: &Principal,
    include_inactive: bool,
) -> AppResult<pb::ListProductsResponse> {
    if include_inactive && !is_staff(caller) {
        return Err(AppError::Forbidden(
            "only finance staff see retired products".into(),
        ));
    }
    let mut q = product::Entity::find().filter(product::Column::Platform.eq(platform));
    if !include_inactive {
        q = q.filter(product::Column::Active.eq(true));
    }
    let rows = q
        .order_by_asc(product::Column::Kind)
        .order_by_asc(product::Column::PricePaise)
        .order_by_asc(product::Column::Id)
        .all(&app.db)
        .await?;
    Ok(pb::ListProductsResponse {
        products: rows.iter().map(product_pb).collect(),
    })
}

pub async fn create_product(
    app: &App,
    platform: &str,
    r: &pb::CreateProductRequest,
) -> AppResult<pb::Product> {
    let kind = ProductKind::try_from(r.kind).unwrap_or(ProductKind::Unspecified);
    let (tokens, course_id) = kind_fields(kind, r.tokens, &r.course_id)?;
    let now = Utc::now();
    let row = product::ActiveModel {
        platform: Set(platform.to_owned()),
        id: Set(uuid::Uuid::new_v4().to_string()),
        kind: Set(kind_str(kind)?.to_owned()),
        name: Set(r.name.trim().to_owned()),
        price_paise: Set(i64::from(r.price_paise)),
        gst_rate_percent: Set(r.gst_rate_percent),
        tokens: Set(tokens),
        course_id: Set(course_id),
        active: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&app.db)
    .await?;
    tracing::info!(platform, product = %row.id, kind = %row.kind, price_paise = row.price_paise, "product created");
    Ok(product_pb(&row))
}

pub async fn update_product(
    app: &App,
    platform: &str,
    r: &pb::UpdateProductRequest,
) -> AppResult<pb::Product> {
    let current = product::Entity::find_by_id((platform.to_owned(), r.id.clone()))
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound("product"))?;
    let kind = kind_pb(&current.kind);
    let (tokens, course_id) = kind_fields(kind, r.tokens, &r.course_id)?;
    let mut row: product::ActiveModel = current.into();
    row.name = Set(r.name.trim().to_owned());
    row.price_paise = Set(i64::from(r.price_paise));
    row.gst_rate_percent = Set(r.gst_rate_percent);
    row.tokens = Set(tokens);
    row.course_id = Set(course_id);
    row.active = Set(r.active);
    row.updated_at = Set(Utc::now());
    let row = row.update(&app.db).await?;
    tracing::info!(platform, product = %row.id, active = row.active, price_paise = row.price_paise, "product updated");
    Ok(product_pb(&row))
}

/// A platform's Razorpay account, its secrets opened.
pub struct Credentials {
    pub key_id: String,
    pub key_secret: Secret,
    pub webhook_secret: Secret,
}

fn aad(column: &str, platform: &str) -> Vec<u8> {
    format!("razorpay_credentials.{column}:{platform}").into_bytes()
}

fn keys(app: &App) -> AppResult<&SecretKeys> {
    super::secret_keys(app, "Razorpay is")
}

fn settings_pb(row: Option<&razorpay_credentials::Model>) -> pb::RazorpaySettings {
    row.map_or_else(pb::RazorpaySettings::default, |c| pb::RazorpaySettings {
        key_id: c.key_id.clone(),
        key_secret_set: !c.key_secret_sealed.is_empty(),
        webhook_secret_set: !c.webhook_secret_sealed.is_empty(),
        updated_by: c.updated_by.clone(),
        updated_at: Some(timestamp(c.updated_at)),
    })
}

pub async fn settings(app: &App, platform: &str) -> AppResult<pb::RazorpaySettings> {
    let row = razorpay_credentials::Entity::find_by_id(platform.to_owned())
        .one(&app.db)
        .await?;
    Ok(settings_pb(row.as_ref()))
}

pub async fn set_credentials(
    app: &App,
    platform: &str,
    actor: &str,
    r: &pb::SetRazorpayCredentialsRequest,
) -> AppResult<pb::RazorpaySettings> {
    let keys = keys(app)?;
    let key_secret = keys.seal(&r.key_secret, &aad("key_secret", platform))?;
    let webhook_secret = keys.seal(&r.webhook_secret, &aad("webhook_secret", platform))?;
    let row = razorpay_credentials::ActiveModel {
        platform: Set(platform.to_owned()),
        key_id: Set(r.key_id.clone()),
        key_secret_sealed: Set(key_secret.as_str().to_owned()),
        webhook_secret_sealed: Set(webhook_secret.as_str().to_owned()),
        updated_by: Set(actor.to_owned()),
        updated_at: Set(Utc::now()),
    };
    let exists = razorpay_credentials::Entity::find_by_id(platform.to_owned())
        .one(&app.db)
        .await?
        .is_some();
    let row = if exists {
        row.update(&app.db).await?
    } else {
        row.insert(&app.db).await?
    };
    tracing::info!(platform, key_id = %row.key_id, actor, "Razorpay credentials set");
    Ok(settings_pb(Some(&row)))
}

fn open_row(keys: &SecretKeys, row: &razorpay_credentials::Model) -> AppResult<Credentials> {
    let open = |sealed: &str, column: &str| {
        keys.open(&Sealed::new(sealed), &aad(column, &row.platform))
            .map_err(|e| {
                tracing::error!(platform = %row.platform, column, error = %e, "Razorpay credentials do not open");
                AppError::Unavailable(
                    "Razorpay's credentials for this platform cannot be opened; set them again"
                        .into(),
                )
            })
    };
    Ok(Credentials {
        key_id: row.key_id.clone(),
        key_secret: open(&row.key_secret_sealed, "key_secret")?,
        webhook_secret: open(&row.webhook_secret_sealed, "webhook_secret")?,
    })
}

/// The platform's Razorpay account, or 503 when it has none.
pub async fn credentials(app: &App, platform: &str) -> AppResult<Credentials> {
    let keys = keys(app)?;
    let row = razorpay_credentials::Entity::find_by_id(platform.to_owned())
        .one(&app.db)
        .await?
        .ok_or_else(|| {
            AppError::Precondition(
                "payments are not set up on this platform: finance staff set its Razorpay account first".into(),
            )
        })?;
    open_row(keys, &row)
}

/// Every platform's Razorpay account (the webhook finds its platform by the secret that
/// verifies it). A row that does not open is skipped, and logged.
pub async fn all_credentials(app: &App) -> AppResult<Vec<(String, Credentials)>> {
    let keys = keys(app)?;
    let rows = razorpay_credentials::Entity::find().all(&app.db).await?;
    Ok(rows
        .iter()
        .filter_map(|r| open_row(keys, r).ok().map(|c| (r.platform.clone(), c)))
        .collect())
}

/// `/health/ready`'s `razorpay`: degraded, with the reason, while no platform has an account
/// or when Razorpay's API last failed; healthy otherwise.
pub async fn health(app: &App) -> mas_kit::health::Outcome {
    let configured = razorpay_credentials::Entity::find()
        .count(&app.db)
        .await
        .map_err(|e| e.to_string())?;
    if configured == 0 {
        return Ok(Some("not configured".into()));
    }
    if app.cfg.secret_keys.is_none() {
        return Err("SECRET_KEYS is not set: the Razorpay credentials cannot be opened".into());
    }
    match app.razorpay.last_call() {
        Some(l) if !l.ok => Err(format!(
            "last call failed: {} at {}",
            l.detail,
            l.at.to_rfc3339()
        )),
        _ => Ok(None),
    }
}

pub fn payment_pb(p: &payment::Model) -> pb::Payment {
    pb::Payment {
        id: p.id.clone(),
        user_id: p.user_id.clone(),
        product_id: p.product_id.clone(),
        product_kind: kind_pb(&p.product_kind) as i32,
        product_name: p.product_name.clone(),
        amount_paise: p.amount_paise,
        taxable_paise: p.taxable_paise,
        gst_paise: p.gst_paise,
        gst_rate_percent: p.gst_rate_percent,
        currency: p.currency.clone(),
        tokens: p.tokens,
        course_id: p.course_id.clone(),
        state: flow::State::parse(&p.state).map_or(pb::PaymentState::Unspecified, flow::State::pb)
            as i32,
        razorpay_order_id: p.razorpay_order_id.clone(),
        key_id: p.key_id.clone(),
        razorpay_payment_id: p.razorpay_payment_id.clone(),
        failure_reason: p.failure_reason.clone(),
        granted_at: p.granted_at.map(timestamp),
        created_at: Some(timestamp(p.created_at)),
        updated_at: Some(timestamp(p.updated_at)),
        billing: Some(pb::BillingDetails {
            name: p.billing_name.clone(),
            state_code: p.billing_state.clone(),
            gstin: p.billing_gstin.clone(),
            email: p.billing_email.clone(),
        }),
        invoice_id: p.invoice_id.clone(),
        invoice_number: p.invoice_number.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gst_inside_a_price_rounds_half_up_and_adds_back_to_the_price() {
        // 118.00 at 18%: exactly 100.00 + 18.00.
        assert_eq!(split_gst(11_800, 18), (10_000, 1_800));
        // 499.00 at 18%: 42288.135... -> 42288, GST 7612.
        assert_eq!(split_gst(49_900, 18), (42_288, 7_612));
        // 1.00 at 5%: 95.238 -> 95.
        assert_eq!(split_gst(100, 5), (95, 5));
        // A half paisa rounds up: 0.16 at 28% is 12.5 paise taxable -> 13.
        assert_eq!(split_gst(16, 28), (13, 3));
        // 0% leaves it all taxable.
        assert_eq!(split_gst(12_345, 0), (12_345, 0));
        for price in [100, 101, 999, 49_999, 100_000_000] {
            for rate in [0, 5, 12, 18, 28] {
                let (t, g) = split_gst(price, rate);
                assert_eq!(t + g, price);
                assert!(t >= 0 && g >= 0);
                // Within half a paisa of the exact value.
                let exact = price as f64 * 100.0 / f64::from(100 + rate);
                assert!((t as f64 - exact).abs() <= 0.5, "{price} at {rate}%");
            }
        }
    }

    #[test]
    fn a_products_fields_follow_its_kind() {
        assert!(kind_fields(ProductKind::TokenPack, 10, "").is_ok());
        assert!(kind_fields(ProductKind::TokenPack, 0, "").is_err());
        assert!(kind_fields(ProductKind::TokenPack, 10, "c1").is_err());
        assert_eq!(
            kind_fields(ProductKind::Course, 0, " c1 ").unwrap(),
            (0, "c1".to_owned())
        );
        assert!(kind_fields(ProductKind::Course, 0, "").is_err());
        assert!(kind_fields(ProductKind::Course, 5, "c1").is_err());
        assert!(kind_fields(ProductKind::Unspecified, 5, "").is_err());
    }
}
