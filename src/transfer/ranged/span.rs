//! Running parts that can be cut short: when a connection is free and no part is left to start
//! (the end of a file, or the part-count controller just added connections), it takes the back
//! half of what the running part with the most left has not received yet (aria2c's way). The
//! part stops where the new one starts: the tail ends with every connection busy instead of a
//! few long parts running alone, and connections added late have work.

use std::sync::{Arc, Mutex};

use crate::sync::lock;

/// The smallest half worth its own request: a new request pays a round trip and the first
/// byte's wait (~0.1 s on a 40 ms link, 1 MiB at 10 MB/s).
pub(super) const MIN_HALF: u64 = 2 << 20;
/// Cuts fall on this boundary (the write buffer's size).
const ALIGN: u64 = super::WRITE_BUFFER as u64;

/// Where one running part is and where it stops: `[pos, end)` is still to receive.
pub(super) struct Span(Mutex<(u64, u64)>);

impl Span {
    /// Where the part stops now.
    pub(super) fn end(&self) -> u64 {
        lock(&self.0).1
    }

    /// Takes `n` bytes that arrived at `pos`: how many of them are the part's (fewer when it
    /// was cut below them). Taking and cutting hold the same lock, so a cut never falls below
    /// bytes already taken.
    pub(super) fn take(&self, pos: u64, n: u64) -> u64 {
        let mut g = lock(&self.0);
        let keep = n.min(g.1.saturating_sub(pos));
        g.0 = pos + keep;
        keep
    }
}

/// The running parts of one file, and a signal when none is left (a cut still waiting for a
/// connection then has nothing to wait for).
#[derive(Default)]
pub(super) struct Running(Mutex<Vec<Arc<Span>>>, tokio::sync::Notify);

/// A running part's registration; it leaves the list when dropped.
pub(super) struct Registered<'a> {
    running: &'a Running,
    pub(super) span: Arc<Span>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut list = lock(&self.running.0);
        list.retain(|s| !Arc::ptr_eq(s, &self.span));
        if list.is_empty() {
            self.running.1.notify_waiters();
        }
    }
}

impl Running {
    /// Registers a part that receives `[start, end)`.
    pub(super) fn add(&self, start: u64, end: u64) -> Registered<'_> {
        let span = Arc::new(Span(Mutex::new((start, end))));
        lock(&self.0).push(span.clone());
        Registered {
            running: self,
            span,
        }
    }

    /// Waits until no part is running (at once when none is).
    pub(super) async fn none_left(&self) {
        let notified = self.1.notified();
        tokio::pin!(notified);
        // Registered before the look, so an end between the two is not missed.
        notified.as_mut().enable();
        if lock(&self.0).is_empty() {
            return;
        }
        notified.await;
    }

    /// Whether [`Running::split`] would cut a part now.
    pub(super) fn can_split(&self, unit: u64) -> bool {
        self.best(unit).is_some()
    }

    /// The running part with the most left among those that can be cut, and where.
    fn best(&self, unit: u64) -> Option<(Arc<Span>, u64)> {
        let align = lcm(ALIGN, unit.max(1));
        lock(&self.0)
            .iter()
            .filter_map(|s| {
                let (pos, end) = *lock(&s.0);
                cut_of(pos, end, align).map(|c| (s.clone(), c, end - pos))
            })
            .max_by_key(|&(_, _, left)| left)
            .map(|(s, c, _)| (s, c))
    }

    /// Cuts the running part with the most left in two, on an `ALIGN` boundary that is also a
    /// multiple of `unit` (a source read in blocks), when each half keeps at least `MIN_HALF`;
    /// the part stops at the cut and the back half is returned for a new part.
    pub(super) fn split(&self, unit: u64) -> Option<(u64, u64)> {
        let (span, _) = self.best(unit)?;
        let mut g = lock(&span.0);
        // The part moved on since it was chosen: the cut is made from where it is now.
        let (pos, end) = *g;
        let cut = cut_of(pos, end, lcm(ALIGN, unit.max(1)))?;
        g.1 = cut;
        Some((cut, end))
    }
}

/// Where `[pos, end)` is cut in two, if each half keeps `MIN_HALF`.
fn cut_of(pos: u64, end: u64, align: u64) -> Option<u64> {
    let cut = (pos + end.saturating_sub(pos) / 2) / align * align;
    (cut >= pos + MIN_HALF && end >= cut + MIN_HALF).then_some(cut)
}

fn lcm(a: u64, b: u64) -> u64 {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    a / x * b
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_part_with_most_left_is_cut_in_two_and_stops_there() {
        let r = Running::default();
        let a = r.add(0, 16 * MIB);
        let b = r.add(16 * MIB, 24 * MIB);
        assert_eq!(a.span.take(0, 3 * MIB), 3 * MIB);
        // a has 13 MiB left, b 8: a is cut in the middle of what it has left, on a MiB.
        assert_eq!(r.split(1), Some((9 * MIB, 16 * MIB)));
        assert_eq!(a.span.end(), 9 * MIB);
        // Bytes past the cut are not a's: of a chunk across it, only the front counts.
        assert_eq!(a.span.take(3 * MIB, 7 * MIB), 6 * MIB);
        assert_eq!(a.span.take(9 * MIB, MIB), 0);
        // Now b has the most left (8 MiB): cut at 20 MiB.
        assert_eq!(r.split(1), Some((20 * MIB, 24 * MIB)));
        assert_eq!(b.span.end(), 20 * MIB);
    }

    #[test]
    fn small_remainders_and_finished_parts_are_not_cut() {
        let r = Running::default();
        let a = r.add(0, 8 * MIB);
        // 3 MiB left: halves of 1.5 MiB are not worth a request.
        a.span.take(0, 5 * MIB);
        assert_eq!(r.split(1), None);
        assert_eq!(a.span.end(), 8 * MIB);
        drop(a);
        assert_eq!(r.split(1), None, "a part that ended is gone from the list");
        // A cut never falls below what the part already took, whatever the order.
        let b = r.add(0, 64 * MIB);
        b.span.take(0, 40 * MIB);
        let (cut, end) = r.split(1).unwrap();
        assert!(cut >= 40 * MIB + MIN_HALF && end == 64 * MIB, "{cut}");
    }

    #[tokio::test]
    async fn a_waiting_cut_hears_when_the_last_part_ends() {
        let r = Running::default();
        r.none_left().await; // none running: at once
        let a = r.add(0, 8 * MIB);
        let b = r.add(8 * MIB, 16 * MIB);
        let wait = r.none_left();
        tokio::pin!(wait);
        let pending = |w: std::pin::Pin<&mut _>| futures_util::FutureExt::now_or_never(w).is_none();
        assert!(pending(wait.as_mut()), "two parts run");
        drop(a);
        assert!(pending(wait.as_mut()), "one part still runs");
        drop(b);
        assert!(!pending(wait.as_mut()), "the last part ended");
    }

    #[test]
    fn cuts_respect_a_source_block() {
        let r = Running::default();
        let _a = r.add(0, 40 * MIB);
        // Blocks of 3 MiB: the cut is on a multiple of 3 MiB (and of the 1 MiB buffer).
        let (cut, _) = r.split(3 * MIB).unwrap();
        assert_eq!(cut % (3 * MIB), 0, "{cut}");
        assert_eq!(cut, 18 * MIB);
    }
}
