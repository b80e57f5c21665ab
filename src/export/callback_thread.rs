//! The thread that runs one export's progress callback, and ends with it.
//!
//! A callback is user code, often a foreign runtime's (Go's cgo, .NET's reverse P/Invoke). Such
//! runtimes adopt the native thread that calls them, and some wait for every thread they adopted
//! before the process may exit: Mono never exited while the library's long-lived tokio workers
//! had delivered a callback. So a callback never runs on a runtime worker: each export that has
//! one gets its own plain thread, which runs the callback one call at a time and ends (dropping
//! the callback there) right after the terminal call. An adopted thread is thus gone by the
//! time `wait` returns. It also keeps a callback that blocks off the runtime's workers.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::thread::JoinHandle;

use super::ProgressCallback;
use super::dispatch::IN_CALLBACK;
use crate::progress::Progress;

pub(super) struct CallbackThread {
    calls: Option<mpsc::Sender<Progress>>,
    /// One answer per call: whether the callback panicked.
    answers: tokio::sync::mpsc::UnboundedReceiver<bool>,
    thread: Option<JoinHandle<()>>,
}

impl CallbackThread {
    /// Starts the thread for the export `id`; gives the callback back when no thread can be made.
    pub(super) fn start(
        id: u64,
        cb: ProgressCallback,
    ) -> Result<CallbackThread, (ProgressCallback, std::io::Error)> {
        let (calls, inbox) = mpsc::channel::<Progress>();
        let (answer, answers) = tokio::sync::mpsc::unbounded_channel();
        // The callback moves into the thread only once it exists: a failed spawn hands it back.
        let (give, take) = mpsc::sync_channel::<ProgressCallback>(1);
        let spawned = std::thread::Builder::new()
            .name("hypersdk-callback".into())
            .spawn(move || {
                crate::runtime::block_sigpipe();
                let Ok(mut cb) = take.recv() else { return };
                IN_CALLBACK.with(|c| c.set(id));
                for snap in inbox {
                    let panicked =
                        std::panic::catch_unwind(AssertUnwindSafe(|| cb(&snap))).is_err();
                    if answer.send(panicked).is_err() || panicked {
                        break;
                    }
                }
                // The callback (and whatever its user data is) is dropped here, on this thread,
                // before the thread ends and the dispatcher's join returns.
                drop(cb);
                IN_CALLBACK.with(|c| c.set(0));
            });
        match spawned {
            Ok(thread) => {
                give.send(cb)
                    .expect("the callback thread waits for its callback");
                Ok(CallbackThread {
                    calls: Some(calls),
                    answers,
                    thread: Some(thread),
                })
            }
            // The thread never ran: the callback is still ours.
            Err(e) => Err((cb, e)),
        }
    }

    /// Runs the callback with `snap` and waits until it returned. `false` when it panicked (it
    /// is called no more).
    pub(super) async fn call(&mut self, snap: &Progress) -> bool {
        let Some(calls) = &self.calls else {
            return false;
        };
        if calls.send(snap.clone()).is_err() {
            self.calls = None;
            return false;
        }
        match self.answers.recv().await {
            Some(false) => true,
            _ => {
                self.calls = None;
                false
            }
        }
    }

    /// Ends the thread (the callback is dropped on it) and waits until it has ended.
    pub(super) async fn finish(mut self) {
        drop(self.calls.take());
        if let Some(thread) = self.thread.take() {
            // Joining blocks; on the blocking pool, not a runtime worker.
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}
