//! The open model's timetable: requests are due at a constant rate, whatever the
//! server does, and each one's latency is measured from the moment it was due.
//!
//! Slot `i` is due at `start + i / rate`. Connections take the next slot when they
//! are free; a slot whose time has passed is sent at once and its wait is part of
//! its latency. A slow answer therefore cannot hide the requests that should have
//! been sent meanwhile (no coordinated omission): their latency includes the time
//! they spent waiting for a free connection.

use std::time::Duration;

/// A constant-rate timetable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    rate: f64,
}

/// What a connection should do with the slot it claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Send the slot's request at this offset from the start (it may be in the past).
    At(Duration),
    /// The slot is due at or after the end of the run, or beyond the request
    /// budget: the connection stops.
    Done,
}

impl Schedule {
    /// `rate` requests per second; must be finite and positive.
    pub fn new(rate: f64) -> Result<Self, String> {
        if !rate.is_finite() || rate <= 0.0 {
            return Err(format!(
                "the arrival rate must be a positive number, not {rate}"
            ));
        }
        Ok(Self { rate })
    }

    /// When slot `i` is due, from the start of the timetable.
    pub fn due(&self, slot: u64) -> Duration {
        // Whole nanoseconds, rounded: computed from the start for every slot, so
        // rounding never accumulates.
        let nanos = (slot as f64 * 1e9 / self.rate).round();
        Duration::from_nanos(if nanos >= u64::MAX as f64 {
            u64::MAX
        } else {
            nanos as u64
        })
    }

    /// What to do with slot `slot` in a run that ends `end` after the start and
    /// may send at most `budget` requests.
    pub fn claim(&self, slot: u64, end: Duration, budget: u64) -> Claim {
        if slot >= budget {
            return Claim::Done;
        }
        let due = self.due(slot);
        if due >= end {
            Claim::Done
        } else {
            Claim::At(due)
        }
    }

    /// How many slots fall in `[0, end)`: the requests the run offers.
    #[cfg(test)]
    pub fn slots_before(&self, end: Duration) -> u64 {
        let exact = end.as_secs_f64() * self.rate;
        let n = exact.ceil();
        if n <= 0.0 {
            0
        } else {
            n as u64
        }
    }
}

/// The latency of a request of the open model: from when it was due to when its
/// answer was complete (never less than zero).
pub fn latency_from_due(due: Duration, completed: Duration) -> Duration {
    completed.saturating_sub(due)
}

/// How far the sending of a request lagged behind its slot: a large lag means the
/// connections (or the machine) could not keep up with the rate.
pub fn send_lag(due: Duration, sent: Duration) -> Duration {
    sent.saturating_sub(due)
}

/// A whole open-model run computed without a clock, for tests and for reasoning
/// about the measurement: `connections` connections serve the timetable, request
/// `i` takes `service[i]` once sent. Returns each request's measured latency, in
/// slot order.
#[cfg(test)]
pub fn simulate(schedule: Schedule, connections: usize, service: &[Duration]) -> Vec<Duration> {
    let mut free_at = vec![Duration::ZERO; connections.max(1)];
    let mut latencies = Vec::with_capacity(service.len());
    for (slot, &took) in service.iter().enumerate() {
        let due = schedule.due(slot as u64);
        // The connection that frees up first takes the next slot.
        let (idx, &free) = free_at
            .iter()
            .enumerate()
            .min_by_key(|(_, t)| **t)
            .unwrap_or((0, &Duration::ZERO));
        let sent = due.max(free);
        let done = sent + took;
        free_at[idx] = done;
        latencies.push(latency_from_due(due, done));
    }
    latencies
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn slots_are_evenly_spaced_and_do_not_drift() {
        let s = Schedule::new(200.0).unwrap();
        assert_eq!(s.due(0), Duration::ZERO);
        assert_eq!(s.due(1), ms(5));
        assert_eq!(s.due(200), Duration::from_secs(1));
        // Far slots are computed from the start, not accumulated: no drift.
        assert_eq!(s.due(2_000_000), Duration::from_secs(10_000));
    }

    #[test]
    fn a_run_offers_rate_times_duration_and_respects_the_budget() {
        let s = Schedule::new(100.0).unwrap();
        let end = Duration::from_secs(3);
        assert_eq!(s.slots_before(end), 300);
        let offered = (0..10_000)
            .take_while(|&i| s.claim(i, end, u64::MAX) != Claim::Done)
            .count();
        assert_eq!(offered, 300);
        assert_eq!(s.claim(299, end, u64::MAX), Claim::At(ms(2990)));
        assert_eq!(s.claim(300, end, u64::MAX), Claim::Done);
        assert_eq!(s.claim(50, end, 50), Claim::Done);
        assert_eq!(s.claim(49, end, 50), Claim::At(ms(490)));
    }

    #[test]
    fn invalid_rates_are_refused() {
        for r in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(Schedule::new(r).is_err(), "{r}");
        }
    }

    #[test]
    fn latency_counts_from_the_due_time_not_the_send_time() {
        assert_eq!(latency_from_due(ms(100), ms(150)), ms(50));
        assert_eq!(latency_from_due(ms(100), ms(90)), Duration::ZERO);
        assert_eq!(send_lag(ms(100), ms(130)), ms(30));
    }

    #[test]
    fn a_stall_is_charged_to_every_request_that_waited_for_it() {
        // 100 req/s on one connection, 1 ms per request, but request 10 takes 1 s.
        let s = Schedule::new(100.0).unwrap();
        let mut service = vec![ms(1); 200];
        service[10] = Duration::from_secs(1);
        let lat = simulate(s, 1, &service);
        assert_eq!(lat[9], ms(1));
        assert_eq!(lat[10], Duration::from_secs(1));
        // Request 11 was due 10 ms after 10 but could only start when 10 ended:
        // it waited 990 ms and took 1 ms.
        assert_eq!(lat[11], ms(991));
        // The backlog drains at 9 ms per slot: about 110 requests are affected,
        // where a closed-loop measurement would have recorded one slow request.
        let slow = lat.iter().filter(|l| **l > ms(10)).count();
        assert!((100..=115).contains(&slow), "{slow}");
        // With enough connections the stall only hurts the one request.
        let lat = simulate(s, 200, &service);
        assert_eq!(lat.iter().filter(|l| **l > ms(1)).count(), 1);
    }

    #[test]
    fn below_capacity_latency_equals_service_time() {
        let s = Schedule::new(50.0).unwrap();
        let lat = simulate(s, 2, &[ms(3); 100]);
        assert!(lat.iter().all(|l| *l == ms(3)));
    }
}
