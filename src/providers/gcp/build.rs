//! The export build: where it runs, what it runs and with which arguments — as
//! `gcloud compute images export` does it today (googlecloudsdk `api_lib/compute/daisy_utils.py`,
//! `surface/compute/images/export.py`) — and Cloud Build's create/get/cancel calls
//! (cloudbuild v1 `projects.locations.builds`, or `projects.builds` for a global build, as its
//! discovery document writes them).

use reqwest::Method;
use serde_json::json;

use super::api::{Gce, text, url};
use crate::error::{Error, Result};
use crate::providers::kit::Call;
use crate::providers::kit::text::one_line;

/// Where and how every build of one export runs (the same for each disk of an instance).
#[derive(Debug, Clone)]
pub(crate) struct BuildPlan {
    pub project: String,
    /// The Cloud Build region the builds are created in (`projects/P/locations/{location}`), or
    /// `None`: a global build (`projects/P/builds`), as gcloud makes one outside its list of
    /// regional Cloud Build regions.
    pub location: Option<String>,
    /// The builder image, as gcloud chooses it (`builder::choose`).
    pub builder: String,
    /// `-zone`: where the exporter starts its temporary VM.
    pub zone: Option<String>,
    /// `-scratch_bucket_gcs_path=gs://{scratch}/`: the bucket the exporter works in, made by us
    /// with the caller's credentials (see `Storage::scratch_bucket`).
    pub scratch: String,
    pub network: Option<String>,
    pub subnet: Option<String>,
    pub compute_service_account: Option<String>,
}

/// Cloud Storage locations named differently in Artifact Registry, or dual regions it does not
/// have (daisy_utils `GCS_TO_AR_REGIONS`).
fn artifact_region(region: &str) -> &str {
    match region {
        "eu" => "europe",
        "nam4" => "us-central1",
        "eur4" => "europe-west4",
        "asia1" => "asia-northeast1",
        r => r,
    }
}

/// Artifact Registry multi-regions, which regional Cloud Build does not have
/// (daisy_utils `AR_TO_CLOUD_BUILD_REGIONS`).
fn build_region(ar_region: &str) -> &str {
    match ar_region {
        "us" => "us-central1",
        "europe" => "europe-west4",
        "asia" => "asia-east1",
        r => r,
    }
}

/// The regions gcloud creates regional builds in (daisy_utils `CLOUD_BUILD_REGIONS`); a build for
/// any other region is a global one (`_RunCloudBuild`: `_CreateCloudBuild`).
const CLOUD_BUILD_REGIONS: [&str; 15] = [
    "asia-east1",
    "asia-northeast1",
    "asia-southeast1",
    "australia-southeast1",
    "europe-west1",
    "europe-west2",
    "europe-west3",
    "europe-west4",
    "europe-west6",
    "northamerica-northeast1",
    "southamerica-east1",
    "us-central1",
    "us-east1",
    "us-east4",
    "us-west1",
];

/// The Artifact Registry region of the builder and the build's location (`None`: a global
/// build), for a region (a zone's region, or the destination bucket's location), as daisy_utils
/// `_GetBuilderRegion` and `_RunCloudBuild` map them. Which image runs is `builder::choose`'s.
pub(crate) fn regions_for(region: &str) -> (String, Option<String>) {
    let ar = artifact_region(&region.to_ascii_lowercase()).to_string();
    let build = build_region(&ar);
    let location = CLOUD_BUILD_REGIONS
        .contains(&build)
        .then(|| build.to_string());
    (ar, location)
}

/// The exporter's own timeout: the build's less 3 % (at least 30 s, at most 5 min), so the
/// workflow stops and cleans up before Cloud Build kills it (daisy_utils `GetDaisyTimeout`).
pub(crate) fn workflow_timeout(build_secs: u64) -> u64 {
    let offset = (build_secs * 3 / 100).clamp(30, 300);
    build_secs.saturating_sub(offset).max(1)
}

/// A build as seen by one poll: its `status` (`QUEUED`, `WORKING`, `SUCCESS`, `FAILURE`, …).
pub(crate) struct BuildState {
    pub status: String,
    pub detail: String,
}

impl BuildState {
    pub fn running(&self) -> bool {
        matches!(self.status.as_str(), "QUEUED" | "WORKING" | "PENDING")
    }
}

impl BuildPlan {
    /// The exporter's arguments, sorted as gcloud sorts them.
    pub fn args(&self, image: &str, format: &str, destination: &str, secs: u64) -> Vec<String> {
        let mut a = vec![
            "-client_id=api".to_string(),
            format!("-client_version=hypersdk-{}", env!("CARGO_PKG_VERSION")),
            format!("-destination_uri={destination}"),
            format!("-format={format}"),
            format!("-scratch_bucket_gcs_path=gs://{}/", self.scratch),
            format!(
                "-source_image=projects/{}/global/images/{image}",
                self.project
            ),
            format!("-timeout={}s", workflow_timeout(secs)),
        ];
        for (k, v) in [
            ("zone", &self.zone),
            ("network", &self.network),
            ("subnet", &self.subnet),
            ("compute_service_account", &self.compute_service_account),
        ] {
            if let Some(v) = v {
                a.push(format!("-{k}={}", v.to_ascii_lowercase()));
            }
        }
        a.sort();
        a
    }

    fn builds_url(&self, gce: &Gce, rest: &[&str]) -> url::Url {
        let mut s = vec!["v1", "projects", &self.project];
        if let Some(l) = &self.location {
            s.extend(["locations", l]);
        }
        s.push("builds");
        s.extend_from_slice(rest);
        url(&gce.cloudbuild, &s)
    }

    /// Starts the export build (`projects.locations.builds.create`). Not sent again once the
    /// cloud may have taken it (a second build would be a second export).
    pub async fn create(
        &self,
        gce: &Gce,
        image: &str,
        format: &str,
        destination: &str,
        secs: u64,
    ) -> Result<String> {
        let body = json!({
            "steps": [{
                "name": self.builder,
                "args": self.args(image, format, destination, secs),
            }],
            "tags": ["gce-daisy", "gce-daisy-image-export", "hypersdk"],
            "timeout": format!("{secs}s"),
        });
        let what = format!("starting the export build of {image}");
        let call = Call {
            what: &what,
            idempotent: false,
            cancel: None,
        };
        let (op, _) = gce
            .send(&call, Method::POST, self.builds_url(gce, &[]), Some(&body))
            .await?;
        op["metadata"]["build"]["id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                Error::Remote(format!(
                    "Cloud Build accepted the export of {image} but named no build"
                ))
            })
    }

    pub async fn get(&self, gce: &Gce, id: &str) -> Result<BuildState> {
        let b = gce
            .get(&format!("build {id}"), self.builds_url(gce, &[id]))
            .await?;
        let step = text(&b["steps"][0]["status"]);
        let mut detail = one_line(b["statusDetail"].as_str().unwrap_or(""));
        if detail.is_empty() && !step.is_empty() {
            detail = format!("step {step}");
        }
        Ok(BuildState {
            status: text(&b["status"]),
            detail,
        })
    }

    /// `projects.locations.builds.cancel` (`POST …/builds/{id}:cancel`); twice does no harm.
    pub async fn cancel(&self, gce: &Gce, id: &str) -> Result<()> {
        let u = self.builds_url(gce, &[&format!("{id}:cancel")]);
        let name = format!(
            "projects/{}/locations/{}/builds/{id}",
            self.project,
            self.location.as_deref().unwrap_or("global")
        );
        let body = json!({"name": name, "projectId": self.project, "id": id});
        let what = format!("cancelling build {id}");
        gce.send(&Call::read(&what), Method::POST, u, Some(&body))
            .await
            .map(|_| ())
    }
}

/// The error for a build that ended without success; a timeout says what to set.
pub(crate) fn failed(build: &str, image: &str, s: &BuildState, secs: u64) -> Error {
    if s.status == "TIMEOUT" {
        return Error::Timeout(format!(
            "the export build {build} of image {image} ran out of its {secs} s: set timeout_secs \
             higher (up to {max}, Cloud Build's 24 hours); a disk that needs longer cannot be \
             exported in one build (gcloud's advice: the raw format, which converts nothing, \
             or a smaller disk)",
            max = super::config::MAX_BUILD_SECS
        ));
    }
    let name = Some(s.status.as_str())
        .filter(|n| !n.is_empty())
        .unwrap_or("UNKNOWN");
    Error::Remote(format!(
        "the export build {build} of image {image} ended {name}: {}",
        s.detail
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_and_timeouts_follow_gcloud() {
        assert_eq!(
            regions_for("europe-west1"),
            ("europe-west1".into(), Some("europe-west1".into()))
        );
        assert_eq!(
            regions_for("EU"),
            ("europe".into(), Some("europe-west4".into()))
        );
        assert_eq!(regions_for("nam4").1.as_deref(), Some("us-central1"));
        assert_eq!(regions_for("asia-south1"), ("asia-south1".into(), None));
        assert_eq!(workflow_timeout(7_200), 7_200 - 216);
        assert_eq!(workflow_timeout(600), 570);
        assert_eq!(workflow_timeout(86_400), 86_100);
    }

    #[test]
    fn args_are_sorted_and_carry_the_options() {
        let p = BuildPlan {
            project: "proj-123".into(),
            location: Some("europe-west1".into()),
            builder: "b".into(),
            zone: Some("europe-west1-b".into()),
            scratch: "proj-123-daisy-bkt-europe-west1".into(),
            network: Some("Prod-Net".into()),
            subnet: None,
            compute_service_account: None,
        };
        let a = p.args("img", "vmdk", "gs://b/o.vmdk", 7_200);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(a, sorted);
        assert!(a.contains(&"-network=prod-net".to_string()), "{a:?}");
        assert!(a.contains(&"-zone=europe-west1-b".to_string()), "{a:?}");
        assert!(!a.iter().any(|x| x.starts_with("-subnet")), "{a:?}");
    }
}
