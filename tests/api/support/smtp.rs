//! A real SMTP server on localhost that keeps what it receives.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Received {
    pub to: Vec<String>,
    pub raw: String,
}

impl Received {
    /// The message with each quoted-printable part decoded (soft breaks and
    /// `=XX` escapes); every other line as it came. Only parts that say
    /// they are quoted-printable are decoded: a 7bit link whose token
    /// happens to begin with `3D` must keep it.
    pub fn decoded(&self) -> String {
        let mut out = Vec::with_capacity(self.raw.len());
        let mut quoted_printable = false;
        for line in self.raw.split_inclusive('\n') {
            let lower = line.to_ascii_lowercase();
            if line.starts_with("--") {
                quoted_printable = false;
            } else if let Some(value) = lower.strip_prefix("content-transfer-encoding:") {
                quoted_printable = value.trim() == "quoted-printable";
            }
            if quoted_printable {
                decode_quoted_printable_line(line, &mut out);
            } else {
                out.extend_from_slice(line.as_bytes());
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    pub fn subject(&self) -> String {
        self.raw
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or_default()
            .to_string()
    }

    /// The value after `marker` up to the first character not in a URL-safe token.
    pub fn token_after(&self, marker: &str) -> Option<String> {
        let text = self.decoded();
        let start = text.find(marker)? + marker.len();
        let token: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        (!token.is_empty()).then_some(token)
    }
}

/// One line of a quoted-printable body: a soft break (`=` at the end) joins
/// it to the next, `=XX` is the byte XX, anything else stays.
fn decode_quoted_printable_line(line: &str, out: &mut Vec<u8>) {
    let bytes = line.as_bytes();
    let content = bytes
        .strip_suffix(b"=\r\n")
        .or_else(|| bytes.strip_suffix(b"=\n"))
        .unwrap_or(bytes);
    let mut i = 0;
    while i < content.len() {
        let escape = content
            .get(i + 1..i + 3)
            .filter(|h| content[i] == b'=' && h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match escape {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(content[i]);
                i += 1;
            }
        }
    }
}

#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    messages: Arc<Mutex<Vec<Received>>>,
    /// Recipients refused for good (`bounce…`), once per attempt.
    refused: Arc<Mutex<Vec<String>>>,
    sessions: Arc<Sessions>,
}

/// How many SMTP sessions are open at once, and how many were at most.
#[derive(Default)]
struct Sessions {
    open: AtomicUsize,
    most: AtomicUsize,
    /// Answer a message's end only once this many sessions are open (or
    /// `hold_ms` have passed): a sender that delivers one mail at a time waits
    /// every time.
    hold_until_open: AtomicUsize,
    hold_ms: AtomicUsize,
}

/// Counts a session from its connection to its end.
struct Open(Arc<Sessions>);

impl Open {
    fn new(sessions: &Arc<Sessions>) -> Self {
        let now = sessions.open.fetch_add(1, Ordering::SeqCst) + 1;
        sessions.most.fetch_max(now, Ordering::SeqCst);
        Self(sessions.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl SmtpSink {
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    /// Listens on a given port (a relay coming back after an outage).
    pub async fn start_on(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind smtp");
        let port = listener.local_addr().unwrap().port();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(Vec::new()));
        let sessions = Arc::new(Sessions::default());
        let (store, bounced, counted) = (messages.clone(), refused.clone(), sessions.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (store, bounced) = (store.clone(), bounced.clone());
                let open = Open::new(&counted);
                tokio::spawn(async move {
                    let _ = session(stream, store, bounced, &open.0).await;
                    drop(open);
                });
            }
        });
        Self {
            port,
            messages,
            refused,
            sessions,
        }
    }

    /// From now on, the end of each message is answered only once `n` sessions
    /// are open at the same time, or after `at_most`.
    pub fn hold_until_open(&self, n: usize, at_most: Duration) {
        let ms = usize::try_from(at_most.as_millis()).unwrap();
        self.sessions.hold_ms.store(ms, Ordering::SeqCst);
        self.sessions.hold_until_open.store(n, Ordering::SeqCst);
    }

    /// How many SMTP sessions are open now.
    pub fn sessions_open(&self) -> usize {
        self.sessions.open.load(Ordering::SeqCst)
    }

    /// The most SMTP sessions that were open at the same time.
    pub fn most_sessions_at_once(&self) -> usize {
        self.sessions.most.load(Ordering::SeqCst)
    }

    pub fn all(&self) -> Vec<Received> {
        self.messages.lock().unwrap().clone()
    }

    /// How many deliveries to `to` were refused for good.
    pub fn refused_to(&self, to: &str) -> usize {
        self.refused
            .lock()
            .unwrap()
            .iter()
            .filter(|r| *r == to)
            .count()
    }

    pub fn count_to(&self, to: &str) -> usize {
        self.all()
            .iter()
            .filter(|m| m.to.iter().any(|t| t == to))
            .count()
    }

    /// Waits (up to 10 s) for the `n`-th message (1-based) to `to`.
    pub async fn wait_for_nth(&self, to: &str, n: usize) -> Received {
        for _ in 0..200 {
            let matching: Vec<Received> = self
                .all()
                .into_iter()
                .filter(|m| m.to.iter().any(|t| t == to))
                .collect();
            if matching.len() >= n {
                return matching[n - 1].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no mail #{n} to {to} within 10 s; got {:?}",
            self.all().iter().map(|m| &m.to).collect::<Vec<_>>()
        );
    }

    /// Waits (up to 10 s) for the `n`-th sign-in code (1-based) mailed to
    /// `to` and returns the code. The outbox delivers queued mails in any
    /// order, so a code requested right after a notice may arrive first:
    /// counting codes alone does not depend on that order.
    pub async fn wait_for_code(&self, to: &str, n: usize) -> String {
        const SUBJECT: &str = "Your sign-in code: ";
        for _ in 0..200 {
            let codes: Vec<String> = self
                .all()
                .into_iter()
                .filter(|m| m.to.iter().any(|t| t == to))
                .filter_map(|m| m.subject().strip_prefix(SUBJECT).map(str::to_owned))
                .collect();
            if codes.len() >= n {
                return codes[n - 1].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no sign-in code #{n} to {to} within 10 s");
    }

    pub async fn wait_for(&self, to: &str) -> Received {
        self.wait_for_nth(to, 1).await
    }
}

async fn session(
    stream: tokio::net::TcpStream,
    store: Arc<Mutex<Vec<Received>>>,
    refused: Arc<Mutex<Vec<String>>>,
    sessions: &Sessions,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink ESMTP ready\r\n").await?;
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_ascii_uppercase();
        if cmd.starts_with("EHLO") {
            write
                .write_all(b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                .await?;
        } else if cmd.starts_with("HELO") {
            write.write_all(b"250 sink\r\n").await?;
        } else if cmd.starts_with("MAIL FROM") {
            to.clear();
            write.write_all(b"250 OK\r\n").await?;
        } else if cmd.starts_with("RCPT TO") {
            let addr = line
                .trim_end()
                .split_once(':')
                .map(|(_, a)| {
                    a.trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_string()
                })
                .unwrap_or_default();
            if addr.starts_with("bounce") {
                // A permanent refusal, as for a mailbox that does not exist.
                refused.lock().unwrap().push(addr.to_lowercase());
                write.write_all(b"550 5.1.1 no such mailbox\r\n").await?;
                continue;
            }
            to.push(addr.to_lowercase());
            write.write_all(b"250 OK\r\n").await?;
        } else if cmd == "DATA" {
            write.write_all(b"354 go ahead\r\n").await?;
            let mut raw = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                let l = line
                    .strip_prefix('.')
                    .filter(|_| line.starts_with(".."))
                    .unwrap_or(&line);
                raw.push_str(l);
            }
            let hold = sessions.hold_until_open.load(Ordering::SeqCst);
            for _ in 0..sessions.hold_ms.load(Ordering::SeqCst) / 50 {
                if sessions.open.load(Ordering::SeqCst) >= hold {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            store.lock().unwrap().push(Received {
                to: to.clone(),
                raw,
            });
            write.write_all(b"250 queued\r\n").await?;
        } else if cmd.starts_with("RSET") || cmd.starts_with("NOOP") {
            write.write_all(b"250 OK\r\n").await?;
        } else if cmd.starts_with("QUIT") {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            write.write_all(b"502 not implemented\r\n").await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Received;

    fn mail(raw: &str) -> Received {
        Received {
            to: vec!["a@example.com".into()],
            raw: raw.into(),
        }
    }

    #[test]
    fn a_7bit_token_beginning_with_3d_keeps_it() {
        let m = mail(
            "Content-Type: text/plain\r\nContent-Transfer-Encoding: 7bit\r\n\r\n\
             http://app.test/verify-email?token=3DAbc_-9\r\n",
        );
        assert_eq!(
            m.token_after("http://app.test/verify-email?token=")
                .as_deref(),
            Some("3DAbc_-9")
        );
    }

    #[test]
    fn a_quoted_printable_part_is_decoded() {
        let m = mail(
            "Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n--b\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\n\
             Gr=C3=BC=C3=9Fe http://app.test/verify-email?token=3D3DAb=\r\ncd\r\n--b--\r\n",
        );
        assert!(m.decoded().contains("Grüße"), "{}", m.decoded());
        assert_eq!(
            m.token_after("http://app.test/verify-email?token=")
                .as_deref(),
            Some("3DAbcd")
        );
    }
}
