//! How many `GetSnapshotBlock` requests of one volume are in flight: AIMD, so the EBS direct
//! APIs' throttling (per snapshot, about 1,000 requests/s, and per account) is backed off from
//! and the count grows back while calls succeed.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::sync::lock;

/// How many block requests of one volume may be in flight: starts at a quarter of the ceiling,
/// halves (at most once a second) when EBS throttles or fails with a 5xx, and grows by one for
/// every `limit` calls that succeed (additive increase, multiplicative decrease).
pub(crate) struct Gate {
    state: Mutex<GateState>,
    wake: tokio::sync::Notify,
}

struct GateState {
    limit: f64,
    ceiling: f64,
    in_flight: usize,
    last_cut: Option<Instant>,
}

impl Gate {
    pub fn new(ceiling: usize) -> Self {
        let ceiling = ceiling.max(1) as f64;
        Gate {
            state: Mutex::new(GateState {
                limit: (ceiling / 4.0).max(1.0),
                ceiling,
                in_flight: 0,
                last_cut: None,
            }),
            wake: tokio::sync::Notify::new(),
        }
    }

    #[cfg(test)]
    pub fn limit(&self) -> usize {
        lock(&self.state).limit as usize
    }

    pub(super) async fn acquire(&self, cancel: &CancellationToken) -> Result<GatePermit<'_>> {
        loop {
            let woken = self.wake.notified();
            {
                let mut s = lock(&self.state);
                if (s.in_flight as f64) < s.limit.floor().max(1.0) {
                    s.in_flight += 1;
                    return Ok(GatePermit { gate: self });
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return Err(Error::Cancelled),
                _ = woken => {}
                // A wake lost between the check and the wait costs at most this.
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    pub(super) fn slow_down(&self) {
        let mut s = lock(&self.state);
        if s.last_cut
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            s.limit = (s.limit / 2.0).max(1.0);
            s.last_cut = Some(Instant::now());
            tracing::debug!(
                limit = s.limit,
                "EBS throttled: fewer block requests in flight"
            );
        }
    }

    pub(super) fn succeeded(&self) {
        let mut s = lock(&self.state);
        s.limit = (s.limit + 1.0 / s.limit).min(s.ceiling);
    }
}

pub(super) struct GatePermit<'a> {
    gate: &'a Gate,
}

impl Drop for GatePermit<'_> {
    fn drop(&mut self) {
        lock(&self.gate.state).in_flight -= 1;
        self.gate.wake.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_halves_on_throttling_and_grows_back() {
        let g = Gate::new(64);
        assert_eq!(g.limit(), 16);
        g.slow_down();
        assert_eq!(g.limit(), 8);
        // At most one cut a second: a burst of throttled answers is one signal.
        g.slow_down();
        assert_eq!(g.limit(), 8);
        for _ in 0..200 {
            g.succeeded();
        }
        assert!(g.limit() > 8 && g.limit() <= 64, "{}", g.limit());
    }
}
