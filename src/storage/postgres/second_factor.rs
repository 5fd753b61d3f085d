//! Second factors: login challenges, email OTP, TOTP and recovery codes.

use super::*;
use crate::storage::sql;

impl PgStore {
    /// The live challenge that `statement` finds with $1 = `key`, $2 the
    /// time, $3 the attempts allowed.
    async fn find_challenge(
        &self,
        statement: &str,
        key: &(dyn ToSql + Sync),
        live: LiveChallenge,
    ) -> StoreResult<Option<MfaChallengeRecord>> {
        let conn = self.conn().await?;
        let max = live.max_attempts as i32;
        let row = conn
            .query_opt(statement, &[key, &live.now, &max])
            .await
            .map_err(q)?;
        row.map(|r| challenge_from(&r)).transpose()
    }
}

#[async_trait]
impl SecondFactorStore for PgStore {
    async fn create_mfa_challenge(&self, c: NewMfaChallenge) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        // Serialises concurrent challenges of one user so the cap holds.
        lock_user(&tx, &c.user_id).await?;
        let created = tx
            .query(sql::CHALLENGE_TIMES, &[&c.user_id])
            .await
            .map_err(q)?
            .iter()
            .map(|r| get(r, 0))
            .collect::<StoreResult<Vec<DateTime<Utc>>>>()?;
        if !(c.admit)(&created) {
            return Ok(false);
        }
        let row: [Param; 7] = [
            &c.id,
            &c.user_id,
            &c.token_hash,
            &c.device_id,
            &c.methods,
            &c.expires_at,
            &c.now,
        ];
        tx.execute(sql::INSERT_CHALLENGE, &row).await.map_err(q)?;
        tx.commit().await.map_err(q)?;
        Ok(true)
    }

    async fn find_mfa_challenge(
        &self,
        token_hash: &str,
        live: LiveChallenge,
    ) -> StoreResult<Option<MfaChallengeRecord>> {
        self.find_challenge(&sql::find_challenge(), &token_hash, live)
            .await
    }

    async fn set_challenge_code(&self, id: Uuid, code: ChallengeCode) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let max_sends = code.max_sends as i32;
        let row: [Param; 4] = [&id, &code.code_hash, &code.expires_at, &max_sends];
        let n = tx.execute(sql::SET_CHALLENGE_CODE, &row).await.map_err(q)?;
        if n == 0 {
            tx.rollback().await.map_err(q)?;
            return Ok(false);
        }
        insert_outbox(&tx, code.mail.as_ref()).await?;
        tx.commit().await.map_err(q)?;
        Ok(true)
    }

    async fn reserve_mfa_attempt(&self, id: Uuid, max_attempts: u32) -> StoreResult<bool> {
        let max = max_attempts as i32;
        let n = self
            .exec(sql::RESERVE_CHALLENGE_ATTEMPT, &[&id, &max])
            .await?;
        Ok(n > 0)
    }

    async fn consume_mfa_challenge(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<bool> {
        Ok(self.exec(sql::SPEND_CHALLENGE, &[&id, &now]).await? > 0)
    }

    async fn update_second_factors(
        &self,
        user_id: Uuid,
        update: SecondFactorUpdate,
    ) -> StoreResult<bool> {
        let _users = self.users.changing_user(user_id);
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let sql = format!("{} FOR UPDATE", sql::SECOND_FACTORS);
        let Some(row) = tx.query_opt(&sql, &[&user_id]).await.map_err(q)? else {
            return Ok(false);
        };
        let Some(next) = (update.change)(second_factors_from(&row)?) else {
            return Ok(false);
        };
        let (enabled, method) = next.flags();
        let columns: [Param; 8] = [
            &user_id,
            &next.email_otp,
            &next.totp,
            &next.totp_secret_sealed,
            &next.totp_pending_sealed,
            &next.totp_last_step,
            &enabled,
            &method,
        ];
        tx.execute(sql::SET_SECOND_FACTORS, &columns)
            .await
            .map_err(q)?;
        if let Some(hashes) = update.recovery {
            tx.execute(sql::DELETE_RECOVERY_CODES, &[&user_id])
                .await
                .map_err(q)?;
            for h in &hashes {
                let code: [Param; 4] = [&Uuid::new_v4(), &user_id, h, &update.now];
                tx.execute(sql::INSERT_RECOVERY_CODE, &code)
                    .await
                    .map_err(q)?;
            }
        }
        insert_outbox(&tx, update.mail.as_ref()).await?;
        tx.commit().await.map_err(q)?;
        Ok(true)
    }

    async fn find_step_up_challenge(
        &self,
        user_id: Uuid,
        live: LiveChallenge,
    ) -> StoreResult<Option<MfaChallengeRecord>> {
        self.find_challenge(&sql::find_step_up_challenge(), &user_id, live)
            .await
    }

    async fn use_recovery_code(&self, user_id: Uuid, code: PresentedCode) -> StoreResult<bool> {
        let n = self
            .exec(
                "UPDATE recovery_codes SET used_at = $4 WHERE id = (
                     SELECT id FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL
                     AND ((keyed AND code_hash = $2) OR (NOT keyed AND code_hash = $3)) LIMIT 1 FOR UPDATE)",
                &[&user_id, &code.keyed_hash, &code.legacy_hash, &code.at],
            )
            .await?;
        Ok(n > 0)
    }

    async fn rekey_recovery_codes(&self, rekey: CodeRekey) -> StoreResult<u64> {
        let conn = self.conn().await?;
        let rows = conn
            .query(sql::LEGACY_RECOVERY_CODES, &[])
            .await
            .map_err(q)?;
        let mut converted = 0;
        for row in &rows {
            let id: Uuid = get(row, 0)?;
            let legacy: String = get(row, 1)?;
            if let Some(keyed) = rekey(&legacy) {
                converted += conn
                    .execute(sql::REKEY_RECOVERY_CODE, &[&id, &keyed])
                    .await
                    .map_err(q)?;
            }
        }
        Ok(converted)
    }
}
