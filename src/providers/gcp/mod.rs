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
//! Files: `config` (client config, options, sources), `flow` (one export's run), `unit` (one
//! file: image, build, object, their ledger steps), `api` (Compute and Cloud Build REST calls on
//! our client), `storage` (Cloud Storage JSON API, the request signer).

mod api;
mod build;
mod builder;
mod config;
mod flow;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz;
mod prereq;
mod roles;
mod source;
mod storage;
mod unit;

use std::sync::{Arc, Mutex};

use google_cloud_auth::credentials::Credentials;
use serde_json::Value;

use super::kit::ApiClient;
use super::kit::config::parse_with_net;
use super::kit::net::Redirects;
use super::kit::text::one_line;
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::seam::options::{CommonOptions, parse_provider_options};
use crate::seam::{Flow, Provider};
use api::Gce;
use config::{CredentialSource, GcpConfig, GcpOptions, Source};
use flow::GcpFlow;
use storage::{GcpSigner, Storage};

pub(crate) struct GcpProvider {
    cfg: GcpConfig,
    storage: Arc<Storage>,
    gce: Arc<Gce>,
}

impl GcpProvider {
    pub fn new(config_json: &str) -> Result<Self> {
        let (cfg, net): (GcpConfig, _) = parse_with_net("gcp", config_json)?;
        let source = cfg.check()?;
        let _rt = crate::runtime::handle().enter();
        let creds = credentials(source)?;
        let timeout = net.api_timeout();
        let http = net.client(Redirects::SameOrigin)?;
        let signer = GcpSigner { creds, timeout };
        let storage = Arc::new(Storage {
            client: ApiClient::new(http.clone(), timeout, storage::MAX_BODY),
            base: url::Url::parse(&cfg.storage_endpoint).expect("checked"),
            signer: signer.clone(),
        });
        // Compute and Cloud Build: the same client (CA bundle, deadline), their own body cap.
        let gce = Arc::new(Gce {
            client: ApiClient::new(http, timeout, api::MAX_BODY),
            signer,
            compute: url::Url::parse(&cfg.compute_endpoint).expect("checked"),
            cloudbuild: url::Url::parse(&cfg.cloudbuild_endpoint).expect("checked"),
            resourcemanager: url::Url::parse(&cfg.resourcemanager_endpoint).expect("checked"),
            serviceusage: url::Url::parse(&cfg.serviceusage_endpoint).expect("checked"),
            artifactregistry: url::Url::parse(&cfg.artifactregistry_endpoint).expect("checked"),
            gcr: url::Url::parse(&cfg.gcr_endpoint).expect("checked"),
            iam: url::Url::parse(&cfg.iam_endpoint).expect("checked"),
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
                let gce = &self.gce;
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
                    // The zone's disks, then its region's regional disks (`regionDisks.list`).
                    let r = config::zone_region(z);
                    let zonal = gce.list_disks(p, z).await?;
                    let regional = gce.list_region_disks(p, r).await?;
                    let places = std::iter::repeat(format!("zones/{z}")).zip(zonal);
                    let places =
                        places.chain(std::iter::repeat(format!("regions/{r}")).zip(regional));
                    for (place, (name, size, state, attached)) in places {
                        out.push(SourceInfo {
                            id: format!("projects/{p}/{place}/disks/{name}"),
                            kind: "disk",
                            name,
                            size_bytes: size,
                            state: Some(match (attached, place.starts_with("regions/")) {
                                (true, true) => format!("{state} (regional, attached)"),
                                (false, true) => format!("{state} (regional)"),
                                (true, false) => format!("{state} (attached)"),
                                (false, false) => state,
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
        let zone = zone.map(str::to_string);
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
            zone,
            opts,
            units: Arc::new(Mutex::new(Vec::new())),
            builds_cancelled: Arc::default(),
        }))
    }
}

/// What this provider accepts (`hs_provider_info`).
pub(crate) fn info() -> super::schema::ProviderInfo {
    super::schema::ProviderInfo {
        name: "gcp",
        built_in: true,
        sources: &[
            "disk:N, instance:N, image:N or N (with a project and zone)",
            "projects/P/zones/Z/disks/N, projects/P/regions/R/disks/N, …/zones/Z/instances/N, projects/P/global/images/N",
            "gs://bucket/object",
        ],
        config_keys: super::schema::with_net::<GcpConfig>(),
        option_keys: super::schema::field_names::<GcpOptions>(),
    }
}
