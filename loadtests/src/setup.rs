//! `setup`: registers N users and verifies their email addresses through the
//! verification mails (the mail files the server writes in embedded mode, or the
//! harness's SMTP sink); optionally turns email one-time codes on for some.
//!
//! Registration is rate-limited per client IP (3 per 5 minutes by default): start the
//! server with a high `RATE_LIMIT_REGISTER` (bench.sh does) or this will stall on 429s.

use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::http::StatusCode;

use crate::api::{self, User, UsersFile};
use crate::mailbox::{self, Mail, Mailbox};
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
    // A long random part keeps every password clear of breach lists and strength
    // estimators, whatever the server's policy.
    let secret: u64 = rand::random();
    User {
        email: format!("bench-{i}-{tag}@example.com"),
        password: format!("correct horse battery staple {i} {tag} {secret:016x}"),
        verified: false,
    }
}

fn random_tag() -> String {
    let n: u32 = rand::random();
    format!("{n:08x}")
}

/// `setup`: registers and verifies users, reading the mail files under
/// `opts.mail_dir`; writes the users file.
pub fn setup(opts: &SetupOpts) -> Result<UsersFile, String> {
    let mailbox = Mailbox::new();
    let _watch = mailbox::watch_mail_dir(opts.mail_dir.clone(), Arc::clone(&mailbox), true)?;
    let prepared = prepare(&PrepareOpts {
        base: opts.base.clone(),
        mailbox,
        users: opts.users,
        otp_users: 0,
        concurrency: opts.concurrency,
        mail_timeout: opts.mail_timeout,
        timeout: opts.timeout,
    })?;
    let file = UsersFile {
        base_url: opts.base.as_str().to_owned(),
        tag: prepared.tag.clone(),
        users: prepared.all,
    };
    let ok = file.usable().len();
    file.save(&opts.out)?;
    eprintln!(
        "setup: {}/{} registered, {ok} verified; wrote {}",
        prepared.registered,
        opts.users,
        opts.out.display()
    );
    if ok == 0 {
        return Err(format!(
            "no user could be verified (mail read from {}); see the messages above",
            opts.mail_dir.display()
        ));
    }
    Ok(file)
}

#[derive(Debug, Clone)]
pub struct PrepareOpts {
    pub base: BaseUrl,
    pub mailbox: Arc<Mailbox>,
    /// Accounts to sign in with.
    pub users: usize,
    /// Further accounts with email one-time codes turned on (for login_otp).
    pub otp_users: usize,
    pub concurrency: usize,
    pub mail_timeout: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Prepared {
    pub tag: String,
    pub registered: usize,
    /// Every account, verified or not.
    pub all: Vec<User>,
    /// Verified accounts without a second factor.
    pub users: Vec<User>,
    /// Verified accounts with email codes on.
    pub otp_users: Vec<User>,
}

/// Registers `users + otp_users` accounts, verifies them through the mail, and
/// turns email codes on for the last `otp_users`.
pub fn prepare(opts: &PrepareOpts) -> Result<Prepared, String> {
    let tag = random_tag();
    let total = opts.users + opts.otp_users;
    let users: Vec<User> = (0..total).map(|i| user_for(i, &tag)).collect();
    let opts2 = opts.clone();
    let (registered, all, otp_ok) = actix_rt::System::new().block_on(async move {
        let (registered, verified) = register_and_verify(&opts2, users).await?;
        let otp_ok = enable_otp(&opts2, &verified[opts2.users.min(verified.len())..]).await?;
        Ok::<_, String>((registered, verified, otp_ok))
    })?;
    let plain: Vec<User> = all[..opts.users.min(all.len())]
        .iter()
        .filter(|u| u.verified)
        .cloned()
        .collect();
    Ok(Prepared {
        tag,
        registered,
        users: plain,
        otp_users: otp_ok,
        all,
    })
}

async fn register_and_verify(
    opts: &PrepareOpts,
    users: Vec<User>,
) -> Result<(usize, Vec<User>), String> {
    let started = Instant::now();
    let outcomes = register_all(opts, &users).await;
    let mut first_error = None;
    let mut registered = 0usize;
    let mut flags = Vec::with_capacity(users.len());
    for outcome in &outcomes {
        match outcome {
            Ok(()) => {
                registered += 1;
                flags.push(true);
            }
            Err(e) => {
                first_error.get_or_insert(e.clone());
                flags.push(false);
            }
        }
    }
    if let Some(e) = &first_error {
        eprintln!("setup: some registrations failed; first error: {e}");
    }
    if registered == 0 {
        return Err(first_error.unwrap_or_else(|| "no user registered".to_owned()));
    }
    eprintln!(
        "setup: registered {registered} users in {:.1} s; verifying them through the mail",
        started.elapsed().as_secs_f64(),
    );
    let verified = verify_all(opts, users, &flags).await;
    Ok((registered, verified))
}

/// Registers every user with `opts.concurrency` workers pulling from a shared index.
async fn register_all(opts: &PrepareOpts, users: &[User]) -> Vec<Result<(), String>> {
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

/// Takes each registered user's verification mail from the mailbox and confirms
/// it, until all are verified or the mail timeout passes. Returns all users, each
/// with its `verified` flag set.
async fn verify_all(opts: &PrepareOpts, mut users: Vec<User>, registered: &[bool]) -> Vec<User> {
    let client = api::client(opts.timeout);
    let url = opts.base.join(api::VERIFY_EMAIL);
    let deadline = Instant::now() + opts.mail_timeout;
    let mut last_problem = String::new();
    loop {
        for (user, _) in users
            .iter_mut()
            .zip(registered)
            .filter(|(u, &r)| r && !u.verified)
        {
            let Some(mail) = opts
                .mailbox
                .take(&user.email, |m: &Mail| m.verify_token().is_some())
            else {
                continue;
            };
            let Some(token) = mail.verify_token() else {
                continue;
            };
            let body = serde_json::json!({ "token": token }).to_string();
            match api::post_json(&client, &url, body).await {
                Ok((StatusCode::OK, _, _)) => user.verified = true,
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
        let pending = users
            .iter()
            .zip(registered)
            .filter(|(u, &r)| r && !u.verified)
            .count();
        if pending == 0 {
            break;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "setup: {pending} users still unverified after {:.0} s ({} mails received){}",
                opts.mail_timeout.as_secs_f64(),
                opts.mailbox.received(),
                if last_problem.is_empty() {
                    String::new()
                } else {
                    format!("; last problem: {last_problem}")
                }
            );
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    users
}

/// Signs each user in and turns email one-time codes on; returns those for
/// which it worked.
async fn enable_otp(opts: &PrepareOpts, users: &[User]) -> Result<Vec<User>, String> {
    let client = api::client(opts.timeout);
    let url = opts.base.join(api::ENABLE_EMAIL_OTP);
    let mut done = Vec::new();
    for user in users.iter().filter(|u| u.verified) {
        let pair = api::login(&client, &opts.base, user).await?;
        let resp = client
            .post(url.as_str())
            .insert_header(("Authorization", format!("Bearer {}", pair.access_token)))
            // a change of second factors carries the password
            .send_json(&serde_json::json!({"password": user.password}))
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        if resp.status() == StatusCode::NO_CONTENT || resp.status() == StatusCode::OK {
            done.push(user.clone());
        } else {
            return Err(format!(
                "turning email codes on for {} answered {}",
                user.email,
                resp.status()
            ));
        }
    }
    Ok(done)
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
