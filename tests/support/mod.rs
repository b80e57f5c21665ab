//! Shared by the integration tests.
#![allow(dead_code)]

#[cfg(feature = "azure")]
pub mod azure;
pub mod conformance;
#[cfg(feature = "aws")]
pub mod ebs;
#[cfg(feature = "gcp")]
pub mod gcp;
#[cfg(feature = "hyperv")]
pub mod hyperv;
pub mod incremental;
#[cfg(feature = "aws")]
pub mod moto;
pub mod server;
pub mod toxiproxy;
pub mod vcsim;
pub mod wine;
#[cfg(feature = "hyperv")]
pub mod wine_pwsh;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// Folders of peers kept in statics (one Azurite, one fake-gcs-server, one set of Hyper-V disks
/// per test binary): a static is never dropped, so its TempDir would stay behind (a peer's is
/// ~170 MB); they are removed when the test binary exits.
static STATIC_DIRS: Mutex<Vec<std::path::PathBuf>> = Mutex::new(Vec::new());

extern "C" fn remove_static_dirs() {
    if let Ok(dirs) = STATIC_DIRS.lock() {
        for d in dirs.iter() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// A temp folder for a peer held in a static: removed at process exit.
pub fn static_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut dirs = STATIC_DIRS.lock().unwrap();
    if dirs.is_empty() {
        // SAFETY: registers a plain function with no captured state, once per process.
        unsafe {
            libc::atexit(remove_static_dirs);
        }
    }
    dirs.push(dir.path().to_path_buf());
    dir
}

use hypersdk::{Phase, Progress, ProgressCallback};

/// Records every callback and checks the contract as it goes: never two calls at once, bytes
/// never backwards, nothing after the terminal call.
#[derive(Clone, Default)]
pub struct Recorder {
    pub events: Arc<Mutex<Vec<Progress>>>,
    in_call: Arc<AtomicBool>,
    pub violations: Arc<Mutex<Vec<String>>>,
    pub terminal_calls: Arc<AtomicU32>,
}

impl Recorder {
    pub fn callback(&self) -> ProgressCallback {
        let r = self.clone();
        Box::new(move |p: &Progress| r.on(p))
    }

    fn on(&self, p: &Progress) {
        if self.in_call.swap(true, Ordering::SeqCst) {
            self.violations
                .lock()
                .unwrap()
                .push("two callbacks at once".into());
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
        {
            let mut ev = self.events.lock().unwrap();
            if let Some(last) = ev.last() {
                if last.phase.is_terminal() {
                    self.violations
                        .lock()
                        .unwrap()
                        .push(format!("call after terminal: {:?}", p.phase));
                }
                if p.bytes_done < last.bytes_done {
                    self.violations.lock().unwrap().push(format!(
                        "bytes went back: {} -> {}",
                        last.bytes_done, p.bytes_done
                    ));
                }
            }
            if p.bytes_total < p.bytes_done {
                self.violations
                    .lock()
                    .unwrap()
                    .push("total below done".into());
            }
            ev.push(p.clone());
        }
        if p.phase.is_terminal() {
            self.terminal_calls.fetch_add(1, Ordering::SeqCst);
        }
        self.in_call.store(false, Ordering::SeqCst);
    }

    /// Asserts the contract held and returns the phases seen, deduplicated in order.
    pub fn check(&self) -> Vec<Phase> {
        let v = self.violations.lock().unwrap();
        assert!(v.is_empty(), "progress contract violated: {v:?}");
        assert_eq!(
            self.terminal_calls.load(Ordering::SeqCst),
            1,
            "exactly one terminal call"
        );
        let ev = self.events.lock().unwrap();
        assert!(
            ev.last().unwrap().phase.is_terminal(),
            "the last call is the terminal one"
        );
        let mut phases: Vec<Phase> = Vec::new();
        for e in ev.iter() {
            if phases.last() != Some(&e.phase) {
                phases.push(e.phase);
            }
        }
        phases
    }

    pub fn last(&self) -> Progress {
        self.events
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("at least one callback")
    }
}

/// A runtime for the test peer, separate from the library's.
pub fn peer_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A runtime for the peers, the HTTP test server on it, an empty output folder, and an `http`
/// client.
pub fn http_setup() -> (
    tokio::runtime::Runtime,
    server::TestServer,
    tempfile::TempDir,
    hypersdk::Client,
) {
    let rt = peer_runtime();
    let server = rt.block_on(server::TestServer::start());
    let dir = tempfile::tempdir().unwrap();
    let client = hypersdk::Client::new("http", "{}").unwrap();
    (rt, server, dir, client)
}

/// Waits (a minute at most) until the export's progress satisfies `f`.
pub fn wait_until(e: &hypersdk::Export, what: &str, f: impl Fn(&hypersdk::Progress) -> bool) {
    let t = std::time::Instant::now();
    while !f(&e.progress()) {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(60),
            "never saw {what}: {:?}",
            e.progress()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Waits for the end of an export whose cloud side takes a while (two minutes at most).
pub fn wait_long(e: &hypersdk::Export) -> hypersdk::ExportResult {
    e.wait(Some(std::time::Duration::from_secs(120)))
        .unwrap()
        .expect("export did not end within 120 s")
}

/// Waits for the end of an export (a minute at most).
pub fn wait_export(e: &hypersdk::Export) -> hypersdk::ExportResult {
    e.wait(Some(std::time::Duration::from_secs(60)))
        .unwrap()
        .expect("export did not end within 60 s")
}

pub fn opts(dir: &std::path::Path, extra: serde_json::Value) -> String {
    let mut o = serde_json::json!({
        "output_dir": dir,
        "part_size": 262144,
        "retry_base_delay_ms": 20,
        "progress_interval_ms": 20,
    });
    for (k, v) in extra.as_object().unwrap() {
        o[k] = v.clone();
    }
    o.to_string()
}

/// Bytes the resume journal at `path` records as in place (0 while it is missing or being
/// replaced).
pub fn journal_covered(path: &std::path::Path) -> u64 {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|j| {
            j["done"].as_array().map(|ranges| {
                ranges
                    .iter()
                    .map(|r| r[1].as_u64().unwrap_or(0) - r[0].as_u64().unwrap_or(0))
                    .sum()
            })
        })
        .unwrap_or(0)
}

/// Kills `child` (SIGKILL: no cleanup) once the journal at `journal` records `at_least` bytes.
pub fn kill_when_journal_covers(
    child: &mut std::process::Child,
    journal: &std::path::Path,
    at_least: u64,
) {
    let t = std::time::Instant::now();
    while journal_covered(journal) < at_least {
        // A child that ended (done, or failed) before the journal got there makes the test's
        // timing wrong, not the code: say so at once instead of waiting out the minute.
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the download ended ({status}) before its journal recorded {at_least} bytes \
                 (it last recorded {}): its parts finish too close together to be killed between \
                 journal syncs",
                journal_covered(journal)
            );
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(60),
            "journal never grew past {} of {at_least} bytes in 60 s",
            journal_covered(journal)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Runs a future on a throwaway runtime (test setup against a peer's control endpoint).
pub fn block_on_peer<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The `fetch` example (examples/fetch.rs), built by `cargo build --examples` (and `cargo test`).
pub fn fetch_example() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let fetch = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/fetch");
    assert!(
        fetch.exists(),
        "build the examples first (cargo build --examples): {}",
        fetch.display()
    );
    fetch
}
