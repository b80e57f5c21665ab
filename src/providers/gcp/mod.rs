//! GCP: Compute Engine disks, instances (every disk) and images to local VMDK/VHDX/VHD/QCOW2,
//! the way `gcloud compute images export` does it, and Cloud Storage objects by `gs://` URL.
//!
//! Flow per disk: GET the disk → `images.insert` of a temporary image from it (forceCreate when
//! it is attached: the instance keeps running, nothing is stopped) → wait for the global
//! operation (phase waiting-for-cloud, its progress as message) → Cloud Build runs
//! `gce_vm_image_export` into `gs://{bucket}/{prefix}{name}.{ext}` → poll the build (its status
//! as message) → the object's size, crc32c and generation → ranged parallel download with a
//! bearer token per request and the generation pinned in every GET → crc32c verified. Cleanup
//! on every path, under its own deadline: a running build is cancelled, the temporary image
//! deleted, the exported object deleted after a failure or cancel (and after success with
//! `delete_object_after_download`).
//!
//! Files: `config` (client config, options, sources), `api` (Compute and Cloud Build through
//! the SDK), `storage` (Cloud Storage JSON API, the request signer).

mod api;
mod config;
mod storage;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use google_cloud_auth::credentials::Credentials;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::kit::ApiClient;
use super::kit::config::parse_with_net;
use super::kit::net::Redirects;
use super::kit::text::one_line;
use super::poll::{Backoff, Poll, poll_until};
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::paths::sanitize_file_name;
use crate::seam::ledger::StepId;
use crate::seam::options::{CommonOptions, parse_provider_options};
use crate::seam::{Flow, FlowCtx, Provider, When};
use crate::sync::lock;
use crate::transfer::FileSource;
use api::Gce;
use config::{CredentialSource, GcpConfig, GcpOptions, Source};
use storage::{GcpSigner, ObjectMeta, Storage};

pub(crate) struct GcpProvider {
    cfg: GcpConfig,
    storage: Arc<Storage>,
    gce: Arc<LazyGce>,
}

/// Compute and Cloud Build clients, made on first use (their builders are async) and shared by
/// the client's listing and every export.
struct LazyGce {
    creds: Credentials,
    compute_endpoint: String,
    cloudbuild_endpoint: String,
    timeout: Duration,
    cell: OnceCell<Arc<Gce>>,
}

impl LazyGce {
    async fn get(&self) -> Result<Arc<Gce>> {
        Ok(self
            .cell
            .get_or_try_init(|| async {
                Gce::new(
                    &self.creds,
                    &self.compute_endpoint,
                    &self.cloudbuild_endpoint,
                    self.timeout,
                )
                .await
                .map(Arc::new)
            })
            .await?
            .clone())
    }
}

impl GcpProvider {
    pub fn new(config_json: &str) -> Result<Self> {
        let (cfg, net): (GcpConfig, _) = parse_with_net("gcp", config_json)?;
        let source = cfg.check()?;
        let _rt = crate::runtime::handle().enter();
        let creds = credentials(source)?;
        let timeout = net.api_timeout();
        let http = net.client(Redirects::SameOrigin)?;
        let storage = Arc::new(Storage {
            client: ApiClient::new(http, timeout, storage::MAX_BODY),
            base: url::Url::parse(&cfg.storage_endpoint).expect("checked"),
            signer: GcpSigner {
                creds: creds.clone(),
                timeout,
            },
        });
        let gce = Arc::new(LazyGce {
            creds,
            compute_endpoint: cfg.compute_endpoint.clone(),
            cloudbuild_endpoint: cfg.cloudbuild_endpoint.clone(),
            timeout,
            cell: OnceCell::new(),
        });
        Ok(GcpProvider { cfg, storage, gce })
    }
}

/// google-cloud-auth's credentials for the configured source, with the cloud-platform scope.
fn credentials(source: CredentialSource) -> Result<Credentials> {
    use google_cloud_auth::credentials as c;
    const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
    let bad = |e: google_cloud_auth::build_errors::Error| {
        Error::InvalidArgument(format!("gcp credentials: {}", one_line(&e.to_string())))
    };
    Ok(match source {
        CredentialSource::Anonymous => c::anonymous::Builder::new().build(),
        CredentialSource::Adc => c::Builder::default()
            .with_scopes([SCOPE])
            .build()
            .map_err(bad)?,
        CredentialSource::Json(v) => match v["type"].as_str() {
            Some("service_account") => c::service_account::Builder::new(v)
                .with_access_specifier(c::service_account::AccessSpecifier::from_scopes([SCOPE]))
                .build()
                .map_err(bad)?,
            Some("authorized_user") => c::user_account::Builder::new(v)
                .with_scopes([SCOPE])
                .build()
                .map_err(bad)?,
            Some("impersonated_service_account") => c::impersonated::Builder::new(v)
                .with_scopes([SCOPE])
                .build()
                .map_err(bad)?,
            _ => c::external_account::Builder::new(v)
                .with_scopes([SCOPE])
                .build()
                .map_err(bad)?,
        },
    })
}

impl Provider for GcpProvider {
    fn list<'a>(
        &'a self,
        scope: &'a serde_json::Map<String, Value>,
    ) -> BoxFuture<'a, Result<Vec<crate::seam::SourceInfo>>> {
        Box::pin(async move {
            use crate::seam::SourceInfo;
            super::scope_keys("gcp", scope, &["project", "zone", "bucket", "prefix"])?;
            let project = super::scope_str(scope, "project")?.or(self.cfg.project.as_deref());
            let zone = super::scope_str(scope, "zone")?.or(self.cfg.zone.as_deref());
            let bucket = super::scope_str(scope, "bucket")?;
            let prefix = super::scope_str(scope, "prefix")?.unwrap_or("");
            let mut out = Vec::new();
            if let Some(p) = project {
                if !config::is_project(p) || zone.is_some_and(|z| !config::is_name(z)) {
                    return Err(Error::InvalidArgument(format!(
                        "gcp list: project {p:?} / zone {zone:?} is not a project id and zone"
                    )));
                }
                let gce = self.gce.get().await?;
                if let Some(z) = zone {
                    for (name, state, size) in gce.list_instances(p, z).await? {
                        out.push(SourceInfo {
                            id: format!("projects/{p}/zones/{z}/instances/{name}"),
                            kind: "instance",
                            name,
                            size_bytes: Some(size).filter(|s| *s > 0),
                            state: Some(state),
                        });
                    }
                    for (name, size, state, attached) in gce.list_disks(p, z).await? {
                        out.push(SourceInfo {
                            id: format!("projects/{p}/zones/{z}/disks/{name}"),
                            kind: "disk",
                            name,
                            size_bytes: size,
                            state: Some(if attached {
                                format!("{state} (attached)")
                            } else {
                                state
                            }),
                        });
                    }
                }
                for (name, size, state) in gce.list_images(p).await? {
                    out.push(SourceInfo {
                        id: format!("projects/{p}/global/images/{name}"),
                        kind: "image",
                        name,
                        size_bytes: size,
                        state: Some(state),
                    });
                }
            }
            if let Some(b) = bucket {
                if !config::is_bucket(b) {
                    return Err(Error::InvalidArgument(format!(
                        "gcp list: bucket {b:?} is not a bucket name"
                    )));
                }
                for (name, size) in self.storage.list(b, prefix).await? {
                    out.push(SourceInfo {
                        id: format!("gs://{b}/{name}"),
                        kind: "object",
                        name,
                        size_bytes: Some(size),
                        state: None,
                    });
                }
            }
            if project.is_none() && bucket.is_none() {
                return Err(Error::InvalidArgument(
                    "gcp list: give a project (config or filter) or a bucket".into(),
                ));
            }
            Ok(out)
        })
    }

    fn plan(
        &self,
        source_id: &str,
        _common: &CommonOptions,
        options: serde_json::Map<String, Value>,
    ) -> Result<Box<dyn Flow>> {
        let opts: GcpOptions = parse_provider_options(options)?;
        opts.check()?;
        let project = opts.project.as_deref().or(self.cfg.project.as_deref());
        let zone = opts.zone.as_deref().or(self.cfg.zone.as_deref());
        let source = config::parse_source(source_id, project, zone)?;
        let bucket = opts.bucket.clone().or(self.cfg.bucket.clone());
        let exports = !matches!(source, Source::Object { .. });
        if exports && bucket.is_none() {
            return Err(Error::InvalidArgument(
                "gcp: an image export needs a bucket (config or options) to write into".into(),
            ));
        }
        if matches!(source, Source::Instance { .. }) && opts.file_name.is_some() {
            return Err(Error::InvalidArgument(
                "file_name names one file; an instance exports one file per disk".into(),
            ));
        }
        let prefix = opts.prefix.clone().unwrap_or(self.cfg.prefix.clone());
        Ok(Box::new(GcpFlow {
            storage: self.storage.clone(),
            gce: self.gce.clone(),
            source,
            bucket: bucket.unwrap_or_default(),
            prefix,
            opts,
            units: Arc::new(Mutex::new(Vec::new())),
            builds_cancelled: Arc::default(),
        }))
    }
}

/// One file of the export and what was made in the cloud for it. Recorded before each create
/// call is sent, so cleanup undoes whatever may exist.
#[derive(Debug, Clone, Default)]
struct Unit {
    file: String,
    /// `projects/P/zones/Z/disks/N` for a disk export.
    disk: Option<String>,
    project: String,
    /// The image exported (the temporary one, or the caller's own).
    image: Option<String>,
    temp_image: bool,
    image_deleted: bool,
    build_id: Option<String>,
    build_status: Option<String>,
    build_running: bool,
    /// Where the export was written (bucket, object).
    destination: Option<(String, String)>,
    /// This run's build wrote the object (so a failed run removes it).
    object_ours: bool,
    object: Option<ObjectMeta>,
    object_deleted: bool,
}

struct GcpFlow {
    storage: Arc<Storage>,
    gce: Arc<LazyGce>,
    source: Source,
    bucket: String,
    prefix: String,
    opts: GcpOptions,
    units: Arc<Mutex<Vec<Unit>>>,
    /// Builds the cleanup ledger cancelled (for the result).
    builds_cancelled: Arc<std::sync::atomic::AtomicU32>,
}

impl GcpFlow {
    fn ext(&self) -> &'static str {
        config::extension(&self.opts.format).expect("checked")
    }
}

/// A temporary image's name: `hs-{disk}-{random}`, at most 63 characters.
fn temp_image_name(disk: &str) -> String {
    let tag = hex::encode(rand::random::<[u8; 4]>());
    let keep = disk.len().min(63 - 4 - tag.len());
    format!("hs-{}-{tag}", &disk[..keep])
}

/// A random UUID (v4) for `requestId`: a retried insert is then the same insert.
fn request_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// `…/projects/P/zones/Z/disks/N` → (P, Z, N), checked.
fn disk_parts(link: &str) -> Result<(String, String, String)> {
    let path = link
        .split_once("/compute/v1/")
        .map(|(_, p)| p)
        .unwrap_or(link);
    match config::parse_source(path, None, None)? {
        Source::Disk {
            project,
            zone,
            name,
        } => Ok((project, zone, name)),
        _ => Err(Error::Remote(format!(
            "GCE named {link:?} as a disk, which it is not"
        ))),
    }
}

/// Brings one unit to the point where its object is in Cloud Storage: image (if a disk),
/// build, object metadata; the file source for it.
#[allow(clippy::too_many_arguments)]
async fn prepare_unit(
    ctx: &FlowCtx,
    gce: &Arc<Gce>,
    storage: &Arc<Storage>,
    units: &Arc<Mutex<Vec<Unit>>>,
    i: usize,
    opts: &GcpOptions,
    (bucket, object): (&str, &str),
    cancelled: &Arc<std::sync::atomic::AtomicU32>,
) -> Result<FileSource> {
    let unit = lock(units)[i].clone();
    let poll = Backoff::fixed(Duration::from_millis(opts.poll_interval_ms));
    let stage = Duration::from_secs(opts.timeout_secs);
    let reuse = if opts.reuse_object {
        match storage.metadata(bucket, object).await {
            Ok(m) => Some(m),
            Err(Error::NotFound(_)) => None,
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    let meta = match reuse {
        Some(m) => m,
        None => {
            let image = match &unit.disk {
                Some(link) => {
                    let (project, zone, name) = disk_parts(link)?;
                    ctx.waiting_for_cloud(&format!("reading disk {name}"));
                    let disk = gce.disk(&project, &zone, &name).await?;
                    let image = temp_image_name(&name);
                    {
                        let mut u = lock(units);
                        u[i].image = Some(image.clone());
                        u[i].temp_image = true;
                    }
                    // Registered before the insert: a cancel while it runs still deletes it.
                    delete_image_step(ctx, gce, units, i, &unit.project, &image);
                    ctx.waiting_for_cloud(&format!("creating image {image} from disk {name}"));
                    let op = gce
                        .insert_image(
                            &unit.project,
                            &image,
                            &disk.self_link,
                            disk.attached,
                            &request_id(),
                        )
                        .await?;
                    let what = format!("creating image {image}");
                    poll_until(ctx, &what, stage, poll, || async {
                        let s = gce.global_op(&unit.project, &op).await?;
                        if let Some(e) = s.error {
                            return Err(Error::Remote(format!("{what} failed in GCE: {e}")));
                        }
                        Ok(if s.done {
                            Poll::Done(())
                        } else {
                            Poll::pending(format!("{what}: {}%", s.progress))
                        })
                    })
                    .await?;
                    image
                }
                None => unit.image.clone().expect("an image or a disk"),
            };
            let destination = format!("gs://{bucket}/{object}");
            ctx.waiting_for_cloud(&format!("starting the export of {image} to {destination}"));
            let build = gce
                .create_build(
                    &unit.project,
                    &image,
                    &opts.format,
                    &destination,
                    opts.timeout_secs,
                )
                .await?;
            {
                let mut u = lock(units);
                u[i].build_id = Some(build.clone());
                u[i].build_running = true;
                u[i].object_ours = true;
            }
            // The object this build writes goes after a failure or cancel (unless kept for
            // reuse_object), and only once the build is cancelled: registered first, so it
            // runs after the cancel.
            if !opts.reuse_object {
                delete_object_step(ctx, storage, units, i, When::UnlessSuccess);
            }
            let cancel_build =
                cancel_build_step(ctx, gce, units, i, &unit.project, &build, cancelled);
            let what = format!("export build {build}");
            poll_until(ctx, &what, stage, poll, || async {
                let s = gce.build(&unit.project, &build).await?;
                let name = s.status.name().unwrap_or("UNKNOWN").to_string();
                lock(units)[i].build_status = Some(name.clone());
                if s.running() {
                    return Ok(Poll::pending(format!(
                        "Cloud Build {build}: {name} {}",
                        s.detail
                    )));
                }
                lock(units)[i].build_running = false;
                ctx.ledger().forget(cancel_build);
                if s.status == google_cloud_build_v1::model::build::Status::Success {
                    Ok(Poll::Done(()))
                } else {
                    Err(Error::Remote(format!(
                        "the export build {build} of image {image} ended {name}: {}",
                        s.detail
                    )))
                }
            })
            .await?;
            storage.metadata(bucket, object).await?
        }
    };
    lock(units)[i].object = Some(meta.clone());
    if opts.delete_object_after_download {
        delete_object_step(ctx, storage, units, i, When::OnSuccess);
    }
    let file = lock(units)[i].file.clone();
    let mut src = FileSource::http(file, storage.source(&meta));
    src.size_hint = Some(meta.size);
    src.expected_size = Some(meta.size);
    src.checksum = meta.crc32c.clone();
    Ok(src)
}

/// Registers the delete of a temporary image (on every outcome), waiting for the operation.
fn delete_image_step(
    ctx: &FlowCtx,
    gce: &Arc<Gce>,
    units: &Arc<Mutex<Vec<Unit>>>,
    i: usize,
    project: &str,
    image: &str,
) {
    let (gce, units) = (gce.clone(), units.clone());
    let (project, image) = (project.to_string(), image.to_string());
    ctx.ledger().add(
        format!("deleting image {image}"),
        When::Always,
        move |pctx| {
            let (gce, units) = (gce.clone(), units.clone());
            let (project, image) = (project.clone(), image.clone());
            async move {
                if let Some(op) = gce.delete_image(&project, &image).await? {
                    let what = format!("deleting image {image}");
                    poll_until(
                        &pctx,
                        &what,
                        Duration::from_secs(300),
                        Backoff::growing(Duration::from_millis(100), Duration::from_secs(5)),
                        || async {
                            let s = gce.global_op(&project, &op).await?;
                            if let Some(e) = s.error {
                                return Err(Error::Remote(format!("{what}: {e}")));
                            }
                            Ok(if s.done {
                                Poll::Done(())
                            } else {
                                Poll::pending(what.clone())
                            })
                        },
                    )
                    .await?;
                }
                lock(&units)[i].image_deleted = true;
                Ok(())
            }
        },
    );
}

/// Registers the cancel of a running export build (forgotten once the build ends).
fn cancel_build_step(
    ctx: &FlowCtx,
    gce: &Arc<Gce>,
    units: &Arc<Mutex<Vec<Unit>>>,
    i: usize,
    project: &str,
    build: &str,
    cancelled: &Arc<std::sync::atomic::AtomicU32>,
) -> StepId {
    let (gce, units, cancelled) = (gce.clone(), units.clone(), cancelled.clone());
    let (project, build) = (project.to_string(), build.to_string());
    ctx.ledger().add(
        format!("cancelling export build {build}"),
        When::UnlessSuccess,
        move |_| {
            let (gce, units, cancelled) = (gce.clone(), units.clone(), cancelled.clone());
            let (project, build) = (project.clone(), build.clone());
            async move {
                gce.cancel_build(&project, &build).await?;
                cancelled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut u = lock(&units);
                u[i].build_running = false;
                u[i].build_status = Some("CANCELLED".into());
                Ok(())
            }
        },
    )
}

/// Registers the delete of unit `i`'s exported object (exactly the generation read, or, when
/// the build may have written it after we stopped looking, the one there now).
fn delete_object_step(
    ctx: &FlowCtx,
    storage: &Arc<Storage>,
    units: &Arc<Mutex<Vec<Unit>>>,
    i: usize,
    when: When,
) {
    let Some((bucket, object)) = lock(units)[i].destination.clone() else {
        return;
    };
    let (storage, units) = (storage.clone(), units.clone());
    ctx.ledger().add(
        format!("deleting gs://{bucket}/{object}"),
        when,
        move |_| {
            let (storage, units) = (storage.clone(), units.clone());
            let (bucket, object) = (bucket.clone(), object.clone());
            async move {
                let known = lock(&units)[i].object.clone();
                let meta = match known {
                    Some(m) => m,
                    None => storage.metadata(&bucket, &object).await?,
                };
                storage.delete(&meta).await?;
                lock(&units)[i].object_deleted = true;
                Ok(())
            }
        },
    );
}

impl Flow for GcpFlow {
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
                    zone,
                    name,
                } => units.push(Unit {
                    file: named(&name),
                    disk: Some(format!("projects/{project}/zones/{zone}/disks/{name}")),
                    project,
                    ..Default::default()
                }),
                Source::Instance {
                    project,
                    zone,
                    name,
                } => {
                    ctx.waiting_for_cloud(&format!("reading instance {name}"));
                    let gce = self.gce.get().await?;
                    for d in gce.instance_disks(&project, &zone, &name).await? {
                        let (dp, dz, dn) = disk_parts(&d.source)?;
                        units.push(Unit {
                            file: format!("{dn}.{ext}"),
                            disk: Some(format!("projects/{dp}/zones/{dz}/disks/{dn}")),
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
            for u in &mut units {
                if u.destination.is_none() {
                    let stem = u.file.rsplit_once('.').map(|(s, _)| s).unwrap_or(&u.file);
                    let stem = u
                        .disk
                        .as_deref()
                        .and_then(|d| d.rsplit('/').next())
                        .or(u.image.as_deref())
                        .unwrap_or(stem);
                    u.destination =
                        Some((self.bucket.clone(), format!("{}{stem}.{ext}", self.prefix)));
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
            let gce = self.gce.get().await?;
            // Every disk of an instance goes through Compute and Cloud Build at once.
            let jobs =
                units.iter().enumerate().map(|(i, u)| {
                    let (b, o) = u.destination.clone().expect("set");
                    let (gce, storage, all, opts) = (&gce, &self.storage, &self.units, &self.opts);
                    let cancelled = &self.builds_cancelled;
                    async move {
                        prepare_unit(ctx, gce, storage, all, i, opts, (&b, &o), cancelled).await
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

/// What this provider accepts (`hs_provider_info`).
pub(crate) fn info() -> super::schema::ProviderInfo {
    super::schema::ProviderInfo {
        name: "gcp",
        built_in: true,
        sources: &[
            "disk:N, instance:N, image:N or N (with a project and zone)",
            "projects/P/zones/Z/disks/N, …/instances/N, projects/P/global/images/N",
            "gs://bucket/object",
        ],
        config_keys: super::schema::with_net::<GcpConfig>(),
        option_keys: super::schema::field_names::<GcpOptions>(),
    }
}
