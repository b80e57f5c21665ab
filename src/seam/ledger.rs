//! The cleanup ledger: a flow registers an undo step the moment a create call returns
//! (`cancel export task t`, `delete snapshot s`, `revoke grant g`), and the engine runs the
//! ledger in reverse on every outcome — success, failure, cancel — under cleanup's own
//! deadline. Each step is retried through passing trouble (a reset connection, a 5xx) for up
//! to [`CLEANUP_RETRY_FOR`], "not found" counts as done (someone else removed it), each step
//! is shown as the progress message, and every step's outcome goes into the result JSON
//! (`cleanup: [{step, ok, error}]`).
//!
//! Why a ledger instead of each flow's own flags: a flow that forgets to clear a flag on one
//! path leaks a cloud resource on that path; a step registered when the thing exists is undone
//! on every path by construction, and a flow that removes the thing itself says so
//! ([`Ledger::forget`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::FlowCtx;
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::progress::ProgressState;
use crate::sync::lock;

/// How long one cleanup step is retried through connection trouble: a user who cancels during
/// a short outage would otherwise leave the task running in the cloud.
pub(crate) const CLEANUP_RETRY_FOR: Duration = Duration::from_secs(60);

/// When a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    /// On every outcome (a temporary image, a grant).
    Always,
    /// Unless the export succeeded (cancel a task that a success found completed anyway).
    UnlessSuccess,
    /// Only after a success (delete the cloud copy once the local one is verified).
    OnSuccess,
}

/// A registered step, to [`forget`](Ledger::forget) when the flow undid it itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StepId(u64);

/// An undo step gets a context for the shared poller (its messages show as the export's
/// progress message; its cancel never fires: cleanup runs to its end or to its deadline).
type Undo = Box<dyn FnMut(FlowCtx) -> BoxFuture<'static, Result<()>> + Send>;

struct Entry {
    id: StepId,
    what: String,
    when: When,
    undo: Undo,
}

/// One step's outcome, as the result JSON reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CleanupStep {
    /// What the step undid ("cancel export task export-i-1").
    pub step: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The undo steps of one export.
#[derive(Default)]
pub(crate) struct Ledger {
    entries: Mutex<Vec<Entry>>,
    next: std::sync::atomic::AtomicU64,
}

impl Ledger {
    /// Registers `undo` (called again for each retry, so it builds its request afresh).
    pub fn add<F, Fut>(&self, what: impl Into<String>, when: When, mut undo: F) -> StepId
    where
        F: FnMut(FlowCtx) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<()>> + Send + 'static,
    {
        let id = StepId(self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        lock(&self.entries).push(Entry {
            id,
            what: what.into(),
            when,
            undo: Box::new(move |ctx| Box::pin(undo(ctx))),
        });
        id
    }

    /// The flow undid (or the cloud finished) this step's thing itself: nothing left to do.
    pub fn forget(&self, id: StepId) {
        lock(&self.entries).retain(|e| e.id != id);
    }

    /// Runs the steps that apply to `success`, newest first, within `deadline`; each step's
    /// outcome in run order. A step the deadline cut off, and every step after it, is reported
    /// as not done.
    pub(crate) async fn run(
        &self,
        success: bool,
        progress: &Arc<ProgressState>,
        deadline: Duration,
    ) -> Vec<CleanupStep> {
        let entries: Vec<Entry> = std::mem::take(&mut *lock(&self.entries));
        let end = Instant::now() + deadline;
        let mut out = Vec::new();
        for mut e in entries.into_iter().rev() {
            let applies = match e.when {
                When::Always => true,
                When::UnlessSuccess => !success,
                When::OnSuccess => success,
            };
            if !applies {
                continue;
            }
            progress.set_message(&e.what);
            let left = end.saturating_duration_since(Instant::now());
            // A panicking step is a failed step, not a lost export result.
            let step = std::panic::AssertUnwindSafe(retry_step(&e.what, progress, &mut e.undo));
            let r = match tokio::time::timeout(left, futures_util::FutureExt::catch_unwind(step))
                .await
            {
                Ok(Ok(r)) => r,
                Ok(Err(p)) => Err(Error::Internal(format!(
                    "cleanup step panicked: {}",
                    crate::sync::panic_text(&*p)
                ))),
                Err(_) => Err(Error::Timeout(format!(
                    "cleanup did not finish within {deadline:?}"
                ))),
            };
            match r {
                Ok(()) => {
                    tracing::info!(step = %e.what, "cleanup step done");
                    out.push(CleanupStep {
                        step: e.what,
                        ok: true,
                        error: None,
                    })
                }
                Err(err) => {
                    tracing::warn!(step = %e.what, error = %err, "cleanup step failed");
                    out.push(CleanupStep {
                        step: e.what,
                        ok: false,
                        error: Some(crate::printable::printable(&err.to_string()).into_owned()),
                    });
                }
            }
        }
        out
    }
}

/// One step, again while it fails for a reason that may pass, for up to
/// [`CLEANUP_RETRY_FOR`]; "not found" is done.
async fn retry_step(what: &str, progress: &Arc<ProgressState>, undo: &mut Undo) -> Result<()> {
    let ctx = FlowCtx::new(progress.clone(), CancellationToken::new());
    match retry_cleanup(what, progress, || undo(ctx.clone())).await {
        Err(Error::NotFound(_)) => Ok(()),
        r => r,
    }
}

/// The retry of cleanup calls: the library's one rule
/// (`transfer::retry`), from 0.5 s doubling to 8 s, for up to [`CLEANUP_RETRY_FOR`]; each
/// retry shows as the progress message.
async fn retry_cleanup<T, F, Fut>(what: &str, progress: &ProgressState, mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e)
                if crate::transfer::retry::is_retryable(&e)
                    && started.elapsed() < CLEANUP_RETRY_FOR =>
            {
                let wait = crate::transfer::retry::backoff(Duration::from_millis(500), attempt)
                    .min(Duration::from_secs(8));
                attempt += 1;
                progress.set_message(&format!("{what}: {e}; trying again"));
                tracing::warn!(attempt, error = %e, "{what}: cleanup call failed, trying again");
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn runs_in_reverse_by_outcome_retrying_and_treating_not_found_as_done() {
        let l = Ledger::default();
        let order = Arc::new(Mutex::new(Vec::new()));
        let o = order.clone();
        l.add("first", When::Always, move |_| {
            let o = o.clone();
            async move {
                lock(&o).push("first");
                Ok(())
            }
        });
        let tries = Arc::new(AtomicU32::new(0));
        let (o, t) = (order.clone(), tries.clone());
        l.add("flaky", When::UnlessSuccess, move |_| {
            let (o, t) = (o.clone(), t.clone());
            async move {
                if t.fetch_add(1, Ordering::SeqCst) < 2 {
                    return Err(Error::Network("reset".into()));
                }
                lock(&o).push("flaky");
                Ok(())
            }
        });
        l.add("on success", When::OnSuccess, |_| async {
            panic!("must not run on failure")
        });
        l.add("gone", When::Always, |_| async {
            Err(Error::NotFound("no such task".into()))
        });
        let o = order.clone();
        let forgotten = l.add("forgotten", When::Always, move |_| {
            let o = o.clone();
            async move {
                lock(&o).push("forgotten");
                Ok(())
            }
        });
        l.forget(forgotten);
        l.add("denied", When::Always, |_| async {
            Err(Error::Auth("no right to delete".into()))
        });
        let p = Arc::new(ProgressState::new());
        let steps = l.run(false, &p, Duration::from_secs(120)).await;
        let names: Vec<(&str, bool)> = steps.iter().map(|s| (s.step.as_str(), s.ok)).collect();
        assert_eq!(
            names,
            [
                ("denied", false),
                ("gone", true),
                ("flaky", true),
                ("first", true)
            ]
        );
        assert_eq!(*lock(&order), ["flaky", "first"]);
        assert_eq!(tries.load(Ordering::SeqCst), 3);
        assert!(steps[0].error.as_deref().unwrap().contains("no right"));
        // Run once: a second run has nothing left.
        assert!(l.run(false, &p, Duration::from_secs(1)).await.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_ends_a_hanging_step_a_panic_is_a_failed_step_and_success_skips_unless_success_steps()
     {
        let l = Ledger::default();
        l.add("undo on failure", When::UnlessSuccess, |_| async {
            panic!("must not run on success")
        });
        l.add("hangs", When::Always, |_| {
            std::future::pending::<Result<()>>()
        });
        l.add("panics", When::Always, |_| async {
            panic!("a bug in an undo step")
        });
        let p = Arc::new(ProgressState::new());
        let steps = l.run(true, &p, Duration::from_secs(5)).await;
        assert_eq!(steps.len(), 2);
        assert!(!steps[0].ok && steps[0].error.as_deref().unwrap().contains("panicked"));
        assert!(!steps[1].ok);
        assert!(steps[1].error.as_deref().unwrap().contains("within"));
    }
}
