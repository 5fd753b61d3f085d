//! Second factors: email one-time codes and TOTP (with recovery codes).
//!
//! A correct password on an account with a second factor opens a login
//! challenge (`mfa_token`, 256 bits, stored hashed, valid `OTP_EXPIRY_MINUTES`)
//! instead of a session. The challenge lives in the database, so any instance
//! can verify it; each verification reserves an attempt first (an atomic
//! increment), so at most five codes are ever checked against one challenge,
//! whatever the concurrency, and then it is dead. A success spends it.

use secrecy::SecretString;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::credentials;
use super::me::Principal;
use super::tokens::{open_session, TokenPair};
use super::{AuthError, Services};
use crate::auth::{tokens, totp};
use crate::domain::second_factor::{SecondFactorChange, SecondFactors};
use crate::domain::ClientContext;
use crate::domain::FieldError;
use crate::mail::templates;
use crate::storage::{NewMfaChallenge, SecondFactorUpdate, UserRecord};

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

/// A code's digest, bound to its challenge so equal codes never share a hash.
fn code_hash(challenge_id: Uuid, code: &str) -> String {
    hex::encode(Sha256::digest(format!("{challenge_id}:{code}").as_bytes()))
}

fn recovery_hash(user_id: Uuid, code: &str) -> String {
    let normalized: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    hex::encode(Sha256::digest(format!("{user_id}:{normalized}").as_bytes()))
}

fn six_digits() -> String {
    format!("{:06}", rand::random_range(0..1_000_000u32))
}

/// Opens the challenge of a login whose password was correct.
pub async fn challenge(
    svc: &Services,
    user: &UserRecord,
    device_id: Option<String>,
) -> Result<MfaRequired, AuthError> {
    let methods = methods_of(user);
    let token = tokens::random_token();
    let id = Uuid::new_v4();
    let now = svc.clock.now();
    let expiry = chrono::Duration::from_std(svc.config.security.otp_expiry)
        .unwrap_or(chrono::Duration::minutes(5));
    svc.store
        .create_mfa_challenge(NewMfaChallenge {
            id,
            user_id: user.id,
            token_hash: tokens::token_hash(&token),
            device_id,
            methods: methods.join(" "),
            expires_at: now + expiry,
            now,
        })
        .await?;
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
    let expiry = chrono::Duration::from_std(svc.config.security.otp_expiry)
        .unwrap_or(chrono::Duration::minutes(5));
    let minutes = svc.config.security.otp_expiry.as_secs().div_ceil(60);
    let mail = templates::otp_code(user.email.as_str(), &code, minutes);
    let queued = svc
        .mailer
        .prepare(&mail)
        .map_err(|e| AuthError::Internal(e.into()))?;
    let stored = svc
        .store
        .set_challenge_code(
            challenge_id,
            &code_hash(challenge_id, &code),
            now + expiry,
            MAX_SENDS,
            Some(queued),
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
        .find_mfa_challenge(&tokens::token_hash(token), svc.clock.now(), MAX_ATTEMPTS)
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
    // Reserve the attempt before checking: at most five checks per challenge.
    if !svc
        .store
        .reserve_mfa_attempt(challenge.id, MAX_ATTEMPTS)
        .await?
    {
        return Err(AuthError::InvalidMfaToken);
    }
    let code = code.trim();
    let now = svc.clock.now();
    let methods: Vec<&str> = challenge.methods.split_whitespace().collect();
    let mut accepted = false;
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        if methods.contains(&"email_otp") {
            if let (Some(hash), Some(expires)) =
                (&challenge.otp_code_hash, challenge.otp_expires_at)
            {
                accepted = expires > now && constant_eq(hash, &code_hash(challenge.id, code));
            }
        }
        if !accepted && methods.contains(&"totp") {
            if let Some(secret) = totp_secret(svc, &user)? {
                if let Some(step) = totp::matching_step(&secret, code, now.timestamp()) {
                    // A code already used in its step is refused (replay).
                    accepted = svc
                        .store
                        .update_second_factors(
                            user.id,
                            SecondFactorUpdate {
                                change: Box::new(move |f| f.accept_step(step)),
                                recovery: None,
                                now,
                                mail: None,
                            },
                        )
                        .await?;
                }
            }
        }
    } else if methods.contains(&"totp") && code.len() >= 10 {
        accepted = svc
            .store
            .use_recovery_code(user.id, &recovery_hash(user.id, code), now)
            .await?;
    }
    if !accepted {
        svc.metrics.login_failure("invalid_code");
        svc.audit(
            "mfa_verify",
            false,
            Some(user.id),
            client,
            serde_json::json!({"reason": "invalid_code"}),
        )
        .await;
        return Err(AuthError::InvalidCode);
    }
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

fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn totp_secret(svc: &Services, user: &UserRecord) -> Result<Option<Vec<u8>>, AuthError> {
    match &user.totp_secret_sealed {
        Some(sealed) => svc
            .mailer
            .sealer()
            .open(sealed)
            .map(Some)
            .map_err(|e| AuthError::Internal(e.into())),
        None => Ok(None),
    }
}

/// `POST /me/2fa/email`.
pub async fn enable_email(
    svc: &Services,
    principal: &Principal,
    client: &ClientContext,
) -> Result<(), AuthError> {
    let user = current_user(svc, principal).await?;
    if !user.email_verified {
        return Err(AuthError::EmailNotVerified);
    }
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
    svc.audit(
        "two_factor_enabled",
        true,
        Some(user.id),
        client,
        serde_json::json!({"method": "email_otp"}),
    )
    .await;
    Ok(())
}

/// `POST /me/2fa/totp/setup` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TotpSetup {
    /// Base32, for manual entry.
    pub secret: String,
    pub otpauth_uri: String,
}

pub async fn totp_setup(svc: &Services, principal: &Principal) -> Result<TotpSetup, AuthError> {
    let user = current_user(svc, principal).await?;
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
    let b32 = totp::base32(&secret);
    Ok(TotpSetup {
        otpauth_uri: totp::otpauth_uri("SUMA Finance", user.email.as_str(), &b32),
        secret: b32,
    })
}

/// `POST /me/2fa/totp/enable` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecoveryCodes {
    /// Ten single-use codes; shown once.
    pub recovery_codes: Vec<String>,
}

pub async fn totp_enable(
    svc: &Services,
    principal: &Principal,
    code: &str,
    client: &ClientContext,
) -> Result<RecoveryCodes, AuthError> {
    let user = current_user(svc, principal).await?;
    let invalid = || {
        AuthError::Validation(vec![FieldError::new(
            "code",
            "invalid_code",
            "the code does not match; check the device's clock",
        )])
    };
    let Some(pending) = &user.totp_pending_sealed else {
        return Err(AuthError::Validation(vec![FieldError::new(
            "code",
            "setup_required",
            "call /me/2fa/totp/setup first",
        )]));
    };
    let secret = svc
        .mailer
        .sealer()
        .open(pending)
        .map_err(|e| AuthError::Internal(e.into()))?;
    let step = totp::matching_step(&secret, code.trim(), svc.clock.unix()).ok_or_else(invalid)?;
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
    let hashes: Vec<String> = codes.iter().map(|c| recovery_hash(user.id, c)).collect();
    let mail = templates::new_two_factor(user.email.as_str(), "an authenticator app");
    let queued = svc
        .mailer
        .prepare(&mail)
        .map_err(|e| AuthError::Internal(e.into()))?;
    let pending = pending.clone();
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
    svc.audit(
        "two_factor_enabled",
        true,
        Some(user.id),
        client,
        serde_json::json!({"method": "totp"}),
    )
    .await;
    Ok(RecoveryCodes {
        recovery_codes: codes,
    })
}

/// `POST /me/2fa/disable`: needs the password (a wrong one counts toward the lockout).
pub async fn disable(
    svc: &Services,
    principal: &Principal,
    password: &SecretString,
    client: &ClientContext,
) -> Result<(), AuthError> {
    let user = current_user(svc, principal).await?;
    credentials::prove_password(svc, &user, password, client, None).await?;
    let off: SecondFactorChange = Box::new(|_| Some(SecondFactors::disabled()));
    svc.store
        .update_second_factors(
            user.id,
            SecondFactorUpdate {
                change: off,
                recovery: Some(Vec::new()),
                now: svc.clock.now(),
                mail: None,
            },
        )
        .await?;
    svc.audit(
        "two_factor_disabled",
        true,
        Some(user.id),
        client,
        serde_json::json!({}),
    )
    .await;
    Ok(())
}

async fn current_user(svc: &Services, principal: &Principal) -> Result<UserRecord, AuthError> {
    svc.store
        .find_user_by_id(principal.user_id)
        .await?
        .ok_or(AuthError::Unauthorized("the account no longer exists"))
}

/// Checks a code of the user's enrolled TOTP for an action on the account
/// (not a login): a current TOTP code (each step once) or an unused recovery
/// code, which is then spent. False when TOTP is not enrolled or the code is wrong.
pub async fn check_totp_or_recovery(
    svc: &Services,
    user: &UserRecord,
    code: &str,
) -> Result<bool, AuthError> {
    if !user.totp_enabled {
        return Ok(false);
    }
    let code = code.trim();
    let now = svc.clock.now();
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        let Some(secret) = totp_secret(svc, user)? else {
            return Ok(false);
        };
        let Some(step) = totp::matching_step(&secret, code, now.timestamp()) else {
            return Ok(false);
        };
        return Ok(svc
            .store
            .update_second_factors(
                user.id,
                SecondFactorUpdate {
                    change: Box::new(move |f| f.accept_step(step)),
                    recovery: None,
                    now,
                    mail: None,
                },
            )
            .await?);
    }
    if code.len() >= 10 {
        return Ok(svc
            .store
            .use_recovery_code(user.id, &recovery_hash(user.id, code), now)
            .await?);
    }
    Ok(false)
}
