//! One dispatcher task per export delivers progress: serialized (it is the only caller),
//! throttled to `progress_interval_ms`, always on a phase or file change, exactly one terminal
//! call, after which the callback is dropped and never touched again. The callback itself runs
//! on the export's own thread (callback_thread.rs), never on a runtime worker.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::callback_thread::CallbackThread;
use super::{ExportShared, ProgressCallback};
use crate::progress::{Phase, Progress, RateMeter};

thread_local! {
    /// The export whose callback runs on this thread right now (0 = none).
    pub(super) static IN_CALLBACK: Cell<u64> = const { Cell::new(0) };
}

pub(crate) fn in_callback_of(id: u64) -> bool {
    IN_CALLBACK.with(|c| c.get() == id)
}

pub(crate) async fn run(
    shared: Arc<ExportShared>,
    cb: Option<ProgressCallback>,
    interval: Duration,
) {
    let mut cb = Caller::new(shared.id, cb);
    let progress = shared.progress.clone();
    let mut meter = RateMeter::new(progress.transferred());
    let mut last: Option<Progress> = None;
    let mut last_at = Instant::now();
    let (mut phase, mut file) = (Phase::Queued, 0u32);
    loop {
        while let Some((p, f)) = progress.next_event() {
            phase = p;
            file = f;
            let snap = progress.snapshot_with(p, f);
            cb.deliver(&shared, &snap).await;
            last_at = Instant::now();
            last = Some(snap);
            if p.is_terminal() {
                // The callback (and whatever its user data is) is released before waiters wake,
                // so a caller that waited may free its user data.
                cb.finish().await;
                shared.mark_finished();
                return;
            }
        }
        progress.set_rate(meter.sample(progress.transferred()));
        if last_at.elapsed() >= interval {
            let snap = progress.snapshot_with(phase, file);
            if last.as_ref() != Some(&snap) {
                cb.deliver(&shared, &snap).await;
                last_at = Instant::now();
                last = Some(snap);
            }
        }
        let wait = interval
            .saturating_sub(last_at.elapsed())
            .max(Duration::from_millis(1));
        tokio::select! {
            _ = progress.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Where the callback runs: its own thread, or (when no thread could be made) inline.
enum Caller {
    None,
    Thread(CallbackThread),
    Inline(ProgressCallback),
}

impl Caller {
    fn new(id: u64, cb: Option<ProgressCallback>) -> Caller {
        let Some(cb) = cb else { return Caller::None };
        match CallbackThread::start(id, cb) {
            Ok(t) => Caller::Thread(t),
            Err((cb, e)) => {
                tracing::warn!(
                    export = id,
                    "no thread for the progress callback ({e}); it runs on a library worker"
                );
                Caller::Inline(cb)
            }
        }
    }

    async fn deliver(&mut self, shared: &ExportShared, snap: &Progress) {
        let ok = match self {
            Caller::None => return,
            Caller::Thread(t) => t.call(snap).await,
            Caller::Inline(f) => {
                // User code may block; let the runtime move other tasks off this worker.
                tokio::task::block_in_place(|| {
                    IN_CALLBACK.with(|c| c.set(shared.id));
                    let r = std::panic::catch_unwind(AssertUnwindSafe(|| f(snap)));
                    IN_CALLBACK.with(|c| c.set(0));
                    r.is_ok()
                })
            }
        };
        if !ok {
            tracing::error!(
                export = shared.id,
                "a progress callback panicked; it is called no more"
            );
            std::mem::replace(self, Caller::None).finish().await;
        }
    }

    /// Drops the callback (on its thread, which then ends) before waiters wake, so a caller
    /// that waited may free its user data.
    async fn finish(self) {
        if let Caller::Thread(t) = self {
            t.finish().await;
        }
    }
}
