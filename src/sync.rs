//! Small synchronisation helpers every layer uses.

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex, ignoring poison: a panic while one of our locks was held leaves plain data
/// behind (counters, queues), never a broken invariant worth failing every later call for.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The text of a caught panic.
pub(crate) fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
