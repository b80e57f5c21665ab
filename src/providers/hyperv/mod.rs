//! Hyper-V: a VM exported by Hyper-V itself (the WMI methods behind `Export-VM`,
//! `Export-VMSnapshot` and `Convert-VHD`, see `wmi`), driven through PowerShell — this machine's, or the host's over WinRM or SSH remoting.
//!
//! Flow: `inventory.ps1` (the VM, its disks' chains with each file's `FileSize`, pass-through
//! disks left out, so totals are real from the start) → a staging folder in output_dir
//! (`.hs-hyperv-<random>.hspart`) → `export.ps1` writes into it, in the background, while the
//! engine watches the files grow ([`SourceKind::Written`]) and Hyper-V's percent is the
//! message; vhd-only exports the checkpoint first and converts that unattached copy → the
//! files checked (`verify.ps1` on this machine's Hyper-V; on a remote host here, on the share:
//! no second hop) → the disks (vhd-only) or the VM's folder (full) renamed into place →
//! `cleanup.ps1` on every path (after a cancel or failure stops exactly the Hyper-V jobs this
//! export started, the ones its WMI calls returned (`jobs`); removes the checkpoint the export made) and the
//! staging folder removed. Stdin is ASCII JSON and every script sets the console to UTF-8.
//!
//! Nothing is stopped, saved or changed on the VM: a checkpoint is the only trace, and it is
//! removed again (by its unique name) on every path.

mod config;
mod export;
mod flow;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz;
mod jobs;
mod ps;
mod verify;
mod wmi;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::kit::parse_config;
use crate::BoxFuture;
use crate::error::Result;
use crate::seam::options::{CommonOptions, parse_provider_options};
use crate::seam::{Flow, Provider};
use config::{HyperVConfig, HyperVOptions};
use ps::{PowerShell, Script};

pub(crate) struct HyperVProvider {
    ps: Arc<PowerShell>,
    control_timeout: Duration,
}

impl HyperVProvider {
    pub fn new(config_json: &str) -> Result<Self> {
        let cfg: HyperVConfig = parse_config("hyperv", config_json)?;
        let transport = cfg.check()?;
        Ok(HyperVProvider {
            ps: Arc::new(PowerShell::new(&cfg, transport)?),
            control_timeout: Duration::from_secs(cfg.timeout_secs),
        })
    }
}

impl Provider for HyperVProvider {
    fn list<'a>(
        &'a self,
        scope: &'a serde_json::Map<String, Value>,
    ) -> BoxFuture<'a, Result<Vec<crate::seam::SourceInfo>>> {
        Box::pin(async move {
            super::scope_keys("hyperv", scope, &[])?;
            let lines = self
                .ps
                .run(
                    Script::List,
                    &json!({}),
                    self.control_timeout,
                    &CancellationToken::new(),
                )
                .await?;
            Ok(lines
                .into_iter()
                .filter(|l| l["event"] == "vm")
                .map(|l| crate::seam::SourceInfo {
                    id: l["id"].as_str().unwrap_or_default().to_string(),
                    kind: "vm",
                    name: l["name"].as_str().unwrap_or_default().to_string(),
                    size_bytes: l["bytes"].as_u64(),
                    state: l["state"].as_str().map(str::to_string),
                })
                .collect())
        })
    }

    fn plan(
        &self,
        source_id: &str,
        common: &CommonOptions,
        options: serde_json::Map<String, Value>,
    ) -> Result<Box<dyn Flow>> {
        let opts: HyperVOptions = parse_provider_options(options)?;
        opts.check(self.ps.transport())?;
        let vm = config::parse_source(source_id)?;
        let tag = hex::encode(rand::random::<[u8; 6]>());
        Ok(Box::new(HyperVFlow {
            ps: self.ps.clone(),
            control_timeout: self.control_timeout,
            vm_ref: vm,
            opts,
            output_dir: common.output_dir.clone(),
            poll_ms: common.transfer.poll_file_interval_ms,
            checkpoint_name: format!("hypersdk-export-{tag}"),
            staging_name: format!(".hs-hyperv-{tag}.hspart"),
            vm: None,
            staging: None,
            host_staging: String::new(),
            disks: Vec::new(),
            folder: None,
            export: None,
            export_started: false,
            shared: Arc::new(Mutex::new(ExportState::default())),
            verified: Vec::new(),
            skipped: Vec::new(),
            cleaned: None,
        }))
    }
}
use export::ExportState;
use flow::HyperVFlow;

/// What this provider accepts (`hs_provider_info`).
pub(crate) fn info() -> super::schema::ProviderInfo {
    super::schema::ProviderInfo {
        name: "hyperv",
        built_in: true,
        sources: &["a VM name or its VMId (GUID)"],
        config_keys: super::schema::field_names::<HyperVConfig>(),
        option_keys: super::schema::field_names::<HyperVOptions>(),
    }
}
