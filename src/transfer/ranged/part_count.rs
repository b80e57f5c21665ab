//! How many parts run at once: a fixed count, or a controller that finds what the link gives
//! (the right count depends on the link, the disk and the CPU, and changes over an export).
//!
//! A pure state machine: it is fed the bytes fetched so far, how many requests the source
//! throttled or dropped, and the time; it answers the count to keep in flight. No clock of its
//! own, so the tests drive it window by window.

use std::time::{Duration, Instant};

/// How many parts of one file are in flight, between 1 and `max`. It starts at `start` and,
/// like TCP's slow start, doubles the count while a doubling raises the file's throughput by
/// 15 % (a link that limits each connection: object stores, NFC, a proxy). Each step is judged
/// only after the new connections had time to reach speed: one window to settle (their first
/// byte, TCP's own slow start), then one window measured; while doubling, the first window
/// (which starts at the first byte) and the settle windows are half long. A window lasts a quarter of the time
/// one part takes at the speed of one connection (0.5–4 s), so a slow link is judged over seconds, a fast
/// one over half a second. A step that does not pay is undone and the count holds; later steps
/// are smaller (a quarter more, worth it at a tenth more) and tried after 2 s, then 4, 8, … up to
/// 30 s, since an export lasts hours and conditions change. A judging window that is clearly
/// worse than the one before the step is taken as spoiled (a journal sync, the page cache
/// flushing: more connections seldom make a link slower) and measured once more before the step
/// is undone. Requests the source refused with 429/503, or connections it dropped, halve the
/// count at once and stop growth for a while — at most once a window, since the requests in
/// flight at a halving are refused too. A window that fetched nothing (parts waiting for the
/// host's connections or the buffer budget) is no baseline for a step; a step smaller than a
/// quarter (the last one up to the max) has to pay in proportion to what it adds. Where the link does not limit connections (raw
/// loopback, a disk-bound file) this costs one window of twice the connections, then probes
/// spaced further and further apart.
pub(crate) struct PartCount {
    limit: usize,
    max: usize,
    /// `max` at or below the start: the count never moves.
    fixed: bool,
    /// Bytes of a typical part: the window is scaled by the time one takes.
    part_bytes: u64,
    phase: Phase,
    /// Doubling steps until the first one that does not pay.
    slow_start: bool,
    /// No step before this (after one that did not pay, or a back-off).
    next_probe: Option<Instant>,
    backoff: Duration,
    window: Duration,
    /// The best throughput per connection seen, bytes/s.
    conn_rate: f64,
    window_start: Instant,
    window_bytes: u64,
    throttled_seen: u64,
    /// The last halving: refusals within a window after it are of requests already in flight
    /// (halving cancels none), not a new answer to the lower count.
    halved_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Measuring the throughput at the current count.
    Measure,
    /// A step from `from` was just taken; this window is not counted (new connections ramp up).
    Settle { from: usize, baseline: f64 },
    /// The window that judges the step; `again` when the previous one looked spoiled.
    Judge {
        from: usize,
        baseline: f64,
        again: bool,
    },
}

/// Shortest and longest measuring window.
pub(super) const WINDOW_MIN: Duration = Duration::from_millis(500);
const WINDOW_MAX: Duration = Duration::from_secs(4);
/// Gain that keeps a doubling, and a later, smaller step.
const DOUBLING_GAIN: f64 = 1.15;
const STEP_GAIN: f64 = 1.10;
/// A judging window below this share of the baseline is taken as spoiled and measured again.
const SPOILED: f64 = 0.75;
/// Wait before trying again a step that did not pay; doubles each time, up to the next.
const REPROBE_FIRST: Duration = Duration::from_secs(2);
const REPROBE_MAX: Duration = Duration::from_secs(30);

impl PartCount {
    pub(crate) fn new(start: usize, max: usize, part_bytes: u64, now: Instant) -> Self {
        PartCount {
            limit: start.max(1),
            max: max.max(start).max(1),
            fixed: max <= start,
            part_bytes,
            phase: Phase::Measure,
            slow_start: true,
            next_probe: None,
            backoff: REPROBE_FIRST,
            window: WINDOW_MIN,
            conn_rate: 0.0,
            window_start: now,
            window_bytes: 0,
            throttled_seen: 0,
            halved_at: None,
        }
    }

    /// Whether the count may change (it is not fixed).
    pub(crate) fn adaptive(&self) -> bool {
        !self.fixed
    }

    fn step(&mut self, now: Instant, baseline: f64) {
        if self.limit >= self.max {
            // At the top: no more doubling, and windows of full length from now on.
            self.slow_start = false;
            return;
        }
        if self.next_probe.is_some_and(|t| now < t) {
            return;
        }
        let from = self.limit;
        let add = if self.slow_start {
            from
        } else {
            from.div_ceil(4)
        };
        self.limit = (from + add).min(self.max);
        self.phase = Phase::Settle { from, baseline };
    }

    fn hold(&mut self, now: Instant, at: usize) {
        self.limit = at;
        self.slow_start = false;
        self.phase = Phase::Measure;
        self.next_probe = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(REPROBE_MAX);
    }

    /// The count to keep in flight, given the bytes fetched so far and how many requests the
    /// source has throttled (429/503) or dropped so far.
    pub(crate) fn observe(&mut self, fetched: u64, throttled: u64, now: Instant) -> usize {
        if self.fixed {
            return self.limit;
        }
        if throttled > self.throttled_seen {
            self.throttled_seen = throttled;
            // The source says it is too much: halve now, grow again only later and slowly —
            // once per window: the requests in flight at the halving are refused too.
            if self
                .halved_at
                .is_none_or(|t| now.saturating_duration_since(t) >= self.window)
            {
                self.halved_at = Some(now);
                let at = (self.limit / 2).max(1);
                self.hold(now, at);
                self.window_start = now;
                self.window_bytes = fetched;
                return self.limit;
            }
        }
        if self.phase == Phase::Measure && fetched == 0 {
            // Nothing arrived yet (first bytes, parts waiting for connections): the first
            // window starts when bytes do, or its empty start would be the baseline.
            self.window_start = now;
        }
        let dt = now.saturating_duration_since(self.window_start);
        // While doubling, the first window and each settle window are half long: the start's
        // count is no baseline worth a long look, and new connections reach speed within a few
        // round trips; the judging window stays whole.
        let need = match self.phase {
            Phase::Measure | Phase::Settle { .. } if self.slow_start => self.window / 2,
            _ => self.window,
        };
        if dt < need {
            return self.limit;
        }
        let rate = fetched.saturating_sub(self.window_bytes) as f64 / dt.as_secs_f64();
        self.window_start = now;
        self.window_bytes = fetched;
        // The next window: a quarter of what one part takes at the best speed one connection
        // has shown (a spoiled window must not stretch the next ones).
        self.conn_rate = self.conn_rate.max(rate / self.limit as f64);
        if self.conn_rate > 0.0 {
            let part_secs = self.part_bytes as f64 / self.conn_rate;
            self.window = Duration::from_secs_f64(part_secs / 4.0).clamp(WINDOW_MIN, WINDOW_MAX);
        }
        match self.phase {
            // A window that fetched nothing (every part waiting for the host's connections or
            // the buffer budget, a slow first byte) is no baseline: any step would "pay".
            Phase::Measure if rate <= 0.0 => {}
            Phase::Measure => self.step(now, rate),
            Phase::Settle { from, baseline } => {
                self.phase = Phase::Judge {
                    from,
                    baseline,
                    again: false,
                }
            }
            Phase::Judge {
                from,
                baseline,
                again,
            } => {
                // A doubling must pay 15 %; a smaller step pays in proportion to what it adds
                // (a quarter more: 10 %; the last few up to the max, e.g. 60 → 64, less).
                let added = (self.limit - from) as f64 / from as f64;
                let gain = if self.limit >= from * 2 {
                    DOUBLING_GAIN
                } else {
                    1.0 + (STEP_GAIN - 1.0) * (added / 0.25).min(1.0)
                };
                if rate >= baseline * gain {
                    // The step paid: keep it and take the next.
                    self.backoff = REPROBE_FIRST;
                    self.next_probe = None;
                    self.phase = Phase::Measure;
                    self.step(now, rate);
                } else if rate < baseline * SPOILED && !again {
                    self.phase = Phase::Judge {
                        from,
                        baseline,
                        again: true,
                    };
                } else {
                    self.hold(now, from);
                }
            }
        }
        self.limit
    }
}

#[cfg(test)]
#[path = "part_count_tests.rs"]
mod tests;
