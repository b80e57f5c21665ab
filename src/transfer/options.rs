//! The downloader's own knobs. They are part of the flat export options (the engine embeds this
//! struct), but `transfer/` reads only this, not the engine's options.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How one file is fetched. Defaults are documented on each field.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TransferOptions {
    /// Size of one ranged request, bytes; a multiple of 64 KiB. Default 8 MiB. With
    /// `max_part_size` above it: the smallest request a file is cut into, and the boundary
    /// requests end on. When no part is left to start, a free connection may still take the
    /// back half of a running request (halves of at least 2 MiB, cut on a 1 MiB boundary;
    /// never a range checked at its end: Azure's per-range MD5, EBS blocks).
    pub part_size: u64,
    /// Largest ranged request, bytes: while much of a file is left, its requests grow up to
    /// this (each request costs a round trip, and a link's latency, before its first byte);
    /// they shrink back to `part_size` towards the end, so the last parts finish together. At or
    /// below `part_size`: every request is `part_size`. Default 64 MiB.
    pub max_part_size: u64,
    /// Ranged requests in flight per file (at the start, when `max_parts_in_flight` is above).
    /// Default 16.
    pub parts_in_flight: usize,
    /// Most ranged requests in flight per file: above `parts_in_flight`, the count doubles while
    /// that raises the file's throughput by 15 % (a link that limits each connection), then
    /// grows by smaller steps now and then, up to this; a step that does not pay is undone, and
    /// a source that answers 429/503 or drops connections halves the count. Parts are sized for
    /// this many. At or below `parts_in_flight`: a fixed count of `parts_in_flight`. Default 64.
    /// Every file of the process shares the connections of one host
    /// (`max_connections_per_host` in the global settings).
    pub max_parts_in_flight: usize,
    /// Bandwidth limit of this export, bytes per second; 0 = none. Default 0.
    pub max_bytes_per_second: u64,
    /// Attempts per request before the export fails; reset when bytes arrive. Default 5.
    pub max_attempts: u32,
    /// A request that yields no byte for this long is retried, ms. Default 30000.
    pub stall_timeout_ms: u64,
    /// First retry delay, ms; doubles per attempt, with jitter, capped at 30 s. Default 500.
    pub retry_base_delay_ms: u64,
    /// How often a file that another process writes is looked at, ms. Default 500.
    pub poll_file_interval_ms: u64,
    /// On resume, re-check the bytes kept from an earlier run against the CRC32C of each part
    /// in the journal, and fetch again what does not match (or has no CRC), when no whole-file
    /// checksum will check them at the end. Default true.
    pub verify_resumed: bool,
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            part_size: 8 << 20,
            max_part_size: 64 << 20,
            parts_in_flight: 16,
            max_parts_in_flight: 64,
            max_bytes_per_second: 0,
            max_attempts: 5,
            stall_timeout_ms: 30_000,
            retry_base_delay_ms: 500,
            poll_file_interval_ms: 500,
            verify_resumed: true,
        }
    }
}

impl TransferOptions {
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidArgument(m.to_string()));
        if self.part_size < 64 * 1024 || !self.part_size.is_multiple_of(64 * 1024) {
            return bad("part_size must be a multiple of 65536 bytes (64 KiB), at least 65536");
        }
        // Below part_size means fixed parts, so raising part_size alone is not refused.
        if self.max_part_size < 64 * 1024 || !self.max_part_size.is_multiple_of(64 * 1024) {
            return bad("max_part_size must be a multiple of 65536 bytes (64 KiB), at least 65536");
        }
        if !(1..=64).contains(&self.parts_in_flight) {
            return bad("parts_in_flight must be between 1 and 64");
        }
        // Below parts_in_flight means a fixed count, so a caller who raised parts_in_flight
        // above the default ceiling is not refused.
        if !(1..=64).contains(&self.max_parts_in_flight) {
            return bad("max_parts_in_flight must be between 1 and 64");
        }
        if !(1..=100).contains(&self.max_attempts) {
            return bad("max_attempts must be between 1 and 100");
        }
        if self.stall_timeout_ms < 100 {
            return bad("stall_timeout_ms must be at least 100");
        }
        if !(10..=60_000).contains(&self.poll_file_interval_ms) {
            return bad("poll_file_interval_ms must be between 10 and 60000");
        }
        Ok(())
    }

    pub(crate) fn stall(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.stall_timeout_ms)
    }

    pub(crate) fn attempts(&self) -> super::retry::Attempts {
        super::retry::Attempts::new(
            self.max_attempts,
            std::time::Duration::from_millis(self.retry_base_delay_ms),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ceiling_below_the_start_means_a_fixed_count() {
        // Raising parts_in_flight above the default ceiling is not refused.
        let o = TransferOptions {
            parts_in_flight: 48,
            ..Default::default()
        };
        o.validate().unwrap();
        for max in [0, 65] {
            let o = TransferOptions {
                max_parts_in_flight: max,
                ..Default::default()
            };
            let e = o.validate().unwrap_err();
            assert!(e.to_string().contains("max_parts_in_flight"), "{e}");
        }
    }
}
