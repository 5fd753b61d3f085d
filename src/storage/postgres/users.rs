//! Accounts: the user row, its password history and consents.

use super::*;
use crate::domain::login_counters::LoginCounters;
use crate::domain::Email;
use crate::storage::sql;

#[async_trait]
impl UserStore for PgStore {
    async fn create_user(&self, new: NewUser) -> StoreResult<CreateUserOutcome> {
        let _users = self.users.changing();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let email = new.email.as_str();
        let user: [Param; 6] = [
            &new.id,
            &email,
            &new.password_hash,
            &new.first_name,
            &new.last_name,
            &new.now,
        ];
        let inserted = tx.execute(sql::INSERT_USER, &user).await.map_err(q)?;
        if inserted == 0 {
            tx.rollback().await.map_err(q)?;
            return Ok(CreateUserOutcome::EmailTaken);
        }
        insert_registration(&tx, &new, new.id, "registration").await?;
        tx.commit().await.map_err(q)?;
        Ok(CreateUserOutcome::Created)
    }

    async fn replace_unverified_user(&self, new: NewUser) -> StoreResult<Option<Uuid>> {
        let _users = self.users.changing();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let row = tx
            .query_opt(
                "UPDATE users SET password_hash = $2, first_name = $3, last_name = $4,
                     created_at = $5, updated_at = $5, password_changed_at = $5,
                     failed_login_attempts = 0, locked_until = NULL, is_locked = FALSE
                 WHERE email = $1 AND email_verified IS NOT TRUE AND is_active IS NOT FALSE
                   AND deleted_at IS NULL
                 RETURNING id",
                &[
                    &new.email.as_str(),
                    &new.password_hash,
                    &new.first_name,
                    &new.last_name,
                    &new.now,
                ],
            )
            .await
            .map_err(q)?;
        let Some(row) = row else {
            tx.rollback().await.map_err(q)?;
            return Ok(None);
        };
        let id: Uuid = get(&row, 0)?;
        // Whoever registered before chose nothing that survives: links,
        // consents and password history are those of this registration.
        for statement in sql::REPLACED_REGISTRATION_ROWS {
            tx.execute(statement, &[&id]).await.map_err(q)?;
        }
        insert_registration(&tx, &new, id, "registration_replaced").await?;
        tx.commit().await.map_err(q)?;
        Ok(Some(id))
    }

    async fn delete_unverified_users(&self, registered_before: DateTime<Utc>) -> StoreResult<u64> {
        let _users = self.users.changing();
        self.exec(
            "DELETE FROM users WHERE id IN (SELECT id FROM users
                 WHERE email_verified IS NOT TRUE AND deleted_at IS NULL AND created_at < $1 LIMIT 5000)",
            &[&registered_before],
        )
        .await
    }

    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<UserRecord>> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                &format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE email = $1 AND deleted_at IS NULL"
                ),
                &[&email.as_str()],
            )
            .await
            .map_err(q)?;
        row.as_ref().map(user_from).transpose()
    }

    fn profile_cache_on(&self) -> bool {
        self.users.enabled()
    }

    async fn find_user_profile(&self, id: Uuid) -> StoreResult<Option<UserRecord>> {
        if let Some(hit) = self.users.get(id) {
            return Ok(Some(hit));
        }
        let before = self.users.generation();
        let found = self.find_user_by_id(id).await?;
        if let Some(record) = &found {
            self.users.fill(before, record);
        }
        Ok(found)
    }

    async fn find_user_by_id(&self, id: Uuid) -> StoreResult<Option<UserRecord>> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND deleted_at IS NULL"),
                &[&id],
            )
            .await
            .map_err(q)?;
        row.as_ref().map(user_from).transpose()
    }

    async fn record_login_success(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
        rehash: Option<String>,
    ) -> StoreResult<()> {
        let _users = self.users.changing_user(user_id);
        self.exec(
            "UPDATE users SET last_login_at = $2, failed_login_attempts = 0, locked_until = NULL, is_locked = false,
                 password_hash = COALESCE($3, password_hash)
             WHERE id = $1",
            &[&user_id, &now, &rehash],
        )
        .await?;
        Ok(())
    }

    async fn set_user_active(
        &self,
        user_id: Uuid,
        active: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let _users = self.users.changing_user(user_id);
        Ok(self
            .exec(sql::SET_USER_ACTIVE, &[&user_id, &active, &now])
            .await?
            == 1)
    }

    async fn clear_login_counters(&self, user_id: Uuid) -> StoreResult<()> {
        let _users = self.users.changing_user(user_id);
        let none: Option<DateTime<Utc>> = None;
        self.exec(sql::SET_LOGIN_COUNTERS, &[&user_id, &0i32, &none, &false])
            .await?;
        Ok(())
    }

    async fn record_login_failure(
        &self,
        user_id: Uuid,
        failure: LoginCounters,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let _users = self.users.changing_user(user_id);
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let Some(row) = tx
            .query_opt(sql::LOGIN_COUNTERS_FOR_UPDATE, &[&user_id])
            .await
            .map_err(q)?
        else {
            return Ok(());
        };
        let next = counters_from(&row)?.after_failure(failure, now);
        let failed = next.failed_attempts.min(i32::MAX as u32) as i32;
        let is_locked = next.is_locked(now);
        let columns: [Param; 4] = [&user_id, &failed, &next.locked_until, &is_locked];
        tx.execute(sql::SET_LOGIN_COUNTERS, &columns)
            .await
            .map_err(q)?;
        tx.commit().await.map_err(q)
    }

    async fn set_password(&self, change: PasswordChange) -> StoreResult<()> {
        let _users = self.users.changing_user(change.user_id);
        let PasswordChange {
            user_id,
            password_hash,
            now,
            mail,
        } = change;
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        tx.execute(
            "UPDATE users SET password_hash = $2, password_changed_at = $3, failed_login_attempts = 0,
                 locked_until = NULL, is_locked = false WHERE id = $1",
            &[&user_id, &password_hash, &now],
        )
        .await
        .map_err(q)?;
        let history: [Param; 4] = [&Uuid::new_v4(), &user_id, &password_hash, &now];
        tx.execute(sql::INSERT_PASSWORD_HISTORY, &history)
            .await
            .map_err(q)?;
        insert_outbox(&tx, mail.as_ref()).await?;
        tx.commit().await.map_err(q)?;
        Ok(())
    }

    async fn password_history(&self, user_id: Uuid, limit: u32) -> StoreResult<Vec<String>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT password_hash FROM password_history WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2",
                &[&user_id, &(limit as i64)],
            )
            .await
            .map_err(q)?;
        rows.iter().map(|r| get(r, 0)).collect()
    }
}

/// The rows a registration writes beside the user's: consents, password
/// history, the verification token, the audit row (`event`) and the mail.
async fn insert_registration(
    tx: &Tx<'_>,
    new: &NewUser,
    user_id: Uuid,
    event: &str,
) -> StoreResult<()> {
    let (ua, ip, now) = (&new.client.user_agent, &new.client.ip, &new.now);
    for c in &new.consents {
        let id = Uuid::new_v4();
        let consent: [Param; 8] = [
            &id,
            &user_id,
            &c.consent_type,
            &c.version,
            &c.consented,
            ip,
            ua,
            now,
        ];
        tx.execute(sql::INSERT_CONSENT, &consent).await.map_err(q)?;
    }
    let history: [Param; 4] = [&Uuid::new_v4(), &user_id, &new.password_hash, now];
    tx.execute(sql::INSERT_PASSWORD_HISTORY, &history)
        .await
        .map_err(q)?;
    let hash = &new.verification_token_hash;
    let end = &new.verification_expires_at;
    let token: [Param; 5] = [&Uuid::new_v4(), &user_id, hash, end, now];
    tx.execute(sql::INSERT_VERIFICATION_TOKEN, &token)
        .await
        .map_err(q)?;
    insert_outbox(tx, new.mail.as_ref()).await?;
    // Last: the chain's lock, taken here, is held until the commit, and every
    // audited action of the deployment waits for it meanwhile.
    super::audit::append_audit(tx, &AuditEntry::registration(user_id, new, event)).await
}
