//! The durable mail outbox.

use super::*;
use crate::storage::sql;

/// Writes an outbox row inside the caller's transaction, due at once.
pub(super) fn insert_outbox(c: &Connection, mail: Option<&OutboxMail>) -> rusqlite::Result<()> {
    if let Some(m) = mail {
        c.exec(
            &dialect(sql::INSERT_OUTBOX),
            params![
                m.id.to_string(),
                m.template,
                m.payload,
                ms(m.created_at),
                m.recipient_tag
            ],
        )?;
    }
    Ok(())
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn enqueue_mail(&self, m: OutboxMail, now: DateTime<Utc>) -> StoreResult<()> {
        let mail = OutboxMail {
            created_at: now,
            ..m
        };
        self.run(move |c| insert_outbox(c, Some(&mail))).await
    }

    async fn claim_mail(&self, claim: MailClaim) -> StoreResult<Vec<OutboxMail>> {
        let (now, until) = (ms(claim.now), ms(claim.now + claim.lease));
        self.run(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let claimed: Vec<OutboxMail> = {
                let mut stmt = tx.stmt(
                    "UPDATE mail_outbox SET leased_until = ?2, attempts = attempts + 1
                     WHERE id IN (SELECT id FROM mail_outbox
                                  WHERE status = 'pending' AND next_attempt_at <= ?1 AND (leased_until IS NULL OR leased_until < ?1)
                                  ORDER BY next_attempt_at LIMIT ?3)
                     RETURNING id, template, payload, attempts, created_at, recipient_tag",
                )?;
                let rows = stmt.query_map(params![now, until, claim.limit], |r| {
                    mail_from(r)
                })?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            tx.commit()?;
            Ok(claimed)
        })
        .await
    }

    async fn mail_sent(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
        self.run(move |c| {
            c.exec(
                "UPDATE mail_outbox SET status = 'sent', sent_at = ?2, payload = '', leased_until = NULL, last_error = NULL WHERE id = ?1",
                params![id.to_string(), ms(now)],
            )
            .map(|_| ())
        })
        .await
    }

    async fn mail_retry(&self, id: Uuid, retry: MailRetry) -> StoreResult<()> {
        self.run(move |c| {
            c.exec(
                "UPDATE mail_outbox SET next_attempt_at = ?2, leased_until = NULL, last_error = ?3 WHERE id = ?1",
                params![id.to_string(), ms(retry.at), retry.error],
            )
            .map(|_| ())
        })
        .await
    }

    async fn mail_dead(&self, id: Uuid, error: &str) -> StoreResult<()> {
        let error = error.to_string();
        self.run(move |c| {
            c.exec(
                "UPDATE mail_outbox SET status = 'dead', leased_until = NULL, last_error = ?2 WHERE id = ?1",
                params![id.to_string(), error],
            )
            .map(|_| ())
        })
        .await
    }

    async fn retry_dead_mail(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.run(move |c| {
            c.exec(&dialect(sql::RETRY_DEAD_MAIL), params![ms(now)])
                .map(|n| n as u64)
        })
        .await
    }

    async fn outbox_stats(&self, now: DateTime<Utc>) -> StoreResult<OutboxStats> {
        self.read(move |c| {
            c.row(
                "SELECT COALESCE(SUM(status = 'pending'), 0), COALESCE(SUM(status = 'dead'), 0),
                        MIN(CASE WHEN status = 'pending' THEN created_at END)
                 FROM mail_outbox",
                [],
                |r| {
                    let oldest: Option<i64> = r.get(2)?;
                    Ok(OutboxStats {
                        pending: r.get::<_, i64>(0)?.max(0) as u64,
                        dead: r.get::<_, i64>(1)?.max(0) as u64,
                        oldest_pending_secs: oldest
                            .map_or(0.0, |t| (ms(now) - t).max(0) as f64 / 1000.0),
                    })
                },
            )
        })
        .await
    }
}
