//! The audit log: one hash chain, appended under the `audit_chain` row's lock
//! (`docs/audit.md`).

use super::*;

/// A time at the precision PostgreSQL stores (microseconds), so that the hash
/// computed before the insert is the one recomputed from the row.
pub(super) fn stored_time(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

/// Locks the head row (`FOR UPDATE`, held until `tx` ends, so appends from
/// every instance queue one after the other) and reads it.
async fn lock_head(tx: &Tx<'_>) -> StoreResult<(i64, String)> {
    let head = tx
        .query_one(&format!("{} FOR UPDATE", sql::AUDIT_HEAD), &[])
        .await
        .map_err(q)?;
    Ok((get(&head, 0)?, get(&head, 1)?))
}

/// The rows of a batch, column by column, for [`sql::APPEND_AUDIT_ROWS`].
#[derive(Default)]
struct Columns<'a> {
    seq: Vec<i64>,
    id: Vec<Uuid>,
    user_id: Vec<Option<Uuid>>,
    event_type: Vec<&'a str>,
    event_status: Vec<&'static str>,
    ip: Vec<Option<std::net::IpAddr>>,
    user_agent: Vec<Option<&'a str>>,
    client_salt: Vec<Option<String>>,
    client_digest: Vec<Option<String>>,
    metadata: Vec<&'a serde_json::Value>,
    at: Vec<DateTime<Utc>>,
    prev_hash: Vec<String>,
    row_hash: Vec<String>,
}

impl<'a> Columns<'a> {
    /// Adds the row that follows `head` and returns the new head.
    fn push_after(
        &mut self,
        (head_seq, head_hash): (i64, String),
        e: &AuditEntry<'a>,
    ) -> (i64, String) {
        let at = stored_time(e.at);
        let entry = AuditEntry { at, ..e.clone() };
        let link = NewLink::after(head_seq, &head_hash, &entry);
        let head = (link.seq, link.row_hash.clone());
        self.seq.push(link.seq);
        self.id.push(link.id);
        self.user_id.push(e.user_id);
        self.event_type.push(e.event_type);
        self.event_status.push(link.event_status);
        self.ip.push(e.ip);
        self.user_agent.push(e.user_agent);
        self.client_salt.push(link.client_salt);
        self.client_digest.push(link.client_digest);
        self.metadata.push(e.metadata);
        self.at.push(at);
        self.prev_hash.push(link.prev_hash);
        self.row_hash.push(link.row_hash);
        head
    }
}

/// Appends one row to the chain inside `tx`: locks the head row (held until
/// `tx` ends), inserts the row linked to the head, and moves the head.
/// Every audit row of this backend is written here or by
/// [`append_audit_batch`], with the same steps.
pub(super) async fn append_audit(tx: &Tx<'_>, e: &AuditEntry<'_>) -> StoreResult<()> {
    append_audit_batch(tx, std::slice::from_ref(e)).await
}

/// Appends `entries` in order inside `tx` under one lock of the head: each
/// row links to the one before it, and one statement inserts them all and
/// moves the head to the last (the lock is held for two round trips and the
/// commit, whatever the batch's size).
pub(super) async fn append_audit_batch(tx: &Tx<'_>, entries: &[AuditEntry<'_>]) -> StoreResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut head = lock_head(tx).await?;
    let mut rows = Columns::default();
    for e in entries {
        head = rows.push_after(head, e);
    }
    tx.execute(
        sql::APPEND_AUDIT_ROWS,
        &[
            &rows.seq,
            &rows.id,
            &rows.user_id,
            &rows.event_type,
            &rows.event_status,
            &rows.ip,
            &rows.user_agent,
            &rows.client_salt,
            &rows.client_digest,
            &rows.metadata,
            &rows.at,
            &rows.prev_hash,
            &rows.row_hash,
            &head.0,
            &head.1,
        ],
    )
    .await
    .map_err(q)?;
    Ok(())
}

/// The retention prune (inside `tx`): the oldest rows created before
/// `before`, up to a batch, go; the anchor records the last of them and a
/// chained `audit_pruned` row records the anchor. Returns the rows deleted.
pub(super) async fn prune_audit(
    tx: &Tx<'_>,
    before: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    let head = tx
        .query_one(&format!("{} FOR UPDATE", sql::AUDIT_CHAIN_STATE), &[])
        .await
        .map_err(q)?;
    let (head_seq, anchor_seq, anchor_hash): (i64, i64, String) =
        (get(&head, 0)?, get(&head, 2)?, get(&head, 3)?);
    let keep: Option<i64> = get(
        &tx.query_one(sql::RETENTION_AUDIT, &[&anchor_seq, &before])
            .await
            .map_err(q)?,
        0,
    )?;
    let unchained = tx
        .execute(sql::RETENTION_AUDIT_BELOW_ANCHOR, &[&anchor_seq, &before])
        .await
        .map_err(q)?;
    let upto = keep
        .map_or(head_seq, |k| k - 1)
        .min(anchor_seq + sql::AUDIT_PRUNE_BATCH);
    if upto <= anchor_seq {
        return Ok(unchained);
    }
    let hash: Option<String> = match tx
        .query_opt(sql::AUDIT_ROW_HASH_AT, &[&upto])
        .await
        .map_err(q)?
    {
        Some(row) => get(&row, 0)?,
        None => None,
    };
    let prune = Prune {
        anchor_seq: upto,
        // A row from before the chain has no hash: the anchor stays at genesis.
        anchor_hash: hash.unwrap_or(anchor_hash),
        rows: 0,
    };
    tx.execute(
        sql::SET_AUDIT_ANCHOR,
        &[&prune.anchor_seq, &prune.anchor_hash],
    )
    .await
    .map_err(q)?;
    let rows = tx
        .execute(sql::PRUNE_AUDIT, &[&prune.anchor_seq])
        .await
        .map_err(q)?;
    let prune = Prune { rows, ..prune };
    let metadata = prune.metadata();
    append_audit(tx, &AuditEntry::pruned(&metadata, now)).await?;
    Ok(unchained + rows)
}

fn rows(rows: Vec<Row>) -> StoreResult<Vec<ChainRow>> {
    rows.iter().map(chain_row_from).collect()
}

#[async_trait]
impl AuditStore for PgStore {
    async fn insert_audit(&self, e: AuditEvent) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        append_audit(&tx, &AuditEntry::of(&e)).await?;
        tx.commit().await.map_err(q)
    }

    async fn insert_audit_batch(&self, events: &[AuditEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let entries: Vec<AuditEntry<'_>> = events.iter().map(AuditEntry::of).collect();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        append_audit_batch(&tx, &entries).await?;
        tx.commit().await.map_err(q)
    }

    async fn audit_chain_state(&self) -> StoreResult<ChainState> {
        let conn = self.conn().await?;
        let row = conn
            .query_one(sql::AUDIT_CHAIN_STATE, &[])
            .await
            .map_err(q)?;
        Ok(ChainState {
            head_seq: get(&row, 0)?,
            head_hash: get(&row, 1)?,
            anchor_seq: get(&row, 2)?,
            anchor_hash: get(&row, 3)?,
        })
    }

    async fn audit_chain_rows(&self, page: Page, upto: i64) -> StoreResult<Vec<ChainRow>> {
        let (after, limit) = (page.past, i64::from(page.limit));
        let conn = self.conn().await?;
        rows(
            conn.query(&sql::audit_chain_rows(), &[&after, &upto, &limit])
                .await
                .map_err(q)?,
        )
    }

    async fn audit_of_user(&self, user_id: Uuid, page: Page) -> StoreResult<Vec<ChainRow>> {
        let (before, limit) = (page.past, i64::from(page.limit));
        let conn = self.conn().await?;
        rows(
            conn.query(&sql::audit_of_user(), &[&user_id, &before, &limit])
                .await
                .map_err(q)?,
        )
    }

    async fn audit_between(
        &self,
        span: std::ops::Range<DateTime<Utc>>,
        page: Page,
    ) -> StoreResult<Vec<ChainRow>> {
        let (after, limit) = (page.past, i64::from(page.limit));
        let conn = self.conn().await?;
        rows(
            conn.query(
                &sql::audit_between(),
                &[&span.start, &span.end, &after, &limit],
            )
            .await
            .map_err(q)?,
        )
    }
}
