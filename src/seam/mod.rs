//! The seam between the engine and the providers: what a provider is ([`Provider`]), what one
//! export's run through it is ([`Flow`]), what a flow may do to its export ([`FlowCtx`]), what
//! cleanup may do ([`CleanupCtx`]), and the options every export has ([`options`]). It sits
//! below both: the engine (`export/`) drives these traits, the providers (`providers/`)
//! implement them, and neither imports the other (the engine reaches providers only through
//! the registry, `providers::new_provider`).
//!
//! A [`Provider`] lives as long as its client (one login, one HTTP client). For each export
//! it makes a [`Flow`], which the engine drives: `prepare` (cloud side: create an export task,
//! grant access, open a lease; the flow says [`FlowCtx::waiting_for_cloud`] while the cloud
//! works) → the downloads, with `keep_alive` called periodically → `after_download` (e.g.
//! write an OVF descriptor) → `cleanup`, always, under its own deadline
//! ([`Flow::cleanup_deadline`]), even after a cancel; then the export's cleanup ledger
//! ([`ledger`]): every undo step the flow registered, in reverse.

// A build with only some providers leaves parts of the seam without a user (no ledger step
// without a cloud provider, no CleanupCtx reader without Hyper-V).
#![cfg_attr(
    not(all(
        feature = "aws",
        feature = "azure",
        feature = "gcp",
        feature = "vsphere",
        feature = "hyperv"
    )),
    allow(dead_code, unused_imports)
)]

pub(crate) mod ledger;
pub(crate) mod options;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::progress::{Phase, ProgressState};
use crate::transfer::{Downloaded, FileSource, OutDir};
pub(crate) use ledger::{Ledger, When};

/// What a flow may do to its export while it runs: say what the cloud is doing, and notice a
/// cancel. It cannot set phases other than waiting-for-cloud (the engine owns the rest). A flow
/// may keep a clone for its keep-alive work.
#[derive(Clone)]
pub(crate) struct FlowCtx {
    progress: Arc<ProgressState>,
    cancel: CancellationToken,
    ledger: Arc<Ledger>,
}

impl FlowCtx {
    pub(crate) fn new(progress: Arc<ProgressState>, cancel: CancellationToken) -> Self {
        FlowCtx {
            progress,
            cancel,
            ledger: Arc::default(),
        }
    }

    /// The same context, registering its undo steps in `ledger` (the engine's, run after the
    /// export on every outcome).
    pub(crate) fn with_ledger(mut self, ledger: Arc<Ledger>) -> Self {
        self.ledger = ledger;
        self
    }

    /// The export's cleanup ledger: register an undo step the moment a create call returns.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
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
}

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
        common: &options::CommonOptions,
        options: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Box<dyn Flow>>;
}

/// One export's run through a provider.
/// What an export would do, said before anything is done (`Client::dry_run`, the command's
/// `--dry-run`): nothing is asked of the cloud to make it, so names the cloud decides later
/// are patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DryRun {
    /// The provider.
    pub provider: String,
    /// The source as given.
    pub source: String,
    /// The folder the files would land in.
    pub output_dir: String,
    /// What the export would create or change in the cloud, each with when it is undone
    /// (empty: nothing; the source is only read).
    pub cloud: Vec<String>,
    /// The files it would write in the output folder: names, or patterns such as
    /// `<volume-id>.img` where the cloud decides.
    pub files: Vec<String>,
}

/// A dry run's file name: the `file_name` option when given, else `stem.ext`.
pub(crate) fn planned_name(file_name: Option<&str>, stem: &str, ext: &str) -> String {
    file_name.map_or_else(|| format!("{stem}.{ext}"), str::to_string)
}

pub(crate) trait Flow: Send {
    /// What this export would create in the cloud and which files it would write, from its
    /// parsed options alone (no call to the cloud). Fills `cloud` and `files` of a [`DryRun`].
    fn dry_run(&self) -> (Vec<String>, Vec<String>);

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
