//! Object storage for recordings. In production S3 or any S3-compatible store, with SigV4
//! presigned URLs (clients upload and play straight from the store); in `mas dev` a local
//! directory, for which this service signs its own short-lived URLs (HMAC-SHA256) and serves
//! them on SIGNAL_ADDR under `/storage/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hmac::{Hmac, Mac};
use mas_kit::Secret;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use sha2::Sha256;

use crate::config::StorageConfig;

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

/// The S3 backend's signer and its client for HEAD requests.
#[derive(Clone)]
pub struct S3 {
    bucket: Bucket,
    credentials: Credentials,
    http: mas_kit::http::Client,
}

#[derive(Clone)]
pub enum Storage {
    Local {
        dir: PathBuf,
        key: Secret,
        /// Set once SIGNAL_ADDR is bound (PUBLIC_URL, or the bound address).
        base_url: String,
    },
    S3(Box<S3>),
}

/// Object keys are ours (`<platform>/<meeting>/<recording>.<ext>`); anything else is refused
/// before it reaches a path or a URL.
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
    pub fn new(cfg: &StorageConfig, base_url: String) -> Result<Self, String> {
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
                let url = endpoint.parse().map_err(|e| format!("S3_ENDPOINT: {e}"))?;
                let style = if *path_style {
                    UrlStyle::Path
                } else {
                    UrlStyle::VirtualHost
                };
                Storage::S3(Box::new(S3 {
                    bucket: Bucket::new(url, style, bucket.clone(), region.clone())
                        .map_err(|e| format!("S3 bucket: {e}"))?,
                    credentials: Credentials::new(
                        access_key_id.clone(),
                        secret_access_key.expose().to_owned(),
                    ),
                    http: mas_kit::http::Client::new().map_err(|e| e.to_string())?,
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
                let exp = chrono::Utc::now().timestamp() + ttl.as_secs() as i64;
                let sig = local_signature(secret, op, key, exp);
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
    pub async fn size(&self, key: &str) -> Result<Option<u64>, String> {
        match self {
            Storage::Local { dir, .. } => match tokio::fs::metadata(dir.join(key)).await {
                Ok(m) => Ok(Some(m.len())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("recording store: {e}")),
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
                    .await
                    .map_err(|e| e.to_string())?;
                match reply.status.as_u16() {
                    200 => Ok(Some(
                        reply
                            .headers
                            .get(http::header::CONTENT_LENGTH)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0),
                    )),
                    404 => Ok(None),
                    s => Err(format!("object store answered HTTP {s} to HEAD")),
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
    ) -> Result<PathBuf, &'static str> {
        let Storage::Local {
            dir, key: secret, ..
        } = self
        else {
            return Err("not served here");
        };
        if !valid_key(key) {
            return Err("bad object key");
        }
        if exp < chrono::Utc::now().timestamp() {
            return Err("the link has expired");
        }
        let expected = local_signature(secret, op, key, exp);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            sig.as_bytes(),
        )) {
            return Err("bad signature");
        }
        Ok(dir.join(Path::new(key)))
    }
}

fn local_signature(secret: &Secret, op: Op, key: &str, exp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(format!("{}\n{key}\n{exp}", op.as_str()).as_bytes());
    hex::encode(mac.finalize().into_bytes())
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
        assert!(
            s.local_authorize(Op::Put, "p/m/r.webm", exp, &q["sig"])
                .is_err(),
            "op is signed"
        );
        assert!(
            s.local_authorize(Op::Get, "p/m/s.webm", exp, &q["sig"])
                .is_err(),
            "key is signed"
        );
        assert!(
            s.local_authorize(Op::Get, "p/m/r.webm", exp + 1, &q["sig"])
                .is_err(),
            "expiry is signed"
        );
        assert!(
            s.local_authorize(Op::Get, "p/m/r.webm", 1, &q["sig"])
                .is_err(),
            "expired"
        );
    }
}
