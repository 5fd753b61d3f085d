//! One-time tokens: email verification and password reset.

use super::*;
use crate::storage::sql;

#[async_trait]
impl TokenStore for PgStore {
    async fn add_verification_token(
        &self,
        user_id: Uuid,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
        mail: Option<OutboxMail>,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        tx.execute(
            "INSERT INTO email_verification_tokens (id, user_id, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[&Uuid::new_v4(), &user_id, &token_hash, &expires_at, &now],
        )
        .await
        .map_err(q)?;
        insert_outbox(&tx, mail.as_ref()).await?;
        tx.commit().await.map_err(q)?;
        Ok(())
    }

    async fn consume_verification_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        let _users = self.users.changing();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let row = tx
            .query_opt(
                "UPDATE email_verification_tokens SET verified_at = $2
                 WHERE token_hash = $1 AND verified_at IS NULL AND expires_at > $2
                 RETURNING user_id",
                &[&token_hash, &now],
            )
            .await
            .map_err(q)?;
        let Some(row) = row else {
            tx.rollback().await.map_err(q)?;
            return Ok(None);
        };
        let user_id: Uuid = get(&row, 0)?;
        let updated = tx
            .execute(
                "UPDATE users SET email_verified = true WHERE id = $1 AND deleted_at IS NULL",
                &[&user_id],
            )
            .await
            .map_err(q)?;
        if updated == 0 {
            tx.rollback().await.map_err(q)?;
            return Ok(None);
        }
        tx.commit().await.map_err(q)?;
        Ok(Some(user_id))
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
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        // Serialises concurrent requests for one user so the cap holds.
        lock_user(&tx, &user_id).await?;
        let created = tx
            .query(sql::RESET_TOKEN_TIMES, &[&user_id])
            .await
            .map_err(q)?
            .iter()
            .map(|r| get(r, 0))
            .collect::<StoreResult<Vec<DateTime<Utc>>>>()?;
        if !admit(&created) {
            return Ok(false);
        }
        // A newer link replaces the earlier ones.
        tx.execute(sql::SUPERSEDE_RESET_TOKENS, &[&user_id, &now])
            .await
            .map_err(q)?;
        let token: [Param; 5] = [&Uuid::new_v4(), &user_id, &token_hash, &expires_at, &now];
        tx.execute(sql::INSERT_RESET_TOKEN, &token)
            .await
            .map_err(q)?;
        insert_outbox(&tx, mail.as_ref()).await?;
        tx.commit().await.map_err(q)?;
        Ok(true)
    }

    async fn peek_reset_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT user_id FROM password_reset_tokens WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
                &[&token_hash, &now],
            )
            .await
            .map_err(q)?;
        row.map(|r| get(&r, 0)).transpose()
    }

    async fn consume_reset_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let row = tx
            .query_opt(
                "UPDATE password_reset_tokens SET used_at = $2
                 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_id",
                &[&token_hash, &now],
            )
            .await
            .map_err(q)?;
        let Some(row) = row else {
            tx.rollback().await.map_err(q)?;
            return Ok(None);
        };
        let user_id: Uuid = get(&row, 0)?;
        tx.execute(
            "UPDATE password_reset_tokens SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL",
            &[&user_id, &now],
        )
        .await
        .map_err(q)?;
        tx.commit().await.map_err(q)?;
        Ok(Some(user_id))
    }
}
