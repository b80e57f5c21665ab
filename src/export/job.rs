//! The life of one export: queued → preparing → (waiting-for-cloud) → downloading → verifying →
//! finalizing → done / failed / cancelled. Cleanup runs on every path under its own deadline,
//! and nothing looks complete unless it is: files are renamed only after every one is verified.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures_util::FutureExt as _;
use tokio::task::JoinSet;

use super::finalize::{Origin, Rename, rename_into_place};
use super::options::CommonOptions;
use super::queue::SlotQueue;
use super::{ChecksumResult, ErrorResult, ExportResult, ExportShared, FileResult};
use crate::error::{Error, ExportError, Result};
use crate::progress::Phase;
use crate::seam::{CleanupCtx, Flow, FlowCtx, Ledger, Outcome, Provider};
use crate::sync::{lock, panic_text};
use crate::transfer::outdir::DestLock;
use crate::transfer::throttle::RateLimiter;
use crate::transfer::{self, Downloaded, FileSource, OutDir, TransferCtx};

/// Exports running at once in this process (`max_concurrent_exports`); the rest wait in phase
/// queued, highest `priority` first.
pub(crate) static EXPORT_SLOTS: std::sync::LazyLock<SlotQueue> =
    std::sync::LazyLock::new(|| SlotQueue::new(DEFAULT_MAX_CONCURRENT_EXPORTS));

/// Exports running at once, by default.
pub(crate) const DEFAULT_MAX_CONCURRENT_EXPORTS: u64 = 16;

/// How long a cancelled `prepare` may take to reach a point where it stops by itself (a cloud
/// API call has its own deadline, 60 s by default).
const CREATE_GRACE: std::time::Duration = std::time::Duration::from_secs(90);

pub(crate) struct Job {
    pub shared: Arc<ExportShared>,
    /// Keeps the provider (its login, its connection pool) alive while the export runs.
    pub _provider: Arc<dyn Provider>,
    pub flow: Box<dyn Flow>,
    pub opts: Arc<CommonOptions>,
}

/// What this run holds in the output folder: the folder, the destinations it locked, and the
/// names whose temp files it made (removed when `keep_partial` is off and the export failed).
#[derive(Default)]
struct Claims {
    dir: Option<Arc<OutDir>>,
    locks: Vec<DestLock>,
    temps: Vec<String>,
    /// Temp names of provider files (descriptor, manifest, OVA).
    extra_temps: Vec<String>,
}

type Partials = Arc<Mutex<Claims>>;

struct Done {
    files: Vec<FileResult>,
    extra_files: Vec<String>,
}

impl Job {
    /// Runs the export once `ticket` (its place in the slot queue, taken when it was started)
    /// comes up.
    pub async fn run(mut self, ticket: super::queue::Ticket) {
        let shared = self.shared.clone();
        let progress = shared.progress.clone();
        let partials: Partials = Arc::default();
        let ledger: Arc<Ledger> = Arc::default();

        let slot = tokio::select! {
            biased;
            _ = shared.cancel.cancelled() => None,
            p = ticket.wait() => Some(p),
        };
        if slot.is_some() {
            tracing::info!(export = shared.id, "export started");
        }
        let outcome: Result<Done> = match slot {
            None => Err(Error::Cancelled),
            Some(_) => AssertUnwindSafe(self.run_flow(&partials, &ledger))
                .catch_unwind()
                .await
                .unwrap_or_else(|p| {
                    Err(Error::Internal(format!(
                        "export task panicked: {}",
                        panic_text(&*p)
                    )))
                }),
        };
        let failed_in = progress.phase();
        let cancelled = outcome.is_err() && shared.cancel.is_cancelled();
        let kind = match (&outcome, cancelled) {
            (Ok(_), _) => Outcome::Success,
            (Err(_), true) => Outcome::Cancelled,
            (Err(_), false) => Outcome::Failure,
        };

        let (cleanup, steps) = self.cleanup(kind, &ledger).await;
        self.release(&partials, kind);

        let p = progress.snapshot();
        let (fetched, resumed) = match &outcome {
            Ok(d) => (
                d.files.iter().map(|f| f.fetched_bytes).sum(),
                d.files.iter().map(|f| f.resumed_bytes).sum(),
            ),
            Err(_) => (progress.transferred(), 0),
        };
        let export_error = match &outcome {
            Ok(_) => None,
            Err(_) if cancelled => Some(ExportError::cancelled(failed_in)),
            Err(e) => Some(ExportError::from_error(e, failed_in)),
        };
        let (files, extra_files) = match outcome {
            Ok(d) => (d.files, d.extra_files),
            Err(_) => (Vec::new(), Vec::new()),
        };
        let result = ExportResult {
            status: match kind {
                Outcome::Success => "done",
                Outcome::Cancelled => "cancelled",
                Outcome::Failure => "failed",
            },
            files,
            extra_files,
            bytes_total: p.bytes_total,
            bytes_fetched: fetched,
            bytes_resumed: resumed,
            elapsed_ms: shared.started.elapsed().as_millis() as u64,
            error: export_error.as_ref().map(|e| ErrorResult {
                kind: e.kind.as_str(),
                message: e.message.clone(),
                phase: e.phase.as_str(),
            }),
            cleanup_error: cleanup,
            cleanup: steps,
            provider: self.flow.result_fields(),
            export_error,
        };
        tracing::info!(
            export = shared.id,
            status = result.status,
            bytes_total = result.bytes_total,
            bytes_fetched = result.bytes_fetched,
            bytes_resumed = result.bytes_resumed,
            elapsed_ms = result.elapsed_ms,
            error = result.error.as_ref().map(|e| e.message.as_str()),
            "export ended"
        );
        shared.set_result(result);
    }

    /// Cleanup on every path, with a fresh deadline that a cancel does not cut short: the
    /// flow's own cleanup, then the ledger's undo steps (newest first) in what is left. The
    /// error to report (if any) and every ledger step's outcome.
    async fn cleanup(
        &mut self,
        kind: Outcome,
        ledger: &Ledger,
    ) -> (Option<String>, Vec<crate::seam::ledger::CleanupStep>) {
        let shared = self.shared.clone();
        let progress = shared.progress.clone();
        let deadline = self.flow.cleanup_deadline();
        let cleanup_started = std::time::Instant::now();
        let cctx = CleanupCtx::new(progress.clone(), kind);
        let mut cleanup = match tokio::time::timeout(
            deadline,
            AssertUnwindSafe(self.flow.cleanup(&cctx)).catch_unwind(),
        )
        .await
        {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(e))) => Some(e.to_string()),
            Ok(Err(p)) => Some(format!("cleanup panicked: {}", panic_text(&*p))),
            Err(_) => Some(format!("cleanup did not finish within {deadline:?}")),
        };
        let steps = ledger
            .run(
                kind == Outcome::Success,
                &progress,
                deadline.saturating_sub(cleanup_started.elapsed()),
            )
            .await;
        let failed_steps: Vec<String> = steps
            .iter()
            .filter_map(|s| s.error.as_ref().map(|e| format!("{}: {e}", s.step)))
            .collect();
        if !failed_steps.is_empty() {
            let mut all: Vec<String> = cleanup.into_iter().collect();
            all.extend(failed_steps);
            cleanup = Some(all.join("; "));
        }
        // What a cloud said about a failed undo reaches callers' terminals: escaped as errors are.
        let cleanup = cleanup.map(|c| crate::printable::printable(&c).into_owned());
        if let Some(c) = &cleanup {
            tracing::warn!(export = shared.id, cleanup_error = %c, "cleanup failed");
        }
        (cleanup, steps)
    }

    /// Gives back what this run held in the output folder: after a failure or cancel, the
    /// provider's half-made extra files (and the temp files unless `keep_partial`); the
    /// destination locks always.
    fn release(&self, partials: &Partials, kind: Outcome) {
        {
            let mut claims = lock(partials);
            if let Some(dir) = claims.dir.clone() {
                if kind != Outcome::Success {
                    // Provider files are made whole in one step: a partial one is worthless.
                    for t in &claims.extra_temps {
                        dir.remove(t);
                    }
                    if !self.opts.keep_partial {
                        for name in &claims.temps {
                            transfer::discard_partial(&dir, name);
                        }
                    }
                }
                for l in claims.locks.drain(..) {
                    dir.unlock(l);
                }
            }
        }
    }

    /// claim → download → verify → finalize; each step returns what the next needs.
    async fn run_flow(&mut self, partials: &Partials, ledger: &Arc<Ledger>) -> Result<Done> {
        let shared = self.shared.clone();
        let progress = shared.progress.clone();
        progress.set_phase(Phase::Preparing);
        let fctx =
            FlowCtx::new(progress.clone(), shared.cancel.clone()).with_ledger(ledger.clone());
        let sources = self.prepare(&fctx).await?;
        let dir = self.claim(&sources, partials).await?;
        let files = self.download(sources, &dir, partials).await?;
        progress.set_phase(Phase::Verifying);
        let verified = self.verify(&files).await?;
        progress.set_phase(Phase::Finalizing);
        self.finalize(&fctx, files, verified, &dir, partials).await
    }

    /// The flow's cloud side, up to the files to fetch.
    async fn prepare(&mut self, fctx: &FlowCtx) -> Result<Vec<FileSource>> {
        let shared = self.shared.clone();
        let sources = {
            let prepare = self.flow.prepare(fctx);
            tokio::pin!(prepare);
            tokio::select! {
                r = &mut prepare => r?,
                _ = shared.cancel.cancelled() => {
                    // A create call in flight (an export task, a lease, a grant) must finish,
                    // so that its id is known and cleanup can undo it; the flow sees the
                    // cancel at its next wait and returns. Only a flow stuck past the grace
                    // is dropped.
                    let _ = tokio::time::timeout(CREATE_GRACE, &mut prepare).await;
                    return Err(Error::Cancelled);
                }
            }
        };
        if sources.is_empty() {
            return Err(Error::NotFound("the source has no file to export".into()));
        }
        Ok(sources)
    }

    /// Opens the output folder and claims every final name of the export (files and the
    /// provider's extras) before a byte moves: valid, distinct, free (unless overwrite), and
    /// locked against a second export of the same destination.
    async fn claim(&mut self, sources: &[FileSource], partials: &Partials) -> Result<Arc<OutDir>> {
        let dir = {
            let (path, mode) = (self.opts.output_dir.clone(), self.opts.file_mode()?);
            Arc::new(
                tokio::task::spawn_blocking(move || OutDir::open(&path, mode))
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))??,
            )
        };
        lock(partials).dir = Some(dir.clone());
        let mut names: Vec<String> = sources.iter().map(|s| s.name.clone()).collect();
        let extras = self.flow.extra_names();
        lock(partials).extra_temps = extras
            .iter()
            .map(|n| transfer::TempFile::for_name(&dir, n).name)
            .collect();
        names.extend(extras);
        let mut seen = std::collections::HashSet::new();
        for name in &names {
            crate::paths::validate_file_name(name)?;
            if !seen.insert(name.to_lowercase()) {
                return Err(Error::InvalidArgument(format!(
                    "two files of this export would be written as {name:?}"
                )));
            }
            if !self.opts.overwrite && dir.exists(name) {
                return Err(Error::AlreadyExists(format!(
                    "{} exists; set overwrite to replace it",
                    dir.join(name).display()
                )));
            }
            let l = dir.lock(name)?;
            lock(partials).locks.push(l);
        }
        Ok(dir)
    }

    /// Downloads every file, `parallel_files` at a time, keeping the flow's cloud side alive;
    /// the first failure stops the others.
    async fn download(
        &mut self,
        sources: Vec<FileSource>,
        dir: &Arc<OutDir>,
        partials: &Partials,
    ) -> Result<Vec<Downloaded>> {
        let shared = self.shared.clone();
        let progress = shared.progress.clone();
        let counters = progress.set_files(
            &sources
                .iter()
                .map(|s| (s.name.clone(), s.size_hint.unwrap_or(0)))
                .collect::<Vec<_>>(),
        );
        progress.set_phase(Phase::Downloading);

        let tctx = Arc::new(TransferCtx {
            dir: dir.clone(),
            opts: Arc::new(self.opts.transfer.clone()),
            limiter: Arc::new(RateLimiter::new(self.opts.transfer.max_bytes_per_second)),
            progress: progress.clone(),
            // A child: the first file that fails stops the others, which then record what
            // they have on disk for the next run.
            cancel: shared.cancel.child_token(),
        });
        let mut pending = sources.into_iter().zip(counters).enumerate();
        let mut set = JoinSet::new();
        let mut done: Vec<Option<Downloaded>> = Vec::new();
        // Only flows that keep something alive (an NFC lease) get a ticker.
        let mut keep_alive = self
            .flow
            .keep_alive_interval()
            .map(|every| tokio::time::interval_at(tokio::time::Instant::now() + every, every));
        let mut failure = None;
        let parallel = self
            .flow
            .parallel_files()
            .unwrap_or(self.opts.parallel_files)
            .max(1);
        loop {
            while failure.is_none() && set.len() < parallel {
                let Some((i, (src, counter))) = pending.next() else {
                    break;
                };
                done.push(None);
                if !matches!(src.kind, transfer::SourceKind::Written(_)) {
                    lock(partials).temps.push(src.name.clone());
                }
                let (tctx, src) = (tctx.clone(), Arc::new(src));
                progress.set_current_file(i as u32 + 1);
                set.spawn(
                    async move { (i, transfer::fetch_or_absent(&tctx, &src, &counter).await) },
                );
            }
            if set.is_empty() {
                break;
            }
            tokio::select! {
                joined = set.join_next() => {
                    let Some(joined) = joined else { break };
                    match joined {
                        Ok((i, Ok(d))) => done[i] = d,
                        Ok((_, Err(e))) => {
                            if failure.is_none() {
                                tctx.cancel.cancel();
                                failure = Some(e);
                            }
                        }
                        Err(e) if e.is_cancelled() => {}
                        Err(e) => {
                            if failure.is_none() {
                                tctx.cancel.cancel();
                                failure = Some(Error::Internal(format!("a download task failed: {e}")));
                            }
                        }
                    }
                }
                _ = async { keep_alive.as_mut().expect("guarded").tick().await }, if keep_alive.is_some() => {
                    let p = progress.snapshot();
                    let pct = (p.bytes_done * 100).checked_div(p.bytes_total).unwrap_or(0).min(100) as u8;
                    let kept = tokio::select! {
                        biased;
                        _ = shared.cancel.cancelled() => Ok(()),
                        r = self.flow.keep_alive(pct) => r,
                    };
                    if let Err(e) = kept
                        && failure.is_none()
                    {
                        tctx.cancel.cancel();
                        failure = Some(e);
                    }
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(done.into_iter().flatten().collect())
    }

    /// Checks every file that has a checksum (read back from disk, cancellable).
    async fn verify(&mut self, files: &[Downloaded]) -> Result<Vec<Option<ChecksumResult>>> {
        let shared = &self.shared;
        let mut verified = Vec::new();
        for f in files {
            if let Some(sum) = f.checksum.clone() {
                let (file, temp, name) = (f.file.clone(), f.temp.clone(), f.name.clone());
                let cancel = shared.cancel.clone();
                let check = tokio::task::spawn_blocking(move || {
                    sum.verify_file(&file, &temp, &name, &cancel)
                });
                tokio::select! {
                    biased;
                    _ = shared.cancel.cancelled() => return Err(Error::Cancelled),
                    r = check => r.map_err(|e| Error::Internal(e.to_string()))??,
                }
            }
            verified.push(f.checksum.as_ref().map(|c| ChecksumResult {
                algorithm: c.algorithm(),
                value: c.hex(),
            }));
        }
        Ok(verified)
    }

    /// The provider's extra files, then every temp file renamed into place, and the result.
    async fn finalize(
        &mut self,
        fctx: &FlowCtx,
        files: Vec<Downloaded>,
        verified: Vec<Option<ChecksumResult>>,
        dir: &Arc<OutDir>,
        partials: &Partials,
    ) -> Result<Done> {
        let shared = self.shared.clone();
        let after = tokio::select! {
            biased;
            _ = shared.cancel.cancelled() => return Err(Error::Cancelled),
            r = self.flow.after_download(fctx, &files, dir) => r?,
        };
        for (temp, _) in &after.extra {
            let mut claims = lock(partials);
            if !claims.extra_temps.contains(temp) {
                claims.extra_temps.push(temp.clone());
            }
        }
        let overwrite = self.opts.overwrite;
        let mut to_rename: Vec<Rename> = Vec::new();
        if !after.consumed {
            to_rename.extend(files.iter().map(|f| Rename {
                file: Some(f.file.clone()),
                from: match &f.temp_name {
                    Some(t) => Origin::Temp(t.clone()),
                    None => Origin::Path(f.temp.clone()),
                },
                to: f.name.clone(),
            }));
        }
        to_rename.extend(after.extra.iter().map(|(t, name)| Rename {
            file: None,
            from: Origin::Temp(t.clone()),
            to: name.clone(),
        }));
        let consumed: Vec<String> = if after.consumed {
            files.iter().map(|f| f.name.clone()).collect()
        } else {
            Vec::new()
        };
        let d = dir.clone();
        tokio::task::spawn_blocking(move || {
            rename_into_place(&d, &to_rename, overwrite)?;
            for name in consumed {
                transfer::discard_partial(&d, &name);
            }
            Ok::<_, Error>(())
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        // When the downloads were packed (an OVA), their bytes live in the first extra file.
        let packed_into = after
            .consumed
            .then(|| after.extra.first().map(|(_, n)| dir.join(n)))
            .flatten();

        Ok(Done {
            files: files
                .into_iter()
                .zip(verified)
                .map(|(f, checksum)| FileResult {
                    name: f.name,
                    path: packed_into.clone().unwrap_or(f.dest),
                    size: f.size,
                    checksum,
                    fetched_bytes: f.fetched,
                    resumed_bytes: f.resumed,
                    retries: f.retries,
                    size_verified: f.size_verified,
                })
                .collect(),
            extra_files: after.extra.into_iter().map(|(_, n)| n).collect(),
        })
    }
}
