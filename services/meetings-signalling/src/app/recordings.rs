//! Recordings: the mentor uploads straight to object storage with a presigned URL; metadata
//! lives here; playback URLs are short-lived and only for the meeting's participants and admins.

use chrono::Utc;
use mas_kit::auth::Principal;
use mas_kit::proto::mas::meetings::v1 as pb;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::meetings::{self, Part};
use super::{App, new_id, timestamp};
use crate::error::{AppError, AppResult};
use crate::storage::{self, Op};
use crate::store::entities::recording;

pub const PENDING: &str = "pending";
pub const AVAILABLE: &str = "available";

fn to_pb(r: recording::Model) -> pb::Recording {
    pb::Recording {
        id: r.id,
        meeting_id: r.meeting_id,
        status: r.status,
        content_type: r.content_type,
        size_bytes: r.size_bytes,
        created_at: Some(timestamp(r.created_at)),
    }
}

pub async fn create_upload(
    app: &App,
    caller: &Principal,
    r: pb::CreateRecordingUploadRequest,
) -> AppResult<pb::RecordingUpload> {
    let (m, part) = meetings::find_for(app, caller, &r.meeting_id).await?;
    if part != Part::Mentor {
        return Err(AppError::Forbidden(
            "only the meeting's mentor uploads recordings".into(),
        ));
    }
    if !matches!(m.status.as_str(), meetings::LIVE | meetings::ENDED) {
        return Err(AppError::Precondition(
            format!(
                "recordings are for live or ended meetings; this one is {}",
                m.status
            )
            .into(),
        ));
    }
    let policy = storage::recordings(&app.cfg);
    let (content_type, ext) = policy.media(&r.content_type)?;
    let id = new_id();
    let key = storage::object_key(&m.platform, &[&m.id], &id, ext)?;
    let now = Utc::now();
    let row = recording::Entity::insert(recording::ActiveModel {
        id: Set(id),
        platform: Set(m.platform.clone()),
        meeting_id: Set(m.id.clone()),
        object_key: Set(key.clone()),
        content_type: Set(content_type.to_owned()),
        status: Set(PENDING.to_owned()),
        size_bytes: Set(0),
        created_by: Set(caller.subject.clone()),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_with_returning(&app.db)
    .await?;
    let ttl = policy.url_ttl;
    Ok(pb::RecordingUpload {
        upload_url: app.storage.presign(Op::Put, &key, ttl),
        expires_at: Some(timestamp(
            now + chrono::Duration::from_std(ttl).unwrap_or_default(),
        )),
        recording: Some(to_pb(row)),
    })
}

/// The recording and the caller's part in its meeting (strangers: not found / forbidden).
async fn find_for(app: &App, caller: &Principal, id: &str) -> AppResult<(recording::Model, Part)> {
    super::require_id("recordingId", id)?;
    let r = recording::Entity::find_by_id(id)
        .filter(recording::Column::Platform.eq(&caller.platform))
        .one(&app.db)
        .await?
        .ok_or(AppError::NotFound("recording"))?;
    let (_, part) = meetings::find_for(app, caller, &r.meeting_id).await?;
    // Nothing is signed for a key outside this platform's and meeting's objects.
    if !storage::owned_by(&r.object_key, &r.platform, &[&r.meeting_id]) {
        tracing::error!(recording = %r.id, "a recording row names another meeting's object");
        return Err(AppError::internal(
            "the recording's object key is not its meeting's",
        ));
    }
    Ok((r, part))
}

pub async fn complete(app: &App, caller: &Principal, id: &str) -> AppResult<pb::Recording> {
    let (r, part) = find_for(app, caller, id).await?;
    if part != Part::Mentor {
        return Err(AppError::Forbidden(
            "only the meeting's mentor completes uploads".into(),
        ));
    }
    let started = std::time::Instant::now();
    let size = app.storage.size(&r.object_key).await;
    if app.storage.kind() == "s3" {
        let elapsed = started.elapsed().as_secs_f64();
        app.metrics.observe_external("s3", size.is_ok(), elapsed);
    }
    let size =
        size?.ok_or_else(|| AppError::Precondition("nothing has been uploaded yet".into()))?;
    recording::Entity::update_many()
        .col_expr(recording::Column::Status, Expr::value(AVAILABLE))
        .col_expr(recording::Column::SizeBytes, Expr::value(size as i64))
        .col_expr(recording::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(recording::Column::Id.eq(&r.id))
        .exec(&app.db)
        .await?;
    tracing::info!(recording = %r.id, meeting = %r.meeting_id, size, "recording available");
    let (r, _) = find_for(app, caller, id).await?;
    Ok(to_pb(r))
}

pub async fn list(
    app: &App,
    caller: &Principal,
    meeting_id: &str,
) -> AppResult<pb::ListRecordingsResponse> {
    let (m, _) = meetings::find_for(app, caller, meeting_id).await?;
    let rows = recording::Entity::find()
        .filter(recording::Column::MeetingId.eq(&m.id))
        .order_by_asc(recording::Column::CreatedAt)
        .all(&app.db)
        .await?;
    Ok(pb::ListRecordingsResponse {
        recordings: rows.into_iter().map(to_pb).collect(),
    })
}

pub async fn playback(app: &App, caller: &Principal, id: &str) -> AppResult<pb::RecordingPlayback> {
    let (r, _) = find_for(app, caller, id).await?;
    if r.status != AVAILABLE {
        return Err(AppError::Precondition(
            "the recording is not uploaded yet".into(),
        ));
    }
    let ttl = app.cfg.recording_url_ttl;
    Ok(pb::RecordingPlayback {
        url: app.storage.presign(Op::Get, &r.object_key, ttl),
        expires_at: Some(timestamp(
            Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default(),
        )),
    })
}
