//! A tiny stand-in for suma-auth, for the harness's own tests: a hand-written
//! HTTP/1.1 keep-alive server on 127.0.0.1 (tokio only) that implements just the calls
//! the harness makes, and writes mails as files the way the real server does in
//! embedded mode: a `.eml` (verification mails quoted-printable, with a soft line
//! break inside the token) and the readable `.txt` beside it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct State {
    /// email → (password, verified)
    users: HashMap<String, (String, bool)>,
    /// emails with sign-in codes by mail on
    otp: std::collections::HashSet<String>,
    /// challenge token → (email, code)
    challenges: HashMap<String, (String, String)>,
    /// verification token → email
    verify_tokens: HashMap<String, String>,
    /// access token → email
    access: HashMap<String, String>,
    /// current refresh token → email
    refresh: HashMap<String, String>,
    counter: u64,
    mail_seq: u64,
}

pub struct MockServer {
    pub base_url: String,
    pub mail_dir: PathBuf,
    /// Requests served.
    pub hits: Arc<AtomicU64>,
}

/// Starts the mock on its own thread (runs until the test process ends).
pub fn start(mail_dir: PathBuf) -> MockServer {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let port = std_listener.local_addr().unwrap().port();
    let dir = mail_dir.clone();
    let hits = Arc::new(AtomicU64::new(0));
    let hits2 = Arc::clone(&hits);
    thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::from_std(std_listener).unwrap();
            let state = Arc::new(Mutex::new(State::default()));
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&state);
                let dir = dir.clone();
                let hits = Arc::clone(&hits2);
                tokio::spawn(async move {
                    let _ = serve(stream, state, dir, hits).await;
                });
            }
        });
    });
    MockServer {
        base_url: format!("http://127.0.0.1:{port}"),
        mail_dir,
        hits,
    }
}

async fn serve(
    mut stream: TcpStream,
    state: Arc<Mutex<State>>,
    dir: PathBuf,
    hits: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        // Read one request: headers, then Content-Length bytes of body.
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_owned();
        let mut content_length = 0usize;
        let mut auth = String::new();
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    content_length = v.trim().parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("authorization") {
                    auth = v.trim().to_owned();
                }
            }
        }
        while buf.len() < head_end + content_length {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body: Value = serde_json::from_slice(&buf[head_end..head_end + content_length])
            .unwrap_or(Value::Null);
        buf.drain(..head_end + content_length);

        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap_or_default();
        let path = parts.next().unwrap_or_default();
        hits.fetch_add(1, Ordering::Relaxed);
        let (status, answer) = handle(&state, &dir, method, path, &body, &auth);
        let text = answer.to_string();
        let response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        stream.write_all(response.as_bytes()).await?;
    }
}

fn handle(
    state: &Mutex<State>,
    dir: &std::path::Path,
    method: &str,
    path: &str,
    body: &Value,
    auth: &str,
) -> (u16, Value) {
    let mut s = state.lock().unwrap();
    let field = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match (method, path) {
        ("GET", "/health") | ("GET", "/ready") => (200, json!({"status": "ok"})),
        ("POST", "/api/v1/auth/register") => {
            let email = field("email");
            s.users.insert(email.clone(), (field("password"), false));
            s.mail_seq += 1;
            let token = format!("vErIfY-{}_{}", s.mail_seq, "x".repeat(40));
            s.verify_tokens.insert(token.clone(), email.clone());
            // Quoted-printable, with a soft line break inside the token.
            let (a, b) = token.split_at(12);
            let eml = format!(
                "To: <{email}>\r\nSubject: Confirm\r\nMIME-Version: 1.0\r\n\
                 Content-Type: text/plain; charset=utf-8\r\n\
                 Content-Transfer-Encoding: quoted-printable\r\n\r\n\
                 Open http://127.0.0.1/verify-email?token=3D{a}=\r\n{b}\r\n"
            );
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(format!("{:06}.eml", s.mail_seq)), eml).unwrap();
            std::fs::write(
                dir.join(format!("{:06}.txt", s.mail_seq)),
                format!(
                    "To: {email}\nSubject: Confirm\n\nOpen\nhttp://127.0.0.1/verify-email?token={token}\n"
                ),
            )
            .unwrap();
            (202, json!({"status": "verification_pending"}))
        }
        ("POST", "/api/v1/auth/verify-email") => match s.verify_tokens.remove(&field("token")) {
            Some(email) => {
                if let Some(u) = s.users.get_mut(&email) {
                    u.1 = true;
                }
                (200, json!({"status": "verified"}))
            }
            None => (400, json!({"code": "invalid_token"})),
        },
        ("POST", "/api/v1/auth/login") => {
            let email = field("email");
            match s.users.get(&email) {
                Some((pw, true)) if *pw == field("password") && s.otp.contains(&email) => {
                    s.mail_seq += 1;
                    let code = format!("{:06}", (s.mail_seq * 7919) % 1_000_000);
                    let token = format!("mfa-{}-{}", s.mail_seq, "m".repeat(30));
                    s.challenges
                        .insert(token.clone(), (email.clone(), code.clone()));
                    std::fs::create_dir_all(dir).unwrap();
                    let stem = format!("{:06}", s.mail_seq);
                    std::fs::write(
                        dir.join(format!("{stem}.eml")),
                        format!(
                            "To: <{email}>\r\nSubject: Your sign-in code: {code}\r\n\r\ncode {code}\r\n"
                        ),
                    )
                    .unwrap();
                    std::fs::write(
                        dir.join(format!("{stem}.txt")),
                        format!(
                            "To: {email}\nSubject: Your sign-in code: {code}\n\nYour code is {code}.\n"
                        ),
                    )
                    .unwrap();
                    (
                        200,
                        json!({"mfa_required": true, "mfa_token": token, "methods": ["email_otp"]}),
                    )
                }
                Some((pw, true)) if *pw == field("password") => pair(&mut s, email),
                Some((pw, false)) if *pw == field("password") => {
                    (403, json!({"code": "email_not_verified"}))
                }
                _ => (401, json!({"code": "invalid_credentials"})),
            }
        }
        ("POST", "/api/v1/auth/refresh") => match s.refresh.remove(&field("refresh_token")) {
            Some(email) => pair(&mut s, email),
            None => (401, json!({"code": "invalid_token"})),
        },
        ("POST", "/api/v1/auth/otp/verify") => match s.challenges.remove(&field("mfa_token")) {
            Some((email, code)) if code == field("code") => pair(&mut s, email),
            _ => (401, json!({"code": "invalid_code"})),
        },
        ("POST", "/api/v1/auth/me/2fa/email") => {
            let token = auth.strip_prefix("Bearer ").unwrap_or_default();
            match s.access.get(token).cloned() {
                Some(email) => {
                    s.otp.insert(email);
                    (200, json!({}))
                }
                None => (401, json!({"code": "unauthorized"})),
            }
        }
        ("GET", "/api/v1/auth/me") => {
            let token = auth.strip_prefix("Bearer ").unwrap_or_default();
            match s.access.get(token) {
                Some(email) => (200, json!({"email": email})),
                None => (401, json!({"code": "unauthorized"})),
            }
        }
        _ => (404, json!({"code": "not_found"})),
    }
}

fn pair(s: &mut State, email: String) -> (u16, Value) {
    s.counter += 1;
    let access = format!("acc-{}", s.counter);
    let refresh = format!("ref-{}", s.counter);
    s.access.insert(access.clone(), email.clone());
    s.refresh.insert(refresh.clone(), email);
    (
        200,
        json!({"access_token": access, "token_type": "Bearer", "expires_in": 900,
               "refresh_token": refresh, "refresh_expires_in": 28800, "session_id": "s"}),
    )
}
