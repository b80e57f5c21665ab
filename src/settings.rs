//! Process-wide settings: the limits every export shares (concurrent exports, total bandwidth,
//! buffer memory, connections per host). They can be changed at any time; running transfers follow. The limits live
//! with the layer that enforces them (`export::job::EXPORT_SLOTS`,
//! `transfer::PROCESS_LIMITS`, `transfer::hosts`); this module only parses and applies.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Settings for the whole process (`hs_global_configure`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalSettings {
    /// Exports running at once; more wait in phase `queued`. Default 16.
    pub max_concurrent_exports: u64,
    /// Bandwidth of all exports together, bytes per second; 0 = none. Default 0.
    pub max_bytes_per_second: u64,
    /// Memory for write buffers of all exports together, bytes. Default 64 MiB.
    pub buffer_budget_bytes: u64,
    /// Connections to one host (scheme, host, port) of all exports together: each ranged part
    /// holds one while it runs, so many files at once share them. Default 64.
    pub max_connections_per_host: u64,
}

impl Default for GlobalSettings {
    fn default() -> Self {
        GlobalSettings {
            max_concurrent_exports: crate::export::job::DEFAULT_MAX_CONCURRENT_EXPORTS,
            max_bytes_per_second: 0,
            buffer_budget_bytes: crate::transfer::DEFAULT_BUFFER_BUDGET,
            max_connections_per_host: crate::transfer::hosts::DEFAULT_CONNECTIONS_PER_HOST,
        }
    }
}

/// Applies settings given as JSON; keys left out keep their defaults.
pub fn configure(json: &str) -> Result<GlobalSettings> {
    let s: GlobalSettings = serde_json::from_str(if json.trim().is_empty() { "{}" } else { json })
        .map_err(|e| Error::InvalidArgument(format!("global settings: {e}")))?;
    if s.max_concurrent_exports == 0 || s.max_concurrent_exports > 4096 {
        return Err(Error::InvalidArgument(
            "max_concurrent_exports must be between 1 and 4096".into(),
        ));
    }
    if s.buffer_budget_bytes < 1 << 20 {
        return Err(Error::InvalidArgument(
            "buffer_budget_bytes must be at least 1 MiB".into(),
        ));
    }
    if s.max_connections_per_host == 0 || s.max_connections_per_host > 4096 {
        return Err(Error::InvalidArgument(
            "max_connections_per_host must be between 1 and 4096".into(),
        ));
    }
    crate::export::job::EXPORT_SLOTS.resize(s.max_concurrent_exports);
    crate::transfer::PROCESS_LIMITS
        .limiter
        .set_rate(s.max_bytes_per_second);
    crate::transfer::PROCESS_LIMITS
        .budget
        .resize(s.buffer_budget_bytes);
    crate::transfer::hosts::set_connections_per_host(s.max_connections_per_host);
    Ok(s)
}
