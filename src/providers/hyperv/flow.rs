//! One Hyper-V export's run: inventory, the staging folder, `export.ps1` in the background
//! while the engine watches the files grow, verification, the rename into place, and
//! `cleanup.ps1` on every path.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::config;
use super::config::{ExportType, HyperVOptions, VmRef};
use super::export::{Disk, ExportState, ExportTask, VmInfo, disks_push, unique};
use super::ps::{PowerShell, Script};
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::paths::sanitize_file_name;
use crate::seam::{AfterDownload, CleanupCtx, Flow, FlowCtx, Outcome};
use crate::sync::lock;
use crate::transfer::{Downloaded, FileSource, OutDir, SourceKind, Written};

pub(super) struct HyperVFlow {
    pub(super) ps: Arc<PowerShell>,
    pub(super) control_timeout: Duration,
    pub(super) vm_ref: VmRef,
    pub(super) opts: HyperVOptions,
    pub(super) output_dir: PathBuf,
    pub(super) poll_ms: u64,
    /// Unique per export: cleanup removes exactly this checkpoint, never another.
    pub(super) checkpoint_name: String,
    pub(super) staging_name: String,
    pub(super) vm: Option<VmInfo>,
    /// Set just before the folder is made, so cleanup removes it whatever happens next.
    pub(super) staging: Option<PathBuf>,
    pub(super) host_staging: String,
    pub(super) disks: Vec<Disk>,
    /// `full`: (the VM's folder in staging, relative to output_dir; its final name).
    pub(super) folder: Option<(String, String)>,
    pub(super) export: Option<ExportTask>,
    /// `export.ps1` was started: from then on, cleanup stops Hyper-V's jobs and looks for the
    /// checkpoint, whether or not the script said it began.
    pub(super) export_started: bool,
    pub(super) shared: Arc<Mutex<ExportState>>,
    pub(super) verified: Vec<Value>,
    /// Drives left out (pass-through disks), as `inventory.ps1` named them.
    pub(super) skipped: Vec<Value>,
    pub(super) cleaned: Option<Value>,
}

impl Flow for HyperVFlow {
    fn dry_run(&self) -> (Vec<String>, Vec<String>) {
        let vm = match &self.vm_ref {
            VmRef::Id(id) => format!("with id {id}"),
            VmRef::Name(n) => format!("{n:?}"),
        };
        let mut cloud = Vec::new();
        let files = match self.opts.export_type {
            ExportType::VhdOnly => {
                cloud.push(format!(
                    "a checkpoint {:?} of the VM {vm}: removed on every outcome",
                    self.checkpoint_name
                ));
                vec!["<disk>.vhdx or .vhd (one per disk, its current state)".to_string()]
            }
            ExportType::Full => vec![format!(
                "{}/ (Hyper-V's layout: Virtual Machines, Virtual Hard Disks{})",
                self.opts.folder_name.as_deref().unwrap_or("<VM name>"),
                if self.opts.include_snapshots {
                    ", Snapshots"
                } else {
                    ""
                }
            )],
        };
        cloud.push(format!(
            "a staging folder {} in the output folder while Hyper-V writes: removed on every outcome",
            self.staging_name
        ));
        (cloud, files)
    }

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
            // Export-VM and Export-VMSnapshot (also the first step of vhd-only) name their
            // folder after the VM; we must be able to find it.
            if !config::is_windows_folder_name(&vm.name) {
                return Err(Error::Unsupported(format!(
                    "VM {:?}: Hyper-V's export cannot make a folder of this name (Export-VM and \
                     Export-VMSnapshot name it after the VM); rename the VM",
                    vm.name
                )));
            }
            // Export-VM and Export-VMSnapshot write every file of each disk's chain (the base
            // disk and the checkpoints' .avhdx) under the host file's name. Only plain, unique
            // file names (the ones the library would give them) can be watched, moved and
            // found again: two disks `disk.vhdx` in different host folders, or a leaf such as
            // `..`, cannot (vhd-only converts Hyper-V's exported copies too).
            let mut used = std::collections::HashSet::new();
            let mut files = Vec::new();
            for d in &self.disks {
                for (path, size) in d.chain.iter().rev() {
                    let name = unique(
                        &mut used,
                        sanitize_file_name(config::leaf(path), "disk.vhdx"),
                    );
                    disks_push(
                        &mut files,
                        name,
                        path.clone(),
                        *size,
                        Vec::new(),
                        &d.controller,
                    );
                }
            }
            let odd: Vec<&str> = files
                .iter()
                .filter(|d| config::leaf(&d.source) != d.name)
                .map(|d| d.source.as_str())
                .collect();
            if !odd.is_empty() {
                return Err(Error::Unsupported(format!(
                    "VM {:?}: Hyper-V's export would write disk files whose names are not unique \
                     or not plain file names ({odd:?}); rename or move the disks on the host",
                    vm.name
                )));
            }
            if self.opts.export_type == ExportType::Full {
                self.disks = files;
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
                    // The file keeps Hyper-V's name in the VM folder (checked above: its
                    // sanitized, unique name).
                    (
                        staging
                            .join(&vm.name)
                            .join("Virtual Hard Disks")
                            .join(&name),
                        self.host_join(&[&vm.name, "Virtual Hard Disks", &name]),
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
                        // full: the names are the library's expectation of Hyper-V's layout
                        // (progress only); what it wrote is read from the folder afterwards.
                        optional: full,
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
            self.verify_files(ctx, files).await?;
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
            // Only the jobs this export started, by their InstanceID: never another export's
            // or a backup's.
            let job_ids = lock(&self.shared).job_ids.clone();
            let stop_jobs = running && ctx.outcome != Outcome::Success && !job_ids.is_empty();
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
                    "job_ids": if stop_jobs { job_ids } else { Vec::new() },
                });
                let never = CancellationToken::new();
                match self
                    .ps
                    .run(Script::Cleanup, &input, self.control_timeout, &never)
                    .await
                {
                    Ok(lines) => {
                        let last = lines.into_iter().find(|l| l["event"] == "cleaned");
                        if let Some(left) = last
                            .as_ref()
                            .and_then(|l| l["jobs_not_stopped"].as_array())
                            .filter(|a| !a.is_empty())
                        {
                            errors.push(format!(
                                "Hyper-V did not stop the export's job(s): {}",
                                serde_json::Value::Array(left.clone())
                            ));
                        }
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
            crate::providers::cleanup_result(errors)
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
        if !self.skipped.is_empty() {
            m.insert("skipped".into(), Value::Array(self.skipped.clone()));
        }
        if !s.job_ids.is_empty() {
            m.insert("job_ids".into(), json!(s.job_ids));
        }
        if let Some(c) = &self.cleaned {
            m.insert("jobs_stopped".into(), c["jobs_stopped"].clone());
            if c["jobs_not_stopped"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                m.insert("jobs_not_stopped".into(), c["jobs_not_stopped"].clone());
            }
        }
        m
    }
}
