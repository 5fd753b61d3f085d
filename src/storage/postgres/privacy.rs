//! Export, erasure and retention of what is held about a person.

use super::*;
use crate::domain::retention::Cutoffs;
use crate::storage::sql;

fn count(row: &Row) -> StoreResult<u64> {
    Ok(get::<i64>(row, 0)?.max(0) as u64)
}

#[async_trait]
impl PrivacyStore for PgStore {
    async fn export_user(
        &self,
        user_id: Uuid,
        recipient_tag: &str,
    ) -> StoreResult<Option<UserExport>> {
        let mut conn = self.conn().await?;
        // One snapshot for the whole document.
        let tx = conn
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(q)?;
        let Some(row) = tx
            .query_opt(&sql::export_user(), &[&user_id])
            .await
            .map_err(q)?
        else {
            return Ok(None);
        };
        let user = user_from(&row)?;
        let password_changed_at: Option<DateTime<Utc>> = get(&row, 17)?;
        let consents = tx
            .query(&sql::consent_history(), &[&user_id])
            .await
            .map_err(q)?
            .iter()
            .map(consent_from)
            .collect::<StoreResult<Vec<_>>>()?;
        let sessions = tx
            .query(&sql::export_sessions(), &[&user_id])
            .await
            .map_err(q)?
            .iter()
            .map(|r| {
                Ok(SessionHistory {
                    session: session_from(r, 0)?,
                    ended_reason: get(r, 10)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let devices = tx
            .query(&sql::export_devices(), &[&user_id])
            .await
            .map_err(q)?
            .iter()
            .map(device_from)
            .collect::<StoreResult<Vec<_>>>()?;
        let audit = tx
            .query(&sql::export_audit(), &[&user_id])
            .await
            .map_err(q)?
            .iter()
            .map(audit_from)
            .collect::<StoreResult<Vec<_>>>()?;
        let mail = tx
            .query(&sql::export_mail(), &[&recipient_tag])
            .await
            .map_err(q)?
            .iter()
            .map(mail_record_from)
            .collect::<StoreResult<Vec<_>>>()?;
        let mut counts = Vec::new();
        for statement in [
            sql::COUNT_UNUSED_RECOVERY_CODES,
            sql::COUNT_USED_RECOVERY_CODES,
            sql::COUNT_PASSWORD_HISTORY,
        ] {
            counts.push(count(
                &tx.query_one(statement, &[&user_id]).await.map_err(q)?,
            )?);
        }
        tx.commit().await.map_err(q)?;
        Ok(Some(UserExport {
            user,
            password_changed_at,
            consents,
            sessions,
            devices,
            recovery_codes_unused: counts[0],
            recovery_codes_used: counts[1],
            previous_passwords: counts[2],
            audit,
            mail,
        }))
    }

    async fn erase_user(&self, e: Erasure) -> StoreResult<Option<Vec<Uuid>>> {
        let _users = self.users.changing_user(e.user_id);
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        // `NO KEY UPDATE`: a rotation or a sign-in of this user under way
        // holds the key-share lock that its new rows' foreign keys take on
        // the user while it holds their session; `FOR UPDATE` would wait for
        // it while it waits for the session, a deadlock.
        let locked = tx
            .query_opt(
                "SELECT id FROM users WHERE id = $1 AND deleted_at IS NULL FOR NO KEY UPDATE",
                &[&e.user_id],
            )
            .await
            .map_err(q)?;
        if locked.is_none() {
            tx.rollback().await.map_err(q)?;
            return Ok(None);
        }
        let live = tx
            .query(sql::LIVE_SESSIONS_OF_USER, &[&e.user_id])
            .await
            .map_err(q)?
            .iter()
            .map(|r| get::<Uuid>(r, 0))
            .collect::<StoreResult<Vec<_>>>()?;
        for statement in sql::ERASE_USER_ROWS {
            tx.execute(statement, &[&e.user_id]).await.map_err(q)?;
        }
        // The seed's one-time code table (unused since the mfa challenges) exists only here.
        tx.execute("DELETE FROM otp_codes WHERE user_id = $1", &[&e.user_id])
            .await
            .map_err(q)?;
        tx.execute(sql::ERASE_LOCKOUT, &[&e.lockout_key])
            .await
            .map_err(q)?;
        tx.execute(sql::ERASE_MAIL, &[&e.recipient_tag])
            .await
            .map_err(q)?;
        tx.execute(sql::ERASE_USER, &[&e.user_id, &e.placeholder_email, &e.now])
            .await
            .map_err(q)?;
        insert_outbox(&tx, e.farewell.as_ref()).await?;
        tx.commit().await.map_err(q)?;
        Ok(Some(live))
    }

    async fn sweep_retention(&self, cutoffs: Cutoffs) -> StoreResult<u64> {
        let _users = self.users.changing();
        let mut conn = self.conn().await?;
        let mut total = 0;
        for (statement, cutoff) in [
            (sql::RETENTION_CONSENT_CHALLENGES, cutoffs.expired_before),
            (sql::RETENTION_ERASED, cutoffs.erased_before),
        ] {
            total += conn.execute(statement, &[&cutoff]).await.map_err(q)?;
        }
        let tx = conn.transaction().await.map_err(q)?;
        total += super::audit::prune_audit(&tx, cutoffs.audit_before, cutoffs.now).await?;
        tx.commit().await.map_err(q)?;
        Ok(total)
    }
}
