//! Providers: each parses its own client config and export options, runs the cloud side of its
//! flow, hands [`FileSource`]s to the downloader, and runs its cleanup on every path.
//!
//! The seam is two traits. A [`Provider`] lives as long as its client (one login, one HTTP
//! client). For each export it makes a [`Flow`], which the engine drives:
//! `prepare` (cloud side: create an export task, grant access, open a lease; phase
//! `waiting-for-cloud` while the cloud works) → the downloads, with `keep_alive` called
//! periodically → `after_download` (e.g. write an OVF descriptor) → `cleanup`, always, with its
//! own deadline, even after a cancel.

#[cfg(feature = "aws")]
pub mod aws;
pub mod http;
#[cfg(feature = "vsphere")]
pub mod vsphere;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::export::progress::ProgressState;
use crate::transfer::{Downloaded, FileSource};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a flow may use while it runs.
pub struct FlowCtx {
    pub progress: Arc<ProgressState>,
    pub cancel: CancellationToken,
}

/// What a provider adds after the downloads.
#[derive(Debug, Default)]
pub struct AfterDownload {
    /// (temp path, final file name): renamed into place with the downloads, after them.
    pub extra: Vec<(std::path::PathBuf, String)>,
    /// The downloads were packed into an extra file: remove their temp files instead of
    /// renaming them.
    pub consumed: bool,
}

/// How an export ended, for cleanup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Cancelled,
}

pub trait Provider: Send + Sync + 'static {
    /// The reqwest client downloads go through (TLS settings, proxies of this client).
    fn http_client(&self) -> &reqwest::Client;

    /// Parses the export's options (what the common options left) and checks them; runs on the
    /// caller's thread, so bad input is an error from `start`, before anything happens.
    fn plan(
        &self,
        source_id: &str,
        options: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Box<dyn Flow>>;
}

pub trait Flow: Send {
    /// The cloud side, up to the point where there are URLs to fetch.
    fn prepare<'a>(&'a mut self, ctx: &'a FlowCtx) -> BoxFuture<'a, Result<Vec<FileSource>>>;

    /// How often `keep_alive` must run during the downloads (e.g. an NFC lease's timeout / 4).
    fn keep_alive_interval(&self) -> Option<Duration> {
        None
    }

    /// Called every `keep_alive_interval` with the percent done.
    fn keep_alive<'a>(&'a mut self, _percent: u8) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Files of one export downloaded at the same time, if the provider decides (vSphere's
    /// `parallel_disks`); otherwise the common option `parallel_files`.
    fn parallel_files(&self) -> Option<usize> {
        None
    }

    /// After every file is verified and before anything is renamed: a provider may write extra
    /// files (descriptor, manifest, an OVA that packs the downloads) as temp files in `out_dir`.
    fn after_download<'a>(
        &'a mut self,
        _ctx: &'a FlowCtx,
        _files: &'a [Downloaded],
        _out_dir: &'a Path,
    ) -> BoxFuture<'a, Result<AfterDownload>> {
        Box::pin(async { Ok(AfterDownload::default()) })
    }

    /// Always runs once, on every path, under its own deadline.
    fn cleanup<'a>(&'a mut self, _outcome: Outcome) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Provider-specific fields for the result JSON (task id, bucket, lease, …).
    fn result_fields(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }
}

/// The providers compiled into this build.
pub const AVAILABLE: &[&str] = &[
    #[cfg(feature = "aws")]
    "aws",
    "http",
    #[cfg(feature = "vsphere")]
    "vsphere",
];

/// Builds a provider by name from its config JSON.
pub fn new_provider(name: &str, config_json: &str) -> Result<Arc<dyn Provider>> {
    match name {
        "http" => Ok(Arc::new(http::HttpProvider::new(config_json)?)),
        #[cfg(feature = "vsphere")]
        "vsphere" => Ok(Arc::new(vsphere::VsphereProvider::new(config_json)?)),
        #[cfg(feature = "aws")]
        "aws" => Ok(Arc::new(aws::AwsProvider::new(config_json)?)),
        #[allow(unreachable_patterns)]
        "aws" | "azure" | "gcp" | "vsphere" | "hyperv" => Err(Error::Unsupported(format!(
            "provider {name:?} is not built into this library; available: {}",
            AVAILABLE.join(", ")
        ))),
        other => Err(Error::InvalidArgument(format!(
            "unknown provider {other:?}; available: {}",
            AVAILABLE.join(", ")
        ))),
    }
}
