//! Which exporter image the export build runs, chosen as `gcloud compute images export` chooses
//! it (googlecloudsdk `api_lib/compute/daisy_utils.py`: `_GetBuilder`, `GetRegionalizedBuilder`,
//! `GetRegionalisedBuilderIfExists`, `GetDefaultBuilder`, `IsArtifactRegistryImageExist`,
//! `IsGcrImageExist`), first found wins:
//!
//! 1. `{region}-docker.pkg.dev/compute-image-import/wrappers/gce_vm_image_export:release`, when
//!    Artifact Registry shows it to the caller: `repositories.get` of
//!    `projects/compute-image-import/locations/{region}/repositories/wrappers` (a `DOCKER`
//!    repository), then `packages.get` of its `gce_vm_image_export` package — what
//!    `docker_util.GetDockerImage` sends, with the caller's credentials;
//! 2. the same image in `compute-image-tools` (gcloud's deprecated fallback project);
//! 3. `gcr.io/compute-image-import/gce_vm_image_export:release`, when
//!    `HEAD https://gcr.io/v2/compute-image-import/gce_vm_image_export/manifests/release`
//!    (no credentials, `Content-Type: application/json`) answers 200;
//! 4. else `gcr.io/compute-image-tools/gce_vm_image_export:release`.
//!
//! Any error answer (404, 403, a 5xx after the retries) counts as "not there", as gcloud's
//! `except (HttpNotFoundError, HttpError): return False`; a service that cannot be reached is an
//! error, as it is in gcloud (a connection error is not an `HttpError`).

use reqwest::Method;
use serde_json::Value;

use super::api::{Gce, url};
use crate::error::{Error, Result};
use crate::providers::kit::Call;

/// The exporter's executable and tag, as gcloud names them.
pub(crate) const EXECUTABLE: &str = "gce_vm_image_export";
pub(crate) const TAG: &str = "release";
/// gcloud's project for the image tools, and its deprecated predecessor.
pub(crate) const IMPORT: &str = "compute-image-import";
pub(crate) const TOOLS: &str = "compute-image-tools";

/// `{region}-docker.pkg.dev/{project}/wrappers/gce_vm_image_export:release`
/// (daisy_utils `_REGIONALIZED_BUILDER_DOCKER_PATTERN`).
pub(crate) fn regional(project: &str, ar_region: &str) -> String {
    format!("{ar_region}-docker.pkg.dev/{project}/wrappers/{EXECUTABLE}:{TAG}")
}

/// `gcr.io/{project}/gce_vm_image_export:release` (daisy_utils `_DEFAULT_BUILDER_DOCKER_PATTERN`).
pub(crate) fn gcr(project: &str) -> String {
    format!("gcr.io/{project}/{EXECUTABLE}:{TAG}")
}

/// The candidates in gcloud's order, for the dry run's words.
pub(crate) fn candidates(ar_region: &str) -> [String; 4] {
    [
        regional(IMPORT, ar_region),
        regional(TOOLS, ar_region),
        gcr(IMPORT),
        gcr(TOOLS),
    ]
}

/// The builder gcloud would run for an Artifact Registry region (see the module's text).
pub(crate) async fn choose(gce: &Gce, ar_region: &str) -> Result<String> {
    for project in [IMPORT, TOOLS] {
        if in_artifact_registry(gce, project, ar_region).await? {
            return Ok(regional(project, ar_region));
        }
    }
    Ok(if in_gcr(gce, IMPORT).await? {
        gcr(IMPORT)
    } else {
        gcr(TOOLS)
    })
}

/// One authenticated GET of Artifact Registry: its JSON when it answered 2xx, `None` for any
/// error answer (gcloud's `HttpError`), an error when it could not be asked.
async fn ar_get(gce: &Gce, what: &str, u: url::Url) -> Result<Option<Value>> {
    let a = gce
        .client
        .send(&Call::read(what), &gce.signer, &|| {
            gce.client.http.request(Method::GET, u.clone())
        })
        .await?;
    if !a.status.is_success() {
        tracing::debug!(%what, status = %a.status, "not there for the builder choice");
        return Ok(None);
    }
    serde_json::from_slice(&a.body)
        .map(Some)
        .map_err(|e| Error::Remote(format!("{what}: the answer is not JSON: {e}")))
}

/// `docker_util.GetDockerImage`: the `wrappers` repository (which must be a Docker one: gcloud
/// raises otherwise), then the exporter's package in it.
async fn in_artifact_registry(gce: &Gce, project: &str, region: &str) -> Result<bool> {
    let repo = [
        "v1",
        "projects",
        project,
        "locations",
        region,
        "repositories",
        "wrappers",
    ];
    let what = format!("Artifact Registry repository {region}-docker.pkg.dev/{project}/wrappers");
    let Some(r) = ar_get(gce, &what, url(&gce.artifactregistry, &repo)).await? else {
        return Ok(false);
    };
    if r["format"] != "DOCKER" {
        return Err(Error::Remote(format!(
            "{what} is not a Docker repository (format {}): no exporter image there",
            r["format"]
        )));
    }
    let mut pkg = repo.to_vec();
    pkg.extend(["packages", EXECUTABLE]);
    let what = format!("the exporter image {}", regional(project, region));
    Ok(ar_get(gce, &what, url(&gce.artifactregistry, &pkg))
        .await?
        .is_some())
}

/// `IsGcrImageExist`: one unauthenticated HEAD of the image's manifest; 200 means there.
async fn in_gcr(gce: &Gce, project: &str) -> Result<bool> {
    let u = url(&gce.gcr, &["v2", project, EXECUTABLE, "manifests", TAG]);
    let what = format!("the exporter image {}", gcr(project));
    let r = gce
        .client
        .http
        .head(u)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .timeout(gce.client.timeout)
        .send()
        .await
        .map_err(|e| Error::http(&what, e))?;
    Ok(r.status() == reqwest::StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_gcloud() {
        assert_eq!(
            candidates("europe-west1"),
            [
                "europe-west1-docker.pkg.dev/compute-image-import/wrappers/gce_vm_image_export:release",
                "europe-west1-docker.pkg.dev/compute-image-tools/wrappers/gce_vm_image_export:release",
                "gcr.io/compute-image-import/gce_vm_image_export:release",
                "gcr.io/compute-image-tools/gce_vm_image_export:release",
            ]
        );
    }
}
