//! The durable mail outbox.

use super::*;
use crate::storage::sql;

/// Writes an outbox row (inside the caller's transaction, if any), due at once.
pub(super) async fn insert_outbox(c: &impl Execute, mail: Option<&OutboxMail>) -> StoreResult<()> {
    if let Some(m) = mail {
        let row: [Param; 5] = [
            &m.id,
            &m.template,
            &m.payload,
            &m.created_at,
            &m.recipient_tag,
        ];
        c.execute_prepared(sql::INSERT_OUTBOX, &row)
            .await
            .map_err(q)?;
    }
    Ok(())
}

#[async_trait]
impl OutboxStore for PgStore {
    async fn enqueue_mail(&self, m: OutboxMail, now: DateTime<Utc>) -> StoreResult<()> {
        let conn = self.conn().await?;
        let mail = OutboxMail {
            created_at: now,
            ..m
        };
        insert_outbox(&*conn, Some(&mail)).await
    }

    async fn claim_mail(&self, claim: MailClaim) -> StoreResult<Vec<OutboxMail>> {
        let MailClaim { now, lease, limit } = claim;
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "UPDATE mail_outbox SET leased_until = $2, attempts = attempts + 1
                 WHERE id IN (
                     SELECT id FROM mail_outbox
                     WHERE status = 'pending' AND next_attempt_at <= $1 AND (leased_until IS NULL OR leased_until < $1)
                     ORDER BY next_attempt_at LIMIT $3
                     FOR UPDATE SKIP LOCKED)
                 RETURNING id, template, payload, attempts, created_at, recipient_tag",
                &[&now, &(now + lease), &(limit as i64)],
            )
            .await
            .map_err(q)?;
        rows.iter().map(mail_from).collect()
    }

    async fn mail_sent(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
        self.exec(
            "UPDATE mail_outbox SET status = 'sent', sent_at = $2, payload = '', leased_until = NULL, last_error = NULL WHERE id = $1",
            &[&id, &now],
        )
        .await?;
        Ok(())
    }

    async fn mail_retry(&self, id: Uuid, retry: MailRetry) -> StoreResult<()> {
        self.exec(
            "UPDATE mail_outbox SET next_attempt_at = $2, leased_until = NULL, last_error = $3 WHERE id = $1",
            &[&id, &retry.at, &retry.error],
        )
        .await?;
        Ok(())
    }

    async fn mail_dead(&self, id: Uuid, error: &str) -> StoreResult<()> {
        self.exec(
            "UPDATE mail_outbox SET status = 'dead', leased_until = NULL, last_error = $2 WHERE id = $1",
            &[&id, &error],
        )
        .await?;
        Ok(())
    }

    async fn retry_dead_mail(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.exec(sql::RETRY_DEAD_MAIL, &[&now]).await
    }

    async fn outbox_stats(&self, now: DateTime<Utc>) -> StoreResult<OutboxStats> {
        let conn = self.conn().await?;
        let row = conn
            .query_one(
                "SELECT COUNT(*) FILTER (WHERE status = 'pending'), COUNT(*) FILTER (WHERE status = 'dead'),
                        MIN(created_at) FILTER (WHERE status = 'pending')
                 FROM mail_outbox",
                &[],
            )
            .await
            .map_err(q)?;
        let oldest: Option<DateTime<Utc>> = get(&row, 2)?;
        Ok(OutboxStats {
            pending: get::<i64>(&row, 0)?.max(0) as u64,
            dead: get::<i64>(&row, 1)?.max(0) as u64,
            oldest_pending_secs: oldest
                .map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0),
        })
    }
}
