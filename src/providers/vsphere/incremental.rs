//! Incremental exports of a VM's disks (issue 35), format `raw`: the areas changed since the
//! base's `changeId`, from `QueryChangedDiskAreas(vm, snapshot, deviceKey, startOffset,
//! changeId)` (vSphere API reference, VirtualMachine; element order as govmomi's vim25
//! `QueryChangedDiskAreasRequestType`), called again from `startOffset + length` of each
//! answer (`DiskChangeInfo`) until the disk is covered, as govmomi's
//! `object.VirtualMachine.QueryChangedDiskAreas` and vexxhost/migratekit's copy loop do. The
//! `changeId` of each disk is read from the snapshot's `config.hardware.device` backing (as
//! migratekit's `GetChangeID` does); it is `<uuid>/<sequence>`, the uuid changing when
//! tracking is reset.
//!
//! Before any call, everything that would make the clone of the previous image wrong sends the
//! disk back to a full export with the reason: no base for the device key, another disk behind
//! it (uuid), a resized disk, the previous image changed or missing, no `changeId` now (CBT
//! off), a tracking reset (another uuid), a query vCenter refuses (FileFault: CBT off or its
//! files lost; InvalidArgument: a changeId it does not know). vSphere gives no per-block
//! checksum: the new image is verified by its size.

use std::sync::Arc;

use serde_json::{Value, json};

use super::flow::VsphereFlow;
use super::raw::RawDisk;
use super::soap::Moref;
use crate::error::{ErrorKind, Result};
use crate::seam::FlowCtx;
use crate::transfer::incremental::{Base, BaseFile, BaseImage, Delta, check_local};
use crate::transfer::{FileSource, HttpSource, SourceKind};

/// `incremental_from`'s base, or why there is none usable.
pub(super) type LoadedBase = std::result::Result<Arc<Base>, String>;

/// The base in `incremental_from`, or why there is none usable.
pub(super) fn load_base(from: &Value) -> Result<LoadedBase> {
    Ok(crate::transfer::incremental::load(from, "vsphere")?.map(Arc::new))
}

/// A plan for one disk: its source and what it takes.
pub(super) type Plan = (FileSource, Delta);

fn epoch(change_id: &str) -> &str {
    change_id.split_once('/').map_or(change_id, |(e, _)| e)
}

/// The sequence number after the epoch (`"52 aa-bb/17"` → 17).
fn seq(change_id: &str) -> Option<u64> {
    change_id.split_once('/')?.1.trim().parse().ok()
}

/// Merges sorted-or-not extents into sorted, disjoint ones within `size`.
fn merge(mut v: Vec<(u64, u64)>, size: u64) -> Vec<(u64, u64)> {
    v.retain(|(a, b)| a < b && *a < size);
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (a, b) in v {
        let b = b.min(size);
        match out.last_mut() {
            Some(last) if last.1 >= a => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

impl VsphereFlow {
    /// Disk `disk` of the new snapshot `snap` as the changes since `base`; `Err(why)` when
    /// that base cannot serve (the caller exports the disk in full and says why).
    pub(super) async fn incremental(
        &self,
        ctx: &FlowCtx,
        base: &Base,
        vm: &Moref,
        snap: &Moref,
        disk: &RawDisk,
        http: &HttpSource,
    ) -> Result<std::result::Result<Plan, String>> {
        let num = |f: &BaseFile, k: &str| f.cloud.get(k).and_then(Value::as_i64);
        let text = |f: &BaseFile, k: &str| {
            f.cloud
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let Some(f) = base
            .files
            .iter()
            .find(|f| num(f, "device_key") == Some(disk.key) && text(f, "vm") == vm.value)
        else {
            return Ok(Err(format!(
                "the base has no disk with device key {} of VM {}",
                disk.key, vm.value
            )));
        };
        let (old_uuid, old_change) = (text(f, "disk_uuid"), text(f, "change_id"));
        if old_uuid != disk.uuid {
            return Ok(Err(format!(
                "device {} is another disk now (uuid {}, the base's {old_uuid})",
                disk.key, disk.uuid
            )));
        }
        if disk.capacity != f.size {
            return Ok(Err(format!(
                "disk {} was resized ({} bytes, the base has {})",
                disk.key, disk.capacity, f.size
            )));
        }
        if let Err(why) = check_local(f) {
            return Ok(Err(why));
        }
        if old_change.is_empty() || old_change == "*" {
            return Ok(Err(format!("the base of {} records no changeId", f.name)));
        }
        if disk.change_id.is_empty() {
            return Ok(Err(format!(
                "changed block tracking is off on disk {} (the snapshot has no changeId)",
                disk.key
            )));
        }
        if epoch(&disk.change_id) != epoch(&old_change) {
            return Ok(Err(format!(
                "changed block tracking of disk {} was reset since the base (changeId {} after {old_change})",
                disk.key, disk.change_id
            )));
        }
        // Within one tracking epoch the sequence number grows: a lower one is a snapshot
        // older than the base (a user's named snapshot), whose changes since it mean nothing.
        if let (Some(new), Some(old)) = (seq(&disk.change_id), seq(&old_change))
            && new < old
        {
            return Ok(Err(format!(
                "the snapshot read is older than the base (changeId {} before {old_change})",
                disk.change_id
            )));
        }
        ctx.message(&format!(
            "{}: listing the areas changed since {old_change}",
            disk.file
        ));
        let mut changed = Vec::new();
        let mut at = 0u64;
        while at < disk.capacity {
            let body = format!(
                "{}{}<deviceKey>{}</deviceKey><startOffset>{at}</startOffset><changeId>{}</changeId>",
                vm.xml("_this"),
                snap.xml("snapshot"),
                disk.key,
                crate::providers::xml::esc(&old_change)
            );
            let r = match self.vim.call("QueryChangedDiskAreas", &body).await {
                Ok(r) => r,
                // A definite answer: InvalidArgument (a changeId or offset it does not know),
                // FileFault (CBT off, or its tracking files lost), NotSupported, …
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::InvalidArgument
                            | ErrorKind::NotFound
                            | ErrorKind::Unsupported
                            | ErrorKind::Remote
                    ) =>
                {
                    return Ok(Err(format!("vCenter would not list the changes: {e}")));
                }
                Err(e) => return Err(e),
            };
            let info = r.child("returnval").ok_or_else(|| {
                crate::error::Error::Remote("QueryChangedDiskAreas returned nothing".into())
            })?;
            let n = |node: &crate::providers::xml::Node, k: &str| {
                node.child_text(k)
                    .and_then(|t| t.trim().parse::<u64>().ok())
            };
            let (start, len) = (n(info, "startOffset"), n(info, "length"));
            let (Some(start), Some(len)) = (start, len) else {
                return Err(crate::error::Error::Remote(
                    "QueryChangedDiskAreas: an answer without startOffset or length".into(),
                ));
            };
            if start != at || len == 0 {
                // An answer that does not move on would loop for ever.
                return Ok(Err(format!(
                    "vCenter answered the changes from {start} (+{len}) when asked from {at}"
                )));
            }
            for a in info.children_named("changedArea") {
                // An area not understood must not be skipped: the image would keep the base's
                // bytes there and pass the size check.
                let (Some(s), Some(l)) = (n(a, "start"), n(a, "length")) else {
                    return Ok(Err(format!(
                        "vCenter listed a changed area without a readable start and length \
                         (from {at})"
                    )));
                };
                changed.push((s, s.saturating_add(l)));
            }
            let Some(next) = start.checked_add(len) else {
                return Ok(Err(format!(
                    "vCenter answered the changes from {start} (+{len}), past any disk"
                )));
            };
            at = next;
        }
        let changed = merge(changed, disk.capacity);
        let delta = Delta {
            base: old_change.clone(),
            changed_bytes: changed.iter().map(|(a, b)| b - a).sum(),
            zeroed_bytes: 0,
        };
        let source = FileSource {
            name: disk.file.clone(),
            kind: SourceKind::HttpExtents {
                http: http.clone(),
                size: disk.capacity,
                extents: changed,
                base: Some(BaseImage {
                    path: f.path.clone(),
                    zeroed: Vec::new(),
                    id: format!("{old_change} to {}", disk.change_id),
                    stamp: (f.size, f.modified_ns),
                }),
            },
            size_hint: Some(disk.capacity),
            expected_size: Some(disk.capacity),
            checksum: None,
            want_digest: None,
        };
        Ok(Ok((source, delta)))
    }

    /// After the download: the base a later incremental export starts from, each disk file
    /// as it is now with the snapshot's changeId; none when CBT is off (no changeId).
    pub(super) fn record_base(&mut self, files: &[crate::transfer::Downloaded]) {
        let vm = self
            .vm
            .as_ref()
            .map(|v| v.value.clone())
            .unwrap_or_default();
        let snapshot = self.snapshot.as_ref().map(|s| s.value.clone());
        let mut out = Vec::new();
        for disk in &self.raw.disks {
            if disk.change_id.is_empty() {
                continue;
            }
            let Some(d) = files.iter().find(|d| d.name == disk.file) else {
                continue;
            };
            let mut cloud = serde_json::Map::new();
            cloud.insert("vm".into(), json!(vm));
            cloud.insert("device_key".into(), json!(disk.key));
            cloud.insert("disk_uuid".into(), json!(disk.uuid));
            cloud.insert("change_id".into(), json!(disk.change_id));
            cloud.insert("capacity".into(), json!(disk.capacity));
            cloud.insert("disk_file".into(), json!(disk.file_name));
            cloud.insert("snapshot".into(), json!(snapshot));
            out.extend(BaseFile::of(d, cloud));
        }
        if !out.is_empty() {
            // Kept: CBT stays on (this never turns it off).
            self.raw.base = Some(Base {
                provider: "vsphere".into(),
                kept: true,
                files: out,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extents_merge_and_clip() {
        assert_eq!(
            merge(vec![(10, 20), (0, 5), (15, 30), (40, 40), (90, 200)], 100),
            vec![(0, 5), (10, 30), (90, 100)]
        );
        assert_eq!(epoch("52 aa-bb/17"), "52 aa-bb");
        assert_eq!(seq("52 aa-bb/17"), Some(17));
        assert_eq!(seq("*"), None);
    }
}
