//! Uploads and downloads through object storage, for any service that keeps files (recordings,
//! resumes, invoices): clients send and fetch the bytes straight from the store with short-lived
//! presigned URLs, so the service never carries them. In production S3 or any S3-compatible
//! store (SigV4 presigning); in `mas dev` a local directory, for which the service signs its own
//! URLs (HMAC-SHA256) and serves them with [`http`].
//!
//! A [`Policy`] says which media types an upload may have (and the file extension each is kept
//! under) and how large it may be; object keys are the service's own
//! (`<platform>/<owner>/<id>.<ext>`, [`object_key`]), and [`owned_by`] checks that a key lies
//! under the caller's platform and owner before anything is signed for it.
//!
//! ```ignore
//! const RESUMES: Policy = Policy {
//!     media: &[("application/pdf", "pdf")],
//!     max_bytes: 5 << 20,
//!     url_ttl: std::time::Duration::from_secs(600),
//! };
//! let (media, ext) = RESUMES.media("application/pdf")?;
//! let key = object_key(platform, &[job_id], &application_id, ext)?;
//! let url = storage.presign(Op::Put, &key, RESUMES.url_ttl);
//! ```

pub mod http;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::Secret;
use crate::error::{AppError, AppResult};

/// Where a service's objects live.
#[derive(Clone, Debug)]
pub enum StorageConfig {
    /// A local directory; the service signs its own short-lived URLs (HMAC) and serves them.
    Local { dir: PathBuf, signing_key: Secret },
    /// S3 or any S3-compatible store: presigned URLs (SigV4).
    S3 {
        endpoint: String,
        bucket: String,
        region: String,
        access_key_id: String,
        secret_access_key: Secret,
        /// `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key`.
        path_style: bool,
    },
}

/// What an upload may be.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Allowed media types, each with the extension its objects are kept under; the first is
    /// the default when a client names none.
    pub media: &'static [(&'static str, &'static str)],
    /// The largest object accepted (the local store enforces it while receiving).
    pub max_bytes: u64,
    /// How long a presigned URL stays valid.
    pub url_ttl: Duration,
}

impl Policy {
    /// The allowed media type (and its extension) a client asked for; empty means the default.
    /// Anything else is `InvalidArgument` on `contentType`, listing what is allowed.
    pub fn media(&self, requested: &str) -> AppResult<(&'static str, &'static str)> {
        let found = if requested.is_empty() {
            self.media.first()
        } else {
            self.media.iter().find(|(t, _)| *t == requested)
        };
        found.copied().ok_or_else(|| {
            let allowed: Vec<&str> = self.media.iter().map(|(t, _)| *t).collect();
            AppError::invalid("contentType", format!("is one of {}", allowed.join(", ")))
        })
    }
}

/// The media type an object is served with, from its key's extension.
pub fn media_for_key(key: &str) -> &'static str {
    match key.rsplit_once('.').map(|(_, ext)| ext) {
        Some("webm") => "video/webm",
        Some("mp4") => "video/mp4",
        Some("weba") => "audio/webm",
        Some("pdf") => "application/pdf",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Some("csv") => "text/csv",
        Some("png") => "image/png",
        Some("jpg") => "image/jpeg",
        _ => "application/octet-stream",
    }
}

/// An object key a service owns: `<platform>/<owner...>/<id>.<ext>`, every part checked.
pub fn object_key(platform: &str, owner: &[&str], id: &str, ext: &str) -> AppResult<String> {
    let mut key = String::from(platform);
    for part in owner {
        key.push('/');
        key.push_str(part);
    }
    key.push('/');
    key.push_str(id);
    key.push('.');
    key.push_str(ext);
    let part_ok = |p: &str| valid_key(p) && !p.contains('/');
    let parts_ok =
        part_ok(platform) && owner.iter().all(|p| part_ok(p)) && part_ok(id) && part_ok(ext);
    if !parts_ok || !valid_key(&key) {
        return Err(AppError::internal(format!("not an object key: {key:?}")));
    }
    Ok(key)
}

/// Whether `key` is one of this platform's and owner's objects (the owner check before a URL is
/// signed for a key read from a row).
pub fn owned_by(key: &str, platform: &str, owner: &[&str]) -> bool {
    let mut prefix = String::from(platform);
    for part in owner {
        prefix.push('/');
        prefix.push_str(part);
    }
    prefix.push('/');
    valid_key(key) && key.starts_with(&prefix) && !key[prefix.len()..].contains('/')
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Put,
    Get,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
        }
    }
}

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("the local store: {0}")]
    Local(#[from] std::io::Error),
    #[error("the object store: {0}")]
    Remote(#[from] crate::http::Error),
    #[error("the object store answered HTTP {0} to HEAD")]
    Status(u16),
    #[error("{0}")]
    Config(String),
}

impl From<StorageError> for AppError {
    fn from(e: StorageError) -> Self {
        AppError::Internal(e.to_string())
    }
}

/// Why a local signed URL was refused (403).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not served here")]
    NotLocal,
    #[error("bad object key")]
    BadKey,
    #[error("the link has expired")]
    Expired,
    #[error("bad signature")]
    BadSignature,
    #[error("the link is not for this method")]
    WrongMethod,
}

/// The S3 backend's signer and its client for HEAD requests.
#[derive(Clone)]
pub struct S3 {
    bucket: Bucket,
    credentials: Credentials,
    http: crate::http::Client,
}

#[derive(Clone)]
pub enum Storage {
    Local {
        dir: PathBuf,
        key: Secret,
        /// Where the service serves the local store (its public URL, or the bound address).
        base_url: String,
    },
    S3(Box<S3>),
}

/// Object keys are ours; anything else is refused before it reaches a path or a URL.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 512
        && !key.starts_with('/')
        && !key
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
}

impl Storage {
    pub fn new(cfg: &StorageConfig, base_url: String) -> Result<Self, StorageError> {
        Ok(match cfg {
            StorageConfig::Local { dir, signing_key } => Storage::Local {
                dir: dir.clone(),
                key: signing_key.clone(),
                base_url,
            },
            StorageConfig::S3 {
                endpoint,
                bucket,
                region,
                access_key_id,
                secret_access_key,
                path_style,
            } => {
                let url = endpoint
                    .parse()
                    .map_err(|e| StorageError::Config(format!("S3_ENDPOINT: {e}")))?;
                let style = if *path_style {
                    UrlStyle::Path
                } else {
                    UrlStyle::VirtualHost
                };
                Storage::S3(Box::new(S3 {
                    bucket: Bucket::new(url, style, bucket.clone(), region.clone())
                        .map_err(|e| StorageError::Config(format!("S3 bucket: {e}")))?,
                    credentials: Credentials::new(
                        access_key_id.clone(),
                        secret_access_key.expose().to_owned(),
                    ),
                    http: crate::http::Client::new()?,
                }))
            }
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Storage::Local { .. } => "local",
            Storage::S3(_) => "s3",
        }
    }

    /// A URL that allows `op` on `key` until `ttl` from now.
    pub fn presign(&self, op: Op, key: &str, ttl: Duration) -> String {
        match self {
            Storage::Local {
                key: secret,
                base_url,
                ..
            } => {
                let exp = chrono::Utc::now().timestamp()
                    + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
                let sig = hex::encode(local_signature(secret, op, key, exp).as_ref());
                format!(
                    "{base_url}/storage/{key}?op={}&exp={exp}&sig={sig}",
                    op.as_str()
                )
            }
            Storage::S3(s3) => match op {
                Op::Put => s3
                    .bucket
                    .put_object(Some(&s3.credentials), key)
                    .sign(ttl)
                    .to_string(),
                Op::Get => s3
                    .bucket
                    .get_object(Some(&s3.credentials), key)
                    .sign(ttl)
                    .to_string(),
            },
        }
    }

    /// The object's size if it exists.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        match self {
            Storage::Local { dir, .. } => match tokio::fs::metadata(dir.join(key)).await {
                Ok(m) => Ok(Some(m.len())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            },
            Storage::S3(s3) => {
                let url = s3
                    .bucket
                    .head_object(Some(&s3.credentials), key)
                    .sign(Duration::from_secs(60));
                // A HEAD is idempotent: the kit's client retries it on 503 (S3's SlowDown).
                let reply = s3
                    .http
                    .head("s3", url.as_str())
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await?;
                match reply.status.as_u16() {
                    200 => Ok(Some(
                        reply
                            .headers
                            .get(::http::header::CONTENT_LENGTH)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0),
                    )),
                    404 => Ok(None),
                    s => Err(StorageError::Status(s)),
                }
            }
        }
    }

    /// Local backend: checks a signed URL's query; `Ok(path)` is the file it allows `op` on.
    pub fn local_authorize(
        &self,
        op: Op,
        key: &str,
        exp: i64,
        sig: &str,
    ) -> Result<PathBuf, Refused> {
        let Storage::Local {
            dir, key: secret, ..
        } = self
        else {
            return Err(Refused::NotLocal);
        };
        if !valid_key(key) {
            return Err(Refused::BadKey);
        }
        if exp < chrono::Utc::now().timestamp() {
            return Err(Refused::Expired);
        }
        let tag = hex::decode(sig).map_err(|_| Refused::BadSignature)?;
        let hmac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose().as_bytes());
        // Constant time.
        ring::hmac::verify(&hmac, &signed_text(op, key, exp), &tag)
            .map_err(|_| Refused::BadSignature)?;
        Ok(dir.join(Path::new(key)))
    }
}

fn signed_text(op: Op, key: &str, exp: i64) -> Vec<u8> {
    format!("{}\n{key}\n{exp}", op.as_str()).into_bytes()
}

fn local_signature(secret: &Secret, op: Op, key: &str, exp: i64) -> ring::hmac::Tag {
    let hmac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose().as_bytes());
    ring::hmac::sign(&hmac, &signed_text(op, key, exp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Storage {
        Storage::Local {
            dir: "/tmp/x".into(),
            key: Secret::new("k".repeat(32)),
            base_url: "http://h".into(),
        }
    }

    const RECORDINGS: Policy = Policy {
        media: &[("video/webm", "webm"), ("video/mp4", "mp4")],
        max_bytes: 1 << 20,
        url_ttl: Duration::from_secs(60),
    };

    #[test]
    fn keys_cannot_escape_the_directory() {
        assert!(valid_key("mr-mentor/m1/r1.webm"));
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "a//b",
            "a/./b",
            "a b",
            "a\\b",
            "%2e%2e",
        ] {
            assert!(!valid_key(bad), "{bad}");
        }
        assert!(object_key("p", &["m1"], "..", "webm").is_err());
        assert!(object_key("p", &["a/b"], "r", "webm").is_err());
        assert_eq!(
            object_key("p", &["m1"], "r1", "webm").unwrap(),
            "p/m1/r1.webm"
        );
    }

    #[test]
    fn the_owner_check_holds_platform_and_owner() {
        assert!(owned_by("p/m1/r1.webm", "p", &["m1"]));
        assert!(!owned_by("p/m2/r1.webm", "p", &["m1"]));
        assert!(!owned_by("q/m1/r1.webm", "p", &["m1"]));
        assert!(!owned_by("p/m1/x/r1.webm", "p", &["m1"]));
        assert!(!owned_by("p/m1/../m2/r1.webm", "p", &["m1"]));
    }

    #[test]
    fn the_policy_names_what_it_allows() {
        assert_eq!(RECORDINGS.media("").unwrap(), ("video/webm", "webm"));
        assert_eq!(RECORDINGS.media("video/mp4").unwrap(), ("video/mp4", "mp4"));
        let e = RECORDINGS.media("application/x-sh").unwrap_err();
        assert!(e.to_string().contains("video/webm, video/mp4"), "{e}");
        assert_eq!(media_for_key("p/m/r.mp4"), "video/mp4");
        assert_eq!(media_for_key("p/m/r"), "application/octet-stream");
    }

    #[test]
    fn local_links_are_checked_for_op_expiry_and_signature() {
        let s = local();
        let url = s.presign(Op::Get, "p/m/r.webm", Duration::from_secs(60));
        let q: std::collections::HashMap<_, _> = url::Url::parse(&url)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
        let exp: i64 = q["exp"].parse().unwrap();
        assert!(
            s.local_authorize(Op::Get, "p/m/r.webm", exp, &q["sig"])
                .is_ok()
        );
        let refused = |op, key, exp, sig: &str| s.local_authorize(op, key, exp, sig).unwrap_err();
        assert_eq!(
            refused(Op::Put, "p/m/r.webm", exp, &q["sig"]),
            Refused::BadSignature
        );
        assert_eq!(
            refused(Op::Get, "p/m/s.webm", exp, &q["sig"]),
            Refused::BadSignature
        );
        assert_eq!(
            refused(Op::Get, "p/m/r.webm", exp + 1, &q["sig"]),
            Refused::BadSignature
        );
        assert_eq!(
            refused(Op::Get, "p/m/r.webm", 1, &q["sig"]),
            Refused::Expired
        );
        assert_eq!(
            refused(Op::Get, "p/m/r.webm", exp, "zz"),
            Refused::BadSignature
        );
        assert_eq!(
            refused(Op::Get, "../r.webm", exp, &q["sig"]),
            Refused::BadKey
        );
    }
}
