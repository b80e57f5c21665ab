//! Fetching one file: a probe request learns size, validator and range support; then either
//! ranged parts in parallel (resumable) or one sequential stream (when the server ignores Range
//! or gives no length).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;
use reqwest::header::{
    CONTENT_LENGTH, CONTENT_RANGE, ETAG, HeaderMap, IF_RANGE, LAST_MODIFIED, RANGE,
};
use reqwest::{Response, StatusCode};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::checksum::Checksum;
use super::journal::{Journal, Validator};
use super::retry::{backoff, is_retryable_status, retry_after};
use super::sparse::{write_sparse, zero_range};
use super::{Downloaded, FileSource, TransferCtx, redact_url, temp_path};
use crate::error::{Error, Result};
use crate::export::progress::{FileCounters, lock};
use crate::settings::GLOBALS;

/// Bytes buffered per stream before one positioned write.
const WRITE_BUFFER: usize = 1 << 20;
/// Least time between two journal syncs.
const JOURNAL_EVERY: Duration = Duration::from_secs(1);

/// Brings `src` into `temp_path(dest)`; see the module docs.
pub async fn download(
    ctx: &Arc<TransferCtx>,
    src: &Arc<FileSource>,
    dest: &Path,
    counters: &Arc<FileCounters>,
) -> Result<Downloaded> {
    let temp = temp_path(dest);
    // The source may change under us once (a new ETag mid-download): start over, once.
    for round in 0..2 {
        let probe = send_with_retry(ctx, &ctx.cancel, src, Some((0, 0)), None).await?;
        let result = match probe.status() {
            StatusCode::PARTIAL_CONTENT => {
                let validator = validator_of(&probe, content_range_total(&probe)?);
                let server_sum = server_checksum(probe.headers());
                drop(probe);
                ranged(ctx, src, &temp, counters, validator, server_sum).await
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                // Only an empty object has no byte 0.
                let v = validator_of(&probe, 0);
                drop(probe);
                ranged(ctx, src, &temp, counters, v, None).await
            }
            _ => single_stream(ctx, src, &temp, counters, probe).await,
        };
        match result {
            Err(Error::SourceChanged(_)) if round == 0 => {
                tracing::info!(file = %src.name, "source changed during download, starting over");
                continue;
            }
            Err(e) => return Err(e),
            Ok(mut d) => {
                d.dest = dest.to_path_buf();
                if src.want_sha256 && d.sha256.is_none() {
                    // Ranged parts arrive out of order: hash the finished file once.
                    let temp = d.temp.clone();
                    d.sha256 = Some(blocking(move || sha256_file(&temp)).await?);
                }
                return Ok(d);
            }
        }
    }
    Err(Error::Remote(format!(
        "{} kept changing while it was downloaded",
        src.name
    )))
}

fn validator_of(resp: &Response, size: u64) -> Validator {
    let h = resp.headers();
    let text = |k| {
        h.get(k)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    Validator {
        size,
        etag: text(ETAG),
        last_modified: text(LAST_MODIFIED),
    }
}

/// `Content-Range: bytes a-b/total` → (a, b, total).
fn parse_content_range(resp: &Response) -> Option<(u64, u64, u64)> {
    let v = resp.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((
        a.trim().parse().ok()?,
        b.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

fn content_range_total(resp: &Response) -> Result<u64> {
    parse_content_range(resp)
        .map(|(_, _, t)| t)
        .ok_or_else(|| Error::Remote("a 206 answer without a usable Content-Range header".into()))
}

/// A whole-object checksum the server volunteers (GCS `x-goog-hash`, Azure's stored MD5).
fn server_checksum(h: &HeaderMap) -> Option<Checksum> {
    for v in h.get_all("x-goog-hash") {
        for part in v.to_str().ok()?.split(',') {
            if let Some(c) = part.trim().strip_prefix("crc32c=") {
                return Checksum::parse("crc32c", c).ok();
            }
        }
    }
    let md5 = h.get("x-ms-blob-content-md5")?.to_str().ok()?;
    Checksum::parse("md5", md5).ok()
}

/// One request, retried on connection errors, stalls, 5xx and 429 (honouring Retry-After).
/// `range` is inclusive. Answers that will not get better (401, 404, …) are mapped to errors.
async fn send_with_retry(
    ctx: &TransferCtx,
    cancel: &CancellationToken,
    src: &FileSource,
    range: Option<(u64, u64)>,
    if_range: Option<&str>,
) -> Result<Response> {
    let mut attempt = 0;
    loop {
        let mut req = ctx.client.get(src.url.clone()).headers(src.headers.clone());
        if let Some((a, b)) = range {
            req = req.header(RANGE, format!("bytes={a}-{b}"));
        }
        if let Some(v) = if_range {
            req = req.header(IF_RANGE, v);
        }
        let stall = Duration::from_millis(ctx.opts.stall_timeout_ms);
        let mut request = req
            .build()
            .map_err(|e| Error::http(&format!("request for {}", src.name), e))?;
        if let Some(signer) = &src.signer {
            signer.sign(&mut request).await?;
        }
        let sent = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(Error::Cancelled),
            r = tokio::time::timeout(stall, ctx.client.execute(request)) => r,
        };
        let (err, wait) = match sent {
            Ok(Ok(resp)) => {
                let status = resp.status();
                if status.is_success()
                    || status == StatusCode::RANGE_NOT_SATISFIABLE && range == Some((0, 0))
                {
                    return Ok(resp);
                }
                let err = status_error(status, src);
                if !is_retryable_status(status) {
                    return Err(err);
                }
                (err, retry_after(resp.headers()))
            }
            Ok(Err(e)) => (Error::http(&format!("request for {}", src.name), e), None),
            Err(_) => (
                Error::Timeout(format!("no answer for {} within {stall:?}", src.name)),
                None,
            ),
        };
        attempt += 1;
        if attempt >= ctx.opts.max_attempts {
            return Err(err);
        }
        let wait = wait.unwrap_or_else(|| {
            backoff(
                Duration::from_millis(ctx.opts.retry_base_delay_ms),
                attempt - 1,
            )
        });
        tracing::debug!(file = %src.name, attempt, ?wait, error = %err, "retrying request");
        tokio::select! {
            _ = cancel.cancelled() => return Err(Error::Cancelled),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

fn status_error(status: StatusCode, src: &FileSource) -> Error {
    let what = format!("HTTP {status} for {} ({})", src.name, redact_url(&src.url));
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::Auth(what),
        StatusCode::NOT_FOUND | StatusCode::GONE => Error::NotFound(what),
        s if is_retryable_status(s) => Error::Network(what),
        _ => Error::Remote(what),
    }
}

fn retryable(e: &Error) -> bool {
    matches!(e, Error::Network(_) | Error::Timeout(_))
}

/// State shared by the parts of one ranged download.
struct Ranged {
    ctx: Arc<TransferCtx>,
    src: Arc<FileSource>,
    file: Arc<File>,
    temp: PathBuf,
    journal_path: PathBuf,
    journal: std::sync::Mutex<Journal>,
    last_sync: std::sync::Mutex<Instant>,
    sync_lock: tokio::sync::Mutex<()>,
    counters: Arc<FileCounters>,
    fetched: AtomicU64,
    /// Stops the parts: the export's cancel, or the first part that failed. Parts then flush
    /// what they received, so the journal keeps every byte that reached the file.
    stop: CancellationToken,
}

async fn ranged(
    ctx: &Arc<TransferCtx>,
    src: &Arc<FileSource>,
    temp: &Path,
    counters: &Arc<FileCounters>,
    validator: Validator,
    server_sum: Option<Checksum>,
) -> Result<Downloaded> {
    let size = validator.size;
    ctx.progress.set_file_total(counters, size);
    let journal_path = Journal::path_for(temp);
    let (file, journal) = {
        let temp = temp.to_path_buf();
        let journal_path = journal_path.clone();
        let validator = validator.clone();
        blocking(move || open_temp(&temp, &journal_path, validator)).await?
    };
    let resumed = journal.done.covered();
    // Counters restart from what is really on disk (a retried round starts from zero).
    reset_counters(ctx, counters);
    ctx.progress.add_done(counters, resumed, false);
    let gaps = journal.done.gaps(size);
    let state = Arc::new(Ranged {
        ctx: ctx.clone(),
        src: src.clone(),
        file: Arc::new(file),
        temp: temp.to_path_buf(),
        journal_path,
        journal: std::sync::Mutex::new(journal),
        last_sync: std::sync::Mutex::new(Instant::now()),
        sync_lock: tokio::sync::Mutex::new(()),
        counters: counters.clone(),
        fetched: AtomicU64::new(0),
        stop: ctx.cancel.child_token(),
    });

    // Parts aligned on part_size boundaries, so a resumed run asks for the same ranges.
    let part = ctx.opts.part_size;
    let mut parts = Vec::new();
    for (a, b) in gaps {
        let mut s = a;
        while s < b {
            let e = ((s / part) + 1) * part;
            parts.push((s, e.min(b)));
            s = e.min(b);
        }
    }
    let mut parts = parts.into_iter();
    let mut set = JoinSet::new();
    let mut failure: Option<Error> = None;
    loop {
        while failure.is_none() && set.len() < ctx.opts.parts_in_flight {
            let Some((a, b)) = parts.next() else { break };
            let st = state.clone();
            set.spawn(async move { fetch_part(&st, a, b).await });
        }
        let Some(joined) = set.join_next().await else {
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
    // Whatever happened, record what is safely on disk so the next run resumes from there.
    let sync = sync_journal(&state).await;
    if let Some(e) = failure {
        return Err(e);
    }
    sync?;
    let done = lock(&state.journal).done.covered();
    if done != size {
        return Err(Error::Verification(format!(
            "{}: {done} of {size} bytes in place",
            src.name
        )));
    }
    Ok(Downloaded {
        name: src.name.clone(),
        dest: PathBuf::new(),
        temp: temp.to_path_buf(),
        size,
        checksum: src.checksum.clone().or(server_sum),
        fetched: state.fetched.load(Ordering::Relaxed),
        resumed,
        sha256: None,
    })
}

fn reset_counters(ctx: &TransferCtx, counters: &FileCounters) {
    ctx.progress.restart_file(counters);
}

/// Opens the temp file for a ranged download: resumes when the journal matches the source,
/// otherwise starts a fresh sparse file of the right size.
fn open_temp(temp: &Path, journal_path: &Path, validator: Validator) -> Result<(File, Journal)> {
    if validator.is_usable()
        && let Some(j) = Journal::load(journal_path)
        && j.validator == validator
        && let Ok(file) = File::options().read(true).write(true).open(temp)
        && file
            .metadata()
            .map(|m| m.len() == validator.size)
            .unwrap_or(false)
    {
        // Ranges not in the journal may hold bytes of a lost attempt: make them zeros again,
        // since zero blocks are skipped when written.
        for (a, b) in j.done.gaps(validator.size) {
            zero_range(&file, temp, a, b)?;
        }
        return Ok((file, j));
    }
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(temp)
        .map_err(|e| Error::io(temp, "cannot create", e))?;
    file.set_len(validator.size)
        .map_err(|e| Error::io(temp, "cannot size", e))?;
    let j = Journal::new(validator);
    j.store(journal_path)?;
    Ok((file, j))
}

/// Fetches `[start, end)` into place, retrying and continuing from the last byte received.
async fn fetch_part(st: &Arc<Ranged>, start: u64, end: u64) -> Result<()> {
    let ctx = &st.ctx;
    let cap = WRITE_BUFFER.min((end - start) as usize);
    let _permit = tokio::select! {
        _ = st.stop.cancelled() => return Err(Error::Cancelled),
        p = GLOBALS.budget.acquire(cap as u64) => p,
    };
    let mut buf = Vec::with_capacity(cap);
    let mut pos = start; // next byte to receive
    let mut attempt = 0;
    let if_range = lock(&st.journal).validator.if_range().map(str::to_string);
    while pos < end {
        let before = pos;
        let r = stream_range(st, &mut buf, cap, &mut pos, end, if_range.as_deref()).await;
        // Bytes received before a failure are good (same validator): keep them.
        flush(st, &mut buf, pos).await?;
        match r {
            Ok(()) => {}
            Err(e) if retryable(&e) => {
                attempt = if pos > before { 0 } else { attempt + 1 };
                if attempt >= ctx.opts.max_attempts {
                    return Err(e);
                }
                let wait = backoff(
                    Duration::from_millis(ctx.opts.retry_base_delay_ms),
                    attempt.saturating_sub(1),
                );
                tracing::debug!(file = %st.src.name, pos, error = %e, "part interrupted, retrying");
                tokio::select! {
                    _ = st.stop.cancelled() => return Err(Error::Cancelled),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
    maybe_sync_journal(st).await
}

/// One request for `[*pos, end)`; appends to `buf`, flushing when full, advancing `*pos`.
async fn stream_range(
    st: &Arc<Ranged>,
    buf: &mut Vec<u8>,
    cap: usize,
    pos: &mut u64,
    end: u64,
    if_range: Option<&str>,
) -> Result<()> {
    let ctx = &st.ctx;
    let resp = send_with_retry(ctx, &st.stop, &st.src, Some((*pos, end - 1)), if_range).await?;
    if resp.status() != StatusCode::PARTIAL_CONTENT {
        // With If-Range, a 200 means the object is another one now.
        return Err(Error::SourceChanged(st.src.name.clone()));
    }
    let size = lock(&st.journal).validator.size;
    match parse_content_range(&resp) {
        Some((a, b, t)) if a == *pos && b == end - 1 && t == size => {}
        _ => return Err(Error::SourceChanged(st.src.name.clone())),
    }
    let mut body = resp.bytes_stream();
    let stall = Duration::from_millis(ctx.opts.stall_timeout_ms);
    loop {
        let next = tokio::select! {
            biased;
            _ = st.stop.cancelled() => return Err(Error::Cancelled),
            n = tokio::time::timeout(stall, body.next()) => n,
        };
        let chunk: Bytes = match next {
            Err(_) => {
                return Err(Error::Timeout(format!(
                    "{}: no data for {stall:?}",
                    st.src.name
                )));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(Error::http(&format!("reading {}", st.src.name), e)),
            Ok(Some(Ok(c))) => c,
        };
        if chunk.len() as u64 > end - *pos {
            return Err(Error::Remote(format!(
                "{}: the server sent more than the range asked for",
                st.src.name
            )));
        }
        throttle(ctx, &st.stop, chunk.len() as u64).await?;
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let n = rest.len().min(cap - buf.len());
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            *pos += n as u64;
            // Counted on arrival, so slow links show live progress; the bytes reach the file
            // on the next flush, which also runs when the request fails.
            st.fetched.fetch_add(n as u64, Ordering::Relaxed);
            st.ctx.progress.add_done(&st.counters, n as u64, true);
            if buf.len() == cap {
                flush(st, buf, *pos).await?;
            }
        }
    }
    if *pos < end {
        return Err(Error::Network(format!(
            "{}: connection closed {} bytes early",
            st.src.name,
            end - *pos
        )));
    }
    Ok(())
}

async fn throttle(ctx: &TransferCtx, cancel: &CancellationToken, n: u64) -> Result<()> {
    let wait = match (ctx.limiter.reserve(n), GLOBALS.limiter.reserve(n)) {
        (None, None) => return Ok(()),
        (a, b) => a.unwrap_or_default().max(b.unwrap_or_default()),
    };
    tokio::select! {
        _ = cancel.cancelled() => Err(Error::Cancelled),
        _ = tokio::time::sleep(wait) => Ok(()),
    }
}

/// Writes the buffered bytes, which end at `end_pos`.
async fn flush(st: &Arc<Ranged>, buf: &mut Vec<u8>, end_pos: u64) -> Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    let data = std::mem::take(buf);
    let n = data.len() as u64;
    let file = st.file.clone();
    let temp = st.temp.clone();
    let mut data = blocking(move || {
        write_sparse(&file, &temp, end_pos - n, &data)?;
        Ok(data)
    })
    .await?;
    data.clear();
    *buf = data;
    lock(&st.journal).done.insert(end_pos - n, end_pos);
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
    let (temp, jp) = (st.temp.clone(), st.journal_path.clone());
    blocking(move || {
        file.sync_data()
            .map_err(|e| Error::io(&temp, "cannot sync", e))?;
        snapshot.store(&jp)
    })
    .await?;
    *lock(&st.last_sync) = Instant::now();
    Ok(())
}

/// The server ignored Range or gave no length: one sequential stream, from the start on every
/// attempt. Progress never goes backwards: a restarted attempt counts only bytes beyond the
/// furthest point reached before.
async fn single_stream(
    ctx: &Arc<TransferCtx>,
    src: &Arc<FileSource>,
    temp: &Path,
    counters: &Arc<FileCounters>,
    first: Response,
) -> Result<Downloaded> {
    reset_counters(ctx, counters);
    // Nothing here can be resumed: an old journal no longer describes the temp file.
    let _ = std::fs::remove_file(Journal::path_for(temp));
    let cap = WRITE_BUFFER;
    let _permit = tokio::select! {
        _ = ctx.cancel.cancelled() => return Err(Error::Cancelled),
        p = GLOBALS.budget.acquire(cap as u64) => p,
    };
    let mut resp = Some(first);
    let mut high_water = 0u64;
    let mut sha = src.want_sha256.then(<sha2::Sha256 as sha2::Digest>::new);
    let mut fetched = 0u64;
    let mut attempt = 0;
    loop {
        let r = match resp.take() {
            Some(r) => r,
            None => send_with_retry(ctx, &ctx.cancel, src, None, None).await?,
        };
        let length = r
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(len) = length {
            ctx.progress.set_file_total(counters, len);
        }
        let (file, path) = {
            let temp = temp.to_path_buf();
            blocking(move || {
                let f = File::options()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&temp)
                    .map_err(|e| Error::io(&temp, "cannot create", e))?;
                if let Some(len) = length {
                    f.set_len(len)
                        .map_err(|e| Error::io(&temp, "cannot size", e))?;
                }
                Ok((Arc::new(f), temp))
            })
            .await?
        };
        let mut pos = 0u64;
        let mut buf: Vec<u8> = Vec::with_capacity(cap);
        let mut body = r.bytes_stream();
        if src.want_sha256 {
            // Every attempt streams from byte 0.
            sha = Some(<sha2::Sha256 as sha2::Digest>::new());
        }
        let stall = Duration::from_millis(ctx.opts.stall_timeout_ms);
        let outcome: Result<()> = loop {
            let next = tokio::select! {
                biased;
                _ = ctx.cancel.cancelled() => break Err(Error::Cancelled),
                n = tokio::time::timeout(stall, body.next()) => n,
            };
            let chunk = match next {
                Err(_) => {
                    break Err(Error::Timeout(format!(
                        "{}: no data for {stall:?}",
                        src.name
                    )));
                }
                Ok(None) => break Ok(()),
                Ok(Some(Err(e))) => break Err(Error::http(&format!("reading {}", src.name), e)),
                Ok(Some(Ok(c))) => c,
            };
            if let Err(e) = throttle(ctx, &ctx.cancel, chunk.len() as u64).await {
                break Err(e);
            }
            fetched += chunk.len() as u64;
            if let Some(h) = sha.as_mut() {
                sha2::Digest::update(h, &chunk);
            }
            buf.extend_from_slice(&chunk);
            if buf.len() >= cap {
                let at = pos;
                pos += buf.len() as u64;
                buf = write_block(&file, &path, at, std::mem::take(&mut buf)).await?;
                if pos > high_water {
                    ctx.progress.add_done(counters, pos - high_water, true);
                    high_water = pos;
                }
            }
        };
        if !buf.is_empty() {
            let at = pos;
            pos += buf.len() as u64;
            write_block(&file, &path, at, buf).await?;
            if pos > high_water {
                ctx.progress.add_done(counters, pos - high_water, true);
                high_water = pos;
            }
        }
        match outcome {
            Ok(()) => {
                if let Some(len) = length
                    && pos != len
                {
                    let e = Error::Network(format!("{}: got {pos} of {len} bytes", src.name));
                    attempt += 1;
                    if attempt >= ctx.opts.max_attempts {
                        return Err(e);
                    }
                    continue;
                }
                let f = file.clone();
                let p = path.clone();
                blocking(move || {
                    // Trailing zero blocks were skipped: give the file its full length.
                    f.set_len(pos)
                        .map_err(|e| Error::io(&p, "cannot size", e))?;
                    f.sync_data().map_err(|e| Error::io(&p, "cannot sync", e))
                })
                .await?;
                ctx.progress.set_file_total(counters, pos);
                return Ok(Downloaded {
                    name: src.name.clone(),
                    dest: PathBuf::new(),
                    temp: temp.to_path_buf(),
                    size: pos,
                    checksum: src.checksum.clone(),
                    fetched,
                    resumed: 0,
                    sha256: sha.take().map(|h| sha2::Digest::finalize(h).into()),
                });
            }
            Err(e) if retryable(&e) => {
                attempt += 1;
                if attempt >= ctx.opts.max_attempts {
                    return Err(e);
                }
                let wait = backoff(
                    Duration::from_millis(ctx.opts.retry_base_delay_ms),
                    attempt - 1,
                );
                tokio::select! {
                    _ = ctx.cancel.cancelled() => return Err(Error::Cancelled),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
}

async fn write_block(file: &Arc<File>, path: &Path, at: u64, data: Vec<u8>) -> Result<Vec<u8>> {
    let (file, path) = (file.clone(), path.to_path_buf());
    let mut data = blocking(move || write_sparse(&file, &path, at, &data).map(|_| data)).await?;
    data.clear();
    Ok(data)
}

fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    use std::io::Read as _;
    let mut f = File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
    let mut h = <sha2::Sha256 as sha2::Digest>::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::io(path, "cannot read", e))?;
        if n == 0 {
            return Ok(sha2::Digest::finalize(h).into());
        }
        sha2::Digest::update(&mut h, &buf[..n]);
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::Internal(format!("a file task failed: {e}"))))
}
