//! The audit log: one hash chain, appended inside the write transaction (the
//! one writer of the embedded database serialises appends; `docs/audit.md`).

use rusqlite::TransactionBehavior;

use super::*;
use crate::storage::sql;

/// Inserts the row that follows `head` inside `tx` and returns the new
/// head; the caller moves the stored head.
fn insert_after(
    tx: &rusqlite::Transaction<'_>,
    (head_seq, head_hash): (i64, String),
    e: &AuditEntry<'_>,
) -> rusqlite::Result<(i64, String)> {
    // The hash covers the time as stored: milliseconds.
    let at = time(ms(e.at));
    let entry = AuditEntry { at, ..e.clone() };
    let link = NewLink::after(head_seq, &head_hash, &entry);
    tx.exec(
        &dialect(sql::INSERT_AUDIT),
        params![
            link.seq,
            link.id.to_string(),
            link.user_id,
            e.event_type,
            link.event_status,
            e.ip.map(|i| i.to_string()),
            e.user_agent,
            link.client_salt,
            link.client_digest,
            e.metadata.to_string(),
            ms(at),
            link.prev_hash,
            link.row_hash
        ],
    )?;
    Ok((link.seq, link.row_hash))
}

/// Appends one row to the chain inside `tx`: reads the head, inserts the row
/// linked to it, and moves the head. Every audit row of this backend is
/// written here or by [`append_audit_batch`], with the same steps.
pub(super) fn append_audit(
    tx: &rusqlite::Transaction<'_>,
    e: &AuditEntry<'_>,
) -> rusqlite::Result<()> {
    append_audit_batch(tx, std::slice::from_ref(e))
}

/// Appends `entries` in order inside `tx`: each row links to the one before
/// it, and the head moves once, to the last.
pub(super) fn append_audit_batch(
    tx: &rusqlite::Transaction<'_>,
    entries: &[AuditEntry<'_>],
) -> rusqlite::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut head: (i64, String) = tx.row(sql::AUDIT_HEAD, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    for e in entries {
        head = insert_after(tx, head, e)?;
    }
    tx.exec(&dialect(sql::ADVANCE_AUDIT_HEAD), params![head.0, head.1])?;
    Ok(())
}

/// The retention prune (inside `tx`): the oldest rows created before
/// `before`, up to a batch, go; the anchor records the last of them and a
/// chained `audit_pruned` row records the anchor. Returns the rows deleted.
pub(super) fn prune_audit(
    tx: &rusqlite::Transaction<'_>,
    before: DateTime<Utc>,
    now: DateTime<Utc>,
) -> rusqlite::Result<u64> {
    let (head_seq, anchor_seq, anchor_hash): (i64, i64, String) =
        tx.row(sql::AUDIT_CHAIN_STATE, [], |r| {
            Ok((r.get(0)?, r.get(2)?, r.get(3)?))
        })?;
    let keep: Option<i64> = tx.row(
        &dialect(sql::RETENTION_AUDIT),
        params![anchor_seq, ms(before)],
        |r| r.get(0),
    )?;
    let unchained = tx.exec(
        &dialect(sql::RETENTION_AUDIT_BELOW_ANCHOR),
        params![anchor_seq, ms(before)],
    )? as u64;
    let upto = keep
        .map_or(head_seq, |k| k - 1)
        .min(anchor_seq + sql::AUDIT_PRUNE_BATCH);
    if upto <= anchor_seq {
        return Ok(unchained);
    }
    let hash: Option<String> = tx
        .row(&dialect(sql::AUDIT_ROW_HASH_AT), params![upto], |r| {
            r.get(0)
        })
        .optional()?
        .flatten();
    let mut prune = Prune {
        anchor_seq: upto,
        // A row from before the chain has no hash: the anchor stays at genesis.
        anchor_hash: hash.unwrap_or(anchor_hash),
        rows: 0,
    };
    tx.exec(
        &dialect(sql::SET_AUDIT_ANCHOR),
        params![prune.anchor_seq, prune.anchor_hash],
    )?;
    prune.rows = tx.exec(&dialect(sql::PRUNE_AUDIT), params![prune.anchor_seq])? as u64;
    let metadata = prune.metadata();
    append_audit(tx, &AuditEntry::pruned(&metadata, now))?;
    Ok(unchained + prune.rows)
}

fn chain_rows(
    c: &Connection,
    statement: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<ChainRow>> {
    let mut stmt = c.stmt(&dialect(statement))?;
    let rows = stmt.query_map(params, |r| chain_row_from(r))?;
    rows.collect()
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn insert_audit(&self, e: AuditEvent) -> StoreResult<()> {
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            append_audit(&tx, &AuditEntry::of(&e))?;
            tx.commit()
        })
        .await
    }

    async fn insert_audit_batch(&self, events: &[AuditEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let events = events.to_vec();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let entries: Vec<AuditEntry<'_>> = events.iter().map(AuditEntry::of).collect();
            append_audit_batch(&tx, &entries)?;
            tx.commit()
        })
        .await
    }

    async fn audit_chain_state(&self) -> StoreResult<ChainState> {
        self.read(|c| {
            c.row(sql::AUDIT_CHAIN_STATE, [], |r| {
                Ok(ChainState {
                    head_seq: r.get(0)?,
                    head_hash: r.get(1)?,
                    anchor_seq: r.get(2)?,
                    anchor_hash: r.get(3)?,
                })
            })
        })
        .await
    }

    async fn audit_chain_rows(&self, page: Page, upto: i64) -> StoreResult<Vec<ChainRow>> {
        let statement = sql::audit_chain_rows();
        self.read(move |c| chain_rows(c, &statement, params![page.past, upto, page.limit]))
            .await
    }

    async fn audit_of_user(&self, user_id: Uuid, page: Page) -> StoreResult<Vec<ChainRow>> {
        self.read(move |c| {
            chain_rows(
                c,
                &sql::audit_of_user(),
                params![user_id.to_string(), page.past, page.limit],
            )
        })
        .await
    }

    async fn audit_between(
        &self,
        span: std::ops::Range<DateTime<Utc>>,
        page: Page,
    ) -> StoreResult<Vec<ChainRow>> {
        self.read(move |c| {
            chain_rows(
                c,
                &sql::audit_between(),
                params![ms(span.start), ms(span.end), page.past, page.limit],
            )
        })
        .await
    }
}
