//! Second factors: email one-time codes and TOTP (with recovery codes).
//!
//! A correct password on an account with a second factor opens a login
//! challenge (`mfa_token`, 256 bits, stored hashed, valid `OTP_EXPIRY_MINUTES`)
//! instead of a session. The challenge lives in the database, so any instance
//! can verify it. At most `MFA_CHALLENGES_PER_HOUR` challenges (and step-up
//! codes) are opened per account per hour; beyond that the answer is 429.
//!
//! Codes are limited twice: per challenge (at most five checks, reserved by
//! an atomic increment before the code is compared; then it is dead) and per
//! account, across challenges and instances (see [`super::factor_check`]):
//! past the account's limit the step answers 423 `account_locked`.
//!
//! Turning factors on, replacing or turning them off and making recovery
//! codes anew need a fresh proof within the request ([`super::reauth`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Serialize;
use uuid::Uuid;

use super::factor_check::{self, Checked};
use super::me::Principal;
use super::reauth::{self, Proof};
use super::tokens::{open_session, TokenPair};
use super::{credentials, AuthError, Services};
use crate::auth::{codes, tokens, totp};
use crate::domain::second_factor::{SecondFactorChange, SecondFactors};
use crate::domain::{reset, ClientContext, FieldError};
use crate::mail::templates;
use crate::storage::{
    ChallengeCode, LiveChallenge, NewMfaChallenge, SecondFactorUpdate, UserRecord, STEP_UP,
};

/// Wrong or right, codes checked per challenge at most.
pub const MAX_ATTEMPTS: u32 = 5;
/// Email codes sent per challenge at most (the first included).
pub const MAX_SENDS: u32 = 3;
const RECOVERY_CODES: usize = 10;

/// `200 {"mfa_required": true, ...}` of a login that needs a second factor.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MfaRequired {
    pub mfa_required: bool,
    pub mfa_token: String,
    /// `totp` first when enabled, then `email_otp`.
    pub methods: Vec<&'static str>,
}

fn methods_of(user: &UserRecord) -> Vec<&'static str> {
    let mut methods = Vec::new();
    if user.totp_enabled {
        methods.push("totp");
    }
    if user.email_otp_enabled {
        methods.push("email_otp");
    }
    methods
}

pub fn required(user: &UserRecord) -> bool {
    user.totp_enabled || user.email_otp_enabled
}

fn six_digits() -> String {
    format!("{:06}", rand::random_range(0..1_000_000u32))
}

fn otp_expiry(svc: &Services) -> chrono::Duration {
    chrono::Duration::from_std(svc.config.security.otp_expiry)
        .unwrap_or(chrono::Duration::minutes(5))
}

/// Stores a challenge for `user` under the hourly cap; `RateLimited` beyond it.
async fn open_challenge(
    svc: &Services,
    user: &UserRecord,
    token: &str,
    methods: String,
    device_id: Option<String>,
) -> Result<Uuid, AuthError> {
    let id = Uuid::new_v4();
    let now = svc.clock.now();
    let cap = svc.config.second_factor.challenges_per_hour;
    // When refused, how long until the oldest challenge of the hour ages out.
    let wait: Arc<Mutex<Option<Duration>>> = Arc::default();
    let slot = Arc::clone(&wait);
    let admit = Box::new(move |created: &[DateTime<Utc>]| {
        let admitted = reset::under_hourly_cap(created, now, cap);
        if !admitted {
            let hour = chrono::Duration::hours(1);
            let oldest = created.iter().filter(|t| **t > now - hour).min();
            let left = oldest.map_or(hour, |t| *t + hour - now);
            if let Ok(mut slot) = slot.lock() {
                *slot = left.to_std().ok();
            }
        }
        admitted
    });
    let stored = svc
        .store
        .create_mfa_challenge(NewMfaChallenge {
            id,
            user_id: user.id,
            token_hash: tokens::token_hash(token),
            device_id,
            methods,
            expires_at: now + otp_expiry(svc),
            now,
            admit,
        })
        .await?;
    if !stored {
        let retry_after = wait
            .lock()
            .ok()
            .and_then(|w| *w)
            .unwrap_or(Duration::from_secs(3600))
            .max(Duration::from_secs(1));
        return Err(AuthError::RateLimited {
            limit: cap,
            remaining: 0,
            reset: retry_after,
            retry_after,
        });
    }
    Ok(id)
}

/// Opens the challenge of a login whose password was correct.
pub async fn challenge(
    svc: &Services,
    user: &UserRecord,
    device_id: Option<String>,
    client: &ClientContext,
) -> Result<MfaRequired, AuthError> {
    challenge_for(svc, user, methods_of(user), device_id, client).await
}

/// Opens the email-code challenge of a correct password from a new device
/// on an account without a second factor (`NEW_DEVICE_STEP_UP`, see
/// [`super::devices`]); the code is mailed at once.
pub async fn new_device_challenge(
    svc: &Services,
    user: &UserRecord,
    device_id: Option<String>,
    client: &ClientContext,
) -> Result<MfaRequired, AuthError> {
    challenge_for(svc, user, vec!["email_otp"], device_id, client).await
}

async fn challenge_for(
    svc: &Services,
    user: &UserRecord,
    methods: Vec<&'static str>,
    device_id: Option<String>,
    client: &ClientContext,
) -> Result<MfaRequired, AuthError> {
    let token = tokens::random_token();
    let id = match open_challenge(svc, user, &token, methods.join(" "), device_id).await {
        Ok(id) => id,
        Err(e) => {
            if matches!(e, AuthError::RateLimited { .. }) {
                svc.metrics.login_failure("too_many_challenges");
                let reason = serde_json::json!({"reason": "too_many_challenges"});
                svc.audit("login", false, Some(user.id), client, reason)
                    .await;
            }
            return Err(e);
        }
    };
    // Email codes go out at once when email is the only factor.
    if methods == ["email_otp"] {
        send_code(svc, id, user).await?;
    }
    Ok(MfaRequired {
        mfa_required: true,
        mfa_token: token,
        methods,
    })
}

async fn send_code(
    svc: &Services,
    challenge_id: Uuid,
    user: &UserRecord,
) -> Result<bool, AuthError> {
    let code = six_digits();
    let now = svc.clock.now();
    let minutes = svc.config.security.otp_expiry.as_secs().div_ceil(60);
    let mail = templates::otp_code(user.email.as_str(), &code, minutes);
    let queued = svc
        .mailer
        .prepare(&mail)
        .map_err(|e| AuthError::Internal(e.into()))?;
    let hash = codes::keyed_hash(svc.mailer.sealer(), &challenge_id.to_string(), &code);
    let stored = svc
        .store
        .set_challenge_code(
            challenge_id,
            ChallengeCode {
                code_hash: hash,
                expires_at: now + otp_expiry(svc),
                max_sends: MAX_SENDS,
                mail: Some(queued),
            },
        )
        .await?;
    if stored {
        svc.mailer.queued(mail.template);
    }
    Ok(stored)
}

/// `POST /otp/send`: (re)sends the email code of a challenge.
pub async fn resend(svc: &Services, mfa_token: &str) -> Result<(), AuthError> {
    let (challenge, user) = live_challenge(svc, mfa_token).await?;
    if !challenge
        .methods
        .split_whitespace()
        .any(|m| m == "email_otp")
    {
        return Err(AuthError::InvalidMfaToken);
    }
    if !send_code(svc, challenge.id, &user).await? {
        return Err(AuthError::RateLimited {
            limit: MAX_SENDS,
            remaining: 0,
            reset: svc.config.security.otp_expiry,
            retry_after: svc.config.security.otp_expiry,
        });
    }
    Ok(())
}

/// `POST /me/2fa/email/code`: mails a step-up code to a signed-in user whose
/// email codes are on, for the fresh proof of a change (counts toward the
/// hourly challenge cap).
pub async fn send_step_up(svc: &Services, principal: &Principal) -> Result<(), AuthError> {
    let user = reauth::current_user(svc, principal).await?;
    if !user.email_otp_enabled {
        return Err(AuthError::Validation(vec![FieldError::new(
            "email_otp",
            "email_otp_not_enabled",
            "email codes are off for this account: use the authenticator app or a recovery code",
        )]));
    }
    // The challenge's token is never handed out: the code is looked up by user.
    let token = tokens::random_token();
    let id = open_challenge(svc, &user, &token, STEP_UP.to_string(), None).await?;
    send_code(svc, id, &user).await?;
    Ok(())
}

async fn live_challenge(
    svc: &Services,
    mfa_token: &str,
) -> Result<(crate::storage::MfaChallengeRecord, UserRecord), AuthError> {
    let token = mfa_token.trim();
    if !tokens::well_formed(token) {
        return Err(AuthError::InvalidMfaToken);
    }
    let challenge = svc
        .store
        .find_mfa_challenge(
            &tokens::token_hash(token),
            LiveChallenge {
                now: svc.clock.now(),
                max_attempts: MAX_ATTEMPTS,
            },
        )
        .await?
        .ok_or(AuthError::InvalidMfaToken)?;
    let user = svc
        .store
        .find_user_by_id(challenge.user_id)
        .await?
        .filter(|u| u.is_active)
        .ok_or(AuthError::InvalidMfaToken)?;
    Ok((challenge, user))
}

/// `POST /otp/verify`: a TOTP code, an email code or a recovery code.
#[tracing::instrument(skip_all, fields(user_id = tracing::field::Empty))]
pub async fn verify(
    svc: &Services,
    mfa_token: &str,
    code: &str,
    client: &ClientContext,
) -> Result<TokenPair, AuthError> {
    let (challenge, user) = live_challenge(svc, mfa_token).await?;
    tracing::Span::current().record("user_id", tracing::field::display(user.id));
    // Reserve the attempt before checking: at most five checks per challenge
    // (and, below, within the account's limit across challenges).
    if !svc
        .store
        .reserve_mfa_attempt(challenge.id, MAX_ATTEMPTS)
        .await?
    {
        return Err(AuthError::InvalidMfaToken);
    }
    let methods: Vec<&str> = challenge.methods.split_whitespace().collect();
    let emailed = methods.contains(&"email_otp").then_some(&challenge);
    let totp = methods.contains(&"totp");
    let checked = factor_check::limited(svc, &user, client, || {
        factor_check::compare_code(svc, &user, emailed, totp, code)
    })
    .await?;
    let reason = match checked {
        Checked::Accepted(_) => None,
        Checked::Wrong => Some("invalid_code"),
        Checked::Locked { .. } => Some("account_locked"),
    };
    if let Some(reason) = reason {
        svc.metrics.login_failure(reason);
        let detail = serde_json::json!({"reason": reason});
        svc.audit("mfa_verify", false, Some(user.id), client, detail)
            .await;
        return Err(match checked {
            Checked::Locked { retry_after } => AuthError::AccountLocked { retry_after },
            _ => AuthError::InvalidCode,
        });
    }
    let now = svc.clock.now();
    if !svc.store.consume_mfa_challenge(challenge.id, now).await? {
        return Err(AuthError::InvalidMfaToken);
    }
    let pair = open_session(
        svc,
        &user,
        challenge.device_id.clone(),
        client,
        &["pwd", "otp"],
    )
    .await?;
    super::devices::record_sign_in(
        svc,
        &user,
        challenge.device_id.as_deref(),
        client,
        pair.session_id,
    )
    .await?;
    svc.store.record_login_success(user.id, now, None).await?;
    svc.metrics.login_success(true);
    svc.audit(
        "login",
        true,
        Some(user.id),
        client,
        serde_json::json!({"session_id": pair.session_id, "amr": ["pwd", "otp"]}),
    )
    .await;
    Ok(pair)
}

/// `POST /me/2fa/email`: email codes on (fresh proof; mails the owner, ends
/// the other sessions).
pub async fn enable_email(
    svc: &Services,
    principal: &Principal,
    proof: Proof<'_>,
    client: &ClientContext,
) -> Result<(), AuthError> {
    let user = reauth::current_user(svc, principal).await?;
    if !user.email_verified {
        return Err(AuthError::EmailNotVerified);
    }
    reauth::prove(svc, &user, proof, client, "two_factor_enabled").await?;
    let mail = templates::new_two_factor(user.email.as_str(), "one-time codes by email");
    let queued = svc
        .mailer
        .prepare(&mail)
        .map_err(|e| AuthError::Internal(e.into()))?;
    let enable: SecondFactorChange = Box::new(|f| f.with_email_otp(true));
    svc.store
        .update_second_factors(
            user.id,
            SecondFactorUpdate {
                change: enable,
                recovery: None,
                now: svc.clock.now(),
                mail: Some(queued),
            },
        )
        .await?;
    svc.mailer.queued(mail.template);
    let detail = serde_json::json!({"method": "email_otp"});
    reauth::changed(svc, principal, client, "two_factor_enabled", detail).await
}

/// `POST /me/2fa/totp/setup` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TotpSetup {
    /// Base32, for manual entry.
    pub secret: String,
    pub otpauth_uri: String,
}

/// `POST /me/2fa/totp/setup`: a new pending secret (fresh proof). Nothing is
/// active until `/totp/enable` confirms it, so nothing is mailed yet.
pub async fn totp_setup(
    svc: &Services,
    principal: &Principal,
    proof: Proof<'_>,
    client: &ClientContext,
) -> Result<TotpSetup, AuthError> {
    let user = reauth::current_user(svc, principal).await?;
    reauth::prove(svc, &user, proof, client, "two_factor_setup").await?;
    let secret = totp::new_secret();
    let sealed = svc
        .mailer
        .sealer()
        .seal(&secret)
        .map_err(|e| AuthError::Internal(e.into()))?;
    let pending: SecondFactorChange = Box::new(move |f| f.with_pending(Some(sealed)));
    svc.store
        .update_second_factors(
            user.id,
            SecondFactorUpdate {
                change: pending,
                recovery: None,
                now: svc.clock.now(),
                mail: None,
            },
        )
        .await?;
    svc.audit(
        "two_factor_setup",
        true,
        Some(user.id),
        client,
        serde_json::json!({"method": "totp"}),
    )
    .await;
    let b32 = totp::base32(&secret);
    Ok(TotpSetup {
        otpauth_uri: totp::otpauth_uri("SUMA Finance", user.email.as_str(), &b32),
        secret: b32,
    })
}

/// Ten single-use recovery codes, shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecoveryCodes {
    /// Ten single-use codes; shown once.
    pub recovery_codes: Vec<String>,
}

/// New recovery codes for `user`: the codes and their keyed hashes.
fn new_recovery_codes(svc: &Services, user: &UserRecord) -> (Vec<String>, Vec<String>) {
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let raw = totp::base32(&{
                let mut b = [0u8; 7];
                rand::fill(&mut b[..]);
                b
            })
            .to_lowercase();
            format!("{}-{}", &raw[..5], &raw[5..10])
        })
        .collect();
    let scope = user.id.to_string();
    let hashes = codes
        .iter()
        .map(|c| codes::keyed_hash(svc.mailer.sealer(), &scope, &codes::normalize_recovery(c)))
        .collect();
    (codes, hashes)
}

/// `POST /me/2fa/totp/enable`: confirms the pending secret with one of its
/// codes and the password. The current factor was proven when the secret
/// was set up (only a fresh proof issues one); wrong codes count toward the
/// second-factor limit. Mails the owner, ends the other sessions.
pub async fn totp_enable(
    svc: &Services,
    principal: &Principal,
    password: &SecretString,
    code: &str,
    client: &ClientContext,
) -> Result<RecoveryCodes, AuthError> {
    let user = reauth::current_user(svc, principal).await?;
    let invalid = || {
        AuthError::Validation(vec![FieldError::new(
            "code",
            "invalid_code",
            "the code does not match; check the device's clock",
        )])
    };
    let Some(pending) = user.totp_pending_sealed.clone() else {
        return Err(AuthError::Validation(vec![FieldError::new(
            "code",
            "setup_required",
            "call /me/2fa/totp/setup first",
        )]));
    };
    credentials::prove_password(svc, &user, password, client, Some("two_factor_enabled")).await?;
    let secret = svc
        .mailer
        .sealer()
        .open(&pending)
        .map_err(|e| AuthError::Internal(e.into()))?;
    let now = svc.clock.unix();
    let checked = factor_check::limited(svc, &user, client, || async {
        Ok(totp::matching_step(&secret, code.trim(), now))
    })
    .await?;
    let step = match checked {
        Checked::Accepted(step) => step,
        Checked::Wrong => return Err(invalid()),
        Checked::Locked { retry_after } => return Err(AuthError::AccountLocked { retry_after }),
    };
    let replacing = user.totp_enabled;
    let (codes, hashes) = new_recovery_codes(svc, &user);
    let mail = if replacing {
        templates::two_factor_changed(
            user.email.as_str(),
            "A new authenticator app replaced the earlier one on your SUMA Finance account, with new recovery codes.",
        )
    } else {
        templates::new_two_factor(user.email.as_str(), "an authenticator app")
    };
    let queued = svc
        .mailer
        .prepare(&mail)
        .map_err(|e| AuthError::Internal(e.into()))?;
    let confirm: SecondFactorChange = Box::new(move |f| f.confirm_totp(&pending, step));
    if !svc
        .store
        .update_second_factors(
            user.id,
            SecondFactorUpdate {
                change: confirm,
                recovery: Some(hashes),
                now: svc.clock.now(),
                mail: Some(queued),
            },
        )
        .await?
    {
        return Err(invalid());
    }
    svc.mailer.queued(mail.template);
    let detail = serde_json::json!({"method": "totp", "replaced": replacing});
    reauth::changed(svc, principal, client, "two_factor_enabled", detail).await?;
    Ok(RecoveryCodes {
        recovery_codes: codes,
    })
}

/// `POST /me/2fa/recovery-codes`: ten new recovery codes replace the earlier
/// ones (fresh proof; TOTP must be on). Mails the owner, ends the other sessions.
pub async fn regenerate_recovery_codes(
    svc: &Services,
    principal: &Principal,
    proof: Proof<'_>,
    client: &ClientContext,
) -> Result<RecoveryCodes, AuthError> {
    let user = reauth::current_user(svc, principal).await?;
    let not_enabled = || {
        AuthError::Validation(vec![FieldError::new(
            "code",
            "totp_not_enabled",
            "recovery codes come with an authenticator app: turn TOTP on first",
        )])
    };
    if !user.totp_enabled {
        return Err(not_enabled());
    }
    reauth::prove(svc, &user, proof, client, "recovery_codes_regenerated").await?;
    let (codes, hashes) = new_recovery_codes(svc, &user);
    let mail = templates::two_factor_changed(
        user.email.as_str(),
        "New recovery codes were made for your SUMA Finance account; the earlier ones no longer work.",
    );
    let queued = svc
        .mailer
        .prepare(&mail)
        .map_err(|e| AuthError::Internal(e.into()))?;
    let keep: SecondFactorChange = Box::new(|f| f.totp.then_some(f));
    if !svc
        .store
        .update_second_factors(
            user.id,
            SecondFactorUpdate {
                change: keep,
                recovery: Some(hashes),
                now: svc.clock.now(),
                mail: Some(queued),
            },
        )
        .await?
    {
        return Err(not_enabled());
    }
    svc.mailer.queued(mail.template);
    reauth::changed(
        svc,
        principal,
        client,
        "recovery_codes_regenerated",
        serde_json::json!({}),
    )
    .await?;
    Ok(RecoveryCodes {
        recovery_codes: codes,
    })
}

/// `POST /me/2fa/disable`: every factor off, recovery codes forgotten (fresh
/// proof: the password and a current code). Mails the owner, ends the other
/// sessions.
pub async fn disable(
    svc: &Services,
    principal: &Principal,
    proof: Proof<'_>,
    client: &ClientContext,
) -> Result<(), AuthError> {
    let user = reauth::current_user(svc, principal).await?;
    reauth::prove(svc, &user, proof, client, "two_factor_disabled").await?;
    let was_on = required(&user);
    let mail = templates::two_factor_changed(
        user.email.as_str(),
        "Two-step sign-in was turned off for your SUMA Finance account.",
    );
    let queued = if was_on {
        Some(
            svc.mailer
                .prepare(&mail)
                .map_err(|e| AuthError::Internal(e.into()))?,
        )
    } else {
        None
    };
    let off: SecondFactorChange = Box::new(|_| Some(SecondFactors::disabled()));
    svc.store
        .update_second_factors(
            user.id,
            SecondFactorUpdate {
                change: off,
                recovery: Some(Vec::new()),
                now: svc.clock.now(),
                mail: queued,
            },
        )
        .await?;
    if was_on {
        svc.mailer.queued(mail.template);
        reauth::changed(
            svc,
            principal,
            client,
            "two_factor_disabled",
            serde_json::json!({}),
        )
        .await?;
    }
    Ok(())
}
