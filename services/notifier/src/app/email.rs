//! The email channel: SMTP through lettre. A job renders its template at send time (so an
//! admin's fix to a template applies to queued mail), sends, and records the outcome on its
//! delivery. An SMTP error (535 bad credentials, say) fails the job with the server's reply;
//! the job retries with backoff and, after its last attempt, waits in the dashboard for a retry.

use std::sync::Arc;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::deliveries::Sender;
use super::send::JobPayload;
use super::{App, templates};
use crate::config::{Smtp, SmtpTls};

pub struct EmailJob {
    pub app: Arc<App>,
    pub smtp: Smtp,
}

impl EmailJob {
    fn password(&self) -> Result<Option<String>, String> {
        if let Some(path) = &self.smtp.password_file {
            return std::fs::read_to_string(path)
                .map(|s| Some(s.trim_end_matches(['\r', '\n']).to_owned()))
                .map_err(|e| format!("SMTP_PASSWORD_FILE {}: {e}", path.display()));
        }
        Ok(self.smtp.password.as_ref().map(|p| p.expose().to_owned()))
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let s = &self.smtp;
        let mut b = match s.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host),
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)
                .map_err(|e| format!("SMTP {}: {e}", s.host))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host)
                .map_err(|e| format!("SMTP {}: {e}", s.host))?,
        }
        .port(s.port)
        .timeout(Some(std::time::Duration::from_secs(20)));
        if let (Some(user), Some(password)) = (&s.user, self.password()?) {
            b = b.credentials(Credentials::new(user.clone(), password));
        }
        Ok(b.build())
    }
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
            .transport()?
            .send(message)
            .await
            .map_err(|e| format!("SMTP: {e}"))?;
        Ok(response.message().collect::<Vec<_>>().join(" "))
    }
}
