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

    async fn audit_for_user(&self, user_id: Uuid, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT id, user_id, event_type, event_status, ip_address, user_agent, metadata, created_at
                 FROM audit_logs WHERE user_id = ?1 ORDER BY created_at DESC, rowid DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![user_id.to_string(), limit], |r| {
                let metadata: Option<String> = r.get(6)?;
                Ok(AuditRecord {
                    id: uuid(r.get(0)?)?,
                    user_id: r.get::<_, Option<String>>(1)?.map(uuid).transpose()?,
                    event_type: r.get(2)?,
                    event_status: r.get(3)?,
                    ip_address: ip(r.get(4)?),
                    user_agent: r.get(5)?,
                    metadata: metadata
                        .and_then(|m| serde_json::from_str(&m).ok())
                        .unwrap_or(serde_json::Value::Null),
                    created_at: time(r.get(7)?),
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn count_audit(&self, event_type: &str, status: &str) -> StoreResult<u64> {
        let (event_type, status) = (event_type.to_string(), status.to_string());
        self.read(move |c| {
            c.query_row(
                "SELECT COUNT(*) FROM audit_logs WHERE event_type = ?1 AND event_status = ?2",
                params![event_type, status],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
        })
        .await
    }

    async fn consents_for_user(&self, user_id: Uuid) -> StoreResult<Vec<ConsentRecord>> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT consent_type, consent_version, consented, ip_address, user_agent, created_at
                 FROM consent_records WHERE user_id = ?1 ORDER BY created_at DESC, consent_type",
            )?;
            let rows = stmt.query_map(params![user_id.to_string()], |r| {
                Ok(ConsentRecord {
                    consent_type: r.get(0)?,
                    consent_version: r.get(1)?,
                    consented: r.get(2)?,
                    ip_address: ip(r.get(3)?),
                    user_agent: r.get(4)?,
                    created_at: time(r.get(5)?),
                })
            })?;
            rows.collect()
        })
        .await
    }
}
