//! Parts in parallel into a preallocated sparse temp file, with a resume journal; for any
//! source that can hand out the bytes of `[start, end)` ([`RangeFetch`]: HTTP ranges, a local
//! file). Parts are cut as they start, large while much is left and small at the end ([`Parts`]).
//! Each part flushes what it received when it stops for any reason, and the journal records
//! ranges only after their bytes are synced, so nothing received is fetched twice and nothing
//! claimed is missing after a crash.
//!
//! Files: `parts` (where parts start and end), `part_count` (how many run at once), `worker`
//! (one part), `journal_sync`, `resume` (the temp file across runs), `digest_follow` (a digest
//! computed behind the parts).

mod digest_follow;
mod journal_sync;
mod part_count;
mod parts;
mod resume;
mod span;
mod worker;

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::body::ByteStream;
use super::hosts::{self, Host};
use super::incremental::BaseImage;
use super::journal::{Journal, Validator};
use super::range_set::RangeSet;
use super::{Downloaded, FileSource, TempFile, TransferCtx, blocking};
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::progress::FileCounters;
use crate::sync::lock;
use digest_follow::follow_hash;
use journal_sync::sync_journal;
use part_count::PartCount;
use parts::Parts;
use resume::{Reserve, open_temp, reserve_len};
use worker::{fetch_cut, fetch_part};

/// How often the part count is looked at (it decides over longer windows of its own).
const TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// Bytes buffered per part before one positioned write.
pub(crate) const WRITE_BUFFER: usize = 1 << 20;

/// A source of byte ranges of one fixed version of a file.
pub(crate) trait RangeFetch: Send + Sync {
    /// The bytes of `[start, end)`, in order; retried as the source needs before the first
    /// byte. `Error::SourceChanged` when the source is no longer the version being fetched.
    fn open<'a>(
        &'a self,
        start: u64,
        end: u64,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<ByteStream>>;

    /// The largest range one request may ask for (parts are cut to it).
    fn max_part(&self) -> u64 {
        u64::MAX
    }

    /// The host whose connection budget the parts share (scheme, host and port), or none for a
    /// source that opens no connection of its own per part.
    fn host(&self) -> Option<String> {
        None
    }

    /// The smallest part worth a request, whatever `part_size` says (a source read in fixed
    /// blocks: a part of half a block would fetch the block twice).
    fn min_part(&self) -> u64 {
        1
    }

    /// Whether a request may be stopped before its end without losing a check (no checksum of
    /// the whole range, such as Azure's per-range MD5, is verified at its end): then a running
    /// part can be cut in two for a free connection ([`span`]).
    fn cuttable(&self) -> bool {
        false
    }
}

/// State shared by the parts of one file.
struct Ranged {
    ctx: Arc<TransferCtx>,
    fetch: Arc<dyn RangeFetch>,
    name: String,
    file: Arc<File>,
    temp: TempFile,
    journal: std::sync::Mutex<Journal>,
    last_sync: std::sync::Mutex<Instant>,
    sync_lock: tokio::sync::Mutex<()>,
    /// One write into the file at a time. Concurrent `pwrite`s to one file serialize on its
    /// inode lock in the kernel, where the waiters spin: with 16–32 parts in flight that spinning
    /// was a third of the process's CPU (perf: `rwsem_spin_on_owner` under ext4's buffered
    /// write). Waiting here, a part's task sleeps instead; one writer copies into the page cache
    /// at GB/s, far above any download.
    write_lock: tokio::sync::Mutex<()>,
    counters: Arc<FileCounters>,
    fetched: AtomicU64,
    /// The source's host: its connection budget and its count of refused requests.
    host: Option<Arc<Host>>,
    /// The parts running now, which a free connection may cut in two.
    running: span::Running,
    cuttable: bool,
    /// Requests of this file that failed and were retried (a dropped connection, a stall).
    failed: AtomicU64,
    /// Stops the parts: the export's cancel, or the first part that failed. Parts then flush
    /// what they received, so the journal keeps every byte that reached the file.
    stop: CancellationToken,
}

/// Brings every byte of `validator.size` not in `holes` into `temp` (holes read as zeros).
pub(crate) async fn download(
    ctx: &Arc<TransferCtx>,
    src: &FileSource,
    fetch: Arc<dyn RangeFetch>,
    temp: &TempFile,
    counters: &Arc<FileCounters>,
    validator: Validator,
    holes: RangeSet,
) -> Result<Downloaded> {
    let start = Start { holes, base: None };
    download_from(ctx, src, fetch, temp, counters, validator, start).await
}

/// How a new temp file starts: the ranges not fetched (`holes`: zeros, or the base's bytes),
/// and an incremental export's previous image.
pub(crate) struct Start {
    pub holes: RangeSet,
    pub base: Option<BaseImage>,
}

/// [`download`], into a temp file that starts as `start` says.
pub(crate) async fn download_from(
    ctx: &Arc<TransferCtx>,
    src: &FileSource,
    fetch: Arc<dyn RangeFetch>,
    temp: &TempFile,
    counters: &Arc<FileCounters>,
    validator: Validator,
    start: Start,
) -> Result<Downloaded> {
    let Start { holes, base } = start;
    let size = validator.size;
    let hole_bytes = holes.covered();
    // Progress counts the bytes that have to arrive; holes are neither fetched nor counted.
    ctx.progress.set_file_total(counters, size - hole_bytes);
    // Kept bytes are re-checked part by part unless a whole-file checksum will check them.
    let verify = ctx.opts.verify_resumed && src.checksum.is_none();
    // A clone without reflinks copies the whole previous image first: say so while it runs.
    let cloning = base.is_some();
    if cloning {
        ctx.progress
            .set_message(&format!("{}: starting from the previous image", src.name));
    }
    let (file, journal) = {
        let (dir, temp, cancel) = (ctx.dir.clone(), temp.clone(), ctx.cancel.clone());
        blocking(move || {
            open_temp(
                &dir,
                &temp,
                validator,
                &holes,
                base.as_ref(),
                verify,
                &cancel,
            )
        })
        .await?
    };
    if cloning {
        ctx.progress.set_message("");
    }
    let resumed = journal.done.covered().saturating_sub(hole_bytes);
    let mut reserve = {
        let (dir, name) = (ctx.dir.clone(), temp.name.clone());
        let len = reserve_len(size, ctx.opts.part_size);
        blocking(move || Ok(Reserve::make(dir, &name, len))).await?
    };
    // Counters restart from what is really on disk (a retried round starts from zero).
    ctx.progress.restart_file(counters);
    ctx.progress.add_done(counters, resumed, false);
    let gaps = journal.done.gaps(size);
    let state = Arc::new(Ranged {
        ctx: ctx.clone(),
        fetch: fetch.clone(),
        name: src.name.clone(),
        file: Arc::new(file),
        temp: temp.clone(),
        journal: std::sync::Mutex::new(journal),
        last_sync: std::sync::Mutex::new(Instant::now()),
        sync_lock: tokio::sync::Mutex::new(()),
        write_lock: tokio::sync::Mutex::new(()),
        counters: counters.clone(),
        fetched: AtomicU64::new(0),
        host: fetch.host().map(|k| hosts::host(&k)),
        running: span::Running::default(),
        cuttable: fetch.cuttable(),
        failed: AtomicU64::new(0),
        stop: ctx.cancel.child_token(),
    });

    let mut parts = Parts::for_file(
        gaps,
        &ctx.opts,
        state.fetch.min_part(),
        state.fetch.max_part(),
    );
    let mut width = PartCount::new(
        ctx.opts.parts_in_flight,
        ctx.opts.max_parts_in_flight,
        parts.typical(),
        Instant::now(),
    );
    // The digest a manifest needs, computed while the parts arrive (see `follow_hash`).
    let hasher = src
        .want_digest
        .map(|kind| follow_hash(state.clone(), size, kind));
    let mut set = JoinSet::new();
    let mut failure: Option<Error> = None;
    // The host's refusals count from now: those of files before are not this file's business.
    let host_throttled = || state.host.as_ref().map_or(0, |h| h.throttled());
    let throttled_before = host_throttled();
    loop {
        let throttled = state.failed.load(Ordering::Relaxed) + host_throttled() - throttled_before;
        let limit = width.observe(
            state.fetched.load(Ordering::Relaxed),
            throttled,
            Instant::now(),
        );
        while failure.is_none() && set.len() < limit {
            let st = state.clone();
            if let Some((a, b)) = parts.next() {
                set.spawn(async move { fetch_part(&st, a, b).await });
            } else if state.cuttable
                && !state.stop.is_cancelled()
                && state.running.can_split(state.fetch.min_part())
            {
                // No part left to start: the back half of the running part with the most left,
                // cut once the new part holds a connection.
                set.spawn(async move { fetch_cut(&st).await });
            } else {
                break;
            }
        }
        // While the count may change, look at the throughput each window even when no part ends
        // in it (large parts end seldom); connections it adds may cut running parts, so the
        // look goes on (every 100 ms, cheap) until the last part ends.
        let tick = width.adaptive() && failure.is_none() && (!parts.is_empty() || state.cuttable);
        let joined = tokio::select! {
            j = set.join_next() => j,
            _ = tokio::time::sleep(TICK), if tick => continue,
        };
        let Some(joined) = joined else {
            break;
        };
        let r = joined.unwrap_or_else(|e| Err(Error::Internal(format!("a part task failed: {e}"))));
        if let Err(e) = r {
            // Keep the first cause (a cancel of the export wins); stop the other parts.
            let user_cancel = matches!(e, Error::Cancelled) && ctx.cancel.is_cancelled();
            if failure.is_none() || user_cancel && !matches!(failure, Some(Error::Cancelled)) {
                failure = Some(if user_cancel { Error::Cancelled } else { e });
            }
            state.stop.cancel();
        }
    }
    // Whatever happened, record what is safely on disk so the next run resumes from there; on
    // a full disk the journal gets the room kept for it.
    let mut sync = sync_journal(&state).await;
    if sync.is_err() && reserve.release() {
        sync = sync_journal(&state).await;
    }
    drop(reserve);
    let done = lock(&state.journal).done.covered();
    if failure.is_some() || sync.is_err() || done != size {
        // The hash follower stops with the parts.
        state.stop.cancel();
    }
    if let Some(e) = failure {
        return Err(e);
    }
    sync?;
    if done != size {
        return Err(Error::Verification(format!(
            "{}: {done} of {size} bytes in place",
            src.name
        )));
    }
    let digest = match hasher {
        Some(h) => Some(
            h.await
                .map_err(|e| Error::Internal(format!("the hash task failed: {e}")))??,
        ),
        None => None,
    };
    Ok(Downloaded {
        name: src.name.clone(),
        dest: PathBuf::new(),
        temp: temp.path.clone(),
        temp_name: Some(temp.name.clone()),
        file: state.file.clone(),
        size,
        checksum: src.checksum.clone(),
        fetched: state.fetched.load(Ordering::Relaxed),
        resumed,
        retries: 0,
        digest,
        size_verified: true,
    })
}
