//! The one entry point the engine calls for a file: it picks the strategy by source kind and owns
//! what every strategy shares at the end (one start-over on a changed source, the size check,
//! a digest no strategy computed on the way).

use std::sync::Arc;

use super::journal::Validator;
use super::range_set::RangeSet;
use super::{BlockSource, blocking, checksum, http, local, ranged};
use super::{Downloaded, FileSource, SourceKind, TempFile, TransferCtx};
use crate::error::{Error, Result};
use crate::progress::FileCounters;

/// [`fetch_or_absent`], for a source that is never optional.
#[cfg(test)]
pub(crate) async fn fetch(
    ctx: &Arc<TransferCtx>,
    src: &Arc<FileSource>,
    counters: &Arc<FileCounters>,
) -> Result<Downloaded> {
    fetch_or_absent(ctx, src, counters)
        .await?
        .ok_or_else(|| Error::Internal(format!("{}: the writer never made the file", src.name)))
}

/// Brings `src` into place for the file `src.name` of the output folder (see the module docs).
/// The source may change under us once (a new ETag mid-download): then the file starts over,
/// once. `None`: an optional [`super::Written`] file its writer never made.
pub(crate) async fn fetch_or_absent(
    ctx: &Arc<TransferCtx>,
    src: &Arc<FileSource>,
    counters: &Arc<FileCounters>,
) -> Result<Option<Downloaded>> {
    let temp = TempFile::for_name(&ctx.dir, &src.name);
    let mut started_over = false;
    loop {
        let result = match &src.kind {
            SourceKind::Http(h) => http::fetch(ctx, src, h, &temp, counters).await,
            SourceKind::HttpExtents {
                http: h,
                size,
                extents,
                base,
            } => {
                http::fetch_extents(ctx, src, h, *size, extents, base.as_ref(), &temp, counters)
                    .await
            }
            SourceKind::Blocks(b) => blocks(ctx, src, b, &temp, counters).await,
            SourceKind::Local(path) => local::copy(ctx, src, path, &temp, counters).await,
            SourceKind::Written(w) => match local::follow(ctx, src, w, counters).await {
                Ok(None) => return Ok(None),
                Ok(Some(d)) => Ok(d),
                Err(e) => Err(e),
            },
        };
        match result {
            Err(Error::SourceChanged(_)) if !started_over => {
                started_over = true;
                tracing::info!(file = %src.name, "source changed during download, starting over");
                continue;
            }
            Err(e) => return Err(e),
            Ok(mut d) => {
                d.dest = ctx.dir.join(&src.name);
                d.retries = counters.retries();
                if let Some(want) = src.expected_size {
                    if d.size != want {
                        return Err(Error::Verification(format!(
                            "{} has {} bytes, {want} expected",
                            src.name, d.size
                        )));
                    }
                    d.size_verified = true;
                }
                if let (Some(kind), None) = (src.want_digest, &d.digest) {
                    // A path that did not hash as it went: read the finished file once.
                    let (file, path) = (d.file.clone(), d.temp.clone());
                    let cancel = ctx.cancel.clone();
                    d.digest = Some(
                        blocking(move || checksum::digest_file(kind, &file, &path, &cancel))
                            .await?,
                    );
                }
                return Ok(Some(d));
            }
        }
    }
}

/// A provider's sparse source: its extents through its own range source, the rest holes.
async fn blocks(
    ctx: &Arc<TransferCtx>,
    src: &Arc<FileSource>,
    b: &BlockSource,
    temp: &TempFile,
    counters: &Arc<FileCounters>,
) -> Result<Downloaded> {
    let mut data = RangeSet::new();
    for &(a, e) in &b.extents {
        if a > e || e > b.size {
            return Err(Error::Internal(format!(
                "{}: extent {a}..{e} lies outside the {} bytes of the file",
                src.name, b.size
            )));
        }
        data.insert(a, e);
    }
    let mut holes = RangeSet::new();
    for (a, e) in data.gaps(b.size) {
        holes.insert(a, e);
    }
    // A temp file started from a base is that base's: resumed only with the same one.
    let etag = match &b.base {
        Some(base) => format!("{} from {}", b.version, base.id),
        None => b.version.clone(),
    };
    let validator = Validator {
        size: b.size,
        etag: Some(etag),
        last_modified: None,
    };
    let start = ranged::Start {
        holes,
        base: b.base.clone(),
    };
    ranged::download_from(ctx, src, b.fetch.clone(), temp, counters, validator, start).await
}
