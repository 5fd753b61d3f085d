//! Second factors: the code step of a sign-in (`/otp/send`, `/otp/verify`)
//! and the signed-in user's changes (email one-time codes, TOTP with recovery
//! codes). Challenges are opened and their codes mailed by
//! [`super::second_factor`].
//!
//! Codes are limited twice: per challenge (at most five checks, reserved by
//! an atomic increment before the code is compared; then it is dead) and per
//! account, across challenges and instances (see [`super::factor_check`]):
//! past the account's limit the step answers 423 `account_locked`.
//!
//! Turning factors on, replacing or turning them off and making recovery
//! codes anew need a fresh proof within the request ([`super::reauth`]).

use secrecy::SecretString;
use serde::Serialize;

use super::credentials::PasswordCheck;
use super::factor_check::{self, Checked, CodeCheck};
use super::principal::{current_user, Principal};
use super::reauth::{self, Proof, Reauth};
use super::second_factor::{self, open_challenge, send_code, Challenges, MAX_ATTEMPTS, MAX_SENDS};
use super::sign_in;
use super::tokens::TokenPair;
use super::{credentials, Audit, AuthError, CodeError, Parts, SignIn};
use crate::auth::{codes, tokens, totp};
use crate::clock::Clock;
use crate::domain::second_factor::{SecondFactorChange, SecondFactors};
use crate::domain::{ClientContext, FieldError};
use crate::mail::Mailer;
use crate::mail::{templates, OutgoingMail};
use crate::storage::DynStore;
use crate::storage::{LiveChallenge, SecondFactorUpdate, UserRecord, STEP_UP};

const RECOVERY_CODES: usize = 10;

/// The second-factor area: what a signed-in user changes of their second
/// factors (the code step of a sign-in is the [`SignIn`] area's). Cheap to
/// clone.
#[derive(Clone)]
pub struct Factors {
    store: DynStore,
    mailer: Mailer,
    clock: Clock,
    audit: Audit,
    passwords: PasswordCheck,
    codes: CodeCheck,
    challenges: Challenges,
    reauth: Reauth,
}

impl Factors {
    pub fn new(
        parts: &Parts,
        passwords: PasswordCheck,
        codes: CodeCheck,
        challenges: Challenges,
        reauth: Reauth,
    ) -> Self {
        Self {
            store: parts.store.clone(),
            mailer: parts.mailer.clone(),
            clock: parts.clock.clone(),
            audit: parts.audit(),
            passwords,
            codes,
            challenges,
            reauth,
        }
    }
}

/// `POST /otp/send`: (re)sends the email code of a challenge.
pub async fn resend(svc: &SignIn, mfa_token: &str) -> Result<(), CodeError> {
    let (challenge, user) = live_challenge(svc, mfa_token).await?;
    if !challenge
        .methods
        .split_whitespace()
        .any(|m| m == "email_otp")
    {
        return Err(CodeError::InvalidChallenge);
    }
    if !send_code(&svc.challenges, challenge.id, &user).await? {
        let lifetime = svc.challenges.code_lifetime();
        return Err(AuthError::RateLimited {
            limit: MAX_SENDS,
            remaining: 0,
            reset: lifetime,
            retry_after: lifetime,
        }
        .into());
    }
    Ok(())
}

/// `POST /me/2fa/email/code`: mails a step-up code to a signed-in user whose
/// email codes are on, for the fresh proof of a change (counts toward the
/// hourly challenge cap).
pub async fn send_step_up(svc: &Factors, principal: &Principal) -> Result<(), AuthError> {
    let user = current_user(&svc.store, principal).await?;
    if !user.email_otp_enabled {
        return Err(AuthError::Validation(vec![FieldError::new(
            "email_otp",
            "email_otp_not_enabled",
            "email codes are off for this account: use the authenticator app or a recovery code",
        )]));
    }
    // The challenge's token is never handed out: the code is looked up by user.
    let token = tokens::random_token();
    let id = open_challenge(&svc.challenges, &user, &token, STEP_UP.to_string(), None).await?;
    send_code(&svc.challenges, id, &user).await?;
    Ok(())
}

async fn live_challenge(
    svc: &SignIn,
    mfa_token: &str,
) -> Result<(crate::storage::MfaChallengeRecord, UserRecord), CodeError> {
    let token = mfa_token.trim();
    if !tokens::well_formed(token) {
        return Err(CodeError::InvalidChallenge);
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
        .ok_or(CodeError::InvalidChallenge)?;
    let user = svc
        .store
        .find_user_by_id(challenge.user_id)
        .await?
        .filter(|u| u.is_active)
        .ok_or(CodeError::InvalidChallenge)?;
    Ok((challenge, user))
}

/// `POST /otp/verify`: a TOTP code, an email code or a recovery code.
#[tracing::instrument(skip_all, fields(user_id = tracing::field::Empty))]
pub async fn verify(
    svc: &SignIn,
    mfa_token: &str,
    code: &str,
    client: &ClientContext,
) -> Result<TokenPair, CodeError> {
    let (challenge, user) = live_challenge(svc, mfa_token).await?;
    tracing::Span::current().record("user_id", tracing::field::display(user.id));
    // Reserve the attempt before checking: at most five checks per challenge
    // (and, below, within the account's limit across challenges).
    if !svc
        .store
        .reserve_mfa_attempt(challenge.id, MAX_ATTEMPTS)
        .await?
    {
        return Err(CodeError::InvalidChallenge);
    }
    let methods: Vec<&str> = challenge.methods.split_whitespace().collect();
    let emailed = methods.contains(&"email_otp").then_some(&challenge);
    let totp = methods.contains(&"totp");
    let checked = factor_check::limited(&svc.codes, &user, client, || {
        factor_check::compare_code(&svc.codes, &user, emailed, totp, code)
    })
    .await?;
    let reason = match checked {
        Checked::Accepted(_) => None,
        Checked::Wrong => Some("invalid_code"),
        Checked::Locked { .. } => Some("account_locked"),
    };
    if let Some(reason) = reason {
        sign_in::refused(svc, "mfa_verify", reason, Some(user.id), client).await;
        return Err(match checked {
            Checked::Locked { retry_after } => CodeError::Locked { retry_after },
            _ => CodeError::WrongCode,
        });
    }
    // The challenge is spent with the session, in one write: a step
    // answered 503 leaves both undone, and the same code can be sent again.
    Ok(sign_in::open(
        svc,
        &user,
        challenge.device_id,
        client,
        &["pwd", "otp"],
        None,
        Some(challenge.id),
    )
    .await?)
}

/// Applies `change` to `user`'s second factors, with `recovery` (the hashes
/// of new recovery codes, or none to keep them) and the owner's `mail` in
/// the same transaction; `false` (nothing written) when the change refuses.
async fn change_factors(
    svc: &Factors,
    user: &UserRecord,
    change: SecondFactorChange,
    recovery: Option<Vec<String>>,
    mail: Option<&OutgoingMail>,
) -> Result<bool, AuthError> {
    let queued = mail
        .map(|m| svc.mailer.prepare(m))
        .transpose()
        .map_err(|e| AuthError::Internal(e.into()))?;
    let written = svc
        .store
        .update_second_factors(
            user.id,
            SecondFactorUpdate {
                change,
                recovery,
                now: svc.clock.now(),
                mail: queued,
            },
        )
        .await?;
    if let (true, Some(mail)) = (written, mail) {
        svc.mailer.queued(mail.template);
    }
    Ok(written)
}

/// `POST /me/2fa/email`: email codes on (fresh proof; mails the owner, ends
/// the other sessions).
pub async fn enable_email(
    svc: &Factors,
    principal: &Principal,
    proof: Proof<'_>,
    client: &ClientContext,
) -> Result<(), AuthError> {
    let user = current_user(&svc.store, principal).await?;
    if !user.email_verified {
        return Err(AuthError::EmailNotVerified);
    }
    reauth::prove(&svc.reauth, &user, proof, client, "two_factor_enabled").await?;
    let mail = templates::new_two_factor(user.email.as_str(), "one-time codes by email");
    let enable: SecondFactorChange = Box::new(|f| f.with_email_otp(true));
    change_factors(svc, &user, enable, None, Some(&mail)).await?;
    let detail = serde_json::json!({"method": "email_otp"});
    reauth::changed(&svc.reauth, principal, client, "two_factor_enabled", detail).await
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
    svc: &Factors,
    principal: &Principal,
    proof: Proof<'_>,
    client: &ClientContext,
) -> Result<TotpSetup, AuthError> {
    let user = current_user(&svc.store, principal).await?;
    reauth::prove(&svc.reauth, &user, proof, client, "two_factor_setup").await?;
    let secret = totp::new_secret();
    let sealed = svc
        .mailer
        .sealer()
        .seal(&secret)
        .map_err(|e| AuthError::Internal(e.into()))?;
    let pending: SecondFactorChange = Box::new(move |f| f.with_pending(Some(sealed)));
    change_factors(svc, &user, pending, None, None).await?;
    svc.audit
        .record(
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
fn new_recovery_codes(svc: &Factors, user: &UserRecord) -> (Vec<String>, Vec<String>) {
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

/// A 422 on the request's `code`.
fn code_refused(code: &str, message: &str) -> AuthError {
    AuthError::Validation(vec![FieldError::new("code", code, message)])
}

/// `POST /me/2fa/totp/enable`: confirms the pending secret with one of its
/// codes and the password. The current factor was proven when the secret
/// was set up (only a fresh proof issues one); wrong codes count toward the
/// second-factor limit. Mails the owner, ends the other sessions.
pub async fn totp_enable(
    svc: &Factors,
    principal: &Principal,
    password: &SecretString,
    code: &str,
    client: &ClientContext,
) -> Result<RecoveryCodes, AuthError> {
    let user = current_user(&svc.store, principal).await?;
    let invalid = || {
        code_refused(
            "invalid_code",
            "the code does not match; check the device's clock",
        )
    };
    let Some(pending) = user.totp_pending_sealed.clone() else {
        return Err(code_refused(
            "setup_required",
            "call /me/2fa/totp/setup first",
        ));
    };
    credentials::prove_password(
        &svc.passwords,
        &user,
        password,
        client,
        Some("two_factor_enabled"),
    )
    .await?;
    let secret = svc
        .mailer
        .sealer()
        .open(&pending)
        .map_err(|e| AuthError::Internal(e.into()))?;
    let now = svc.clock.unix();
    let checked = factor_check::limited(&svc.codes, &user, client, || async {
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
    let confirm: SecondFactorChange = Box::new(move |f| f.confirm_totp(&pending, step));
    if !change_factors(svc, &user, confirm, Some(hashes), Some(&mail)).await? {
        return Err(invalid());
    }
    let detail = serde_json::json!({"method": "totp", "replaced": replacing});
    reauth::changed(&svc.reauth, principal, client, "two_factor_enabled", detail).await?;
    Ok(RecoveryCodes {
        recovery_codes: codes,
    })
}

/// `POST /me/2fa/recovery-codes`: ten new recovery codes replace the earlier
/// ones (fresh proof; TOTP must be on). Mails the owner, ends the other sessions.
pub async fn regenerate_recovery_codes(
    svc: &Factors,
    principal: &Principal,
    proof: Proof<'_>,
    client: &ClientContext,
) -> Result<RecoveryCodes, AuthError> {
    let user = current_user(&svc.store, principal).await?;
    let not_enabled = || {
        code_refused(
            "totp_not_enabled",
            "recovery codes come with an authenticator app: turn TOTP on first",
        )
    };
    if !user.totp_enabled {
        return Err(not_enabled());
    }
    reauth::prove(
        &svc.reauth,
        &user,
        proof,
        client,
        "recovery_codes_regenerated",
    )
    .await?;
    let (codes, hashes) = new_recovery_codes(svc, &user);
    let mail = templates::two_factor_changed(
        user.email.as_str(),
        "New recovery codes were made for your SUMA Finance account; the earlier ones no longer work.",
    );
    let keep: SecondFactorChange = Box::new(|f| f.totp.then_some(f));
    if !change_factors(svc, &user, keep, Some(hashes), Some(&mail)).await? {
        return Err(not_enabled());
    }
    reauth::changed(
        &svc.reauth,
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
    svc: &Factors,
    principal: &Principal,
    proof: Proof<'_>,
    client: &ClientContext,
) -> Result<(), AuthError> {
    let user = current_user(&svc.store, principal).await?;
    reauth::prove(&svc.reauth, &user, proof, client, "two_factor_disabled").await?;
    let was_on = second_factor::required(&user);
    let mail = templates::two_factor_changed(
        user.email.as_str(),
        "Two-step sign-in was turned off for your SUMA Finance account.",
    );
    let off: SecondFactorChange = Box::new(|_| Some(SecondFactors::disabled()));
    change_factors(svc, &user, off, Some(Vec::new()), was_on.then_some(&mail)).await?;
    if was_on {
        reauth::changed(
            &svc.reauth,
            principal,
            client,
            "two_factor_disabled",
            serde_json::json!({}),
        )
        .await?;
    }
    Ok(())
}
