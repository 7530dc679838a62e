//! The local store's signed URLs, served by the service that signed them (`/storage/<key>` on its
//! public HTTP port): a PUT is written to a temporary file and renamed into place once whole (or
//! dropped past the size limit), a GET streams the file with the media type of its extension.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::{Op, Refused, Storage, media_for_key};

/// The query of a signed URL.
#[derive(Deserialize)]
pub struct Signed {
    op: String,
    exp: i64,
    sig: String,
}

fn problem(status: StatusCode, detail: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        serde_json::json!({"type": "about:blank", "title": status.canonical_reason().unwrap_or(""), "status": status.as_u16(), "detail": detail}).to_string(),
    )
        .into_response()
}

/// The state of the two routes.
pub struct StorageRoutes {
    pub storage: Storage,
    /// The largest object accepted.
    pub max_bytes: u64,
}

fn authorize(
    s: &StorageRoutes,
    op: Op,
    key: &str,
    q: &Signed,
) -> Result<std::path::PathBuf, Refused> {
    if q.op != op.as_str() {
        return Err(Refused::WrongMethod);
    }
    s.storage.local_authorize(op, key, q.exp, &q.sig)
}

/// `PUT /storage/{*key}`.
pub async fn put_object(
    State(s): State<Arc<StorageRoutes>>,
    Path(key): Path<String>,
    Query(q): Query<Signed>,
    body: Body,
) -> Response {
    let path = match authorize(&s, Op::Put, &key, &q) {
        Ok(p) => p,
        Err(why) => return problem(StatusCode::FORBIDDEN, &why.to_string()),
    };
    let write = async {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let tmp = path.with_extension("part");
        let mut file = tokio::fs::File::create(&tmp).await?;
        let mut stream = body.into_data_stream();
        let mut size: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(std::io::Error::other)?;
            size += chunk.len() as u64;
            if size > s.max_bytes {
                drop(file);
                let _ = tokio::fs::remove_file(&tmp).await;
                return Ok(None);
            }
            file.write_all(&chunk).await?;
        }
        file.sync_all().await?;
        tokio::fs::rename(&tmp, &path).await?;
        Ok::<_, std::io::Error>(Some(size))
    };
    match write.await {
        Ok(Some(size)) => {
            tracing::info!(key = %key, size, "object stored");
            StatusCode::OK.into_response()
        }
        Ok(None) => problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the object is larger than {} bytes", s.max_bytes),
        ),
        Err(e) => {
            tracing::error!(key = %key, error = %e, "object not stored");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the object could not be stored",
            )
        }
    }
}

/// `GET /storage/{*key}`.
pub async fn get_object(
    State(s): State<Arc<StorageRoutes>>,
    Path(key): Path<String>,
    Query(q): Query<Signed>,
) -> Response {
    let path = match authorize(&s, Op::Get, &key, &q) {
        Ok(p) => p,
        Err(why) => return problem(StatusCode::FORBIDDEN, &why.to_string()),
    };
    let Ok(file) = tokio::fs::File::open(&path).await else {
        return problem(StatusCode::NOT_FOUND, "no such object");
    };
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    (
        [
            (header::CONTENT_TYPE, media_for_key(&key).to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(file)),
    )
        .into_response()
}
