//! One-time tokens: email verification and password reset.

use super::*;
use crate::storage::sql;

impl PgStore {
    /// Spends a live one-time token as `how` says; its user, or `None`
    /// (nothing written).
    async fn spend_token(
        &self,
        how: &sql::TokenSpend,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let row = tx
            .query_opt(how.token, &[&token_hash, &now])
            .await
            .map_err(q)?;
        let Some(row) = row else {
            tx.rollback().await.map_err(q)?;
            return Ok(None);
        };
        let user_id: Uuid = get(&row, 0)?;
        let changed = tx.execute(how.then, &[&user_id, &now]).await.map_err(q)?;
        if how.required && changed == 0 {
            tx.rollback().await.map_err(q)?;
            return Ok(None);
        }
        tx.commit().await.map_err(q)?;
        Ok(Some(user_id))
    }
}

#[async_trait]
impl TokenStore for PgStore {
    async fn add_verification_token(&self, t: NewVerificationToken) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let token: [Param; 5] = [
            &Uuid::new_v4(),
            &t.user_id,
            &t.token_hash,
            &t.expires_at,
            &t.now,
        ];
        tx.execute(sql::INSERT_VERIFICATION_TOKEN, &token)
            .await
            .map_err(q)?;
        insert_outbox(&tx, t.mail.as_ref()).await?;
        tx.commit().await.map_err(q)?;
        Ok(())
    }

    async fn consume_verification_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        let _users = self.users.changing();
        self.spend_token(&sql::VERIFY_EMAIL, token_hash, now).await
    }

    async fn add_reset_token(&self, t: NewResetToken) -> StoreResult<bool> {
        let (user_id, now) = (&t.user_id, &t.now);
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        // Serialises concurrent requests for one user so the cap holds.
        lock_user(&tx, user_id).await?;
        let created = tx
            .query(sql::RESET_TOKEN_TIMES, &[user_id])
            .await
            .map_err(q)?
            .iter()
            .map(|r| get(r, 0))
            .collect::<StoreResult<Vec<DateTime<Utc>>>>()?;
        if !(t.admit)(&created) {
            return Ok(false);
        }
        // A newer link replaces the earlier ones (`SUPERSEDE_OLDER_RESET_TOKENS`).
        tx.execute(sql::SUPERSEDE_OLDER_RESET_TOKENS, &[user_id, now])
            .await
            .map_err(q)?;
        let token: [Param; 5] = [&Uuid::new_v4(), user_id, &t.token_hash, &t.expires_at, now];
        tx.execute(sql::INSERT_RESET_TOKEN, &token)
            .await
            .map_err(q)?;
        insert_outbox(&tx, t.mail.as_ref()).await?;
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
            .query_opt(sql::PEEK_RESET_TOKEN, &[&token_hash, &now])
            .await
            .map_err(q)?;
        row.map(|r| get(&r, 0)).transpose()
    }

    async fn consume_reset_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Uuid>> {
        self.spend_token(&sql::USE_RESET_TOKEN, token_hash, now)
            .await
    }
}
