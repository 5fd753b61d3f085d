//! Who is calling: the principal an access token and its live session
//! prove, and the account it names. Below every use case that serves a
//! signed-in user, so that each can take it without importing another.

use uuid::Uuid;

use super::AuthError;
use crate::auth::jwt::AccessClaims;
use crate::storage::{DynStore, UserRecord};

/// Who is calling: the verified claims of a live session.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub claims: AccessClaims,
}

/// The signed-in user's record; `Unauthorized` once the account is gone.
pub async fn current_user(
    store: &DynStore,
    principal: &Principal,
) -> Result<UserRecord, AuthError> {
    store
        .find_user_profile(principal.user_id)
        .await?
        .ok_or(AuthError::Unauthorized("the account no longer exists"))
}
