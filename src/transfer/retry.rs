//! When and how long to wait before trying again: one rule for every retry loop, the
//! downloader's (a request, a part, a stream) and the cloud API calls' (`providers::kit::api`).

use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

use rand::Rng as _;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

const MAX_DELAY: Duration = Duration::from_secs(30);

/// Statuses worth another attempt.
pub fn is_retryable_status(s: StatusCode) -> bool {
    s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS || s == StatusCode::REQUEST_TIMEOUT
}

/// Exponential backoff with full jitter in the upper half: `base * 2^attempt`, capped.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    backoff_capped(base, attempt, MAX_DELAY)
}

/// [`backoff`] with a lower cap, jittered below the cap too.
fn backoff_capped(base: Duration, attempt: u32, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    let ms = exp.as_millis() as u64;
    Duration::from_millis(ms / 2 + rand::rng().random_range(0..=ms / 2))
}

/// The server's `Retry-After`, as seconds or an HTTP date, capped.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let d = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let when = httpdate::parse_http_date(v).ok()?;
        when.duration_since(SystemTime::now()).unwrap_or_default()
    };
    Some(d.min(Duration::from_secs(300)))
}

/// Whether an error is worth another attempt (connection trouble, stalls, 5xx/429).
pub(crate) fn is_retryable(e: &Error) -> bool {
    matches!(e, Error::Network(_) | Error::Timeout(_))
}

/// The failed attempts of one operation. `failed` decides whether to go on: a retryable error
/// waits (backoff with jitter, or the server's `Retry-After`) and returns `Ok`; anything else,
/// or the last allowed attempt, returns the error. An attempt that made progress starts the
/// count again, so a link that drops every few hundred MB never exhausts the attempts of a 5 TB
/// download.
pub(crate) struct Attempts {
    failed: u32,
    max: u32,
    base: Duration,
    cap: Duration,
    /// Retries made so far (for the result), across resets.
    pub retries: u32,
}

impl Attempts {
    pub(crate) fn new(max: u32, base: Duration) -> Self {
        Attempts {
            failed: 0,
            max: max.max(1),
            base,
            cap: MAX_DELAY,
            retries: 0,
        }
    }

    /// The longest wait between two attempts of our own choosing (a server's `Retry-After`
    /// still wins): API calls cap it low, so a dead endpoint fails within tens of seconds.
    pub(crate) fn with_cap(mut self, cap: Duration) -> Self {
        self.cap = cap.min(MAX_DELAY);
        self
    }

    /// Attempts made so far (the first included).
    pub(crate) fn made(&self) -> u32 {
        self.failed + 1
    }

    pub(crate) async fn failed(
        &mut self,
        err: Error,
        progressed: bool,
        server_wait: Option<Duration>,
        cancel: &CancellationToken,
    ) -> Result<()> {
        if !is_retryable(&err) {
            return Err(err);
        }
        if progressed {
            self.failed = 0;
        }
        self.failed += 1;
        if self.failed >= self.max {
            return Err(err);
        }
        let wait =
            server_wait.unwrap_or_else(|| backoff_capped(self.base, self.failed - 1, self.cap));
        self.retries += 1;
        tracing::debug!(attempt = self.failed, ?wait, error = %err, "retrying");
        tokio::select! {
            _ = cancel.cancelled() => Err(Error::Cancelled),
            _ = tokio::time::sleep(wait) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let b = Duration::from_millis(100);
        let d0 = backoff(b, 0);
        assert!(d0 >= Duration::from_millis(50) && d0 <= Duration::from_millis(100));
        let d3 = backoff(b, 3);
        assert!(d3 >= Duration::from_millis(400) && d3 <= Duration::from_millis(800));
        assert!(backoff(b, 30) <= MAX_DELAY);
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_stop_reset_and_skip_fatal_errors() {
        let cancel = CancellationToken::new();
        let mut a = Attempts::new(3, Duration::from_millis(10));
        let net = || Error::Network("x".into());
        assert!(a.failed(net(), false, None, &cancel).await.is_ok());
        assert!(a.failed(net(), false, None, &cancel).await.is_ok());
        assert!(a.failed(net(), false, None, &cancel).await.is_err());
        // Progress starts the count again.
        let mut a = Attempts::new(3, Duration::from_millis(10));
        for _ in 0..10 {
            a.failed(net(), true, None, &cancel).await.unwrap();
        }
        assert_eq!(a.retries, 10);
        let e = a
            .failed(Error::NotFound("y".into()), false, None, &cancel)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::NotFound(_)));
        cancel.cancel();
        let e = a.failed(net(), false, None, &cancel).await.unwrap_err();
        assert!(matches!(e, Error::Cancelled));
    }

    #[test]
    fn parses_retry_after() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
