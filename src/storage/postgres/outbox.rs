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

/// The advisory lock key a claim of due mail holds ("mailclaim" in ASCII, less
/// its last letter), apart from the migration lock's.
const CLAIM_LOCK_KEY: i64 = 0x6d_61_69_6c_63_6c_61_69;

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
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        // One claim at a time across instances, so that the test below for
        // another mail in flight sees every lease already taken.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CLAIM_LOCK_KEY])
            .await
            .map_err(q)?;
        // A mail waits while another one to the same address is leased (in
        // flight on this instance or another), so that one address gets its
        // mails one after the other, in order, also across instances: a second
        // sign-in code or link is not overtaken by the one it replaces. Why not
        // "an earlier one": instances' clocks differ, so `created_at` cannot
        // order two instances' mails. A mail that is not leased (waiting for a
        // retry, or claimed in this same batch) holds back nothing: a failing
        // mail never blocks others.
        let rows = tx
            .query(
                "UPDATE mail_outbox SET leased_until = $2, attempts = attempts + 1
                 WHERE id IN (
                     SELECT m.id FROM mail_outbox m
                     WHERE m.status = 'pending' AND m.next_attempt_at <= $1
                       AND (m.leased_until IS NULL OR m.leased_until < $1)
                       AND NOT EXISTS (
                           SELECT 1 FROM mail_outbox e
                           WHERE e.recipient_tag = m.recipient_tag AND e.status = 'pending'
                             AND e.leased_until >= $1 AND e.id <> m.id)
                     ORDER BY m.next_attempt_at LIMIT $3
                     FOR UPDATE SKIP LOCKED)
                 RETURNING id, template, payload, attempts, created_at, recipient_tag",
                &[&now, &(now + lease), &(limit as i64)],
            )
            .await
            .map_err(q)?;
        tx.commit().await.map_err(q)?;
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

#[cfg(test)]
mod tests {
    use super::super::{migrated_store, ThrowawayDb};
    use super::*;

    fn mail_to(tag: &str) -> OutboxMail {
        OutboxMail {
            id: Uuid::new_v4(),
            template: "verification".into(),
            payload: String::new(),
            attempts: 0,
            created_at: Utc::now(),
            recipient_tag: Some(tag.into()),
        }
    }

    fn claim(limit: u32) -> MailClaim {
        MailClaim {
            now: Utc::now(),
            lease: chrono::Duration::seconds(60),
            limit,
        }
    }

    /// Two instances claiming at the same moment: one has leased the first
    /// mail to an address and not yet committed. The other's claim waits for
    /// it, then holds back the second mail to that address (its first is in
    /// flight) and takes another address's. Were claims not one at a time, the
    /// second would see the first unleased and skip it as locked, and send the
    /// second mail beside it.
    #[tokio::test]
    async fn a_claim_waits_for_one_under_way_and_holds_back_the_addresss_next_mail() {
        let (store, db): (PgStore, ThrowawayDb) = migrated_store("outbox").await;
        let (first, second, other) = (mail_to("a"), mail_to("a"), mail_to("b"));
        for m in [&first, &second, &other] {
            store.enqueue_mail(m.clone(), Utc::now()).await.unwrap();
        }
        let (mut elsewhere, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let tx = elsewhere.transaction().await.unwrap();
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CLAIM_LOCK_KEY])
            .await
            .unwrap();
        let until = Utc::now() + chrono::Duration::seconds(60);
        tx.execute(
            "UPDATE mail_outbox SET leased_until = $2 WHERE id = $1",
            &[&first.id, &until],
        )
        .await
        .unwrap();

        let claiming = {
            let store = store.clone();
            tokio::spawn(async move { store.claim_mail(claim(8)).await })
        };
        db.until_one_waits().await;
        tx.commit().await.unwrap();
        let claimed = claiming.await.unwrap().unwrap();
        let ids: Vec<Uuid> = claimed.iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![other.id], "only the other address's mail");
    }
}
