//! One-time tokens: email verification and password reset.

use super::*;
use crate::storage::sql;

#[async_trait]
impl TokenStore for SqliteStore {
    async fn add_verification_token(
        &self,
        user_id: Uuid,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
        mail: Option<OutboxMail>,
    ) -> StoreResult<()> {
        let token_hash = token_hash.to_string();
        self.run(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO email_verification_tokens (id, user_id, token_hash, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![Uuid::new_v4().to_string(), user_id.to_string(), token_hash, ms(expires_at), ms(now)],
            )?;
            insert_outbox(&tx, mail.as_ref())?;
            tx.commit()
        })
        .await
    }

    async fn consume_verification_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        let token_hash = token_hash.to_string();
        self.run_users(move |c| {
            let tx = c.transaction()?;
            let user_id: Option<String> = tx
                .query_row(
                    "UPDATE email_verification_tokens SET verified_at = ?2
                     WHERE token_hash = ?1 AND verified_at IS NULL AND expires_at > ?2
                     RETURNING user_id",
                    params![token_hash, ms(now)],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(user_id) = user_id else {
                return Ok(None);
            };
            let updated = tx.execute(
                "UPDATE users SET email_verified = 1, updated_at = ?2 WHERE id = ?1 AND deleted_at IS NULL",
                params![user_id, ms(now)],
            )?;
            if updated == 0 {
                return Ok(None);
            }
            tx.commit()?;
            uuid(user_id).map(Some)
        })
        .await
    }

    async fn add_reset_token(&self, token: NewResetToken) -> StoreResult<bool> {
        let NewResetToken {
            user_id,
            token_hash,
            expires_at,
            now,
            admit,
            mail,
        } = token;
        let id = user_id.to_string();
        self.run(move |c| {
            // The writer lock serialises concurrent requests, so the cap holds.
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let created = {
                let mut stmt = tx.prepare(&dialect(sql::RESET_TOKEN_TIMES))?;
                let rows = stmt.query_map(params![id], |r| r.get::<_, i64>(0).map(time))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            if !admit(&created) {
                return Ok(false);
            }
            // A newer link replaces the earlier ones.
            tx.execute(&dialect(sql::SUPERSEDE_RESET_TOKENS), params![id, ms(now)])?;
            tx.execute(
                &dialect(sql::INSERT_RESET_TOKEN),
                params![
                    Uuid::new_v4().to_string(),
                    id,
                    token_hash,
                    ms(expires_at),
                    ms(now)
                ],
            )?;
            insert_outbox(&tx, mail.as_ref())?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn peek_reset_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        let token_hash = token_hash.to_string();
        self.read(move |c| {
            let id: Option<String> = c
                .query_row(
                    "SELECT user_id FROM password_reset_tokens WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
                    params![token_hash, ms(now)],
                    |r| r.get(0),
                )
                .optional()?;
            id.map(uuid).transpose()
        })
        .await
    }

    async fn consume_reset_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        let token_hash = token_hash.to_string();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let id: Option<String> = tx
                .query_row(
                    "UPDATE password_reset_tokens SET used_at = ?2
                     WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2 RETURNING user_id",
                    params![token_hash, ms(now)],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(id) = id else {
                return Ok(None);
            };
            tx.execute(
                "UPDATE password_reset_tokens SET used_at = ?2 WHERE user_id = ?1 AND used_at IS NULL",
                params![id, ms(now)],
            )?;
            tx.commit()?;
            uuid(id).map(Some)
        })
        .await
    }
}
