//! The downloader every provider uses: ranged parallel GETs streamed into positioned writes in a
//! temp file beside the destination, a resume journal, retries with backoff, stall detection,
//! bandwidth limits, one global buffer budget, sparse output, and checksum verification.
//!
//! A provider hands over [`FileSource`]s (a URL, headers, what it knows of size and checksum);
//! [`download::download`] brings one into `<dest>.hspart` and returns a [`Downloaded`]; the
//! export engine verifies and renames.

pub mod budget;
pub mod checksum;
pub mod download;
pub mod journal;
pub mod range_set;
pub mod retry;
pub mod sparse;
pub mod throttle;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::header::HeaderMap;
use tokio_util::sync::CancellationToken;
use url::Url;

pub use checksum::Checksum;

use crate::export::options::CommonOptions;
use crate::export::progress::ProgressState;
use throttle::RateLimiter;

/// One file to fetch, as a provider describes it.
#[derive(Debug, Clone)]
pub struct FileSource {
    /// Plain file name inside the output folder (already validated or sanitized).
    pub name: String,
    pub url: Url,
    /// Extra request headers (may carry credentials: never logged).
    pub headers: HeaderMap,
    /// What the provider knows of the size before the first request, for early totals.
    pub size_hint: Option<u64>,
    pub checksum: Option<Checksum>,
    /// Signs every request just before it is sent (S3 SigV4: credentials are fetched, and
    /// refreshed, per request, so a day-long download never outlives a pre-signed URL).
    pub signer: Option<Arc<dyn RequestSigner>>,
    /// The caller needs the file's SHA-256 (e.g. for an OVF manifest): computed while streaming
    /// when bytes arrive in order, otherwise by reading the file back before it is renamed.
    pub want_sha256: bool,
}

/// Adds authentication to one request (headers only; the body of a GET is empty).
pub trait RequestSigner: Send + Sync + std::fmt::Debug {
    fn sign<'a>(
        &'a self,
        req: &'a mut reqwest::Request,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = crate::error::Result<()>> + Send + 'a>>;
}

/// One file brought into its temp file, complete in size, not yet verified or renamed.
#[derive(Debug, Clone)]
pub struct Downloaded {
    pub name: String,
    pub dest: PathBuf,
    pub temp: PathBuf,
    pub size: u64,
    /// The checksum to verify: the provider's, or one the server sent.
    pub checksum: Option<Checksum>,
    /// Bytes received over the network in this run.
    pub fetched: u64,
    /// Bytes kept from an earlier run.
    pub resumed: u64,
    /// SHA-256 of the whole file, when the source asked for it.
    pub sha256: Option<[u8; 32]>,
}

/// What every transfer of one export shares.
pub struct TransferCtx {
    pub client: reqwest::Client,
    pub opts: Arc<CommonOptions>,
    pub limiter: Arc<RateLimiter>,
    pub progress: Arc<ProgressState>,
    pub cancel: CancellationToken,
}

/// `<dest>.hspart`: where bytes live until verified.
pub fn temp_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".hspart");
    PathBuf::from(s)
}

/// A URL as it may appear in messages: no user info, no query (signatures, SAS tokens).
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}
