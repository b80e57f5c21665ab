//! Issue 30's second part: the exporter image gcloud chooses (Artifact Registry, then gcr.io),
//! the prerequisite check's own refusals (a 403 from Service Usage, a conditional IAM binding),
//! `reuse_object` making nothing, regional disks in the listing — against fake-gcs-server behind
//! the stand-in of tests/peers/gcp (its registry_model.py serves the two registries). A test
//! that marks a registry's image missing uses a region of its own: the peer is shared by the
//! tests of this process.
#![cfg(feature = "gcp")]

mod support;

use std::path::Path;

use hypersdk::Client;
use serde_json::{Value, json};
use support::gcp::{PROJECT, ZONE, gcp};
use support::opts;
use support::wait_long as wait;

fn client() -> Client {
    Client::new("gcp", &gcp().config(json!({}))).unwrap()
}

fn gopts(dir: &Path, extra: Value) -> String {
    let mut o = json!({"poll_interval_ms": 50});
    for (k, v) in extra.as_object().unwrap() {
        o[k] = v.clone();
    }
    opts(dir, o)
}

fn export(src: &str, extra: Value) -> (hypersdk::ExportResult, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(src, &gopts(out.path(), extra), None)
            .unwrap(),
    );
    (r, out)
}

fn edit(project: &str, e: Value) {
    let mut b = json!({"project": project});
    for (k, v) in e.as_object().unwrap() {
        b[k] = v.clone();
    }
    gcp().admin("project", b);
}

/// A disk of its own in `zone`; its export's source id.
fn disk_in(zone: &str, name: &str) -> String {
    gcp().disk_with(name, 1 << 20, 11, json!({"zone": zone}));
    format!("projects/{PROJECT}/zones/{zone}/disks/{name}")
}

/// The step (builder image) of the one build of `disk`'s export.
fn step_of(disk: &str) -> String {
    let b = gcp().builds_of(&format!("hs-{disk}-"));
    assert_eq!(b.len(), 1, "{b:?}");
    b[0]["step"].as_str().unwrap().to_string()
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
