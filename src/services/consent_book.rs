//! The consent statements of accounts (`ConsentBook`): read, summed up, and
//! the gate a sign-in passes when new terms or privacy versions must be
//! accepted first. Shared by the sign-in and the account areas, below both.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Audit, AuthError, Parts};
use crate::auth::tokens;
use crate::clock::Clock;
use crate::domain::consent::ConsentVersions;
use crate::domain::consent::{self, ConsentType, Statement};
use crate::storage::DynStore;
use crate::storage::{ConsentRecord, NewConsentChallenge, UserRecord};

/// How long a consent token lives: time to read the new texts.
pub const CHALLENGE_TTL: chrono::Duration = chrono::Duration::minutes(15);

/// The state of one consent type.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsentView {
    /// The latest answer (false when never given).
    pub granted: bool,
    /// The version of the latest answer.
    pub version: Option<String>,
    /// When the latest answer was given.
    pub updated_at: Option<DateTime<Utc>>,
    /// The service's current version of this text.
    pub current_version: String,
}

/// `GET /me/consents`: the current state of every type.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConsentState {
    pub terms: ConsentView,
    pub privacy: ConsentView,
    pub marketing: ConsentView,
    pub data_processing: ConsentView,
}

/// The versions a `consent_required` answer asks the user to accept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RequiredVersions {
    pub terms: String,
    pub privacy: String,
}

/// The body extension of `403 consent_required`.
#[derive(Debug, Clone)]
pub struct ConsentRequired {
    pub consent_token: String,
    pub required: RequiredVersions,
}

/// The consent statements of accounts: read, appended, and the gate of a
/// sign-in. Cheap to clone.
#[derive(Clone)]
pub struct ConsentBook {
    pub(super) store: DynStore,
    pub(super) clock: Clock,
    pub(super) audit: Audit,
    pub(super) versions: ConsentVersions,
}

impl ConsentBook {
    pub fn new(parts: &Parts) -> Self {
        Self {
            store: parts.store.clone(),
            clock: parts.clock.clone(),
            audit: parts.audit(),
            versions: parts.config.consents.clone(),
        }
    }

    /// The service's current versions (`CONSENT_*_VERSION`).
    pub fn versions(&self) -> &ConsentVersions {
        &self.versions
    }
}

/// The statements of a history the rules understand (unknown types are skipped).
pub fn statements(records: &[ConsentRecord]) -> Vec<Statement> {
    records
        .iter()
        .filter_map(|r| {
            Some(Statement {
                consent_type: ConsentType::parse(&r.consent_type)?,
                version: r.version.clone(),
                granted: r.consented,
                at: r.created_at,
            })
        })
        .collect()
}

/// The state a history (oldest first) adds up to.
pub fn state_of(versions: &ConsentVersions, history: &[Statement]) -> ConsentState {
    let view = |t: ConsentType| {
        let latest = consent::latest(history, t);
        ConsentView {
            granted: latest.is_some_and(|s| s.granted),
            version: latest.map(|s| s.version.clone()),
            updated_at: latest.map(|s| s.at),
            current_version: versions.of(t).to_string(),
        }
    };
    ConsentState {
        terms: view(ConsentType::Terms),
        privacy: view(ConsentType::Privacy),
        marketing: view(ConsentType::Marketing),
        data_processing: view(ConsentType::DataProcessing),
    }
}

pub(super) async fn history(svc: &ConsentBook, user_id: Uuid) -> Result<Vec<Statement>, AuthError> {
    Ok(statements(&svc.store.consent_history(user_id).await?))
}

/// After a correct password: when the user has not accepted the current terms
/// or privacy version, opens a consent challenge (single use, stored hashed)
/// and says what to accept.
pub async fn gate(
    svc: &ConsentBook,
    user: &UserRecord,
    device_id: Option<String>,
) -> Result<Option<ConsentRequired>, AuthError> {
    let current = &svc.versions;
    let history = history(svc, user.id).await?;
    if consent::missing_acceptances(&history, current).is_empty() {
        return Ok(None);
    }
    let token = tokens::random_token();
    let now = svc.clock.now();
    svc.store
        .create_consent_challenge(NewConsentChallenge {
            id: Uuid::new_v4(),
            user_id: user.id,
            token_hash: tokens::token_hash(&token),
            device_id,
            expires_at: now + CHALLENGE_TTL,
            now,
        })
        .await?;
    Ok(Some(ConsentRequired {
        consent_token: token,
        required: RequiredVersions {
            terms: current.terms.clone(),
            privacy: current.privacy.clone(),
        },
    }))
}
