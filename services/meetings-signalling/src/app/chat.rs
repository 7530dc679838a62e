//! Chat as a use case: the lines replayed to a participant who joins (or is restored into) a
//! room. Lines are written by the signalling chat writer (`signal::chat`).

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::app::App;
use crate::error::AppResult;
use crate::store::entities::chat_message;

/// The meeting's last `CHAT_REPLAY` chat lines, oldest first.
pub async fn replay(app: &App, meeting_id: &str) -> AppResult<Vec<chat_message::Model>> {
    let mut lines = chat_message::Entity::find()
        .filter(chat_message::Column::MeetingId.eq(meeting_id))
        .order_by_desc(chat_message::Column::SentAt)
        .order_by_desc(chat_message::Column::Id)
        .limit(app.cfg.chat_replay)
        .all(&app.db)
        .await?;
    lines.reverse();
    Ok(lines)
}
