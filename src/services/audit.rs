//! The audit trail (`docs/audit.md`): verification of its hash chain and an
//! export for operators, and the signed-in user's own security events
//! (`GET /me/audit`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::principal::Principal;
use super::AuthError;
use crate::domain::audit_chain::{self, GENESIS, PRUNE_EVENT};
use crate::domain::FieldError;
use crate::storage::{ChainRow, ChainState, Page, StorageError, Store};

/// Rows read per query while walking the chain.
const BATCH: u32 = 1000;

/// `GET /me/audit`: items per page unless `limit` says otherwise, and at most.
pub const DEFAULT_PAGE: u32 = 20;
pub const MAX_PAGE: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("the export range ends before it starts")]
    InvalidRange,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why a row breaks the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakReason {
    /// The row's stored hash is not the hash of its fields: a field was edited.
    RowHashMismatch,
    /// The row does not link to the row before it (edited, reordered or replaced).
    PrevHashMismatch,
    /// Rows before this one are missing (deleted from the middle).
    MissingRows,
    /// The row's IP address or user agent does not match its digest.
    ClientMismatch,
    /// The anchor is not where the chain says it is: the first row after it
    /// does not follow it, or the last prune recorded another anchor.
    AnchorMismatch,
    /// Rows are missing at the end: the head names a later row.
    MissingTail,
    /// The row has no hash although it lies after the anchor.
    Unchained,
}

/// The first row, in chain order, where verification failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenRow {
    pub seq: i64,
    /// `None` when the row is missing (the tail).
    pub id: Option<Uuid>,
    pub reason: BreakReason,
    pub detail: String,
}

/// The outcome of [`verify_chain`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    pub ok: bool,
    pub rows_checked: u64,
    pub anchor_seq: i64,
    pub anchor_hash: String,
    pub head_seq: i64,
    pub head_hash: String,
    pub broken: Option<BrokenRow>,
}

fn broken(row: &ChainRow, reason: BreakReason, detail: String) -> BrokenRow {
    BrokenRow {
        seq: row.seq,
        id: Some(row.id),
        reason,
        detail,
    }
}

/// Checks one row against the hash it should follow (`prev`) and its place
/// (`expected_seq`); `first` when it is the first row after the anchor.
fn check_row(row: &ChainRow, expected_seq: i64, prev: &str, first: bool) -> Option<BrokenRow> {
    if row.seq != expected_seq {
        let (reason, what) = if first {
            (BreakReason::AnchorMismatch, "after the anchor")
        } else {
            (BreakReason::MissingRows, "before this row")
        };
        return Some(broken(
            row,
            reason,
            format!(
                "expected seq {expected_seq}, found {}: rows {expected_seq}..{} are missing {what}",
                row.seq,
                row.seq - 1
            ),
        ));
    }
    let (Some(prev_hash), Some(row_hash)) = (&row.prev_hash, &row.row_hash) else {
        return Some(broken(
            row,
            BreakReason::Unchained,
            "the row has no hash".to_string(),
        ));
    };
    if prev_hash != prev {
        let reason = if first {
            BreakReason::AnchorMismatch
        } else {
            BreakReason::PrevHashMismatch
        };
        return Some(broken(
            row,
            reason,
            format!("prev_hash {prev_hash} does not match {prev}"),
        ));
    }
    let computed = audit_chain::row_hash(&row.fields(prev_hash));
    if &computed != row_hash {
        return Some(broken(
            row,
            BreakReason::RowHashMismatch,
            "the row's fields do not hash to its row_hash".to_string(),
        ));
    }
    let client_ok = match &row.client_salt {
        Some(salt) => {
            let ip = row.ip_address.map(|i| i.to_string());
            row.client_digest.as_deref()
                == Some(
                    audit_chain::client_digest(salt, ip.as_deref(), row.user_agent.as_deref())
                        .as_str(),
                )
        }
        // Erased (or never known): nothing left to compare.
        None => row.ip_address.is_none() && row.user_agent.is_none(),
    };
    if !client_ok {
        return Some(broken(
            row,
            BreakReason::ClientMismatch,
            "ip_address or user_agent does not match the row's client digest".to_string(),
        ));
    }
    None
}

/// Whether the last prune row recorded this anchor.
fn prune_matches(row: &ChainRow, state: &ChainState) -> bool {
    row.metadata.get("anchor_seq").and_then(|v| v.as_i64()) == Some(state.anchor_seq)
        && row.metadata.get("anchor_hash").and_then(|v| v.as_str())
            == Some(state.anchor_hash.as_str())
}

/// Walks the chain from the anchor to the head and names the first row that
/// breaks it: an edited field, a row deleted from the middle or the end, a
/// reordered row, a changed IP address or user agent, or an anchor that is
/// not the one the last prune recorded. Rows appended while it runs (after
/// the head it read first) are left for the next run.
pub async fn verify_chain(store: &dyn Store) -> Result<ChainReport, AuditError> {
    let state = store.audit_chain_state().await?;
    let mut expected_seq = state.anchor_seq + 1;
    let mut prev = state.anchor_hash.clone();
    let mut checked = 0u64;
    let mut last_prune: Option<ChainRow> = None;
    let mut failure: Option<BrokenRow> = None;
    let mut after = state.anchor_seq;
    'walk: loop {
        let rows = store
            .audit_chain_rows(Page::new(after, BATCH), state.head_seq)
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        let full = rows.len() as u32 == BATCH;
        for row in rows {
            checked += 1;
            let first = expected_seq == state.anchor_seq + 1;
            if let Some(b) = check_row(&row, expected_seq, &prev, first) {
                failure = Some(b);
                break 'walk;
            }
            expected_seq = row.seq + 1;
            prev = row.row_hash.clone().unwrap_or_default();
            if row.event_type == PRUNE_EVENT {
                last_prune = Some(row);
            }
        }
        if !full {
            break;
        }
    }
    if failure.is_none() && (expected_seq - 1 != state.head_seq || prev != state.head_hash) {
        failure = Some(BrokenRow {
            seq: state.head_seq,
            id: None,
            reason: BreakReason::MissingTail,
            detail: format!(
                "the head is row {} but the chain ends at row {}",
                state.head_seq,
                expected_seq - 1
            ),
        });
    }
    if failure.is_none() {
        failure = match &last_prune {
            Some(p) if !prune_matches(p, &state) => Some(broken(
                p,
                BreakReason::AnchorMismatch,
                format!(
                    "the anchor is row {} but this prune recorded {}",
                    state.anchor_seq, p.metadata
                ),
            )),
            None if state.anchor_hash != GENESIS => Some(BrokenRow {
                seq: state.anchor_seq,
                id: None,
                reason: BreakReason::AnchorMismatch,
                detail: "no prune row records the anchor".to_string(),
            }),
            _ => None,
        };
    }
    Ok(ChainReport {
        ok: failure.is_none(),
        rows_checked: checked,
        anchor_seq: state.anchor_seq,
        anchor_hash: state.anchor_hash,
        head_seq: state.head_seq,
        head_hash: state.head_hash,
        broken: failure,
    })
}

/// One row of an export: everything stored except the row's client salt.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedRow {
    pub seq: i64,
    pub id: Uuid,
    pub user_id: Option<String>,
    pub event_type: String,
    pub event_status: String,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub client_digest: Option<String>,
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub prev_hash: Option<String>,
    pub row_hash: Option<String>,
}

/// The rows created in `[from, to)`, in chain order, with the chain's anchor
/// and head at the time of the export.
#[derive(Debug, Clone, Serialize)]
pub struct AuditExport {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub anchor_seq: i64,
    pub anchor_hash: String,
    pub head_seq: i64,
    pub head_hash: String,
    pub rows: Vec<ExportedRow>,
}

/// Exports the rows created in `[from, to)`, in chain order.
pub async fn export(
    store: &dyn Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<AuditExport, AuditError> {
    if to < from {
        return Err(AuditError::InvalidRange);
    }
    let state = store.audit_chain_state().await?;
    let mut rows = Vec::new();
    let mut after = 0;
    loop {
        let batch = store
            .audit_between(from..to, Page::new(after, BATCH))
            .await?;
        let full = batch.len() as u32 == BATCH;
        if let Some(last) = batch.last() {
            after = last.seq;
        }
        rows.extend(batch.into_iter().map(|r| ExportedRow {
            seq: r.seq,
            id: r.id,
            user_id: r.user_id,
            event_type: r.event_type,
            event_status: r.event_status,
            ip_address: r.ip_address.map(|i| i.to_string()),
            user_agent: r.user_agent,
            client_digest: r.client_digest,
            metadata: r.metadata,
            created_at: r.created_at,
            prev_hash: r.prev_hash,
            row_hash: r.row_hash,
        }));
        if !full {
            break;
        }
    }
    Ok(AuditExport {
        from,
        to,
        anchor_seq: state.anchor_seq,
        anchor_hash: state.anchor_hash,
        head_seq: state.head_seq,
        head_hash: state.head_hash,
        rows,
    })
}

/// One of the user's own security events.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditItem {
    pub id: Uuid,
    pub event_type: String,
    /// `success` or `failure`.
    pub outcome: String,
    pub created_at: DateTime<Utc>,
    /// Absent once the account is erased.
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    /// What the event recorded beside its type (never a secret); left out when empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

/// A page of `GET /me/audit`, newest first.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditItem>,
    /// The `before` of the next (older) page; `null` on the last page.
    pub next: Option<String>,
}

/// Reads `limit` (default [`DEFAULT_PAGE`], 1..=[`MAX_PAGE`]) and `before`
/// (a cursor from `next`) as given in the query.
fn page_params(before: Option<&str>, limit: Option<&str>) -> Result<(i64, u32), AuthError> {
    let mut errors = Vec::new();
    let limit = match limit {
        None => DEFAULT_PAGE,
        Some(s) => match s.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                errors.push(FieldError::new(
                    "limit",
                    "out_of_range",
                    format!("limit must be a whole number from 1 to {MAX_PAGE}"),
                ));
                DEFAULT_PAGE
            }
        },
    };
    let before = match before {
        None => i64::MAX,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n > 0 => n,
            _ => {
                errors.push(FieldError::new(
                    "before",
                    "invalid_cursor",
                    "before must be a cursor from a previous page's next",
                ));
                i64::MAX
            }
        },
    };
    if errors.is_empty() {
        Ok((before, limit))
    } else {
        Err(AuthError::Validation(errors))
    }
}

/// `GET /me/audit`: the caller's own events, newest first.
pub async fn own_events(
    svc: &super::Account,
    principal: &Principal,
    before: Option<&str>,
    limit: Option<&str>,
) -> Result<AuditPage, AuthError> {
    let (before, limit) = page_params(before, limit)?;
    let mut rows = svc
        .store
        .audit_of_user(principal.user_id, Page::new(before, limit + 1))
        .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if more {
        rows.last().map(|r| r.seq.to_string())
    } else {
        None
    };
    let items = rows
        .into_iter()
        .map(|r| AuditItem {
            id: r.id,
            event_type: r.event_type,
            outcome: r.event_status,
            created_at: r.created_at,
            ip_address: r.ip_address.map(|i| i.to_string()),
            user_agent: r.user_agent,
            metadata: match r.metadata {
                serde_json::Value::Null => None,
                serde_json::Value::Object(m) if m.is_empty() => None,
                m => Some(m),
            },
        })
        .collect();
    Ok(AuditPage { items, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_parameters_are_checked() {
        assert_eq!(page_params(None, None).ok(), Some((i64::MAX, DEFAULT_PAGE)));
        assert_eq!(page_params(Some("42"), Some("100")).ok(), Some((42, 100)));
        for (before, limit) in [
            (None, Some("0")),
            (None, Some("101")),
            (None, Some("x")),
            (None, Some("-1")),
            (Some("0"), None),
            (Some("abc"), None),
            (Some(""), None),
        ] {
            assert!(page_params(before, limit).is_err(), "{before:?} {limit:?}");
        }
    }
}
