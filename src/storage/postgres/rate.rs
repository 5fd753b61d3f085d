//! Rate-limit windows shared by every instance (the limiter's fallback
//! while Redis is unreachable or not configured).

use super::*;
use crate::domain::rate_window::{SlidingWindow, WindowHit};

#[async_trait]
impl RateStore for PgStore {
    async fn rate_hit(
        &self,
        key: &str,
        window: SlidingWindow,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<WindowHit>> {
        let now_ms = now.timestamp_millis();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(q)?;
        // The upsert creates the key's row or locks the existing one, and
        // returns its log: concurrent requests of one client queue here.
        let row = tx
            .query_one(
                "INSERT INTO rate_windows (key, hits, expires_at) VALUES ($1, '{}', $2)
                 ON CONFLICT (key) DO UPDATE SET hits = rate_windows.hits
                 RETURNING hits",
                &[&key, &now],
            )
            .await
            .map_err(q)?;
        let logged: Vec<i64> = get(&row, 0)?;
        let hit = window.hit(&logged, now_ms);
        // The log is stale a window after its newest request.
        let newest = hit.hits.last().copied().unwrap_or(now_ms);
        let expires_at = now + chrono::Duration::milliseconds(newest - now_ms + window.window_ms);
        tx.execute(
            "UPDATE rate_windows SET hits = $2, expires_at = $3 WHERE key = $1",
            &[&key, &hit.hits, &expires_at],
        )
        .await
        .map_err(q)?;
        tx.commit().await.map_err(q)?;
        Ok(Some(hit))
    }
}
