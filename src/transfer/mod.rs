//! The downloader every provider uses: bytes from a source into positioned writes in a temp file
//! beside the destination, a resume journal, retries with backoff, stall detection, bandwidth
//! limits, one global buffer budget, sparse output, and checksum verification.
//!
//! A provider describes each file as a [`FileSource`] of one [`SourceKind`]:
//! - [`SourceKind::Http`]: a URL, fetched in ranged parts (or one stream when the server ignores
//!   Range);
//! - [`SourceKind::HttpExtents`]: only the given extents of a URL (Azure page ranges, any sparse
//!   map), the rest left as holes;
//! - [`SourceKind::Blocks`]: only the given extents, read through a provider's own
//!   [`ranged::RangeFetch`] (EBS snapshot blocks), the rest left as holes;
//! - [`SourceKind::Local`]: a local file, copied in parts like a remote one;
//! - [`SourceKind::Written`]: a file another process writes (Hyper-V's `Export-VM`), watched
//!   until the writer says it is finished.
//!
//! [`fetch`] brings one into place and returns a [`Downloaded`]; the export engine verifies and
//! renames. Module map: `dispatch` ([`fetch`], by source kind), `http` (probe, then parts or one
//! stream), `request` (one HTTP request, retried, and the answer's headers), `ranged` (parts in
//! parallel + journal, for any [`ranged::RangeFetch`]), `stream` (one sequential HTTP stream),
//! `local` (local files, written files), `body` (stall-aware chunk reads), `retry` (one retry
//! rule), `limits` (what the whole process shares), `hosts` (connections per host), `redact` (URLs for messages), `temp_file`,
//! `journal`, `range_set`, `sparse`, `checksum`, `throttle`, `budget`.

pub(crate) mod body;
pub(crate) mod budget;
pub(crate) mod checksum;
mod clean;
mod dispatch;
pub(crate) mod hosts;
pub(crate) mod http;
pub(crate) mod incremental;
pub(crate) mod journal;
mod limits;
pub(crate) mod local;
pub(crate) mod options;
pub(crate) mod outdir;
pub(crate) mod range_set;
pub(crate) mod ranged;
mod redact;
pub(crate) mod request;
pub(crate) mod retry;
pub(crate) mod sparse;
pub(crate) mod stream;
mod temp_file;
pub(crate) mod throttle;

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use reqwest::header::HeaderMap;
use tokio_util::sync::CancellationToken;
use url::Url;

pub(crate) use checksum::Checksum;
pub use clean::{Leftover, clean_partials};
#[cfg(test)]
pub(crate) use dispatch::fetch;
pub(crate) use dispatch::fetch_or_absent;
pub(crate) use limits::{DEFAULT_BUFFER_BUDGET, PROCESS_LIMITS, throttle};
pub(crate) use options::TransferOptions;
pub(crate) use outdir::OutDir;
pub use redact::redact_source;
pub(crate) use redact::{redact_url, redact_url_text};
pub(crate) use temp_file::{TempFile, discard_journal, discard_partial};

use crate::error::{Error, Result};
use crate::progress::ProgressState;
use throttle::RateLimiter;

/// One file to bring into the output folder, as a provider describes it.
#[derive(Debug, Clone)]
pub(crate) struct FileSource {
    /// Plain file name inside the output folder (already validated or sanitized).
    pub name: String,
    pub kind: SourceKind,
    /// What the provider knows of the size before the first byte, for early totals (an
    /// estimate is fine: the real size wins).
    pub size_hint: Option<u64>,
    /// The exact size, when the caller or the cloud states it: a file of another size fails
    /// verification.
    pub expected_size: Option<u64>,
    pub checksum: Option<Checksum>,
    /// The caller needs a digest of the whole file (an OVF manifest): computed while the bytes
    /// arrive — in order for a stream, following the in-place prefix for parts.
    pub want_digest: Option<Digest>,
}

impl FileSource {
    /// A plain URL.
    pub fn http(name: String, http: HttpSource) -> FileSource {
        FileSource {
            name,
            kind: SourceKind::Http(http),
            size_hint: None,
            expected_size: None,
            checksum: None,
            want_digest: None,
        }
    }
}

/// Where the bytes of one file come from. (Extents are Azure's page ranges and Written is
/// Hyper-V's `Export-VM`: until those providers land, only the tests in this module build them.)
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub(crate) enum SourceKind {
    /// A URL, fetched in ranged parts when the server supports Range, else as one stream.
    Http(HttpSource),
    /// Only `extents` (`[start, end)`, sorted, within `size`) of a URL are fetched; the rest of
    /// the file reads as zeros and stays a hole. The object must answer ranged GETs.
    HttpExtents {
        http: HttpSource,
        size: u64,
        extents: Vec<(u64, u64)>,
        /// An incremental export (Azure's page-range diff): the file starts as this previous
        /// image, its zeroed ranges and `extents` punched out, and only `extents` are fetched.
        base: Option<incremental::BaseImage>,
    },
    /// Only `extents` (`[start, end)`, sorted, within `size`) are fetched, through the
    /// provider's own range source (EBS direct API blocks); the rest reads as zeros and stays
    /// a hole. `version` names the fixed content being read (a snapshot id): a resume keeps
    /// bytes only from the same version.
    Blocks(BlockSource),
    /// A local file, copied in parts (resumable like a download).
    Local(PathBuf),
    /// A file another process writes; see [`Written`].
    Written(Written),
}

/// A provider's sparse source read through its own [`ranged::RangeFetch`].
#[derive(Clone)]
pub(crate) struct BlockSource {
    pub size: u64,
    pub extents: Vec<(u64, u64)>,
    pub version: String,
    pub fetch: Arc<dyn ranged::RangeFetch>,
    /// An incremental export: the file starts as this previous image (its zeroed ranges and
    /// `extents` punched out), and only `extents` are fetched.
    pub base: Option<incremental::BaseImage>,
}

impl std::fmt::Debug for BlockSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockSource")
            .field("size", &self.size)
            .field("extents", &self.extents.len())
            .field("version", &self.version)
            .field("base", &self.base.as_ref().map(|b| &b.id))
            .finish_non_exhaustive()
    }
}

/// An HTTP(S) object and how to ask for it.
#[derive(Clone)]
pub(crate) struct HttpSource {
    /// The client of the provider that made the source (its TLS settings and connection pool).
    pub client: reqwest::Client,
    pub url: Url,
    /// Extra request headers (may carry credentials: never logged).
    pub headers: HeaderMap,
    /// Signs every request just before it is sent (S3 SigV4: credentials are fetched, and
    /// refreshed, per request, so a day-long download never outlives a pre-signed URL).
    pub signer: Option<Arc<dyn RequestSigner>>,
    /// What the cloud that made the source adds to plain HTTP (set by its provider: the
    /// downloader knows no cloud's header names).
    pub hooks: SourceHooks,
}

/// A cloud's additions to plain HTTP, carried by the source.
#[derive(Clone, Copy, Default)]
pub(crate) struct SourceHooks {
    /// Reads a whole-object checksum the server volunteers in its answer's headers (GCS's
    /// `x-goog-hash`, Azure's stored MD5); verified after the download.
    pub server_checksum: Option<fn(&HeaderMap) -> Option<Checksum>>,
    /// The request header (sent as `true`) that asks for each range's `Content-MD5` (Azure
    /// Blob's `x-ms-range-get-content-md5`, answered for ranges of at most 4 MiB: parts are
    /// cut to that size). A range that does not match fails the file with a verification
    /// error, and its bytes are not kept for a resume.
    pub range_md5_header: Option<&'static str>,
    /// The answer header naming the object version the URL itself pins (GCS's
    /// `x-goog-generation`, with `generation=` in every request): that version, not the ETag, is
    /// the validator of the parts and of a resume. An ETag that also follows metadata edits
    /// (GCS's follows the metageneration) then changes nothing; a part of another version is
    /// still refused.
    pub version_header: Option<&'static str>,
}

impl std::fmt::Debug for HttpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values and query strings may be credentials.
        f.debug_struct("HttpSource")
            .field("url", &redact_url(&self.url))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A file another process is writing at `path` (on a local or mounted file system). The
/// engine reports its growth as progress and takes it once `state` says the writer finished;
/// the provider owns the writer (and kills it in its cleanup).
#[derive(Debug, Clone)]
pub(crate) struct Written {
    pub path: PathBuf,
    /// The size the file has when complete, if known (checked at the end).
    pub final_size: Option<u64>,
    pub state: tokio::sync::watch::Receiver<WriterState>,
    /// The name is the provider's expectation, not the writer's promise: if the writer
    /// finishes without ever making the file, the file is not part of the export (its total
    /// drops to 0) instead of an error. The provider then reads what the writer did write.
    pub optional: bool,
}

/// What the writer of a [`Written`] file says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(dead_code)]
pub(crate) enum WriterState {
    Running,
    Finished,
    Failed(String),
}

/// Adds authentication to one request (headers only; the body of a GET is empty).
pub(crate) trait RequestSigner: Send + Sync + std::fmt::Debug {
    fn sign<'a>(&'a self, req: &'a mut reqwest::Request) -> crate::BoxFuture<'a, Result<()>>;
}

/// One file brought into its temp file, complete in size, not yet verified or renamed.
#[derive(Debug, Clone)]
pub(crate) struct Downloaded {
    /// The final name in the output folder.
    pub name: String,
    pub dest: PathBuf,
    /// Where the bytes are now: `<dest>.hspart`, or the file another process wrote.
    pub temp: PathBuf,
    /// The temp file's name in the output folder (`None` for a file another process wrote
    /// where it chose).
    pub temp_name: Option<String>,
    /// The open temp file: verification and packing read through it, not through a path that
    /// could be swapped meanwhile.
    pub file: Arc<File>,
    pub size: u64,
    /// The checksum to verify: the provider's, or one the server sent.
    pub checksum: Option<Checksum>,
    /// Bytes received in this run.
    pub fetched: u64,
    /// Bytes kept from an earlier run.
    pub resumed: u64,
    /// Requests or parts tried again after a failure or a stall.
    pub retries: u32,
    /// The digest the source asked for (`want_digest`), of the whole file.
    pub digest: Option<Vec<u8>>,
    /// Whether the size is known to be the source's (a length or range the server stated, an
    /// expected size): false only for a stream that ended without either.
    pub size_verified: bool,
}

/// What every transfer of one export shares.
pub(crate) struct TransferCtx {
    /// The output folder, opened once; every file is made through it.
    pub dir: Arc<OutDir>,
    pub opts: Arc<TransferOptions>,
    pub limiter: Arc<RateLimiter>,
    pub progress: Arc<ProgressState>,
    pub cancel: CancellationToken,
}

/// A digest of a whole file that a provider writes into a manifest. Only vSphere (the OVF
/// manifest) asks for one, so builds without it construct no variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "vsphere"), allow(dead_code))]
pub(crate) enum Digest {
    Sha256,
    Sha1,
}

#[cfg_attr(not(feature = "vsphere"), allow(dead_code))]
impl Digest {
    pub fn hasher(self) -> Box<dyn sha2::digest::DynDigest + Send> {
        match self {
            Digest::Sha256 => Box::new(<sha2::Sha256 as sha2::Digest>::new()),
            Digest::Sha1 => Box::new(<sha1::Sha1 as sha2::Digest>::new()),
        }
    }

    /// As an OVF manifest names it (`SHA256(file)= …`).
    pub fn manifest_name(self) -> &'static str {
        match self {
            Digest::Sha256 => "SHA256",
            Digest::Sha1 => "SHA1",
        }
    }

    pub fn of(self, data: &[u8]) -> Vec<u8> {
        let mut h = self.hasher();
        h.update(data);
        h.finalize().into_vec()
    }
}

/// Runs file work on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::Internal(format!("a file task failed: {e}"))))
}

#[cfg(test)]
mod tests;
