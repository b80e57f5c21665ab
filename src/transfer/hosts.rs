//! The process-wide budget of connections per host: every ranged part takes a permit of its
//! source's host before its first request and keeps it until the part ends, so many files at
//! once (16 exports of 64 parts each) share one budget per host instead of opening a thousand
//! connections to one endpoint, as browsers (6 per host) and aws-c-s3 (a pool per endpoint) do.
//! Each host also counts the requests it throttled (429, 503) or dropped, which the part-count
//! controllers of its files read to back off.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use tokio::sync::OwnedSemaphorePermit;

use super::budget::Pool;
use crate::sync::lock;

/// Connections per host for all exports together, by default: what one file may use at most
/// (`max_parts_in_flight` 64), so one file alone is never held back.
pub(crate) const DEFAULT_CONNECTIONS_PER_HOST: u64 = 64;

/// One host's connections and its throttled requests.
pub(crate) struct Host {
    pool: Pool,
    throttled: AtomicU64,
}

impl Host {
    /// Waits for a connection of this host.
    pub(crate) async fn acquire(&self) -> OwnedSemaphorePermit {
        self.pool.acquire(1).await
    }

    /// Counts a request the host refused (429/503) or a connection it dropped.
    pub(crate) fn note_throttled(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests refused or dropped so far.
    pub(crate) fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }
}

struct Hosts {
    map: Mutex<HashMap<String, Arc<Host>>>,
    limit: AtomicU64,
}

static HOSTS: LazyLock<Hosts> = LazyLock::new(|| Hosts {
    map: Mutex::new(HashMap::new()),
    limit: AtomicU64::new(DEFAULT_CONNECTIONS_PER_HOST),
});

/// The budget of `key` (scheme, host and port: one origin), made on first use.
pub(crate) fn host(key: &str) -> Arc<Host> {
    let mut map = lock(&HOSTS.map);
    map.entry(key.to_string())
        .or_insert_with(|| {
            Arc::new(Host {
                pool: Pool::new(HOSTS.limit.load(Ordering::Acquire)),
                throttled: AtomicU64::new(0),
            })
        })
        .clone()
}

/// The key of a URL's host: its origin.
pub(crate) fn key(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

/// Changes the connections per host, for every host now and later (`hs_global_configure`);
/// parts holding more keep them until they end.
pub(crate) fn set_connections_per_host(n: u64) {
    let map = lock(&HOSTS.map);
    HOSTS.limit.store(n, Ordering::Release);
    for h in map.values() {
        h.pool.resize(n);
    }
}

/// Counts a refused request against the host of `url` (called where 429/503 are seen).
pub(crate) fn note_throttled(url: &url::Url) {
    host(&key(url)).note_throttled();
}
