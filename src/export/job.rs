//! The life of one export: queued → preparing → (waiting-for-cloud) → downloading → verifying →
//! finalizing → done / failed / cancelled. Cleanup runs on every path under its own deadline,
//! and nothing looks complete unless it is: files are renamed only after every one is verified.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::task::JoinSet;

use super::options::CommonOptions;
use super::{ChecksumResult, ErrorResult, ExportResult, ExportShared, FileResult};
use crate::error::{Error, ExportError, Result};
use crate::progress::Phase;
use crate::providers::{CleanupCtx, Flow, FlowCtx, Outcome, Provider};
use crate::settings::GLOBALS;
use crate::sync::{lock, panic_text};
use crate::transfer::throttle::RateLimiter;
use crate::transfer::{self, Downloaded, TransferCtx, temp_path};

pub(crate) struct Job {
    pub shared: Arc<ExportShared>,
    /// Keeps the provider (its login, its connection pool) alive while the export runs.
    pub _provider: Arc<dyn Provider>,
    pub flow: Box<dyn Flow>,
    pub opts: Arc<CommonOptions>,
}

/// Temp files this run created or used, to remove when `keep_partial` is off.
type Partials = Arc<Mutex<Vec<PathBuf>>>;

struct Done {
    files: Vec<FileResult>,
    extra_files: Vec<String>,
}

impl Job {
    pub async fn run(mut self) {
        let shared = self.shared.clone();
        let progress = shared.progress.clone();
        let partials: Partials = Arc::default();

        let slot = tokio::select! {
            biased;
            _ = shared.cancel.cancelled() => None,
            p = GLOBALS.export_slots.acquire(1) => Some(p),
        };
        let outcome: Result<Done> = match slot {
            None => Err(Error::Cancelled),
            Some(_) => AssertUnwindSafe(self.run_flow(&partials))
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

        // Cleanup on every path, with a fresh deadline that a cancel does not cut short.
        let deadline = self.flow.cleanup_deadline();
        let cctx = CleanupCtx::new(progress.clone(), kind);
        let cleanup = match tokio::time::timeout(
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
        if let Some(c) = &cleanup {
            tracing::warn!(export = shared.id, cleanup_error = %c, "cleanup failed");
        }
        if kind != Outcome::Success && !self.opts.keep_partial {
            for temp in lock(&partials).iter() {
                transfer::discard_partial(temp);
            }
        }

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
            provider: self.flow.result_fields(),
            export_error,
        };
        shared.set_result(result);
    }

    async fn run_flow(&mut self, partials: &Partials) -> Result<Done> {
        let shared = self.shared.clone();
        let progress = shared.progress.clone();
        progress.set_phase(Phase::Preparing);
        let fctx = FlowCtx::new(progress.clone(), shared.cancel.clone());
        let sources = tokio::select! {
            biased;
            _ = shared.cancel.cancelled() => return Err(Error::Cancelled),
            r = self.flow.prepare(&fctx) => r?,
        };
        if sources.is_empty() {
            return Err(Error::NotFound("the source has no file to export".into()));
        }
        let out_dir = self.opts.output_dir.clone();
        let mut dests = Vec::new();
        for s in &sources {
            crate::paths::validate_file_name(&s.name)?;
            let dest = out_dir.join(&s.name);
            if !self.opts.overwrite && dest.exists() {
                return Err(Error::AlreadyExists(format!(
                    "{} exists; set overwrite to replace it",
                    dest.display()
                )));
            }
            dests.push(dest);
        }
        let counters = progress.set_files(
            &sources
                .iter()
                .map(|s| (s.name.clone(), s.size_hint.unwrap_or(0)))
                .collect::<Vec<_>>(),
        );
        progress.set_phase(Phase::Downloading);

        let tctx = Arc::new(TransferCtx {
            opts: Arc::new(self.opts.transfer.clone()),
            limiter: Arc::new(RateLimiter::new(self.opts.transfer.max_bytes_per_second)),
            progress: progress.clone(),
            // A child: the first file that fails stops the others, which then record what
            // they have on disk for the next run.
            cancel: shared.cancel.child_token(),
        });
        let mut pending = sources.into_iter().zip(dests).zip(counters).enumerate();
        let mut set = JoinSet::new();
        let mut done: Vec<Option<Downloaded>> = Vec::new();
        let keep_alive = self.flow.keep_alive_interval();
        let mut ticker = tokio::time::interval(keep_alive.unwrap_or(Duration::from_secs(3600)));
        ticker.tick().await;
        let mut failure = None;
        let parallel = self
            .flow
            .parallel_files()
            .unwrap_or(self.opts.parallel_files)
            .max(1);
        loop {
            while failure.is_none() && set.len() < parallel {
                let Some((i, ((src, dest), counter))) = pending.next() else {
                    break;
                };
                done.push(None);
                if !matches!(src.kind, transfer::SourceKind::Written(_)) {
                    lock(partials).push(temp_path(&dest));
                }
                let (tctx, src) = (tctx.clone(), Arc::new(src));
                progress.set_current_file(i as u32 + 1);
                set.spawn(async move { (i, transfer::fetch(&tctx, &src, &dest, &counter).await) });
            }
            if set.is_empty() {
                break;
            }
            tokio::select! {
                joined = set.join_next() => {
                    let Some(joined) = joined else { break };
                    match joined {
                        Ok((i, Ok(d))) => done[i] = Some(d),
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
                _ = ticker.tick(), if keep_alive.is_some() => {
                    let p = progress.snapshot();
                    let pct = (p.bytes_done * 100).checked_div(p.bytes_total).unwrap_or(0).min(100) as u8;
                    if let Err(e) = self.flow.keep_alive(pct).await
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
        let files: Vec<Downloaded> = done.into_iter().flatten().collect();

        progress.set_phase(Phase::Verifying);
        let mut verified = Vec::new();
        for f in &files {
            if let Some(sum) = f.checksum.clone() {
                let (temp, name) = (f.temp.clone(), f.name.clone());
                let cancel = shared.cancel.clone();
                let check =
                    tokio::task::spawn_blocking(move || sum.verify_file(&temp, &name, &cancel));
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
        progress.set_phase(Phase::Finalizing);
        let after = self.flow.after_download(&fctx, &files, &out_dir).await?;
        for (temp, _) in &after.extra {
            lock(partials).push(temp.clone());
        }
        let overwrite = self.opts.overwrite;
        let mut to_rename: Vec<(PathBuf, PathBuf)> = Vec::new();
        if !after.consumed {
            to_rename.extend(files.iter().map(|f| (f.temp.clone(), f.dest.clone())));
        }
        to_rename.extend(
            after
                .extra
                .iter()
                .map(|(t, name)| (t.clone(), out_dir.join(name))),
        );
        let consumed: Vec<PathBuf> = if after.consumed {
            files.iter().map(|f| f.temp.clone()).collect()
        } else {
            Vec::new()
        };
        let dir = out_dir.clone();
        tokio::task::spawn_blocking(move || {
            finalize(&to_rename, &dir, overwrite)?;
            for temp in consumed {
                transfer::discard_partial(&temp);
            }
            Ok::<_, Error>(())
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        // When the downloads were packed (an OVA), their bytes live in the first extra file.
        let packed_into = after
            .consumed
            .then(|| after.extra.first().map(|(_, n)| out_dir.join(n)))
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
                })
                .collect(),
            extra_files: after.extra.into_iter().map(|(_, n)| n).collect(),
        })
    }
}

/// Renames every verified temp file to its final name, drops the journals, and syncs the folder
/// so the renames survive a crash.
fn finalize(files: &[(PathBuf, PathBuf)], dir: &std::path::Path, overwrite: bool) -> Result<()> {
    for (temp, dest) in files {
        std::fs::File::open(temp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(temp, "cannot sync", e))?;
        if !overwrite && dest.exists() {
            return Err(Error::AlreadyExists(format!(
                "{} appeared during the export",
                dest.display()
            )));
        }
        std::fs::rename(temp, dest).map_err(|e| Error::io(dest, "cannot rename into", e))?;
        transfer::discard_journal(temp);
    }
    // The renames survive a crash only once the folder itself is synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
