//! One file of a GCP export and what is made in the cloud for it: the temporary image, the
//! export build, the object; brought to the point where the object can be downloaded, each
//! cloud object's undo registered in the cleanup ledger before its create call is sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::api::Gce;
use super::build::{self, BuildPlan};
use super::config;
use super::config::{GcpOptions, Source};
use super::storage::{ObjectMeta, Storage};
use crate::error::{Error, Result};
use crate::providers::poll::{Backoff, Poll, poll_until};
use crate::seam::ledger::StepId;
use crate::seam::{FlowCtx, When};
use crate::sync::lock;
use crate::transfer::FileSource;

/// One file of the export and what was made in the cloud for it. Recorded before each create
/// call is sent, so cleanup undoes whatever may exist.
#[derive(Debug, Clone, Default)]
pub(super) struct Unit {
    pub(super) file: String,
    /// `projects/P/zones/Z/disks/N` for a disk export.
    pub(super) disk: Option<String>,
    pub(super) project: String,
    /// The image exported (the temporary one, or the caller's own).
    pub(super) image: Option<String>,
    pub(super) temp_image: bool,
    pub(super) image_deleted: bool,
    pub(super) build_id: Option<String>,
    pub(super) build_status: Option<String>,
    pub(super) build_running: bool,
    /// Where the export was written (bucket, object).
    pub(super) destination: Option<(String, String)>,
    /// This run's build wrote the object (so a failed run removes it).
    pub(super) object_ours: bool,
    /// The generation at the destination before this run's build was started, if any: never
    /// deleted by this run's cleanup (it was not written by it).
    pub(super) not_ours: Option<String>,
    pub(super) object: Option<ObjectMeta>,
    pub(super) object_deleted: bool,
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

/// `…/projects/P/zones/Z/disks/N` → (P, `zones/Z`, N); `…/projects/P/regions/R/disks/N` →
/// (P, `regions/R`, N); checked.
pub(super) fn disk_parts(link: &str) -> Result<(String, String, String)> {
    let path = link
        .split_once("/compute/v1/")
        .map(|(_, p)| p)
        .unwrap_or(link);
    match config::parse_source(path, None, None)? {
        Source::Disk {
            project,
            location,
            name,
        } => Ok((project, location, name)),
        _ => Err(Error::Remote(format!(
            "GCE named {link:?} as a disk, which it is not"
        ))),
    }
}

/// Brings one unit to the point where its object is in Cloud Storage: image (if a disk),
/// build, object metadata; the file source for it.
#[allow(clippy::too_many_arguments)]
pub(super) async fn prepare_unit(
    ctx: &FlowCtx,
    gce: &Arc<Gce>,
    storage: &Arc<Storage>,
    units: &Arc<Mutex<Vec<Unit>>>,
    i: usize,
    opts: &GcpOptions,
    plan: Option<&BuildPlan>,
    (bucket, object): (&str, &str),
    cancelled: &Arc<std::sync::atomic::AtomicU32>,
) -> Result<FileSource> {
    let unit = lock(units)[i].clone();
    let poll = Backoff::fixed(Duration::from_millis(opts.poll_interval_ms));
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
            // No plan: every object was there when the run looked (reuse_object), and this one
            // has gone since.
            let plan = plan.ok_or_else(|| {
                Error::InvalidState(format!(
                    "the exported object gs://{bucket}/{object} of an earlier run was deleted \
                     while this run started: run the export again"
                ))
            })?;
            let (image, secs) = match &unit.disk {
                Some(link) => {
                    let (project, location, name) = disk_parts(link)?;
                    ctx.waiting_for_cloud(&format!("reading disk {name}"));
                    let disk = gce.disk(&project, &location, &name).await?;
                    let secs = stage_secs(opts, disk.size_gb);
                    let stage = Duration::from_secs(secs);
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
                    (image, secs)
                }
                None => {
                    // The user's own image: looked up first, so an unknown one is NotFound
                    // before a build is made for it.
                    let image = unit.image.clone().expect("an image or a disk");
                    ctx.waiting_for_cloud(&format!("reading image {image}"));
                    let (status, gb) = gce.image_status(&unit.project, &image).await?;
                    if status != "READY" {
                        return Err(Error::InvalidState(format!(
                            "image {image} is {status}, not READY: it cannot be exported yet"
                        )));
                    }
                    (image, stage_secs(opts, gb))
                }
            };
            let destination = format!("gs://{bucket}/{object}");
            // The name is this run's own, so nothing should be there; if something is, it is
            // not ours, and cleanup leaves that generation alone.
            let before = match storage.metadata(bucket, object).await {
                Ok(m) => Some(m.generation),
                Err(Error::NotFound(_)) => None,
                Err(e) => return Err(e),
            };
            lock(units)[i].not_ours = before;
            ctx.waiting_for_cloud(&format!("starting the export of {image} to {destination}"));
            let build = plan
                .create(gce, &image, &opts.format, &destination, secs)
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
            let cancel_build = cancel_build_step(ctx, gce, plan, units, i, &build, cancelled);
            let what = format!("export build {build}");
            // Cloud Build ends the build at its timeout: waiting a little longer lets its
            // TIMEOUT be the answer.
            let stage = Duration::from_secs(secs + 300);
            poll_until(ctx, &what, stage, poll, || async {
                let s = plan.get(gce, &build).await?;
                let name = Some(s.status.clone())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "UNKNOWN".into());
                lock(units)[i].build_status = Some(name.clone());
                if s.running() {
                    return Ok(Poll::pending(format!(
                        "Cloud Build {build}: {name} {}",
                        s.detail
                    )));
                }
                lock(units)[i].build_running = false;
                ctx.ledger().forget(cancel_build);
                if s.status == "SUCCESS" {
                    Ok(Poll::Done(()))
                } else {
                    Err(build::failed(&build, &image, &s, secs))
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

/// A stage's timeout: `timeout_secs`, else sized from the disk (`config::stage_timeout`).
fn stage_secs(opts: &GcpOptions, gb: Option<u64>) -> u64 {
    opts.timeout_secs
        .unwrap_or_else(|| config::stage_timeout(gb.unwrap_or(0)))
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
    plan: &BuildPlan,
    units: &Arc<Mutex<Vec<Unit>>>,
    i: usize,
    build: &str,
    cancelled: &Arc<std::sync::atomic::AtomicU32>,
) -> StepId {
    let (gce, units, cancelled) = (gce.clone(), units.clone(), cancelled.clone());
    let (plan, build) = (plan.clone(), build.to_string());
    ctx.ledger().add(
        format!("cancelling export build {build}"),
        When::UnlessSuccess,
        move |_| {
            let (gce, units, cancelled) = (gce.clone(), units.clone(), cancelled.clone());
            let (plan, build) = (plan.clone(), build.clone());
            async move {
                plan.cancel(&gce, &build).await?;
                cancelled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut u = lock(&units);
                u[i].build_running = false;
                u[i].build_status = Some("CANCELLED".into());
                Ok(())
            }
        },
    )
}

/// Registers the delete of unit `i`'s exported object: exactly the generation read, or, when
/// the build may have written it after we stopped looking, the one at this run's own name now
/// unless it was there before the build (the delete names its `generation`: a generation
/// written since stays).
pub(super) fn delete_object_step(
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
                let (known, not_ours) = {
                    let u = lock(&units);
                    (u[i].object.clone(), u[i].not_ours.clone())
                };
                let meta = match known {
                    Some(m) => m,
                    None => match storage.metadata(&bucket, &object).await {
                        Ok(m) if not_ours.as_deref() == Some(m.generation.as_str()) => {
                            tracing::info!(%bucket, %object, "the object there is not this run's; kept");
                            return Ok(());
                        }
                        Ok(m) => m,
                        // The build never wrote it: nothing of ours to delete.
                        Err(Error::NotFound(_)) => return Ok(()),
                        Err(e) => return Err(e),
                    },
                };
                storage.delete(&meta).await?;
                lock(&units)[i].object_deleted = true;
                Ok(())
            }
        },
    );
}
