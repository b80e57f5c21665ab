//! Providers: each parses its own client config and export options, runs the cloud side of its
//! flow, hands [`FileSource`]s to the downloader, and runs its cleanup on every path.
//!
//! The seam is two traits. A [`Provider`] lives as long as its client (one login, one HTTP
//! client). For each export it makes a [`Flow`], which the engine drives:
//! `prepare` (cloud side: create an export task, grant access, open a lease; the flow says
//! [`FlowCtx::waiting_for_cloud`] while the cloud works) → the downloads, with `keep_alive`
//! called periodically → `after_download` (e.g. write an OVF descriptor) → `cleanup`, always,
//! under its own deadline ([`Flow::cleanup_deadline`]), even after a cancel.
//!
//! The toolkit every provider shares: [`net`] (the HTTP client with our TLS stack, header maps),
//! [`poll`] (waiting for cloud-side work: operations, tasks, leases), [`process`] (child
//! processes: arguments only, secrets on stdin, process-group kill). See "How to add a provider"
//! in docs/DESIGN-NOTES.md.

// Built without any cloud provider (`--no-default-features`), the toolkit has no user but its
// own tests.
#![cfg_attr(
    not(any(
        feature = "aws",
        feature = "azure",
        feature = "gcp",
        feature = "vsphere"
    )),
    allow(dead_code)
)]

#[cfg(feature = "aws")]
pub(crate) mod aws;
#[cfg(feature = "azure")]
pub(crate) mod azure;
#[cfg(feature = "gcp")]
pub(crate) mod gcp;
pub(crate) mod http;
#[cfg(feature = "hyperv")]
pub(crate) mod hyperv;
pub(crate) mod kit;
pub(crate) mod poll;
// The runner for Hyper-V's PowerShell (and any helper to come).
#[cfg_attr(not(feature = "hyperv"), allow(dead_code))]
pub(crate) mod process;
#[cfg(feature = "vsphere")]
pub(crate) mod vsphere;
#[cfg(any(feature = "aws", feature = "vsphere"))]
pub(crate) mod xml;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::progress::{Phase, ProgressState};
use crate::transfer::{Downloaded, FileSource, OutDir};

/// What a flow may do to its export while it runs: say what the cloud is doing, and notice a
/// cancel. It cannot set phases other than waiting-for-cloud (the engine owns the rest). A flow
/// may keep a clone for its keep-alive work.
#[derive(Clone)]
pub(crate) struct FlowCtx {
    progress: Arc<ProgressState>,
    cancel: CancellationToken,
}

impl FlowCtx {
    pub(crate) fn new(progress: Arc<ProgressState>, cancel: CancellationToken) -> Self {
        FlowCtx { progress, cancel }
    }

    /// The cloud is working for us (a task, a grant, a lease): phase waiting-for-cloud, with
    /// `msg` as the progress message.
    pub fn waiting_for_cloud(&self, msg: &str) {
        self.progress.set_message(msg);
        if !self.progress.phase().is_terminal() {
            self.progress.set_phase(Phase::WaitingForCloud);
        }
    }

    /// The progress message (e.g. a cloud task's status); empty clears it.
    pub fn message(&self, msg: &str) {
        self.progress.set_message(msg);
    }

    /// Fires when the export is cancelled.
    pub fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }
}

/// What cleanup may do: say which step runs ("revoking access…"), and know how the export
/// ended. It has no cancel: cleanup runs to its end or to its own deadline.
pub(crate) struct CleanupCtx {
    progress: Arc<ProgressState>,
    pub outcome: Outcome,
}

impl CleanupCtx {
    pub(crate) fn new(progress: Arc<ProgressState>, outcome: Outcome) -> Self {
        CleanupCtx { progress, outcome }
    }

    pub fn message(&self, msg: &str) {
        self.progress.set_message(msg);
    }

    /// Runs one cloud call of cleanup (cancel a task, abort a lease, revoke access, delete a
    /// temp image) again while it fails for a reason that may pass — a reset connection, a
    /// timeout, a 5xx — with growing waits (0.5 s doubling to 8 s) for up to
    /// [`CLEANUP_RETRY_FOR`]. A user who cancels during a short outage would otherwise leave the
    /// task running in the cloud: the SDKs' own retries give up within about a second. The
    /// flow's `cleanup_deadline` still bounds the whole cleanup.
    pub async fn retry<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let started = std::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            match call().await {
                Ok(v) => return Ok(v),
                Err(e)
                    if crate::transfer::retry::is_retryable(&e)
                        && started.elapsed() < CLEANUP_RETRY_FOR =>
                {
                    let wait = crate::transfer::retry::backoff(Duration::from_millis(500), attempt)
                        .min(Duration::from_secs(8));
                    attempt += 1;
                    self.message(&format!("{what}: {e}; trying again"));
                    tracing::warn!(attempt, error = %e, "{what}: cleanup call failed, trying again");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A context for the shared poller during cleanup: messages show, and its cancel never
    /// fires (cleanup runs to its end or to its deadline).
    #[cfg_attr(not(any(feature = "azure", feature = "gcp")), allow(dead_code))]
    pub fn poll_ctx(&self) -> FlowCtx {
        FlowCtx::new(self.progress.clone(), CancellationToken::new())
    }
}

/// How long one cleanup call is retried through connection trouble (see [`CleanupCtx::retry`]).
pub(crate) const CLEANUP_RETRY_FOR: Duration = Duration::from_secs(60);

/// What a provider adds after the downloads.
#[derive(Debug, Default)]
pub(crate) struct AfterDownload {
    /// (temp name, final name), both in the output folder: renamed into place with the
    /// downloads, after them. The final names must be among `Flow::extra_names`.
    pub extra: Vec<(String, String)>,
    /// The downloads were packed into an extra file: remove their temp files instead of
    /// renaming them.
    pub consumed: bool,
}

/// How an export ended, for cleanup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    Failure,
    Cancelled,
}

/// One thing a user can export, as `hs_client_list_sources` reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SourceInfo {
    /// What to give an export as its source.
    pub id: String,
    /// `instance`, `image`, `disk`, `snapshot`, `vm` or `object`.
    pub kind: &'static str,
    pub name: String,
    /// Bytes, when the cloud says (a disk's provisioned size, a VM's disks together).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// The cloud's own word for its state (`running`, `READY`, `Attached`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// A configured provider (per client).
pub(crate) trait Provider: Send + Sync + 'static {
    /// The sources a user can export. `scope` holds the provider's own filter keys (a zone, a
    /// resource group, a bucket…); the common `kind` and `name_contains` are applied by the
    /// caller. An unknown key is an error naming it.
    fn list<'a>(
        &'a self,
        scope: &'a serde_json::Map<String, serde_json::Value>,
    ) -> BoxFuture<'a, Result<Vec<SourceInfo>>> {
        let _ = scope;
        Box::pin(async {
            Err(Error::Unsupported(
                "this provider cannot list sources".into(),
            ))
        })
    }

    /// Parses the export's options (what the common options left; the common ones are there to
    /// read, e.g. output_dir) and checks them; runs on the caller's thread, so bad input is an error from `start`, before anything happens.
    fn plan(
        &self,
        source_id: &str,
        common: &crate::export::options::CommonOptions,
        options: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Box<dyn Flow>>;
}

/// One export's run through a provider.
pub(crate) trait Flow: Send {
    /// The cloud side, up to the point where there are files to fetch.
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

    /// The names of the extra files `after_download` will write (descriptor, manifest, OVA),
    /// known once `prepare` has run: the engine checks and locks them with the downloads'.
    fn extra_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// After every file is verified and before anything is renamed: a provider may write extra
    /// files (descriptor, manifest, an OVA that packs the downloads) as temp files of the
    /// output folder, made through `dir` (`OutDir::create_new`, never by path).
    fn after_download<'a>(
        &'a mut self,
        _ctx: &'a FlowCtx,
        _files: &'a [Downloaded],
        _dir: &'a Arc<OutDir>,
    ) -> BoxFuture<'a, Result<AfterDownload>> {
        Box::pin(async { Ok(AfterDownload::default()) })
    }

    /// How long cleanup may take (a cloud-side delete can itself be a long operation). The
    /// clock starts when cleanup starts, after a cancel too.
    fn cleanup_deadline(&self) -> Duration {
        Duration::from_secs(120)
    }

    /// Always runs once, on every path, under `cleanup_deadline`.
    fn cleanup<'a>(&'a mut self, _ctx: &'a CleanupCtx) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Provider-specific fields for the result JSON (task id, bucket, lease, …).
    fn result_fields(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }
}

/// One entry of the provider table: a name and how to build it from its config JSON.
struct Registration {
    name: &'static str,
    new: fn(&str) -> Result<Arc<dyn Provider>>,
}

/// Every provider compiled into this build. Adding a provider is one module and one line here.
const REGISTRY: &[Registration] = &[
    #[cfg(feature = "aws")]
    Registration {
        name: "aws",
        new: |c| Ok(Arc::new(aws::AwsProvider::new(c)?)),
    },
    #[cfg(feature = "azure")]
    Registration {
        name: "azure",
        new: |c| Ok(Arc::new(azure::AzureProvider::new(c)?)),
    },
    #[cfg(feature = "gcp")]
    Registration {
        name: "gcp",
        new: |c| Ok(Arc::new(gcp::GcpProvider::new(c)?)),
    },
    Registration {
        name: "http",
        new: |c| Ok(Arc::new(http::HttpProvider::new(c)?)),
    },
    #[cfg(feature = "hyperv")]
    Registration {
        name: "hyperv",
        new: |c| Ok(Arc::new(hyperv::HyperVProvider::new(c)?)),
    },
    #[cfg(feature = "vsphere")]
    Registration {
        name: "vsphere",
        new: |c| Ok(Arc::new(vsphere::VsphereProvider::new(c)?)),
    },
];

/// Providers that exist, built into this library or not (a clear "not built in" error for
/// those behind a disabled cargo feature).
const KNOWN: &[&str] = &["aws", "azure", "gcp", "http", "hyperv", "vsphere"];

/// The providers compiled into this build.
pub fn available() -> Vec<&'static str> {
    REGISTRY.iter().map(|r| r.name).collect()
}

/// Builds a provider by name from its config JSON.
pub(crate) fn new_provider(name: &str, config_json: &str) -> Result<Arc<dyn Provider>> {
    if let Some(r) = REGISTRY.iter().find(|r| r.name == name) {
        let json = if config_json.trim().is_empty() {
            "{}"
        } else {
            config_json
        };
        return (r.new)(json);
    }
    let list = available().join(", ");
    if KNOWN.contains(&name) {
        Err(Error::Unsupported(format!(
            "provider {name:?} is not built into this library; available: {list}"
        )))
    } else {
        Err(Error::InvalidArgument(format!(
            "unknown provider {name:?}; available: {list}"
        )))
    }
}

/// Cleanup's outcome from the steps that failed (each already says what it was undoing).
#[cfg_attr(
    not(any(feature = "azure", feature = "gcp", feature = "hyperv")),
    allow(dead_code)
)]
pub(crate) fn cleanup_result(errors: Vec<String>) -> Result<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Remote(errors.join("; ")))
    }
}

/// Refuses scope keys a provider's `list` does not read.
#[cfg_attr(
    not(any(
        feature = "aws",
        feature = "gcp",
        feature = "hyperv",
        feature = "vsphere"
    )),
    allow(dead_code)
)]
pub(crate) fn scope_keys(
    provider: &str,
    scope: &serde_json::Map<String, serde_json::Value>,
    known: &[&str],
) -> Result<()> {
    match scope.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(Error::InvalidArgument(format!(
            "{provider} list: unknown filter key {k:?} (known: kind, name_contains{})",
            known.iter().map(|k| format!(", {k}")).collect::<String>()
        ))),
        None => Ok(()),
    }
}

/// A scope value that must be a string.
#[cfg_attr(not(any(feature = "aws", feature = "gcp")), allow(dead_code))]
pub(crate) fn scope_str<'a>(
    scope: &'a serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Result<Option<&'a str>> {
    match scope.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::InvalidArgument(format!(
            "list filter {key} must be a string"
        ))),
    }
}
