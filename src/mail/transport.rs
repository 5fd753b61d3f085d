//! How a rendered message leaves the process: SMTP, or an `.eml` file.

use std::path::PathBuf;
use std::time::Duration;

use mail_send::mail_builder::MessageBuilder;
use mail_send::SmtpClientBuilder;
use secrecy::ExposeSecret;

use super::OutgoingMail;
use crate::config::{SmtpConfig, SmtpTls};

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The relay refused the message for good (5xx, bad address).
    #[error("rejected by the relay: {0}")]
    Permanent(String),
    /// Connection trouble or a 4xx: worth retrying.
    #[error("transient delivery failure: {0}")]
    Transient(String),
}

impl TransportError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, TransportError::Permanent(_))
    }
}

pub enum Transport {
    Smtp(SmtpConfig),
    Files(PathBuf),
}

impl Transport {
    pub fn smtp(config: SmtpConfig) -> Self {
        Transport::Smtp(config)
    }

    pub fn files(dir: PathBuf) -> Self {
        Transport::Files(dir)
    }

    pub fn describe(&self) -> String {
        match self {
            Transport::Smtp(c) => format!("smtp://{}:{} ({:?})", c.host, c.port, c.tls),
            Transport::Files(dir) => format!("files in {}", dir.display()),
        }
    }

    pub fn mail_dir(&self) -> Option<PathBuf> {
        match self {
            Transport::Files(dir) => Some(dir.clone()),
            Transport::Smtp(_) => None,
        }
    }

    pub async fn send(&self, from: &str, mail: &OutgoingMail) -> Result<(), TransportError> {
        let message = MessageBuilder::new()
            .from(parse_from(from))
            .to(mail.to.as_str())
            .subject(mail.subject.as_str())
            .text_body(mail.text.as_str())
            .html_body(mail.html.as_str());
        match self {
            Transport::Files(dir) => write_file(dir, message).await,
            Transport::Smtp(config) => send_smtp(config, message).await,
        }
    }
}

/// "Name <addr>" or a bare address.
fn parse_from(from: &str) -> (String, String) {
    match (from.find('<'), from.rfind('>')) {
        (Some(start), Some(end)) if start < end => (
            from[..start].trim().trim_matches('"').to_string(),
            from[start + 1..end].trim().to_string(),
        ),
        _ => (String::new(), from.trim().to_string()),
    }
}

async fn write_file(
    dir: &std::path::Path,
    message: MessageBuilder<'_>,
) -> Result<(), TransportError> {
    let bytes = message
        .write_to_vec()
        .map_err(|e| TransportError::Permanent(e.to_string()))?;
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        let name = format!(
            "{}-{}.eml",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            uuid::Uuid::new_v4().simple()
        );
        // Write then rename, so a reader never sees half a message.
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, dir.join(name))
    })
    .await
    .map_err(|e| TransportError::Transient(e.to_string()))?
    .map_err(|e| TransportError::Transient(e.to_string()))
}

async fn send_smtp(config: &SmtpConfig, message: MessageBuilder<'_>) -> Result<(), TransportError> {
    let builder = SmtpClientBuilder::new(config.host.as_str(), config.port)
        .map_err(TransportError::Transient)?
        .timeout(Duration::from_secs(30))
        .implicit_tls(config.tls == SmtpTls::Tls);
    let builder = match (&config.username, &config.password) {
        (Some(user), Some(password)) => {
            builder.credentials((user.as_str(), password.expose_secret()))
        }
        _ => builder,
    };
    let result = match config.tls {
        SmtpTls::None => match builder.connect_plain().await {
            Ok(mut client) => client.send(message).await.map(|_| ()),
            Err(e) => Err(e),
        },
        SmtpTls::StartTls | SmtpTls::Tls => match builder.connect().await {
            Ok(mut client) => client.send(message).await.map(|_| ()),
            Err(e) => Err(e),
        },
    };
    result.map_err(classify)
}

fn classify(e: mail_send::Error) -> TransportError {
    match &e {
        mail_send::Error::UnexpectedReply(reply) if reply.code() >= 500 => {
            TransportError::Permanent(e.to_string())
        }
        mail_send::Error::AuthenticationFailed(_) => TransportError::Transient(e.to_string()),
        _ => TransportError::Transient(e.to_string()),
    }
}
