//! Lockout windows keyed by account (normalized email).

use super::*;
use crate::storage::sql;

#[async_trait]
impl LockoutStore for SqliteStore {
    async fn load_lockout(&self, key: &str) -> StoreResult<Option<LockoutRecord>> {
        let key = key.to_string();
        self.read(move |c| {
            c.row(
                "SELECT attempts, failures, window_started_at, locked_until FROM login_lockouts WHERE account_key = ?1",
                params![key],
                |r| lockout_from(r),
            )
            .optional()
        })
        .await
    }

    async fn reset_lockout(&self, key: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let key = key.to_string();
        self.run(move |c| c.exec(&dialect(sql::RESET_LOCKOUT), params![key, ms(at)]))
            .await?;
        Ok(())
    }

    async fn update_lockout(&self, key: &str, update: LockoutUpdate) -> StoreResult<()> {
        let (key, now, transition) = (key.to_string(), update.at, update.transition);
        self.run(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let current = tx
                .row(
                    "SELECT attempts, failures, window_started_at, locked_until FROM login_lockouts WHERE account_key = ?1",
                    params![key],
                    |r| lockout_from(r),
                )
                .optional()?
                .unwrap_or_default();
            let next = transition(current);
            tx.exec(
                "INSERT INTO login_lockouts (account_key, attempts, failures, window_started_at, locked_until, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (account_key) DO UPDATE SET attempts = ?2, failures = ?3, window_started_at = ?4, locked_until = ?5, updated_at = ?6",
                params![key, next.attempts, next.failures, ms_opt(next.window_started_at), ms_opt(next.locked_until), ms(now)],
            )?;
            tx.commit()
        })
        .await
    }
}
