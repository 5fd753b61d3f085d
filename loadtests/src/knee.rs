//! Finding the knee of a ramp: the last load step before throughput stops rising
//! or latency jumps. Pure: steps in, an index out.

use serde::Serialize;

/// One step of a ramp, as measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Step {
    /// The load offered: workers (closed model) or requests per second (open model).
    pub load: f64,
    /// Successful requests per second.
    pub ok_rps: f64,
    /// p95 latency of successful requests, milliseconds.
    pub p95_ms: f64,
    /// Share of requests that failed (0..1).
    pub error_share: f64,
}

/// When a step counts as past the knee.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KneeRule {
    /// Throughput has stopped rising when a step adds less than this share of the
    /// previous step's throughput (closed model), e.g. 0.05 = 5 %.
    pub min_gain: f64,
    /// The open model has fallen behind when a step serves less than this share of
    /// its offered rate, e.g. 0.95.
    pub min_served: f64,
    /// p95 has jumped when it is this many times the previous step's...
    pub p95_jump: f64,
    /// ...and at least this many milliseconds more (sub-millisecond noise is not a
    /// jump).
    pub p95_jump_floor_ms: f64,
    /// More than this share of errors is past the knee.
    pub max_error_share: f64,
}

impl Default for KneeRule {
    fn default() -> Self {
        Self {
            min_gain: 0.05,
            min_served: 0.95,
            p95_jump: 2.0,
            p95_jump_floor_ms: 2.0,
            max_error_share: 0.01,
        }
    }
}

/// Why a step is past the knee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    ThroughputFlat,
    BehindSchedule,
    P95Jump,
    Errors,
}

impl Reason {
    pub fn describe(self) -> &'static str {
        match self {
            Reason::ThroughputFlat => "throughput stopped rising",
            Reason::BehindSchedule => "the server fell behind the offered rate",
            Reason::P95Jump => "p95 jumped",
            Reason::Errors => "errors appeared",
        }
    }
}

/// The knee: `index` is the last good step; `past` is the first step beyond it
/// and why it is beyond.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Knee {
    pub index: usize,
    pub past: usize,
    pub reason: Reason,
}

/// Whether step `cur` is past the knee relative to step `prev`.
pub fn past_knee(prev: &Step, cur: &Step, open_model: bool, rule: &KneeRule) -> Option<Reason> {
    if cur.error_share > rule.max_error_share && cur.error_share > prev.error_share {
        return Some(Reason::Errors);
    }
    if open_model {
        if cur.ok_rps < rule.min_served * cur.load {
            return Some(Reason::BehindSchedule);
        }
    } else if cur.ok_rps < prev.ok_rps * (1.0 + rule.min_gain) {
        return Some(Reason::ThroughputFlat);
    }
    if cur.p95_ms > prev.p95_ms * rule.p95_jump && cur.p95_ms - prev.p95_ms > rule.p95_jump_floor_ms
    {
        return Some(Reason::P95Jump);
    }
    None
}

/// The knee of a ramp whose steps are in order of rising load, or `None` when no
/// step went past it (the ramp stopped too early to tell). When the very first
/// step is already bad (errors, or behind schedule in the open model), the knee is
/// below the ramp: index 0 with `past` 0.
pub fn find_knee(steps: &[Step], open_model: bool, rule: &KneeRule) -> Option<Knee> {
    let first = steps.first()?;
    let first_bad = if first.error_share > rule.max_error_share {
        Some(Reason::Errors)
    } else if open_model && first.ok_rps < rule.min_served * first.load {
        Some(Reason::BehindSchedule)
    } else {
        None
    };
    if let Some(reason) = first_bad {
        return Some(Knee {
            index: 0,
            past: 0,
            reason,
        });
    }
    steps.windows(2).enumerate().find_map(|(i, w)| {
        past_knee(&w[0], &w[1], open_model, rule).map(|reason| Knee {
            index: i,
            past: i + 1,
            reason,
        })
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn step(load: f64, ok_rps: f64, p95_ms: f64) -> Step {
        Step {
            load,
            ok_rps,
            p95_ms,
            error_share: 0.0,
        }
    }

    #[test]
    fn closed_ramp_knee_where_throughput_flattens() {
        let steps = [
            step(1.0, 20.0, 50.0),
            step(2.0, 39.0, 52.0),
            step(4.0, 40.0, 100.0),
            step(8.0, 40.5, 200.0),
        ];
        let k = find_knee(&steps, false, &KneeRule::default()).unwrap();
        assert_eq!((k.index, k.past), (1, 2));
        assert_eq!(k.reason, Reason::ThroughputFlat);
    }

    #[test]
    fn p95_jump_is_a_knee_even_while_throughput_rises() {
        let steps = [
            step(1.0, 1000.0, 1.0),
            step(2.0, 1900.0, 1.2),
            step(4.0, 3000.0, 9.0),
        ];
        let k = find_knee(&steps, false, &KneeRule::default()).unwrap();
        assert_eq!((k.index, k.reason), (1, Reason::P95Jump));
    }

    #[test]
    fn sub_millisecond_jitter_is_not_a_jump() {
        let steps = [
            step(1.0, 1000.0, 0.2),
            step(2.0, 1900.0, 0.6),
            step(4.0, 3500.0, 1.4),
        ];
        assert_eq!(find_knee(&steps, false, &KneeRule::default()), None);
    }

    #[test]
    fn open_ramp_knee_where_the_server_falls_behind() {
        let steps = [
            step(100.0, 100.0, 2.0),
            step(200.0, 199.0, 2.5),
            step(400.0, 310.0, 900.0),
        ];
        let k = find_knee(&steps, true, &KneeRule::default()).unwrap();
        assert_eq!((k.index, k.past, k.reason), (1, 2, Reason::BehindSchedule));
    }

    #[test]
    fn errors_mark_the_knee_and_a_bad_first_step_is_below_the_ramp() {
        let mut bad = step(8.0, 60.0, 40.0);
        bad.error_share = 0.2;
        let steps = [step(2.0, 30.0, 30.0), step(4.0, 50.0, 35.0), bad];
        let k = find_knee(&steps, false, &KneeRule::default()).unwrap();
        assert_eq!((k.index, k.reason), (1, Reason::Errors));
        let k = find_knee(&[bad], false, &KneeRule::default()).unwrap();
        assert_eq!((k.index, k.past), (0, 0));
        let k = find_knee(&[step(500.0, 100.0, 1.0)], true, &KneeRule::default()).unwrap();
        assert_eq!((k.index, k.past, k.reason), (0, 0, Reason::BehindSchedule));
    }

    #[test]
    fn no_knee_in_a_ramp_that_keeps_scaling_or_is_empty() {
        let steps = [
            step(1.0, 10.0, 5.0),
            step(2.0, 20.0, 5.0),
            step(4.0, 40.0, 5.5),
        ];
        assert_eq!(find_knee(&steps, false, &KneeRule::default()), None);
        assert_eq!(find_knee(&[], false, &KneeRule::default()), None);
    }
}
