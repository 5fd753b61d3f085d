//! Rate-limit windows: the embedded database serves one instance, whose
//! in-memory limiter decides, so it keeps none.

use super::*;
use crate::domain::rate_window::{SlidingWindow, WindowHit};

#[async_trait]
impl RateStore for SqliteStore {
    async fn rate_hit(
        &self,
        _key: &str,
        _window: SlidingWindow,
        _now: DateTime<Utc>,
    ) -> StoreResult<Option<WindowHit>> {
        Ok(None)
    }
}
