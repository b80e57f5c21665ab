//! Local sources: a file copied in parts like a remote object (same journal, resume, holes,
//! throttling), and a file another process writes, watched until its writer is finished.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio_util::sync::CancellationToken;

use super::body::ByteStream;
use super::journal::Validator;
use super::range_set::RangeSet;
use super::ranged::{self, RangeFetch};
use super::{Downloaded, FileSource, TempFile, TransferCtx, WriterState, Written};
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::progress::FileCounters;

/// Copies the local file `path` into `temp`, in parts, resumable.
pub(crate) async fn copy(
    ctx: &Arc<TransferCtx>,
    src: &Arc<FileSource>,
    path: &Path,
    temp: &TempFile,
    counters: &Arc<FileCounters>,
) -> Result<Downloaded> {
    let validator = identity(path).await?;
    let fetcher = Arc::new(LocalRanges {
        path: path.to_path_buf(),
        validator: validator.clone(),
    });
    ranged::download(
        ctx,
        src,
        fetcher,
        temp,
        counters,
        validator,
        RangeSet::new(),
    )
    .await
}

/// Size, device, inode and modification time: a local file's "ETag".
async fn identity(path: &Path) -> Result<Validator> {
    let m = tokio::fs::metadata(path)
        .await
        .map_err(|e| Error::io(path, "cannot read", e))?;
    if !m.is_file() {
        return Err(Error::InvalidArgument(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let modified = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    #[cfg(unix)]
    let id = {
        use std::os::unix::fs::MetadataExt as _;
        format!("local:{}:{}:{modified}", m.dev(), m.ino())
    };
    #[cfg(not(unix))]
    let id = format!("local:{modified}");
    Ok(Validator {
        size: m.len(),
        etag: Some(id),
        last_modified: None,
    })
}

struct LocalRanges {
    path: PathBuf,
    validator: Validator,
}

impl RangeFetch for LocalRanges {
    fn cuttable(&self) -> bool {
        true
    }

    fn open<'a>(
        &'a self,
        start: u64,
        end: u64,
        _cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<ByteStream>> {
        Box::pin(async move {
            // A file that changed since the copy began is another version: start over.
            if identity(&self.path).await? != self.validator {
                return Err(Error::SourceChanged(self.path.display().to_string()));
            }
            let mut f = tokio::fs::File::open(&self.path)
                .await
                .map_err(|e| Error::io(&self.path, "cannot open", e))?;
            f.seek(SeekFrom::Start(start))
                .await
                .map_err(|e| Error::io(&self.path, "cannot seek in", e))?;
            let path = self.path.clone();
            let reader =
                tokio_util::io::ReaderStream::with_capacity(f.take(end - start), 256 << 10);
            Ok(Box::pin(futures_util::StreamExt::map(reader, move |r| {
                r.map_err(|e| Error::io(&path, "cannot read", e))
            })) as ByteStream)
        })
    }
}

/// Watches a file another process writes: its size is the progress, the writer's state the
/// end. The bytes stay where the writer put them; the engine verifies and renames them.
/// `None`: an optional file the writer finished without ever making.
pub(crate) async fn follow(
    ctx: &Arc<TransferCtx>,
    src: &Arc<FileSource>,
    w: &Written,
    counters: &Arc<FileCounters>,
) -> Result<Option<Downloaded>> {
    let mut state = w.state.clone();
    let every = Duration::from_millis(ctx.opts.poll_file_interval_ms);
    if let Some(size) = w.final_size.or(src.size_hint) {
        ctx.progress.set_file_total(counters, size);
    }
    ctx.progress.restart_file(counters);
    let mut seen = 0u64;
    loop {
        let current = state.borrow_and_update().clone();
        let len = match tokio::fs::metadata(&w.path).await {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(Error::io(&w.path, "cannot look at", e)),
        };
        if len > seen {
            ctx.progress.add_done(counters, len - seen, true);
            seen = len;
        }
        match current {
            WriterState::Running => {}
            WriterState::Failed(msg) => {
                return Err(Error::Remote(format!("writing {} failed: {msg}", src.name)));
            }
            WriterState::Finished => {
                let m = match tokio::fs::metadata(&w.path).await {
                    Err(e)
                        if e.kind() == std::io::ErrorKind::NotFound && w.optional && seen == 0 =>
                    {
                        ctx.progress.set_file_total(counters, 0);
                        return Ok(None);
                    }
                    m => m.map_err(|e| {
                        Error::io(&w.path, "the writer finished but left no file at", e)
                    })?,
                };
                if !m.is_file() {
                    return Err(Error::Remote(format!(
                        "{} is not a regular file",
                        w.path.display()
                    )));
                }
                let size = m.len();
                if let Some(want) = w.final_size
                    && want != size
                {
                    return Err(Error::Verification(format!(
                        "{}: the writer finished with {size} bytes, {want} expected",
                        src.name
                    )));
                }
                ctx.progress.set_file_total(counters, size);
                if size > seen {
                    ctx.progress.add_done(counters, size - seen, true);
                }
                let file = std::fs::File::open(&w.path)
                    .map_err(|e| Error::io(&w.path, "cannot open", e))?;
                return Ok(Some(Downloaded {
                    name: src.name.clone(),
                    dest: PathBuf::new(),
                    temp: w.path.clone(),
                    temp_name: None,
                    file: Arc::new(file),
                    size,
                    checksum: src.checksum.clone(),
                    fetched: size,
                    resumed: 0,
                    retries: 0,
                    digest: None,
                    size_verified: w.final_size.is_some(),
                }));
            }
        }
        tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => return Err(Error::Cancelled),
            changed = state.changed() => {
                if changed.is_err() && *state.borrow() == WriterState::Running {
                    return Err(Error::Internal(format!(
                        "the writer of {} went away without saying how it ended",
                        src.name
                    )));
                }
            }
            _ = tokio::time::sleep(every) => {}
        }
    }
}
