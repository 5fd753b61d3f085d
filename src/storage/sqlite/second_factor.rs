//! Second factors: login challenges, email OTP, TOTP and recovery codes.

use super::*;
use crate::storage::sql;

#[async_trait]
impl SecondFactorStore for SqliteStore {
    async fn create_mfa_challenge(&self, c: NewMfaChallenge) -> StoreResult<bool> {
        self.run(move |conn| {
            // The writer lock serialises concurrent challenges, so the cap holds.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let created = {
                let mut stmt = tx.stmt(&dialect(sql::CHALLENGE_TIMES))?;
                let rows = stmt.query_map(params![c.user_id.to_string()], |r| {
                    r.get::<_, i64>(0).map(time)
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            if !(c.admit)(&created) {
                return Ok(false);
            }
            tx.exec(
                &dialect(sql::INSERT_CHALLENGE),
                params![
                    c.id.to_string(),
                    c.user_id.to_string(),
                    c.token_hash,
                    c.device_id,
                    c.methods,
                    ms(c.expires_at),
                    ms(c.now)
                ],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn find_mfa_challenge(
        &self,
        token_hash: &str,
        live: LiveChallenge,
    ) -> StoreResult<Option<MfaChallengeRecord>> {
        let token_hash = token_hash.to_string();
        self.read(move |c| {
            c.row(
                &dialect(&sql::find_challenge()),
                params![token_hash, ms(live.now), live.max_attempts],
                |r| challenge_from(r),
            )
            .optional()
        })
        .await
    }

    async fn set_challenge_code(&self, id: Uuid, code: ChallengeCode) -> StoreResult<bool> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let n = tx.exec(
                &dialect(sql::SET_CHALLENGE_CODE),
                params![
                    id.to_string(),
                    code.code_hash,
                    ms(code.expires_at),
                    code.max_sends
                ],
            )?;
            if n == 0 {
                return Ok(false);
            }
            insert_outbox(&tx, code.mail.as_ref())?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn reserve_mfa_attempt(&self, id: Uuid, max_attempts: u32) -> StoreResult<bool> {
        self.run(move |c| {
            c.exec(
                &dialect(sql::RESERVE_CHALLENGE_ATTEMPT),
                params![id.to_string(), max_attempts],
            )
            .map(|n| n > 0)
        })
        .await
    }

    async fn consume_mfa_challenge(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<bool> {
        self.run(move |c| {
            c.exec(
                &dialect(sql::SPEND_CHALLENGE),
                params![id.to_string(), ms(now)],
            )
            .map(|n| n > 0)
        })
        .await
    }

    async fn update_second_factors(
        &self,
        user_id: Uuid,
        update: SecondFactorUpdate,
    ) -> StoreResult<bool> {
        let id = user_id.to_string();
        self.run_users(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let current = tx
                .row(&dialect(sql::SECOND_FACTORS), params![id], |r| {
                    second_factors_from(r)
                })
                .optional()?;
            let Some(next) = current.and_then(update.change) else {
                return Ok(false);
            };
            let (enabled, method) = next.flags();
            tx.exec(
                &dialect(sql::SET_SECOND_FACTORS),
                params![
                    id,
                    next.email_otp,
                    next.totp,
                    next.totp_secret_sealed,
                    next.totp_pending_sealed,
                    next.totp_last_step,
                    enabled,
                    method
                ],
            )?;
            if let Some(hashes) = update.recovery {
                tx.exec(&dialect(sql::DELETE_RECOVERY_CODES), params![id])?;
                for h in &hashes {
                    tx.exec(
                        &dialect(sql::INSERT_RECOVERY_CODE),
                        params![Uuid::new_v4().to_string(), id, h, ms(update.now)],
                    )?;
                }
            }
            insert_outbox(&tx, update.mail.as_ref())?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn find_step_up_challenge(
        &self,
        user_id: Uuid,
        live: LiveChallenge,
    ) -> StoreResult<Option<MfaChallengeRecord>> {
        self.read(move |c| {
            c.row(
                &dialect(&sql::find_step_up_challenge()),
                params![user_id.to_string(), ms(live.now), live.max_attempts],
                |r| challenge_from(r),
            )
            .optional()
        })
        .await
    }

    async fn use_recovery_code(&self, user_id: Uuid, code: PresentedCode) -> StoreResult<bool> {
        self.run(move |c| {
            c.exec(
                "UPDATE recovery_codes SET used_at = ?4 WHERE id = (
                     SELECT id FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL
                     AND ((keyed AND code_hash = ?2) OR (NOT keyed AND code_hash = ?3)) LIMIT 1)",
                params![
                    user_id.to_string(),
                    code.keyed_hash,
                    code.legacy_hash,
                    ms(code.at)
                ],
            )
            .map(|n| n > 0)
        })
        .await
    }

    async fn rekey_recovery_codes(&self, rekey: CodeRekey) -> StoreResult<u64> {
        self.run(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let legacy = {
                let mut stmt = tx.stmt(sql::LEGACY_RECOVERY_CODES)?;
                let rows =
                    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            let mut converted = 0u64;
            for (id, hash) in legacy {
                if let Some(keyed) = rekey(&hash) {
                    converted +=
                        tx.exec(&dialect(sql::REKEY_RECOVERY_CODE), params![id, keyed])? as u64;
                }
            }
            tx.commit()?;
            Ok(converted)
        })
        .await
    }
}
