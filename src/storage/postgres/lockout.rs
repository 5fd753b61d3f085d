//! Lockout windows keyed by account (normalized email).

use super::*;
use crate::storage::sql;

#[async_trait]
impl LockoutStore for PgStore {
    async fn load_lockout(&self, key: &str) -> StoreResult<Option<LockoutRecord>> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT attempts, failures, window_started_at, locked_until FROM login_lockouts WHERE account_key = $1",
                &[&key],
            )
            .await
            .map_err(q)?;
        row.as_ref().map(lockout_from).transpose()
    }

    async fn reset_lockout(&self, key: &str, at: DateTime<Utc>) -> StoreResult<()> {
        self.exec(sql::RESET_LOCKOUT, &[&key, &at]).await?;
        Ok(())
    }

    async fn update_lockout(&self, key: &str, update: LockoutUpdate) -> StoreResult<()> {
        let LockoutUpdate {
            at: now,
            transition,
        } = update;
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        // One upsert that locks the row and returns it: a sweep or an erasure
        // deleting the row between an insert and a separate `SELECT ... FOR
        // UPDATE` would leave nothing to select.
        let row = tx
            .query_one(
                "INSERT INTO login_lockouts (account_key, updated_at) VALUES ($1, $2)
                 ON CONFLICT (account_key) DO UPDATE SET updated_at = EXCLUDED.updated_at
                 RETURNING attempts, failures, window_started_at, locked_until",
                &[&key, &now],
            )
            .await
            .map_err(q)?;
        let next = transition(lockout_from(&row)?);
        tx.execute(
            "UPDATE login_lockouts SET attempts = $2, failures = $3, window_started_at = $4, locked_until = $5, updated_at = $6
             WHERE account_key = $1",
            &[&key, &(next.attempts as i32), &(next.failures as i32), &next.window_started_at, &next.locked_until, &now],
        )
        .await
        .map_err(q)?;
        tx.commit().await.map_err(q)?;
        Ok(())
    }
}
