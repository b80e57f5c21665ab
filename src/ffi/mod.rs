//! The C ABI: the only place with `extern "C"`, raw pointers and C strings. Every function body
//! runs under [`guard`], [`guard_void`] or [`guard_value`], so no panic crosses the boundary
//! (`tests/ffi_contract.rs` fails on an `extern "C"` function whose body does not start with
//! one); every handle is a `Box` made here and freed by its `_free`, which accepts NULL.
#![allow(non_camel_case_types)]
// These functions are for C callers; the pointer contract of each is in the header (NULL is
// checked, everything else is the caller's promise), as in rustls-ffi.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod client;
mod error;
mod export;
mod types;

pub(crate) use client::hs_client;
pub(crate) use error::hs_error;
pub(crate) use types::*;

use std::ffi::{CStr, c_char};
use std::panic::AssertUnwindSafe;

use crate::error::Error;

/// Runs `f`, turning an error into its status (and an `hs_error` when `err` is not NULL) and a
/// panic into `HS_STATUS_PANIC`.
pub(crate) fn guard(
    err: *mut *mut hs_error,
    f: impl FnOnce() -> Result<hs_status, Error>,
) -> hs_status {
    if !err.is_null() {
        // SAFETY: the caller passes NULL or a valid hs_error* slot (documented in the header).
        unsafe { *err = std::ptr::null_mut() };
    }
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            let status = hs_status::from_kind(e.kind());
            error::set(err, status, &e.to_string(), hs_phase::HS_PHASE_QUEUED);
            status
        }
        Err(p) => {
            let msg = crate::sync::panic_text(&*p);
            error::set(
                err,
                hs_status::HS_STATUS_PANIC,
                &format!("internal panic: {msg}"),
                hs_phase::HS_PHASE_QUEUED,
            );
            hs_status::HS_STATUS_PANIC
        }
    }
}

/// Same, for functions that return nothing (the `_free`s): a panic is swallowed.
pub(crate) fn guard_void(f: impl FnOnce()) {
    let _ = std::panic::catch_unwind(AssertUnwindSafe(f));
}

/// Same, for functions that return a plain value (names, accessors): a panic gives `fallback`.
pub(crate) fn guard_value<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// A required C string argument as UTF-8.
pub(crate) fn required_str<'a>(p: *const c_char, what: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(Error::InvalidArgument(format!("{what} is NULL")));
    }
    // SAFETY: the caller passes a NUL-terminated string that outlives this call.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| Error::InvalidArgument(format!("{what} is not valid UTF-8")))
}

/// An optional C string argument: NULL is `default`.
pub(crate) fn optional_str<'a>(
    p: *const c_char,
    what: &str,
    default: &'a str,
) -> Result<&'a str, Error> {
    if p.is_null() {
        Ok(default)
    } else {
        required_str(p, what)
    }
}

/// Checks an out-parameter slot.
pub(crate) fn out_slot<T>(p: *mut *mut T, what: &str) -> Result<(), Error> {
    if p.is_null() {
        return Err(Error::InvalidArgument(format!(
            "{what} (the out parameter) is NULL"
        )));
    }
    // SAFETY: checked non-NULL; the caller passes a writable slot.
    unsafe { *p = std::ptr::null_mut() };
    Ok(())
}
