//! The email channel: SMTP through lettre. A job renders its template at send time (so an
//! admin's fix to a template applies to queued mail), sends, and records the outcome on its
//! delivery. An SMTP error (535 bad credentials, say) fails the job with the server's reply;
//! the job retries with backoff and, after its last attempt, waits in the dashboard for a retry.

use std::sync::Arc;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use mas_bus::{HandlerError, Incoming, JobHandler};

use super::send::JobPayload;
use super::{App, deliveries, templates};
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

#[async_trait]
impl JobHandler for EmailJob {
    async fn run(&self, job: &Incoming) -> Result<(), HandlerError> {
        let p: JobPayload = serde_json::from_value(job.payload.clone())
            .map_err(|e| HandlerError::new(format!("bad email job payload: {e}")))?;
        let attempts = job.attempt as i32;
        let _ = deliveries::mark(&self.app, &p.delivery_id, "sending", attempts, None, None).await;
        match self.deliver(&p).await {
            Ok(provider_reply) => {
                tracing::info!(delivery_id = %p.delivery_id, attempt = job.attempt, "email sent");
                deliveries::mark(
                    &self.app,
                    &p.delivery_id,
                    "sent",
                    attempts,
                    Some(provider_reply),
                    None,
                )
                .await
                .map_err(HandlerError::new)?;
                Ok(())
            }
            Err(e) => {
                let last = job.attempt >= self.app.cfg.retry_attempts;
                let status = if last { "failed" } else { "queued" };
                tracing::warn!(delivery_id = %p.delivery_id, attempt = job.attempt, last, error = %e, "email not sent");
                let _ = deliveries::mark(
                    &self.app,
                    &p.delivery_id,
                    status,
                    attempts,
                    None,
                    Some(e.clone()),
                )
                .await;
                Err(HandlerError(e))
            }
        }
    }
}
