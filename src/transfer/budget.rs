//! Resizable pools of permits: the process-wide memory budget for write buffers (a part takes
//! its buffer from here before it sends its request, so memory does not grow with the number of
//! exports or the size of the objects) and the limit on concurrent exports.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub struct Pool {
    sem: Arc<Semaphore>,
    size: AtomicU64,
}

impl Pool {
    pub fn new(size: u64) -> Self {
        let size = size.max(1);
        Pool {
            sem: Arc::new(Semaphore::new(size as usize)),
            size: AtomicU64::new(size),
        }
    }

    /// Changes the size; holders keep what they have, a shrink takes effect as permits return.
    pub fn resize(&self, size: u64) {
        let new = size.max(1);
        let old = self.size.swap(new, Ordering::AcqRel);
        if new > old {
            self.sem.add_permits((new - old) as usize);
        } else if new < old {
            let sem = self.sem.clone();
            let n = (old - new) as u32;
            // Take the surplus as it becomes free and forget it.
            crate::runtime::handle().spawn(async move {
                if let Ok(p) = sem.acquire_many_owned(n).await {
                    p.forget();
                }
            });
        }
    }

    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Waits for `n` permits (at most the pool's size, so a big taker cannot wait forever).
    pub async fn acquire(&self, n: u64) -> OwnedSemaphorePermit {
        let n = n.clamp(1, self.size()) as u32;
        self.sem
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("pools are never closed")
    }
}

/// Budget granularity for buffers.
pub const UNIT: u64 = 64 * 1024;

/// The byte budget, counted in 64 KiB units.
pub struct BufferBudget(Pool);

impl BufferBudget {
    pub fn new(bytes: u64) -> Self {
        BufferBudget(Pool::new(bytes / UNIT))
    }

    pub fn resize(&self, bytes: u64) {
        self.0.resize(bytes / UNIT)
    }

    pub async fn acquire(&self, bytes: u64) -> OwnedSemaphorePermit {
        self.0.acquire(bytes.div_ceil(UNIT)).await
    }
}
