//! Devices seen at sign-in.

use super::*;
use crate::storage::sql;

#[async_trait]
impl DeviceStore for PgStore {
    async fn record_device(&self, s: DeviceSighting) -> StoreResult<DeviceSeen> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        // Serialises the sign-ins of one user: one of two concurrent
        // sign-ins from a new device records it, the other finds it known.
        lock_user(&tx, &s.user_id).await?;
        let (ua, ip) = (&s.client.user_agent, &s.client.ip);
        let known = tx
            .query_opt(sql::DEVICE_BY_FINGERPRINT, &[&s.user_id, &s.fingerprint])
            .await
            .map_err(q)?;
        if let Some(row) = known {
            let id: Uuid = get(&row, 0)?;
            let touch: [Param; 4] = [&id, &s.now, ua, ip];
            tx.execute(sql::TOUCH_DEVICE, &touch).await.map_err(q)?;
            tx.commit().await.map_err(q)?;
            return Ok(DeviceSeen::Known);
        }
        let others: i64 = get(
            &tx.query_one(sql::COUNT_DEVICES, &[&s.user_id])
                .await
                .map_err(q)?,
            0,
        )?;
        let row: [Param; 6] = [&s.id, &s.user_id, &s.fingerprint, ua, ip, &s.now];
        tx.execute(sql::INSERT_DEVICE, &row).await.map_err(q)?;
        let seen = if others > 0 || s.signed_in_before {
            insert_outbox(&tx, s.mail.as_ref()).await?;
            DeviceSeen::New
        } else {
            DeviceSeen::First
        };
        tx.commit().await.map_err(q)?;
        Ok(seen)
    }

    async fn device_would_be_new(&self, probe: DeviceProbe) -> StoreResult<bool> {
        let (user_id, fingerprint) = (&probe.user_id, &probe.fingerprint);
        let conn = self.conn().await?;
        let known = conn
            .query_opt(sql::DEVICE_BY_FINGERPRINT, &[user_id, fingerprint])
            .await
            .map_err(q)?
            .is_some();
        if known {
            return Ok(false);
        }
        if probe.signed_in_before {
            return Ok(true);
        }
        let row = conn
            .query_one(sql::COUNT_DEVICES, &[user_id])
            .await
            .map_err(q)?;
        Ok(get::<i64>(&row, 0)? > 0)
    }

    async fn list_devices(
        &self,
        user_id: Uuid,
        current: Option<String>,
    ) -> StoreResult<Vec<ListedDevice>> {
        let conn = self.conn().await?;
        conn.query(&sql::list_devices(), &[&user_id, &current])
            .await
            .map_err(q)?
            .iter()
            .map(|r| {
                Ok(ListedDevice {
                    device: device_from(r)?,
                    current: get::<Option<bool>>(r, 9)?.unwrap_or(false),
                })
            })
            .collect()
    }

    async fn forget_device(&self, owner: Uuid, device_id: Uuid) -> StoreResult<bool> {
        Ok(self.exec(sql::FORGET_DEVICE, &[&device_id, &owner]).await? > 0)
    }
}
