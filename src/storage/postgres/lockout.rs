//! Lockout windows keyed by account (normalized email).

use super::*;

fn lockout(r: &Row) -> StoreResult<LockoutRecord> {
    Ok(LockoutRecord {
        attempts: get::<i32>(r, 0)?.max(0) as u32,
        failures: get::<i32>(r, 1)?.max(0) as u32,
        window_started_at: get(r, 2)?,
        locked_until: get(r, 3)?,
    })
}

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
        row.as_ref().map(lockout).transpose()
    }

    async fn update_lockout(&self, key: &str, transition: LockoutTransition) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        tx.execute(
            "INSERT INTO login_lockouts (account_key, updated_at) VALUES ($1, NOW()) ON CONFLICT (account_key) DO NOTHING",
            &[&key],
        )
        .await
        .map_err(q)?;
        let row = tx
            .query_one(
                "SELECT attempts, failures, window_started_at, locked_until FROM login_lockouts WHERE account_key = $1 FOR UPDATE",
                &[&key],
            )
            .await
            .map_err(q)?;
        let next = transition(lockout(&row)?);
        tx.execute(
            "UPDATE login_lockouts SET attempts = $2, failures = $3, window_started_at = $4, locked_until = $5, updated_at = NOW()
             WHERE account_key = $1",
            &[&key, &(next.attempts as i32), &(next.failures as i32), &next.window_started_at, &next.locked_until],
        )
        .await
        .map_err(q)?;
        tx.commit().await.map_err(q)?;
        Ok(())
    }
}
