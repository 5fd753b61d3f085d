//! Mail the server sends while it is measured: verification links for `register`
//! and sign-in codes for `login_otp`. Mail arrives in a [`Mailbox`] from one of two
//! sources: an SMTP sink on 127.0.0.1 that the server is pointed at
//! (`SMTP_HOST`/`SMTP_PORT`, `SMTP_TLS=none`), or the mail files the server writes
//! in embedded mode (`DATA_DIR/mail/*.txt`, the readable copy beside each `.eml`;
//! a lone `.eml` is parsed when no `.txt` comes with it).

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::mail;

/// One received mail.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
}

impl Mail {
    pub fn is_otp(&self) -> bool {
        mail::otp_code(&self.subject, &self.text).is_some()
            && self.subject.to_ascii_lowercase().contains("code")
    }

    pub fn otp_code(&self) -> Option<String> {
        mail::otp_code(&self.subject, &self.text)
    }

    pub fn verify_token(&self) -> Option<String> {
        mail::extract_verify_tokens(self.text.as_bytes())
            .into_iter()
            .next()
    }
}

/// Mail by recipient (lower-cased), oldest first. Shared by every client thread.
#[derive(Debug, Default)]
pub struct Mailbox {
    by_to: Mutex<HashMap<String, VecDeque<Mail>>>,
    received: AtomicU64,
}

/// Longest a worker waits for one mail.
pub const MAIL_WAIT: Duration = Duration::from_secs(15);

impl Mailbox {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn push(&self, mail: Mail) {
        let key = mail.to.trim().to_ascii_lowercase();
        if let Ok(mut map) = self.by_to.lock() {
            map.entry(key).or_default().push_back(mail);
        }
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Removes and returns the oldest mail to `to` that `pred` accepts.
    pub fn take(&self, to: &str, pred: impl Fn(&Mail) -> bool) -> Option<Mail> {
        let key = to.trim().to_ascii_lowercase();
        let mut map = self.by_to.lock().ok()?;
        let queue = map.get_mut(&key)?;
        let at = queue.iter().position(&pred)?;
        let mail = queue.remove(at);
        if queue.is_empty() {
            map.remove(&key);
        }
        mail
    }

    /// Drops every mail to `to` that `pred` accepts (stale codes).
    pub fn discard(&self, to: &str, pred: impl Fn(&Mail) -> bool) {
        let key = to.trim().to_ascii_lowercase();
        if let Ok(mut map) = self.by_to.lock() {
            if let Some(queue) = map.get_mut(&key) {
                queue.retain(|m| !pred(m));
                if queue.is_empty() {
                    map.remove(&key);
                }
            }
        }
    }

    /// Waits (polling every 2 ms) up to `timeout` for a mail to `to` that `pred`
    /// accepts, and takes it.
    pub async fn wait_take(
        &self,
        to: &str,
        pred: impl Fn(&Mail) -> bool,
        timeout: Duration,
    ) -> Option<Mail> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.take(to, &pred) {
                return Some(m);
            }
            if Instant::now() >= deadline {
                return None;
            }
            actix_rt::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Stops a background source when dropped.
#[derive(Debug)]
pub struct SourceGuard {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Drop for SourceGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// An SMTP server on 127.0.0.1 that accepts every message and puts it in the
/// mailbox (no TLS, no authentication: loopback only).
pub fn start_smtp_sink(mailbox: Arc<Mailbox>) -> Result<(u16, SourceGuard), String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot start the SMTP sink: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("SMTP sink: {e}"))?
        .port();
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("SMTP sink: {e}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let handle = thread::Builder::new()
        .name("smtp-sink".into())
        .spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let mailbox = Arc::clone(&mailbox);
                        let _ =
                            thread::Builder::new()
                                .name("smtp-session".into())
                                .spawn(move || {
                                    let _ = smtp_session(stream, &mailbox);
                                });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        })
        .map_err(|e| format!("SMTP sink: {e}"))?;
    Ok((
        port,
        SourceGuard {
            stop,
            handle: Some(handle),
        },
    ))
}

fn smtp_session(stream: TcpStream, mailbox: &Mailbox) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    out.write_all(b"220 suma-auth-loadtests ESMTP sink\r\n")?;
    let mut rcpt: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_ascii_uppercase();
        if cmd.starts_with("EHLO") {
            out.write_all(b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")?;
        } else if cmd.starts_with("HELO") {
            out.write_all(b"250 sink\r\n")?;
        } else if cmd.starts_with("MAIL FROM") || cmd.starts_with("RSET") {
            rcpt.clear();
            out.write_all(b"250 OK\r\n")?;
        } else if cmd.starts_with("RCPT TO") {
            let addr = line
                .trim_end()
                .split_once(':')
                .map(|(_, a)| {
                    a.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_ascii_lowercase()
                })
                .unwrap_or_default();
            rcpt.push(addr);
            out.write_all(b"250 OK\r\n")?;
        } else if cmd == "DATA" {
            out.write_all(b"354 end with <CRLF>.<CRLF>\r\n")?;
            let mut raw: Vec<u8> = Vec::new();
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                let l = line.trim_end_matches(['\r', '\n']);
                if l == "." {
                    break;
                }
                // Dot-stuffing (RFC 5321 §4.5.2).
                raw.extend_from_slice(l.strip_prefix('.').unwrap_or(l).as_bytes());
                raw.extend_from_slice(b"\r\n");
            }
            let subject = mail::header(&raw, "subject").unwrap_or_default();
            let text = mail::decoded_text(&raw);
            for to in rcpt.drain(..) {
                mailbox.push(Mail {
                    to,
                    subject: subject.clone(),
                    text: text.clone(),
                });
            }
            out.write_all(b"250 OK queued\r\n")?;
        } else if cmd.starts_with("QUIT") {
            out.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            out.write_all(b"250 OK\r\n")?;
        }
    }
}

/// Parses the readable copy the server writes beside each `.eml`:
/// `To: …\nSubject: …\n\n<text>`.
pub fn parse_readable(text: &str) -> Option<Mail> {
    let (head, body) = text.split_once("\n\n")?;
    let mut to = None;
    let mut subject = String::new();
    for line in head.lines() {
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("to") {
                to = Some(v.trim().trim_start_matches('<').trim_end_matches('>'));
            } else if k.eq_ignore_ascii_case("subject") {
                subject = v.trim().to_owned();
            }
        }
    }
    Some(Mail {
        to: to?.to_owned(),
        subject,
        text: body.to_owned(),
    })
}

fn parse_eml(raw: &[u8]) -> Option<Mail> {
    let to = mail::header(raw, "to")?;
    let to = to
        .rsplit_once('<')
        .map_or(to.as_str(), |(_, a)| a.trim_end_matches('>'))
        .trim()
        .to_owned();
    Some(Mail {
        to,
        subject: mail::header(raw, "subject").unwrap_or_default(),
        text: mail::decoded_text(raw),
    })
}

/// One pass over the mail directory: every message not seen before is parsed and
/// put in the mailbox. A `.eml` without its `.txt` is only taken once it is
/// `eml_grace` old (the `.txt` is written just after it).
pub fn scan_mail_dir(
    dir: &Path,
    seen: &mut HashSet<String>,
    mailbox: &Mailbox,
    eml_grace: Duration,
) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut txt: Vec<(String, PathBuf, SystemTime)> = Vec::new();
    let mut eml: Vec<(String, PathBuf, SystemTime)> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // a file still being written (renamed into place when done)
        }
        let (stem, is_txt) = match (name.strip_suffix(".txt"), name.strip_suffix(".eml")) {
            (Some(stem), _) => (stem, true),
            (None, Some(stem)) => (stem, false),
            (None, None) => continue,
        };
        if seen.contains(stem) {
            continue;
        }
        let modified = entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if is_txt {
            txt.push((stem.to_owned(), entry.path(), modified));
        } else {
            eml.push((stem.to_owned(), entry.path(), modified));
        }
    }
    let mut added = 0;
    let txt_stems: HashSet<String> = txt.iter().map(|(s, _, _)| s.clone()).collect();
    for (stem, path, modified) in txt {
        match std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| parse_readable(&t))
        {
            Some(m) => {
                mailbox.push(m);
                added += 1;
                seen.insert(stem);
            }
            // Perhaps still being written by a writer that does not rename into
            // place: try again until it is old enough to be taken as it is.
            None if modified.elapsed().map_or(true, |age| age >= eml_grace) => {
                seen.insert(stem);
            }
            None => {}
        }
    }
    for (stem, path, modified) in eml {
        if txt_stems.contains(&stem) {
            continue;
        }
        let old_enough = modified.elapsed().map_or(true, |age| age >= eml_grace);
        if !old_enough {
            continue;
        }
        if let Some(m) = std::fs::read(&path).ok().and_then(|raw| parse_eml(&raw)) {
            mailbox.push(m);
            added += 1;
        }
        seen.insert(stem);
    }
    added
}

/// How often the mail directory is listed even when its time did not change.
const FULL_SCAN_EVERY: Duration = Duration::from_millis(25);

/// Watches `dir` for new mail files until the guard is dropped: every 5 ms it
/// reads the directory's modification time, and lists the directory when that
/// changed or [`FULL_SCAN_EVERY`] passed (a time is only as fine as the
/// kernel's clock tick, so a file added in the tick of the last listing
/// leaves it unchanged). Listing a directory of thousands of mails every
/// 5 ms takes CPU from the server under test, on the same machine.
/// Mails already there when it starts are skipped unless `include_existing`.
pub fn watch_mail_dir(
    dir: PathBuf,
    mailbox: Arc<Mailbox>,
    include_existing: bool,
) -> Result<SourceGuard, String> {
    let mut seen = HashSet::new();
    if !include_existing {
        scan_mail_dir(&dir, &mut seen, &Mailbox::default(), Duration::ZERO);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let handle = thread::Builder::new()
        .name("mail-dir".into())
        .spawn(move || {
            let mut listed: Option<(SystemTime, std::time::Instant)> = None;
            while !stop2.load(Ordering::Relaxed) {
                let modified = std::fs::metadata(&dir)
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                let due = listed.is_none_or(|(seen_at, when)| {
                    seen_at != modified || when.elapsed() >= FULL_SCAN_EVERY
                });
                if due {
                    listed = Some((modified, std::time::Instant::now()));
                    scan_mail_dir(&dir, &mut seen, &mailbox, Duration::from_millis(500));
                }
                thread::sleep(Duration::from_millis(5));
            }
        })
        .map_err(|e| format!("cannot watch the mail directory: {e}"))?;
    Ok(SourceGuard {
        stop,
        handle: Some(handle),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn readable_copies_are_parsed() {
        let m = parse_readable(
            "To: ana@example.com\nSubject: Your sign-in code: 004211\n\nYour code is 004211.\n",
        )
        .unwrap();
        assert_eq!(m.to, "ana@example.com");
        assert_eq!(m.otp_code().as_deref(), Some("004211"));
        assert!(m.is_otp());
        let v = parse_readable(
            "To: b@example.com\nSubject: Confirm your email address\n\nOpen\n\
             http://127.0.0.1:1/verify-email?token=abcdefghijklmnopqrstuvwxyz012345\n",
        )
        .unwrap();
        assert!(!v.is_otp());
        assert_eq!(
            v.verify_token().as_deref(),
            Some("abcdefghijklmnopqrstuvwxyz012345")
        );
        assert!(parse_readable("no blank line").is_none());
    }

    #[test]
    fn mailbox_takes_by_recipient_and_predicate() {
        let mb = Mailbox::default();
        let mail = |to: &str, subject: &str| Mail {
            to: to.into(),
            subject: subject.into(),
            text: String::new(),
        };
        mb.push(mail("A@x", "one"));
        mb.push(mail("a@x", "two"));
        mb.push(mail("b@x", "three"));
        assert_eq!(mb.received(), 3);
        assert_eq!(
            mb.take("a@X", |m| m.subject == "two").unwrap().subject,
            "two"
        );
        assert!(mb.take("a@x", |m| m.subject == "two").is_none());
        mb.discard("a@x", |_| true);
        assert!(mb.take("a@x", |_| true).is_none());
        assert_eq!(mb.take("b@x", |_| true).unwrap().subject, "three");
    }

    /// A new empty directory under the system's temporary directory.
    fn fresh_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "suma-lt-{name}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_watcher_takes_every_mail_written_while_it_watches() {
        let dir = fresh_dir("watch");
        let mb = Mailbox::new();
        let _guard = watch_mail_dir(dir.clone(), Arc::clone(&mb), false).unwrap();
        // Bursts written faster than the kernel's clock tick, renamed into
        // place as the server does, with pauses between them.
        for burst in 0..5 {
            for i in 0..10 {
                let name = format!("{burst}-{i}");
                let tmp = dir.join(format!(".{name}.txt.tmp"));
                std::fs::write(
                    &tmp,
                    format!("To: u{burst}-{i}@example.com\nSubject: s\n\nbody\n"),
                )
                .unwrap();
                std::fs::rename(&tmp, dir.join(format!("{name}.txt"))).unwrap();
            }
            thread::sleep(Duration::from_millis(7 * burst));
        }
        let start = Instant::now();
        while mb.received() < 50 {
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "only {} of 50 mails taken",
                mb.received()
            );
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(mb.received(), 50);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_mail_dir_scan_prefers_txt_and_skips_partial_files() {
        let dir = fresh_dir("mailbox");
        std::fs::write(
            dir.join("1.eml"),
            "To: <x@example.com>\r\nSubject: raw\r\n\r\nbody\r\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("1.txt"),
            "To: x@example.com\nSubject: Your sign-in code: 123456\n\ntext\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("2.eml"),
            "To: Y <y@example.com>\r\nSubject: only eml\r\n\r\nbody\r\n",
        )
        .unwrap();
        std::fs::write(dir.join(".3.txt.tmp"), "To: z@example.com\n\npartial").unwrap();
        let mb = Mailbox::default();
        let mut seen = HashSet::new();
        // A young lone .eml waits for its .txt.
        assert_eq!(
            scan_mail_dir(&dir, &mut seen, &mb, Duration::from_secs(3600)),
            1
        );
        assert_eq!(scan_mail_dir(&dir, &mut seen, &mb, Duration::ZERO), 1);
        assert_eq!(scan_mail_dir(&dir, &mut seen, &mb, Duration::ZERO), 0);
        assert_eq!(
            mb.take("x@example.com", |_| true)
                .unwrap()
                .otp_code()
                .as_deref(),
            Some("123456")
        );
        assert_eq!(
            mb.take("y@example.com", |_| true).unwrap().subject,
            "only eml"
        );
        assert!(mb.take("z@example.com", |_| true).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_smtp_sink_receives_a_message() {
        let mb = Mailbox::new();
        let (port, _guard) = start_smtp_sink(Arc::clone(&mb)).unwrap();
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        let mut expect = |r: &mut BufReader<TcpStream>, code: &str| loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            assert!(line.starts_with(code), "{line}");
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        };
        expect(&mut r, "220");
        for (cmd, code) in [
            ("EHLO me\r\n", "250"),
            ("MAIL FROM:<no-reply@suma.finance>\r\n", "250"),
            ("RCPT TO:<Ana@Example.com>\r\n", "250"),
            ("DATA\r\n", "354"),
        ] {
            s.write_all(cmd.as_bytes()).unwrap();
            expect(&mut r, code);
        }
        s.write_all(
            b"Subject: Your sign-in code: 777001\r\nContent-Type: text/plain\r\n\r\n\
              ..a stuffed line\r\nYour code is 777001\r\n.\r\n",
        )
        .unwrap();
        expect(&mut r, "250");
        s.write_all(b"QUIT\r\n").unwrap();
        expect(&mut r, "221");
        let got = mb
            .take("ana@example.com", Mail::is_otp)
            .expect("the message is in the mailbox");
        assert_eq!(got.otp_code().as_deref(), Some("777001"));
        assert!(got.text.contains("\n.a stuffed line") || got.text.starts_with(".a stuffed"));
    }
}
