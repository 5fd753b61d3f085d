//! The signed-in user: bearer token validation and the session check, and
//! the [`Account`] area (what a signed-in user reads and changes of their
//! account, second factors aside).

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::consent_book::ConsentBook;
use super::devices::Devices;
use super::erasure::Eraser;
pub use super::principal::{current_user, Principal};
use super::reauth::Reauth;
use super::{Audit, AuthError, Parts, Sessions};
use crate::clock::Clock;
use crate::mail::Mailer;
use crate::storage::DynStore;
use crate::storage::UserRecord;

/// The account area: the profile, consents, devices, the caller's own audit
/// rows, the export and the erasure. Cheap to clone.
#[derive(Clone)]
pub struct Account {
    pub(super) store: DynStore,
    pub(super) mailer: Mailer,
    pub(super) clock: Clock,
    pub(super) audit: Audit,
    pub(super) consents: ConsentBook,
    pub(super) devices: Devices,
    pub(super) reauth: Reauth,
    pub(super) eraser: Eraser,
}

impl Account {
    pub fn new(
        parts: &Parts,
        consents: ConsentBook,
        devices: Devices,
        reauth: Reauth,
        eraser: Eraser,
    ) -> Self {
        Self {
            store: parts.store.clone(),
            mailer: parts.mailer.clone(),
            clock: parts.clock.clone(),
            audit: parts.audit(),
            consents,
            devices,
            reauth,
            eraser,
        }
    }

    /// The devices part: listing and forgetting devices needs nothing else.
    pub fn devices(&self) -> &Devices {
        &self.devices
    }
}

/// Validates an access token and checks that its session is still live.
pub async fn authenticate(svc: &Sessions, token: &str) -> Result<Principal, AuthError> {
    let claims = svc.jwt.verify(token, svc.clock.unix())?;
    let (Ok(user_id), Ok(session_id)) =
        (Uuid::parse_str(&claims.sub), Uuid::parse_str(&claims.sid))
    else {
        return Err(AuthError::Unauthorized("the access token is invalid"));
    };
    // Revocation, idle and absolute timeouts, on every request (and the
    // activity that keeps a session alive is recorded here).
    if let Err(end) = svc
        .sessions
        .check(session_id, user_id, svc.clock.now())
        .await?
    {
        return Err(AuthError::Unauthorized(end.describe()));
    }
    Ok(Principal {
        user_id,
        session_id,
        claims,
    })
}

/// `GET /me`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Profile {
    pub id: Uuid,
    pub email: String,
    pub email_verified: bool,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub two_factor_enabled: bool,
    pub two_factor_methods: Vec<String>,
    pub created_at: DateTime<Utc>,
}

impl From<UserRecord> for Profile {
    fn from(u: UserRecord) -> Self {
        Profile {
            id: u.id,
            email: u.email.as_str().to_string(),
            email_verified: u.email_verified,
            first_name: u.first_name,
            last_name: u.last_name,
            two_factor_enabled: u.two_factor_enabled,
            two_factor_methods: {
                let mut methods = Vec::new();
                if u.totp_enabled {
                    methods.push("totp".to_string());
                }
                if u.email_otp_enabled {
                    methods.push("email_otp".to_string());
                }
                methods
            },
            created_at: u.created_at,
        }
    }
}

pub async fn profile(svc: &Account, principal: &Principal) -> Result<Profile, AuthError> {
    Ok(Profile::from(current_user(&svc.store, principal).await?))
}
