//! Devices seen at sign-in.

use super::*;
use crate::storage::sql;

#[async_trait]
impl DeviceStore for PgStore {
    async fn record_device(&self, s: DeviceSighting) -> StoreResult<DeviceSeen> {
        let mut conn = self.conn().await?;
        let (ua, ip) = (&s.client.user_agent, &s.client.ip);
        // A device the account knows is touched in one statement, without
        // the user's lock: nothing about it depends on another sign-in. Most
        // sign-ins come from a known device, and this spares them four round
        // trips (the transaction, the lock and the read).
        let touch: [Param; 5] = [&s.user_id, &s.fingerprint, &s.now, ua, ip];
        if conn
            .execute(sql::TOUCH_KNOWN_DEVICE, &touch)
            .await
            .map_err(q)?
            > 0
        {
            return Ok(DeviceSeen::Known);
        }
        let tx = conn.transaction().await.map_err(q)?;
        // Serialises the sign-ins of one user: one of two concurrent
        // sign-ins from a new device records it, the other finds it known.
        lock_user(&tx, &s.user_id).await?;
        // Recorded meanwhile by a concurrent sign-in?
        if tx
            .execute(sql::TOUCH_KNOWN_DEVICE, &touch)
            .await
            .map_err(q)?
            > 0
        {
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

#[cfg(test)]
mod tests {
    use super::super::{migrated_store, test_user, ThrowawayDb};
    use super::*;
    use crate::domain::ClientContext;

    fn sighting(user_id: Uuid, user_agent: &str) -> DeviceSighting {
        DeviceSighting {
            id: Uuid::new_v4(),
            user_id,
            fingerprint: "f".repeat(64),
            client: ClientContext {
                ip: None,
                user_agent: Some(user_agent.into()),
            },
            signed_in_before: true,
            now: Utc::now(),
            mail: None,
        }
    }

    /// A store with one user, and another connection to its database.
    async fn a_user_and_another_connection() -> (PgStore, ThrowawayDb, Uuid, tokio_postgres::Client)
    {
        let (store, db) = migrated_store("devices").await;
        let user = Uuid::new_v4();
        test_user(&store, user, "devices@example.com").await;
        let (other, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        (store, db, user, other)
    }

    /// A sign-in from a device the account knows does not wait for the
    /// user's lock, which only a device new to the account needs: here
    /// another transaction holds that lock, and the known device is still
    /// recorded (its latest user agent kept) while it does.
    #[tokio::test]
    async fn a_known_device_is_recorded_without_the_users_lock() {
        let (store, _db, user, mut other) = a_user_and_another_connection().await;
        let first = store.record_device(sighting(user, "first")).await.unwrap();
        assert_eq!(first, DeviceSeen::New);

        let tx = other.transaction().await.unwrap();
        tx.execute(LOCK_USER, &[&user]).await.unwrap();

        let again = tokio::time::timeout(
            Duration::from_secs(5),
            store.record_device(sighting(user, "again")),
        )
        .await
        .expect("a known device waited for the user's lock")
        .unwrap();
        assert_eq!(again, DeviceSeen::Known);
        tx.rollback().await.unwrap();
        let devices = store.list_devices(user, None).await.unwrap();
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].device.user_agent.as_deref(), Some("again"));
    }

    /// A sign-in from a device new to the account that waited for the user's
    /// lock looks again under it: a concurrent sign-in that recorded the same
    /// device meanwhile makes this one find it known, not record it twice.
    #[tokio::test]
    async fn a_device_recorded_while_waiting_for_the_lock_is_found_known() {
        let (store, db, user, mut other) = a_user_and_another_connection().await;
        let tx = other.transaction().await.unwrap();
        tx.execute(LOCK_USER, &[&user]).await.unwrap();

        let waiting = {
            let store = store.clone();
            tokio::spawn(async move { store.record_device(sighting(user, "second")).await })
        };
        db.until_one_waits().await;
        let now = Utc::now();
        let (id, fingerprint) = (Uuid::new_v4(), "f".repeat(64));
        let ua: Option<String> = Some("first".into());
        let ip: Option<std::net::IpAddr> = None;
        let row: [Param; 6] = [&id, &user, &fingerprint, &ua, &ip, &now];
        tx.execute(sql::INSERT_DEVICE, &row).await.unwrap();
        tx.commit().await.unwrap();

        assert_eq!(waiting.await.unwrap().unwrap(), DeviceSeen::Known);
        let devices = store.list_devices(user, None).await.unwrap();
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].device.user_agent.as_deref(), Some("second"));
    }
}
