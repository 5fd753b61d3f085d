//! Devices seen at sign-in.

use super::*;
use crate::storage::sql;

fn count_devices(c: &Connection, user: &str) -> rusqlite::Result<i64> {
    c.row(&dialect(sql::COUNT_DEVICES), params![user], |r| r.get(0))
}

#[async_trait]
impl DeviceStore for SqliteStore {
    async fn record_device(&self, s: DeviceSighting) -> StoreResult<DeviceSeen> {
        self.run(move |c| {
            // The single writer serialises the sign-ins of every user.
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let user = s.user_id.to_string();
            let ip = s.client.ip.map(|i| i.to_string());
            let (ua, now) = (&s.client.user_agent, ms(s.now));
            let touched = tx.exec(
                &dialect(sql::TOUCH_KNOWN_DEVICE),
                params![user, s.fingerprint, now, ua, ip],
            )?;
            if touched > 0 {
                tx.commit()?;
                return Ok(DeviceSeen::Known);
            }
            let others = count_devices(&tx, &user)?;
            tx.exec(
                &dialect(sql::INSERT_DEVICE),
                params![s.id.to_string(), user, s.fingerprint, ua, ip, now],
            )?;
            let seen = if others > 0 || s.signed_in_before {
                insert_outbox(&tx, s.mail.as_ref())?;
                DeviceSeen::New
            } else {
                DeviceSeen::First
            };
            tx.commit()?;
            Ok(seen)
        })
        .await
    }

    async fn device_would_be_new(&self, probe: DeviceProbe) -> StoreResult<bool> {
        self.read(move |c| {
            let user = probe.user_id.to_string();
            let known = c
                .row(
                    &dialect(sql::DEVICE_BY_FINGERPRINT),
                    params![user, probe.fingerprint],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if known {
                return Ok(false);
            }
            Ok(probe.signed_in_before || count_devices(c, &user)? > 0)
        })
        .await
    }

    async fn list_devices(
        &self,
        user_id: Uuid,
        current: Option<String>,
    ) -> StoreResult<Vec<ListedDevice>> {
        self.read(move |c| {
            let mut stmt = c.stmt(&dialect(&sql::list_devices()))?;
            let rows = stmt.query_map(params![user_id.to_string(), current], |r| {
                Ok(ListedDevice {
                    device: device_from(r)?,
                    current: r.get::<_, Option<bool>>(9)?.unwrap_or(false),
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn forget_device(&self, owner: Uuid, device_id: Uuid) -> StoreResult<bool> {
        self.run(move |c| {
            c.exec(
                &dialect(sql::FORGET_DEVICE),
                params![device_id.to_string(), owner.to_string()],
            )
            .map(|n| n > 0)
        })
        .await
    }
}
