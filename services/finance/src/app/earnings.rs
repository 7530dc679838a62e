//! A mentor's earnings: one entry per paid meeting (a booking hold posted to the mentor), newest
//! first, in tokens and in INR at the rate when it was paid, and the totals over all of them.
//! The mentor reads their own (`/api/mentor-earnings`); finance staff read anyone's.

use mas_kit::paging::Page;
use mas_kit::proto::mas::finance::v1 as pb;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::App;
use super::bookings::POSTED;
use crate::error::AppResult;
use crate::ledger::timestamp;
use crate::store::entities::booking_hold;

fn earning(h: booking_hold::Model) -> pb::Earning {
    pb::Earning {
        booking_id: h.booking_id,
        student_id: h.student_id,
        tokens: h.tokens,
        commission_tokens: h.commission_tokens,
        mentor_tokens: h.mentor_tokens,
        mentor_paise: h.mentor_paise,
        outcome: h.outcome,
        meeting_ends_at: Some(timestamp(h.ends_at)),
        paid_at: Some(timestamp(h.updated_at)),
        payout_id: h.payout_id.unwrap_or_default(),
    }
}

pub async fn list(
    app: &App,
    platform: &str,
    mentor: &str,
    page_size: i32,
    page_token: &str,
) -> AppResult<pb::ListEarningsResponse> {
    let page = Page::parse(page_size, page_token)?;
    let paid = || {
        booking_hold::Entity::find()
            .filter(booking_hold::Column::Platform.eq(platform))
            .filter(booking_hold::Column::MentorId.eq(mentor))
            .filter(booking_hold::Column::State.eq(POSTED))
    };
    let rows = paid()
        .order_by_desc(booking_hold::Column::UpdatedAt)
        .order_by_desc(booking_hold::Column::BookingId)
        .offset(page.offset)
        .limit(page.limit())
        .all(&app.db)
        .await?;
    let (rows, next_page_token) = page.split(rows);
    // SUM of a BIGINT is NUMERIC on Postgres: cast back, on both backends.
    let (total_mentor_tokens, total_mentor_paise): (i64, i64) = paid()
        .select_only()
        .column_as(
            Expr::cust("CAST(COALESCE(SUM(mentor_tokens), 0) AS BIGINT)"),
            "tokens",
        )
        .column_as(
            Expr::cust("CAST(COALESCE(SUM(mentor_paise), 0) AS BIGINT)"),
            "paise",
        )
        .into_tuple()
        .one(&app.db)
        .await?
        .unwrap_or((0, 0));
    Ok(pb::ListEarningsResponse {
        earnings: rows.into_iter().map(earning).collect(),
        next_page_token,
        total_mentor_tokens,
        total_mentor_paise,
    })
}
