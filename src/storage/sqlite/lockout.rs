//! Lockout windows keyed by account (normalized email).

use super::*;

fn lockout(r: &Row<'_>) -> rusqlite::Result<LockoutRecord> {
    Ok(LockoutRecord {
        attempts: r.get::<_, i64>(0)?.max(0) as u32,
        failures: r.get::<_, i64>(1)?.max(0) as u32,
        window_started_at: time_opt(r.get(2)?),
        locked_until: time_opt(r.get(3)?),
    })
}

#[async_trait]
impl LockoutStore for SqliteStore {
    async fn load_lockout(&self, key: &str) -> StoreResult<Option<LockoutRecord>> {
        let key = key.to_string();
        self.read(move |c| {
            c.query_row(
                "SELECT attempts, failures, window_started_at, locked_until FROM login_lockouts WHERE account_key = ?1",
                params![key],
                lockout,
            )
            .optional()
        })
        .await
    }

    async fn update_lockout(&self, key: &str, transition: LockoutTransition) -> StoreResult<()> {
        let key = key.to_string();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let current = tx
                .query_row(
                    "SELECT attempts, failures, window_started_at, locked_until FROM login_lockouts WHERE account_key = ?1",
                    params![key],
                    lockout,
                )
                .optional()?
                .unwrap_or_default();
            let next = transition(current);
            tx.execute(
                "INSERT INTO login_lockouts (account_key, attempts, failures, window_started_at, locked_until, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (account_key) DO UPDATE SET attempts = ?2, failures = ?3, window_started_at = ?4, locked_until = ?5, updated_at = ?6",
                params![key, next.attempts, next.failures, ms_opt(next.window_started_at), ms_opt(next.locked_until), ms(Utc::now())],
            )?;
            tx.commit()
        })
        .await
    }
}
