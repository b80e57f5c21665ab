//! Waiting for cloud-side work (an export task, a long-running operation, a build, a lease):
//! one loop for every provider. It asks `step` how things stand, shows the cloud's status as
//! the progress message, waits with backoff (or as long as the cloud asks), honours cancel at
//! every point, and on timeout returns an error that carries the last status seen.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::seam::FlowCtx;

/// One look at cloud-side work.
pub(crate) enum Poll<T> {
    /// Finished: the value the wait was for.
    Done(T),
    /// Still going: what the cloud says (shown as the progress message; empty keeps the last),
    /// and how long it asked us to wait (`Retry-After`), if it did.
    Pending {
        status: String,
        retry_after: Option<Duration>,
    },
}

impl<T> Poll<T> {
    pub fn pending(status: impl Into<String>) -> Self {
        Poll::Pending {
            status: status.into(),
            retry_after: None,
        }
    }
}

/// How long to wait between two looks: `first`, growing by `factor` up to `max`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub factor: u32,
}

impl Backoff {
    /// The same interval every time (a task whose progress is worth seeing at a steady pace).
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    pub fn fixed(every: Duration) -> Self {
        Backoff {
            first: every,
            max: every,
            factor: 1,
        }
    }

    /// Starts quickly (most operations finish in seconds), then settles at `max`.
    #[cfg_attr(
        not(any(feature = "azure", feature = "gcp", feature = "vsphere")),
        allow(dead_code)
    )]
    pub fn growing(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            factor: 2,
        }
    }
}

/// Calls `step` until it says `Done`, the export is cancelled (`Error::Cancelled`), `timeout`
/// passes (`Error::Timeout` naming `what` and the last status), or `step` fails (that error).
/// A step in flight is abandoned on cancel: the cloud call it made is the caller's to clean up.
pub(crate) async fn poll_until<T, F, Fut>(
    ctx: &FlowCtx,
    what: &str,
    timeout: Duration,
    backoff: Backoff,
    mut step: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut delay = backoff.first;
    let mut last = String::new();
    loop {
        let r = tokio::select! {
            biased;
            _ = ctx.cancel().cancelled() => return Err(Error::Cancelled),
            r = tokio::time::timeout_at(deadline, step()) => r,
        };
        let wait = match r {
            Err(_) => return Err(timed_out(what, timeout, &last)),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Poll::Done(v))) => return Ok(v),
            Ok(Ok(Poll::Pending {
                status,
                retry_after,
            })) => {
                if !status.is_empty() && status != last {
                    ctx.message(&status);
                    last = status;
                }
                let wait = retry_after.unwrap_or(delay);
                delay = (delay * backoff.factor.max(1)).min(backoff.max);
                wait
            }
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(timed_out(what, timeout, &last));
        }
        tokio::select! {
            biased;
            _ = ctx.cancel().cancelled() => return Err(Error::Cancelled),
            _ = tokio::time::sleep(wait.min(deadline - now)) => {}
        }
    }
}

fn timed_out(what: &str, timeout: Duration, last: &str) -> Error {
    let last = if last.is_empty() {
        String::new()
    } else {
        format!("; last status: {last}")
    };
    Error::Timeout(format!(
        "{what} did not finish within {}{last}",
        humantime(timeout)
    ))
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s.is_multiple_of(3600) {
        format!("{} h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{} min", s / 60)
    } else if s >= 1 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::progress::{Phase, ProgressState};

    fn ctx() -> (FlowCtx, Arc<ProgressState>, CancellationToken) {
        let p = Arc::new(ProgressState::new());
        let c = CancellationToken::new();
        (FlowCtx::new(p.clone(), c.clone()), p, c)
    }

    #[tokio::test(start_paused = true)]
    async fn done_after_pending_with_messages_and_growing_waits() {
        let (ctx, progress, _) = ctx();
        ctx.waiting_for_cloud("starting");
        let n = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let v = poll_until(
            &ctx,
            "the task",
            Duration::from_secs(3600),
            Backoff::growing(Duration::from_secs(1), Duration::from_secs(4)),
            || {
                let i = n.fetch_add(1, Ordering::SeqCst);
                async move {
                    Ok(if i < 4 {
                        Poll::pending(format!("step {i}"))
                    } else {
                        Poll::Done(i)
                    })
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(v, 4);
        // 1 + 2 + 4 + 4 seconds of waiting (virtual time).
        assert_eq!(started.elapsed(), Duration::from_secs(11));
        let p = progress.snapshot();
        assert_eq!(p.message, "step 3");
        assert_eq!(p.phase, Phase::WaitingForCloud);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_wins_over_backoff() {
        let (ctx, _, _) = ctx();
        let n = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        poll_until(
            &ctx,
            "op",
            Duration::from_secs(600),
            Backoff::fixed(Duration::from_secs(30)),
            || {
                let i = n.fetch_add(1, Ordering::SeqCst);
                async move {
                    Ok(if i == 0 {
                        Poll::Pending {
                            status: String::new(),
                            retry_after: Some(Duration::from_secs(2)),
                        }
                    } else {
                        Poll::Done(())
                    })
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_names_the_last_status() {
        let (ctx, _, _) = ctx();
        let e = poll_until(
            &ctx,
            "export task export-i-1",
            Duration::from_secs(60),
            Backoff::fixed(Duration::from_secs(7)),
            || async { Ok(Poll::<()>::pending("converting 42%")) },
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Timeout(_)), "{e}");
        let m = e.to_string();
        assert!(
            m.contains("export task export-i-1 did not finish within 1 min"),
            "{m}"
        );
        assert!(m.contains("last status: converting 42%"), "{m}");
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_stops_a_wait_and_a_hung_step() {
        let (ctx, _, cancel) = ctx();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            c.cancel();
        });
        let started = tokio::time::Instant::now();
        // The step never answers: only the cancel ends the wait.
        let e = poll_until(
            &ctx,
            "op",
            Duration::from_secs(3600),
            Backoff::fixed(Duration::from_secs(1)),
            std::future::pending::<Result<Poll<()>>>,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Cancelled));
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn step_errors_end_the_wait() {
        let (ctx, _, _) = ctx();
        let e = poll_until(
            &ctx,
            "op",
            Duration::from_secs(60),
            Backoff::fixed(Duration::from_secs(1)),
            || async { Err::<Poll<()>, _>(Error::Auth("denied".into())) },
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Auth(_)));
    }
}
