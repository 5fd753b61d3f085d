//! The errors of the use cases, each with a stable machine-readable code.
//! The HTTP layer maps them to statuses in one place (`http::errors`).

use std::time::Duration;

use crate::auth::hashing::HashError;
use crate::auth::jwt::TokenError;
use crate::domain::FieldError;
use crate::storage::{BoxError, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("the email address is not verified")]
    EmailNotVerified,
    #[error("the account is disabled")]
    AccountDisabled,
    #[error("the account is locked")]
    AccountLocked { retry_after: Duration },
    #[error("the token is invalid, used or expired")]
    InvalidToken,
    #[error("the login challenge is unknown, spent, expired or dead")]
    InvalidMfaToken,
    #[error("the code is wrong")]
    InvalidCode,
    #[error("the access token is not valid: {0}")]
    Unauthorized(&'static str),
    #[error("new versions of the terms or privacy policy must be accepted")]
    ConsentRequired(super::consent_book::ConsentRequired),
    #[error("the consent token is unknown, spent or expired")]
    InvalidConsentToken,
    #[error("{0} consent ends only with the account")]
    WithdrawalRequiresErasure(&'static str),
    #[error("too many requests")]
    RateLimited {
        limit: u32,
        remaining: u32,
        reset: Duration,
        retry_after: Duration,
    },
    #[error("the server is busy")]
    Busy { retry_after: Duration },
    #[error("a dependency is unavailable: {0}")]
    Unavailable(#[source] BoxError),
    #[error("internal error: {0}")]
    Internal(#[source] BoxError),
}

/// Why a refresh was refused. The HTTP layer answers all three alike (a
/// refresh token is a credential; telling them apart would help an attacker),
/// but the use case, its metrics and its tests see the difference.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("the refresh token is unknown or malformed, or its session was revoked")]
    Invalid,
    #[error("a spent refresh token was presented again; its session is revoked")]
    Reused,
    #[error("the session reached its absolute end or timed out")]
    Expired,
    #[error(transparent)]
    Other(#[from] AuthError),
}

/// Why a login (`POST /login`) was refused. The password step decides the
/// first four; what follows a correct password (the session, the
/// second-factor step) fails as [`AuthError`].
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("the email address is not verified")]
    EmailNotVerified,
    #[error("the account is disabled")]
    AccountDisabled,
    #[error("the account is locked")]
    Locked { retry_after: Duration },
    #[error("new versions of the terms or privacy policy must be accepted")]
    ConsentRequired(super::consent_book::ConsentRequired),
    #[error(transparent)]
    Other(#[from] AuthError),
}

/// Why a password reset confirmation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// Unknown, spent, expired, superseded, or its account disabled: one
    /// answer for all.
    #[error("the reset link is unknown, used or expired")]
    InvalidLink,
    /// The new password fails the policy or repeats a recent one (the link
    /// stays usable).
    #[error("the new password is refused")]
    PasswordRefused(Vec<FieldError>),
    #[error(transparent)]
    Other(#[from] AuthError),
}

/// Why the code step of a sign-in (`/otp/send`, `/otp/verify`) was refused.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    /// The challenge is unknown, spent, expired, dead, or its account disabled.
    #[error("the login challenge is unknown, spent, expired or dead")]
    InvalidChallenge,
    #[error("the code is wrong")]
    WrongCode,
    /// Too many wrong codes on the account: nothing was compared.
    #[error("the second factor is locked")]
    Locked { retry_after: Duration },
    #[error(transparent)]
    Other(#[from] AuthError),
}

impl From<LoginError> for AuthError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::InvalidCredentials => AuthError::InvalidCredentials,
            LoginError::EmailNotVerified => AuthError::EmailNotVerified,
            LoginError::AccountDisabled => AuthError::AccountDisabled,
            LoginError::Locked { retry_after } => AuthError::AccountLocked { retry_after },
            LoginError::ConsentRequired(required) => AuthError::ConsentRequired(required),
            LoginError::Other(e) => e,
        }
    }
}

impl From<ResetError> for AuthError {
    fn from(e: ResetError) -> Self {
        match e {
            ResetError::InvalidLink => AuthError::InvalidToken,
            ResetError::PasswordRefused(errors) => AuthError::Validation(errors),
            ResetError::Other(e) => e,
        }
    }
}

impl From<CodeError> for AuthError {
    fn from(e: CodeError) -> Self {
        match e {
            CodeError::InvalidChallenge => AuthError::InvalidMfaToken,
            CodeError::WrongCode => AuthError::InvalidCode,
            CodeError::Locked { retry_after } => AuthError::AccountLocked { retry_after },
            CodeError::Other(e) => e,
        }
    }
}

/// The causes every use-case error carries as [`AuthError`].
macro_rules! through_auth_error {
    ($($error:ty: $($cause:ty),+;)*) => {$($(
        impl From<$cause> for $error {
            fn from(e: $cause) -> Self {
                Self::Other(e.into())
            }
        }
    )+)*};
}

through_auth_error! {
    LoginError: StorageError, HashError;
    ResetError: StorageError, HashError;
    CodeError: StorageError;
}

impl From<StorageError> for RefreshError {
    fn from(e: StorageError) -> Self {
        RefreshError::Other(e.into())
    }
}

impl From<TokenError> for RefreshError {
    fn from(e: TokenError) -> Self {
        RefreshError::Other(e.into())
    }
}

impl From<StorageError> for AuthError {
    fn from(e: StorageError) -> Self {
        match &e {
            StorageError::Unavailable(_) | StorageError::Poisoned(_) => {
                AuthError::Unavailable(Box::new(e))
            }
            _ => AuthError::Internal(Box::new(e)),
        }
    }
}

impl From<HashError> for AuthError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => AuthError::Busy {
                retry_after: Duration::from_secs(1),
            },
            HashError::Internal(m) => AuthError::Internal(m.into()),
        }
    }
}

impl From<TokenError> for AuthError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Signing => AuthError::Internal("token signing failed".into()),
            TokenError::Expired => AuthError::Unauthorized("the access token has expired"),
            _ => AuthError::Unauthorized("the access token is invalid"),
        }
    }
}
