//! One-time tokens: email verification and password reset.

use super::*;
use crate::storage::sql;

/// Spends a live one-time token as `how` says; its user, or `None` (nothing
/// written).
fn spend_token(
    c: &mut Connection,
    how: &sql::TokenSpend,
    token_hash: &str,
    now: i64,
) -> rusqlite::Result<Option<Uuid>> {
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let user_id: Option<String> = tx
        .row(&dialect(how.token), params![token_hash, now], |r| r.get(0))
        .optional()?;
    let Some(user_id) = user_id else {
        return Ok(None);
    };
    let changed = tx.exec(&dialect(how.then), params![user_id, now])?;
    if how.required && changed == 0 {
        return Ok(None);
    }
    tx.commit()?;
    uuid(user_id).map(Some)
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn add_verification_token(&self, t: NewVerificationToken) -> StoreResult<()> {
        self.run(move |c| {
            let tx = c.transaction()?;
            tx.exec(
                &dialect(sql::INSERT_VERIFICATION_TOKEN),
                params![
                    Uuid::new_v4().to_string(),
                    t.user_id.to_string(),
                    t.token_hash,
                    ms(t.expires_at),
                    ms(t.now)
                ],
            )?;
            insert_outbox(&tx, t.mail.as_ref())?;
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
        self.run_users(move |c| spend_token(c, &sql::VERIFY_EMAIL, &token_hash, ms(now)))
            .await
    }

    async fn add_reset_token(&self, t: NewResetToken) -> StoreResult<bool> {
        let (id, now) = (t.user_id.to_string(), ms(t.now));
        self.run(move |c| {
            // The writer lock serialises concurrent requests, so the cap holds.
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let created = {
                let mut stmt = tx.stmt(&dialect(sql::RESET_TOKEN_TIMES))?;
                let rows = stmt.query_map(params![id], |r| r.get::<_, i64>(0).map(time))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            if !(t.admit)(&created) {
                return Ok(false);
            }
            // A newer link replaces the earlier ones (`SUPERSEDE_OLDER_RESET_TOKENS`).
            tx.exec(
                &dialect(sql::SUPERSEDE_OLDER_RESET_TOKENS),
                params![id, now],
            )?;
            let token = (Uuid::new_v4().to_string(), &t.token_hash, ms(t.expires_at));
            tx.exec(
                &dialect(sql::INSERT_RESET_TOKEN),
                params![token.0, id, token.1, token.2, now],
            )?;
            insert_outbox(&tx, t.mail.as_ref())?;
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
                .row(
                    &dialect(sql::PEEK_RESET_TOKEN),
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
        self.run(move |c| spend_token(c, &sql::USE_RESET_TOKEN, &token_hash, ms(now)))
            .await
    }
}
