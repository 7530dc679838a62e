//! Mentor profiles: EXPERT users describe themselves; everyone on the platform browses the
//! visible ones.

use chrono::Utc;
use mas_kit::auth::Principal;
use mas_kit::paging::Page;
use mas_kit::proto::mas::meetings::v1 as pb;
use sea_orm::sea_query::{Expr, ExprTrait, Func, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{App, is_admin, timestamp};
use crate::error::{AppError, AppResult};
use crate::store::entities::mentor;

fn list_field(field: &'static str, items: &[String], max: usize) -> AppResult<Vec<String>> {
    if items.len() > max {
        return Err(AppError::invalid(field, format!("at most {max} entries")));
    }
    items
        .iter()
        .map(|s| {
            let s = s.trim();
            if s.is_empty() || s.chars().count() > 60 {
                Err(AppError::invalid(field, "entries are 1 to 60 characters"))
            } else {
                Ok(s.to_owned())
            }
        })
        .collect()
}

pub fn parse_tz(tz: &str) -> AppResult<chrono_tz::Tz> {
    tz.parse()
        .map_err(|_| AppError::invalid("timeZone", format!("{tz:?} is not an IANA time zone")))
}

pub fn to_pb(m: mentor::Model) -> pb::Mentor {
    pb::Mentor {
        user_id: m.user_id,
        name: m.name,
        bio: m.bio,
        expertise: serde_json::from_str(&m.expertise).unwrap_or_default(),
        languages: serde_json::from_str(&m.languages).unwrap_or_default(),
        time_zone: m.time_zone,
        visible: m.visible,
        updated_at: Some(timestamp(m.updated_at)),
        price_tokens: i32::try_from(m.price_tokens).unwrap_or(i32::MAX),
    }
}

pub async fn put(
    app: &App,
    platform: &str,
    user: &str,
    r: pb::PutMyProfileRequest,
) -> AppResult<pb::Mentor> {
    let name = r.name.trim();
    if name.is_empty() || name.chars().count() > 120 {
        return Err(AppError::invalid("name", "is 1 to 120 characters"));
    }
    if r.bio.chars().count() > 4000 {
        return Err(AppError::invalid("bio", "is at most 4000 characters"));
    }
    let expertise = list_field("expertise", &r.expertise, 20)?;
    let languages = list_field("languages", &r.languages, 10)?;
    parse_tz(&r.time_zone)?;
    if !(0..=100_000).contains(&r.price_tokens) {
        return Err(AppError::invalid("priceTokens", "is 0 to 100000 tokens"));
    }
    let now = Utc::now();
    let row = mentor::ActiveModel {
        platform: sea_orm::Set(platform.to_owned()),
        user_id: sea_orm::Set(user.to_owned()),
        name: sea_orm::Set(name.to_owned()),
        bio: sea_orm::Set(r.bio),
        expertise: sea_orm::Set(json_list(&expertise)),
        languages: sea_orm::Set(json_list(&languages)),
        time_zone: sea_orm::Set(r.time_zone),
        visible: sea_orm::Set(r.visible),
        price_tokens: sea_orm::Set(i64::from(r.price_tokens)),
        created_at: sea_orm::Set(now),
        updated_at: sea_orm::Set(now),
    };
    mentor::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([mentor::Column::Platform, mentor::Column::UserId])
                .update_columns([
                    mentor::Column::Name,
                    mentor::Column::Bio,
                    mentor::Column::Expertise,
                    mentor::Column::Languages,
                    mentor::Column::TimeZone,
                    mentor::Column::Visible,
                    mentor::Column::PriceTokens,
                    mentor::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec(&app.db)
        .await?;
    find(app, platform, user).await.map(to_pb)
}

fn json_list(items: &[String]) -> String {
    serde_json::Value::from(items.to_vec()).to_string()
}

pub async fn find(app: &App, platform: &str, user: &str) -> AppResult<mentor::Model> {
    mentor::Entity::find_by_id((platform.to_owned(), user.to_owned()))
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound("mentor"))
}

/// A hidden profile is seen by its owner and admins only.
pub async fn get(app: &App, caller: &Principal, user: &str) -> AppResult<pb::Mentor> {
    super::require_id("userId", user)?;
    let m = find(app, &caller.platform, user).await?;
    if !m.visible && m.user_id != caller.subject && !is_admin(caller) {
        return Err(AppError::NotFound("mentor"));
    }
    Ok(to_pb(m))
}

/// A filter value goes into a LIKE pattern: only plain words are accepted.
fn filter_word(field: &'static str, v: &str) -> AppResult<String> {
    if v.chars().count() > 60 || v.chars().any(|c| matches!(c, '%' | '_' | '\\' | '"')) {
        return Err(AppError::invalid(
            field,
            "is up to 60 characters without % _ \\ or \"",
        ));
    }
    Ok(v.trim().to_lowercase())
}

pub async fn list(
    app: &App,
    platform: &str,
    r: pb::ListMentorsRequest,
) -> AppResult<pb::ListMentorsResponse> {
    let page = Page::parse(r.page_size, &r.page_token)?;
    let mut q = mentor::Entity::find()
        .filter(mentor::Column::Platform.eq(platform))
        .filter(mentor::Column::Visible.eq(true));
    let lower = |c: mentor::Column| Expr::expr(Func::lower(Expr::col(c)));
    if !r.expertise.is_empty() {
        let w = filter_word("expertise", &r.expertise)?;
        q = q.filter(lower(mentor::Column::Expertise).like(format!("%\"{w}\"%")));
    }
    if !r.language.is_empty() {
        let w = filter_word("language", &r.language)?;
        q = q.filter(lower(mentor::Column::Languages).like(format!("%\"{w}\"%")));
    }
    if !r.q.is_empty() {
        let w = filter_word("q", &r.q)?;
        q = q.filter(
            lower(mentor::Column::Name)
                .like(format!("%{w}%"))
                .or(lower(mentor::Column::Bio).like(format!("%{w}%"))),
        );
    }
    let rows = q
        .order_by_asc(mentor::Column::Name)
        .order_by_asc(mentor::Column::UserId)
        .offset(page.offset)
        .limit(page.limit())
        .all(&app.db)
        .await?;
    let (rows, next_page_token) = page.split(rows);
    Ok(pb::ListMentorsResponse {
        mentors: rows.into_iter().map(to_pb).collect(),
        next_page_token,
    })
}
