//! Second factors: login challenges, email OTP, TOTP and recovery codes.

use super::*;
use crate::domain::second_factor::SecondFactors;
use crate::storage::sql;

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
        now: DateTime<Utc>,
        max_attempts: u32,
    ) -> StoreResult<Option<MfaChallengeRecord>> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                &sql::find_challenge(),
                &[&token_hash, &now, &(max_attempts as i32)],
            )
            .await
            .map_err(q)?;
        row.map(|r| challenge_from(&r)).transpose()
    }

    async fn set_challenge_code(
        &self,
        id: Uuid,
        code_hash: &str,
        expires_at: DateTime<Utc>,
        max_sends: u32,
        mail: Option<OutboxMail>,
    ) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let n = tx
            .execute(
                "UPDATE mfa_challenges SET otp_code_hash = $2, otp_expires_at = $3, otp_sends = otp_sends + 1
                 WHERE id = $1 AND otp_sends < $4 AND consumed_at IS NULL",
                &[&id, &code_hash, &expires_at, &(max_sends as i32)],
            )
            .await
            .map_err(q)?;
        if n == 0 {
            tx.rollback().await.map_err(q)?;
            return Ok(false);
        }
        insert_outbox(&tx, mail.as_ref()).await?;
        tx.commit().await.map_err(q)?;
        Ok(true)
    }

    async fn reserve_mfa_attempt(&self, id: Uuid, max_attempts: u32) -> StoreResult<bool> {
        let n = self
            .exec(
                "UPDATE mfa_challenges SET attempts = attempts + 1 WHERE id = $1 AND attempts < $2 AND consumed_at IS NULL",
                &[&id, &(max_attempts as i32)],
            )
            .await?;
        Ok(n > 0)
    }

    async fn consume_mfa_challenge(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<bool> {
        let n = self
            .exec(
                "UPDATE mfa_challenges SET consumed_at = $2 WHERE id = $1 AND consumed_at IS NULL",
                &[&id, &now],
            )
            .await?;
        Ok(n > 0)
    }

    async fn update_second_factors(
        &self,
        user_id: Uuid,
        update: SecondFactorUpdate,
    ) -> StoreResult<bool> {
        let _users = self.users.changing();
        let SecondFactorUpdate {
            change,
            recovery,
            now,
            mail,
        } = update;
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        let sql = format!("{} FOR UPDATE", sql::SECOND_FACTORS);
        let Some(row) = tx.query_opt(&sql, &[&user_id]).await.map_err(q)? else {
            return Ok(false);
        };
        let current = SecondFactors {
            email_otp: get(&row, 0)?,
            totp: get(&row, 1)?,
            totp_secret_sealed: get(&row, 2)?,
            totp_pending_sealed: get(&row, 3)?,
            totp_last_step: get(&row, 4)?,
        };
        let Some(next) = change(current) else {
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
        if let Some(hashes) = recovery {
            tx.execute(sql::DELETE_RECOVERY_CODES, &[&user_id])
                .await
                .map_err(q)?;
            for h in &hashes {
                let code: [Param; 4] = [&Uuid::new_v4(), &user_id, h, &now];
                tx.execute(sql::INSERT_RECOVERY_CODE, &code)
                    .await
                    .map_err(q)?;
            }
        }
        insert_outbox(&tx, mail.as_ref()).await?;
        tx.commit().await.map_err(q)?;
        Ok(true)
    }

    async fn find_step_up_challenge(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
        max_attempts: u32,
    ) -> StoreResult<Option<MfaChallengeRecord>> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                &sql::find_step_up_challenge(),
                &[&user_id, &now, &(max_attempts as i32)],
            )
            .await
            .map_err(q)?;
        row.map(|r| challenge_from(&r)).transpose()
    }

    async fn use_recovery_code(
        &self,
        user_id: Uuid,
        keyed_hash: &str,
        legacy_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let n = self
            .exec(
                "UPDATE recovery_codes SET used_at = $4 WHERE id = (
                     SELECT id FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL
                     AND ((keyed AND code_hash = $2) OR (NOT keyed AND code_hash = $3)) LIMIT 1 FOR UPDATE)",
                &[&user_id, &keyed_hash, &legacy_hash, &now],
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
