//! One part's worker: its requests, its buffer, its CRC, and what it records for the journal.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::journal_sync::maybe_sync_journal;
use super::span::Span;
use super::{Ranged, WRITE_BUFFER};
use crate::error::{Error, Result};
use crate::sync::lock;
use crate::transfer::body::next_chunk;
use crate::transfer::sparse::write_sparse;
use crate::transfer::{PROCESS_LIMITS, blocking, throttle};

/// Fetches `[start, end)` into place, retrying and continuing from the last byte received.
pub(super) async fn fetch_part(st: &Arc<Ranged>, start: u64, end: u64) -> Result<()> {
    let cap = WRITE_BUFFER.min((end - start) as usize);
    let permits = take_permits(st, cap).await?;
    run_part(st, start, end, cap, permits).await
}

/// Takes the back half of the running part with the most left ([`super::span`]), once this
/// part holds its connection and its buffer: cut before, the running part would stop at the
/// cut while its back half still waited for a connection another file may take first.
pub(super) async fn fetch_cut(st: &Arc<Ranged>) -> Result<()> {
    // The file's last part may end meanwhile: then there is nothing to cut, and the file must
    // not wait for a connection other files hold.
    let permits = tokio::select! {
        p = take_permits(st, WRITE_BUFFER) => p?,
        _ = st.running.none_left() => return Ok(()),
    };
    if st.stop.is_cancelled() {
        return Err(Error::Cancelled);
    }
    match st.running.split(st.fetch.min_part()) {
        Some((start, end)) => {
            let cap = WRITE_BUFFER.min((end - start) as usize);
            run_part(st, start, end, cap, permits).await
        }
        // Another part took it, or the part ended meanwhile.
        None => Ok(()),
    }
}

/// Longest a part keeps received bytes in its buffer before writing them.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A part's connection of its host and its write buffer's share of the process budget.
type Permits = (
    Option<tokio::sync::OwnedSemaphorePermit>,
    tokio::sync::OwnedSemaphorePermit,
);

async fn take_permits(st: &Arc<Ranged>, cap: usize) -> Result<Permits> {
    // A connection of the host first (shared by every file of the process), then the buffer:
    // always in this order, so no part holds one while another holds the other.
    let connection = match &st.host {
        Some(h) => Some(tokio::select! {
            _ = st.stop.cancelled() => return Err(Error::Cancelled),
            p = h.acquire() => p,
        }),
        None => None,
    };
    let buffer = tokio::select! {
        _ = st.stop.cancelled() => return Err(Error::Cancelled),
        p = PROCESS_LIMITS.budget.acquire(cap as u64) => p,
    };
    Ok((connection, buffer))
}

/// Fetches `[start, end)` holding `_permits` until it ends.
async fn run_part(
    st: &Arc<Ranged>,
    start: u64,
    end: u64,
    cap: usize,
    _permits: Permits,
) -> Result<()> {
    let mut buf = Vec::with_capacity(cap);
    let mut pos = start; // next byte to receive
    // CRC32C of [start, pos): bytes of one part arrive in order.
    let mut crc = Crc { start, value: 0 };
    let mut attempts = st.ctx.opts.attempts();
    // Where the part stops: `end`, or earlier when a free connection took its back half.
    let running = st.running.add(start, end);
    let span = &running.span;
    while pos < span.end() {
        let before = pos;
        let r = stream_range(st, &mut buf, cap, &mut pos, span, &mut crc).await;
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
            // A dropped connection or a stall: the part-count controller backs off.
            st.failed.fetch_add(1, Ordering::Relaxed);
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

/// One request for `[*pos, end)` (the span's end when it is sent); appends to `buf`, flushing
/// when full, advancing `*pos`. Stops early, dropping the connection, where the span was cut.
async fn stream_range(
    st: &Arc<Ranged>,
    buf: &mut Vec<u8>,
    cap: usize,
    pos: &mut u64,
    span: &Span,
    crc: &mut Crc,
) -> Result<()> {
    let ctx = &st.ctx;
    let end = span.end();
    let mut body = st.fetch.open(*pos, end, &st.stop).await?;
    let stall = ctx.opts.stall();
    let mut filled_since = std::time::Instant::now();
    while let Some(chunk) = next_chunk(&mut body, stall, &st.stop, &st.name).await? {
        if chunk.len() as u64 > end - *pos {
            return Err(Error::Remote(format!(
                "{}: the server sent more than the range asked for",
                st.name
            )));
        }
        throttle(ctx, &st.stop, chunk.len() as u64).await?;
        // Only the bytes before the span's end are this part's (the rest belongs to the part
        // that took the back half).
        let keep = span.take(*pos, chunk.len() as u64) as usize;
        let mut rest = &chunk[..keep];
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
            // Written when the buffer is full, or a second after its first byte: on a slow
            // connection (256 KiB/s: a 1 MiB buffer fills in 4 s, and with parts cut for free
            // connections many run at once) a process killed meanwhile must lose about a
            // second of each part, not its whole buffer.
            if buf.len() == cap || filled_since.elapsed() >= FLUSH_EVERY {
                flush(st, buf, *pos, crc).await?;
                filled_since = std::time::Instant::now();
                // Mid-part too: on a slow link one part takes many seconds, and a process
                // killed meanwhile must lose at most a second of it, not the whole part.
                maybe_sync_journal(st).await?;
            }
        }
        let stop = span.end();
        if stop < end && *pos >= stop {
            // Cut: the rest of this response is another part's. (Uncut, the body is read to
            // its end: a per-range checksum is checked there, and the connection is reused.)
            return Ok(());
        }
    }
    let end = span.end();
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
        crate::platform::start_writeback(&file, end_pos - n, n);
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

#[cfg(test)]
mod tests {
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
