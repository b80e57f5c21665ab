//! Hyper-V: a VM exported by Hyper-V itself (`Export-VM`, `Export-VMSnapshot`, `Convert-VHD`),
//! driven through PowerShell — this machine's, or the host's over WinRM or SSH remoting.
//!
//! Flow: `inventory.ps1` (the VM and its disks with their `FileSize`, so totals are real from
//! the start) → a staging folder in output_dir (`.hs-hyperv-<random>.hspart`) → `export.ps1`
//! writes into it, in the background, while the engine watches the files grow
//! ([`SourceKind::Written`]) and Hyper-V's percent is the message → `verify.ps1` (the size
//! Hyper-V reads for each file, `Test-VHD`) → the disks (vhd-only) or the VM's folder (full)
//! renamed into place → `cleanup.ps1` on every path (stops Hyper-V's export jobs after a cancel
//! or failure, removes the checkpoint the export made) and the staging folder removed.
//!
//! Nothing is stopped, saved or changed on the VM: a checkpoint is the only trace, and it is
//! removed again (by its unique name) on every path.

mod config;
mod ps;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::kit::parse_config;
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::paths::sanitize_file_name;
use crate::providers::process::Line;
use crate::seam::options::{CommonOptions, parse_provider_options};
use crate::seam::{AfterDownload, CleanupCtx, Flow, FlowCtx, Outcome, Provider};
use crate::sync::lock;
use crate::transfer::{Downloaded, FileSource, OutDir, SourceKind, WriterState, Written};
use config::{ExportType, HyperVConfig, HyperVOptions, Transport, VmRef};
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
            cleaned: None,
        }))
    }
}

/// The VM as `inventory.ps1` read it.
#[derive(Debug, Clone)]
struct VmInfo {
    name: String,
    id: String,
    state: String,
}

/// One disk to export and where it lands.
#[derive(Debug, Clone)]
struct Disk {
    /// The name in output_dir (vhd-only) or the file's name in the VM folder (full).
    name: String,
    /// On the host.
    source: String,
    file_size: u64,
    /// Where Hyper-V writes it, as this machine sees it.
    local: PathBuf,
    /// Where Hyper-V writes it, as the host sees it.
    host: String,
    controller: Value,
}

/// What the background reader of `export.ps1` learned.
#[derive(Debug, Default)]
struct ExportState {
    checkpoint_made: bool,
    checkpoint_removed: bool,
    error: Option<String>,
    percent: Option<u8>,
}

struct ExportTask {
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

struct HyperVFlow {
    ps: Arc<PowerShell>,
    control_timeout: Duration,
    vm_ref: VmRef,
    opts: HyperVOptions,
    output_dir: PathBuf,
    poll_ms: u64,
    /// Unique per export: cleanup removes exactly this checkpoint, never another.
    checkpoint_name: String,
    staging_name: String,
    vm: Option<VmInfo>,
    /// Set just before the folder is made, so cleanup removes it whatever happens next.
    staging: Option<PathBuf>,
    host_staging: String,
    disks: Vec<Disk>,
    /// `full`: (the VM's folder in staging, relative to output_dir; its final name).
    folder: Option<(String, String)>,
    export: Option<ExportTask>,
    /// `export.ps1` was started: from then on, cleanup stops Hyper-V's jobs and looks for the
    /// checkpoint, whether or not the script said it began.
    export_started: bool,
    shared: Arc<Mutex<ExportState>>,
    verified: Vec<Value>,
    cleaned: Option<Value>,
}

impl HyperVFlow {
    fn uses_checkpoint(&self) -> bool {
        !(self.opts.export_type == ExportType::Full && self.opts.include_snapshots)
    }

    /// A host path inside the staging folder.
    fn host_join(&self, parts: &[&str]) -> String {
        let sep = match self.ps.transport() {
            Transport::Local => std::path::MAIN_SEPARATOR,
            _ => '\\',
        };
        let mut s = self.host_staging.clone();
        for p in parts {
            if !s.ends_with(['\\', '/']) {
                s.push(sep);
            }
            s.push_str(p);
        }
        s
    }

    async fn inventory(&mut self, ctx: &FlowCtx) -> Result<()> {
        ctx.message("reading the VM and its disks");
        let input = match &self.vm_ref {
            VmRef::Id(id) => json!({ "id": id }),
            VmRef::Name(n) => json!({ "vm": n }),
        };
        let lines = self
            .ps
            .run(
                Script::Inventory,
                &input,
                self.control_timeout,
                ctx.cancel(),
            )
            .await?;
        let mut disks = Vec::new();
        for l in lines {
            match l["event"].as_str() {
                Some("vm") => {
                    self.vm = Some(VmInfo {
                        name: l["name"].as_str().unwrap_or_default().to_string(),
                        id: l["id"].as_str().unwrap_or_default().to_string(),
                        state: l["state"].as_str().unwrap_or_default().to_string(),
                    })
                }
                Some("disk") => disks.push(l),
                _ => {}
            }
        }
        let Some(vm) = &self.vm else {
            return Err(Error::Remote(
                "Hyper-V (inventory): PowerShell named no VM".into(),
            ));
        };
        if !config::parse_source(&vm.id).is_ok_and(|r| matches!(r, VmRef::Id(_))) {
            return Err(Error::Remote(format!(
                "Hyper-V (inventory): the VM id {:?} is not a GUID",
                vm.id
            )));
        }
        if disks.is_empty() {
            return Err(Error::NotFound(format!(
                "VM {:?} has no virtual hard disk to export",
                vm.name
            )));
        }
        let mut used = std::collections::HashSet::new();
        for d in disks {
            let source = d["path"].as_str().unwrap_or_default().to_string();
            let file_size = d["file_size"].as_u64().ok_or_else(|| {
                Error::Remote(format!("Hyper-V (inventory): no FileSize for {source}"))
            })?;
            let name = unique(
                &mut used,
                sanitize_file_name(config::leaf(&source), "disk.vhdx"),
            );
            disks_push(&mut self.disks, name, source, file_size, &d);
        }
        Ok(())
    }

    /// Starts `export.ps1` and waits until it has begun (a checkpoint made, the jobs running)
    /// or failed; then reads its lines in the background.
    async fn start_export(&mut self, ctx: &FlowCtx) -> Result<watch::Receiver<WriterState>> {
        let vm = self.vm.clone().expect("inventory ran");
        let disks: Vec<Value> = self
            .disks
            .iter()
            .map(|d| {
                let mut v = d.controller.clone();
                v["source"] = json!(d.source);
                v["dest"] = json!(d.host);
                v
            })
            .collect();
        let input = json!({
            "id": vm.id,
            "export_type": match self.opts.export_type { ExportType::Full => "full", ExportType::VhdOnly => "vhd-only" },
            "include_snapshots": self.opts.include_snapshots,
            "checkpoint_name": self.checkpoint_name,
            "path": self.host_staging,
            "disks": disks,
            "poll_ms": self.poll_ms.max(200),
        });
        self.export_started = true;
        let mut running = self.ps.start(
            Script::Export,
            &input,
            Duration::from_secs(self.opts.timeout_secs),
        )?;
        let stop = CancellationToken::new();
        // Until the export says it started, a cancel of the export ends the wait (cleanup
        // then stops whatever began).
        loop {
            let line = tokio::select! {
                biased;
                _ = ctx.cancel().cancelled() => return Err(Error::Cancelled),
                l = running.next_line(&stop) => l?,
            };
            match line {
                Some(Line::Json(v)) => match v["event"].as_str() {
                    Some("checkpoint") => {
                        lock(&self.shared).checkpoint_made = true;
                        ctx.waiting_for_cloud("checkpoint made; starting the export");
                    }
                    Some("started") => break,
                    Some("error") => return Err(ps::script_error(Script::Export, &v)),
                    _ => {}
                },
                Some(Line::Text(_)) => {}
                None => {
                    let e = running.finish(&stop).await.err();
                    return Err(Error::Remote(format!(
                        "Hyper-V (export): PowerShell ended before the export started{}",
                        e.map(|e| format!(": {e}")).unwrap_or_default()
                    )));
                }
            }
        }
        ctx.message("Hyper-V is exporting");
        let (tx, rx) = watch::channel(WriterState::Running);
        let shared = self.shared.clone();
        let task_stop = stop.clone();
        let msg_ctx = ctx.clone();
        let handle = tokio::spawn(async move {
            let end = follow_export(running, &task_stop, &shared, &msg_ctx).await;
            let state = match end {
                Ok(()) => WriterState::Finished,
                Err(e) => {
                    let m = e.to_string();
                    lock(&shared).error = Some(m.clone());
                    WriterState::Failed(m)
                }
            };
            let _ = tx.send(state);
        });
        self.export = Some(ExportTask { stop, handle });
        Ok(rx)
    }

    async fn stop_export(&mut self) {
        if let Some(t) = self.export.take() {
            t.stop.cancel();
            // Ending the reader drops the process: its whole process group is killed.
            let _ = t.handle.await;
        }
    }
}

fn disks_push(disks: &mut Vec<Disk>, name: String, source: String, file_size: u64, d: &Value) {
    disks.push(Disk {
        name,
        source,
        file_size,
        local: PathBuf::new(),
        host: String::new(),
        controller: json!({
            "controller_type": d["controller_type"],
            "controller_number": d["controller_number"],
            "controller_location": d["controller_location"],
        }),
    });
}

/// `name`, or `name-2.ext`, … when taken (case-insensitively: Windows names).
fn unique(used: &mut std::collections::HashSet<String>, name: String) -> String {
    let mut n = name.clone();
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name.as_str(), ""),
    };
    let mut i = 2;
    while !used.insert(n.to_lowercase()) {
        n = format!("{stem}-{i}{ext}");
        i += 1;
    }
    n
}

/// Reads `export.ps1`'s lines to its end: Hyper-V's percent becomes the message; `done` and a
/// clean exit end it well, an `error` line or any other end badly.
async fn follow_export(
    mut running: crate::providers::process::Running,
    stop: &CancellationToken,
    shared: &Mutex<ExportState>,
    ctx: &FlowCtx,
) -> Result<()> {
    let mut done = false;
    loop {
        match running.next_line(stop).await? {
            Some(Line::Json(v)) => match v["event"].as_str() {
                Some("progress") => {
                    if let Some(p) = v["percent"].as_u64() {
                        let p = p.min(100) as u8;
                        lock(shared).percent = Some(p);
                        ctx.message(&format!("Hyper-V export {p}%"));
                    }
                }
                Some("checkpoint-removed") => lock(shared).checkpoint_removed = true,
                Some("done") => done = true,
                Some("error") => return Err(ps::script_error(Script::Export, &v)),
                _ => {}
            },
            Some(Line::Text(_)) => {}
            None => break,
        }
    }
    running.finish(stop).await?;
    if !done {
        return Err(Error::Remote(
            "Hyper-V (export): PowerShell exited without finishing the export".into(),
        ));
    }
    Ok(())
}

impl Flow for HyperVFlow {
    fn prepare<'a>(&'a mut self, ctx: &'a FlowCtx) -> BoxFuture<'a, Result<Vec<FileSource>>> {
        Box::pin(async move {
            self.inventory(ctx).await?;
            let vm = self.vm.clone().expect("inventory ran");
            // The staging folder: made by us (mkdir never follows a planted link), unique.
            let staging = self.output_dir.join(&self.staging_name);
            self.host_staging = match (&self.opts.host_output_dir, self.ps.transport()) {
                (Some(h), _) => {
                    let mut s = h.trim_end_matches(['\\', '/']).to_string();
                    s.push('\\');
                    s.push_str(&self.staging_name);
                    s
                }
                (None, _) => staging.to_string_lossy().into_owned(),
            };
            if self.opts.export_type == ExportType::Full {
                // Export-VM names its folder after the VM; we must be able to find it.
                if !config::is_windows_folder_name(&vm.name) {
                    return Err(Error::Unsupported(format!(
                        "VM {:?}: Export-VM cannot make a folder of this name; use export_type \
                         vhd-only",
                        vm.name
                    )));
                }
                let final_name = self
                    .opts
                    .folder_name
                    .clone()
                    .unwrap_or_else(|| sanitize_file_name(&vm.name, "vm"));
                self.folder = Some((format!("{}/{}", self.staging_name, vm.name), final_name));
            }
            let full = self.opts.export_type == ExportType::Full;
            for i in 0..self.disks.len() {
                let name = self.disks[i].name.clone();
                let (local, host) = if full {
                    // The file keeps Hyper-V's name in the VM folder.
                    let leaf = config::leaf(&self.disks[i].source).to_string();
                    (
                        staging
                            .join(&vm.name)
                            .join("Virtual Hard Disks")
                            .join(&leaf),
                        self.host_join(&[&vm.name, "Virtual Hard Disks", &leaf]),
                    )
                } else {
                    (staging.join(&name), self.host_join(&[&name]))
                };
                self.disks[i].local = local;
                self.disks[i].host = host;
            }
            self.staging = Some(staging.clone());
            let mode = 0o700;
            tokio::task::spawn_blocking(move || {
                #[cfg(unix)]
                let b =
                    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), mode)
                        .create(&staging);
                #[cfg(not(unix))]
                let b = {
                    let _ = mode;
                    std::fs::DirBuilder::new().create(&staging)
                };
                b
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| {
                Error::io(
                    &self.output_dir.join(&self.staging_name),
                    "cannot make the staging folder",
                    e,
                )
            })?;
            let state = self.start_export(ctx).await?;
            Ok(self
                .disks
                .iter()
                .map(|d| FileSource {
                    name: d.name.clone(),
                    kind: SourceKind::Written(Written {
                        path: d.local.clone(),
                        // Hyper-V writes what it reads as it goes: the size is checked against
                        // what it reports at the end (verify.ps1), not guessed before.
                        final_size: None,
                        state: state.clone(),
                    }),
                    size_hint: Some(d.file_size),
                    expected_size: None,
                    checksum: None,
                    want_digest: None,
                })
                .collect())
        })
    }

    fn extra_names(&self) -> Vec<String> {
        self.folder.iter().map(|(_, f)| f.clone()).collect()
    }

    fn after_download<'a>(
        &'a mut self,
        ctx: &'a FlowCtx,
        files: &'a [Downloaded],
        _dir: &'a Arc<OutDir>,
    ) -> BoxFuture<'a, Result<AfterDownload>> {
        Box::pin(async move {
            ctx.message("Hyper-V is checking the exported disks");
            let input = json!({
                "paths": self.disks.iter().map(|d| d.host.clone()).collect::<Vec<_>>(),
                "test_vhd": self.opts.verify,
            });
            let lines = self
                .ps
                .run(Script::Verify, &input, self.control_timeout, ctx.cancel())
                .await?;
            for d in &self.disks {
                let Some(rep) = lines.iter().find(|l| l["path"] == d.host.as_str()) else {
                    return Err(Error::Verification(format!(
                        "Hyper-V did not report on {}",
                        d.name
                    )));
                };
                let got = files.iter().find(|f| f.name == d.name).map(|f| f.size);
                let says = rep["file_size"].as_u64();
                if got.is_none() || got != says {
                    return Err(Error::Verification(format!(
                        "{}: {} bytes here, Hyper-V reports {}",
                        d.name,
                        got.map(|g| g.to_string()).unwrap_or("no file".into()),
                        says.map(|s| s.to_string()).unwrap_or("no size".into())
                    )));
                }
                if self.opts.verify && rep["ok"] != true {
                    return Err(Error::Verification(format!(
                        "{}: Test-VHD found the exported disk unsound",
                        d.name
                    )));
                }
                self.verified.push(json!({
                    "name": d.name,
                    "size": says,
                    "test_vhd": self.opts.verify,
                }));
            }
            Ok(match &self.folder {
                // The VM's folder moves into place as one; its disks go with it.
                Some((inside, name)) => AfterDownload {
                    extra: vec![(inside.clone(), name.clone())],
                    consumed: true,
                },
                None => AfterDownload::default(),
            })
        })
    }

    fn cleanup_deadline(&self) -> Duration {
        // Stopping a Hyper-V job and merging a checkpoint back can take minutes on big disks.
        Duration::from_secs(900)
    }

    fn cleanup<'a>(&'a mut self, ctx: &'a CleanupCtx) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut errors = Vec::new();
            let running = self.export_started;
            self.stop_export().await;
            let (made, removed) = {
                let s = lock(&self.shared);
                (s.checkpoint_made, s.checkpoint_removed)
            };
            // A cancel may land between Checkpoint-VM and its line: whenever the export could
            // have made the checkpoint, cleanup looks for it by its unique name.
            let may_have_checkpoint = running && self.uses_checkpoint() && !removed;
            let stop_jobs = running && ctx.outcome != Outcome::Success;
            if let Some(vm) = &self.vm
                && (may_have_checkpoint || stop_jobs)
            {
                ctx.message(if stop_jobs {
                    "stopping Hyper-V's export and removing its checkpoint"
                } else {
                    "removing the export's checkpoint"
                });
                let input = json!({
                    "id": vm.id,
                    "checkpoint_name": may_have_checkpoint.then_some(&self.checkpoint_name),
                    "stop_jobs": stop_jobs,
                });
                let never = CancellationToken::new();
                match self
                    .ps
                    .run(Script::Cleanup, &input, self.control_timeout, &never)
                    .await
                {
                    Ok(lines) => {
                        let last = lines.into_iter().find(|l| l["event"] == "cleaned");
                        if last
                            .as_ref()
                            .is_some_and(|l| l["checkpoint_removed"] == true)
                        {
                            lock(&self.shared).checkpoint_removed = true;
                        }
                        self.cleaned = last;
                    }
                    Err(e) => errors.push(format!("Hyper-V cleanup: {e}")),
                }
            } else if made && !removed {
                errors.push("the export's checkpoint may remain".to_string());
            }
            if let Some(staging) = self.staging.take() {
                // On success the disks or the VM folder have moved out; what is left is a
                // partial export. remove_dir_all does not follow links inside it.
                let r =
                    tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&staging) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            Err(format!("removing {}: {e}", staging.display()))
                        }
                        _ => Ok(()),
                    })
                    .await;
                match r {
                    Ok(Err(m)) => errors.push(m),
                    Err(e) => errors.push(e.to_string()),
                    Ok(Ok(())) => {}
                }
            }
            super::cleanup_result(errors)
        })
    }

    fn result_fields(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        if let Some(vm) = &self.vm {
            m.insert(
                "vm".into(),
                json!({"name": vm.name, "id": vm.id, "state": vm.state}),
            );
        }
        m.insert(
            "export_type".into(),
            json!(match self.opts.export_type {
                ExportType::Full => "full",
                ExportType::VhdOnly => "vhd-only",
            }),
        );
        m.insert("transport".into(), json!(self.ps.transport().as_str()));
        if !self.ps.host().is_empty() {
            m.insert("host".into(), json!(self.ps.host()));
        }
        if let Some((_, f)) = &self.folder {
            m.insert("folder".into(), json!(self.output_dir.join(f)));
        }
        let s = lock(&self.shared);
        if self.uses_checkpoint() {
            m.insert(
                "checkpoint".into(),
                json!({
                    "name": self.checkpoint_name,
                    "made": s.checkpoint_made,
                    "removed": s.checkpoint_removed,
                }),
            );
        }
        if let Some(p) = s.percent {
            m.insert("hyperv_percent".into(), json!(p));
        }
        m.insert("verified".into(), Value::Array(self.verified.clone()));
        if let Some(c) = &self.cleaned {
            m.insert("jobs_stopped".into(), c["jobs_stopped"].clone());
        }
        m
    }
}

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
