//! How a rendered message leaves the process: SMTP, or an `.eml` file.
//!
//! Both parts go as `7bit` when they are plain ASCII with CRLF lines of at
//! most 998 octets (RFC 5322 §2.1.1, RFC 2045 §2.7), which the templates
//! produce: a link then stays on one line, unsplit and unescaped, in the
//! message as sent. Anything else is left to the builder's choice of
//! quoted-printable or base64. On the embedded default each `.eml` file has
//! a `.txt` beside it: the headers a reader needs and the plain-text part.

use std::path::PathBuf;
use std::time::Duration;

use mail_send::mail_builder::mime::MimePart;
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

    /// Sends one mail; `now` (the service clock) names a mail file.
    pub async fn send(
        &self,
        from: &str,
        mail: &OutgoingMail,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), TransportError> {
        let message = message(from, mail);
        match self {
            Transport::Files(dir) => write_file(dir, message, readable(mail), now).await,
            Transport::Smtp(config) => send_smtp(config, message).await,
        }
    }
}

/// The message of a mail from `from`: its text and HTML as alternatives.
fn message<'a>(from: &'a str, mail: &'a OutgoingMail) -> MessageBuilder<'a> {
    MessageBuilder::new()
        .from(parse_from(from))
        .to(mail.to.as_str())
        .subject(mail.subject.as_str())
        .body(MimePart::new(
            "multipart/alternative",
            vec![
                part("text/plain", &mail.text),
                part("text/html", &mail.html),
            ],
        ))
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

/// The longest line `7bit` allows, without its CRLF.
const MAX_7BIT_LINE: usize = 998;

/// A text part: `7bit` when the text allows it as it is, else the builder's
/// choice (quoted-printable or base64).
fn part<'x>(content_type: &'x str, text: &'x str) -> MimePart<'x> {
    let part = MimePart::new(content_type, text);
    if is_7bit(text) {
        part.transfer_encoding("7bit")
    } else {
        part
    }
}

/// ASCII without NUL, every line ended by CRLF (no bare CR or LF) and at
/// most 998 octets long.
fn is_7bit(text: &str) -> bool {
    text.ends_with("\r\n")
        && text.bytes().all(|b| b.is_ascii() && b != 0)
        && text[..text.len() - 2]
            .split("\r\n")
            .all(|line| line.len() <= MAX_7BIT_LINE && !line.contains(['\r', '\n']))
}

/// The `.txt` written beside an `.eml` file: what a person reads.
fn readable(mail: &OutgoingMail) -> String {
    format!(
        "To: {}\nSubject: {}\n\n{}",
        mail.to,
        mail.subject,
        mail.text.replace("\r\n", "\n")
    )
}

async fn write_file(
    dir: &std::path::Path,
    message: MessageBuilder<'_>,
    text: String,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), TransportError> {
    let bytes = message
        .write_to_vec()
        .map_err(|e| TransportError::Permanent(e.to_string()))?;
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        let stem = format!(
            "{}-{}",
            now.format("%Y%m%dT%H%M%S%.6fZ"),
            uuid::Uuid::new_v4().simple()
        );
        // Write then rename, so a reader never sees half a message; the
        // `.txt` comes last, so when it is there the `.eml` is too.
        for (ext, contents) in [("eml", bytes), ("txt", text.into_bytes())] {
            let name = format!("{stem}.{ext}");
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, contents)?;
            std::fs::rename(&tmp, dir.join(name))?;
        }
        Ok::<(), std::io::Error>(())
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
        SmtpTls::None => match connect_plain(&builder).await {
            Ok(mut client) => client.send(message).await.map(|_| ()),
            Err(e) => Err(e),
        },
        SmtpTls::StartTls | SmtpTls::Tls => match builder.connect().await {
            Ok(mut client) => {
                no_delay(client.stream.get_ref().0);
                client.send(message).await.map(|_| ())
            }
            Err(e) => Err(e),
        },
    };
    result.map_err(classify)
}

/// A connection without TLS, ready for a message.
async fn connect_plain(
    builder: &SmtpClientBuilder<&str>,
) -> mail_send::Result<mail_send::SmtpClient<tokio::net::TcpStream>> {
    let client = builder.connect_plain().await?;
    no_delay(&client.stream);
    Ok(client)
}

/// Turns Nagle's algorithm off on an SMTP connection. Why: `mail-send` writes
/// a message and its closing `.` in two writes; with Nagle on, the second
/// waits for the relay to acknowledge the first, and a relay delays that
/// acknowledgement (up to 40 ms on Linux) while it waits for the rest, so
/// every mail took about 45 ms to hand over on loopback.
fn no_delay(stream: &tokio::net::TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY not set on the SMTP connection");
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::mail::templates;

    fn render(mail: &OutgoingMail) -> String {
        let message = message("SUMA Finance <no-reply@suma.finance>", mail);
        String::from_utf8(message.write_to_vec().unwrap()).unwrap()
    }

    /// The connection a plain SMTP delivery uses has Nagle's algorithm off.
    #[tokio::test]
    async fn a_plain_smtp_connection_sends_without_delay() {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            write.write_all(b"220 relay\r\n").await.unwrap();
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(_)) = lines.next_line().await {
                write.write_all(b"250 relay\r\n").await.unwrap();
            }
        });
        let builder = SmtpClientBuilder::new("127.0.0.1", port).unwrap();
        let client = connect_plain(&builder).await.unwrap();
        assert!(client.stream.nodelay().unwrap());
    }

    #[test]
    fn links_stay_whole_on_one_line_in_both_parts() {
        let token = "Ab-_".repeat(10) + "xyz";
        let url = "https://accounts.example-bank.com/a/rather/long/public/base/path";
        let mail = templates::verification("ana@example.com", url, &token);
        let raw = render(&mail);
        let link = format!("{url}/verify-email?token={token}");
        assert!(link.len() > 78);
        assert!(
            !raw.contains("quoted-printable") && !raw.contains("base64"),
            "{raw}"
        );
        assert_eq!(raw.matches("Content-Transfer-Encoding: 7bit").count(), 2);
        // The text part has the link alone on a line; the HTML part twice.
        assert_eq!(raw.lines().filter(|l| *l == link).count(), 1, "{raw}");
        assert_eq!(raw.matches(&link).count(), 3, "{raw}");
        // What `grep -o 'token=[A-Za-z0-9_-]*'` finds is the whole token each time.
        for found in raw.split("token=").skip(1) {
            let t: String = found
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            assert_eq!(t, token);
        }
    }

    #[test]
    fn every_line_of_the_message_is_within_rfc_5322_limits() {
        let mail =
            templates::password_reset("ana@example.com", "https://a.example", &"t".repeat(43));
        let raw = render(&mail);
        assert!(raw.contains("MIME-Version: 1.0"));
        assert!(raw.contains("multipart/alternative"));
        for line in raw.split("\r\n") {
            assert!(line.len() <= MAX_7BIT_LINE, "{line}");
            assert!(!line.contains(['\r', '\n']));
        }
    }

    #[test]
    fn text_that_7bit_cannot_carry_is_encoded() {
        assert!(is_7bit("plain\r\nlines\r\n"));
        assert!(!is_7bit("caf\u{e9}\r\n"));
        assert!(!is_7bit("bare\nfeed\r\n"));
        assert!(!is_7bit("no final break"));
        assert!(!is_7bit(&format!("{}\r\n", "x".repeat(999))));
        assert!(is_7bit(&format!("{}\r\n", "x".repeat(998))));
        let mail = OutgoingMail {
            to: "a@example.com".into(),
            template: crate::mail::Template::PasswordChanged,
            subject: "s".into(),
            text: "Gr\u{fc}\u{df}e aus M\u{fc}nchen\r\n".into(),
            html: "<p>Gr&uuml;&szlig;e</p>\r\n".into(),
        };
        let raw = render(&mail);
        assert!(
            raw.contains("Content-Transfer-Encoding: quoted-printable")
                || raw.contains("Content-Transfer-Encoding: base64"),
            "{raw}"
        );
        assert_eq!(raw.matches("Content-Transfer-Encoding: 7bit").count(), 1);
    }

    #[test]
    fn the_readable_copy_has_the_headers_and_the_text() {
        let mail =
            templates::verification("ana@example.com", "http://localhost:8080", &"k".repeat(43));
        let txt = readable(&mail);
        assert!(txt.starts_with("To: ana@example.com\nSubject: Confirm your email address\n\n"));
        assert!(txt.lines().any(|l| l
            == format!(
                "http://localhost:8080/verify-email?token={}",
                "k".repeat(43)
            )));
        assert!(!txt.contains('\r'));
    }
}
