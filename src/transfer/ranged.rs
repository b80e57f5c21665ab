//! Parts in parallel into a preallocated sparse temp file, with a resume journal; for any
//! source that can hand out the bytes of `[start, end)` ([`RangeFetch`]: HTTP ranges, a local
//! file). Parts are cut as they start, large while much is left and small at the end ([`Parts`]).
//! Each part flushes what it received when it stops for any reason, and the journal records
//! ranges only after their bytes are synced, so nothing received is fetched twice and nothing
//! claimed is missing after a crash.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::body::{ByteStream, next_chunk};
use super::journal::{Journal, Validator};
use super::range_set::RangeSet;
use super::sparse::{write_sparse, zero_range};
use super::{Downloaded, FileSource, OutDir, TempFile, TransferCtx, blocking, throttle};
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::progress::FileCounters;
use crate::sync::lock;

/// Bytes buffered per part before one positioned write.
pub(crate) const WRITE_BUFFER: usize = 1 << 20;
/// Least time between two journal syncs.
const JOURNAL_EVERY: Duration = Duration::from_secs(1);

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
    let size = validator.size;
    let hole_bytes = holes.covered();
    // Progress counts the bytes that have to arrive; holes are neither fetched nor counted.
    ctx.progress.set_file_total(counters, size - hole_bytes);
    // Kept bytes are re-checked part by part unless a whole-file checksum will check them.
    let verify = ctx.opts.verify_resumed && src.checksum.is_none();
    let (file, journal) = {
        let (dir, temp, cancel) = (ctx.dir.clone(), temp.clone(), ctx.cancel.clone());
        blocking(move || open_temp(&dir, &temp, validator, &holes, verify, &cancel)).await?
    };
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
        fetch,
        name: src.name.clone(),
        file: Arc::new(file),
        temp: temp.clone(),
        journal: std::sync::Mutex::new(journal),
        last_sync: std::sync::Mutex::new(Instant::now()),
        sync_lock: tokio::sync::Mutex::new(()),
        write_lock: tokio::sync::Mutex::new(()),
        counters: counters.clone(),
        fetched: AtomicU64::new(0),
        stop: ctx.cancel.child_token(),
    });

    let cap = state.fetch.max_part();
    let mut parts = Parts::new(
        gaps,
        ctx.opts.part_size.min(cap).max(1),
        ctx.opts.max_part_size.min(cap),
    );
    // The digest a manifest needs, computed while the parts arrive (see `follow_hash`).
    let hasher = src
        .want_digest
        .map(|kind| follow_hash(state.clone(), size, kind));
    let mut set = JoinSet::new();
    let mut failure: Option<Error> = None;
    let mut width = PartCount::new(
        ctx.opts.parts_in_flight,
        ctx.opts.max_parts_in_flight,
        Instant::now(),
    );
    loop {
        let limit = width.observe(state.fetched.load(Ordering::Relaxed), Instant::now());
        while failure.is_none() && set.len() < limit {
            let Some((a, b)) = parts.next(limit) else {
                break;
            };
            let st = state.clone();
            set.spawn(async move { fetch_part(&st, a, b).await });
        }
        // While the count may change, look at the throughput each window even when no part ends
        // in it (large parts end seldom).
        let tick = width.adaptive() && failure.is_none() && !parts.is_empty();
        let joined = tokio::select! {
            j = set.join_next() => j,
            _ = tokio::time::sleep(WIDTH_WINDOW / 2), if tick => continue,
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

/// Cuts the bytes still missing into parts as they are started (guided self-scheduling): each
/// new part takes its share of what no part has taken yet, spread over the parts in flight,
/// between `unit` and `largest`, ending on a `unit` boundary or at the end of its gap. A large file is fetched in few, long requests (each request pays a round trip and the
/// link's latency before its first byte); the parts shrink towards the end, so the last ones
/// finish close together instead of one long part running alone.
pub(crate) struct Parts {
    gaps: std::collections::VecDeque<(u64, u64)>,
    left: u64,
    unit: u64,
    largest: u64,
}

impl Parts {
    pub(crate) fn new(gaps: Vec<(u64, u64)>, unit: u64, largest: u64) -> Parts {
        let unit = unit.max(1);
        Parts {
            left: gaps.iter().map(|(a, b)| b - a).sum(),
            gaps: gaps.into(),
            unit,
            largest: largest.max(unit),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.gaps.is_empty()
    }

    /// The next part, with `width` parts in flight.
    pub(crate) fn next(&mut self, width: usize) -> Option<(u64, u64)> {
        let (a, b) = *self.gaps.front()?;
        let share = self.left / width.max(1) as u64;
        let len = share.clamp(self.unit, self.largest);
        // `len` ≥ unit, so the rounded-down end is still past `a`.
        let e = ((a + len) / self.unit * self.unit).min(b);
        if e == b {
            self.gaps.pop_front();
        } else {
            self.gaps[0].0 = e;
        }
        self.left -= e - a;
        Some((a, e))
    }
}

/// How many parts of one file are in flight. It starts at `parts_in_flight` and, in windows of
/// half a second, grows by half while that raises the file's throughput by a tenth or more: a link
/// that limits each connection (object stores, NFC) gets the connections it rewards. A step that
/// does not pay is undone: where the disk, the CPU or a plain link is the limit, more parts only
/// cost CPU (each is a connection, a buffer, a writer). The step is tried again later (after 2 s,
/// then 4, 8, … up to 30 s): one window can be spoiled by a write stall (a journal sync, the page
/// cache flushing) or by the link, and an export lasts hours while conditions change.
pub(crate) struct PartCount {
    limit: usize,
    max: usize,
    /// The count before the step now being measured.
    probing_from: Option<usize>,
    /// Throughput of the last window before the step.
    baseline: f64,
    /// No step before this, after one that did not pay.
    next_probe: Option<Instant>,
    backoff: Duration,
    window_start: Instant,
    window_bytes: u64,
}

/// One measuring window.
const WIDTH_WINDOW: Duration = Duration::from_millis(500);
/// Gain that justifies more parts (a step adds half as many).
const WIDTH_GAIN: f64 = 1.10;
/// Wait before trying again a step that did not pay; doubles each time, up to the next.
const REPROBE_FIRST: Duration = Duration::from_secs(2);
const REPROBE_MAX: Duration = Duration::from_secs(30);

impl PartCount {
    pub(crate) fn new(start: usize, max: usize, now: Instant) -> Self {
        PartCount {
            limit: start,
            max: max.max(start),
            probing_from: None,
            baseline: 0.0,
            next_probe: None,
            backoff: REPROBE_FIRST,
            window_start: now,
            window_bytes: 0,
        }
    }

    /// Whether the count may change (it is not fixed).
    pub(crate) fn adaptive(&self) -> bool {
        self.max > self.limit || self.probing_from.is_some() || self.next_probe.is_some()
    }

    fn step(&mut self, now: Instant) {
        if self.limit < self.max && self.next_probe.is_none_or(|t| now >= t) {
            self.probing_from = Some(self.limit);
            self.limit = (self.limit + self.limit.div_ceil(2)).min(self.max);
        }
    }

    /// The count to keep in flight, given the bytes fetched so far.
    pub(crate) fn observe(&mut self, fetched: u64, now: Instant) -> usize {
        let dt = now.saturating_duration_since(self.window_start);
        if !self.adaptive() || dt < WIDTH_WINDOW {
            return self.limit;
        }
        let rate = fetched.saturating_sub(self.window_bytes) as f64 / dt.as_secs_f64();
        self.window_start = now;
        self.window_bytes = fetched;
        match self.probing_from.take() {
            Some(_) if rate >= self.baseline * WIDTH_GAIN => {
                // The step paid: keep it and take the next.
                self.baseline = rate;
                self.backoff = REPROBE_FIRST;
                self.next_probe = None;
                self.step(now);
            }
            Some(before) => {
                self.limit = before;
                self.next_probe = Some(now + self.backoff);
                self.backoff = (self.backoff * 2).min(REPROBE_MAX);
            }
            None => {
                self.baseline = rate;
                self.step(now);
            }
        }
        self.limit
    }
}

/// Hashes the file while it downloads: follows the part of the file that is in place from byte
/// 0 on (parts finish out of order; holes count as in place and read as zeros) and reads it back
/// while it is still in the page cache, so the hash is ready a moment after the last byte
/// instead of costing a second pass over the whole disk (an OVF manifest hashes every disk;
/// `govc export.ovf -sha 256` hashes as it streams). Stops when the download stops.
fn follow_hash(
    st: Arc<Ranged>,
    size: u64,
    kind: super::Digest,
) -> tokio::task::JoinHandle<Result<Vec<u8>>> {
    tokio::task::spawn_blocking(move || {
        crate::runtime::block_sigpipe();
        let mut h = kind.hasher();
        let mut buf = vec![0u8; 1 << 20];
        let mut cursor = 0u64;
        loop {
            let ready = lock(&st.journal)
                .done
                .ranges()
                .next()
                .filter(|(a, _)| *a == 0)
                .map_or(0, |(_, b)| b);
            while cursor < ready {
                if st.stop.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                let n = ((ready - cursor) as usize).min(buf.len());
                crate::sys::read_exact_at(&st.file, &mut buf[..n], cursor)
                    .map_err(|e| Error::io(&st.temp.path, "cannot read back", e))?;
                h.update(&buf[..n]);
                cursor += n as u64;
            }
            if cursor >= size {
                return Ok(h.finalize().into_vec());
            }
            if st.stop.is_cancelled() {
                return Err(Error::Cancelled);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

/// Room kept beside the temp file (`<temp>.reserve`) for the journal: when the disk fills up
/// mid-download, the data writes fail, and so would the journal's (a new file) — then nothing
/// fetched so far could be resumed. The reserve is released just before that last journal write,
/// and removed whenever the download ends. Best effort: no room for it is not an error.
struct Reserve {
    dir: Arc<OutDir>,
    name: String,
    held: bool,
}

impl Reserve {
    fn make(dir: Arc<OutDir>, temp_name: &str, len: u64) -> Reserve {
        let name = format!("{temp_name}.reserve");
        // A foreign file under the name is left alone (and no room is kept).
        let held = match dir.create_replacing_own(&name) {
            Ok(f) => {
                let ok = crate::sys::allocate(&f, len).is_ok();
                if !ok {
                    dir.remove(&name);
                }
                ok
            }
            Err(_) => false,
        };
        Reserve { dir, name, held }
    }

    /// Frees the room; whether there was any.
    fn release(&mut self) -> bool {
        let had = std::mem::replace(&mut self.held, false);
        if had {
            self.dir.remove(&self.name);
        }
        had
    }
}

impl Drop for Reserve {
    fn drop(&mut self) {
        self.release();
    }
}

/// Room for a journal of `size` bytes in parts of `part`: each part may add a range and a CRC
/// (under 100 bytes of JSON), plus slack; at most 64 MiB.
fn reserve_len(size: u64, part: u64) -> u64 {
    (size / part.max(1) + 1)
        .saturating_mul(100)
        .saturating_add(64 << 10)
        .min(64 << 20)
}

/// Opens the temp file: resumes when the journal matches the source and the temp file is
/// ours, otherwise starts a fresh sparse file of the right size whose holes count as done.
/// Anything planted under the temp's name (a symlink, another user's file) is an error.
fn open_temp(
    dir: &OutDir,
    temp: &TempFile,
    validator: Validator,
    holes: &RangeSet,
    verify: bool,
    cancel: &CancellationToken,
) -> Result<(File, Journal)> {
    let existing = dir.open_own(&temp.name)?;
    if let Some(file) = existing {
        if validator.is_usable()
            && let Some(mut j) = Journal::load(dir, &temp.journal)
            && j.validator == validator
            && file
                .metadata()
                .map(|m| m.len() == validator.size)
                .unwrap_or(false)
        {
            if verify {
                recheck_kept(&file, temp, &mut j, holes, cancel)?;
            }
            // Ranges not in the journal may hold bytes of a lost attempt: make them zeros
            // again, since zero blocks are skipped when written.
            for (a, b) in j.done.gaps(validator.size) {
                zero_range(&file, &temp.path, a, b)?;
            }
            return Ok((file, j));
        }
        // Ours, but of another version of the source: start it over.
        file.set_len(0)
            .map_err(|e| Error::io(&temp.path, "cannot truncate", e))?;
        return fresh(dir, temp, file, validator, holes);
    }
    let file = dir.create_new(&temp.name)?;
    fresh(dir, temp, file, validator, holes)
}

fn fresh(
    dir: &OutDir,
    temp: &TempFile,
    file: File,
    validator: Validator,
    holes: &RangeSet,
) -> Result<(File, Journal)> {
    file.set_len(validator.size)
        .map_err(|e| Error::io(&temp.path, "cannot size", e))?;
    let mut j = Journal::new(validator);
    for (a, b) in holes.ranges() {
        j.done.insert(a, b);
    }
    j.store(dir, &temp.journal)?;
    Ok((file, j))
}

/// Keeps only the bytes of an earlier run that still match their part's CRC32C (and the
/// holes, which were never written); everything else is fetched again.
fn recheck_kept(
    file: &File,
    temp: &TempFile,
    j: &mut Journal,
    holes: &RangeSet,
    cancel: &CancellationToken,
) -> Result<()> {
    let mut done = RangeSet::new();
    for (a, b) in holes.ranges() {
        done.insert(a, b);
    }
    let mut kept = std::collections::BTreeMap::new();
    let mut buf = vec![0u8; WRITE_BUFFER];
    let mut dropped = 0u64;
    for (&start, &(end, want)) in &j.crcs {
        let mut crc = 0u32;
        let mut pos = start;
        while pos < end {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let n = ((end - pos) as usize).min(buf.len());
            crate::sys::read_exact_at(file, &mut buf[..n], pos)
                .map_err(|e| Error::io(&temp.path, "cannot read", e))?;
            crc = crc32c::crc32c_append(crc, &buf[..n]);
            pos += n as u64;
        }
        if crc == want {
            done.insert(start, end);
            kept.insert(start, (end, want));
        } else {
            dropped += end - start;
        }
    }
    let unverified = j.done.covered().saturating_sub(done.covered());
    if dropped > 0 || unverified > 0 {
        tracing::warn!(
            file = %temp.path.display(),
            mismatched = dropped,
            fetched_again = unverified,
            "bytes kept from an earlier run did not check out; fetching them again"
        );
    }
    j.done = done;
    j.crcs = kept;
    Ok(())
}

/// Fetches `[start, end)` into place, retrying and continuing from the last byte received.
async fn fetch_part(st: &Arc<Ranged>, start: u64, end: u64) -> Result<()> {
    let cap = WRITE_BUFFER.min((end - start) as usize);
    let _permit = tokio::select! {
        _ = st.stop.cancelled() => return Err(Error::Cancelled),
        p = super::PROCESS_LIMITS.budget.acquire(cap as u64) => p,
    };
    let mut buf = Vec::with_capacity(cap);
    let mut pos = start; // next byte to receive
    // CRC32C of [start, pos): bytes of one part arrive in order.
    let mut crc = Crc { start, value: 0 };
    let mut attempts = st.ctx.opts.attempts();
    while pos < end {
        let before = pos;
        let r = stream_range(st, &mut buf, cap, &mut pos, end, &mut crc).await;
        // Bytes received before a failure are good (same validator): keep them.
        flush(st, &mut buf, pos, &crc).await?;
        if let Err(e @ Error::Verification(_)) = r {
            // The range's own checksum did not match: none of its bytes may count for a resume.
            let mut j = lock(&st.journal);
            j.done.remove(before, pos);
            j.crcs.remove(&start);
            return Err(e);
        }
        if let Err(e) = r {
            tracing::debug!(file = %st.name, pos, error = %e, "part interrupted");
            let retried = attempts.retries;
            attempts.failed(e, pos > before, None, &st.stop).await?;
            st.counters.add_retries(attempts.retries - retried);
        }
    }
    merge_crc(&mut lock(&st.journal).crcs, start);
    maybe_sync_journal(st).await
}

/// Joins a finished part's CRC with the entries just before and after it (CRC32C values
/// combine), so a contiguous download keeps a handful of entries, not one per part. The entry
/// after it may belong to a part still running, whose next flush then adds an entry that
/// overlaps the merged one: each entry is still the CRC of exactly its own range (bytes are
/// written once), so a resume checks both and keeps their union — correct, if not minimal.
fn merge_crc(crcs: &mut std::collections::BTreeMap<u64, (u64, u32)>, start: u64) {
    let Some(&(end, crc)) = crcs.get(&start) else {
        return;
    };
    let (mut s, mut e, mut c) = (start, end, crc);
    if let Some((&ps, &(pe, pc))) = crcs.range(..start).next_back()
        && pe == start
    {
        crcs.remove(&start);
        c = crc32c::crc32c_combine(pc, c, (e - s) as usize);
        s = ps;
    }
    if let Some(&(ne, nc)) = crcs.get(&e) {
        crcs.remove(&e);
        c = crc32c::crc32c_combine(c, nc, (ne - e) as usize);
        e = ne;
    }
    crcs.insert(s, (e, c));
}

/// The running CRC32C of one part's bytes.
struct Crc {
    start: u64,
    value: u32,
}

/// One request for `[*pos, end)`; appends to `buf`, flushing when full, advancing `*pos`.
async fn stream_range(
    st: &Arc<Ranged>,
    buf: &mut Vec<u8>,
    cap: usize,
    pos: &mut u64,
    end: u64,
    crc: &mut Crc,
) -> Result<()> {
    let ctx = &st.ctx;
    let mut body = st.fetch.open(*pos, end, &st.stop).await?;
    let stall = ctx.opts.stall();
    while let Some(chunk) = next_chunk(&mut body, stall, &st.stop, &st.name).await? {
        if chunk.len() as u64 > end - *pos {
            return Err(Error::Remote(format!(
                "{}: the server sent more than the range asked for",
                st.name
            )));
        }
        throttle(ctx, &st.stop, chunk.len() as u64).await?;
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let n = rest.len().min(cap - buf.len());
            buf.extend_from_slice(&rest[..n]);
            crc.value = crc32c::crc32c_append(crc.value, &rest[..n]);
            rest = &rest[n..];
            *pos += n as u64;
            // Counted on arrival, so slow links show live progress; the bytes reach the file
            // on the next flush, which also runs when the request fails.
            st.fetched.fetch_add(n as u64, Ordering::Relaxed);
            st.ctx.progress.add_done(&st.counters, n as u64, true);
            if buf.len() == cap {
                flush(st, buf, *pos, crc).await?;
                // Mid-part too: on a slow link one part takes many seconds, and a process
                // killed meanwhile must lose at most a second of it, not the whole part.
                maybe_sync_journal(st).await?;
            }
        }
    }
    if *pos < end {
        return Err(Error::Network(format!(
            "{}: connection closed {} bytes early",
            st.name,
            end - *pos
        )));
    }
    Ok(())
}

/// Writes the buffered bytes, which end at `end_pos`, and records them (with the part's CRC
/// up to there) for the next journal sync.
async fn flush(st: &Arc<Ranged>, buf: &mut Vec<u8>, end_pos: u64, crc: &Crc) -> Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    let data = std::mem::take(buf);
    let n = data.len() as u64;
    let file = st.file.clone();
    let path = st.temp.path.clone();
    let writing = st.write_lock.lock().await;
    let mut data = blocking(move || {
        write_sparse(&file, &path, end_pos - n, &data)?;
        crate::sys::start_writeback(&file, end_pos - n, n);
        Ok(data)
    })
    .await?;
    drop(writing);
    data.clear();
    *buf = data;
    let mut j = lock(&st.journal);
    j.done.insert(end_pos - n, end_pos);
    j.crcs.insert(crc.start, (end_pos, crc.value));
    Ok(())
}

async fn maybe_sync_journal(st: &Arc<Ranged>) -> Result<()> {
    if lock(&st.last_sync).elapsed() < JOURNAL_EVERY {
        return Ok(());
    }
    // One sync at a time; a part that finds one running leaves it the work.
    let Ok(_guard) = st.sync_lock.try_lock() else {
        return Ok(());
    };
    sync_journal_locked(st).await
}

async fn sync_journal(st: &Arc<Ranged>) -> Result<()> {
    let _guard = st.sync_lock.lock().await;
    sync_journal_locked(st).await
}

/// Syncs the data, then records the ranges that were done before the sync.
async fn sync_journal_locked(st: &Arc<Ranged>) -> Result<()> {
    let snapshot = lock(&st.journal).clone();
    let file = st.file.clone();
    let (dir, temp) = (st.ctx.dir.clone(), st.temp.clone());
    blocking(move || {
        file.sync_data()
            .map_err(|e| Error::io(&temp.path, "cannot sync", e))?;
        snapshot.store(&dir, &temp.journal)
    })
    .await?;
    *lock(&st.last_sync) = Instant::now();
    Ok(())
}

#[cfg(test)]
mod crc_tests {
    #[test]
    fn finished_parts_merge_into_one_entry() {
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
        let part = |a: usize, b: usize| crc32c::crc32c(&data[a..b]);
        let mut crcs = std::collections::BTreeMap::new();
        // Parts finish out of order: [1000, 2000), then [0, 1000), then [2000, 3000).
        crcs.insert(1000, (2000, part(1000, 2000)));
        super::merge_crc(&mut crcs, 1000);
        crcs.insert(0, (1000, part(0, 1000)));
        super::merge_crc(&mut crcs, 0);
        crcs.insert(2000, (3000, part(2000, 3000)));
        super::merge_crc(&mut crcs, 2000);
        assert_eq!(crcs.len(), 1);
        assert_eq!(crcs[&0], (3000, crc32c::crc32c(&data)));
    }
}

#[cfg(test)]
mod width_tests {
    use super::*;

    /// Runs the controller for `windows` windows against a link whose throughput in window `i`
    /// with `n` parts is `rate(i, n)` bytes/s; returns the counts it chose.
    fn run(start: usize, max: usize, windows: u32, rate: impl Fn(u32, usize) -> f64) -> Vec<usize> {
        let t0 = Instant::now();
        let mut w = PartCount::new(start, max, t0);
        let (mut fetched, mut limit, mut seen) = (0u64, start, vec![start]);
        for i in 1..=windows {
            fetched += (rate(i, limit) * WIDTH_WINDOW.as_secs_f64()) as u64;
            limit = w.observe(fetched, t0 + WIDTH_WINDOW * i);
            seen.push(limit);
        }
        seen
    }

    /// How many windows ran at `n`.
    fn at(seen: &[usize], n: usize) -> usize {
        seen.iter().filter(|&&x| x == n).count()
    }

    #[test]
    fn grows_while_connections_pay_then_holds() {
        // Each connection limited to 50 MB/s, nothing else: up to the ceiling, and it stays.
        let seen = run(8, 32, 20, |_, n| n as f64 * 50e6);
        assert_eq!(&seen[..6], &[8, 12, 18, 27, 32, 32], "{seen:?}");
        assert!(seen[4..].iter().all(|&n| n == 32), "{seen:?}");
        // The link tops out at 1 GB/s (20 connections' worth): it settles at 27, trying 41 now
        // and then (less and less often).
        let seen = run(8, 64, 120, |_, n| (n as f64 * 50e6).min(1e9));
        assert!(seen.iter().all(|&n| n <= 41), "{seen:?}");
        assert!(at(&seen[5..], 27) > 100, "{seen:?}");
        assert!(at(&seen[60..], 41) <= 2, "tries too often: {seen:?}");
    }

    #[test]
    fn a_disk_bound_file_stays_or_steps_back() {
        // Flat: probes, each undone.
        let seen = run(8, 32, 60, |_, _| 300e6);
        assert!(seen.iter().all(|&n| n <= 12), "{seen:?}");
        assert!(at(&seen, 8) >= 54, "{seen:?}");
        // More parts are slower (a disk that seeks): back to where it was.
        let seen = run(8, 32, 60, |_, n| if n > 8 { 200e6 } else { 300e6 });
        assert!(at(&seen, 8) >= 54, "{seen:?}");
        assert_eq!(*seen.last().unwrap(), 8, "{seen:?}");
    }

    #[test]
    fn a_step_spoiled_by_a_stall_is_tried_again() {
        // Windows 2 and 3 stall (a journal sync, the page cache flushing): the step to 12 looks
        // like a loss. Later the link rewards connections again and the count gets there.
        let seen = run(8, 32, 40, |i, n| {
            if (2..=3).contains(&i) {
                100e6
            } else {
                n as f64 * 50e6
            }
        });
        assert_eq!(seen[2], 8, "the spoiled step is undone: {seen:?}");
        assert_eq!(*seen.last().unwrap(), 32, "{seen:?}");
    }

    #[test]
    fn a_fixed_count_never_moves() {
        assert!(
            run(8, 8, 20, |_, n| n as f64 * 50e6)
                .iter()
                .all(|&n| n == 8)
        );
        assert!(
            run(1, 1, 20, |_, n| n as f64 * 50e6)
                .iter()
                .all(|&n| n == 1)
        );
        // A ceiling below the start: the start, fixed.
        assert!(
            run(48, 32, 20, |_, n| n as f64 * 50e6)
                .iter()
                .all(|&n| n == 48)
        );
    }
}

#[cfg(test)]
mod parts_tests {
    use super::Parts;
    use proptest::prelude::*;

    const MIB: u64 = 1 << 20;

    /// Cuts everything with `width` parts in flight; checks each part against the rules.
    fn cut(gaps: &[(u64, u64)], unit: u64, largest: u64, width: usize) -> Vec<(u64, u64)> {
        let mut p = Parts::new(gaps.to_vec(), unit, largest);
        let mut out = Vec::new();
        while let Some((a, b)) = p.next(width) {
            assert!(a < b, "empty part {a}..{b}");
            let gap_end = gaps.iter().find(|(s, e)| *s <= a && a < *e).unwrap().1;
            assert!(b <= gap_end, "{a}..{b} runs past its gap");
            assert!(b - a <= largest.max(unit), "{a}..{b} larger than {largest}");
            assert!(
                b == gap_end || b.is_multiple_of(unit),
                "{a}..{b} does not end on a {unit} boundary"
            );
            out.push((a, b));
        }
        assert!(p.is_empty());
        out
    }

    #[test]
    fn a_large_file_starts_with_large_parts_and_ends_with_small_ones() {
        let parts = cut(&[(0, 2048 * MIB)], 8 * MIB, 64 * MIB, 16);
        assert_eq!(parts[0], (0, 64 * MIB));
        let last = parts[parts.len() - 1];
        assert_eq!(last.1 - last.0, 8 * MIB, "{parts:?}");
        // Far fewer requests than 8 MiB parts (256), the sizes never grow back.
        assert!(parts.len() < 80, "{} parts", parts.len());
        assert!(parts.windows(2).all(|w| w[1].1 - w[1].0 <= w[0].1 - w[0].0));
        // The last 16 parts in flight together hold little: they finish close together.
        let tail: u64 = parts[parts.len() - 16..].iter().map(|(a, b)| b - a).sum();
        assert!(tail <= 256 * MIB, "the last 16 parts hold {tail} bytes");
    }

    #[test]
    fn fixed_parts_when_the_largest_is_the_unit() {
        let parts = cut(&[(0, 20 * MIB + 5)], 8 * MIB, 8 * MIB, 8);
        assert_eq!(
            parts,
            [(0, 8 * MIB), (8 * MIB, 16 * MIB), (16 * MIB, 20 * MIB + 5)]
        );
        // A source that caps requests below the unit (Azure's MD5 ranges) gets capped parts.
        let parts = cut(&[(0, 9 * MIB)], 4 * MIB, 4 * MIB, 8);
        assert_eq!(
            parts,
            [(0, 4 * MIB), (4 * MIB, 8 * MIB), (8 * MIB, 9 * MIB)]
        );
    }

    proptest! {
        /// Whatever the gaps (a resumed file), the parts cover exactly them, in order, once.
        #[test]
        fn parts_cover_the_gaps_exactly_once(
            raw in prop::collection::vec((0u64..64, 1u64..64), 0..8),
            unit_k in 1u64..5,
            largest_k in 1u64..20,
            width in 1usize..40,
        ) {
            let unit = unit_k * 65536;
            let mut gaps = Vec::new();
            let mut at = 0;
            for (skip, len) in raw {
                let a = at + skip * 40_000;
                gaps.push((a, a + len * 50_000));
                at = a + len * 50_000 + 1;
            }
            let parts = cut(&gaps, unit, largest_k * 65536, width);
            let mut got: Vec<u64> = Vec::new();
            for (a, b) in parts {
                if got.last() == Some(&a) { got.pop(); } else { got.push(a); }
                got.push(b);
            }
            // Adjacent gaps never touch (at + 1), so merged parts give back the gaps.
            prop_assert_eq!(got, gaps.iter().flat_map(|&(a, b)| [a, b]).collect::<Vec<_>>());
        }
    }
}
