//! HTTP sources: a probe request learns size, validator and range support; then ranged parts
//! in parallel (resumable, see `ranged`) or one sequential stream (see `stream`) when the server
//! ignores Range or gives no length.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_RANGE, ETAG, HeaderMap, IF_RANGE, LAST_MODIFIED, LOCATION, RANGE};
use reqwest::{Response, StatusCode};
use tokio_util::sync::CancellationToken;

use super::body::{ByteStream, http_body};
use super::checksum::Checksum;
use super::journal::Validator;
use super::range_set::RangeSet;
use super::ranged::{self, RangeFetch};
use super::retry::{is_retryable_status, retry_after};
use super::{Downloaded, FileSource, HttpSource, TempFile, TransferCtx, redact_url, stream};
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::progress::FileCounters;

/// A plain URL: probe, then ranged parts or one stream.
pub(crate) async fn fetch(
    ctx: &Arc<TransferCtx>,
    src: &Arc<FileSource>,
    http: &HttpSource,
    temp: &TempFile,
    counters: &Arc<FileCounters>,
) -> Result<Downloaded> {
    let probe = send_with_retry(ctx, &ctx.cancel, http, &src.name, Some((0, 0)), None).await?;
    let (validator, server_sum) = match probe.status() {
        StatusCode::PARTIAL_CONTENT => (
            validator_of(&probe, content_range_total(&probe)?),
            server_checksum(probe.headers()),
        ),
        StatusCode::RANGE_NOT_SATISFIABLE => {
            // Only an empty object has no byte 0, and the server must say so.
            if content_range_star_total(&probe) != Some(0) {
                return Err(Error::Remote(format!(
                    "{}: the server refused the first byte (HTTP 416) without saying the object is empty",
                    src.name
                )));
            }
            (validator_of(&probe, 0), None)
        }
        // The server ignores Range: its answer is the one stream.
        _ => return stream::download(ctx, src, http, temp, counters, probe).await,
    };
    drop(probe);
    let fetcher = ranges(ctx, src, http, &validator);
    let mut d = ranged::download(
        ctx,
        src,
        fetcher,
        temp,
        counters,
        validator,
        RangeSet::new(),
    )
    .await?;
    d.checksum = d.checksum.or(server_sum);
    Ok(d)
}

/// Only the given extents of a URL; everything else is a hole from the start.
pub(crate) async fn fetch_extents(
    ctx: &Arc<TransferCtx>,
    src: &Arc<FileSource>,
    http: &HttpSource,
    size: u64,
    extents: &[(u64, u64)],
    temp: &TempFile,
    counters: &Arc<FileCounters>,
) -> Result<Downloaded> {
    let mut data = RangeSet::new();
    for &(a, b) in extents {
        if a > b || b > size {
            return Err(Error::Internal(format!(
                "{}: extent {a}..{b} lies outside the {size} bytes of the file",
                src.name
            )));
        }
        data.insert(a, b);
    }
    let mut holes = RangeSet::new();
    for (a, b) in data.gaps(size) {
        holes.insert(a, b);
    }
    // The probe learns the validator (ETag) that every part is checked against; a sparse source
    // must answer ranges, so anything but a 206 (or 416 for an empty object) is an error.
    let probe_at = extents.first().map(|e| e.0).unwrap_or(0);
    let validator = if size == 0 || data.covered() == 0 {
        Validator {
            size,
            etag: None,
            last_modified: None,
        }
    } else {
        let probe = send_with_retry(
            ctx,
            &ctx.cancel,
            http,
            &src.name,
            Some((probe_at, probe_at)),
            None,
        )
        .await?;
        if probe.status() != StatusCode::PARTIAL_CONTENT {
            return Err(Error::Remote(format!(
                "{}: the server does not answer ranged requests (HTTP {}), which a sparse source needs",
                src.name,
                probe.status()
            )));
        }
        let total = content_range_total(&probe)?;
        if total != size {
            return Err(Error::SourceChanged(src.name.clone()));
        }
        validator_of(&probe, size)
    };
    let fetcher = ranges(ctx, src, http, &validator);
    ranged::download(ctx, src, fetcher, temp, counters, validator, holes).await
}

fn ranges(
    ctx: &Arc<TransferCtx>,
    src: &FileSource,
    http: &HttpSource,
    validator: &Validator,
) -> Arc<dyn RangeFetch> {
    Arc::new(HttpRanges {
        ctx: ctx.clone(),
        http: http.clone(),
        name: src.name.clone(),
        if_range: validator.if_range().map(str::to_string),
        etag: validator.strong_etag().map(str::to_string),
        size: validator.size,
    })
}

/// Ranged GETs of one object version: `If-Range` with the validator, and only a 206 whose
/// Content-Range is exactly the request is accepted (anything else: the source changed).
struct HttpRanges {
    ctx: Arc<TransferCtx>,
    http: HttpSource,
    name: String,
    if_range: Option<String>,
    /// Every part must come from this version (a server that honours If-Range badly, or a
    /// cache in between, may answer a 206 of another one).
    etag: Option<String>,
    size: u64,
}

impl RangeFetch for HttpRanges {
    fn open<'a>(
        &'a self,
        start: u64,
        end: u64,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<ByteStream>> {
        Box::pin(async move {
            let with_md5 = self.http.range_md5 && end - start <= MAX_MD5_RANGE;
            let mut http = std::borrow::Cow::Borrowed(&self.http);
            if with_md5 {
                http.to_mut().headers.insert(
                    "x-ms-range-get-content-md5",
                    reqwest::header::HeaderValue::from_static("true"),
                );
            }
            let resp = send_with_retry(
                &self.ctx,
                cancel,
                &http,
                &self.name,
                Some((start, end - 1)),
                self.if_range.as_deref(),
            )
            .await?;
            if resp.status() != StatusCode::PARTIAL_CONTENT {
                // With If-Range, a 200 means the object is another one now.
                return Err(Error::SourceChanged(self.name.clone()));
            }
            match parse_content_range(&resp) {
                Some((a, b, t)) if a == start && b == end - 1 && t == self.size => {}
                _ => return Err(Error::SourceChanged(self.name.clone())),
            }
            if let Some(want) = &self.etag {
                let got = resp.headers().get(ETAG).and_then(|v| v.to_str().ok());
                if got != Some(want.as_str()) {
                    return Err(Error::SourceChanged(self.name.clone()));
                }
            }
            let md5 = with_md5
                .then(|| resp.headers().get("content-md5"))
                .flatten()
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = http_body(resp, &self.name);
            Ok(match md5 {
                Some(want) => md5_checked(
                    body,
                    want,
                    end - start,
                    format!("{} bytes {start}..{end}", self.name),
                ),
                None => body,
            })
        })
    }

    fn max_part(&self) -> u64 {
        if self.http.range_md5 {
            MAX_MD5_RANGE
        } else {
            u64::MAX
        }
    }
}

/// The largest range Azure Blob gives an MD5 for.
const MAX_MD5_RANGE: u64 = 4 << 20;

/// Passes `body` through, then fails with a verification error at its end when the MD5 of the
/// `len` bytes that passed is not `want` (base64, as in `Content-MD5`). A body that ends short
/// is left to the caller's "closed early" retry.
fn md5_checked(body: ByteStream, want: String, len: u64, what: String) -> ByteStream {
    use futures_util::StreamExt as _;
    use md5::Digest as _;
    struct State {
        body: ByteStream,
        hash: Option<md5::Md5>,
        seen: u64,
        len: u64,
        want: String,
        what: String,
    }
    let state = State {
        body,
        hash: Some(md5::Md5::new()),
        seen: 0,
        len,
        want,
        what,
    };
    Box::pin(futures_util::stream::unfold(state, |mut st| async move {
        let hash = st.hash.as_mut()?;
        match st.body.next().await {
            Some(Ok(chunk)) => {
                hash.update(&chunk);
                st.seen += chunk.len() as u64;
                Some((Ok(chunk), st))
            }
            Some(Err(e)) => {
                st.hash = None;
                Some((Err(e), st))
            }
            None => {
                use base64::Engine as _;
                let got =
                    base64::engine::general_purpose::STANDARD.encode(st.hash.take()?.finalize());
                if got == st.want || st.seen != st.len {
                    None
                } else {
                    let e = Error::Verification(format!(
                        "{}: MD5 {got}, the server stated {}",
                        st.what, st.want
                    ));
                    Some((Err(e), st))
                }
            }
        }
    }))
}

pub(crate) fn validator_of(resp: &Response, size: u64) -> Validator {
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

/// `Content-Range: bytes */total` (a 416's way of giving the size) → total.
fn content_range_star_total(resp: &Response) -> Option<u64> {
    let v = resp.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    v.trim().strip_prefix("bytes */")?.trim().parse().ok()
}

/// `Content-Range: bytes a-b/total` → (a, b, total).
fn parse_content_range(resp: &Response) -> Option<(u64, u64, u64)> {
    content_range(resp.headers().get(CONTENT_RANGE)?.to_str().ok()?)
}

/// `bytes a-b/total` → (a, b, total), only when `a ≤ b < total` (a server that answers a range
/// outside the object it names is lying about one of them).
pub(crate) fn content_range(v: &str) -> Option<(u64, u64, u64)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let (a, b, t): (u64, u64, u64) = (
        a.trim().parse().ok()?,
        b.trim().parse().ok()?,
        total.trim().parse().ok()?,
    );
    (a <= b && b < t).then_some((a, b, t))
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
pub(crate) async fn send_with_retry(
    ctx: &TransferCtx,
    cancel: &CancellationToken,
    http: &HttpSource,
    name: &str,
    range: Option<(u64, u64)>,
    if_range: Option<&str>,
) -> Result<Response> {
    let mut attempts = ctx.opts.attempts();
    let stall = ctx.opts.stall();
    loop {
        let (err, wait) = match send_once(http, name, range, if_range, stall, cancel).await {
            Ok(resp) => {
                let status = resp.status();
                if status.is_success()
                    || status == StatusCode::RANGE_NOT_SATISFIABLE && range == Some((0, 0))
                {
                    return Ok(resp);
                }
                let err = status_error(status, name, &http.url);
                let wait = is_retryable_status(status)
                    .then(|| retry_after(resp.headers()))
                    .flatten();
                (err, wait)
            }
            Err(e) => (e, None),
        };
        attempts.failed(err, false, wait, cancel).await?;
    }
}

async fn send_once(
    http: &HttpSource,
    name: &str,
    range: Option<(u64, u64)>,
    if_range: Option<&str>,
    stall: Duration,
    cancel: &CancellationToken,
) -> Result<Response> {
    let mut url = http.url.clone();
    // Same-origin redirects are followed by the client itself; one to another origin comes
    // back here and is followed without the source's headers and signer, which may be
    // credentials for the first host only (an API key, a SigV4 signature).
    for hop in 0..=MAX_CROSS_ORIGIN_REDIRECTS {
        let first = hop == 0;
        let mut req = http.client.get(url.clone());
        if first {
            req = req.headers(http.headers.clone());
        }
        if let Some((a, b)) = range {
            req = req.header(RANGE, format!("bytes={a}-{b}"));
        }
        if let Some(v) = if_range {
            req = req.header(IF_RANGE, v);
        }
        let mut request = req
            .build()
            .map_err(|e| Error::http(&format!("request for {name}"), e))?;
        if first && let Some(signer) = &http.signer {
            signer.sign(&mut request).await?;
        }
        let resp = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(Error::Cancelled),
            r = tokio::time::timeout(stall, http.client.execute(request)) => match r {
                Ok(Ok(resp)) => resp,
                Ok(Err(e)) => return Err(Error::http(&format!("request for {name}"), e)),
                Err(_) => {
                    return Err(Error::Timeout(format!("no answer for {name} within {stall:?}")));
                }
            },
        };
        if !resp.status().is_redirection() {
            return Ok(resp);
        }
        let Some(next) = resp
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| url.join(l).ok())
        else {
            return Ok(resp);
        };
        if url.scheme() == "https" && next.scheme() != "https" {
            return Err(Error::Remote(format!(
                "{name}: refused a redirect from https to {}",
                next.scheme()
            )));
        }
        url = next;
    }
    Err(Error::Remote(format!("{name}: too many redirects")))
}

/// Redirects to another origin followed per request.
const MAX_CROSS_ORIGIN_REDIRECTS: usize = 5;

fn status_error(status: StatusCode, name: &str, url: &url::Url) -> Error {
    let what = format!("HTTP {status} for {name} ({})", redact_url(url));
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::Auth(what),
        StatusCode::NOT_FOUND | StatusCode::GONE => Error::NotFound(what),
        s if is_retryable_status(s) => Error::Network(what),
        _ => Error::Remote(what),
    }
}
