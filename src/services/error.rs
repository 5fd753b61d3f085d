//! The errors of the use cases, each with a stable machine-readable code.
//! The HTTP layer maps them to statuses in one place (`http::errors`).

use std::time::Duration;

use crate::auth::hashing::HashError;
use crate::auth::jwt::TokenError;
use crate::domain::FieldError;
use crate::storage::StorageError;

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
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StorageError> for AuthError {
    fn from(e: StorageError) -> Self {
        match &e {
            StorageError::Unavailable(_) | StorageError::Poisoned(_) => {
                AuthError::Unavailable(e.to_string())
            }
            _ => AuthError::Internal(e.to_string()),
        }
    }
}

impl From<HashError> for AuthError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => AuthError::Busy {
                retry_after: Duration::from_secs(1),
            },
            HashError::Internal(m) => AuthError::Internal(m),
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
