//! The audit log.

use super::*;

#[async_trait]
impl AuditStore for SqliteStore {
    async fn insert_audit(&self, e: AuditEvent) -> StoreResult<()> {
        self.run(move |c| {
            c.execute(
                "INSERT INTO audit_logs (id, user_id, event_type, event_status, ip_address, user_agent, metadata, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    Uuid::new_v4().to_string(),
                    e.user_id.map(|u| u.to_string()),
                    e.event_type,
                    if e.success { "success" } else { "failure" },
                    e.client.ip.map(|i| i.to_string()),
                    e.client.user_agent,
                    e.metadata.to_string(),
                    ms(e.at)
                ],
            )
            .map(|_| ())
        })
        .await
    }
}
