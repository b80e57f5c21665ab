//! The snapshot method: EBS snapshots of an instance's volumes (one crash-consistent set), of
//! one volume, or a snapshot given as the source, read block by block through the EBS direct
//! APIs into one sparse raw image per volume (`<volume>.img`; `<snapshot>.img` for a snapshot
//! source).
//!
//! Flow: find or make the snapshots (tagged `hypersdk:export` = the source and
//! `hypersdk:resume` = a key of source + output folder, so a run that was killed leaves
//! snapshots the next run of the same export adopts, and its journal stays valid) → register
//! their deletion in the ledger at once (on every outcome, unless `keep_snapshots`) → wait
//! until they are `completed` (a cloud wait, the snapshots' progress as the message) →
//! `ListSnapshotBlocks` → one file per volume, only the listed blocks fetched, the rest holes.
//! A snapshot the export did not make is only read, never deleted.

use std::sync::Arc;
use std::time::Duration;

use sha2::Digest as _;

use super::api::Api;
use super::config::AwsOptions;
use super::ebs::{BlockReader, Listing, list_blocks};
use super::incremental::{self, Plan};
use super::snapshot::{self, Snap};
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::providers::poll::{Backoff, Poll, poll_until};
use crate::seam::{Flow, FlowCtx, When};
use crate::transfer::incremental::{Base, BaseFile, Delta, FileOutcome, Output, delta, stamp};
use crate::transfer::{BlockSource, Downloaded, FileSource, SourceKind};

/// What the snapshot method exports.
#[derive(Debug, Clone)]
pub(crate) enum SnapSource {
    Instance(String),
    Volume(String),
    Snapshot(String),
}

impl SnapSource {
    fn id(&self) -> &str {
        match self {
            SnapSource::Instance(i) | SnapSource::Volume(i) | SnapSource::Snapshot(i) => i,
        }
    }
}

pub(crate) struct SnapshotFlow {
    api: Arc<Api>,
    source: SnapSource,
    opts: AwsOptions,
    /// Names the export (source + output folder) in the resume tag.
    resume_key: String,
    /// The snapshots read, and whether this export made (or adopted) them.
    snaps: Vec<(Snap, bool)>,
    /// Each file's name and the snapshot it is read from (the base pairs them by name).
    file_snaps: Vec<(String, Snap)>,
    /// The output folder (canonical), for the base's paths.
    dir: std::path::PathBuf,
    /// Per file: its name, and how an incremental export made it (base snapshot, changed and
    /// zeroed bytes) or why it went in full.
    incremental: Vec<FileOutcome>,
    /// What a later incremental export starts from (after the download).
    base: Option<Base>,
    /// `incremental_output: "delta"`: each delta file's map, written after the download.
    maps: Vec<delta::Map>,
}

impl SnapshotFlow {
    pub fn new(
        api: Arc<Api>,
        source: SnapSource,
        opts: AwsOptions,
        output_dir: &std::path::Path,
    ) -> Self {
        let dir = std::fs::canonicalize(output_dir).unwrap_or_else(|_| output_dir.to_path_buf());
        let mut h = sha2::Sha256::new();
        h.update(source.id().as_bytes());
        h.update([0]);
        h.update(dir.to_string_lossy().as_bytes());
        let resume_key = hex::encode(&h.finalize()[..16]);
        SnapshotFlow {
            api,
            source,
            opts,
            resume_key,
            snaps: Vec::new(),
            file_snaps: Vec::new(),
            dir,
            incremental: Vec::new(),
            base: None,
            maps: Vec::new(),
        }
    }

    /// Whether the snapshots stay after the export (`keep_snapshots`, `keep_base`).
    fn keep(&self) -> bool {
        self.opts.keep_snapshots || self.opts.keep_base
    }

    /// Registers the deletion of a snapshot this export made (or adopted), on every outcome.
    fn own(&self, ctx: &FlowCtx, s: &Snap) {
        let (api, id) = (self.api.clone(), s.id.clone());
        if self.keep() {
            // Kept after a finished run, it is the user's: without the resume tag, a later
            // run of the same source neither reads its old blocks nor deletes it as a leftover.
            // (After a failure the tag stays, so the next run resumes from it.)
            ctx.ledger().add(
                format!("untagging kept snapshot {id}"),
                When::OnSuccess,
                move |_| {
                    let (api, id) = (api.clone(), id.clone());
                    async move { snapshot::untag(&api, &id).await }
                },
            );
            return;
        }
        ctx.ledger()
            .add(format!("deleting snapshot {id}"), When::Always, move |_| {
                let (api, id) = (api.clone(), id.clone());
                async move { snapshot::delete(&api, &id).await }
            });
    }

    /// Finds (a killed run's) or makes the snapshots; each is owned the moment it is known.
    async fn snapshots(&mut self, ctx: &FlowCtx) -> Result<Vec<(Snap, bool)>> {
        let api = self.api.clone();
        match self.source.clone() {
            SnapSource::Snapshot(id) => {
                let s = snapshot::describe(&api, &[&id])
                    .await?
                    .into_iter()
                    .find(|s| s.id == id)
                    .ok_or_else(|| Error::NotFound(format!("snapshot {id} does not exist")))?;
                Ok(vec![(s, false)])
            }
            SnapSource::Volume(vol) => {
                let found = snapshot::find_resumable(&api, &self.resume_key).await?;
                let (mut keep, stale): (Vec<Snap>, Vec<Snap>) =
                    found.into_iter().partition(|s| s.volume == vol);
                for s in stale.iter().chain(keep.iter().skip(1)) {
                    self.own(ctx, s);
                }
                if let Some(s) = keep.drain(..).next() {
                    ctx.waiting_for_cloud(&format!("resuming from snapshot {}", s.id));
                    self.own(ctx, &s);
                    return Ok(vec![(s, true)]);
                }
                ctx.waiting_for_cloud(&format!("creating a snapshot of {vol}"));
                let s = snapshot::create_for_volume(&api, &vol, &self.resume_key).await?;
                self.own(ctx, &s);
                Ok(vec![(s, true)])
            }
            SnapSource::Instance(id) => {
                let facts = snapshot::instance(&api, &id).await?;
                if facts.volumes.is_empty() {
                    return Err(Error::Unsupported(format!(
                        "instance {id} has no EBS volume (instance store only)"
                    )));
                }
                let found = snapshot::find_resumable(&api, &self.resume_key).await?;
                let mut by_volume = Vec::new();
                for v in &facts.volumes {
                    if let Some(s) = found.iter().find(|s| s.volume == v.id) {
                        by_volume.push(s.clone());
                    }
                }
                if by_volume.len() == facts.volumes.len() && found.len() == by_volume.len() {
                    ctx.waiting_for_cloud(&format!(
                        "resuming from the snapshots of {id} a stopped run made"
                    ));
                    for s in &by_volume {
                        self.own(ctx, s);
                    }
                    return Ok(by_volume.into_iter().map(|s| (s, true)).collect());
                }
                // Leftovers that do not make a whole set: not ours to read, ours to delete.
                for s in &found {
                    self.own(ctx, s);
                }
                ctx.waiting_for_cloud(&format!(
                    "creating snapshots of the {} volume(s) of {id}",
                    facts.volumes.len()
                ));
                let made = snapshot::create_for_instance(&api, &id, &self.resume_key).await?;
                for s in &made {
                    self.own(ctx, s);
                }
                let mut out = Vec::new();
                for v in &facts.volumes {
                    let s = made.iter().find(|s| s.volume == v.id).ok_or_else(|| {
                        Error::Remote(format!(
                            "EC2 CreateSnapshots {id}: no snapshot of volume {} ({})",
                            v.id, v.device
                        ))
                    })?;
                    out.push((s.clone(), true));
                }
                Ok(out)
            }
        }
    }

    /// Waits until every snapshot is `completed`; the progress of each is the message.
    async fn wait(&self, ctx: &FlowCtx, snaps: &[(Snap, bool)]) -> Result<Vec<Snap>> {
        let ids: Vec<&str> = snaps.iter().map(|(s, _)| s.id.as_str()).collect();
        let api = &self.api;
        poll_until(
            ctx,
            &format!("snapshot {}", ids.join(", ")),
            Duration::from_secs(self.opts.timeout_secs),
            Backoff::fixed(Duration::from_millis(self.opts.poll_interval_ms)),
            || async {
                let now = snapshot::describe(api, &ids).await?;
                let mut out = Vec::new();
                let mut pending = Vec::new();
                for id in &ids {
                    let s = now.iter().find(|s| s.id == *id).ok_or_else(|| {
                        Error::Remote(format!("snapshot {id} vanished while it was made"))
                    })?;
                    match s.state.as_str() {
                        "completed" => {}
                        "error" => {
                            return Err(Error::Remote(format!(
                                "snapshot {id} failed: {}",
                                s.message
                            )));
                        }
                        _ => pending.push(format!("{id} {}", s.progress)),
                    }
                    out.push(s.clone());
                }
                Ok(if pending.is_empty() {
                    Poll::Done(out)
                } else {
                    Poll::pending(format!("snapshot {}", pending.join(", ")))
                })
            },
        )
        .await
    }
}

impl Flow for SnapshotFlow {
    fn dry_run(&self) -> (Vec<String>, Vec<String>) {
        let undone = if self.opts.keep_base {
            "kept after a finished export as the base of a later incremental one (keep_base)"
        } else if self.opts.keep_snapshots {
            "kept (keep_snapshots)"
        } else {
            "deleted on every outcome"
        };
        let (cloud, file) = match &self.source {
            SnapSource::Instance(id) => (
                vec![format!(
                    "an EBS snapshot of each volume of {id} (CreateSnapshots, tagged): {undone}"
                )],
                "<volume-id>.img (one per volume, boot first)".to_string(),
            ),
            SnapSource::Volume(id) => (
                vec![format!(
                    "an EBS snapshot of {id} (CreateSnapshot, tagged): {undone}"
                )],
                format!("{id}.img"),
            ),
            SnapSource::Snapshot(id) => (Vec::new(), format!("{id}.img")),
        };
        let file = match (&self.opts.file_name, &self.source) {
            (Some(n), SnapSource::Volume(_) | SnapSource::Snapshot(_)) => n.clone(),
            _ => file,
        };
        let mut files = vec![file];
        if self.opts.incremental_from.is_some() {
            files.push(delta::planned(self.opts.incremental_output, "blocks"));
        }
        (cloud, files)
    }

    fn prepare<'a>(&'a mut self, ctx: &'a FlowCtx) -> BoxFuture<'a, Result<Vec<FileSource>>> {
        Box::pin(async move {
            let snaps = self.snapshots(ctx).await?;
            self.snaps = snaps.clone();
            let ready = self.wait(ctx, &snaps).await?;
            ctx.message("listing the snapshots' blocks");
            let single = ready.len() == 1;
            let base = match &self.opts.incremental_from {
                Some(from) => Some(crate::transfer::incremental::load(from, "aws")?),
                None => None,
            };
            let mut files = Vec::new();
            self.file_snaps.clear();
            self.maps.clear();
            let output = self.opts.incremental_output;
            for s in ready {
                let name = match (&self.opts.file_name, &self.source) {
                    (Some(n), _) if single => n.clone(),
                    (_, SnapSource::Snapshot(id)) => format!("{id}.img"),
                    _ => format!("{}.img", s.volume),
                };
                crate::paths::validate_file_name(&name)?;
                let plan = match &base {
                    None => None,
                    Some(Err(why)) => Some(Plan::Full(why.clone())),
                    Some(Ok(b)) => {
                        Some(incremental::plan(&self.api, b, &s, output, ctx.cancel()).await?)
                    }
                };
                // A delta goes under its own name: it is not a complete image.
                let name = match &plan {
                    Some(Plan::Incremental { .. }) if output == Output::Delta => {
                        delta::file_name(&name)
                    }
                    _ => name,
                };
                self.file_snaps.push((name.clone(), s.clone()));
                let (listing, start) = match plan {
                    Some(Plan::Incremental {
                        base,
                        base_snapshot,
                        changed,
                    }) => {
                        let zeroed = base.zeroed.iter().map(|(a, b)| b - a).sum();
                        let listing = Listing {
                            size: changed.size,
                            tokens: changed.tokens,
                            expiry: changed.expiry,
                        };
                        let changed = listing.extents();
                        let bytes = changed.iter().map(|(a, b)| b - a).sum();
                        if output == Output::Delta {
                            self.maps.push(delta::Map {
                                name: name.clone(),
                                size: listing.size,
                                base: base_snapshot.clone(),
                                point: s.id.clone(),
                                changed,
                                zeroed: base.zeroed.clone(),
                            });
                        }
                        self.incremental.push(FileOutcome {
                            name: name.clone(),
                            how: Ok(Delta {
                                base: base_snapshot,
                                changed_bytes: bytes,
                                zeroed_bytes: zeroed,
                            }),
                        });
                        // A delta starts from holes, not from the previous image.
                        (listing, (output == Output::Image).then_some(base))
                    }
                    full => {
                        if let Some(Plan::Full(why)) = full {
                            tracing::warn!(file = %name, reason = %why, "exporting in full, not incrementally");
                            ctx.message(&format!("{name}: exporting in full: {why}"));
                            self.incremental.push(FileOutcome {
                                name: name.clone(),
                                how: Err(why),
                            });
                        }
                        (list_blocks(&self.api, &s.id, ctx.cancel()).await?, None)
                    }
                };
                let size = listing.size;
                let extents = listing.extents();
                let reader = BlockReader::new(
                    self.api.clone(),
                    s.id.clone(),
                    listing,
                    self.opts.max_block_requests,
                );
                files.push(FileSource {
                    name,
                    kind: SourceKind::Blocks(BlockSource {
                        size,
                        extents,
                        version: s.id.clone(),
                        fetch: Arc::new(reader),
                        base: start,
                    }),
                    size_hint: Some(size),
                    expected_size: Some(size),
                    checksum: None,
                    want_digest: None,
                });
            }
            ctx.message("");
            Ok(files)
        })
    }

    fn after_download<'a>(
        &'a mut self,
        _ctx: &'a FlowCtx,
        files: &'a [Downloaded],
        dir: &'a Arc<crate::transfer::OutDir>,
    ) -> BoxFuture<'a, Result<crate::seam::AfterDownload>> {
        Box::pin(async move {
            let mut after = crate::seam::AfterDownload::default();
            for m in &self.maps {
                after.extra.push(m.write(dir)?);
            }
            // The base a later incremental export starts from: each file as it is now (the
            // rename keeps its time) and the snapshot it was read from.
            let keep = self.keep();
            let mut out = Vec::new();
            for f in files {
                let Some((_, s)) = self.file_snaps.iter().find(|(n, _)| *n == f.name) else {
                    continue;
                };
                let made = self.snaps.iter().any(|(x, made)| x.id == s.id && *made);
                let Some((size, modified_ns)) = stamp(&f.file) else {
                    continue;
                };
                let mut cloud = serde_json::Map::new();
                cloud.insert("snapshot_id".into(), s.id.clone().into());
                cloud.insert("volume_id".into(), s.volume.clone().into());
                cloud.insert("kept".into(), (!made || keep).into());
                if self.maps.iter().any(|m| m.name == f.name) {
                    cloud.insert("output".into(), "delta".into());
                }
                out.push(BaseFile {
                    name: f.name.clone(),
                    path: self.dir.join(&f.name),
                    size,
                    modified_ns,
                    cloud,
                });
            }
            self.base = Some(Base {
                provider: "aws".into(),
                kept: out
                    .iter()
                    .all(|f| f.cloud.get("kept") == Some(&true.into())),
                files: out,
            });
            Ok(after)
        })
    }

    fn extra_names(&self) -> Vec<String> {
        self.maps.iter().map(|m| delta::map_name(&m.name)).collect()
    }

    fn result_fields(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("method".into(), "snapshot".into());
        if let Some(b) = &self.base {
            m.insert("base".into(), b.to_value());
        }
        if self.opts.incremental_from.is_some() {
            let files: Vec<serde_json::Value> =
                self.incremental.iter().map(FileOutcome::report).collect();
            m.insert("incremental".into(), serde_json::json!({ "files": files }));
        }
        let list: Vec<serde_json::Value> = self
            .snaps
            .iter()
            .map(|(s, made)| {
                serde_json::json!({
                    "snapshot_id": s.id, "volume_id": s.volume, "encrypted": s.encrypted,
                    "made_by_export": made,
                    "kept": !made || self.keep(),
                })
            })
            .collect();
        m.insert("snapshots".into(), list.into());
        m
    }
}
