//! The few calls of the suma-auth REST API (the contract is `/openapi.json`) that the harness makes
//! outside the measured loops, and the users file that `setup` writes.

use std::fs;
use std::path::Path;
use std::time::Duration;

use awc::http::StatusCode;
use awc::Client;
use serde::{Deserialize, Serialize};

use crate::target::BaseUrl;

pub const REGISTER: &str = "/api/v1/auth/register";
pub const VERIFY_EMAIL: &str = "/api/v1/auth/verify-email";
pub const LOGIN: &str = "/api/v1/auth/login";
pub const REFRESH: &str = "/api/v1/auth/refresh";
pub const LOGOUT: &str = "/api/v1/auth/logout";
pub const OTP_VERIFY: &str = "/api/v1/auth/otp/verify";
pub const ENABLE_EMAIL_OTP: &str = "/api/v1/auth/me/2fa/email";
pub const ME: &str = "/api/v1/auth/me";
pub const HEALTH: &str = "/health";
pub const READY: &str = "/ready";

/// Largest response body the harness reads (the API's bodies are small).
pub const BODY_LIMIT: usize = 256 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub email: String,
    pub password: String,
    #[serde(default = "yes")]
    pub verified: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsersFile {
    #[serde(default)]
    pub base_url: String,
    #[serde(default)]
    pub tag: String,
    pub users: Vec<User>,
}

impl UsersFile {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = fs::read_to_string(path)
            .map_err(|e| format!("cannot read users file {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("users file {} is not valid: {e}", path.display()))
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write users file {}: {e}", path.display()))
    }

    /// The users that can sign in (verified).
    pub fn usable(&self) -> Vec<User> {
        self.users.iter().filter(|u| u.verified).cloned().collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
}

/// Login/refresh answers: a token pair, or a second-factor challenge.
#[derive(Debug, Deserialize)]
struct LoginAnswer {
    access_token: Option<String>,
    refresh_token: Option<String>,
    #[serde(default)]
    mfa_required: bool,
}

pub fn client(timeout: Duration) -> Client {
    Client::builder().timeout(timeout).finish()
}

pub fn login_body(user: &User) -> String {
    serde_json::json!({"email": user.email, "password": user.password}).to_string()
}

pub fn refresh_body(refresh_token: &str) -> String {
    serde_json::json!({ "refresh_token": refresh_token }).to_string()
}

/// Parses a 200 answer of `/login` or `/refresh` into a token pair.
pub fn parse_token_pair(body: &[u8]) -> Result<TokenPair, &'static str> {
    let answer: LoginAnswer = serde_json::from_slice(body).map_err(|_| "bad_body")?;
    if answer.mfa_required {
        return Err("mfa_required");
    }
    match (answer.access_token, answer.refresh_token) {
        (Some(access_token), Some(refresh_token)) => Ok(TokenPair {
            access_token,
            refresh_token,
        }),
        _ => Err("bad_body"),
    }
}

/// The challenge token of a login answered with `{"mfa_required": true, "mfa_token"}`.
pub fn parse_mfa_token(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Challenge {
        #[serde(default)]
        mfa_required: bool,
        mfa_token: Option<String>,
    }
    let c: Challenge = serde_json::from_slice(body).ok()?;
    c.mfa_required.then_some(c.mfa_token).flatten()
}

/// Outcome of one call: the status and body, or a transport error label.
pub async fn post_json(
    client: &Client,
    url: &str,
    body: String,
) -> Result<(StatusCode, Vec<u8>, Option<u64>), String> {
    let mut resp = client
        .post(url)
        .content_type("application/json")
        .send_body(body)
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let bytes = resp
        .body()
        .limit(BODY_LIMIT)
        .await
        .map_err(|e| format!("POST {url}: reading body: {e}"))?;
    Ok((resp.status(), bytes.to_vec(), retry_after))
}

/// Signs a user in, retrying a few times on 429/503 (rate limit, full hashing pool).
pub async fn login(client: &Client, base: &BaseUrl, user: &User) -> Result<TokenPair, String> {
    let url = base.join(LOGIN);
    let mut last = String::new();
    for attempt in 0..8u32 {
        match post_json(client, &url, login_body(user)).await {
            Ok((status, body, retry_after)) => {
                if status == StatusCode::OK {
                    return parse_token_pair(&body)
                        .map_err(|e| format!("login of {} answered 200 but {e}", user.email));
                }
                last = format!(
                    "login of {} answered {status}: {}",
                    user.email,
                    snippet(&body)
                );
                if status != StatusCode::TOO_MANY_REQUESTS
                    && status != StatusCode::SERVICE_UNAVAILABLE
                {
                    return Err(last);
                }
                let wait = retry_after.unwrap_or(1).clamp(1, 5);
                actix_rt::time::sleep(Duration::from_secs(wait)).await;
            }
            Err(e) => {
                last = e;
                actix_rt::time::sleep(Duration::from_millis(200 << attempt.min(4))).await;
            }
        }
    }
    Err(last)
}

/// The first 300 characters of a body, for error messages.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(300).collect();
    if text.chars().count() > 300 {
        s.push('…');
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn token_pair_parsing() {
        let ok = br#"{"access_token":"a.b.c","token_type":"Bearer","expires_in":900,
                      "refresh_token":"r1","refresh_expires_in":28800,"session_id":"s"}"#;
        let p = parse_token_pair(ok).unwrap();
        assert_eq!(p.access_token, "a.b.c");
        assert_eq!(p.refresh_token, "r1");
        let mfa = br#"{"mfa_required":true,"mfa_token":"m","methods":["totp"]}"#;
        assert_eq!(parse_token_pair(mfa).unwrap_err(), "mfa_required");
        assert_eq!(parse_token_pair(b"nope").unwrap_err(), "bad_body");
        assert_eq!(parse_token_pair(b"{}").unwrap_err(), "bad_body");
        assert_eq!(parse_mfa_token(mfa).as_deref(), Some("m"));
        assert_eq!(parse_mfa_token(ok), None);
    }

    #[test]
    fn users_file_defaults_to_verified() {
        let f: UsersFile = serde_json::from_str(
            r#"{"users":[{"email":"a@x","password":"p"},
                {"email":"b@x","password":"p","verified":false}]}"#,
        )
        .unwrap();
        assert_eq!(f.usable().len(), 1);
        assert_eq!(f.usable()[0].email, "a@x");
    }

    #[test]
    fn bodies_are_json() {
        let u = User {
            email: "a\"b@x".into(),
            password: "p w".into(),
            verified: true,
        };
        let v: serde_json::Value = serde_json::from_str(&login_body(&u)).unwrap();
        assert_eq!(v["email"], "a\"b@x");
        let v: serde_json::Value = serde_json::from_str(&refresh_body("t")).unwrap();
        assert_eq!(v["refresh_token"], "t");
    }
}
