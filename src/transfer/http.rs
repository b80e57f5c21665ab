//! HTTP sources: a probe request learns size, validator and range support; then ranged parts
//! in parallel (resumable, see `ranged`) or one sequential stream (see `stream`) when the server
//! ignores Range or gives no length.

use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::header::ETAG;
use tokio_util::sync::CancellationToken;

use super::body::{ByteStream, http_body};
use super::journal::Validator;
use super::range_set::RangeSet;
use super::ranged::{self, RangeFetch};
use super::request::{
    content_range_star_total, content_range_total, parse_content_range, send_with_retry,
    validator_of,
};
use super::{Downloaded, FileSource, HttpSource, TempFile, TransferCtx, stream};
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::progress::FileCounters;

// The property tests name the Content-Range parser by its path from before it moved to `request`.
#[cfg(test)]
pub(crate) use super::request::content_range;

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
            pinned_validator(http, &probe, content_range_total(&probe)?),
            http.hooks
                .server_checksum
                .and_then(|read| read(probe.headers())),
        ),
        StatusCode::RANGE_NOT_SATISFIABLE => {
            // Only an empty object has no byte 0, and the server must say so.
            if content_range_star_total(&probe) != Some(0) {
                return Err(Error::Remote(format!(
                    "{}: the server refused the first byte (HTTP 416) without saying the object is empty",
                    src.name
                )));
            }
            (pinned_validator(http, &probe, 0), None)
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
// The sparse source's parts as the dispatcher holds them (size, extents, base), then the
// transfer's own: one struct would only be unpacked again.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn fetch_extents(
    ctx: &Arc<TransferCtx>,
    src: &Arc<FileSource>,
    http: &HttpSource,
    size: u64,
    extents: &[(u64, u64)],
    base: Option<&super::incremental::BaseImage>,
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
        pinned_validator(http, &probe, size)
    };
    let fetcher = ranges(ctx, src, http, &validator);
    let Some(base) = base else {
        return ranged::download(ctx, src, fetcher, temp, counters, validator, holes).await;
    };
    // A temp file started from a base is that base's: resumed only with the same one.
    let mut validator = validator;
    validator.etag = Some(format!(
        "{} from {}",
        validator.etag.as_deref().unwrap_or("-"),
        base.id
    ));
    let start = ranged::Start {
        holes,
        base: Some(base.clone()),
    };
    ranged::download_from(ctx, src, fetcher, temp, counters, validator, start).await
}

/// The answer's validator; with a version header (see [`super::SourceHooks`]), that version
/// stands in for the ETag and Last-Modified.
fn pinned_validator(http: &HttpSource, probe: &reqwest::Response, size: u64) -> Validator {
    let pinned = http.hooks.version_header.and_then(|h| {
        let v = probe.headers().get(h)?.to_str().ok()?;
        Some(format!("{h}:{v}"))
    });
    match pinned {
        Some(version) => Validator {
            size,
            etag: Some(version),
            last_modified: None,
        },
        None => validator_of(probe, size),
    }
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
        // A version the URL pins needs no If-Range: every answer is of that version or none.
        if_range: validator
            .if_range()
            .filter(|_| {
                // Only when the version header stood in for the validator; without it in the
                // first answer, If-Range works as for any other server.
                !http.hooks.version_header.is_some_and(|h| {
                    validator
                        .etag
                        .as_deref()
                        .is_some_and(|e| e.starts_with(&format!("{h}:")))
                })
            })
            .map(str::to_string),
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
    fn host(&self) -> Option<String> {
        Some(super::hosts::key(&self.http.url))
    }

    fn open<'a>(
        &'a self,
        start: u64,
        end: u64,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<ByteStream>> {
        Box::pin(async move {
            let ask = self
                .http
                .hooks
                .range_md5_header
                .filter(|_| end - start <= MAX_MD5_RANGE);
            let with_md5 = ask.is_some();
            let mut http = std::borrow::Cow::Borrowed(&self.http);
            if let Some(name) = ask {
                http.to_mut()
                    .headers
                    .insert(name, reqwest::header::HeaderValue::from_static("true"));
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
                let got = match self.http.hooks.version_header {
                    // The validator is `{header}:{version}` (see `pinned_validator`) when the
                    // first answer carried that header; else it is the ETag, as without one.
                    Some(h) if want.starts_with(&format!("{h}:")) => resp
                        .headers()
                        .get(h)
                        .and_then(|v| v.to_str().ok())
                        .map(|v| format!("{h}:{v}")),
                    _ => resp
                        .headers()
                        .get(ETAG)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string),
                };
                if got.as_deref() != Some(want.as_str()) {
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

    fn cuttable(&self) -> bool {
        // A range with its MD5 is checked at its end: never cut short.
        self.http.hooks.range_md5_header.is_none()
    }

    fn max_part(&self) -> u64 {
        if self.http.hooks.range_md5_header.is_some() {
            MAX_MD5_RANGE
        } else {
            u64::MAX
        }
    }
}

/// The largest range a per-range MD5 is asked for (Azure Blob's limit).
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
