//! What a Hyper-V export learns and keeps while PowerShell works: the VM and its disks as
//! `inventory.ps1` read them, the background reader of `export.ps1` (Hyper-V's percent, the
//! checkpoint it made and removed), the file names in the output folder, and the steps of the
//! export (inventory, staging, verify), which `flow` runs in order.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::config;
use super::config::{ExportType, Transport, VmRef};
use super::flow::HyperVFlow;
use super::jobs::note_job;
use super::ps::{self, Script};
use super::wmi;
use crate::error::{Error, Result};
use crate::paths::sanitize_file_name;
use crate::providers::process::Line;
use crate::seam::FlowCtx;
use crate::sync::lock;
use crate::transfer::WriterState;

/// The VM as `inventory.ps1` read it.
#[derive(Debug, Clone)]
pub(super) struct VmInfo {
    pub(super) name: String,
    pub(super) id: String,
    pub(super) state: String,
}

/// One disk to export and where it lands.
#[derive(Debug, Clone)]
pub(super) struct Disk {
    /// The name in output_dir (vhd-only) or the file's name in the VM folder (full).
    pub(super) name: String,
    /// On the host.
    pub(super) source: String,
    pub(super) file_size: u64,
    /// Every file of the disk's chain, from the one the VM writes now (an `.avhdx` once it has
    /// checkpoints) down to its base disk, with its `FileSize`.
    pub(super) chain: Vec<(String, u64)>,
    /// Where Hyper-V writes it, as this machine sees it.
    pub(super) local: PathBuf,
    /// Where Hyper-V writes it, as the host sees it.
    pub(super) host: String,
    pub(super) controller: Value,
}

/// What the background reader of `export.ps1` learned.
#[derive(Debug, Default)]
pub(super) struct ExportState {
    pub(super) checkpoint_made: bool,
    pub(super) checkpoint_removed: bool,
    pub(super) error: Option<String>,
    pub(super) percent: Option<u8>,
    /// The Hyper-V jobs this export started (their `InstanceID`s, as the WMI methods
    /// `export.ps1` called returned them): the only jobs cleanup ever stops.
    pub(super) job_ids: Vec<String>,
}

/// The folder in staging that Export-VMSnapshot writes into before Convert-VHD (vhd-only).
pub(super) const SNAPSHOT_FOLDER: &str = ".hs-snapshot";

pub(super) struct ExportTask {
    pub(super) stop: CancellationToken,
    pub(super) handle: tokio::task::JoinHandle<()>,
}

pub(super) fn disks_push(
    disks: &mut Vec<Disk>,
    name: String,
    source: String,
    file_size: u64,
    chain: Vec<(String, u64)>,
    d: &Value,
) {
    disks.push(Disk {
        name,
        source,
        file_size,
        chain,
        local: PathBuf::new(),
        host: String::new(),
        controller: json!({
            "controller_type": d["controller_type"],
            "controller_number": d["controller_number"],
            "controller_location": d["controller_location"],
        }),
    });
}

/// The chain `inventory.ps1` read (newest first, base last): bounded, every file with its
/// size, starting at the disk's own file. None (an older host script): the file alone.
pub(super) fn chain_of(source: &str, file_size: u64, v: &Value) -> Result<Vec<(String, u64)>> {
    let bad = |m: &str| Error::Remote(format!("Hyper-V (inventory): {source}: {m}"));
    let Some(links) = v.as_array() else {
        return Ok(vec![(source.to_string(), file_size)]);
    };
    if links.is_empty() || links.len() > 256 {
        return Err(bad("a chain of no file or of more than 256"));
    }
    let chain = links
        .iter()
        .map(|l| match (l["path"].as_str(), l["file_size"].as_u64()) {
            (Some(p), Some(n)) if !p.is_empty() => Ok((p.to_string(), n)),
            _ => Err(bad("a file of its chain has no path or FileSize")),
        })
        .collect::<Result<Vec<_>>>()?;
    if chain[0].0 != source {
        return Err(bad("its chain does not start at the disk"));
    }
    Ok(chain)
}

/// The output file of a disk whose base file is `base`: its sanitized name, with `.vhdx` or
/// `.vhd` (Convert-VHD writes the format the destination's extension names, and only those).
pub(super) fn output_name(base: &str) -> String {
    let name = sanitize_file_name(base, "disk.vhdx");
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".vhdx") || lower.ends_with(".vhd") {
        return name;
    }
    for diff in [".avhdx", ".avhd"] {
        if lower.ends_with(diff) {
            return format!("{}.{}", &name[..name.len() - diff.len()], &diff[2..]);
        }
    }
    format!("{name}.vhdx")
}

/// `name`, or `name-2.ext`, … when taken (case-insensitively: Windows names).
pub(super) fn unique(used: &mut std::collections::HashSet<String>, name: String) -> String {
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
pub(super) async fn follow_export(
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
                // A later step's jobs (Convert-VHD after Export-VMSnapshot).
                Some("job") => note_job(shared, &v)?,
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

/// The steps of a Hyper-V export, each a PowerShell script (see `flow` for their order).
impl HyperVFlow {
    pub(super) fn uses_checkpoint(&self) -> bool {
        !(self.opts.export_type == ExportType::Full && self.opts.include_snapshots)
    }

    /// A host path inside the staging folder.
    pub(super) fn host_join(&self, parts: &[&str]) -> String {
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

    pub(super) async fn inventory(&mut self, ctx: &FlowCtx) -> Result<()> {
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
                Some("skipped") => self.skipped.push(json!({
                    "reason": l["reason"],
                    "disk_number": l["disk_number"],
                    "controller_type": l["controller_type"],
                    "controller_number": l["controller_number"],
                    "controller_location": l["controller_location"],
                })),
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
                "VM {:?} has no virtual hard disk to export{}",
                vm.name,
                if self.skipped.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({} pass-through disk(s), which Hyper-V cannot export, left out)",
                        self.skipped.len()
                    )
                }
            )));
        }
        let mut used = std::collections::HashSet::new();
        for d in disks {
            let source = d["path"].as_str().unwrap_or_default().to_string();
            let file_size = d["file_size"].as_u64().ok_or_else(|| {
                Error::Remote(format!("Hyper-V (inventory): no FileSize for {source}"))
            })?;
            let chain = chain_of(&source, file_size, &d["chain"])?;
            // Named after the disk (the chain's base), never after the checkpoint file the VM
            // writes now (`x_<GUID>.avhdx`), which Convert-VHD cannot write.
            let base = &chain.last().expect("a chain has its disk").0;
            let name = unique(&mut used, output_name(config::leaf(base)));
            // What the export copies: every file of the chain (vhd-only merges them into one).
            let bytes = chain.iter().map(|c| c.1).sum();
            disks_push(&mut self.disks, name, source, bytes, chain, &d);
        }
        Ok(())
    }

    /// Starts `export.ps1` and waits until it has begun (a checkpoint made, the jobs running)
    /// or failed; then reads its lines in the background.
    pub(super) async fn start_export(
        &mut self,
        ctx: &FlowCtx,
    ) -> Result<watch::Receiver<WriterState>> {
        let vm = self.vm.clone().expect("inventory ran");
        let disks: Vec<Value> = self
            .disks
            .iter()
            .map(|d| {
                let mut v = d.controller.clone();
                v["source"] = json!(d.source);
                v["dest"] = json!(d.host);
                v["setting_data"] = json!(wmi::vhd_setting_data(&d.host));
                v
            })
            .collect();
        let input = json!({
            "id": vm.id,
            "export_type": match self.opts.export_type { ExportType::Full => "full", ExportType::VhdOnly => "vhd-only" },
            "include_snapshots": self.opts.include_snapshots,
            "checkpoint_name": self.checkpoint_name,
            "path": self.host_staging,
            "snapshot_folder": SNAPSHOT_FOLDER,
            "export_setting_data": wmi::export_setting_data(
                !self.uses_checkpoint(),
                self.opts.capture_live_state.as_deref(),
            ),
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
                    // Each job as soon as the script sees it: a cancel before `started` must
                    // still stop the jobs of this export already running in the Hyper-V service.
                    Some("job") => {
                        note_job(&self.shared, &v)?;
                        ctx.waiting_for_cloud("export job started");
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

    pub(super) async fn stop_export(&mut self) {
        if let Some(t) = self.export.take() {
            t.stop.cancel();
            // Ending the reader drops the process: its whole process group is killed.
            let _ = t.handle.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disks_are_named_after_their_base_file() {
        assert_eq!(output_name("web.vhdx"), "web.vhdx");
        assert_eq!(output_name("old.VHD"), "old.VHD");
        assert_eq!(output_name("x_6F1C2A3B.avhdx"), "x_6F1C2A3B.vhdx");
        assert_eq!(output_name("x.avhd"), "x.vhd");
        assert_eq!(output_name("raw.img"), "raw.img.vhdx");
        let chain = chain_of(
            "C:\\a_1.avhdx",
            5,
            &json!([{"path": "C:\\a_1.avhdx", "file_size": 5}, {"path": "C:\\a.vhdx", "file_size": 9}]),
        )
        .unwrap();
        assert_eq!(chain.last().unwrap(), &("C:\\a.vhdx".to_string(), 9));
        assert_eq!(chain_of("C:\\a.vhdx", 3, &Value::Null).unwrap().len(), 1);
        for bad in [
            json!([]),
            json!([{"path": "C:\\other.vhdx", "file_size": 1}]),
            json!([{"path": "C:\\a.vhdx"}]),
        ] {
            assert!(chain_of("C:\\a.vhdx", 1, &bad).is_err(), "{bad}");
        }
    }
}
