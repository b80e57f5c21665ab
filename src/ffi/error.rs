//! `hs_error`: code, message and phase of a failure, owned by the caller.

use std::ffi::{CString, c_char};
use std::sync::LazyLock;

use super::{guard_value, guard_void, hs_phase, hs_status};
use crate::progress::Phase;

/// An error: free with `hs_error_free`.
pub struct hs_error {
    pub(crate) status: hs_status,
    pub(crate) message: CString,
    pub(crate) phase: hs_phase,
}

pub(crate) fn set(err: *mut *mut hs_error, status: hs_status, message: &str, phase: hs_phase) {
    if err.is_null() {
        return;
    }
    // Escaped (NUL too): C callers print it, and it may quote what a cloud said.
    let message = CString::new(crate::printable::printable(message).as_ref()).unwrap_or_default();
    let e = Box::new(hs_error {
        status,
        message,
        phase,
    });
    // SAFETY: `err` is a valid slot (checked non-NULL), set to NULL by `guard` at entry.
    unsafe { *err = Box::into_raw(e) };
}

/// The status code of `err` (`HS_STATUS_INVALID_ARGUMENT` for NULL).
#[unsafe(no_mangle)]
pub extern "C" fn hs_error_code(err: *const hs_error) -> hs_status {
    guard_value(hs_status::HS_STATUS_INVALID_ARGUMENT, || {
        // SAFETY: NULL or a live hs_error from this library.
        unsafe { err.as_ref() }.map_or(hs_status::HS_STATUS_INVALID_ARGUMENT, |e| e.status)
    })
}

/// The message of `err`: UTF-8, owned by `err`, valid until `hs_error_free(err)`. Never NULL
/// (an empty string for NULL).
#[unsafe(no_mangle)]
pub extern "C" fn hs_error_message(err: *const hs_error) -> *const c_char {
    guard_value(c"".as_ptr(), || {
        // SAFETY: NULL or a live hs_error from this library.
        match unsafe { err.as_ref() } {
            Some(e) => e.message.as_ptr(),
            None => c"".as_ptr(),
        }
    })
}

/// The phase of the export in which the error happened (`HS_PHASE_QUEUED` for errors of calls
/// that are not about a running export).
#[unsafe(no_mangle)]
pub extern "C" fn hs_error_phase(err: *const hs_error) -> hs_phase {
    guard_value(hs_phase::HS_PHASE_QUEUED, || {
        // SAFETY: NULL or a live hs_error from this library.
        unsafe { err.as_ref() }.map_or(hs_phase::HS_PHASE_QUEUED, |e| e.phase)
    })
}

/// Frees an error. NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn hs_error_free(err: *mut hs_error) {
    guard_void(|| {
        if !err.is_null() {
            // SAFETY: made by Box::into_raw in `set`, freed once by contract.
            drop(unsafe { Box::from_raw(err) });
        }
    })
}

/// Frees a string returned by this library (e.g. by `hs_export_result_json`). NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn hs_string_free(s: *mut c_char) {
    guard_void(|| {
        if !s.is_null() {
            // SAFETY: made by CString::into_raw in this library, freed once by contract.
            drop(unsafe { CString::from_raw(s) });
        }
    })
}

/// A static name for a status code ("ok", "not_found", …; "unknown" for other values). Never
/// NULL.
#[unsafe(no_mangle)]
pub extern "C" fn hs_status_name(status: i32) -> *const c_char {
    guard_value(c"unknown".as_ptr(), || {
        STATUS_NAMES
            .iter()
            .find(|(v, _)| *v == status)
            .map_or(c"unknown".as_ptr(), |(_, n)| n.as_ptr())
    })
}

/// A static name for a phase ("queued", "downloading", …; "unknown" for other values). Never
/// NULL.
#[unsafe(no_mangle)]
pub extern "C" fn hs_phase_name(phase: i32) -> *const c_char {
    guard_value(c"unknown".as_ptr(), || {
        PHASE_NAMES
            .iter()
            .find(|(v, _)| *v == phase)
            .map_or(c"unknown".as_ptr(), |(_, n)| n.as_ptr())
    })
}

/// Status names, derived from the enum: `HS_STATUS_NOT_FOUND` → "not_found".
static STATUS_NAMES: LazyLock<Vec<(i32, CString)>> = LazyLock::new(|| {
    hs_status::ALL
        .iter()
        .map(|s| {
            let debug = format!("{s:?}");
            let name = debug.trim_start_matches("HS_STATUS_").to_ascii_lowercase();
            (
                *s as i32,
                CString::new(name).expect("no NUL in a variant name"),
            )
        })
        .collect()
});

/// Phase names, from `Phase::as_str` (the names the result JSON uses too).
static PHASE_NAMES: LazyLock<Vec<(i32, CString)>> = LazyLock::new(|| {
    Phase::all()
        .iter()
        .map(|p| {
            (
                hs_phase::from(*p) as i32,
                CString::new(p.as_str()).expect("no NUL in a phase name"),
            )
        })
        .collect()
});
