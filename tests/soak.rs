//! Soak: 2,000 sequential and then 200 concurrent small exports in one process, against the
//! HTTP test peer. Resident memory, open file descriptors and threads (read from /proc) must come
//! back to where they were after a warm-up, so a leak per export — a file or socket left open, a
//! thread that never ends, a buffer that is never freed — fails the test.

mod support;

use std::time::{Duration, Instant};

use hypersdk::Client;
use serde_json::json;
use support::server::{TestServer, pattern};
use support::{opts, peer_runtime};

#[derive(Debug, Clone, Copy)]
struct Usage {
    rss_kib: u64,
    fds: usize,
    threads: u64,
}

fn usage() -> Usage {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |k: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    Usage {
        rss_kib: field("VmRSS:"),
        fds: std::fs::read_dir("/proc/self/fd").unwrap().count(),
        threads: field("Threads:"),
    }
}

fn run(client: &Client, url: &str, dir: &std::path::Path, want: &[u8]) {
    let e = client
        .start_export(url, &opts(dir, json!({"overwrite": true})), None)
        .unwrap();
    let r = e.wait(Some(Duration::from_secs(60))).unwrap().unwrap();
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(r.files[0].size, want.len() as u64);
}

/// Waits (up to 20 s: idle worker threads of the blocking pool linger 10 s) until the usage is
/// back within the margins of `base`, and returns the last reading.
fn settle(base: Usage) -> Usage {
    let t = Instant::now();
    loop {
        let u = usage();
        if within(base, u) || t.elapsed() > Duration::from_secs(20) {
            return u;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Margins: a few descriptors (an idle pooled connection), a few threads, and memory that the
/// allocator keeps for reuse (at most 24 MiB; a leak of one 64 KiB buffer per export would be
/// 125 MiB over 2,000).
fn within(base: Usage, u: Usage) -> bool {
    u.fds <= base.fds + 4 && u.threads <= base.threads + 4 && u.rss_kib <= base.rss_kib + 24 * 1024
}

#[test]
fn two_thousand_sequential_and_two_hundred_concurrent_exports_leak_nothing() {
    let rt = peer_runtime();
    let server = rt.block_on(TestServer::start());
    let data = pattern(64 << 10, 9);
    server.put("s.bin", data.clone());
    let url = server.url("s.bin");
    let client = Client::new("http", "{}").unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Warm-up: the runtime's threads, the connection pool, the allocator's arenas.
    for _ in 0..50 {
        run(&client, &url, dir.path(), &data);
    }
    let base = settle(usage());
    eprintln!("soak: baseline {base:?}");

    for _ in 0..2000 {
        run(&client, &url, dir.path(), &data);
    }
    let after_seq = settle(base);
    eprintln!("soak: after 2000 sequential {after_seq:?}");
    assert!(
        within(base, after_seq),
        "after 2,000 sequential exports: {after_seq:?}, baseline {base:?}"
    );

    // 200 at once, twice. The first round may leave up to 64 idle connections in the pool
    // (`pool_max_idle_per_host`; both ends are in this process) and memory the allocator keeps
    // (the write buffers' budget is 64 MiB); the second round must not add to either.
    hypersdk::configure(r#"{"max_concurrent_exports": 200}"#).unwrap();
    let after_first = concurrent_round(&client, &url, base);
    assert!(
        after_first.fds <= base.fds + 2 * 64 + 4
            && after_first.threads <= base.threads + 4
            && after_first.rss_kib <= base.rss_kib + 64 * 1024,
        "after 200 concurrent exports: {after_first:?}, baseline {base:?}"
    );
    let after_second = concurrent_round(&client, &url, after_first);
    hypersdk::configure("{}").unwrap();
    assert!(
        within(after_first, after_second),
        "a second round of 200 concurrent exports grew the process: {after_second:?}, after the first {after_first:?}"
    );
}

fn concurrent_round(client: &Client, url: &str, base: Usage) -> Usage {
    let dirs: Vec<_> = (0..200).map(|_| tempfile::tempdir().unwrap()).collect();
    let exports: Vec<_> = dirs
        .iter()
        .map(|d| {
            client
                .start_export(url, &opts(d.path(), json!({})), None)
                .unwrap()
        })
        .collect();
    let peak = usage();
    for e in &exports {
        let r = e.wait(Some(Duration::from_secs(120))).unwrap().unwrap();
        assert_eq!(r.status, "done", "{}", r.to_json());
    }
    drop(exports);
    let after = settle(base);
    eprintln!("soak: during 200 concurrent {peak:?}, after {after:?}");
    after
}
