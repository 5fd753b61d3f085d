//! Second-factor challenges: opening one and mailing its code. A correct
//! password on an account with a second factor (or from a device that must
//! pass an emailed code) opens a login challenge (`mfa_token`, 256 bits,
//! stored hashed, valid `OTP_EXPIRY_MINUTES`) instead of a session; a
//! signed-in user's step-up code opens one too. At most
//! `MFA_CHALLENGES_PER_HOUR` challenges are opened per account per hour.
//!
//! It stands below the sign-in, the code step (`/otp/verify`) and the fresh
//! proof of a factor change, which all use it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{AuthError, Parts};
use crate::auth::{codes, tokens};
use crate::clock::Clock;
use crate::domain::reset;
use crate::mail::templates;
use crate::mail::Mailer;
use crate::storage::DynStore;
use crate::storage::{ChallengeCode, NewMfaChallenge, UserRecord};

/// Wrong or right, codes checked per challenge at most.
pub const MAX_ATTEMPTS: u32 = 5;
/// Email codes sent per challenge at most (the first included).
pub const MAX_SENDS: u32 = 3;

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

/// Whether a second factor is on: a sign-in then passes one, and a change of
/// factors is proven with one of its codes.
pub fn required(user: &UserRecord) -> bool {
    user.totp_enabled || user.email_otp_enabled
}

fn six_digits() -> String {
    format!("{:06}", rand::random_range(0..1_000_000u32))
}

/// Opens second-factor challenges and mails their codes. Cheap to clone.
#[derive(Clone)]
pub struct Challenges {
    store: DynStore,
    mailer: Mailer,
    clock: Clock,
    per_hour: u32,
    otp_expiry: Duration,
}

impl Challenges {
    pub fn new(parts: &Parts) -> Self {
        Self {
            store: parts.store.clone(),
            mailer: parts.mailer.clone(),
            clock: parts.clock.clone(),
            per_hour: parts.config.second_factor.challenges_per_hour,
            otp_expiry: parts.config.security.otp_expiry,
        }
    }

    /// How long a code lives (`OTP_EXPIRY_MINUTES`).
    pub fn code_lifetime(&self) -> Duration {
        self.otp_expiry
    }
}

fn otp_expiry(svc: &Challenges) -> chrono::Duration {
    chrono::Duration::from_std(svc.otp_expiry).unwrap_or(chrono::Duration::minutes(5))
}

/// Stores a challenge for `user` under the hourly cap; `RateLimited` beyond it.
pub(super) async fn open_challenge(
    svc: &Challenges,
    user: &UserRecord,
    token: &str,
    methods: String,
    device_id: Option<String>,
) -> Result<Uuid, AuthError> {
    let id = Uuid::new_v4();
    let now = svc.clock.now();
    let cap = svc.per_hour;
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

/// Opens the challenge of a login whose password was correct; `RateLimited`
/// past the hourly cap.
pub async fn challenge(
    svc: &Challenges,
    user: &UserRecord,
    device_id: Option<String>,
) -> Result<MfaRequired, AuthError> {
    challenge_for(svc, user, methods_of(user), device_id).await
}

/// Opens the email-code challenge of a correct password from a new device
/// on an account without a second factor (`NEW_DEVICE_STEP_UP`, see
/// the devices module); the code is mailed at once.
pub async fn new_device_challenge(
    svc: &Challenges,
    user: &UserRecord,
    device_id: Option<String>,
) -> Result<MfaRequired, AuthError> {
    challenge_for(svc, user, vec!["email_otp"], device_id).await
}

async fn challenge_for(
    svc: &Challenges,
    user: &UserRecord,
    methods: Vec<&'static str>,
    device_id: Option<String>,
) -> Result<MfaRequired, AuthError> {
    let token = tokens::random_token();
    let id = open_challenge(svc, user, &token, methods.join(" "), device_id).await?;
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

/// Mails a new code for `challenge_id`; `false` when the challenge has had
/// its [`MAX_SENDS`] codes.
pub(super) async fn send_code(
    svc: &Challenges,
    challenge_id: Uuid,
    user: &UserRecord,
) -> Result<bool, AuthError> {
    let code = six_digits();
    let now = svc.clock.now();
    let minutes = svc.otp_expiry.as_secs().div_ceil(60);
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
