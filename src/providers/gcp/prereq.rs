//! What a project needs before an export build can work, checked with read-only calls before
//! anything is made — the checks `gcloud compute images export` runs (googlecloudsdk
//! `api_lib/compute/daisy_utils.py`, `_CheckIamPermissions`): the `cloudbuild`, `compute` and
//! `logging` services enabled (Service Usage v1 `services.get`), the Cloud Build service
//! account `PROJECT_NUMBER@cloudbuild.gserviceaccount.com` holding `roles/compute.admin`,
//! `roles/iam.serviceAccountUser`, `roles/iam.serviceAccountTokenCreator` and storage rights,
//! and the exporter VM's service account (the Compute Engine default one,
//! `PROJECT_NUMBER-compute@developer.gserviceaccount.com`, unless `compute_service_account`
//! names another) holding `roles/compute.storageAdmin` and `roles/storage.objectAdmin` unless
//! it has `roles/editor` (Cloud Resource Manager v1 `projects.get`, `projects.getIamPolicy`).
//! gcloud offers to fix what is missing; we name it and the command that grants it.

use reqwest::Method;
use serde_json::json;

use super::api::{Gce, url};
use crate::error::{Error, Result};
use crate::providers::kit::Call;

use super::roles::RoleBook;

const SERVICES: [&str; 3] = [
    "cloudbuild.googleapis.com",
    "compute.googleapis.com",
    "logging.googleapis.com",
];
const BUILD_ROLES: [&str; 3] = [
    "roles/compute.admin",
    "roles/iam.serviceAccountTokenCreator",
    "roles/iam.serviceAccountUser",
];
/// Predefined roles that hold the storage permissions gcloud asks of the Cloud Build account
/// (`storage.buckets.get/list`, `storage.objects.create/delete/get`); gcloud proposes the
/// first.
const BUILD_STORAGE_ROLES: [&str; 3] = ["roles/storage.admin", "roles/editor", "roles/owner"];
const COMPUTE_ROLES: [&str; 2] = ["roles/compute.storageAdmin", "roles/storage.objectAdmin"];

/// The project's number (`projects.get`): it names the two service accounts.
pub(crate) async fn project_number(gce: &Gce, project: &str) -> Result<String> {
    let u = url(&gce.resourcemanager, &["v1", "projects", project]);
    let p = gce.get(&format!("project {project}"), u).await?;
    p["projectNumber"]
        .as_str()
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string)
        .ok_or_else(|| Error::Remote(format!("project {project}: no projectNumber")))
}

/// Checks the services and roles; an error names every missing one and its command.
pub(crate) async fn check(
    gce: &Gce,
    project: &str,
    number: &str,
    compute_service_account: Option<&str>,
) -> Result<()> {
    let mut missing = Vec::new();
    for s in SERVICES {
        let u = url(
            &gce.serviceusage,
            &["v1", "projects", project, "services", s],
        );
        let v = match gce.get(&format!("service {s} of {project}"), u).await {
            Ok(v) => v,
            Err(Error::Auth(m)) => {
                return Err(Error::Auth(format!(
                    "{m} — the export checks the project's services first, which needs \
                     serviceusage.services.get (in roles/serviceusage.serviceUsageConsumer or \
                     roles/viewer); without it set the option skip_prerequisite_check (then a \
                     disabled service fails the build instead)"
                )));
            }
            Err(e) => return Err(e),
        };
        if v["state"] != "ENABLED" {
            missing.push(format!(
                "the {s} service is not enabled: gcloud services enable {s} --project={project}"
            ));
        }
    }
    let u = url(
        &gce.resourcemanager,
        &["v1", "projects", &format!("{project}:getIamPolicy")],
    );
    let body = json!({"options": {"requestedPolicyVersion": 3}});
    let what = format!("reading the IAM policy of project {project}");
    let policy = match gce
        .send(&Call::read(&what), Method::POST, u, Some(&body))
        .await
    {
        Ok((p, _)) => p,
        Err(Error::Auth(m)) => {
            return Err(Error::Auth(format!(
                "{m} — the export checks the project's services and roles first, which needs \
                 resourcemanager.projects.getIamPolicy; without it set the option \
                 skip_prerequisite_check (then a missing role fails the build instead)"
            )));
        }
        Err(e) => return Err(e),
    };
    let roles_of = |member: &str| -> Vec<String> {
        policy["bindings"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|b| {
                b["members"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|x| x == member))
            })
            .filter_map(|b| b["role"].as_str().map(str::to_string))
            .collect()
    };
    let grant = |member: &str, role: &str| {
        format!(
            "{member} lacks {role}: gcloud projects add-iam-policy-binding {project} \
             --member={member} --role={role}"
        )
    };
    // A role not held by name may be held by its permissions (a custom role): compared
    // through IAM's roles.get, as gcloud does (roles.rs).
    let mut book = RoleBook::default();
    let build = format!("serviceAccount:{number}@cloudbuild.gserviceaccount.com");
    let has = roles_of(&build);
    for r in book.missing_roles(gce, &has, &BUILD_ROLES).await? {
        missing.push(grant(&build, &r));
    }
    // The storage rights: a role known to hold them, else the permissions of the account's
    // roles together (gcloud always compares permissions; these roles hold them all).
    if !BUILD_STORAGE_ROLES
        .iter()
        .any(|r| has.iter().any(|h| h == r))
    {
        let lacks = book.missing_storage(gce, &has).await?;
        if !lacks.is_empty() {
            missing.push(format!(
                "{build} lacks {}: a custom role with them, or gcloud projects \
                 add-iam-policy-binding {project} --member={build} --role={}",
                lacks.join(", "),
                BUILD_STORAGE_ROLES[0]
            ));
        }
    }
    let compute = format!(
        "serviceAccount:{}",
        compute_service_account
            .map(str::to_string)
            .unwrap_or_else(|| format!("{number}-compute@developer.gserviceaccount.com"))
    );
    let has = roles_of(&compute);
    if !has.iter().any(|h| h == "roles/editor") {
        for r in book.missing_roles(gce, &has, &COMPUTE_ROLES).await? {
            missing.push(grant(&compute, &r));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::InvalidState(format!(
        "project {project} is not ready for an image export (nothing was made): {}",
        missing.join("; ")
    )))
}
