//! How many parts run at once: a fixed count, or a search that adds parts while they pay (the
//! right count depends on the link, the disk and the CPU, and changes over an export).

use std::time::{Duration, Instant};

/// How many parts of one file are in flight. It starts at `parts_in_flight` and, in windows of
/// half a second, grows by half while that raises the file's throughput by a tenth or more: a link
/// that limits each connection (object stores, NFC) gets the connections it rewards. A step that
/// does not pay is undone: where the disk, the CPU or a plain link is the limit, more parts only
/// cost CPU (each is a connection, a buffer, a writer). The step is tried again later (after 2 s,
/// then 4, 8, … up to 30 s): one window can be spoiled by a write stall (a journal sync, the page
/// cache flushing) or by the link, and an export lasts hours while conditions change.
pub(crate) struct PartCount {
    limit: usize,
    max: usize,
    /// The count before the step now being measured.
    probing_from: Option<usize>,
    /// Throughput of the last window before the step.
    baseline: f64,
    /// No step before this, after one that did not pay.
    next_probe: Option<Instant>,
    backoff: Duration,
    window_start: Instant,
    window_bytes: u64,
}

/// One measuring window.
pub(super) const WIDTH_WINDOW: Duration = Duration::from_millis(500);
/// Gain that justifies more parts (a step adds half as many).
const WIDTH_GAIN: f64 = 1.10;
/// Wait before trying again a step that did not pay; doubles each time, up to the next.
const REPROBE_FIRST: Duration = Duration::from_secs(2);
const REPROBE_MAX: Duration = Duration::from_secs(30);

impl PartCount {
    pub(crate) fn new(start: usize, max: usize, now: Instant) -> Self {
        PartCount {
            limit: start,
            max: max.max(start),
            probing_from: None,
            baseline: 0.0,
            next_probe: None,
            backoff: REPROBE_FIRST,
            window_start: now,
            window_bytes: 0,
        }
    }

    /// Whether the count may change (it is not fixed).
    pub(crate) fn adaptive(&self) -> bool {
        self.max > self.limit || self.probing_from.is_some() || self.next_probe.is_some()
    }

    fn step(&mut self, now: Instant) {
        if self.limit < self.max && self.next_probe.is_none_or(|t| now >= t) {
            self.probing_from = Some(self.limit);
            self.limit = (self.limit + self.limit.div_ceil(2)).min(self.max);
        }
    }

    /// The count to keep in flight, given the bytes fetched so far.
    pub(crate) fn observe(&mut self, fetched: u64, now: Instant) -> usize {
        let dt = now.saturating_duration_since(self.window_start);
        if !self.adaptive() || dt < WIDTH_WINDOW {
            return self.limit;
        }
        let rate = fetched.saturating_sub(self.window_bytes) as f64 / dt.as_secs_f64();
        self.window_start = now;
        self.window_bytes = fetched;
        match self.probing_from.take() {
            Some(_) if rate >= self.baseline * WIDTH_GAIN => {
                // The step paid: keep it and take the next.
                self.baseline = rate;
                self.backoff = REPROBE_FIRST;
                self.next_probe = None;
                self.step(now);
            }
            Some(before) => {
                self.limit = before;
                self.next_probe = Some(now + self.backoff);
                self.backoff = (self.backoff * 2).min(REPROBE_MAX);
            }
            None => {
                self.baseline = rate;
                self.step(now);
            }
        }
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the controller for `windows` windows against a link whose throughput in window `i`
    /// with `n` parts is `rate(i, n)` bytes/s; returns the counts it chose.
    fn run(start: usize, max: usize, windows: u32, rate: impl Fn(u32, usize) -> f64) -> Vec<usize> {
        let t0 = Instant::now();
        let mut w = PartCount::new(start, max, t0);
        let (mut fetched, mut limit, mut seen) = (0u64, start, vec![start]);
        for i in 1..=windows {
            fetched += (rate(i, limit) * WIDTH_WINDOW.as_secs_f64()) as u64;
            limit = w.observe(fetched, t0 + WIDTH_WINDOW * i);
            seen.push(limit);
        }
        seen
    }

    /// How many windows ran at `n`.
    fn at(seen: &[usize], n: usize) -> usize {
        seen.iter().filter(|&&x| x == n).count()
    }

    #[test]
    fn grows_while_connections_pay_then_holds() {
        // Each connection limited to 50 MB/s, nothing else: up to the ceiling, and it stays.
        let seen = run(8, 32, 20, |_, n| n as f64 * 50e6);
        assert_eq!(&seen[..6], &[8, 12, 18, 27, 32, 32], "{seen:?}");
        assert!(seen[4..].iter().all(|&n| n == 32), "{seen:?}");
        // The link tops out at 1 GB/s (20 connections' worth): it settles at 27, trying 41 now
        // and then (less and less often).
        let seen = run(8, 64, 120, |_, n| (n as f64 * 50e6).min(1e9));
        assert!(seen.iter().all(|&n| n <= 41), "{seen:?}");
        assert!(at(&seen[5..], 27) > 100, "{seen:?}");
        assert!(at(&seen[60..], 41) <= 2, "tries too often: {seen:?}");
    }

    #[test]
    fn a_disk_bound_file_stays_or_steps_back() {
        // Flat: probes, each undone.
        let seen = run(8, 32, 60, |_, _| 300e6);
        assert!(seen.iter().all(|&n| n <= 12), "{seen:?}");
        assert!(at(&seen, 8) >= 54, "{seen:?}");
        // More parts are slower (a disk that seeks): back to where it was.
        let seen = run(8, 32, 60, |_, n| if n > 8 { 200e6 } else { 300e6 });
        assert!(at(&seen, 8) >= 54, "{seen:?}");
        assert_eq!(*seen.last().unwrap(), 8, "{seen:?}");
    }

    #[test]
    fn a_step_spoiled_by_a_stall_is_tried_again() {
        // Windows 2 and 3 stall (a journal sync, the page cache flushing): the step to 12 looks
        // like a loss. Later the link rewards connections again and the count gets there.
        let seen = run(8, 32, 40, |i, n| {
            if (2..=3).contains(&i) {
                100e6
            } else {
                n as f64 * 50e6
            }
        });
        assert_eq!(seen[2], 8, "the spoiled step is undone: {seen:?}");
        assert_eq!(*seen.last().unwrap(), 32, "{seen:?}");
    }

    #[test]
    fn a_fixed_count_never_moves() {
        assert!(
            run(8, 8, 20, |_, n| n as f64 * 50e6)
                .iter()
                .all(|&n| n == 8)
        );
        assert!(
            run(1, 1, 20, |_, n| n as f64 * 50e6)
                .iter()
                .all(|&n| n == 1)
        );
        // A ceiling below the start: the start, fixed.
        assert!(
            run(48, 32, 20, |_, n| n as f64 * 50e6)
                .iter()
                .all(|&n| n == 48)
        );
    }
}
