//! `setup`: registers N users and verifies their email addresses by reading the
//! verification mails the server (embedded mode, no SMTP) writes as `.eml` files.
//!
//! Registration is rate-limited per client IP (3 per 5 minutes by default): start the
//! server with a high `RATE_LIMIT_REGISTER` (bench.sh does) or this will stall on 429s.

use std::cell::Cell;
use std::collections::HashSet;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use awc::http::StatusCode;

use crate::api::{self, User, UsersFile};
use crate::mail;
use crate::target::BaseUrl;

#[derive(Debug, Clone)]
pub struct SetupOpts {
    pub base: BaseUrl,
    pub users: usize,
    pub mail_dir: PathBuf,
    pub out: PathBuf,
    pub concurrency: usize,
    pub mail_timeout: Duration,
    pub timeout: Duration,
}

pub fn user_for(i: usize, tag: &str) -> User {
    User {
        email: format!("bench-{i}-{tag}@example.com"),
        password: format!("correct horse battery staple {i} {tag}"),
        verified: false,
    }
}

fn random_tag() -> String {
    let n: u32 = rand::random();
    format!("{n:08x}")
}

pub fn setup(opts: &SetupOpts) -> Result<UsersFile, String> {
    let tag = random_tag();
    let users: Vec<User> = (0..opts.users).map(|i| user_for(i, &tag)).collect();
    let opts2 = opts.clone();
    let (registered, verified) = actix_rt::System::new()
        .block_on(async move { register_and_verify(&opts2, users).await })?;

    let file = UsersFile {
        base_url: opts.base.as_str().to_owned(),
        tag,
        users: verified,
    };
    let ok = file.usable().len();
    file.save(&opts.out)?;
    eprintln!(
        "setup: {registered}/{} registered, {ok} verified; wrote {}",
        opts.users,
        opts.out.display()
    );
    if ok == 0 {
        return Err("no user could be verified; see the messages above".to_owned());
    }
    Ok(file)
}

async fn register_and_verify(
    opts: &SetupOpts,
    users: Vec<User>,
) -> Result<(usize, Vec<User>), String> {
    let started = Instant::now();
    let outcomes = register_all(opts, &users).await;
    let mut first_error = None;
    let mut registered = Vec::new();
    for (user, outcome) in users.into_iter().zip(outcomes) {
        match outcome {
            Ok(()) => registered.push(user),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = &first_error {
        eprintln!("setup: some registrations failed; first error: {e}");
    }
    if registered.is_empty() {
        return Err(first_error.unwrap_or_else(|| "no user registered".to_owned()));
    }
    eprintln!(
        "setup: registered {} users in {:.1} s; waiting for verification mails in {}",
        registered.len(),
        started.elapsed().as_secs_f64(),
        opts.mail_dir.display()
    );
    let count = registered.len();
    let verified = verify_all(opts, registered).await;
    Ok((count, verified))
}

/// Registers every user with `opts.concurrency` workers pulling from a shared index.
async fn register_all(opts: &SetupOpts, users: &[User]) -> Vec<Result<(), String>> {
    let next = Rc::new(Cell::new(0usize));
    let url = opts.base.join(api::REGISTER);
    let workers = (0..opts.concurrency.clamp(1, 32)).map(|_| {
        let next = Rc::clone(&next);
        let url = url.clone();
        async move {
            let client = api::client(opts.timeout);
            let mut done = Vec::new();
            loop {
                let i = next.get();
                if i >= users.len() {
                    break;
                }
                next.set(i + 1);
                done.push((i, register_one(&client, &url, &users[i]).await));
            }
            done
        }
    });
    let mut results: Vec<Result<(), String>> = (0..users.len())
        .map(|_| Err("not attempted".to_owned()))
        .collect();
    for batch in futures_util::future::join_all(workers).await {
        for (i, r) in batch {
            results[i] = r;
        }
    }
    results
}

async fn register_one(client: &awc::Client, url: &str, user: &User) -> Result<(), String> {
    let body = serde_json::json!({
        "email": user.email,
        "password": user.password,
        "consents": {"terms": true, "privacy": true},
    })
    .to_string();
    let mut last = String::new();
    for attempt in 0..10u32 {
        match api::post_json(client, url, body.clone()).await {
            Ok((StatusCode::ACCEPTED, _, _)) => return Ok(()),
            Ok((status, b, retry_after))
                if status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::SERVICE_UNAVAILABLE =>
            {
                last = format!(
                    "register {} answered {status} (is RATE_LIMIT_REGISTER high enough?): {}",
                    user.email,
                    api::snippet(&b)
                );
                if status == StatusCode::TOO_MANY_REQUESTS && retry_after.unwrap_or(0) > 10 {
                    // A real rate-limit window: waiting it out is pointless here.
                    return Err(last);
                }
                actix_rt::time::sleep(Duration::from_secs(retry_after.unwrap_or(1).clamp(1, 5)))
                    .await;
            }
            Ok((status, b, _)) => {
                return Err(format!(
                    "register {} answered {status}: {}",
                    user.email,
                    api::snippet(&b)
                ))
            }
            Err(e) => {
                last = e;
                actix_rt::time::sleep(Duration::from_millis(200 << attempt.min(4))).await;
            }
        }
    }
    Err(last)
}

/// Polls the mail directory until every user is verified or the timeout passes.
/// Returns all users, each with its `verified` flag set.
async fn verify_all(opts: &SetupOpts, mut users: Vec<User>) -> Vec<User> {
    let client = api::client(opts.timeout);
    let url = opts.base.join(api::VERIFY_EMAIL);
    let deadline = Instant::now() + opts.mail_timeout;
    // Tokens the server refused (spent, unknown, or cut short by a half-written file).
    let mut refused: HashSet<String> = HashSet::new();
    let mut last_problem = String::new();
    let mut files_seen = 0usize;
    loop {
        let files = mail::read_mail_dir(&opts.mail_dir);
        files_seen = files_seen.max(files.len());
        for user in users.iter_mut().filter(|u| !u.verified) {
            // Newest mail first: a resend supersedes older tokens.
            let tokens = files
                .iter()
                .filter(|f| mail::mentions_address(&f.raw, &user.email))
                .flat_map(|f| mail::extract_verify_tokens(&f.raw));
            let tokens: Vec<String> = tokens.filter(|t| !refused.contains(t)).collect();
            for token in tokens {
                let body = serde_json::json!({ "token": token }).to_string();
                match api::post_json(&client, &url, body).await {
                    Ok((StatusCode::OK, _, _)) => {
                        user.verified = true;
                        break;
                    }
                    Ok((status, b, _)) if status == StatusCode::BAD_REQUEST => {
                        last_problem = format!(
                            "verify-email for {} answered 400: {}",
                            user.email,
                            api::snippet(&b)
                        );
                        refused.insert(token);
                    }
                    Ok((status, b, _)) => {
                        last_problem = format!(
                            "verify-email for {} answered {status}: {}",
                            user.email,
                            api::snippet(&b)
                        );
                    }
                    Err(e) => last_problem = e,
                }
            }
        }
        let pending = users.iter().filter(|u| !u.verified).count();
        if pending == 0 {
            break;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "setup: {pending} users still unverified after {:.0} s ({} .eml files under {}){}",
                opts.mail_timeout.as_secs_f64(),
                files_seen,
                opts.mail_dir.display(),
                if last_problem.is_empty() {
                    String::new()
                } else {
                    format!("; last problem: {last_problem}")
                }
            );
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    users
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn users_are_distinct_and_passwords_strong() {
        let tag = random_tag();
        assert_eq!(tag.len(), 8);
        let a = user_for(1, &tag);
        let b = user_for(11, &tag);
        assert_ne!(a.email, b.email);
        assert!(!b.email.contains(&a.email));
        assert!(a.password.len() >= 12);
        assert!(a.email.starts_with("bench-1-") && a.email.ends_with("@example.com"));
    }
}
