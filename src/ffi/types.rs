//! The plain C types: status codes, phases, the progress snapshot.

use std::ffi::c_char;

use crate::error::ErrorKind;
use crate::progress::{Phase, Progress};

/// Result of every fallible call. Values are stable across versions.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hs_status {
    /// Success.
    HS_STATUS_OK = 0,
    /// A NULL, malformed or out-of-range argument, an unknown JSON field, bad UTF-8.
    HS_STATUS_INVALID_ARGUMENT = 1,
    /// The source (VM, disk, object, URL) does not exist.
    HS_STATUS_NOT_FOUND = 2,
    /// Credentials were refused (HTTP 401/403, login failure).
    HS_STATUS_AUTH = 3,
    /// An output file already exists and `overwrite` is off.
    HS_STATUS_ALREADY_EXISTS = 4,
    /// A local file could not be read, written or renamed.
    HS_STATUS_IO = 5,
    /// Connection failures that outlasted every retry.
    HS_STATUS_NETWORK = 6,
    /// Size or checksum did not match; nothing was renamed into place.
    HS_STATUS_VERIFICATION = 7,
    /// The export was cancelled.
    HS_STATUS_CANCELLED = 8,
    /// A deadline passed (stall, cloud task, connect).
    HS_STATUS_TIMEOUT = 9,
    /// The provider or operation is not available in this build.
    HS_STATUS_UNSUPPORTED = 10,
    /// The server or cloud answered with an error (message says which).
    HS_STATUS_REMOTE = 11,
    /// The call is not valid now (e.g. waiting from inside the export's own callback).
    HS_STATUS_INVALID_STATE = 12,
    /// `hs_export_wait` timed out, or the result is asked before the end: still running.
    HS_STATUS_PENDING = 13,
    /// A bug inside the library, caught before it crossed the boundary.
    HS_STATUS_PANIC = 98,
    /// Any other internal failure.
    HS_STATUS_INTERNAL = 99,
}

impl hs_status {
    /// Every status; the tests check it against the generated header.
    pub(crate) const ALL: [hs_status; 16] = [
        hs_status::HS_STATUS_OK,
        hs_status::HS_STATUS_INVALID_ARGUMENT,
        hs_status::HS_STATUS_NOT_FOUND,
        hs_status::HS_STATUS_AUTH,
        hs_status::HS_STATUS_ALREADY_EXISTS,
        hs_status::HS_STATUS_IO,
        hs_status::HS_STATUS_NETWORK,
        hs_status::HS_STATUS_VERIFICATION,
        hs_status::HS_STATUS_CANCELLED,
        hs_status::HS_STATUS_TIMEOUT,
        hs_status::HS_STATUS_UNSUPPORTED,
        hs_status::HS_STATUS_REMOTE,
        hs_status::HS_STATUS_INVALID_STATE,
        hs_status::HS_STATUS_PENDING,
        hs_status::HS_STATUS_PANIC,
        hs_status::HS_STATUS_INTERNAL,
    ];

    pub(crate) fn from_kind(k: ErrorKind) -> hs_status {
        match k {
            ErrorKind::InvalidArgument => hs_status::HS_STATUS_INVALID_ARGUMENT,
            ErrorKind::NotFound => hs_status::HS_STATUS_NOT_FOUND,
            ErrorKind::Auth => hs_status::HS_STATUS_AUTH,
            ErrorKind::AlreadyExists => hs_status::HS_STATUS_ALREADY_EXISTS,
            ErrorKind::Io => hs_status::HS_STATUS_IO,
            ErrorKind::Network => hs_status::HS_STATUS_NETWORK,
            ErrorKind::Verification => hs_status::HS_STATUS_VERIFICATION,
            ErrorKind::Cancelled => hs_status::HS_STATUS_CANCELLED,
            ErrorKind::Timeout => hs_status::HS_STATUS_TIMEOUT,
            ErrorKind::Unsupported => hs_status::HS_STATUS_UNSUPPORTED,
            ErrorKind::Remote => hs_status::HS_STATUS_REMOTE,
            ErrorKind::InvalidState => hs_status::HS_STATUS_INVALID_STATE,
            ErrorKind::Internal => hs_status::HS_STATUS_INTERNAL,
        }
    }
}

/// Phase of an export. Values are stable; 6, 7 and 8 are terminal.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hs_phase {
    /// Waiting for a slot (global limit on concurrent exports).
    HS_PHASE_QUEUED = 0,
    /// Checking the source and the options.
    HS_PHASE_PREPARING = 1,
    /// The cloud is producing the export (task, grant, lease); `message` says how far.
    HS_PHASE_WAITING_FOR_CLOUD = 2,
    /// Bytes are moving.
    HS_PHASE_DOWNLOADING = 3,
    /// Checksums are being checked.
    HS_PHASE_VERIFYING = 4,
    /// Files are being synced and renamed into place.
    HS_PHASE_FINALIZING = 5,
    /// Terminal: every file complete and verified.
    HS_PHASE_DONE = 6,
    /// Terminal: see `hs_export_wait`'s error or the result JSON.
    HS_PHASE_FAILED = 7,
    /// Terminal: cancelled, cleanup done.
    HS_PHASE_CANCELLED = 8,
}

impl From<Phase> for hs_phase {
    fn from(p: Phase) -> hs_phase {
        match p {
            Phase::Queued => hs_phase::HS_PHASE_QUEUED,
            Phase::Preparing => hs_phase::HS_PHASE_PREPARING,
            Phase::WaitingForCloud => hs_phase::HS_PHASE_WAITING_FOR_CLOUD,
            Phase::Downloading => hs_phase::HS_PHASE_DOWNLOADING,
            Phase::Verifying => hs_phase::HS_PHASE_VERIFYING,
            Phase::Finalizing => hs_phase::HS_PHASE_FINALIZING,
            Phase::Done => hs_phase::HS_PHASE_DONE,
            Phase::Failed => hs_phase::HS_PHASE_FAILED,
            Phase::Cancelled => hs_phase::HS_PHASE_CANCELLED,
        }
    }
}

/// Capacity of `hs_progress.file_name`, including the terminating NUL.
pub const HS_FILE_NAME_MAX: usize = 256;
/// Capacity of `hs_progress.message`, including the terminating NUL.
pub const HS_MESSAGE_MAX: usize = 512;

/// A progress snapshot. Strings are inline (NUL-terminated UTF-8, cut at a character boundary
/// if too long), so the struct owns nothing and may be copied freely.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hs_progress {
    pub phase: hs_phase,
    /// 1-based index of the current file; 0 before the first file starts.
    pub file_index: u32,
    /// Number of files in the export; 0 until known.
    pub file_count: u32,
    /// Bytes of the whole export in place (including bytes kept from an earlier run).
    pub bytes_done: u64,
    /// Best known total of the whole export; 0 while unknown; never below `bytes_done`.
    pub bytes_total: u64,
    /// Bytes of the current file in place.
    pub file_bytes_done: u64,
    /// Size of the current file; 0 while unknown.
    pub file_bytes_total: u64,
    /// Smoothed rate of this run, bytes per second (0 outside the downloading phase).
    pub rate_bytes_per_sec: f64,
    /// Seconds left at that rate; negative when unknown.
    pub eta_seconds: f64,
    /// Name of the current file.
    pub file_name: [c_char; HS_FILE_NAME_MAX],
    /// The provider's status message (e.g. a cloud task's status); may be empty.
    pub message: [c_char; HS_MESSAGE_MAX],
}

impl hs_progress {
    pub(crate) fn from_progress(p: &Progress) -> hs_progress {
        let mut out = hs_progress {
            phase: p.phase.into(),
            file_index: p.file_index,
            file_count: p.file_count,
            bytes_done: p.bytes_done,
            bytes_total: p.bytes_total,
            file_bytes_done: p.file_bytes_done,
            file_bytes_total: p.file_bytes_total,
            rate_bytes_per_sec: p.rate_bytes_per_sec,
            eta_seconds: p.eta_seconds,
            file_name: [0; HS_FILE_NAME_MAX],
            message: [0; HS_MESSAGE_MAX],
        };
        copy_str(&mut out.file_name, &p.file_name);
        copy_str(&mut out.message, &p.message);
        out
    }
}

fn copy_str(dst: &mut [c_char], s: &str) {
    let mut n = s.len().min(dst.len() - 1);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    for (d, b) in dst.iter_mut().zip(s.as_bytes()[..n].iter()) {
        *d = *b as c_char;
    }
    dst[n] = 0;
}

/// Progress callback. Called on a thread the library starts for this export alone, which ends
/// right after the terminal call (so a runtime that adopts the threads calling into it, such as
/// Mono, has nothing left to wait for at exit; only when the system refuses a new thread does it
/// run on a library worker); never twice at once for one export, at most
/// once per `progress_interval_ms` plus once per phase or file change, and exactly once with a
/// terminal phase (done, failed, cancelled); after that call `user_data` is never used again.
/// `progress` is valid only during the call. From inside, `hs_export_cancel`,
/// `hs_export_progress` and `hs_export_result_json` may be called; `hs_export_wait` on the same
/// export returns `HS_STATUS_INVALID_STATE` instead of deadlocking.
pub type hs_progress_cb =
    Option<unsafe extern "C" fn(user_data: *mut std::ffi::c_void, progress: *const hs_progress)>;

#[cfg(test)]
mod layout_tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// The Rust side of tests/abi/layout.txt (the header side is tests/c_abi.rs): the same lines
    /// from the types the library really passes, so a reordered or retyped field fails here
    /// even if the header were regenerated to match.
    #[test]
    fn rust_types_match_the_committed_abi_table() {
        let mut got = vec![format!("size hs_progress {}", size_of::<hs_progress>())];
        for (f, o) in [
            ("phase", offset_of!(hs_progress, phase)),
            ("file_index", offset_of!(hs_progress, file_index)),
            ("file_count", offset_of!(hs_progress, file_count)),
            ("bytes_done", offset_of!(hs_progress, bytes_done)),
            ("bytes_total", offset_of!(hs_progress, bytes_total)),
            ("file_bytes_done", offset_of!(hs_progress, file_bytes_done)),
            (
                "file_bytes_total",
                offset_of!(hs_progress, file_bytes_total),
            ),
            (
                "rate_bytes_per_sec",
                offset_of!(hs_progress, rate_bytes_per_sec),
            ),
            ("eta_seconds", offset_of!(hs_progress, eta_seconds)),
            ("file_name", offset_of!(hs_progress, file_name)),
            ("message", offset_of!(hs_progress, message)),
        ] {
            got.push(format!("offset hs_progress.{f} {o}"));
        }
        got.push(format!("size hs_status {}", size_of::<hs_status>()));
        got.push(format!("size hs_phase {}", size_of::<hs_phase>()));
        got.push(format!("value HS_FILE_NAME_MAX {HS_FILE_NAME_MAX}"));
        got.push(format!("value HS_MESSAGE_MAX {HS_MESSAGE_MAX}"));
        for s in hs_status::ALL {
            got.push(format!("value {s:?} {}", s as i32));
        }
        for p in Phase::all() {
            let h = hs_phase::from(p);
            got.push(format!("value {h:?} {}", h as i32));
        }
        let table = include_str!("../../tests/abi/layout.txt");
        let want: Vec<&str> = table
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .collect();
        assert_eq!(got, want, "left: the Rust types now");
    }
}
