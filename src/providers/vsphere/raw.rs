//! Format `raw`: each virtual disk as a raw image, read from a snapshot's flat disk through
//! the datastore's HTTP file interface (`GET /folder/<path>-flat.vmdk?dcPath=…&dsName=…`, the
//! session cookie sent; vSphere Web Services SDK "Datastore HTTP access", govmomi
//! `object.Datastore.NewURL` / `soap.Client.Download`), in ranged parts. A `-flat.vmdk`'s
//! offsets are the disk's offsets, so a byte range of it is the same range of the disk: what an
//! incremental export needs (NFC streams a whole streamOptimized disk, no ranges).
//!
//! Flow: find the VM → with `keep_base`, changed block tracking on (ReconfigVM_Task
//! `changeTrackingEnabled`, then a snapshot made and removed: the stun/unstun cycle that makes
//! it take effect on a running VM, VMware KB 1020128; what platform9/vjailbreak's v2v-helper
//! does: EnableCBT, TakeSnapshot, DeleteSnapshot) → a snapshot for the export (the user's, or
//! one made now and removed on every outcome) → the snapshot's disks (`config.hardware.device`:
//! key, capacity, backing file, uuid, `changeId`) → per disk, in full or (with
//! `incremental_from`) only the areas changed since the base (incremental.rs).
//!
//! Only a flat disk without a parent can be read this way: a snapshot on top of earlier
//! snapshots (a delta backing with `parent`), a sesparse or vmfsSparse disk, an RDM, a vSAN or
//! vVol datastore (no `-flat.vmdk` file: the objects sit behind the descriptor) are refused
//! with the reason; NFC (`format: ovf`) exports those.

use std::sync::Arc;

use reqwest::header::{COOKIE, HeaderMap, HeaderValue};
use serde_json::Value;
use url::Url;

use super::flow::VsphereFlow;
use super::soap::{Moref, Vim};
use crate::error::{Error, Result};
use crate::providers::xml;
use crate::seam::FlowCtx;
use crate::transfer::incremental::FileOutcome;
use crate::transfer::{FileSource, HttpSource};

/// What a `raw` export keeps beside the flow's own state.
#[derive(Default)]
pub(super) struct RawState {
    pub disks: Vec<RawDisk>,
    /// With `incremental_from`: how each disk was made.
    pub outcomes: Vec<FileOutcome>,
    /// What a later incremental export starts from (after the download).
    pub base: Option<crate::transfer::incremental::Base>,
}

/// One disk of the exported snapshot.
#[derive(Debug, Clone)]
pub(super) struct RawDisk {
    /// The output file's name.
    pub file: String,
    pub key: i64,
    pub capacity: u64,
    /// `[datastore] dir/name.vmdk`, the descriptor the backing names.
    pub file_name: String,
    pub uuid: String,
    /// The snapshot's `changeId` of the disk ("" without CBT).
    pub change_id: String,
    pub url: Url,
}

/// A device of `config.hardware.device` read as a disk, or why it cannot be read raw.
fn disk_of(d: &xml::Node) -> Option<std::result::Result<RawDisk, String>> {
    if d.attr("type") != Some("VirtualDisk") {
        return None;
    }
    let key = d.child_text("key")?.trim().parse::<i64>().ok()?;
    // capacityInBytes (vSphere 5.5+), else capacityInKB.
    let capacity = d
        .child_text("capacityInBytes")
        .and_then(|c| c.trim().parse::<u64>().ok())
        .or_else(|| {
            d.child_text("capacityInKB")
                .and_then(|c| c.trim().parse::<u64>().ok())
                .and_then(|k| k.checked_mul(1024))
        })
        .unwrap_or(0);
    let b = d.child("backing")?;
    let kind = b.attr("type").unwrap_or("?");
    let text = |k: &str| b.child_text(k).unwrap_or("").trim().to_string();
    let file_name = text("fileName");
    if kind != "VirtualDiskFlatVer2BackingInfo" {
        return Some(Err(format!(
            "disk {key} ({file_name}) has a {kind} backing: format raw reads only a flat disk"
        )));
    }
    // An independent disk is left out of snapshots: its backing in a snapshot is the live
    // disk (persistent) or the base without its redo log (nonpersistent) — not the
    // snapshot's state.
    let mode = text("diskMode");
    if mode.starts_with("independent") {
        return Some(Err(format!(
            "disk {key} ({file_name}) is {mode}: snapshots leave it out, so format raw would \
             read the live disk, not the snapshot's state (make it dependent, or use format ovf \
             with the VM powered off)"
        )));
    }
    if b.child("parent").is_some() {
        return Some(Err(format!(
            "disk {key} ({file_name}) is a delta on a snapshot: format raw reads only a flat \
             disk with no snapshot below the export's (remove or consolidate the VM's \
             snapshots, or use format ovf)"
        )));
    }
    Some(Ok(RawDisk {
        file: String::new(),
        key,
        capacity,
        file_name,
        uuid: text("uuid"),
        change_id: text("changeId"),
        url: Url::parse("http://unset/").expect("static"),
    }))
}

/// `[ds] dir/name.vmdk` → (ds, `dir/name-flat.vmdk`).
pub(super) fn flat_path(file_name: &str) -> Option<(String, String)> {
    let rest = file_name.trim().strip_prefix('[')?;
    let (ds, path) = rest.split_once(']')?;
    let path = path.trim();
    let stem = path.strip_suffix(".vmdk")?;
    if ds.is_empty() || stem.is_empty() {
        return None;
    }
    Some((ds.to_string(), format!("{stem}-flat.vmdk")))
}

/// The datastore HTTP URL of `path` on datastore `ds` of datacenter `dc_path`.
pub(super) fn folder_url(sdk: &Url, dc_path: &str, ds: &str, path: &str) -> Url {
    let mut u = sdk.clone();
    u.set_query(None);
    u.set_fragment(None);
    if let Ok(mut segs) = u.path_segments_mut() {
        segs.clear().push("folder").extend(path.split('/'));
    }
    u.query_pairs_mut()
        .append_pair("dcPath", dc_path)
        .append_pair("dsName", ds);
    u
}

/// The inventory path of the datacenter holding `obj` (its `dcPath`): the names from below the
/// root folder down to the datacenter.
async fn datacenter_path(vim: &Vim, obj: &Moref) -> Result<String> {
    let parent = |props: Vec<(String, xml::Node)>| {
        props
            .into_iter()
            .find(|(n, _)| n == "parent")
            .and_then(|(_, v)| {
                let t = v.attr("type")?.to_string();
                Some(Moref::new(&t, v.text.trim()))
            })
    };
    let mut cur = obj.clone();
    // Up to the datacenter…
    for _ in 0..64 {
        if cur.kind == "Datacenter" {
            break;
        }
        cur = parent(vim.properties(&cur, &["parent"]).await?)
            .ok_or_else(|| Error::Remote(format!("{} has no datacenter above it", obj.value)))?;
    }
    // …then its name and the folders above it, to the root.
    let mut names = Vec::new();
    for _ in 0..64 {
        let props = vim.properties(&cur, &["name", "parent"]).await?;
        let name = props
            .iter()
            .find(|(n, _)| n == "name")
            .map(|(_, v)| v.text.clone())
            .unwrap_or_default();
        match parent(props) {
            Some(p) => {
                names.push(name);
                cur = p;
            }
            None => break, // the root folder: not part of the path
        }
    }
    names.reverse();
    Ok(names.join("/"))
}

impl VsphereFlow {
    /// Changed block tracking on, for `keep_base`: only when it is off, and followed by a
    /// snapshot made and removed so that it takes effect.
    async fn enable_cbt(&self, ctx: &FlowCtx, vm: &Moref) -> Result<bool> {
        let props = self
            .vim
            .properties(vm, &["config.changeTrackingEnabled"])
            .await?;
        let on = props
            .iter()
            .any(|(n, v)| n == "config.changeTrackingEnabled" && v.text.trim() == "true");
        if on {
            return Ok(false);
        }
        ctx.message("turning changed block tracking on (keep_base)");
        let body = format!(
            "{}<spec><changeTrackingEnabled>true</changeTrackingEnabled></spec>",
            vm.xml("_this")
        );
        let r = self.vim.call("ReconfigVM_Task", &body).await?;
        let task = r
            .child("returnval")
            .map(|n| Moref::new("Task", n.text.trim()))
            .ok_or_else(|| Error::Remote("ReconfigVM_Task returned no task".into()))?;
        if let Err(msg) =
            super::snapshot::wait_task(ctx, &self.vim, &task, "turning CBT on").await?
        {
            return Err(Error::Remote(format!(
                "turning changed block tracking on failed: {msg}"
            )));
        }
        super::snapshot::cycle(ctx, &self.vim, vm).await?;
        Ok(true)
    }

    /// `prepare` for format `raw`.
    pub(super) async fn prepare_raw(
        &mut self,
        ctx: &FlowCtx,
        vm: &Moref,
        headers: HeaderMap,
    ) -> Result<Vec<FileSource>> {
        // A disk that cannot be read raw is refused before anything changes on the VM (CBT
        // turned on, a snapshot): without a snapshot of the user's, the VM's own disks say so
        // already (a delta on a snapshot, another backing type). With one, the VM's disks are
        // deltas on it by nature: only the snapshot's disks are checked, below.
        // A snapshot of the user's is found, and its disks checked, first too (a misspelt
        // name must not leave CBT turned on).
        let named = match &self.opts.snapshot {
            Some(s) => Some(self.find_snapshot(vm, s).await?),
            None => None,
        };
        let own = self
            .vim
            .properties(named.as_ref().unwrap_or(vm), &["config.hardware.device"])
            .await?;
        if let Some((_, devices)) = own.into_iter().next() {
            for d in &devices.children {
                if let Some(Err(why)) = disk_of(d) {
                    return Err(Error::Unsupported(why));
                }
            }
        }
        if self.opts.keep_base && self.enable_cbt(ctx, vm).await? {
            tracing::info!(vm = %vm.value, "changed block tracking turned on (keep_base)");
        }
        let snap = match named {
            Some(s) => s,
            None => {
                super::snapshot::create_for_export(ctx, &self.vim, vm, self.opts.quiesce).await?
            }
        };
        self.snapshot = Some(snap.clone());
        let props = self
            .vim
            .properties(&snap, &["config.hardware.device"])
            .await?;
        let devices = props
            .into_iter()
            .find(|(n, _)| n == "config.hardware.device")
            .map(|(_, v)| v)
            .ok_or_else(|| Error::Remote("the snapshot has no devices".into()))?;
        let dc = datacenter_path(&self.vim, vm).await?;
        let mut cut = self.base_name.len().min(120);
        while !self.base_name.is_char_boundary(cut) {
            cut -= 1;
        }
        let base = self.base_name[..cut].to_string();
        let mut disks = Vec::new();
        for d in &devices.children {
            match disk_of(d) {
                None => {}
                Some(Err(why)) => return Err(Error::Unsupported(why)),
                Some(Ok(mut disk)) => {
                    let (ds, path) = flat_path(&disk.file_name).ok_or_else(|| {
                        Error::Remote(format!(
                            "disk file name {:?} not understood",
                            disk.file_name
                        ))
                    })?;
                    disk.url = folder_url(&self.vim.url, &dc, &ds, &path);
                    disk.file = format!("{base}-disk-{}.img", disks.len());
                    disks.push(disk);
                }
            }
        }
        if disks.is_empty() {
            return Err(Error::NotFound("the VM has no virtual disk".into()));
        }
        if self.opts.keep_base {
            for d in disks.iter().filter(|d| d.change_id.is_empty()) {
                // A snapshot of the user's taken while CBT was off: exported, but no base.
                let why = format!(
                    "{}: no base recorded: snapshot {:?} has no changeId for disk {} (taken while \
                     changed block tracking was off; the next snapshot will have one)",
                    d.file,
                    self.opts.snapshot.as_deref().unwrap_or("of the export"),
                    d.key
                );
                tracing::warn!("{why}");
                ctx.message(&why);
            }
        }
        let mut sources = Vec::new();
        for disk in &disks {
            let http = HttpSource {
                client: self.http.clone(),
                url: disk.url.clone(),
                headers: headers.clone(),
                signer: None,
                hooks: Default::default(),
            };
            if let Some(base) = self.incr_base.clone() {
                let plan = match base {
                    Err(why) => Err(why),
                    Ok(b) => self.incremental(ctx, &b, vm, &snap, disk, &http).await?,
                };
                match plan {
                    Ok((src, delta)) => {
                        self.raw.outcomes.push(FileOutcome {
                            name: disk.file.clone(),
                            how: Ok(delta),
                        });
                        sources.push(src);
                        continue;
                    }
                    Err(why) => {
                        tracing::warn!(file = %disk.file, reason = %why, "exporting in full, not incrementally");
                        ctx.message(&format!("{}: exporting in full: {why}", disk.file));
                        self.raw.outcomes.push(FileOutcome {
                            name: disk.file.clone(),
                            how: Err(why),
                        });
                    }
                }
            }
            let mut src = FileSource::http(disk.file.clone(), http);
            src.size_hint = Some(disk.capacity);
            src.expected_size = Some(disk.capacity);
            sources.push(src);
        }
        self.raw.disks = disks;
        Ok(sources)
    }

    /// `dry_run` for format `raw`.
    pub(super) fn dry_run_raw(&self) -> (Vec<String>, Vec<String>) {
        let mut cloud = Vec::new();
        if self.opts.keep_base {
            cloud.push(format!(
                "if changed block tracking is off on {}: turned on (ReconfigVM_Task \
                 changeTrackingEnabled) and left on, then a snapshot made and removed so that \
                 it starts (keep_base)",
                self.source
            ));
        }
        cloud.push(match &self.opts.snapshot {
            Some(s) => format!("snapshot {s:?} of {} read", self.source),
            None => format!(
                "a snapshot of {} without memory{}, removed on every outcome",
                self.source,
                if self.opts.quiesce { ", quiesced" } else { "" }
            ),
        });
        cloud.push(if self.opts.incremental_from.is_some() {
            "each disk's areas changed since the base (QueryChangedDiskAreas) read from the \
             snapshot's flat disk through the datastore's /folder interface, or the whole disk \
             when that base cannot serve (the result says why)"
                .into()
        } else {
            "each disk read whole from the snapshot's flat disk through the datastore's /folder \
             interface"
                .into()
        });
        let base = self.opts.name.clone().unwrap_or_else(|| "<VM name>".into());
        (cloud, vec![format!("{base}-disk-<N>.img (one per disk)")])
    }

    /// The result's `base` and (with `incremental_from`) `incremental`.
    pub(super) fn raw_fields(&self, m: &mut serde_json::Map<String, Value>) {
        if let Some(b) = &self.raw.base {
            m.insert("base".into(), b.to_value());
        }
        if self.opts.incremental_from.is_some() {
            let files: Vec<Value> = self.raw.outcomes.iter().map(FileOutcome::report).collect();
            m.insert("incremental".into(), serde_json::json!({ "files": files }));
        }
    }
}

/// The session cookie as a header for the datastore GETs (sensitive: never logged).
pub(super) fn cookie_headers(vim: &Arc<Vim>) -> Result<HeaderMap> {
    let cookie = vim
        .cookie()
        .ok_or_else(|| Error::InvalidState("no vSphere session".into()))?;
    let mut headers = HeaderMap::new();
    let mut cv =
        HeaderValue::from_str(&cookie).map_err(|_| Error::Remote("bad session cookie".into()))?;
    cv.set_sensitive(true);
    headers.insert(COOKIE, cv);
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_paths_and_urls() {
        assert_eq!(
            flat_path("[LocalDS_0] vm1/vm1_1.vmdk"),
            Some(("LocalDS_0".into(), "vm1/vm1_1-flat.vmdk".into()))
        );
        assert_eq!(flat_path("vm1/vm1.vmdk"), None);
        assert_eq!(flat_path("[ds] vm1/vm1.vmx"), None);
        let sdk = Url::parse("https://vc:8443/sdk").unwrap();
        let u = folder_url(&sdk, "F1/DC 0", "ds&1", "a b/c-flat.vmdk");
        assert_eq!(
            u.as_str(),
            "https://vc:8443/folder/a%20b/c-flat.vmdk?dcPath=F1%2FDC+0&dsName=ds%261"
        );
    }
}
