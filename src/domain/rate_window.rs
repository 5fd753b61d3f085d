//! The sliding-window log of a rate limit as a pure decision: at most
//! `limit` requests in any `window`, so no window edge lets twice the limit
//! through. `redis/rate.lua` applies the same rule in Redis; the database
//! fallback (`RateStore::rate_hit`) applies this function under its row lock.

/// A limit of `limit` requests in any `window_ms` milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindow {
    pub limit: u32,
    pub window_ms: i64,
}

/// The decision on one request, and the log to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowHit {
    pub admitted: bool,
    /// Requests in the window, this one included when admitted.
    pub count: u32,
    /// Time of the oldest request in the window (ms); the next place frees
    /// one window after it.
    pub oldest_ms: i64,
    /// The admitted requests' times still in the window, oldest first.
    pub hits: Vec<i64>,
}

impl SlidingWindow {
    /// Counts a request at `now_ms` against the logged `hits`.
    pub fn hit(&self, hits: &[i64], now_ms: i64) -> WindowHit {
        let mut kept: Vec<i64> = hits
            .iter()
            .copied()
            .filter(|&t| t > now_ms - self.window_ms)
            .collect();
        kept.sort_unstable();
        let admitted = kept.len() < self.limit as usize;
        if admitted {
            kept.push(now_ms);
        }
        WindowHit {
            admitted,
            count: kept.len() as u32,
            oldest_ms: kept.first().copied().unwrap_or(now_ms),
            hits: kept,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: SlidingWindow = SlidingWindow {
        limit: 2,
        window_ms: 10_000,
    };

    #[test]
    fn admits_up_to_the_limit_in_any_window() {
        let a = W.hit(&[], 1_000);
        assert!(a.admitted);
        let b = W.hit(&a.hits, 2_000);
        assert!(b.admitted);
        assert_eq!(b.count, 2);
        let c = W.hit(&b.hits, 3_000);
        assert!(!c.admitted);
        assert_eq!(c.count, 2);
        assert_eq!(c.oldest_ms, 1_000);
        assert_eq!(c.hits, vec![1_000, 2_000]);
    }

    #[test]
    fn a_window_edge_does_not_double_the_limit() {
        // Two at 9.5 s, then two at 10.5 s: a fixed window would admit all four.
        let a = W.hit(&[], 9_500);
        let b = W.hit(&a.hits, 9_600);
        assert!(b.admitted);
        let c = W.hit(&b.hits, 10_500);
        assert!(!c.admitted);
        // A window after the first, its place is free again.
        let d = W.hit(&c.hits, 19_501);
        assert!(d.admitted);
        assert_eq!(d.hits, vec![9_600, 19_501]);
    }

    #[test]
    fn refused_requests_take_no_place() {
        let mut hits = vec![];
        for t in 0..10 {
            hits = W.hit(&hits, t).hits;
        }
        assert_eq!(hits, vec![0, 1]);
    }
}
