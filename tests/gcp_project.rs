//! Issue 30's second part: the exporter image gcloud chooses (Artifact Registry, then gcr.io),
//! the prerequisite check's own refusals (a 403 from Service Usage, a conditional IAM binding),
//! `reuse_object` making nothing, regional disks in the listing — against fake-gcs-server behind
//! the stand-in of tests/peers/gcp (its registry_model.py serves the two registries). A test
//! that marks a registry's image missing uses a region of its own: the peer is shared by the
//! tests of this process.
#![cfg(feature = "gcp")]

mod support;

use hypersdk::Client;
use serde_json::{Value, json};
use support::gcp::{PROJECT, ZONE, client, edit, export, gcp, gopts, project_with_disk};
use support::wait_long as wait;

/// A disk of its own in `zone`; its export's source id.
fn disk_in(zone: &str, name: &str) -> String {
    gcp().disk_with(name, 1 << 20, 11, json!({"zone": zone}));
    format!("projects/{PROJECT}/zones/{zone}/disks/{name}")
}

/// The step (builder image) of the one build of `disk`'s export.
fn step_of(disk: &str) -> String {
    build_of(disk)["step"].as_str().unwrap().to_string()
}

fn build_of(disk: &str) -> Value {
    let b = gcp().builds_of(&format!("hs-{disk}-"));
    assert_eq!(b.len(), 1, "{b:?}");
    b[0].clone()
}

fn registry(image: &str, state: Value) {
    gcp().admin("registry", json!({"image": image, "state": state}));
}

fn regional(project: &str, region: &str) -> String {
    format!("{region}-docker.pkg.dev/{project}/wrappers/gce_vm_image_export")
}

/// Item 2's last step: the builder as gcloud chooses it (daisy_utils `_GetBuilder`): the
/// regional compute-image-import image when Artifact Registry shows it; else compute-image-tools'
/// regional one; else gcr.io's compute-image-import image when its manifest HEAD answers 200;
/// else gcr.io/compute-image-tools. An error answer (403 here) counts as "not there", as
/// gcloud's `IsArtifactRegistryImageExist` catches every `HttpError`.
#[test]
fn the_builder_is_the_image_gcloud_would_choose() {
    let g = gcp();
    let probes = |k: &str| g.stats()["registry_probes"][k].as_u64().unwrap();
    // Present: the regional compute-image-import image, found through Artifact Registry.
    let before = probes("artifact_registry");
    let (r, _o) = export(&disk_in(ZONE, "bld-here"), json!({}));
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(
        step_of("bld-here"),
        "europe-west1-docker.pkg.dev/compute-image-import/wrappers/gce_vm_image_export:release"
    );
    assert!(
        probes("artifact_registry") >= before + 2,
        "no repositories.get + packages.get"
    );
    // A regional build where gcloud makes one (daisy_utils CLOUD_BUILD_REGIONS), else global.
    assert_eq!(build_of("bld-here")["location"], "europe-west1");
    // Missing in compute-image-import for this region: compute-image-tools' regional image.
    registry(
        &regional("compute-image-import", "asia-south1"),
        json!("missing"),
    );
    let (r, _o) = export(&disk_in("asia-south1-a", "bld-tools"), json!({}));
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(
        step_of("bld-tools"),
        format!("{}:release", regional("compute-image-tools", "asia-south1"))
    );
    assert_eq!(build_of("bld-tools")["location"], "global");
    // A 403 (the caller may not read it) is "not there" too.
    registry(&regional("compute-image-import", "asia-east2"), json!(403));
    let (r, _o) = export(&disk_in("asia-east2-b", "bld-denied"), json!({}));
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(
        step_of("bld-denied"),
        format!("{}:release", regional("compute-image-tools", "asia-east2"))
    );
    // No regional image at all: gcr.io's compute-image-import image (its manifest HEAD, no
    // credentials), and without that one compute-image-tools'.
    for p in ["compute-image-import", "compute-image-tools"] {
        registry(&regional(p, "me-west1"), json!("missing"));
    }
    let before = probes("gcr");
    let (r, _o) = export(&disk_in("me-west1-a", "bld-gcr"), json!({}));
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(
        step_of("bld-gcr"),
        "gcr.io/compute-image-import/gce_vm_image_export:release"
    );
    assert_eq!(probes("gcr"), before + 1);
    registry(
        "gcr.io/compute-image-import/gce_vm_image_export",
        json!("missing"),
    );
    let (r, _o) = export(&disk_in("me-west1-b", "bld-old"), json!({}));
    registry(
        "gcr.io/compute-image-import/gce_vm_image_export",
        json!("present"),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(
        step_of("bld-old"),
        "gcr.io/compute-image-tools/gce_vm_image_export:release"
    );
}

/// The dry run names the builder candidates for the source's region, in gcloud's order.
#[test]
fn the_dry_run_names_the_builder() {
    let out = tempfile::tempdir().unwrap();
    let plan = client()
        .dry_run(
            &format!("projects/{PROJECT}/zones/asia-south1-a/disks/any"),
            &gopts(out.path(), json!({})),
        )
        .unwrap();
    let text = plan.cloud.join("\n");
    let first = text
        .find(
            "asia-south1-docker.pkg.dev/compute-image-import/wrappers/gce_vm_image_export:release",
        )
        .unwrap_or_else(|| panic!("{text}"));
    let last = text
        .find("gcr.io/compute-image-tools/gce_vm_image_export:release")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(first < last, "{text}");
}

/// Calls the stand-in took for `project`, per API (discovery name).
fn calls(project: &str) -> Value {
    gcp().stats()["calls_by_project"][project].clone()
}

/// A caller without `serviceusage.services.get`: the error names the permission and the option
/// that turns the check off, before anything is made; with the option the export runs.
#[test]
fn a_403_from_service_usage_names_the_permission_and_the_option() {
    let p = "hs-su-denied";
    project_with_disk(p, "410987654321", "sud-1");
    edit(p, json!({"services_denied": true}));
    let src = format!("projects/{p}/zones/{ZONE}/disks/sud-1");
    let (r, _o) = export(&src, json!({}));
    let e = r.error().unwrap();
    assert_eq!(e.kind, hypersdk::ErrorKind::Auth, "{}", r.to_json());
    assert!(
        e.message.contains("serviceusage.services.get")
            && e.message.contains("skip_prerequisite_check"),
        "{}",
        e.message
    );
    assert!(gcp().images_made_of("sud-1").is_empty());
    let (r, _o) = export(&src, json!({"skip_prerequisite_check": true}));
    assert_eq!(r.status, "done", "{}", r.to_json());
}

/// A conditional binding counts as holding its role, as in gcloud (daisy_utils
/// `_CurrentRolesForAccount` reads `binding.role` whatever its `condition`), which is only seen
/// in a policy read at version 3 (`projects_api.GetIamPolicy` asks for it): read at version 1,
/// IAM names the role `{role}_withcond_{hash}`.
#[test]
fn a_conditional_binding_holds_its_role_as_gcloud_reads_it() {
    let (p, n) = ("hs-cond-proj", "510987654321");
    project_with_disk(p, n, "cond-1");
    let member = "serviceAccount:{number}@cloudbuild.gserviceaccount.com";
    edit(
        p,
        json!({"remove_role": {"member": member, "role": "roles/compute.admin"},
               "add_conditional_role": {"member": member, "role": "roles/compute.admin",
                   "condition": {"title": "until 2100",
                                 "expression": "request.time < timestamp('2100-01-01T00:00:00Z')"}}}),
    );
    let (r, _o) = export(
        &format!("projects/{p}/zones/{ZONE}/disks/cond-1"),
        json!({}),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
}

/// `reuse_object` with the object of an earlier run there: no prerequisite check, no scratch
/// bucket, no registry probe, no build — only the object is read.
#[test]
fn reuse_object_checks_and_makes_nothing_when_the_object_is_there() {
    let (p, n) = ("hs-reuse-proj", "610987654321");
    project_with_disk(p, n, "reu-1");
    let src = format!("projects/{p}/zones/{ZONE}/disks/reu-1");
    let (r, _o) = export(&src, json!({"reuse_object": true}));
    assert_eq!(r.status, "done", "{}", r.to_json());
    let first = calls(p);
    assert!(
        first["cloudresourcemanager.v1"].as_u64() >= Some(2)
            && first["serviceusage.v1"].as_u64() >= Some(3),
        "the first run checked nothing: {first}"
    );
    let builds = gcp().builds_of("hs-reu-1-").len();
    let (r, out) = export(&src, json!({"reuse_object": true}));
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert!(out.path().join("reu-1.vmdk").exists());
    let second = calls(p);
    for api in [
        "cloudresourcemanager.v1",
        "serviceusage.v1",
        "cloudbuild.v1",
    ] {
        assert_eq!(second[api], first[api], "{api}: {first} then {second}");
    }
    assert_eq!(gcp().builds_of("hs-reu-1-").len(), builds);
    assert!(
        gcp().images_made_of("reu-1").len() == 1,
        "an image was made again"
    );
}

/// The listing of a zone names its region's regional disks too (`regionDisks.list`), with
/// their size and "regional" in their state.
#[test]
fn the_listing_names_regional_disks() {
    let g = gcp();
    g.disk_with(
        "lst-regional",
        1 << 20,
        9,
        json!({"region": "europe-west1", "size_gb": 20, "users": ["instances/x"]}),
    );
    g.disk_with(
        "lst-other-region",
        1 << 20,
        9,
        json!({"region": "us-east1"}),
    );
    let all = client()
        .list_sources(&json!({"project": PROJECT, "zone": ZONE}).to_string())
        .unwrap();
    let d = all
        .iter()
        .find(|s| s.name == "lst-regional")
        .unwrap_or_else(|| panic!("no regional disk listed: {all:?}"));
    assert_eq!(
        d.id,
        format!("projects/{PROJECT}/regions/europe-west1/disks/lst-regional")
    );
    assert_eq!(d.kind, "disk");
    assert_eq!(d.size_bytes, Some(20 << 30));
    assert_eq!(d.state.as_deref(), Some("READY (regional, attached)"));
    assert!(
        !all.iter().any(|s| s.name == "lst-other-region"),
        "another region's disk listed"
    );
}

/// Item 6: a custom role in place of a predefined one counts when it holds the predefined
/// role's permissions, as gcloud compares them (daisy_utils `_FindMissingRoles`, IAM
/// `roles.get`); one that lacks a permission is named with the predefined role to grant.
#[test]
fn a_custom_role_with_the_permissions_holds_the_role() {
    let (p, n) = ("hs-custom-proj", "710987654321");
    project_with_disk(p, n, "cus-1");
    let member = "serviceAccount:{number}@cloudbuild.gserviceaccount.com";
    let perms = |role: &str| -> Vec<String> {
        // The predefined role's permissions as the stand-in's IAM answers them.
        let url = format!("{}/v1/{role}", gcp().url());
        let body: Value = support::block_on_peer(async move {
            let http = reqwest::Client::new();
            let tok = support::gcp::access_token(&http, &gcp().url()).await;
            http.get(url)
                .bearer_auth(tok)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        });
        body["includedPermissions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect()
    };
    let all = perms("roles/compute.admin");
    let custom = format!("projects/{p}/roles/exportCompute");
    edit(
        p,
        json!({"custom_role": {"name": custom, "permissions": all[1..]},
               "remove_role": {"member": member, "role": "roles/compute.admin"},
               "add_role": {"member": member, "role": custom}}),
    );
    let src = format!("projects/{p}/zones/{ZONE}/disks/cus-1");
    // One permission short: named, with the predefined role that grants it.
    let (r, _o) = export(&src, json!({}));
    let e = r.error().unwrap();
    assert!(
        e.message.contains(&format!(
            "serviceAccount:{n}@cloudbuild.gserviceaccount.com lacks roles/compute.admin"
        )),
        "{}",
        e.message
    );
    assert!(gcp().images_made_of("cus-1").is_empty());
    // All of them: the custom role holds roles/compute.admin.
    edit(
        p,
        json!({"custom_role": {"name": custom, "permissions": all}}),
    );
    let (r, _o) = export(&src, json!({}));
    assert_eq!(r.status, "done", "{}", r.to_json());
}

/// A needed role IAM does not know (here every roles.get answers 404: an iam_endpoint that is
/// not IAM) is an error naming the role and iam_endpoint — not a role every account holds, which
/// would let the check pass having verified nothing.
#[test]
fn a_needed_role_iam_does_not_know_is_an_error_not_held() {
    let (p, n) = ("hs-iam-404", "710987650404");
    project_with_disk(p, n, "i404-1");
    let member = "serviceAccount:{number}@cloudbuild.gserviceaccount.com";
    let custom = format!("projects/{p}/roles/exportCompute");
    edit(
        p,
        json!({"custom_role": {"name": custom, "permissions": ["compute.disks.get"]},
               "remove_role": {"member": member, "role": "roles/compute.admin"},
               "add_role": {"member": member, "role": custom}}),
    );
    let cfg = gcp().config(json!({"iam_endpoint": format!("{}/not-iam/", gcp().url())}));
    let out = tempfile::tempdir().unwrap();
    let src = format!("projects/{p}/zones/{ZONE}/disks/i404-1");
    let r = wait(
        &Client::new("gcp", &cfg)
            .unwrap()
            .start_export(&src, &gopts(out.path(), json!({})), None)
            .unwrap(),
    );
    let e = r.error().unwrap_or_else(|| panic!("{}", r.to_json()));
    assert!(
        e.message.contains("roles/compute.admin") && e.message.contains("iam_endpoint"),
        "{}",
        e.message
    );
    assert!(gcp().images_made_of("i404-1").is_empty());
}
