//! The token pair every sign-in and refresh answers with: a session's RS256
//! access token and its opaque refresh token.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{AuthError, Parts};
use crate::auth::jwt::JwtService;
use crate::auth::{jwt::TokenError, tokens};
use crate::clock::Clock;
use crate::domain::ClientContext;
use crate::storage::DynStore;
use crate::storage::{NewSession, SessionOpening, UserRecord};
use std::time::Duration;

/// The token pair every sign-in and refresh answers with (`/openapi.json`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
    /// Seconds until the session's absolute end.
    pub refresh_expires_in: u64,
    pub session_id: Uuid,
}

/// Signs an access token for a session and pairs it with its refresh token.
pub fn issue_pair(
    jwt: &JwtService,
    user_id: Uuid,
    session_id: Uuid,
    amr: &[&str],
    refresh_token: String,
    session_end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<TokenPair, TokenError> {
    let (access_token, _) = jwt.issue(user_id, session_id, amr, now.timestamp())?;
    Ok(pair(
        jwt,
        access_token,
        refresh_token,
        session_id,
        session_end,
        now,
    ))
}

/// Pairs a signed access token of a session with its refresh token.
pub fn pair(
    jwt: &JwtService,
    access_token: String,
    refresh_token: String,
    session_id: Uuid,
    session_end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> TokenPair {
    TokenPair {
        access_token,
        token_type: "Bearer",
        expires_in: jwt.ttl().as_secs(),
        refresh_token,
        refresh_expires_in: (session_end - now).num_seconds().max(0) as u64,
        session_id,
    }
}

/// Opens the session of a finished sign-in and issues its token pair.
/// Cheap to clone.
#[derive(Clone)]
pub struct SessionOpener {
    jwt: JwtService,
    store: DynStore,
    clock: Clock,
    absolute: Duration,
}

impl SessionOpener {
    pub fn new(parts: &Parts) -> Self {
        Self {
            jwt: parts.jwt.clone(),
            store: parts.store.clone(),
            clock: parts.clock.clone(),
            absolute: parts.config.security.session_absolute_timeout,
        }
    }
}

/// What a finished sign-in brings to its session besides the account and
/// the client.
pub struct Opening<'a> {
    pub device_id: Option<String>,
    /// See `NewSession::device_fingerprint`.
    pub device_fingerprint: Option<String>,
    /// How the sign-in was proven.
    pub amr: &'a [&'a str],
    /// A new hash of the proven password.
    pub rehash: Option<String>,
    /// The second-factor challenge the sign-in completes, spent with the
    /// session (see `NewSession::completes_challenge`).
    pub completes_challenge: Option<Uuid>,
}

/// Opens a session with its first refresh token, records the sign-in on the
/// account (with `rehash`, a new hash of the proven password) and signs an
/// access token. An account disabled while this sign-in was under way (its
/// password being checked) gets no session: the store opens it only while
/// the account is active ([`SessionStore::open_session`]). A challenge the
/// sign-in completes that was spent meanwhile gets none either
/// ([`AuthError::InvalidMfaToken`]).
///
/// [`SessionStore::open_session`]: crate::storage::SessionStore::open_session
pub async fn open_session(
    svc: &SessionOpener,
    user: &UserRecord,
    client: &ClientContext,
    Opening {
        device_id,
        device_fingerprint,
        amr,
        rehash,
        completes_challenge,
    }: Opening<'_>,
) -> Result<(TokenPair, bool), AuthError> {
    let now = svc.clock.now();
    let absolute = svc.absolute;
    let session_id = Uuid::new_v4();
    let refresh_token = tokens::random_token();
    let expires_at =
        now + chrono::Duration::from_std(absolute).unwrap_or(chrono::Duration::hours(8));
    let opening = svc
        .store
        .open_session(NewSession {
            id: session_id,
            user_id: user.id,
            refresh_token_id: tokens::token_row_id(),
            refresh_token_hash: tokens::token_hash(&refresh_token),
            device_id,
            client: client.clone(),
            amr: amr.join(" "),
            created_at: now,
            expires_at,
            rehash,
            device_fingerprint,
            commit_by: crate::clock::commit_by(),
            completes_challenge,
        })
        .await?;
    let device_known = match opening {
        SessionOpening::Opened { device_known } => device_known,
        SessionOpening::AccountDisabled => return Err(AuthError::AccountDisabled),
        SessionOpening::NoAccount => return Err(AuthError::InvalidCredentials),
        SessionOpening::ChallengeSpent => return Err(AuthError::InvalidMfaToken),
    };
    let pair = issue_pair(
        &svc.jwt,
        user.id,
        session_id,
        amr,
        refresh_token,
        expires_at,
        now,
    )?;
    Ok((pair, device_known))
}
