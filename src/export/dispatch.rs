//! One dispatcher task per export delivers progress: serialized (it is the only caller),
//! throttled to `progress_interval_ms`, always on a phase or file change, exactly one terminal
//! call, after which the callback is dropped and never touched again.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ExportShared, ProgressCallback};
use crate::progress::{Phase, Progress, RateMeter};

thread_local! {
    /// The export whose callback runs on this thread right now (0 = none).
    static IN_CALLBACK: Cell<u64> = const { Cell::new(0) };
}

pub(crate) fn in_callback_of(id: u64) -> bool {
    IN_CALLBACK.with(|c| c.get() == id)
}

pub(crate) async fn run(
    shared: Arc<ExportShared>,
    mut cb: Option<ProgressCallback>,
    interval: Duration,
) {
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
            deliver(&shared, &mut cb, &snap);
            last_at = Instant::now();
            last = Some(snap);
            if p.is_terminal() {
                // The callback (and whatever its user data is) is released before waiters wake,
                // so a caller that waited may free its user data.
                drop(cb.take());
                shared.mark_finished();
                return;
            }
        }
        progress.set_rate(meter.sample(progress.transferred()));
        if last_at.elapsed() >= interval {
            let snap = progress.snapshot_with(phase, file);
            if last.as_ref() != Some(&snap) {
                deliver(&shared, &mut cb, &snap);
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

fn deliver(shared: &ExportShared, cb: &mut Option<ProgressCallback>, snap: &Progress) {
    let Some(f) = cb.as_mut() else { return };
    // User code may block (a Go or .NET callback); let the runtime move other tasks off this
    // worker meanwhile.
    let panicked = tokio::task::block_in_place(|| {
        IN_CALLBACK.with(|c| c.set(shared.id));
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| f(snap)));
        IN_CALLBACK.with(|c| c.set(0));
        r.is_err()
    });
    if panicked {
        tracing::error!(
            export = shared.id,
            "a progress callback panicked; it is called no more"
        );
        *cb = None;
    }
}
