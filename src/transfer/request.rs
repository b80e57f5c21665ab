//! One HTTP request as every download strategy sends it (retried, bounded by the stall timeout,
//! redirected without credentials to another origin, its status mapped to an error), and the
//! headers of its answer that every strategy reads. It sits below `http` and `stream` so that
//! neither needs the other for it.

use std::time::Duration;

use reqwest::header::{CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, LOCATION, RANGE};
use reqwest::{Response, StatusCode};
use tokio_util::sync::CancellationToken;

use super::journal::Validator;
use super::retry::{is_retryable_status, retry_after};
use super::{HttpSource, TransferCtx, redact_url};
use crate::error::{Error, Result};

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
pub(crate) fn content_range_star_total(resp: &Response) -> Option<u64> {
    let v = resp.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    v.trim().strip_prefix("bytes */")?.trim().parse().ok()
}

/// `Content-Range: bytes a-b/total` → (a, b, total).
pub(crate) fn parse_content_range(resp: &Response) -> Option<(u64, u64, u64)> {
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

pub(crate) fn content_range_total(resp: &Response) -> Result<u64> {
    parse_content_range(resp)
        .map(|(_, _, t)| t)
        .ok_or_else(|| Error::Remote("a 206 answer without a usable Content-Range header".into()))
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
                if status == StatusCode::TOO_MANY_REQUESTS
                    || status == StatusCode::SERVICE_UNAVAILABLE
                {
                    // The host asks for less: the part counts of its files back off.
                    super::hosts::note_throttled(&http.url);
                }
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
