//! One sequential HTTP stream, for servers that ignore Range or give no length: every attempt
//! starts from byte 0. Progress never goes backwards: a restarted attempt counts only bytes
//! beyond the furthest point reached before. Bytes arrive in order, so a wanted SHA-256 is
//! computed on the way.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::Response;
use reqwest::header::CONTENT_LENGTH;

use super::body::{http_body, next_chunk};
use super::ranged::WRITE_BUFFER;
use super::request::send_with_retry;
use super::sparse::write_sparse;
use super::{Downloaded, FileSource, HttpSource, TempFile, TransferCtx, blocking, throttle};
use crate::error::{Error, Result};
use crate::progress::FileCounters;

pub(crate) async fn download(
    ctx: &Arc<TransferCtx>,
    src: &Arc<FileSource>,
    http: &HttpSource,
    temp: &TempFile,
    counters: &Arc<FileCounters>,
    first: Response,
) -> Result<Downloaded> {
    ctx.progress.restart_file(counters);
    // Nothing here can be resumed: an old journal no longer describes the temp file.
    ctx.dir.remove(&temp.journal);
    let cap = WRITE_BUFFER;
    let _permit = tokio::select! {
        _ = ctx.cancel.cancelled() => return Err(Error::Cancelled),
        p = super::PROCESS_LIMITS.budget.acquire(cap as u64) => p,
    };
    let mut resp = Some(first);
    let mut high_water = 0u64;
    let mut fetched = 0u64;
    let mut attempts = ctx.opts.attempts();
    let stall = ctx.opts.stall();
    loop {
        let r = match resp.take() {
            Some(r) => r,
            None => send_with_retry(ctx, &ctx.cancel, http, &src.name, None, None).await?,
        };
        let length = r
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(len) = length {
            ctx.progress.set_file_total(counters, len);
        }
        let file = {
            let (dir, temp) = (ctx.dir.clone(), temp.clone());
            blocking(move || {
                // Every attempt starts from byte 0, in a file of ours (never through a link).
                let f = dir.create_replacing_own(&temp.name)?;
                if let Some(len) = length {
                    f.set_len(len)
                        .map_err(|e| Error::io(&temp.path, "cannot size", e))?;
                }
                Ok(Arc::new(f))
            })
            .await?
        };
        let mut pos = 0u64;
        let mut buf: Vec<u8> = Vec::with_capacity(cap);
        let mut body = http_body(r, &src.name);
        // Every attempt streams from byte 0.
        let mut sha = src.want_digest.map(super::Digest::hasher);
        let outcome: Result<()> = loop {
            let chunk = match next_chunk(&mut body, stall, &ctx.cancel, &src.name).await {
                Ok(Some(c)) => c,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            if let Err(e) = throttle(ctx, &ctx.cancel, chunk.len() as u64).await {
                break Err(e);
            }
            fetched += chunk.len() as u64;
            if let Some(h) = sha.as_mut() {
                h.update(&chunk);
            }
            buf.extend_from_slice(&chunk);
            if buf.len() >= cap {
                let at = pos;
                pos += buf.len() as u64;
                buf = write_block(&file, &temp.path, at, std::mem::take(&mut buf)).await?;
                if pos > high_water {
                    ctx.progress.add_done(counters, pos - high_water, true);
                    high_water = pos;
                }
            }
        };
        if !buf.is_empty() {
            let at = pos;
            pos += buf.len() as u64;
            write_block(&file, &temp.path, at, buf).await?;
            if pos > high_water {
                ctx.progress.add_done(counters, pos - high_water, true);
                high_water = pos;
            }
        }
        let outcome = match (outcome, length) {
            (Ok(()), Some(len)) if pos != len => Err(Error::Network(format!(
                "{}: got {pos} of {len} bytes",
                src.name
            ))),
            (o, _) => o,
        };
        match outcome {
            Ok(()) => {
                let (f, p) = (file.clone(), temp.path.clone());
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
                    temp: temp.path.clone(),
                    temp_name: Some(temp.name.clone()),
                    file,
                    size: pos,
                    checksum: src.checksum.clone(),
                    fetched,
                    resumed: 0,
                    retries: 0,
                    digest: sha.take().map(|h| h.finalize().into_vec()),
                    // A stream that ended without a stated length may have been cut short.
                    size_verified: length.is_some(),
                });
            }
            Err(e) => {
                // Progress within an attempt does not help: the next one starts from byte 0.
                let retried = attempts.retries;
                attempts.failed(e, false, None, &ctx.cancel).await?;
                counters.add_retries(attempts.retries - retried);
            }
        }
    }
}

async fn write_block(file: &Arc<File>, path: &Path, at: u64, data: Vec<u8>) -> Result<Vec<u8>> {
    let (file, path) = (file.clone(), path.to_path_buf());
    let mut data = blocking(move || {
        write_sparse(&file, &path, at, &data)?;
        // The bytes go to disk as they arrive, so the sync at the end has little left to do.
        crate::platform::start_writeback(&file, at, data.len() as u64);
        Ok(data)
    })
    .await?;
    data.clear();
    Ok(data)
}
