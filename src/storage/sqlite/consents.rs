//! Consents: the append-only history and consent challenges.

use super::*;
use crate::storage::sql;

#[async_trait]
impl ConsentStore for SqliteStore {
    async fn consent_history(&self, user_id: Uuid) -> StoreResult<Vec<ConsentRecord>> {
        self.read(move |c| {
            let sql = format!("{}, rowid", dialect(&sql::consent_history()));
            let mut stmt = c.stmt(&sql)?;
            let rows = stmt.query_map(params![user_id.to_string()], |r| consent_from(r))?;
            rows.collect()
        })
        .await
    }

    async fn append_consents(&self, change: ConsentChange) -> StoreResult<bool> {
        self.run(move |c| {
            let tx = c.transaction()?;
            let (user, now) = (change.user_id.to_string(), ms(change.now));
            if let Some(challenge) = change.challenge {
                let spent = tx.exec(
                    &dialect(sql::SPEND_CONSENT_CHALLENGE),
                    params![challenge.to_string(), now, user],
                )?;
                if spent == 0 {
                    return Ok(false);
                }
            }
            let ip = change.client.ip.map(|i| i.to_string());
            for consent in &change.consents {
                tx.exec(
                    &dialect(sql::INSERT_CONSENT),
                    params![
                        Uuid::new_v4().to_string(),
                        user,
                        consent.consent_type,
                        consent.version,
                        consent.consented,
                        ip,
                        change.client.user_agent,
                        now
                    ],
                )?;
            }
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn create_consent_challenge(&self, c: NewConsentChallenge) -> StoreResult<()> {
        self.run(move |conn| {
            conn.exec(
                &dialect(sql::INSERT_CONSENT_CHALLENGE),
                params![
                    c.id.to_string(),
                    c.user_id.to_string(),
                    c.token_hash,
                    c.device_id,
                    ms(c.expires_at),
                    ms(c.now)
                ],
            )
            .map(|_| ())
        })
        .await
    }

    async fn find_consent_challenge(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ConsentChallengeRecord>> {
        let token_hash = token_hash.to_string();
        self.read(move |c| {
            c.row(
                &dialect(&sql::find_consent_challenge()),
                params![token_hash, ms(now)],
                |r| consent_challenge_from(r),
            )
            .optional()
        })
        .await
    }
}
