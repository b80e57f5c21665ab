//! `hs_client` and the process-wide settings.

use std::ffi::c_char;

use super::{
    guard, guard_value, guard_void, hs_error, hs_status, optional_str, out_slot, required_str,
};
use crate::Client;

/// A configured provider. Create with `hs_client_new`, free with `hs_client_free`. Safe to use
/// from several threads at once.
pub struct hs_client {
    pub(crate) client: Client,
}

/// The version of the header a program was compiled with (the library's at run time:
/// `hs_version_number()`). ABI rule: within one major version, a newer library works for a
/// program built against an older header (functions and enum values are only added; struct
/// layouts, values and signatures never change). `HS_VERSION_MAJOR` is also the SONAME's number.
pub const HS_VERSION_MAJOR: u32 = 0;
/// Minor version: adds functions, enum values or option keys; breaks nothing.
pub const HS_VERSION_MINOR: u32 = 1;
/// Patch version: fixes only.
pub const HS_VERSION_PATCH: u32 = 0;
/// `MAJOR * 10000 + MINOR * 100 + PATCH`, comparable with `hs_version_number()`.
pub const HS_VERSION_NUMBER: u32 = 100;

/// Parses one decimal component of Cargo's version at compile time.
const fn parse_version(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut n = 0u32;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "version component is not a number");
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    n
}

// The header's macros are literals (cbindgen copies them); these make a version bump in
// Cargo.toml that forgets them a compile error rather than a lying header.
const _: () = {
    assert!(HS_VERSION_MAJOR == parse_version(env!("CARGO_PKG_VERSION_MAJOR")));
    assert!(HS_VERSION_MINOR == parse_version(env!("CARGO_PKG_VERSION_MINOR")));
    assert!(HS_VERSION_PATCH == parse_version(env!("CARGO_PKG_VERSION_PATCH")));
    assert!(HS_VERSION_MINOR < 100 && HS_VERSION_PATCH < 100);
    assert!(
        HS_VERSION_NUMBER == HS_VERSION_MAJOR * 10000 + HS_VERSION_MINOR * 100 + HS_VERSION_PATCH
    );
};

/// The library version, a static string such as "0.1.0". Never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn hs_version() -> *const c_char {
    guard_value(c"".as_ptr(), || {
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
    })
}

/// The version of the library loaded at run time as `HS_VERSION_NUMBER` spells it. A program can
/// refuse a library older than the header it was built with:
/// `hs_version_number() / 10000 == HS_VERSION_MAJOR && hs_version_number() >= HS_VERSION_NUMBER`.
#[unsafe(no_mangle)]
pub extern "C" fn hs_version_number() -> u32 {
    guard_value(0, || HS_VERSION_NUMBER)
}

/// Sets process-wide limits from JSON: `max_concurrent_exports` (default 16; more wait in phase
/// queued), `max_bytes_per_second` (all exports together; 0 = none), `buffer_budget_bytes`
/// (memory for write buffers of all exports; default 64 MiB), `max_connections_per_host`
/// (ranged requests at once to one scheme+host+port, all exports together; default 64). Keys
/// left out get their defaults. May be called at any time; running exports follow.
///
/// `settings_json`: borrowed, may be NULL (all defaults). `err`: NULL or a slot that receives
/// an error to free with `hs_error_free`.
#[unsafe(no_mangle)]
pub extern "C" fn hs_global_configure(
    settings_json: *const c_char,
    err: *mut *mut hs_error,
) -> hs_status {
    guard(err, || {
        let json = optional_str(settings_json, "settings_json", "{}")?;
        crate::settings::configure(json)?;
        Ok(hs_status::HS_STATUS_OK)
    })
}

/// Creates a client for `provider` with its config JSON (NULL or "" for defaults): "http",
/// "aws", "azure", "gcp", "hyperv", "vsphere" (each behind a cargo feature, all on by default;
/// a provider left out of a build answers `HS_STATUS_UNSUPPORTED`, and so does "hyperv" when
/// no PowerShell is found). Unknown fields are an error naming the field.
///
/// Ownership: `provider` and `config_json` are borrowed for the call. On success `*out_client`
/// receives a client the caller owns and frees with `hs_client_free`; on failure it is set to
/// NULL and `*err` (if `err` is not NULL) receives an error to free with `hs_error_free`.
#[unsafe(no_mangle)]
pub extern "C" fn hs_client_new(
    provider: *const c_char,
    config_json: *const c_char,
    out_client: *mut *mut hs_client,
    err: *mut *mut hs_error,
) -> hs_status {
    guard(err, || {
        out_slot(out_client, "out_client")?;
        let provider = required_str(provider, "provider")?;
        let config = optional_str(config_json, "config_json", "{}")?;
        let client = Client::new(provider, config)?;
        let raw = Box::into_raw(Box::new(hs_client { client }));
        // SAFETY: checked by out_slot.
        unsafe { *out_client = raw };
        Ok(hs_status::HS_STATUS_OK)
    })
}

/// The sources `client` can export, as a JSON array of objects: `id` (what to give
/// `hs_export_start`), `kind` (`instance`, `image`, `disk`, `snapshot`, `vm`, `object`),
/// `name`, and when known `size_bytes` and `state`. `filter_json` (NULL or "" for none) is an
/// object with `kind`, `name_contains` and the provider's own keys (gcp: `zone`, `bucket`,
/// `prefix`; azure: `resource_group`; …); an unknown key is `HS_STATUS_INVALID_ARGUMENT`
/// naming it. Blocks until the cloud answers (five minutes at most). A provider that has
/// nothing to list ("http") answers `HS_STATUS_UNSUPPORTED`.
///
/// Ownership: `*out_json` receives a string the caller frees with `hs_string_free` (NULL on
/// failure).
#[unsafe(no_mangle)]
pub extern "C" fn hs_client_list_sources(
    client: *const hs_client,
    filter_json: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut hs_error,
) -> hs_status {
    guard(err, || {
        out_slot(out_json, "out_json")?;
        if client.is_null() {
            return Err(crate::Error::InvalidArgument("client is NULL".into()));
        }
        // SAFETY: a live client by contract (checked non-NULL above).
        let c = unsafe { &*client };
        let filter = optional_str(filter_json, "filter_json", "")?;
        let list = c.client.list_sources(filter)?;
        let json = serde_json::to_string(&list)
            .map_err(|e| crate::Error::Internal(format!("list JSON: {e}")))?;
        let s = std::ffi::CString::new(json)
            .map_err(|_| crate::Error::Internal("list JSON holds a NUL".into()))?;
        // SAFETY: checked by out_slot.
        unsafe { *out_json = s.into_raw() };
        Ok(hs_status::HS_STATUS_OK)
    })
}

/// What every known provider accepts, as JSON (no client needed): `{"common_options":
/// [{"key", "type", "default"}], "providers": [{"name", "built_in", "sources",
/// "config_keys", "option_keys"}]}`. A provider behind a disabled cargo feature is listed
/// with `built_in: false`. On success `*out_json` is a new string the caller frees with
/// `hs_string_free`. Safe from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn hs_provider_info(
    out_json: *mut *mut c_char,
    err: *mut *mut hs_error,
) -> hs_status {
    guard(err, || {
        out_slot(out_json, "out_json")?;
        let s = std::ffi::CString::new(crate::provider_info_json())
            .map_err(|_| crate::Error::Internal("provider info holds a NUL".into()))?;
        // SAFETY: checked by out_slot.
        unsafe { *out_json = s.into_raw() };
        Ok(hs_status::HS_STATUS_OK)
    })
}

/// Frees a client. Exports started from it keep running and stay valid. NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn hs_client_free(client: *mut hs_client) {
    guard_void(|| {
        if !client.is_null() {
            // SAFETY: made by hs_client_new, freed once by contract.
            drop(unsafe { Box::from_raw(client) });
        }
    })
}
