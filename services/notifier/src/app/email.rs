//! The email channel: SMTP through lettre. A job renders its template at send time (so an
//! admin's fix to a template applies to queued mail), sends, and records the outcome on its
//! delivery. An SMTP error (535 bad credentials, say) fails the job with the server's reply;
//! the job retries with backoff and, after its last attempt, waits in the dashboard for a retry.
//!
//! One transport is built and kept, so lettre's pool reuses its authenticated connections
//! across sends. A mounted `SMTP_PASSWORD_FILE` is checked at each send by its metadata only
//! (modified time, length, inode), off the runtime's threads; it is read again only when that
//! changes, and the pooled transport is rebuilt only when the password it holds changed.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::Mutex;

use super::deliveries::Sender;
use super::send::JobPayload;
use super::{App, templates};
use crate::config::{Smtp, SmtpTls};

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// What identifies a version of the password file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(m);
        #[cfg(not(unix))]
        let inode = 0;
        Stamp {
            modified: m.modified().ok(),
            len: m.len(),
            inode,
        }
    }
}

/// The transport in use and the password it was built with.
#[derive(Default)]
struct Current {
    transport: Option<Transport>,
    password: Option<String>,
    /// The password file's stamp when it was last read.
    stamp: Option<Stamp>,
}

pub struct EmailJob {
    pub app: Arc<App>,
    smtp: Smtp,
    current: Mutex<Current>,
}

impl EmailJob {
    pub fn new(app: Arc<App>, smtp: Smtp) -> Self {
        EmailJob {
            app,
            smtp,
            current: Mutex::new(Current::default()),
        }
    }

    /// The pooled transport, rebuilt first when the mounted password changed.
    async fn transport(&self) -> Result<Transport, String> {
        let mut cur = self.current.lock().await;
        match &self.smtp.password_file {
            Some(path) => {
                let meta = tokio::fs::metadata(path)
                    .await
                    .map_err(|e| file_error(path, e))?;
                let stamp = Stamp::of(&meta);
                if cur.transport.is_none() || cur.stamp != Some(stamp) {
                    let password = tokio::fs::read_to_string(path)
                        .await
                        .map_err(|e| file_error(path, e))?
                        .trim_end_matches(['\r', '\n'])
                        .to_owned();
                    cur.stamp = Some(stamp);
                    if cur.transport.is_none() || cur.password.as_deref() != Some(&password) {
                        if cur.transport.is_some() {
                            tracing::info!("SMTP password file changed; new SMTP connections");
                        }
                        let old = cur.transport.replace(self.build(Some(&password))?);
                        cur.password = Some(password);
                        if let Some(old) = old {
                            // Its idle connections hold the old login: close them.
                            tokio::spawn(async move { old.shutdown().await });
                        }
                    }
                }
            }
            None if cur.transport.is_none() => {
                let password = self.smtp.password.as_ref().map(|p| p.expose().to_owned());
                cur.transport = Some(self.build(password.as_deref())?);
            }
            None => {}
        }
        cur.transport
            .clone()
            .ok_or_else(|| "SMTP transport not built".to_owned())
    }

    fn build(&self, password: Option<&str>) -> Result<Transport, String> {
        let s = &self.smtp;
        let mut b = match s.tls {
            SmtpTls::None => Transport::builder_dangerous(&s.host),
            SmtpTls::StartTls => {
                Transport::starttls_relay(&s.host).map_err(|e| format!("SMTP {}: {e}", s.host))?
            }
            SmtpTls::Tls => {
                Transport::relay(&s.host).map_err(|e| format!("SMTP {}: {e}", s.host))?
            }
        }
        .port(s.port)
        .timeout(Some(Duration::from_secs(20)));
        if let (Some(user), Some(password)) = (&s.user, password) {
            b = b.credentials(Credentials::new(user.clone(), password.to_owned()));
        }
        Ok(b.build())
    }
}

fn file_error(path: &Path, e: std::io::Error) -> String {
    format!("SMTP_PASSWORD_FILE {}: {e}", path.display())
}

#[async_trait]
impl Sender for EmailJob {
    fn name(&self) -> &'static str {
        "smtp"
    }

    async fn deliver(&self, p: &JobPayload) -> Result<String, String> {
        let t = templates::find(&self.app, &p.platform, "email", &p.template)
            .await
            .map_err(|e| e.to_string())?;
        let (subject, body) = templates::render(&t, &p.variables)?;
        let from: Mailbox = self
            .smtp
            .from
            .parse()
            .map_err(|e| format!("SMTP_FROM: {e}"))?;
        let to: Mailbox = p
            .recipient
            .parse()
            .map_err(|e| format!("recipient {}: {e}", p.recipient))?;
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(subject)
            .body(body)
            .map_err(|e| format!("building the message: {e}"))?;
        let response = self
            .transport()
            .await?
            .send(message)
            .await
            .map_err(|e| format!("SMTP: {e}"))?;
        Ok(response.message().collect::<Vec<_>>().join(" "))
    }
}
