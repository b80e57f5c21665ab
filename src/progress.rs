//! The progress model: atomic counters that the downloader bumps without locks, an event queue
//! for phase and file changes (so none is lost between two deliveries), and the snapshot that
//! callbacks and the pull API see. It sits below `transfer/` and `providers/`: the vocabulary every
//! layer shares.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::Notify;

use crate::sync::lock;

/// The phases of an export, in the order they normally happen. Values are stable (C ABI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Phase {
    Queued = 0,
    Preparing = 1,
    WaitingForCloud = 2,
    Downloading = 3,
    Verifying = 4,
    Finalizing = 5,
    Done = 6,
    Failed = 7,
    Cancelled = 8,
}

impl Phase {
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Done | Phase::Failed | Phase::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Queued => "queued",
            Phase::Preparing => "preparing",
            Phase::WaitingForCloud => "waiting-for-cloud",
            Phase::Downloading => "downloading",
            Phase::Verifying => "verifying",
            Phase::Finalizing => "finalizing",
            Phase::Done => "done",
            Phase::Failed => "failed",
            Phase::Cancelled => "cancelled",
        }
    }

    /// Every phase, in order.
    pub fn all() -> [Phase; 9] {
        [
            Phase::Queued,
            Phase::Preparing,
            Phase::WaitingForCloud,
            Phase::Downloading,
            Phase::Verifying,
            Phase::Finalizing,
            Phase::Done,
            Phase::Failed,
            Phase::Cancelled,
        ]
    }

    /// The phase with this value, if there is one.
    pub fn from_repr(v: i64) -> Option<Phase> {
        Phase::all().into_iter().find(|p| *p as i64 == v)
    }

    fn from_u8(v: u8) -> Phase {
        Phase::from_repr(v.into()).unwrap_or(Phase::Failed)
    }
}

/// What a progress callback or a pull sees: one consistent-enough reading of the counters.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub phase: Phase,
    /// Bytes of the whole export that are in place (including ones kept from an earlier run).
    pub bytes_done: u64,
    /// Best known total of the whole export; 0 while unknown. Corrected as sizes become known.
    pub bytes_total: u64,
    /// 1-based index of the current file; 0 before the first file starts.
    pub file_index: u32,
    pub file_count: u32,
    pub file_name: String,
    pub file_bytes_done: u64,
    pub file_bytes_total: u64,
    /// Smoothed transfer rate of this run, bytes per second.
    pub rate_bytes_per_sec: f64,
    /// Seconds left at the current rate; negative when unknown.
    pub eta_seconds: f64,
    /// The provider's status message (e.g. a cloud task's status), may be empty.
    pub message: String,
}

/// Per-file counters.
#[derive(Debug, Default)]
pub struct FileCounters {
    pub name: String,
    pub done: AtomicU64,
    pub total: AtomicU64,
    /// Bytes already counted by an attempt that was thrown away; new bytes fill this first, so
    /// counters never go backwards when a file starts over.
    credit: AtomicU64,
    /// Requests or parts of this file tried again after a failure or a stall.
    retries: AtomicU32,
}

impl FileCounters {
    pub(crate) fn add_retries(&self, n: u32) {
        self.retries.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn retries(&self) -> u32 {
        self.retries.load(Ordering::Relaxed)
    }
}

/// Shared, mostly lock-free progress state of one export.
pub struct ProgressState {
    phase: AtomicU8,
    bytes_done: AtomicU64,
    bytes_total: AtomicU64,
    /// Bytes received in this run (rate is computed from these, not from resumed bytes).
    transferred: AtomicU64,
    file_index: AtomicU32,
    files: Mutex<Vec<std::sync::Arc<FileCounters>>>,
    message: Mutex<String>,
    rate_bits: AtomicU64,
    events: Mutex<VecDeque<(Phase, u32)>>,
    pub(crate) wake: Notify,
}

impl ProgressState {
    pub fn new() -> Self {
        ProgressState {
            phase: AtomicU8::new(Phase::Queued as u8),
            bytes_done: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
            transferred: AtomicU64::new(0),
            file_index: AtomicU32::new(0),
            files: Mutex::new(Vec::new()),
            message: Mutex::new(String::new()),
            rate_bits: AtomicU64::new(0f64.to_bits()),
            events: Mutex::new(VecDeque::from([(Phase::Queued, 0)])),
            wake: Notify::new(),
        }
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// Moves to `phase`; every change is delivered to the callback, even if another follows
    /// before the dispatcher wakes. A terminal phase is final.
    pub fn set_phase(&self, phase: Phase) {
        let mut events = lock(&self.events);
        let old = self.phase();
        if old == phase || old.is_terminal() {
            return;
        }
        self.phase.store(phase as u8, Ordering::Release);
        events.push_back((phase, self.file_index.load(Ordering::Relaxed)));
        drop(events);
        self.wake.notify_one();
    }

    #[cfg_attr(not(any(feature = "aws", feature = "vsphere")), allow(dead_code))]
    /// Control characters in `msg` (it often quotes a cloud) are escaped: C and Go callers
    /// print it as it is.
    pub fn set_message(&self, msg: &str) {
        let msg = &*crate::printable(msg);
        let mut m = lock(&self.message);
        if *m != msg {
            m.clear();
            m.push_str(msg);
        }
    }

    /// Declares the files of the export with their best-known sizes (0 = unknown).
    pub fn set_files(&self, files: &[(String, u64)]) -> Vec<std::sync::Arc<FileCounters>> {
        let counters: Vec<_> = files
            .iter()
            .map(|(name, size)| {
                std::sync::Arc::new(FileCounters {
                    name: name.clone(),
                    done: AtomicU64::new(0),
                    total: AtomicU64::new(*size),
                    credit: AtomicU64::new(0),
                    retries: AtomicU32::new(0),
                })
            })
            .collect();
        let total: u64 = files.iter().map(|f| f.1).sum();
        self.bytes_total.store(total, Ordering::Relaxed);
        *lock(&self.files) = counters.clone();
        counters
    }

    /// Makes file `index` (1-based) the current one; delivered as a file change.
    pub fn set_current_file(&self, index: u32) {
        let mut events = lock(&self.events);
        if self.file_index.swap(index, Ordering::AcqRel) != index {
            events.push_back((self.phase(), index));
            drop(events);
            self.wake.notify_one();
        }
    }

    /// Corrects the size of one file as it becomes known; the export total follows.
    pub fn set_file_total(&self, file: &FileCounters, total: u64) {
        let old = file.total.swap(total, Ordering::AcqRel);
        if total >= old {
            self.bytes_total.fetch_add(total - old, Ordering::AcqRel);
        } else {
            self.bytes_total.fetch_sub(old - total, Ordering::AcqRel);
        }
    }

    /// Counts bytes now in place for `file`; `received` says whether they crossed the network
    /// in this run (false for bytes kept from an earlier run).
    pub fn add_done(&self, file: &FileCounters, n: u64, received: bool) {
        if received {
            self.transferred.fetch_add(n, Ordering::Relaxed);
        }
        let mut n = n;
        if file.credit.load(Ordering::Relaxed) > 0 {
            let prev = file
                .credit
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                    Some(c.saturating_sub(n))
                })
                .unwrap_or(0);
            n -= prev.min(n);
        }
        if n > 0 {
            file.done.fetch_add(n, Ordering::Relaxed);
            self.bytes_done.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// A file starts over (its source changed, or a stream restarts from byte 0): the bytes it
    /// counted stay counted, and the next ones fill them up before counting again.
    pub fn restart_file(&self, file: &FileCounters) {
        let done = file.done.load(Ordering::Acquire);
        file.credit.store(done, Ordering::Release);
    }

    pub fn transferred(&self) -> u64 {
        self.transferred.load(Ordering::Relaxed)
    }

    pub(crate) fn set_rate(&self, rate: f64) {
        self.rate_bits.store(rate.to_bits(), Ordering::Relaxed);
    }

    /// Takes the oldest undelivered phase/file event.
    pub(crate) fn next_event(&self) -> Option<(Phase, u32)> {
        lock(&self.events).pop_front()
    }

    /// A reading of the counters, with the given phase and file index.
    pub(crate) fn snapshot_with(&self, phase: Phase, file_index: u32) -> Progress {
        let (file_name, file_bytes_done, file_bytes_total, file_count) = {
            let files = lock(&self.files);
            let count = files.len() as u32;
            match (file_index as usize)
                .checked_sub(1)
                .and_then(|i| files.get(i))
            {
                Some(f) => (
                    f.name.clone(),
                    f.done.load(Ordering::Relaxed),
                    f.total.load(Ordering::Relaxed),
                    count,
                ),
                None => (String::new(), 0, 0, count),
            }
        };
        let bytes_done = self.bytes_done.load(Ordering::Relaxed);
        let bytes_total = self.bytes_total.load(Ordering::Relaxed).max(bytes_done);
        let rate = f64::from_bits(self.rate_bits.load(Ordering::Relaxed));
        let eta_seconds = if phase == Phase::Done {
            0.0
        } else if phase == Phase::Downloading && rate > 1.0 && bytes_total > 0 {
            (bytes_total - bytes_done) as f64 / rate
        } else {
            -1.0
        };
        Progress {
            phase,
            bytes_done,
            bytes_total,
            file_index,
            file_count,
            file_name,
            file_bytes_done,
            file_bytes_total: file_bytes_total.max(file_bytes_done),
            rate_bytes_per_sec: if phase == Phase::Downloading {
                rate
            } else {
                0.0
            },
            eta_seconds,
            message: lock(&self.message).clone(),
        }
    }

    /// The current reading (pull API).
    pub fn snapshot(&self) -> Progress {
        self.snapshot_with(self.phase(), self.file_index.load(Ordering::Acquire))
    }
}

impl Default for ProgressState {
    fn default() -> Self {
        Self::new()
    }
}

/// A smoothed rate: exponentially weighted over a few seconds, so one stalled part or one burst
/// does not make the ETA jump.
pub(crate) struct RateMeter {
    last_bytes: u64,
    last_at: Instant,
    rate: f64,
    primed: bool,
}

impl RateMeter {
    const TAU_SECS: f64 = 3.0;

    pub(crate) fn new(bytes: u64) -> Self {
        RateMeter {
            last_bytes: bytes,
            last_at: Instant::now(),
            rate: 0.0,
            primed: false,
        }
    }

    pub(crate) fn sample(&mut self, bytes: u64) -> f64 {
        let now = Instant::now();
        let dt = now.duration_since(self.last_at).as_secs_f64();
        if dt < 0.05 {
            return self.rate;
        }
        let inst = bytes.saturating_sub(self.last_bytes) as f64 / dt;
        if self.primed {
            let alpha = 1.0 - (-dt / Self::TAU_SECS).exp();
            self.rate += alpha * (inst - self.rate);
        } else {
            self.rate = inst;
            self.primed = inst > 0.0;
        }
        self.last_bytes = bytes;
        self.last_at = now;
        self.rate
    }
}
