//! Compute Engine and Cloud Build through Google's Rust SDK (google-cloud-compute-v1,
//! google-cloud-build-v1): the calls the image-export flow makes, each under a deadline, with
//! the SDK's errors turned into ours.

use std::time::Duration;

use google_cloud_auth::credentials::Credentials;
use google_cloud_build_v1::client::CloudBuild;
use google_cloud_build_v1::model::{Build, BuildOperationMetadata, BuildStep, build};
use google_cloud_compute_v1::client::{Disks, GlobalOperations, Images, Instances};
use google_cloud_compute_v1::model::{Image, Operation, operation};

use crate::error::{Error, Result};
use crate::providers::kit::text::one_line;

/// The builder image `gcloud compute images export` runs.
pub(crate) const EXPORT_STEP: &str = "gcr.io/compute-image-tools/gce_vm_image_export:release";

pub(crate) struct Gce {
    disks: Disks,
    instances: Instances,
    images: Images,
    global_ops: GlobalOperations,
    builds: CloudBuild,
    timeout: Duration,
}

/// A disk as the flow needs it.
#[derive(Debug, Clone)]
pub(crate) struct DiskInfo {
    pub self_link: String,
    pub attached: bool,
}

/// An instance's disk, in export order.
#[derive(Debug, Clone)]
pub(crate) struct AttachedDisk {
    /// `projects/P/zones/Z/disks/N` (or a full URL).
    pub source: String,
    pub boot: bool,
    pub index: i32,
}

/// A compute operation as seen by one poll.
pub(crate) struct OpState {
    pub done: bool,
    pub progress: i32,
    pub error: Option<String>,
}

/// A build as seen by one poll.
pub(crate) struct BuildState {
    pub status: build::Status,
    pub detail: String,
}

impl BuildState {
    pub fn running(&self) -> bool {
        matches!(
            self.status,
            build::Status::Queued | build::Status::Working | build::Status::Pending
        )
    }
}

impl Gce {
    pub async fn new(
        creds: &Credentials,
        compute_endpoint: &str,
        build_endpoint: &str,
        timeout: Duration,
    ) -> Result<Gce> {
        let bad = |e: google_cloud_gax::client_builder::Error| {
            Error::InvalidArgument(format!("gcp client: {e}"))
        };
        let c = compute_endpoint.trim_end_matches('/');
        Ok(Gce {
            disks: Disks::builder()
                .with_endpoint(c)
                .with_credentials(creds.clone())
                .build()
                .await
                .map_err(bad)?,
            instances: Instances::builder()
                .with_endpoint(c)
                .with_credentials(creds.clone())
                .build()
                .await
                .map_err(bad)?,
            images: Images::builder()
                .with_endpoint(c)
                .with_credentials(creds.clone())
                .build()
                .await
                .map_err(bad)?,
            global_ops: GlobalOperations::builder()
                .with_endpoint(c)
                .with_credentials(creds.clone())
                .build()
                .await
                .map_err(bad)?,
            builds: CloudBuild::builder()
                .with_endpoint(build_endpoint.trim_end_matches('/'))
                .with_credentials(creds.clone())
                .build()
                .await
                .map_err(bad)?,
            timeout,
        })
    }

    async fn deadline<T>(
        &self,
        what: &str,
        f: impl Future<Output = std::result::Result<T, google_cloud_gax::error::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(sdk_error(what, &e)),
            Err(_) => Err(Error::Timeout(format!(
                "{what}: no answer within {:?}",
                self.timeout
            ))),
        }
    }

    pub async fn disk(&self, project: &str, zone: &str, name: &str) -> Result<DiskInfo> {
        let d = self
            .deadline(
                &format!("GCE disk projects/{project}/zones/{zone}/disks/{name}"),
                self.disks
                    .get()
                    .set_project(project)
                    .set_zone(zone)
                    .set_disk(name)
                    .send(),
            )
            .await?;
        Ok(DiskInfo {
            self_link: d
                .self_link
                .unwrap_or_else(|| format!("projects/{project}/zones/{zone}/disks/{name}")),
            attached: !d.users.is_empty(),
        })
    }

    /// The instance's disks: boot first, then by index.
    pub async fn instance_disks(
        &self,
        project: &str,
        zone: &str,
        name: &str,
    ) -> Result<Vec<AttachedDisk>> {
        let i = self
            .deadline(
                &format!("GCE instance projects/{project}/zones/{zone}/instances/{name}"),
                self.instances
                    .get()
                    .set_project(project)
                    .set_zone(zone)
                    .set_instance(name)
                    .send(),
            )
            .await?;
        let mut disks: Vec<AttachedDisk> = i
            .disks
            .into_iter()
            .filter_map(|d| {
                Some(AttachedDisk {
                    source: d.source?,
                    boot: d.boot.unwrap_or(false),
                    index: d.index.unwrap_or(i32::MAX),
                })
            })
            .collect();
        disks.sort_by_key(|d| (!d.boot, d.index));
        Ok(disks)
    }

    /// `images.insert` of `name` from `source_disk` (forceCreate for a disk in use: the
    /// instance keeps running). The request id makes a retried insert the same insert.
    pub async fn insert_image(
        &self,
        project: &str,
        name: &str,
        source_disk: &str,
        force: bool,
        request_id: &str,
    ) -> Result<String> {
        let op: Operation = self
            .deadline(
                &format!("creating image {name}"),
                self.images
                    .insert()
                    .set_project(project)
                    .set_force_create(force)
                    .set_request_id(request_id)
                    .set_body(
                        Image::new()
                            .set_name(name)
                            .set_source_disk(source_disk)
                            .set_description(
                                "hypersdk export: temporary, deleted after the export",
                            ),
                    )
                    .send(),
            )
            .await?;
        op.name
            .ok_or_else(|| Error::Remote(format!("creating image {name}: no operation name")))
    }

    /// An image's status (`READY`, `PENDING`, `FAILED`, …): NotFound for an image that does
    /// not exist, before anything is made for it.
    pub async fn image_status(&self, project: &str, name: &str) -> Result<String> {
        let i = self
            .deadline(
                &format!("GCE image projects/{project}/global/images/{name}"),
                self.images
                    .get()
                    .set_project(project)
                    .set_image(name)
                    .send(),
            )
            .await?;
        Ok(i.status
            .and_then(|s| s.name().map(str::to_string))
            .unwrap_or_default())
    }

    pub async fn delete_image(&self, project: &str, name: &str) -> Result<Option<String>> {
        match self
            .deadline(
                &format!("deleting image {name}"),
                self.images
                    .delete()
                    .set_project(project)
                    .set_image(name)
                    .send(),
            )
            .await
        {
            Ok(op) => Ok(op.name),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn global_op(&self, project: &str, op: &str) -> Result<OpState> {
        let o = self
            .deadline(
                &format!("operation {op}"),
                self.global_ops
                    .get()
                    .set_project(project)
                    .set_operation(op)
                    .send(),
            )
            .await?;
        let done = matches!(o.status, Some(operation::Status::Done));
        let error = o.error.map(|e| {
            e.errors
                .iter()
                .map(|x| {
                    format!(
                        "{}: {}",
                        x.code.as_deref().unwrap_or("error"),
                        one_line(x.message.as_deref().unwrap_or(""))
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        });
        Ok(OpState {
            done,
            progress: o.progress.unwrap_or(0),
            error: error.filter(|e| !e.is_empty()),
        })
    }

    /// Starts the export build: the step and arguments `gcloud compute images export` uses.
    pub async fn create_build(
        &self,
        project: &str,
        image: &str,
        format: &str,
        destination: &str,
        timeout_secs: u64,
    ) -> Result<String> {
        // The workflow's own timeout is a little under the build's, as gcloud sets them.
        let workflow = timeout_secs.saturating_sub(60).max(60);
        let step = BuildStep::new()
            .set_name(EXPORT_STEP)
            .set_args([
                format!("-timeout={workflow}s"),
                format!("-source_image=projects/{project}/global/images/{image}"),
                "-client_id=api".to_string(),
                format!("-format={format}"),
                format!("-destination_uri={destination}"),
            ])
            .set_env(["BUILD_ID=$BUILD_ID"]);
        let b = Build::new()
            .set_steps([step])
            .set_tags(["gce-daisy", "gce-daisy-image-export", "hypersdk"])
            .set_timeout(google_cloud_wkt::Duration::clamp(timeout_secs as i64, 0));
        let op = self
            .deadline(
                &format!("starting the export build of {image}"),
                self.builds
                    .create_build()
                    .set_project_id(project)
                    .set_build(b)
                    .send(),
            )
            .await?;
        op.metadata
            .as_ref()
            .and_then(|m| m.to_msg::<BuildOperationMetadata>().ok())
            .and_then(|m| m.build)
            .map(|b| b.id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                Error::Remote(format!(
                    "Cloud Build accepted the export of {image} but named no build"
                ))
            })
    }

    pub async fn build(&self, project: &str, id: &str) -> Result<BuildState> {
        let b = self
            .deadline(
                &format!("build {id}"),
                self.builds
                    .get_build()
                    .set_project_id(project)
                    .set_id(id)
                    .send(),
            )
            .await?;
        let step = b
            .steps
            .first()
            .and_then(|s| s.status.name())
            .unwrap_or_default();
        let mut detail = one_line(&b.status_detail);
        if detail.is_empty() && !step.is_empty() {
            detail = format!("step {step}");
        }
        Ok(BuildState {
            status: b.status,
            detail,
        })
    }

    pub async fn cancel_build(&self, project: &str, id: &str) -> Result<()> {
        self.deadline(
            &format!("cancelling build {id}"),
            self.builds
                .cancel_build()
                .set_project_id(project)
                .set_id(id)
                .send(),
        )
        .await
        .map(|_| ())
    }
}

impl Gce {
    /// Disks of one zone: (name, bytes, status, attached).
    pub async fn list_disks(
        &self,
        project: &str,
        zone: &str,
    ) -> Result<Vec<(String, Option<u64>, String, bool)>> {
        use google_cloud_gax::paginator::ItemPaginator as _;
        let what = format!("listing disks of projects/{project}/zones/{zone}");
        let mut items = self
            .disks
            .list()
            .set_project(project)
            .set_zone(zone)
            .by_item();
        let mut out = Vec::new();
        while let Some(d) = self
            .deadline(&what, async { items.next().await.transpose() })
            .await?
        {
            out.push((
                d.name.unwrap_or_default(),
                d.size_gb.map(|g| (g as u64) << 30),
                d.status
                    .and_then(|s| s.name().map(str::to_string))
                    .unwrap_or_default(),
                !d.users.is_empty(),
            ));
        }
        Ok(out)
    }

    /// Instances of one zone: (name, status, disk count).
    pub async fn list_instances(
        &self,
        project: &str,
        zone: &str,
    ) -> Result<Vec<(String, String, u64)>> {
        use google_cloud_gax::paginator::ItemPaginator as _;
        let what = format!("listing instances of projects/{project}/zones/{zone}");
        let mut items = self
            .instances
            .list()
            .set_project(project)
            .set_zone(zone)
            .by_item();
        let mut out = Vec::new();
        while let Some(i) = self
            .deadline(&what, async { items.next().await.transpose() })
            .await?
        {
            let gb: i64 = i.disks.iter().filter_map(|d| d.disk_size_gb).sum();
            out.push((
                i.name.unwrap_or_default(),
                i.status
                    .and_then(|s| s.name().map(str::to_string))
                    .unwrap_or_default(),
                (gb.max(0) as u64) << 30,
            ));
        }
        Ok(out)
    }

    /// The project's own images: (name, bytes, status).
    pub async fn list_images(&self, project: &str) -> Result<Vec<(String, Option<u64>, String)>> {
        use google_cloud_gax::paginator::ItemPaginator as _;
        let what = format!("listing images of project {project}");
        let mut items = self.images.list().set_project(project).by_item();
        let mut out = Vec::new();
        while let Some(i) = self
            .deadline(&what, async { items.next().await.transpose() })
            .await?
        {
            out.push((
                i.name.unwrap_or_default(),
                i.disk_size_gb.map(|g| (g as u64) << 30),
                i.status
                    .and_then(|s| s.name().map(str::to_string))
                    .unwrap_or_default(),
            ));
        }
        Ok(out)
    }
}

/// The SDK's error as ours: the HTTP status decides, then the error's class.
pub(crate) fn sdk_error(what: &str, e: &google_cloud_gax::error::Error) -> Error {
    let msg = e
        .status()
        .map(|s| one_line(&s.message))
        .unwrap_or_else(|| one_line(&e.to_string()));
    if let Some(code) = e.http_status_code() {
        let status = reqwest::StatusCode::from_u16(code)
            .unwrap_or(reqwest::StatusCode::INTERNAL_SERVER_ERROR);
        return super::storage::http_error(
            status,
            what,
            &serde_json::json!({"error": {"message": msg}}),
        );
    }
    let text = format!("{what}: {msg}");
    if e.is_authentication() {
        Error::Auth(text)
    } else if e.is_timeout() {
        Error::Timeout(text)
    } else if e.is_connect() || e.is_io() || e.is_transport() {
        Error::Network(text)
    } else {
        Error::Remote(text)
    }
}
