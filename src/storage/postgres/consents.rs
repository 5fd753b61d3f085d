//! Consents: the append-only history and consent challenges.

use super::*;
use crate::storage::sql;

#[async_trait]
impl ConsentStore for PgStore {
    async fn consent_history(&self, user_id: Uuid) -> StoreResult<Vec<ConsentRecord>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(&sql::consent_history(), &[&user_id])
            .await
            .map_err(q)?;
        rows.iter().map(consent_from).collect()
    }

    async fn append_consents(&self, change: ConsentChange) -> StoreResult<bool> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        if let Some(challenge) = change.challenge {
            let spent = tx
                .execute(
                    sql::SPEND_CONSENT_CHALLENGE,
                    &[&challenge, &change.now, &change.user_id],
                )
                .await
                .map_err(q)?;
            if spent == 0 {
                tx.rollback().await.map_err(q)?;
                return Ok(false);
            }
        }
        for c in &change.consents {
            let row: [Param; 8] = [
                &Uuid::new_v4(),
                &change.user_id,
                &c.consent_type,
                &c.version,
                &c.consented,
                &change.client.ip,
                &change.client.user_agent,
                &change.now,
            ];
            tx.execute(sql::INSERT_CONSENT, &row).await.map_err(q)?;
        }
        tx.commit().await.map_err(q)?;
        Ok(true)
    }

    async fn create_consent_challenge(&self, c: NewConsentChallenge) -> StoreResult<()> {
        let row: [Param; 6] = [
            &c.id,
            &c.user_id,
            &c.token_hash,
            &c.device_id,
            &c.expires_at,
            &c.now,
        ];
        self.exec(sql::INSERT_CONSENT_CHALLENGE, &row).await?;
        Ok(())
    }

    async fn find_consent_challenge(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ConsentChallengeRecord>> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(&sql::find_consent_challenge(), &[&token_hash, &now])
            .await
            .map_err(q)?;
        row.as_ref().map(consent_challenge_from).transpose()
    }
}
