//! Export, erasure and retention of what is held about a person.

use super::*;
use crate::domain::retention::Cutoffs;
use crate::storage::sql;

fn all<T>(
    c: &Connection,
    statement: &str,
    param: &str,
    map: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = c.stmt(&dialect(statement))?;
    let rows = stmt.query_map(params![param], |r| map(r))?;
    rows.collect()
}

fn count(c: &Connection, statement: &str, user: &str) -> rusqlite::Result<u64> {
    c.row(&dialect(statement), params![user], |r| r.get::<_, i64>(0))
        .map(|n| n.max(0) as u64)
}

#[async_trait]
impl PrivacyStore for SqliteStore {
    async fn export_user(
        &self,
        user_id: Uuid,
        recipient_tag: &str,
    ) -> StoreResult<Option<UserExport>> {
        let tag = recipient_tag.to_string();
        self.read(move |c| {
            // One snapshot for the whole document.
            let tx = c.transaction()?;
            let user = user_id.to_string();
            let Some((record, password_changed_at)) = tx
                .row(&dialect(&sql::export_user()), params![user], |r| {
                    Ok((user_from(r)?, time_opt(r.get(17)?)))
                })
                .optional()?
            else {
                return Ok(None);
            };
            let consents = all(
                &tx,
                &format!("{}, rowid", sql::consent_history()),
                &user,
                |r| consent_from(r),
            )?;
            let sessions = all(&tx, &sql::export_sessions(), &user, |r| {
                Ok(SessionHistory {
                    session: session_from(r, 0)?,
                    ended_reason: r.get(10)?,
                })
            })?;
            let devices = all(&tx, &sql::export_devices(), &user, |r| device_from(r))?;
            let audit = all(
                &tx,
                &format!("{}, rowid DESC", sql::export_audit()),
                &user,
                |r| audit_from(r),
            )?;
            let mail = all(&tx, &sql::export_mail(), &tag, |r| mail_record_from(r))?;
            let export = UserExport {
                user: record,
                password_changed_at,
                consents,
                sessions,
                devices,
                recovery_codes_unused: count(&tx, sql::COUNT_UNUSED_RECOVERY_CODES, &user)?,
                recovery_codes_used: count(&tx, sql::COUNT_USED_RECOVERY_CODES, &user)?,
                previous_passwords: count(&tx, sql::COUNT_PASSWORD_HISTORY, &user)?,
                audit,
                mail,
            };
            tx.commit()?;
            Ok(Some(export))
        })
        .await
    }

    async fn erase_user(&self, e: Erasure) -> StoreResult<Option<Vec<Uuid>>> {
        self.run_users(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let user = e.user_id.to_string();
            let live: Option<String> = tx
                .row(
                    "SELECT id FROM users WHERE id = ?1 AND deleted_at IS NULL",
                    params![user],
                    |r| r.get(0),
                )
                .optional()?;
            if live.is_none() {
                return Ok(None);
            }
            let sessions: Vec<String> = all(&tx, sql::LIVE_SESSIONS_OF_USER, &user, |r| r.get(0))?;
            for statement in sql::ERASE_USER_ROWS {
                tx.exec(&dialect(statement), params![user])?;
            }
            tx.exec(&dialect(sql::ERASE_LOCKOUT), params![e.lockout_key])?;
            tx.exec(&dialect(sql::ERASE_MAIL), params![e.recipient_tag])?;
            tx.exec(
                &dialect(sql::ERASE_USER),
                params![user, e.placeholder_email, ms(e.now)],
            )?;
            insert_outbox(&tx, e.farewell.as_ref())?;
            tx.commit()?;
            sessions
                .into_iter()
                .map(uuid)
                .collect::<rusqlite::Result<Vec<_>>>()
                .map(Some)
        })
        .await
    }

    async fn sweep_retention(&self, cutoffs: Cutoffs) -> StoreResult<u64> {
        self.run_users(move |c| {
            let mut total = 0;
            for (statement, cutoff) in [
                (sql::RETENTION_CONSENT_CHALLENGES, cutoffs.expired_before),
                (sql::RETENTION_ERASED, cutoffs.erased_before),
            ] {
                total += c.exec(&dialect(statement), params![ms(cutoff)])? as u64;
            }
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            total += super::audit::prune_audit(&tx, cutoffs.audit_before, cutoffs.now)?;
            tx.commit()?;
            Ok(total)
        })
        .await
    }
}
