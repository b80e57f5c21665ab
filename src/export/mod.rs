//! The provider-agnostic engine: one job per export (phases, cancellation, cleanup on every
//! path), one progress dispatcher per export (serialized, throttled callbacks; exactly one
//! terminal call), and the handle callers hold.

mod callback_thread;
pub(crate) mod dispatch;
mod finalize;
pub(crate) mod job;
pub(crate) use crate::seam::options;
pub(crate) mod queue;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::progress::ProgressState;
pub use crate::progress::{Phase, Progress};

use crate::error::{Error, ExportError, Result};
use crate::sync::lock;

/// A progress callback: called on a runtime thread, never twice at once for one export.
pub type ProgressCallback = Box<dyn FnMut(&Progress) + Send>;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One file of a finished export.
#[derive(Debug, Clone, Serialize)]
pub struct FileResult {
    pub name: String,
    pub path: std::path::PathBuf,
    pub size: u64,
    /// The checksum that was verified, if the source offered one.
    pub checksum: Option<ChecksumResult>,
    pub fetched_bytes: u64,
    pub resumed_bytes: u64,
    /// Requests or parts tried again after a failure or a stall.
    pub retries: u32,
    /// Whether the size is the source's own (stated by the server or the cloud, or given as
    /// `size`); false only for a stream that ended without a stated length.
    pub size_verified: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChecksumResult {
    pub algorithm: &'static str,
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorResult {
    pub kind: &'static str,
    pub message: String,
    pub phase: &'static str,
}

/// How an export ended.
#[derive(Debug, Clone, Serialize)]
pub struct ExportResult {
    /// `done`, `failed` or `cancelled`.
    pub status: &'static str,
    pub files: Vec<FileResult>,
    /// Extra files a provider wrote (descriptor, manifest).
    pub extra_files: Vec<String>,
    pub bytes_total: u64,
    pub bytes_fetched: u64,
    pub bytes_resumed: u64,
    pub elapsed_ms: u64,
    pub error: Option<ErrorResult>,
    /// A cleanup step that failed (the export's own status is kept).
    pub cleanup_error: Option<String>,
    /// Every step of the cleanup ledger that ran, in run order (newest registration first).
    pub cleanup: Vec<crate::seam::ledger::CleanupStep>,
    /// Provider-specific fields (task id, bucket, …).
    #[serde(flatten)]
    pub provider: serde_json::Map<String, serde_json::Value>,
    #[serde(skip)]
    pub(crate) export_error: Option<ExportError>,
}

impl ExportResult {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"status\":\"failed\",\"error\":\"{e}\"}}"))
    }

    /// `Ok` for a finished export, the error (with its phase) otherwise.
    pub fn into_result(self) -> std::result::Result<ExportResult, ExportError> {
        match self.export_error.clone() {
            Some(e) => Err(e),
            None => Ok(self),
        }
    }

    pub fn error(&self) -> Option<&ExportError> {
        self.export_error.as_ref()
    }
}

/// State shared by the job, the dispatcher and every handle.
pub(crate) struct ExportShared {
    pub id: u64,
    pub progress: Arc<ProgressState>,
    pub cancel: CancellationToken,
    pub started: Instant,
    result: OnceLock<ExportResult>,
    finished: Mutex<bool>,
    finished_cv: Condvar,
    finished_async: tokio::sync::Notify,
}

impl ExportShared {
    pub fn new() -> Arc<Self> {
        Arc::new(ExportShared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            progress: Arc::new(ProgressState::new()),
            cancel: CancellationToken::new(),
            started: Instant::now(),
            result: OnceLock::new(),
            finished: Mutex::new(false),
            finished_cv: Condvar::new(),
            finished_async: tokio::sync::Notify::new(),
        })
    }

    /// Stores the result, then moves to the terminal phase (the dispatcher delivers it).
    pub fn set_result(&self, r: ExportResult) {
        let phase = match r.status {
            "done" => Phase::Done,
            "cancelled" => Phase::Cancelled,
            _ => Phase::Failed,
        };
        let _ = self.result.set(r);
        self.progress.set_phase(phase);
    }

    /// Called by the dispatcher after the terminal callback returned.
    pub fn mark_finished(&self) {
        *lock(&self.finished) = true;
        self.finished_cv.notify_all();
        self.finished_async.notify_waiters();
    }

    fn is_finished(&self) -> bool {
        *lock(&self.finished)
    }
}

/// A running or finished export. Cloning gives another handle to the same export. Dropping a
/// handle neither cancels nor stops the export.
#[derive(Clone)]
pub struct Export {
    pub(crate) shared: Arc<ExportShared>,
    /// Its place in the slot queue while it waits for one (None: it had one at once).
    pub(crate) place: Option<queue::Place>,
}

impl Export {
    /// Changes the priority of an export still waiting for a slot (phase `queued`, behind
    /// `max_concurrent_exports`): it is admitted by the new priority, keeping its arrival
    /// among exports of equal priority. Returns false, changing nothing, when it no longer
    /// waits: it runs, has ended or was cancelled.
    pub fn set_priority(&self, priority: i32) -> bool {
        // A cancelled export still holds its ticket until its task drops it: it waits for
        // nothing any more.
        !self.shared.cancel.is_cancelled()
            && self
                .place
                .as_ref()
                .is_some_and(|p| p.set_priority(priority))
    }

    /// Requests cancellation: returns at once; cleanup runs, then the terminal callback.
    pub fn cancel(&self) {
        self.shared.cancel.cancel();
    }

    /// The current progress (pull API).
    pub fn progress(&self) -> Progress {
        self.shared.progress.snapshot()
    }

    /// The result, once the export has ended (available from inside the terminal callback).
    pub fn result(&self) -> Option<ExportResult> {
        self.shared.result.get().cloned()
    }

    /// Blocks until the export has ended and its terminal callback has returned, or until
    /// `timeout` passes (`Ok(None)`). From inside this export's own callback it would wait for
    /// itself: that is an `InvalidState` error instead of a deadlock.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<Option<ExportResult>> {
        if dispatch::in_callback_of(self.shared.id) && !self.shared.is_finished() {
            return Err(Error::InvalidState(
                "waiting for an export from inside its own progress callback would deadlock".into(),
            ));
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut done = lock(&self.shared.finished);
        while !*done {
            match deadline {
                None => {
                    done = self
                        .shared
                        .finished_cv
                        .wait(done)
                        .unwrap_or_else(|e| e.into_inner())
                }
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(None);
                    }
                    done = self
                        .shared
                        .finished_cv
                        .wait_timeout(done, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        drop(done);
        Ok(self.result())
    }

    /// Waits asynchronously for the end of the export.
    pub async fn finished(&self) -> ExportResult {
        loop {
            let notified = self.shared.finished_async.notified();
            if self.shared.is_finished() {
                return self.result().expect("a finished export has a result");
            }
            notified.await;
        }
    }

    pub fn id(&self) -> u64 {
        self.shared.id
    }
}
