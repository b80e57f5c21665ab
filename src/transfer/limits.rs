//! What every transfer of the process shares, beyond one export: total bandwidth and buffer
//! memory.

use tokio_util::sync::CancellationToken;

use super::TransferCtx;
use super::budget;
use super::throttle::RateLimiter;
use crate::error::{Error, Result};

/// The limits every transfer of the process shares: total bandwidth and buffer memory
/// (changed by `hs_global_configure`).
pub(crate) struct ProcessLimits {
    pub limiter: RateLimiter,
    pub budget: budget::BufferBudget,
}

/// Memory for the write buffers of all transfers, by default.
pub(crate) const DEFAULT_BUFFER_BUDGET: u64 = 64 << 20;

pub(crate) static PROCESS_LIMITS: std::sync::LazyLock<ProcessLimits> =
    std::sync::LazyLock::new(|| ProcessLimits {
        limiter: RateLimiter::new(0),
        budget: budget::BufferBudget::new(DEFAULT_BUFFER_BUDGET),
    });

/// Waits for both bandwidth limits (this export's and the process's) to allow `n` bytes.
pub(crate) async fn throttle(ctx: &TransferCtx, cancel: &CancellationToken, n: u64) -> Result<()> {
    let wait = match (ctx.limiter.reserve(n), PROCESS_LIMITS.limiter.reserve(n)) {
        (None, None) => return Ok(()),
        (a, b) => a.unwrap_or_default().max(b.unwrap_or_default()),
    };
    tokio::select! {
        _ = cancel.cancelled() => Err(Error::Cancelled),
        _ = tokio::time::sleep(wait) => Ok(()),
    }
}
