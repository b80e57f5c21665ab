//! Issue 30: GCP on a real project — prerequisites checked before anything is made, the exporter
//! gcloud runs with its network and service account, timeouts sized to the disk, regional
//! disks, deleting exactly the exported generation, metadata edits mid-download — against
//! fake-gcs-server behind the stand-in of tests/peers/gcp, which holds every request to Google's
//! discovery documents. Tests that edit a project's services or roles use a project of their
//! own (the peer is shared by the tests of this process).
#![cfg(feature = "gcp")]

mod support;

use hypersdk::ErrorKind;
use serde_json::{Value, json};
use support::gcp::{BUCKET, PROJECT, ZONE, client, edit, export, gcp, gopts, project_with_disk};
use support::wait_long as wait;
use support::wait_until;

/// Item 1: a disabled service or a missing role is named, with the command that grants it,
/// before any image or build is made; `skip_prerequisite_check` skips the check (the build then
/// fails as the exporter would); an account that cannot read the IAM policy is told about it.
#[test]
fn missing_services_and_roles_are_named_before_anything_is_made() {
    let (p, n) = ("hs-prereq-proj", "210987654321");
    project_with_disk(p, n, "pre-1");
    let g = gcp();
    let src = format!("projects/{p}/zones/{ZONE}/disks/pre-1");
    edit(p, json!({"disable_service": "logging.googleapis.com"}));
    let (r, _o) = export(&src, json!({}));
    let e = r.error().unwrap();
    assert_eq!(e.kind, ErrorKind::InvalidState, "{}", r.to_json());
    assert!(
        e.message.contains(&format!(
            "gcloud services enable logging.googleapis.com --project={p}"
        )),
        "{}",
        e.message
    );
    assert!(
        g.images_made_of("pre-1").is_empty(),
        "an image was made before the check"
    );
    edit(
        p,
        json!({"enable_service": "logging.googleapis.com",
               "remove_role": {"member": "serviceAccount:{number}@cloudbuild.gserviceaccount.com",
                               "role": "roles/compute.admin"}}),
    );
    let (r, _o) = export(&src, json!({}));
    let e = r.error().unwrap();
    assert_eq!(e.kind, ErrorKind::InvalidState, "{}", r.to_json());
    assert!(
        e.message.contains(&format!(
            "gcloud projects add-iam-policy-binding {p} --member=serviceAccount:{n}@cloudbuild.gserviceaccount.com --role=roles/compute.admin"
        )),
        "{}",
        e.message
    );
    assert!(g.images_made_of("pre-1").is_empty());
    // Skipped: the build fails later, as the exporter would (the stand-in's model).
    let (r, _o) = export(&src, json!({"skip_prerequisite_check": true}));
    let e = r.error().unwrap();
    assert_eq!(e.kind, ErrorKind::Remote, "{}", r.to_json());
    assert!(e.message.contains("FAILURE"), "{}", e.message);
    assert!(g.live_images_of("pre-1").is_empty());
    // No getIamPolicy right: the error says which option turns the check off.
    edit(p, json!({"iam_denied": true}));
    let (r, _o) = export(&src, json!({}));
    let e = r.error().unwrap();
    assert_eq!(e.kind, ErrorKind::Auth, "{}", r.to_json());
    assert!(
        e.message.contains("skip_prerequisite_check"),
        "{}",
        e.message
    );
}

/// Item 2: a project without a `default` network: the exporter's VM needs `network`; the
/// Compute default service account without roles: `compute_service_account` names another,
/// and the check holds that one to the roles.
#[test]
fn network_and_compute_service_account_reach_the_exporter() {
    let (p, n) = ("hs-net-proj", "310987654321");
    let raw = project_with_disk(p, n, "net-1");
    let sa = format!("exporter@{p}.iam.gserviceaccount.com");
    edit(
        p,
        json!({"remove_network": "default", "add_network": "prod-net",
               "remove_role": {"member": "serviceAccount:{number}-compute@developer.gserviceaccount.com",
                               "role": "roles/editor"},
               "add_role": {"member": format!("serviceAccount:{sa}"), "role": "roles/compute.storageAdmin"}}),
    );
    edit(
        p,
        json!({"add_role": {"member": format!("serviceAccount:{sa}"), "role": "roles/storage.objectAdmin"}}),
    );
    let src = format!("projects/{p}/zones/{ZONE}/disks/net-1");
    // The default account lacks its roles now: named before anything is made.
    let (r, _o) = export(&src, json!({"network": "prod-net"}));
    let e = r.error().unwrap();
    assert!(
        e.message.contains(&format!(
            "{n}-compute@developer.gserviceaccount.com lacks roles/compute.storageAdmin"
        )),
        "{}",
        e.message
    );
    // Without `network`, the exporter looks for `default`, which this project has not.
    let (r, _o) = export(&src, json!({"compute_service_account": sa}));
    let e = r.error().unwrap();
    assert!(
        e.message.contains("networks/default") && e.message.contains("FAILURE"),
        "{}",
        e.message
    );
    let (r, out) = export(
        &src,
        json!({"compute_service_account": sa, "network": "prod-net", "format": "qcow2"}),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(gcp().raw_of(&out.path().join("net-1.qcow2")), raw);
    let b = gcp().builds_of("hs-net-1-");
    let args = b.last().unwrap()["args"].to_string();
    assert!(args.contains("\"-network=prod-net\""), "{args}");
    assert!(
        args.contains(&format!("\"-compute_service_account={sa}\"")),
        "{args}"
    );
}

/// Item 3: the default timeout follows the disk (12 h per TB, at least 2 h, at most Cloud
/// Build's 24 h); a build that times out says what to set; a timeout past 24 h is refused.
#[test]
fn timeouts_follow_the_disk_and_a_timed_out_build_says_what_to_set() {
    let g = gcp();
    for (disk, gb, want) in [
        ("tmo-small", 10, 7_200u64),
        ("tmo-1000", 1_000, 42_187),
        ("tmo-4096", 4_096, 86_400),
    ] {
        g.disk_with(disk, 1 << 20, 5, json!({"zone": ZONE, "size_gb": gb}));
        let (r, _o) = export(disk, json!({}));
        assert_eq!(r.status, "done", "{}", r.to_json());
        let b = &g.builds_of(&format!("hs-{disk}-"))[0];
        assert_eq!(b["timeout"], format!("{want}s"), "{disk}: {b}");
    }
    g.disk_with(
        "tmo-end",
        1 << 20,
        5,
        json!({"zone": ZONE, "size_gb": 3000}),
    );
    g.faults("tmo-end", json!({"build_ends": "TIMEOUT"}));
    let (r, _o) = export("tmo-end", json!({}));
    let e = r.error().unwrap();
    assert_eq!(e.kind, ErrorKind::Timeout, "{}", r.to_json());
    assert!(
        e.message.contains("timeout_secs") && e.message.contains("86400"),
        "{}",
        e.message
    );
    assert!(g.live_images_of("tmo-end").is_empty());
    let out = tempfile::tempdir().unwrap();
    let Err(e) = client().start_export(
        "tmo-end",
        &gopts(out.path(), json!({"timeout_secs": 90_000})),
        None,
    ) else {
        panic!("a timeout past Cloud Build's 24 hours was accepted")
    };
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}

/// Item 4: a regional persistent disk, attached to an instance or named by itself.
#[test]
fn regional_disks_export_alone_and_with_their_instance() {
    let g = gcp();
    let boot = g.disk("rvm-boot", 1 << 20, 61, &["instances/rvm"]);
    let shared = g.disk_with(
        "rvm-shared",
        2 << 20,
        67,
        json!({"region": "europe-west1", "users": ["instances/rvm"]}),
    );
    g.admin(
        "instance",
        json!({"project": PROJECT, "zone": ZONE, "name": "rvm",
               "disks": [{"name": "rvm-boot", "boot": true},
                         {"name": "rvm-shared", "boot": false, "region": "europe-west1"}]}),
    );
    let (r, out) = export("instance:rvm", json!({"format": "qcow2"}));
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(g.raw_of(&out.path().join("rvm-boot.qcow2")), boot);
    assert_eq!(g.raw_of(&out.path().join("rvm-shared.qcow2")), shared);
    assert_eq!(
        r.provider["exports"][1]["disk"],
        format!("projects/{PROJECT}/regions/europe-west1/disks/rvm-shared")
    );
    let (r, out) = export(
        &format!("projects/{PROJECT}/regions/europe-west1/disks/rvm-shared"),
        json!({"format": "qcow2", "file_name": "alone.qcow2"}),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(g.raw_of(&out.path().join("alone.qcow2")), shared);
}

/// Every version (live and noncurrent) of an object in fake-gcs-server.
fn versions(bucket: &str, object: &str) -> Vec<String> {
    let url = format!(
        "http://127.0.0.1:{}/storage/v1/b/{bucket}/o?versions=true&prefix={object}",
        gcp().gcs_port
    );
    let v: Value =
        support::block_on_peer(async { reqwest::get(url).await.unwrap().json().await.unwrap() });
    v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|o| o["name"] == object)
                .map(|o| o["generation"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn upload_to(bucket: &str, object: &str, bytes: &[u8]) {
    let g = gcp();
    let p = g
        .dir
        .path()
        .join(format!("up-{bucket}-{}", object.replace('/', "_")));
    std::fs::write(&p, bytes).unwrap();
    g.admin(
        "object",
        json!({"bucket": bucket, "object": object, "path": p}),
    );
}

/// Item 5: in a versioned bucket, deleting the downloaded object names its generation: no
/// noncurrent copy stays, and a newer live object written during the download is not touched
/// (a precondition on the live object kept the one and failed on the other).
#[test]
fn the_delete_removes_exactly_the_downloaded_generation_in_a_versioned_bucket() {
    let g = gcp();
    g.admin(
        "bucket",
        json!({"name": "hs-versioned", "versioning": true}),
    );
    let first = support::server::pattern(3 << 20, 71);
    upload_to("hs-versioned", "v/a.img", &first);
    let (r, out) = export(
        "gs://hs-versioned/v/a.img",
        json!({"delete_object_after_download": true}),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(std::fs::read(out.path().join("a.img")).unwrap(), first);
    assert_eq!(
        versions("hs-versioned", "v/a.img"),
        Vec::<String>::new(),
        "a noncurrent version of the deleted object stayed"
    );
    // A newer object written while the old one downloads stays; the old one goes.
    upload_to("hs-versioned", "v/b.img", &first);
    let out = tempfile::tempdir().unwrap();
    let e = client()
        .start_export(
            "gs://hs-versioned/v/b.img",
            &gopts(
                out.path(),
                json!({"delete_object_after_download": true, "max_bytes_per_second": 1_000_000}),
            ),
            None,
        )
        .unwrap();
    wait_until(&e, "bytes", |p| p.bytes_done > 0);
    let second = support::server::pattern(1 << 20, 73);
    upload_to("hs-versioned", "v/b.img", &second);
    let live = versions("hs-versioned", "v/b.img");
    let r = wait(&e);
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert!(r.cleanup_error.is_none(), "{}", r.to_json());
    assert_eq!(std::fs::read(out.path().join("b.img")).unwrap(), first);
    let left = versions("hs-versioned", "v/b.img");
    assert_eq!(left.len(), 1, "{left:?} (before the delete: {live:?})");
    assert_ne!(
        Some(&left[0]),
        r.provider["exports"][0]["generation"]
            .as_str()
            .map(str::to_string)
            .as_ref(),
        "the downloaded generation stayed, or the newer one went"
    );
}

/// Item 6: a label edit moves the object's metageneration, and Cloud Storage's JSON API ETag
/// with it; the generation (pinned in every request) is the same bytes, so a resume keeps what
/// it has instead of starting over.
#[test]
fn a_label_edit_between_runs_does_not_restart_the_download() {
    let g = gcp();
    let bytes = support::server::pattern(4 << 20, 79);
    upload_to(BUCKET, "label/disk.img", &bytes);
    let out = tempfile::tempdir().unwrap();
    let o = gopts(
        out.path(),
        json!({"max_bytes_per_second": 1_000_000, "part_size": 262144, "parts_in_flight": 2}),
    );
    let src = format!("gs://{BUCKET}/label/disk.img");
    let e = client().start_export(&src, &o, None).unwrap();
    wait_until(&e, "bytes", |p| p.bytes_done > 1 << 20);
    e.cancel();
    assert_eq!(wait(&e).status, "cancelled");
    let kept = support::journal_covered(&out.path().join("disk.img.hspart.journal"));
    assert!(kept > 0);
    g.admin(
        "label",
        json!({"bucket": BUCKET, "object": "label/disk.img"}),
    );
    let r = wait(
        &client()
            .start_export(&src, &gopts(out.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert!(
        r.bytes_resumed >= kept,
        "resumed {} of {kept} kept bytes: the label edit restarted the download",
        r.bytes_resumed
    );
    assert_eq!(std::fs::read(out.path().join("disk.img")).unwrap(), bytes);
    // A label edit while the parts are being fetched: no part is refused, nothing starts over.
    let out = tempfile::tempdir().unwrap();
    let o = gopts(
        out.path(),
        json!({"max_bytes_per_second": 1_000_000, "part_size": 262144, "parts_in_flight": 2}),
    );
    let served = || {
        g.stats()[&format!("media_bytes:{BUCKET}/label/disk.img")]
            .as_u64()
            .unwrap_or(0)
    };
    let before = served();
    let e = client().start_export(&src, &o, None).unwrap();
    wait_until(&e, "bytes", |p| p.bytes_done > 1 << 20);
    g.admin(
        "label",
        json!({"bucket": BUCKET, "object": "label/disk.img"}),
    );
    let r = wait(&e);
    assert_eq!(r.status, "done", "{}", r.to_json());
    // The object once and the one-byte probe (one part of slack for a retried part on a
    // loaded machine); a start-over serves most of the object again.
    let sent = served() - before;
    assert!(
        sent <= bytes.len() as u64 + 1 + 262_144,
        "{sent} bytes served for {} : a label edit mid-download restarted it",
        bytes.len()
    );
    assert_eq!(std::fs::read(out.path().join("disk.img")).unwrap(), bytes);
}

/// Item 7: the stand-in refuses what Google refuses — an unknown field, a wrong type, an
/// unknown query parameter (Google's 400 INVALID_ARGUMENT with the field), and a build of the
/// deprecated compute-image-tools exporter where gcloud would run compute-image-import's (the
/// builder choice itself: tests/gcp_project.rs).
#[test]
fn the_stand_in_refuses_what_google_refuses() {
    let g = gcp();
    let base = g.url();
    support::block_on_peer(async move {
        let http = reqwest::Client::new();
        let bearer = format!("Bearer {}", support::gcp::access_token(&http, &base).await);
        let builds = format!("{base}/v1/projects/{PROJECT}/locations/europe-west1/builds");
        let export = |name: &str| {
            json!({"steps": [{"name": name, "args": [
                "-source_image=projects/p/global/images/i", "-destination_uri=gs://b/o", "-format=vmdk"]}]})
        };
        for (url, body, field) in [
            (
                builds.clone(),
                json!({"steps": [{"name": "x", "argz": []}]}),
                "steps[0].argz",
            ),
            (
                builds.clone(),
                json!({"steps": [{"name": "x"}], "timeout": 7200}),
                "timeout",
            ),
            (
                format!("{base}/compute/v1/projects/{PROJECT}/global/images?force=true"),
                json!({"name": "i", "sourceDisk": "d"}),
                "force",
            ),
        ] {
            let r = http
                .post(url)
                .header("Authorization", &bearer)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400, "{body}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["status"], "INVALID_ARGUMENT", "{v}");
            assert_eq!(
                v["error"]["details"][0]["fieldViolations"][0]["field"], field,
                "{v}"
            );
        }
        let r = http
            .post(&builds)
            .header("Authorization", &bearer)
            .json(&export(
                "gcr.io/compute-image-tools/gce_vm_image_export:release",
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "the deprecated exporter was accepted");
    });
}
