//! Incremental exports of a managed disk (issue 35): the pages changed between the base's
//! incremental snapshot and a new one, from Get Page Ranges on the new snapshot's SAS with
//! `x-ms-previous-snapshot-url` = the base snapshot's SAS (Blob service REST API "Get Page
//! Ranges", version 2019-07-07 and later, managed disks only; the .NET SDK's
//! `PageBlobClient.GetManagedDiskPageRangesDiff`). Its answer lists `PageRange`s (written since
//! the base: fetched, with per-range MD5 as a full export) and `ClearRange`s (cleared since:
//! punched as holes). Both snapshots must be incremental snapshots of the same disk
//! ("Create an incremental snapshot for managed disks": "get the changes between two
//! incremental snapshots of the same managed disks, down to the block level").
//!
//! Before that call, everything that would make the clone of the previous image wrong sends
//! the disk back to a full export, with the reason in the result: no base for the disk, the
//! base snapshot not kept or gone, a snapshot of another disk, the previous image changed or
//! missing, a resized disk, a diff the service refuses.

use std::sync::Arc;

use serde_json::{Value, json};

use super::blob::{self, BlobAuth, CALL_DEADLINE};
use super::flow::AzureFlow;
use crate::error::{Error, ErrorKind, Result};
use crate::seam::{FlowCtx, When};
use crate::transfer::incremental::{
    Base, BaseFile, BaseImage, Delta, FileOutcome, Output, check_local, delta,
};
use crate::transfer::{FileSource, SourceKind};

/// What an incremental export records and reports, beside the flow's own state.
#[derive(Default)]
pub(super) struct IncrState {
    /// Per disk file: the incremental snapshot it was read from.
    pub points: Vec<Point>,
    /// Per disk file, with `incremental_from`: how it was made.
    pub outcomes: Vec<FileOutcome>,
    /// What a later incremental export starts from (after the download).
    pub base: Option<Base>,
    /// `incremental_output: "delta"`: each delta file's map, written after the download.
    pub maps: Vec<delta::Map>,
}

/// The snapshot one disk file was read from.
pub(super) struct Point {
    pub file: String,
    pub rg: String,
    pub snapshot: String,
    pub disk_id: String,
}

/// How one disk's file is made, incrementally: its source and what it took (and, for
/// `incremental_output: "delta"`, the delta's map).
pub(super) struct Plan {
    pub source: FileSource,
    pub delta: Delta,
    pub map: Option<delta::Map>,
}

/// `incremental_from`'s base, or why there is none usable.
pub(super) type LoadedBase = std::result::Result<Arc<Base>, String>;

impl AzureFlow {
    /// A disk target's source: incremental from `base` where it can serve, else in full (with
    /// `incremental_from`, the outcome says which and why).
    pub(super) async fn disk_source(
        &self,
        ctx: &FlowCtx,
        base: Option<&LoadedBase>,
        t: &super::target::Target,
        bare: &url::Url,
        auth: &BlobAuth,
    ) -> Result<(
        FileSource,
        &'static [&'static str],
        Option<FileOutcome>,
        Option<delta::Map>,
    )> {
        let plan = match base {
            None => None,
            Some(Err(why)) => Some(Err(why.clone())),
            Some(Ok(b)) => Some(
                self.incremental(
                    ctx,
                    b,
                    &t.source_id,
                    &t.file,
                    (&t.rg, &t.name),
                    (bare, auth),
                )
                .await?,
            ),
        };
        let why = match plan {
            Some(Ok(p)) => {
                let outcome = FileOutcome {
                    name: p.source.name.clone(),
                    how: Ok(p.delta),
                };
                return Ok((p.source, &["size", "range_md5"], Some(outcome), p.map));
            }
            Some(Err(why)) => Some(why),
            None => None,
        };
        if let Some(why) = &why {
            tracing::warn!(file = %t.file, reason = %why, "exporting in full, not incrementally");
            ctx.message(&format!("{}: exporting in full: {why}", t.file));
        }
        let (src, checks) =
            blob::file_source(&self.http, bare, auth, t.file.clone(), self.segment()).await?;
        let outcome = why.map(|why| FileOutcome {
            name: t.file.clone(),
            how: Err(why),
        });
        Ok((src, checks, outcome, None))
    }

    /// The file of `disk_id`, read from its new snapshot `snap` (granted, SAS `url` with
    /// `auth`), as the changes since `base`'s snapshot of that disk; `Err(why)` when that base
    /// cannot serve (the caller exports in full and says why).
    pub(super) async fn incremental(
        &self,
        ctx: &FlowCtx,
        base: &Base,
        disk_id: &str,
        file: &str,
        new_point: (&str, &str),
        new: (&url::Url, &BlobAuth),
    ) -> Result<std::result::Result<Plan, String>> {
        let Some(f) = base.files.iter().find(|f| {
            f.cloud
                .get("disk_id")
                .and_then(Value::as_str)
                .is_some_and(|d| d.eq_ignore_ascii_case(disk_id))
        }) else {
            return Ok(Err(format!("the base has no snapshot of disk {disk_id}")));
        };
        let text = |k: &str| f.cloud.get(k).and_then(Value::as_str).unwrap_or("");
        let (rg, snap) = (
            text("resource_group").to_string(),
            text("snapshot").to_string(),
        );
        if rg.is_empty() || snap.is_empty() {
            return Ok(Err(format!("the base of {} names no snapshot", f.name)));
        }
        if f.cloud.get("kept").and_then(Value::as_bool) == Some(false) {
            return Ok(Err(format!(
                "the base snapshot {snap} was deleted after its export (keep_base was off)"
            )));
        }
        let output = self.opts.incremental_output;
        if let Some(why) = delta::refuses(f, output) {
            return Ok(Err(why));
        }
        if output == Output::Image
            && let Err(why) = check_local(f)
        {
            return Ok(Err(why));
        }
        let s = match self
            .arm
            .get(self.arm.url(&rg, "snapshots", &snap, None))
            .await
        {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Ok(Err(format!("the base snapshot {snap} no longer exists")));
            }
            Err(e) => return Err(e),
        };
        let p = &s["properties"];
        if p["incremental"].as_bool() != Some(true) {
            return Ok(Err(format!(
                "the base snapshot {snap} is not an incremental snapshot"
            )));
        }
        let from = p["creationData"]["sourceResourceId"].as_str().unwrap_or("");
        if !from.eq_ignore_ascii_case(disk_id) {
            return Ok(Err(format!(
                "the base snapshot {snap} is of another disk ({from})"
            )));
        }
        let (url, auth) = new;
        let size = blob::properties(&self.http, url, auth, file).await?.size;
        if size != f.size {
            return Ok(Err(format!(
                "disk {disk_id} was resized ({size} bytes, the base has {})",
                f.size
            )));
        }
        // The base snapshot's SAS, for the diff only: revoked on every outcome.
        let (arm, brg, bname) = (self.arm.clone(), rg.clone(), snap.clone());
        ctx.ledger().add(
            format!("revoking read access to {snap}"),
            When::Always,
            move |pctx| {
                let (arm, rg, name) = (arm.clone(), brg.clone(), bname.clone());
                async move {
                    match super::access::revoke(&arm, &pctx, &rg, "snapshots", &name).await {
                        Ok(()) | Err(Error::NotFound(_)) => Ok(()),
                        Err(e) => Err(e),
                    }
                }
            },
        );
        ctx.waiting_for_cloud(&format!("granting read access to the base snapshot {snap}"));
        let prev = match self.grant(ctx, &rg, "snapshots", &snap, false).await {
            Ok(a) => a.disk,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Ok(Err(format!("the base snapshot {snap} no longer exists")));
            }
            Err(e) => return Err(e),
        };
        ctx.message(&format!("{file}: listing the pages changed since {snap}"));
        let (changed, cleared) = match super::pages::page_diff(
            &self.http,
            url,
            auth,
            CALL_DEADLINE,
            size,
            self.segment(),
            &prev,
        )
        .await
        {
            Ok(d) => d,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidArgument) => {
                return Ok(Err(format!("Azure would not compare the snapshots: {e}")));
            }
            Err(e) => return Err(e),
        };
        let sum = |r: &[(u64, u64)]| r.iter().map(|(a, b)| b - a).sum::<u64>();
        let delta = Delta {
            base: snap.clone(),
            changed_bytes: sum(&changed),
            zeroed_bytes: sum(&cleared),
        };
        // A delta goes under its own name (it is not a complete image) and starts from holes,
        // not from the previous image.
        let (name, map, base) = match output {
            Output::Delta => {
                let name = delta::file_name(file, new_point.1)?;
                let map = delta::Map {
                    name: name.clone(),
                    size,
                    base: self.snapshot_arm_id(&rg, &snap),
                    point: self.snapshot_arm_id(new_point.0, new_point.1),
                    changed: changed.clone(),
                    zeroed: cleared,
                };
                (name, Some(map), None)
            }
            Output::Image => (
                file.to_string(),
                None,
                Some(BaseImage {
                    path: f.path.clone(),
                    zeroed: cleared,
                    id: snap,
                    stamp: (f.size, f.modified_ns),
                }),
            ),
        };
        let source = FileSource {
            name,
            kind: SourceKind::HttpExtents {
                http: blob::http_source(&self.http, url, auth, true),
                size,
                extents: changed,
                base,
            },
            size_hint: Some(size),
            expected_size: Some(size),
            checksum: None,
            want_digest: None,
        };
        Ok(Ok(Plan { source, delta, map }))
    }

    /// After the download: the base a later incremental export starts from (each disk file as
    /// it is now, the rename keeps its time, and the snapshot it was read from).
    /// A snapshot's ARM id.
    fn snapshot_arm_id(&self, rg: &str, name: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{rg}/providers/Microsoft.Compute/snapshots/{name}",
            self.arm.subscription()
        )
    }

    pub(super) fn record_base(&mut self, files: &[crate::transfer::Downloaded]) {
        if self.incr.points.is_empty() {
            return;
        }
        let kept = self.opts.keep_base;
        let mut out = Vec::new();
        for p in &self.incr.points {
            let Some(d) = files.iter().find(|d| d.name == p.file) else {
                continue;
            };
            let mut cloud = serde_json::Map::new();
            cloud.insert(
                "snapshot_id".into(),
                json!(self.snapshot_arm_id(&p.rg, &p.snapshot)),
            );
            cloud.insert("snapshot".into(), json!(p.snapshot));
            cloud.insert("resource_group".into(), json!(p.rg));
            cloud.insert("disk_id".into(), json!(p.disk_id));
            cloud.insert("kept".into(), json!(kept));
            if self.incr.maps.iter().any(|m| m.name == d.name) {
                cloud.insert("output".into(), json!("delta"));
            }
            out.extend(BaseFile::of(d, cloud));
        }
        self.incr.base = Some(Base {
            provider: "azure".into(),
            kept,
            files: out,
        });
    }

    /// The result's `base` and (with `incremental_from`) `incremental`.
    pub(super) fn incremental_fields(&self, m: &mut serde_json::Map<String, Value>) {
        if let Some(b) = &self.incr.base {
            m.insert("base".into(), b.to_value());
        }
        if self.opts.incremental_from.is_some() {
            let files: Vec<Value> = self.incr.outcomes.iter().map(FileOutcome::report).collect();
            m.insert("incremental".into(), json!({ "files": files }));
        }
    }
}

/// The base in `incremental_from`, or why there is none usable.
pub(super) fn load_base(from: &Value) -> Result<LoadedBase> {
    Ok(crate::transfer::incremental::load(from, "azure")?.map(Arc::new))
}
