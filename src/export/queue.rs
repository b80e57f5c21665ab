//! The queue in front of `max_concurrent_exports`: an export waits (phase queued) for a slot;
//! slots go to the highest `priority` first, and in arrival order within a priority. A slot is
//! handed over as a value that frees itself when dropped, so a waiter that gives up (cancel)
//! after its slot was sent still gives it back. A waiter's priority can change while it waits
//! ([`Place::set_priority`]): it keeps its arrival, only its rank moves.

use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::oneshot;

use crate::sync::lock;

struct Waiter {
    priority: i32,
    seq: u64,
    tx: oneshot::Sender<Slot>,
}

impl PartialEq for Waiter {
    fn eq(&self, o: &Self) -> bool {
        self.priority == o.priority && self.seq == o.seq
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Waiter {
    /// The heap's top is the highest priority, then the earliest arrival.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.priority
            .cmp(&o.priority)
            .then_with(|| o.seq.cmp(&self.seq))
    }
}

struct Inner {
    size: u64,
    in_use: u64,
    seq: u64,
    waiters: BinaryHeap<Waiter>,
}

pub(crate) struct SlotQueue {
    inner: Arc<Mutex<Inner>>,
}

/// One running export's slot; dropping it lets the next waiter in.
pub(crate) struct Slot {
    inner: Arc<Mutex<Inner>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut g = lock(&self.inner);
        g.in_use -= 1;
        dispatch(&self.inner, &mut g);
    }
}

/// Hands free slots to the best waiters. A waiter already gone gets none (its slot is taken
/// back here, under the lock, without running `Slot::drop`).
fn dispatch(inner: &Arc<Mutex<Inner>>, g: &mut Inner) {
    while g.in_use < g.size {
        let Some(w) = g.waiters.pop() else { return };
        g.in_use += 1;
        if let Err(slot) = w.tx.send(Slot {
            inner: inner.clone(),
        }) {
            std::mem::forget(slot);
            g.in_use -= 1;
        }
    }
}

impl SlotQueue {
    pub fn new(size: u64) -> Self {
        SlotQueue {
            inner: Arc::new(Mutex::new(Inner {
                size: size.max(1),
                in_use: 0,
                seq: 0,
                waiters: BinaryHeap::new(),
            })),
        }
    }

    /// Changes the number of slots; running exports keep theirs, a shrink takes effect as
    /// they finish.
    pub fn resize(&self, size: u64) {
        let mut g = lock(&self.inner);
        g.size = size.max(1);
        dispatch(&self.inner, &mut g);
    }

    /// Waits for a slot behind every waiter of a higher priority and every earlier one of the
    /// same priority (`ticket` + `wait` in one step).
    #[cfg(test)]
    pub async fn acquire(&self, priority: i32) -> Slot {
        self.ticket(priority).wait().await
    }

    /// Takes a place in the queue now (a free slot, or a waiter's place), to be waited on later:
    /// `start_export` takes it before it returns, so arrival order is the order of the calls, not
    /// the order in which the runtime happens to run the export tasks.
    pub fn ticket(&self, priority: i32) -> Ticket {
        let mut g = lock(&self.inner);
        if g.in_use < g.size && g.waiters.is_empty() {
            g.in_use += 1;
            return Ticket::Ready(Slot {
                inner: self.inner.clone(),
            });
        }
        let (tx, rx) = oneshot::channel();
        g.seq += 1;
        let seq = g.seq;
        g.waiters.push(Waiter { priority, seq, tx });
        Ticket::Waiting(
            rx,
            Place {
                inner: Arc::downgrade(&self.inner),
                seq,
            },
        )
    }
}

/// A place in the queue (see [`SlotQueue::ticket`]). Dropped while waiting, its place is given
/// up; a slot already sent to it frees itself.
pub(crate) enum Ticket {
    Ready(Slot),
    Waiting(oneshot::Receiver<Slot>, Place),
}

impl Ticket {
    /// Where a waiting ticket stands in the queue, to change its priority later (None: it
    /// had a slot at once).
    pub fn place(&self) -> Option<Place> {
        match self {
            Ticket::Ready(_) => None,
            Ticket::Waiting(_, p) => Some(p.clone()),
        }
    }

    pub async fn wait(self) -> Slot {
        match self {
            Ticket::Ready(s) => s,
            Ticket::Waiting(rx, _) => rx
                .await
                .expect("a waiter's sender is only dropped by sending to it"),
        }
    }
}

/// A waiter's place, kept apart from its ticket (which the export's task holds).
#[derive(Clone)]
pub(crate) struct Place {
    inner: Weak<Mutex<Inner>>,
    seq: u64,
}

impl Place {
    /// Gives the waiter `priority` (it keeps its arrival among equals). False when it is no
    /// longer waiting: it has its slot, or gave its place up.
    pub fn set_priority(&self, priority: i32) -> bool {
        let Some(inner) = self.inner.upgrade() else {
            return false;
        };
        let mut g = lock(&inner);
        let mut waiters = std::mem::take(&mut g.waiters).into_vec();
        let mut found = false;
        for w in waiters.iter_mut().filter(|w| w.seq == self.seq) {
            // A waiter whose receiver is gone (cancelled) is not waiting any more.
            found = !w.tx.is_closed();
            w.priority = priority;
        }
        g.waiters = BinaryHeap::from(waiters);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn slots_go_by_priority_then_arrival_and_cancelled_waiters_give_theirs_back() {
        let q = Arc::new(SlotQueue::new(1));
        let first = q.acquire(0).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Arrival order: low-1, high-1, low-2, mid, high-2, and one that gives up.
        for (name, prio) in [
            ("low-1", 0),
            ("high-1", 9),
            ("low-2", 0),
            ("mid", 5),
            ("high-2", 9),
        ] {
            let (q, order) = (q.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let s = q.acquire(prio).await;
                lock(&order).push(name);
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(s);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let quitter = {
            let q = q.clone();
            tokio::spawn(async move { q.acquire(100).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        quitter.abort();
        let _ = quitter.await;
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*lock(&order), ["high-1", "high-2", "mid", "low-1", "low-2"]);
        // Every slot came back: the queue's one slot is free again.
        assert_eq!(lock(&q.inner).in_use, 0);
        let again = tokio::time::timeout(Duration::from_secs(1), q.acquire(0)).await;
        assert!(again.is_ok(), "a slot leaked");
    }

    #[tokio::test]
    async fn a_waiter_raised_or_lowered_is_admitted_by_its_new_priority() {
        let q = Arc::new(SlotQueue::new(1));
        let first = q.acquire(0).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut places = Vec::new();
        let mut tasks = Vec::new();
        for name in ["a", "b", "c", "d"] {
            let ticket = q.ticket(0);
            places.push(ticket.place().expect("the slot is taken: it waits"));
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                let s = ticket.wait().await;
                lock(&order).push(name);
                drop(s);
            }));
        }
        // d, the last to come, raised above everyone; a, the first, lowered below everyone.
        assert!(places[3].set_priority(5));
        assert!(places[0].set_priority(-1));
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*lock(&order), ["d", "b", "c", "a"]);
        // Admitted: no longer waiting, nothing to change.
        assert!(!places[3].set_priority(9));
    }

    #[tokio::test]
    async fn growing_lets_waiters_in_and_shrinking_waits_for_returns() {
        let q = Arc::new(SlotQueue::new(1));
        let a = q.acquire(0).await;
        let waiting = {
            let q = q.clone();
            tokio::spawn(async move { q.acquire(0).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiting.is_finished());
        q.resize(2);
        let b = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("growing let the waiter in")
            .unwrap();
        q.resize(1);
        drop(a);
        // Two were out with one slot: the first return does not let a third in.
        let third = {
            let q = q.clone();
            tokio::spawn(async move { q.acquire(0).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!third.is_finished());
        drop(b);
        tokio::time::timeout(Duration::from_secs(1), third)
            .await
            .expect("the slot came back")
            .unwrap();
    }
}
