//! `hs_export`: start, cancel, wait, pull progress, result, free.

use std::ffi::{CString, c_char, c_void};
use std::time::Duration;

use super::{
    error, guard, guard_void, hs_client, hs_error, hs_phase, hs_progress, hs_progress_cb,
    hs_status, optional_str, out_slot,
};
use crate::error::Error;
use crate::export::{Export, Progress};

/// A running or finished export. Free with `hs_export_free` (also while it runs).
pub struct hs_export {
    pub(crate) export: Export,
}

/// The user's callback and data, moved to the dispatcher thread.
struct CCallback {
    cb: unsafe extern "C" fn(*mut c_void, *const hs_progress),
    user_data: *mut c_void,
}

// SAFETY: the header tells callers that `user_data` is used from a library thread; the
// dispatcher calls it from one thread at a time.
unsafe impl Send for CCallback {}

impl CCallback {
    fn call(&self, p: &Progress) {
        let cp = hs_progress::from_progress(p);
        // SAFETY: the caller gave a valid function pointer and accepts calls on library threads.
        unsafe { (self.cb)(self.user_data, &cp) }
    }
}

fn export_ref<'a>(export: *const hs_export) -> Result<&'a hs_export, Error> {
    // SAFETY: NULL or a live hs_export from hs_export_start (documented).
    unsafe { export.as_ref() }.ok_or_else(|| Error::InvalidArgument("export is NULL".into()))
}

/// Starts exporting `source_id` (a URL, an instance id, a VM path…; may be NULL or "" when the
/// options list the files) with `options_json` (NULL or "" for defaults) and returns at once;
/// the export runs on the library's threads.
///
/// `progress_cb` may be NULL (use the pull functions). `user_data` is passed back to every call
/// and is not touched after the terminal call (done, failed or cancelled), which always comes,
/// exactly once, even after `hs_export_free` — so that call is where the caller may free it.
/// The first call (phase queued) may come before this function has returned and stored
/// `*out_export`.
///
/// Ownership: strings are borrowed for the call; `client` may be freed right after. On success
/// `*out_export` receives an export the caller frees with `hs_export_free`. Bad options, a
/// missing output folder and unknown fields fail here, with nothing touched.
#[unsafe(no_mangle)]
pub extern "C" fn hs_export_start(
    client: *const hs_client,
    source_id: *const c_char,
    options_json: *const c_char,
    progress_cb: hs_progress_cb,
    user_data: *mut c_void,
    out_export: *mut *mut hs_export,
    err: *mut *mut hs_error,
) -> hs_status {
    guard(err, || {
        out_slot(out_export, "out_export")?;
        // SAFETY: NULL or a live hs_client (documented).
        let client = unsafe { client.as_ref() }
            .ok_or_else(|| Error::InvalidArgument("client is NULL".into()))?;
        let source = optional_str(source_id, "source_id", "")?;
        let options = optional_str(options_json, "options_json", "{}")?;
        let cb = progress_cb.map(|cb| {
            let c = CCallback { cb, user_data };
            Box::new(move |p: &Progress| c.call(p)) as crate::ProgressCallback
        });
        let export = client.client.start_export(source, options, cb)?;
        let raw = Box::into_raw(Box::new(hs_export { export }));
        // SAFETY: checked by out_slot.
        unsafe { *out_export = raw };
        Ok(hs_status::HS_STATUS_OK)
    })
}

/// Requests cancellation: returns at once, may be called many times, from any thread and from
/// inside a callback. Cleanup runs, then the terminal callback (phase cancelled, unless the
/// export had already finished).
#[unsafe(no_mangle)]
pub extern "C" fn hs_export_cancel(handle: *const hs_export) -> hs_status {
    guard(std::ptr::null_mut(), || {
        export_ref(handle)?.export.cancel();
        Ok(hs_status::HS_STATUS_OK)
    })
}

/// Changes the priority of an export still waiting for a slot (phase queued, behind
/// `max_concurrent_exports`): it is let in by the new priority, keeping its arrival among
/// exports of equal priority. Returns `HS_STATUS_INVALID_STATE`, changing nothing, when it no
/// longer waits (it runs, has ended or was cancelled). May be called from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn hs_export_set_priority(handle: *const hs_export, priority: i32) -> hs_status {
    guard(std::ptr::null_mut(), || {
        Ok(if export_ref(handle)?.export.set_priority(priority) {
            hs_status::HS_STATUS_OK
        } else {
            hs_status::HS_STATUS_INVALID_STATE
        })
    })
}

/// Waits until the export has ended and its terminal callback has returned, at most
/// `timeout_ms` milliseconds (negative: no limit; 0: just check).
///
/// Returns `HS_STATUS_PENDING` if it is still running; otherwise the export's own outcome:
/// `HS_STATUS_OK` when done, `HS_STATUS_CANCELLED`, or the failure's status with `*err` (if
/// `err` is not NULL) receiving the error, its message and phase. Called from inside this
/// export's callback it returns `HS_STATUS_INVALID_STATE` rather than deadlock.
#[unsafe(no_mangle)]
pub extern "C" fn hs_export_wait(
    handle: *const hs_export,
    timeout_ms: i64,
    err: *mut *mut hs_error,
) -> hs_status {
    guard(err, || {
        let e = export_ref(handle)?;
        let timeout = (timeout_ms >= 0).then(|| Duration::from_millis(timeout_ms as u64));
        let Some(result) = e.export.wait(timeout)? else {
            return Ok(hs_status::HS_STATUS_PENDING);
        };
        Ok(match result.error() {
            None => hs_status::HS_STATUS_OK,
            Some(x) => {
                let status = hs_status::from_kind(x.kind);
                error::set(err, status, &x.message, hs_phase::from(x.phase));
                status
            }
        })
    })
}

/// Copies the current progress into `*out` (caller-owned; the struct holds no pointers).
#[unsafe(no_mangle)]
pub extern "C" fn hs_export_progress(handle: *const hs_export, out: *mut hs_progress) -> hs_status {
    guard(std::ptr::null_mut(), || {
        let e = export_ref(handle)?;
        if out.is_null() {
            return Err(Error::InvalidArgument(
                "out (the progress struct) is NULL".into(),
            ));
        }
        let p = hs_progress::from_progress(&e.export.progress());
        // SAFETY: checked non-NULL; the caller passes a writable hs_progress.
        unsafe { out.write(p) };
        Ok(hs_status::HS_STATUS_OK)
    })
}

/// The result of an ended export as JSON: `status` ("done", "failed", "cancelled"), `files`
/// (name, path, size, verified checksum, fetched and resumed bytes, retries), totals,
/// `elapsed_ms`, `error` (kind, message, phase) and provider fields. Available from inside the
/// terminal callback. Returns `HS_STATUS_PENDING` (and `*out_json` NULL) while the export runs.
///
/// Ownership: `*out_json` receives a string the caller frees with `hs_string_free`.
#[unsafe(no_mangle)]
pub extern "C" fn hs_export_result_json(
    handle: *const hs_export,
    out_json: *mut *mut c_char,
    err: *mut *mut hs_error,
) -> hs_status {
    guard(err, || {
        out_slot(out_json, "out_json")?;
        let e = export_ref(handle)?;
        let Some(result) = e.export.result() else {
            return Ok(hs_status::HS_STATUS_PENDING);
        };
        let s = CString::new(result.to_json())
            .map_err(|_| Error::Internal("result JSON holds a NUL".into()))?;
        // SAFETY: checked by out_slot.
        unsafe { *out_json = s.into_raw() };
        Ok(hs_status::HS_STATUS_OK)
    })
}

/// Frees the handle. If the export still runs it is cancelled and detached: cleanup still runs
/// and the terminal callback still comes. NULL is a no-op. Allowed from inside the export's own
/// callback (the library keeps what the running export needs).
#[unsafe(no_mangle)]
pub extern "C" fn hs_export_free(handle: *mut hs_export) {
    guard_void(|| {
        if !handle.is_null() {
            // SAFETY: made by hs_export_start, freed once by contract.
            let e = unsafe { Box::from_raw(handle) };
            if e.export.result().is_none() {
                e.export.cancel();
            }
        }
    })
}
