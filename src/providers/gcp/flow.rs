//! One GCP export's run: its units (a disk, each disk of an instance, an image or an object)
//! prepared at once, and what the result reports of them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::config::{GcpOptions, Source};
use super::storage::Storage;
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::paths::sanitize_file_name;
use crate::seam::{Flow, FlowCtx, When};
use crate::sync::lock;
use crate::transfer::FileSource;

use super::api::Gce;
use super::build::{BuildPlan, regions_for};
use super::unit::{Unit, delete_object_step, disk_parts, prepare_unit};
use super::{builder, config, prereq};

pub(super) struct GcpFlow {
    pub(super) storage: Arc<Storage>,
    pub(super) gce: Arc<Gce>,
    pub(super) source: Source,
    pub(super) bucket: String,
    pub(super) prefix: String,
    /// The configured zone (options, else config): `-zone` when the source has none.
    pub(super) zone: Option<String>,
    pub(super) opts: GcpOptions,
    pub(super) units: Arc<Mutex<Vec<Unit>>>,
    /// Builds the cleanup ledger cancelled (for the result).
    pub(super) builds_cancelled: Arc<std::sync::atomic::AtomicU32>,
}

impl GcpFlow {
    /// Which exporter image the build would run, as far as it is known without a call: the
    /// region comes from the zone (or a regional disk), else from the bucket's location; which
    /// of gcloud's four images is there is asked at run time (`builder::choose`).
    fn builder_words(&self) -> String {
        let region = match &self.source {
            Source::Disk { location, .. } => match location.split_once('/') {
                Some(("zones", z)) => Some(config::zone_region(z).to_string()),
                Some((_, r)) if self.zone.is_none() => Some(r.to_string()),
                _ => self
                    .zone
                    .as_deref()
                    .map(|z| config::zone_region(z).to_string()),
            },
            Source::Instance { zone, .. } => Some(config::zone_region(zone).to_string()),
            _ => self
                .zone
                .as_deref()
                .map(|z| config::zone_region(z).to_string()),
        };
        let ar = region
            .map(|r| regions_for(&r).0)
            .unwrap_or_else(|| "<the bucket's location>".into());
        let [a, b, c, d] = builder::candidates(&ar);
        format!(
            "{a} if Artifact Registry shows it to these credentials, else {b}, else {c} if \
             gcr.io has it, else {d} (checked before the build, as gcloud does)"
        )
    }

    fn ext(&self) -> &'static str {
        config::extension(&self.opts.format).expect("checked")
    }

    /// Before anything is made: the project's prerequisites (unless skipped), then where and
    /// how the builds run — as gcloud decides it: the zone's region, else the destination
    /// bucket's location; the scratch bucket in the destination bucket's location.
    async fn build_plan(&self, ctx: &FlowCtx) -> Result<BuildPlan> {
        let (project, zone, disk_region) = match &self.source {
            Source::Disk {
                project, location, ..
            } => match location.split_once('/') {
                Some(("zones", z)) => (project, Some(z.to_string()), None),
                Some((_, r)) => (project, self.zone.clone(), Some(r.to_string())),
                None => (project, self.zone.clone(), None),
            },
            Source::Instance { project, zone, .. } => (project, Some(zone.clone()), None),
            Source::Image { project, .. } => (project, self.zone.clone(), None),
            Source::Object { .. } => unreachable!("no build for an object"),
        };
        let o = &self.opts;
        let number = if o.skip_prerequisite_check {
            None
        } else {
            ctx.waiting_for_cloud(&format!("checking project {project}'s services and roles"));
            let n = prereq::project_number(&self.gce, project).await?;
            let csa = o.compute_service_account.as_deref();
            prereq::check(&self.gce, project, &n, csa).await?;
            Some(n)
        };
        let (bucket_location, _) = self.storage.bucket(&self.bucket).await?;
        let region = zone
            .as_deref()
            .map(|z| config::zone_region(z).to_string())
            .or(disk_region)
            .unwrap_or_else(|| bucket_location.clone());
        let (ar_region, location) = regions_for(&region);
        ctx.waiting_for_cloud("choosing the exporter image");
        let builder = builder::choose(&self.gce, &ar_region).await?;
        ctx.waiting_for_cloud("preparing the scratch bucket");
        let scratch = self
            .storage
            .scratch_bucket(project, number.as_deref(), &bucket_location)
            .await?;
        Ok(BuildPlan {
            project: project.clone(),
            location,
            builder,
            zone,
            scratch,
            network: o.network.clone(),
            subnet: o.subnet.clone(),
            compute_service_account: o.compute_service_account.clone(),
        })
    }
}

/// What makes an export's object name its own. Without `reuse_object`: the run (random), so
/// cleanup after a failure or cancel can never delete an object another export or the user
/// has at a name like it (an earlier export kept, a same-named disk of another zone or project
/// exported at once, a retry's object). With `reuse_object`, whose point is finding the object
/// of an earlier run: the export's identity (the disk's or image's full name and the format),
/// so another disk of the same name never counts as this one's export.
fn destination_tag(u: &Unit, opts: &GcpOptions, run: &str) -> String {
    if !opts.reuse_object {
        return run.to_string();
    }
    use sha2::Digest as _;
    let who = match (&u.disk, &u.image) {
        (Some(d), _) => d.clone(),
        (None, Some(i)) => format!("projects/{}/global/images/{i}", u.project),
        (None, None) => u.file.clone(),
    };
    let h = sha2::Sha256::digest(format!("{who}|{}", opts.format).as_bytes());
    hex::encode(&h[..4])
}

impl Flow for GcpFlow {
    fn dry_run(&self) -> (Vec<String>, Vec<String>) {
        let ext = self.ext();
        let object = format!(
            "the exported object gs://{}/{}<name>-{}.{ext}: {}",
            self.bucket,
            self.prefix,
            if self.opts.reuse_object {
                "<hash>"
            } else {
                "<tag>"
            },
            match (
                self.opts.delete_object_after_download,
                self.opts.reuse_object
            ) {
                (true, _) => "deleted once the file is verified",
                (false, false) => "kept after a finished export",
                (false, true) => "kept (reuse_object: also after a failure or cancel)",
            }
            .to_string()
                + if self.opts.reuse_object {
                    ""
                } else {
                    "; deleted after a failure or cancel"
                }
        );
        let export = |what: &str| {
            let mut c = vec![
                format!("a temporary image of {what}, deleted on every outcome"),
                format!(
                    "a Cloud Build build running Google's image exporter, {}: cancelled after \
                     a failure or cancel",
                    self.builder_words()
                ),
                "the scratch bucket <project>-daisy-bkt-<region> the exporter works in, made \
                 if missing and kept, as gcloud does"
                    .to_string(),
                object.clone(),
            ];
            if self.opts.reuse_object {
                c.insert(
                    0,
                    "none of the following when the object of an earlier run is there \
                     (reuse_object): it is downloaded"
                        .into(),
                );
            }
            c
        };
        let named =
            |stem: &str| crate::seam::planned_name(self.opts.file_name.as_deref(), stem, ext);
        match &self.source {
            Source::Disk { name, .. } => (export(&format!("the disk {name}")), vec![named(name)]),
            Source::Instance { name, .. } => (
                export(&format!("each disk of the instance {name}")),
                vec![format!("<disk>.{ext} (one per disk)")],
            ),
            Source::Image { name, .. } => {
                let mut c = export(&format!("the image {name}"));
                c.retain(|l| !l.starts_with("a temporary image"));
                (c, vec![named(name)])
            }
            Source::Object { name, .. } => (
                Vec::new(),
                vec![
                    self.opts
                        .file_name
                        .clone()
                        .unwrap_or_else(|| name.rsplit('/').next().unwrap_or(name).to_string()),
                ],
            ),
        }
    }

    fn prepare<'a>(&'a mut self, ctx: &'a FlowCtx) -> BoxFuture<'a, Result<Vec<FileSource>>> {
        Box::pin(async move {
            let ext = self.ext();
            let named = |stem: &str| {
                self.opts
                    .file_name
                    .clone()
                    .unwrap_or_else(|| format!("{stem}.{ext}"))
            };
            let mut units = Vec::new();
            match self.source.clone() {
                Source::Object { bucket, name } => {
                    let leaf = name.rsplit('/').next().unwrap_or(&name);
                    units.push(Unit {
                        file: self
                            .opts
                            .file_name
                            .clone()
                            .unwrap_or_else(|| sanitize_file_name(leaf, "object")),
                        destination: Some((bucket, name)),
                        ..Default::default()
                    });
                }
                Source::Image { project, name } => units.push(Unit {
                    file: named(&name),
                    project,
                    image: Some(name),
                    ..Default::default()
                }),
                Source::Disk {
                    project,
                    location,
                    name,
                } => units.push(Unit {
                    file: named(&name),
                    disk: Some(format!("projects/{project}/{location}/disks/{name}")),
                    project,
                    ..Default::default()
                }),
                Source::Instance {
                    project,
                    zone,
                    name,
                } => {
                    ctx.waiting_for_cloud(&format!("reading instance {name}"));
                    for d in self.gce.instance_disks(&project, &zone, &name).await? {
                        // A regional disk is `projects/P/regions/R/disks/N`.
                        let (dp, dl, dn) = disk_parts(&d.source)?;
                        units.push(Unit {
                            file: format!("{dn}.{ext}"),
                            disk: Some(format!("projects/{dp}/{dl}/disks/{dn}")),
                            project: project.clone(),
                            ..Default::default()
                        });
                    }
                    if units.is_empty() {
                        return Err(Error::NotFound(format!(
                            "instance {name} has no disk to export"
                        )));
                    }
                }
            }
            // The object a build writes has a name no one else's export has (see
            // `destination_tag`): cleanup deletes what is at that name, which is then ours.
            let run = hex::encode(rand::random::<[u8; 4]>());
            for u in &mut units {
                if u.destination.is_none() {
                    let stem = u.file.rsplit_once('.').map(|(s, _)| s).unwrap_or(&u.file);
                    let stem = u
                        .disk
                        .as_deref()
                        .and_then(|d| d.rsplit('/').next())
                        .or(u.image.as_deref())
                        .unwrap_or(stem);
                    let tag = destination_tag(u, &self.opts, &run);
                    u.destination = Some((
                        self.bucket.clone(),
                        format!("{}{stem}-{tag}.{ext}", self.prefix),
                    ));
                }
            }
            *lock(&self.units) = units.clone();
            if matches!(self.source, Source::Object { .. }) {
                let (b, o) = units[0].destination.clone().expect("set");
                ctx.message("reading the object's metadata");
                let meta = self.storage.metadata(&b, &o).await?;
                lock(&self.units)[0].object = Some(meta.clone());
                if self.opts.delete_object_after_download {
                    delete_object_step(ctx, &self.storage, &self.units, 0, When::OnSuccess);
                }
                let mut src = FileSource::http(units[0].file.clone(), self.storage.source(&meta));
                src.size_hint = Some(meta.size);
                src.expected_size = Some(meta.size);
                src.checksum = meta.crc32c.clone();
                return Ok(vec![src]);
            }
            // The source first (read-only): an unknown disk or image is NotFound before the
            // project is read (Resource Manager answers a project that does not exist with 403).
            match &self.source {
                Source::Disk {
                    project,
                    location,
                    name,
                } => {
                    ctx.waiting_for_cloud(&format!("reading disk {name}"));
                    self.gce.disk(project, location, name).await?;
                }
                Source::Image { project, name } => {
                    ctx.waiting_for_cloud(&format!("reading image {name}"));
                    self.gce.image_status(project, name).await?;
                }
                _ => {}
            }
            // With reuse_object, exports whose object is all there run no build: nothing is
            // checked or made for one (no prerequisites, no scratch bucket).
            let mut builds = true;
            if self.opts.reuse_object {
                builds = false;
                for u in &units {
                    let (b, o) = u.destination.as_ref().expect("set");
                    match self.storage.metadata(b, o).await {
                        Ok(_) => {}
                        Err(Error::NotFound(_)) => {
                            builds = true;
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            let plan = match builds {
                true => Some(self.build_plan(ctx).await?),
                false => None,
            };
            let plan = plan.as_ref();
            let gce = self.gce.clone();
            // Every disk of an instance goes through Compute and Cloud Build at once.
            let jobs = units.iter().enumerate().map(|(i, u)| {
                let (b, o) = u.destination.clone().expect("set");
                let (gce, storage, all, opts) = (&gce, &self.storage, &self.units, &self.opts);
                let cancelled = &self.builds_cancelled;
                async move {
                    let dest = (b.as_str(), o.as_str());
                    prepare_unit(ctx, gce, storage, all, i, opts, plan, dest, cancelled).await
                }
            });
            let results = futures_util::future::join_all(jobs).await;
            results.into_iter().collect()
        })
    }

    fn cleanup_deadline(&self) -> Duration {
        // Cancelling a build and deleting an image are operations of their own.
        Duration::from_secs(600)
    }

    fn result_fields(&self) -> serde_json::Map<String, Value> {
        let units = lock(&self.units).clone();
        let mut m = serde_json::Map::new();
        m.insert(
            "exports".into(),
            Value::Array(
                units
                    .iter()
                    .map(|u| {
                        json!({
                            "file": u.file,
                            "disk": u.disk,
                            "image": u.image,
                            "image_temporary": u.temp_image,
                            "image_deleted": u.image_deleted,
                            "build_id": u.build_id,
                            "build_status": u.build_status,
                            "object": u.destination.as_ref().map(|(b, o)| format!("gs://{b}/{o}")),
                            "generation": u.object.as_ref().map(|o| o.generation.clone()),
                            "object_deleted": u.object_deleted,
                        })
                    })
                    .collect(),
            ),
        );
        m.insert(
            "images_made".into(),
            json!(units.iter().filter(|u| u.temp_image).count()),
        );
        m.insert(
            "images_deleted".into(),
            json!(units.iter().filter(|u| u.image_deleted).count()),
        );
        m.insert(
            "builds_cancelled".into(),
            json!(
                self.builds_cancelled
                    .load(std::sync::atomic::Ordering::Relaxed)
            ),
        );
        m.insert("format".into(), json!(self.opts.format));
        m
    }
}
