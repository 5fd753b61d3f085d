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
}
