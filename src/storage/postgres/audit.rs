//! The audit log.

use super::*;

#[async_trait]
impl AuditStore for PgStore {
    async fn insert_audit(&self, e: AuditEvent) -> StoreResult<()> {
        let conn = self.conn().await?;
        let status = if e.success { "success" } else { "failure" };
        conn.execute(
            "INSERT INTO audit_logs (id, user_id, event_type, event_status, ip_address, user_agent, metadata, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[&Uuid::new_v4(), &e.user_id, &e.event_type, &status, &e.client.ip, &e.client.user_agent, &e.metadata, &e.at],
        )
        .await
        .map_err(q)?;
        Ok(())
    }

    async fn audit_for_user(&self, user_id: Uuid, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT id, user_id, event_type, event_status, ip_address, user_agent, metadata, created_at
                 FROM audit_logs WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2",
                &[&user_id, &(limit as i64)],
            )
            .await
            .map_err(q)?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    id: get(r, 0)?,
                    user_id: get(r, 1)?,
                    event_type: get(r, 2)?,
                    event_status: get(r, 3)?,
                    ip_address: get(r, 4)?,
                    user_agent: get(r, 5)?,
                    metadata: get::<Option<serde_json::Value>>(r, 6)?
                        .unwrap_or(serde_json::Value::Null),
                    created_at: get::<Option<DateTime<Utc>>>(r, 7)?.unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn count_audit(&self, event_type: &str, status: &str) -> StoreResult<u64> {
        let conn = self.conn().await?;
        let row = conn
            .query_one(
                "SELECT COUNT(*) FROM audit_logs WHERE event_type = $1 AND event_status = $2",
                &[&event_type, &status],
            )
            .await
            .map_err(q)?;
        Ok(get::<i64>(&row, 0)?.max(0) as u64)
    }

    async fn consents_for_user(&self, user_id: Uuid) -> StoreResult<Vec<ConsentRecord>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT consent_type, consent_version, consented, ip_address, user_agent, created_at
                 FROM consent_records WHERE user_id = $1 ORDER BY created_at DESC, consent_type",
                &[&user_id],
            )
            .await
            .map_err(q)?;
        rows.iter()
            .map(|r| {
                Ok(ConsentRecord {
                    consent_type: get(r, 0)?,
                    consent_version: get(r, 1)?,
                    consented: get(r, 2)?,
                    ip_address: get(r, 3)?,
                    user_agent: get(r, 4)?,
                    created_at: get::<Option<DateTime<Utc>>>(r, 5)?.unwrap_or_default(),
                })
            })
            .collect()
    }
}
