//! Accounts: the user row, its password history and consents.

use super::*;
use crate::storage::sql;

use crate::domain::login_counters::LoginCounters;
use crate::domain::Email;

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, new: NewUser) -> StoreResult<CreateUserOutcome> {
        self.run_users(move |c| {
            let tx = c.transaction()?;
            let now = ms(new.now);
            let id = new.id.to_string();
            let inserted = tx.exec(
                &dialect(sql::INSERT_USER),
                params![
                    id,
                    new.email.as_str(),
                    new.password_hash,
                    new.first_name,
                    new.last_name,
                    now
                ],
            )?;
            if inserted == 0 {
                return Ok(CreateUserOutcome::EmailTaken);
            }
            insert_registration(&tx, &new, &id, "registration")?;
            tx.commit()?;
            Ok(CreateUserOutcome::Created)
        })
        .await
    }

    async fn replace_unverified_user(&self, new: NewUser) -> StoreResult<Option<Uuid>> {
        self.run_users(move |c| {
            let tx = c.transaction()?;
            let id: Option<String> = tx
                .row(
                    "UPDATE users SET password_hash = ?2, first_name = ?3, last_name = ?4,
                         created_at = ?5, updated_at = ?5, password_changed_at = ?5,
                         failed_login_attempts = 0, locked_until = NULL, is_locked = 0
                     WHERE email = ?1 AND email_verified = 0 AND is_active = 1 AND deleted_at IS NULL
                     RETURNING id",
                    params![new.email.as_str(), new.password_hash, new.first_name, new.last_name, ms(new.now)],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(id) = id else {
                return Ok(None);
            };
            // Whoever registered before chose nothing that survives: links,
            // consents and password history are those of this registration.
            for statement in sql::REPLACED_REGISTRATION_ROWS {
                tx.exec(&dialect(statement), params![id])?;
            }
            insert_registration(&tx, &new, &id, "registration_replaced")?;
            tx.commit()?;
            Ok(Uuid::parse_str(&id).ok())
        })
        .await
    }

    async fn delete_unverified_users(&self, registered_before: DateTime<Utc>) -> StoreResult<u64> {
        self.run_users(move |c| {
            c.exec(
                "DELETE FROM users WHERE email_verified = 0 AND deleted_at IS NULL AND created_at < ?1",
                params![ms(registered_before)],
            )
            .map(|n| n as u64)
        })
        .await
    }

    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<UserRecord>> {
        let email = email.as_str().to_string();
        self.read(move |c| {
            c.row(
                &format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE email = ?1 AND deleted_at IS NULL"
                ),
                params![email],
                |r| user_from(r),
            )
            .optional()
        })
        .await
    }

    async fn find_user_by_id(&self, id: Uuid) -> StoreResult<Option<UserRecord>> {
        if self.external.changed_since_seen() {
            self.users.invalidate();
        }
        if let Some(hit) = self.users.get(id) {
            return Ok(Some(hit));
        }
        let before = self.users.generation();
        let found = self
            .read(move |c| {
                c.row(
                    &format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE id = ?1 AND deleted_at IS NULL"
                    ),
                    params![id.to_string()],
                    |r| user_from(r),
                )
                .optional()
            })
            .await?;
        if let Some(record) = &found {
            self.users.fill(before, record);
        }
        Ok(found)
    }

    async fn set_user_active(
        &self,
        user_id: Uuid,
        active: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.run_users(move |c| {
            c.exec(
                &dialect(sql::SET_USER_ACTIVE),
                params![user_id.to_string(), active, ms(now)],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn clear_login_counters(&self, user_id: Uuid) -> StoreResult<()> {
        self.run_users(move |c| {
            c.exec(
                &dialect(sql::SET_LOGIN_COUNTERS),
                params![user_id.to_string(), 0, None::<i64>, false],
            )
            .map(|_| ())
        })
        .await
    }

    async fn record_login_success(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
        rehash: Option<String>,
    ) -> StoreResult<()> {
        self.run_users(move |c| {
            c.exec(
                "UPDATE users SET last_login_at = ?2, failed_login_attempts = 0, locked_until = NULL, is_locked = 0,
                     password_hash = COALESCE(?3, password_hash), updated_at = ?2
                 WHERE id = ?1",
                params![user_id.to_string(), ms(now), rehash],
            )
            .map(|_| ())
        })
        .await
    }

    async fn record_login_failure(
        &self,
        user_id: Uuid,
        failure: LoginCounters,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let id = user_id.to_string();
        self.run_users(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let current = tx
                .row(&dialect(sql::LOGIN_COUNTERS), params![id], |r| {
                    counters_from(r)
                })
                .optional()?;
            let Some(current) = current else {
                return Ok(());
            };
            let next = current.after_failure(failure, now);
            tx.exec(
                &dialect(sql::SET_LOGIN_COUNTERS),
                params![
                    id,
                    next.failed_attempts,
                    ms_opt(next.locked_until),
                    next.is_locked(now)
                ],
            )?;
            tx.commit()
        })
        .await
    }

    async fn set_password(&self, change: PasswordChange) -> StoreResult<()> {
        let PasswordChange {
            user_id,
            password_hash,
            now,
            mail,
        } = change;
        self.run_users(move |c| {
            let tx = c.transaction()?;
            tx.exec(
                "UPDATE users SET password_hash = ?2, password_changed_at = ?3, failed_login_attempts = 0,
                     locked_until = NULL, is_locked = 0, updated_at = ?3 WHERE id = ?1",
                params![user_id.to_string(), password_hash, ms(now)],
            )?;
            tx.exec(
                &dialect(sql::INSERT_PASSWORD_HISTORY),
                params![
                    Uuid::new_v4().to_string(),
                    user_id.to_string(),
                    password_hash,
                    ms(now)
                ],
            )?;
            insert_outbox(&tx, mail.as_ref())?;
            tx.commit()
        })
        .await
    }

    async fn password_history(&self, user_id: Uuid, limit: u32) -> StoreResult<Vec<String>> {
        self.read(move |c| {
            let mut stmt = c.stmt(
                "SELECT password_hash FROM password_history WHERE user_id = ?1 ORDER BY created_at DESC, rowid DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![user_id.to_string(), limit], |r| r.get(0))?;
            rows.collect()
        })
        .await
    }
}

/// The rows a registration writes beside the user's: consents, password
/// history, the verification token, the audit row (`event`) and the mail.
fn insert_registration(
    tx: &rusqlite::Transaction<'_>,
    new: &NewUser,
    id: &str,
    event: &str,
) -> rusqlite::Result<()> {
    let now = ms(new.now);
    let (ua, ip) = (&new.client.user_agent, new.client.ip.map(|i| i.to_string()));
    for c in &new.consents {
        tx.exec(
            &dialect(sql::INSERT_CONSENT),
            params![
                Uuid::new_v4().to_string(),
                id,
                c.consent_type,
                c.version,
                c.consented,
                ip,
                ua,
                now
            ],
        )?;
    }
    tx.exec(
        &dialect(sql::INSERT_PASSWORD_HISTORY),
        params![Uuid::new_v4().to_string(), id, new.password_hash, now],
    )?;
    let (hash, end) = (
        &new.verification_token_hash,
        ms(new.verification_expires_at),
    );
    tx.exec(
        &dialect(sql::INSERT_VERIFICATION_TOKEN),
        params![Uuid::new_v4().to_string(), id, hash, end, now],
    )?;
    let user_id = uuid(id.to_string())?;
    super::audit::append_audit(tx, &AuditEntry::registration(user_id, new, event))?;
    insert_outbox(tx, new.mail.as_ref())
}
