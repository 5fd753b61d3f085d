//! Records of the chained audit trail (`docs/audit.md`): the chain's head and
//! anchor, a row as stored, and the link a store appends. Both backends build
//! a row with [`NewLink::after`] inside the transaction that holds the chain.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::models::Columns;
use crate::domain::audit_chain::{self, RowFields};

/// The head (last appended row) and the anchor (last pruned row) of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    pub head_seq: i64,
    pub head_hash: String,
    pub anchor_seq: i64,
    pub anchor_hash: String,
}

/// A page of chain rows: those past the row `past` in the order read
/// (after it in chain order, before it newest first), at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub past: i64,
    pub limit: u32,
}

impl Page {
    pub fn new(past: i64, limit: u32) -> Self {
        Self { past, limit }
    }
}

/// An audit row as stored, with its place in the chain.
#[derive(Debug, Clone)]
pub struct ChainRow {
    pub seq: i64,
    pub id: Uuid,
    pub user_id: Option<String>,
    pub event_type: String,
    pub event_status: String,
    pub ip_address: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub client_salt: Option<String>,
    pub client_digest: Option<String>,
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// `None` on rows written before the chain (below the first anchor).
    pub prev_hash: Option<String>,
    pub row_hash: Option<String>,
}

impl ChainRow {
    /// The fields its hash covers, as stored.
    pub fn fields<'a>(&'a self, prev_hash: &'a str) -> RowFields<'a> {
        RowFields {
            seq: self.seq,
            prev_hash,
            id: self.id,
            user_id: self.user_id.as_deref(),
            event_type: &self.event_type,
            event_status: &self.event_status,
            client_digest: self.client_digest.as_deref(),
            metadata: &self.metadata,
            created_at: self.created_at,
        }
    }
}

/// The columns of [`ChainRow`], in the order [`chain_row_from`] reads them
/// (the same text in both dialects).
pub const CHAIN_COLUMNS: &str = "seq, id, CAST(user_id AS TEXT), event_type, event_status, \
     ip_address, user_agent, client_salt, client_digest, metadata, created_at, prev_hash, row_hash";

pub fn chain_row_from<R: Columns>(r: &R) -> Result<ChainRow, R::Error> {
    Ok(ChainRow {
        seq: r.int(0)?.unwrap_or_default(),
        id: r.uuid(1)?,
        user_id: r.text(2)?,
        event_type: r.text(3)?.unwrap_or_default(),
        event_status: r.text(4)?.unwrap_or_default(),
        ip_address: r.ip(5)?,
        user_agent: r.text(6)?,
        client_salt: r.text(7)?,
        client_digest: r.text(8)?,
        metadata: r.json(9)?.unwrap_or_default(),
        created_at: r.time(10)?.unwrap_or_default(),
        prev_hash: r.text(11)?,
        row_hash: r.text(12)?,
    })
}

/// What one audit row says, before it has a place in the chain.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub user_id: Option<Uuid>,
    pub event_type: &'a str,
    pub success: bool,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
    pub metadata: &'a serde_json::Value,
    /// Already at the precision the backend stores.
    pub at: DateTime<Utc>,
}

/// The metadata of rows that carry none.
static NO_METADATA: std::sync::LazyLock<serde_json::Value> =
    std::sync::LazyLock::new(|| serde_json::json!({}));

impl<'a> AuditEntry<'a> {
    /// The row of a registration of `user_id` (`event`: a new one or one
    /// that replaced an unverified one).
    pub fn registration(user_id: Uuid, new: &'a super::models::NewUser, event: &'a str) -> Self {
        Self {
            user_id: Some(user_id),
            event_type: event,
            success: true,
            ip: new.client.ip,
            user_agent: new.client.user_agent.as_deref(),
            metadata: &NO_METADATA,
            at: new.now,
        }
    }

    /// The chained `audit_pruned` row that records a prune (its `metadata`).
    pub fn pruned(metadata: &'a serde_json::Value, at: DateTime<Utc>) -> Self {
        Self {
            user_id: None,
            event_type: audit_chain::PRUNE_EVENT,
            success: true,
            ip: None,
            user_agent: None,
            metadata,
            at,
        }
    }

    /// What `event` says (its time not yet at the backend's precision).
    pub fn of(event: &'a super::models::AuditEvent) -> Self {
        Self {
            user_id: event.user_id,
            event_type: event.event_type,
            success: event.success,
            ip: event.client.ip,
            user_agent: event.client.user_agent.as_deref(),
            metadata: &event.metadata,
            at: event.at,
        }
    }
}

/// A row ready to insert after the head `(seq, hash)`.
#[derive(Debug, Clone)]
pub struct NewLink {
    pub seq: i64,
    pub id: Uuid,
    pub user_id: Option<String>,
    pub event_status: &'static str,
    pub client_salt: Option<String>,
    pub client_digest: Option<String>,
    pub prev_hash: String,
    pub row_hash: String,
}

impl NewLink {
    /// The row that follows the head `head_seq`/`head_hash`.
    pub fn after(head_seq: i64, head_hash: &str, e: &AuditEntry<'_>) -> Self {
        let seq = head_seq + 1;
        let id = Uuid::new_v4();
        let user_id = e.user_id.map(|u| u.hyphenated().to_string());
        let event_status = if e.success { "success" } else { "failure" };
        let (client_salt, client_digest) = if e.ip.is_some() || e.user_agent.is_some() {
            let salt = audit_chain::new_salt();
            let ip = e.ip.map(|i| i.to_string());
            let digest = audit_chain::client_digest(&salt, ip.as_deref(), e.user_agent);
            (Some(salt), Some(digest))
        } else {
            (None, None)
        };
        let row_hash = audit_chain::row_hash(&RowFields {
            seq,
            prev_hash: head_hash,
            id,
            user_id: user_id.as_deref(),
            event_type: e.event_type,
            event_status,
            client_digest: client_digest.as_deref(),
            metadata: e.metadata,
            created_at: e.at,
        });
        Self {
            seq,
            id,
            user_id,
            event_status,
            client_salt,
            client_digest,
            prev_hash: head_hash.to_string(),
            row_hash,
        }
    }
}

/// What a retention prune did: the new anchor and the rows deleted.
#[derive(Debug, Clone)]
pub struct Prune {
    pub anchor_seq: i64,
    pub anchor_hash: String,
    pub rows: u64,
}

impl Prune {
    /// The metadata of the chained `audit_pruned` row that records it.
    pub fn metadata(&self) -> serde_json::Value {
        serde_json::json!({
            "anchor_seq": self.anchor_seq,
            "anchor_hash": self.anchor_hash,
            "rows": self.rows,
        })
    }
}
