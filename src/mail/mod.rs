//! Outgoing mail: templates rendered to plain text + HTML and delivered over
//! SMTP with `mail-send`, or — on the embedded default with no SMTP
//! configured — written as `.eml` files under `DATA_DIR/mail/`.
//!
//! Delivery happens off the request path (a spawned task with a few retries)
//! so that a slow relay never slows a response, and so that "new account" and
//! "already registered" answers take the same time.

pub mod templates;
mod transport;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use templates::Template;
pub use transport::{Transport, TransportError};

use crate::config::Config;
use crate::telemetry::metrics::Metrics;

/// A rendered message ready for delivery.
#[derive(Clone)]
pub struct OutgoingMail {
    pub to: String,
    pub template: Template,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl std::fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body carries tokens and codes: never printed.
        f.debug_struct("OutgoingMail")
            .field("template", &self.template.name())
            .finish_non_exhaustive()
    }
}

/// Sends mail. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    from: String,
    public_url: String,
    metrics: Metrics,
}

impl Mailer {
    pub fn from_config(config: &Config, metrics: Metrics) -> Self {
        let transport = match &config.smtp {
            Some(smtp) => Transport::smtp(smtp.clone()),
            None => Transport::files(config.mail_dir()),
        };
        Self {
            inner: Arc::new(Inner {
                transport,
                from: config.mail_from.clone(),
                public_url: config.public_url.clone(),
                metrics,
            }),
        }
    }

    /// Where mail goes, for the start-up banner.
    pub fn describe(&self) -> String {
        self.inner.transport.describe()
    }

    pub fn mail_dir(&self) -> Option<PathBuf> {
        self.inner.transport.mail_dir()
    }

    pub fn public_url(&self) -> &str {
        &self.inner.public_url
    }

    /// Delivers in the background, retrying transient failures a few times.
    pub fn dispatch(&self, mail: OutgoingMail) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(200);
            for attempt in 1..=5u32 {
                match this.send_now(&mail).await {
                    Ok(()) => {
                        this.inner.metrics.mail_sent(mail.template.name());
                        return;
                    }
                    Err(e) if e.is_permanent() || attempt == 5 => {
                        this.inner.metrics.mail_failed(mail.template.name());
                        tracing::error!(template = mail.template.name(), error = %e, attempt, "mail not delivered");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(template = mail.template.name(), error = %e, attempt, "mail delivery failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay *= 3;
                    }
                }
            }
        });
    }

    /// Delivers now; the caller handles errors.
    pub async fn send_now(&self, mail: &OutgoingMail) -> Result<(), TransportError> {
        self.inner.transport.send(&self.inner.from, mail).await
    }
}
