//! GCP exports through the safe Rust API against fake-gcs-server (real objects, ranges, crc32c,
//! generations) behind the Compute + Cloud Build stand-in of tests/peers/gcp, which converts
//! disks with qemu-img when a build succeeds and checks a bearer token on every call.
#![cfg(feature = "gcp")]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hypersdk::{Client, ErrorKind, Phase};
use serde_json::{Value, json};
use support::gcp::{BUCKET, PROJECT, ZONE, client, gcp, gopts};
use support::wait_long as wait;
use support::{Recorder, wait_until};

/// Nothing at a final name in the output folder (temp files may stay).
fn no_final_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().to_string();
        assert!(n.contains(".hspart"), "{n} was left at a final name");
    }
}

fn object_exists(bucket: &str, object: &str) -> bool {
    let url = format!(
        "http://127.0.0.1:{}/storage/v1/b/{bucket}/o/{}",
        gcp().gcs_port,
        object.replace('/', "%2F")
    );
    support::block_on_peer(async { reqwest::get(url).await.unwrap().status().is_success() })
}

fn upload(object: &str, bytes: &[u8]) {
    let g = gcp();
    let p = g
        .dir
        .path()
        .join(format!("up-{}", object.replace('/', "_")));
    std::fs::write(&p, bytes).unwrap();
    g.admin(
        "object",
        json!({"bucket": BUCKET, "object": object, "path": p}),
    );
}

/// The object name (in the bucket) the export of file `i` wrote to, from the result.
fn gs_object(r: &hypersdk::ExportResult, i: usize) -> String {
    let x = r.provider["exports"][i]["object"].as_str().unwrap();
    x.strip_prefix(&format!("gs://{BUCKET}/"))
        .unwrap()
        .to_string()
}

#[test]
fn attached_disk_to_vmdk_through_image_and_build_then_image_deleted() {
    let g = gcp();
    let raw = g.disk("web-disk-1", 3 << 20, 21, &["instances/web-1"]);
    let out = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let e = client()
        .start_export(
            "web-disk-1",
            &gopts(out.path(), json!({})),
            Some(rec.callback()),
        )
        .unwrap();
    let r = wait(&e);
    assert_eq!(r.status, "done", "{}", r.to_json());
    let file = out.path().join("web-disk-1.vmdk");
    assert_eq!(
        g.raw_of(&file),
        raw,
        "the VMDK does not hold the disk's bytes"
    );
    assert_eq!(r.files[0].checksum.as_ref().unwrap().algorithm, "crc32c");
    let phases = rec.check();
    assert!(phases.contains(&Phase::WaitingForCloud), "{phases:?}");
    // The build ran the step and arguments gcloud uses.
    let builds = g.builds_of("hs-web-disk-1-");
    assert_eq!(builds.len(), 1, "{builds:?}");
    let b = &builds[0];
    // compute-image-import's exporter, from the Artifact Registry of the zone's region, in a
    // build of that region (gcloud's choice; gcr.io/compute-image-tools is its deprecated
    // fallback, which the stand-in refuses).
    assert_eq!(
        b["step"],
        "europe-west1-docker.pkg.dev/compute-image-import/wrappers/gce_vm_image_export:release"
    );
    assert_eq!(b["location"], "europe-west1");
    let args: Vec<&str> = b["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"-format=vmdk"), "{args:?}");
    assert!(args.contains(&"-client_id=api"), "{args:?}");
    assert!(args.contains(&"-zone=europe-west1-b"), "{args:?}");
    assert!(
        args.iter()
            .any(|a| a.starts_with("-client_version=hypersdk-")),
        "{args:?}"
    );
    // The scratch bucket is made by the library (gcloud's name: the project, the destination
    // bucket's location), not left to the build's account.
    assert!(
        args.contains(&"-scratch_bucket_gcs_path=gs://hs-test-proj-daisy-bkt-us-central1/"),
        "{args:?}"
    );
    let mut sorted = args.clone();
    sorted.sort();
    assert_eq!(args, sorted, "gcloud sorts the exporter's arguments");
    // The object's name is this run's own: `{prefix}{disk}-{tag}.{ext}`.
    let object = gs_object(&r, 0);
    assert!(
        object.starts_with("exports/web-disk-1-") && object.ends_with(".vmdk"),
        "{object}"
    );
    assert!(
        args.contains(&format!("-destination_uri=gs://hs-exports/{object}").as_str()),
        "{args:?}"
    );
    assert!(
        args.iter().any(|a| a.starts_with(&format!(
            "-source_image=projects/{PROJECT}/global/images/hs-web-disk-1-"
        ))),
        "{args:?}"
    );
    // The temporary image is gone; the exported object stays (no delete_object_after_download).
    assert!(g.live_images_of("web-disk-1").is_empty());
    let x = &r.provider["exports"][0];
    assert_eq!(
        (x["image_temporary"].as_bool(), x["image_deleted"].as_bool()),
        (Some(true), Some(true)),
        "{x}"
    );
    assert!(object_exists(BUCKET, &object));
}

#[test]
fn image_to_qcow2_needs_no_temporary_image_and_object_can_be_deleted() {
    let g = gcp();
    let raw = support::server::pattern(2 << 20, 23);
    let p = g.dir.path().join("golden.raw");
    std::fs::write(&p, &raw).unwrap();
    g.admin(
        "image",
        json!({"project": PROJECT, "name": "golden-1", "raw": p}),
    );
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(
                &format!("projects/{PROJECT}/global/images/golden-1"),
                &gopts(
                    out.path(),
                    json!({"format": "qcow2", "delete_object_after_download": true}),
                ),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(g.raw_of(&out.path().join("golden-1.qcow2")), raw);
    assert_eq!(r.provider["images_made"], 0);
    assert_eq!(r.provider["exports"][0]["object_deleted"], true);
    assert!(
        !object_exists(BUCKET, &gs_object(&r, 0)),
        "the object outlived delete_object_after_download"
    );
}

#[test]
fn instance_exports_every_disk_boot_first() {
    let g = gcp();
    let boot = g.disk("app-1-boot", 2 << 20, 31, &["instances/app-1"]);
    let data = g.disk("app-1-data", 1 << 20, 37, &["instances/app-1"]);
    g.admin(
        "instance",
        json!({"project": PROJECT, "zone": ZONE, "name": "app-1",
               "disks": [{"name": "app-1-data", "boot": false}, {"name": "app-1-boot", "boot": true}]}),
    );
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(
                "instance:app-1",
                &gopts(out.path(), json!({"format": "vhdx"})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    let names: Vec<&str> = r.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["app-1-boot.vhdx", "app-1-data.vhdx"]);
    assert_eq!(g.raw_of(&out.path().join("app-1-boot.vhdx")), boot);
    assert_eq!(g.raw_of(&out.path().join("app-1-data.vhdx")), data);
    assert!(g.live_images_of("app-1-boot").is_empty() && g.live_images_of("app-1-data").is_empty());
    assert_eq!(r.provider["images_deleted"], 2);
}

#[test]
fn gs_object_downloads_with_crc32c_and_a_lying_crc32c_is_caught() {
    let bytes = support::server::pattern((5 << 20) + 123, 41);
    upload("plain/disk.img", &bytes);
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(
                &format!("gs://{BUCKET}/plain/disk.img"),
                &gopts(out.path(), json!({})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(std::fs::read(out.path().join("disk.img")).unwrap(), bytes);
    assert_eq!(
        r.files[0].checksum.as_ref().unwrap().value,
        format!("{:08x}", crc32c::crc32c(&bytes))
    );

    upload("plain/liar.img", &bytes);
    gcp().admin(
        "lie_crc32c",
        json!({"object": format!("{BUCKET}/plain/liar.img")}),
    );
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(
                &format!("gs://{BUCKET}/plain/liar.img"),
                &gopts(out.path(), json!({})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "failed");
    assert_eq!(
        r.error().unwrap().kind,
        ErrorKind::Verification,
        "{}",
        r.to_json()
    );
    no_final_files(out.path());
}

#[test]
fn a_failed_build_is_a_clear_error_and_the_image_is_still_deleted() {
    let g = gcp();
    g.disk("broken-1", 1 << 20, 43, &[]);
    g.faults(
        "broken-1",
        json!({"build_fails": "step 0 failed: the export workflow could not read the disk"}),
    );
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export("broken-1", &gopts(out.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.status, "failed");
    let err = r.error().unwrap();
    assert!(
        err.message.contains("could not read the disk") && err.message.contains("FAILURE"),
        "{}",
        err.message
    );
    assert!(
        g.live_images_of("broken-1").is_empty(),
        "the temporary image outlived a failed build"
    );
    no_final_files(out.path());
}

/// Cancels once `ready` holds and checks cleanup: image gone, build cancelled when running, no
/// object left, nothing at a final name, one terminal callback.
fn cancel_when(
    disk: &str,
    faults: Value,
    extra: Value,
    ready: impl Fn(&hypersdk::Progress) -> bool,
) -> hypersdk::ExportResult {
    let g = gcp();
    g.disk(disk, 6 << 20, 47, &[]);
    g.faults(disk, faults);
    let out = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let e = client()
        .start_export(disk, &gopts(out.path(), extra), Some(rec.callback()))
        .unwrap();
    wait_until(&e, "the moment to cancel", ready);
    e.cancel();
    let r = wait(&e);
    assert_eq!(r.status, "cancelled", "{}", r.to_json());
    rec.check();
    assert!(
        g.live_images_of(disk).is_empty(),
        "the temporary image outlived the cancel"
    );
    for b in g.builds_of(&format!("hs-{disk}-")) {
        assert_ne!(
            b["status"], "WORKING",
            "a build still runs after the cancel: {b}"
        );
        assert_ne!(
            b["status"], "QUEUED",
            "a build still runs after the cancel: {b}"
        );
    }
    if let Some(x) = r.provider["exports"][0]["object"].as_str() {
        let object = x.strip_prefix(&format!("gs://{BUCKET}/")).unwrap();
        assert!(
            !object_exists(BUCKET, object),
            "the exported object outlived the cancel"
        );
    }
    no_final_files(out.path());
    r
}

#[test]
fn cancel_during_image_creation_deletes_the_image() {
    let r = cancel_when("hold-img", json!({"hold_image": true}), json!({}), |p| {
        p.phase == Phase::WaitingForCloud && p.message.contains("creating image")
    });
    assert_eq!(r.provider["images_deleted"], 1, "{}", r.to_json());
    assert!(gcp().builds_of("hs-hold-img-").is_empty());
}

#[test]
fn cancel_during_the_build_cancels_it() {
    let r = cancel_when("hold-build", json!({"hold_build": true}), json!({}), |p| {
        p.message.contains("Cloud Build")
    });
    assert_eq!(r.provider["builds_cancelled"], 1, "{}", r.to_json());
    let b = gcp().builds_of("hs-hold-build-");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0]["status"], "CANCELLED");
}

#[test]
fn cancel_during_the_download_removes_the_object_and_the_image() {
    let r = cancel_when(
        "slow-dl",
        json!({}),
        json!({"max_bytes_per_second": 400_000, "keep_partial": false}),
        |p| p.phase == Phase::Downloading && p.bytes_done > 0,
    );
    assert_eq!(
        r.provider["exports"][0]["object_deleted"],
        true,
        "{}",
        r.to_json()
    );
}

#[test]
fn a_replaced_object_starts_over_on_resume() {
    let first = support::server::pattern(4 << 20, 51);
    upload("replace/obj.img", &first);
    let out = tempfile::tempdir().unwrap();
    let o = gopts(
        out.path(),
        json!({"max_bytes_per_second": 1_000_000, "part_size": 262144, "parts_in_flight": 2}),
    );
    let e = client()
        .start_export(&format!("gs://{BUCKET}/replace/obj.img"), &o, None)
        .unwrap();
    wait_until(&e, "bytes", |p| p.bytes_done > 1 << 20);
    e.cancel();
    assert_eq!(wait(&e).status, "cancelled");
    assert!(support::journal_covered(&out.path().join("obj.img.hspart.journal")) > 0);
    let second = support::server::pattern(4 << 20, 53);
    upload("replace/obj.img", &second);
    let r = wait(
        &client()
            .start_export(
                &format!("gs://{BUCKET}/replace/obj.img"),
                &gopts(out.path(), json!({})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(r.bytes_resumed, 0, "bytes of the old object were kept");
    assert_eq!(std::fs::read(out.path().join("obj.img")).unwrap(), second);
}

#[test]
fn kill_9_then_resume_fetches_only_what_is_missing() {
    let g = gcp();
    let bytes = support::server::pattern(8 << 20, 57);
    upload("crash/disk.img", &bytes);
    let fetch = support::fetch_example();
    let out = tempfile::tempdir().unwrap();
    let conf = g.dir.path().join("gcp-config.json");
    std::fs::write(&conf, g.config(json!({}))).unwrap();
    let mut child = Command::new(&fetch)
        .arg("--provider")
        .arg("gcp")
        .arg("--config")
        .arg(format!("@{}", conf.display()))
        .arg("--options")
        .arg(
            json!({"part_size": 262144, "max_part_size": 262144, "parts_in_flight": 2, "max_bytes_per_second": 1_500_000})
                .to_string(),
        )
        .arg(out.path())
        .arg(format!("gs://{BUCKET}/crash/disk.img"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    support::kill_when_journal_covers(
        &mut child,
        &out.path().join("disk.img.hspart.journal"),
        2 << 20,
    );
    let r = wait(
        &client()
            .start_export(
                &format!("gs://{BUCKET}/crash/disk.img"),
                &gopts(out.path(), json!({})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert!(r.bytes_resumed >= 2 << 20, "resumed {}", r.bytes_resumed);
    assert!(
        r.bytes_fetched <= bytes.len() as u64 - r.bytes_resumed + (1 << 20),
        "fetched {}",
        r.bytes_fetched
    );
    assert_eq!(std::fs::read(out.path().join("disk.img")).unwrap(), bytes);
}

#[test]
fn wrong_project_is_not_found_and_missing_credentials_are_auth() {
    let out = tempfile::tempdir().unwrap();
    let src = "projects/no-such-proj/zones/europe-west1-b/disks/web-disk-1";
    // The disk is read before the project's prerequisites (Resource Manager would answer a
    // project that does not exist with 403): Compute's 404, with the check or without it.
    let r = wait(
        &client()
            .start_export(src, &gopts(out.path(), json!({})), None)
            .unwrap(),
    );
    let e = r.error().unwrap();
    assert_eq!(e.kind, ErrorKind::NotFound, "{}", r.to_json());
    assert!(e.message.contains("no-such-proj"), "{}", e.message);
    let r = wait(
        &client()
            .start_export(
                src,
                &gopts(out.path(), json!({"skip_prerequisite_check": true})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(
        r.error().unwrap().kind,
        ErrorKind::NotFound,
        "{}",
        r.to_json()
    );

    // No credentials at all: every call is refused.
    let anon = Client::new(
        "gcp",
        &gcp().config(json!({"credentials_json": null, "anonymous": true})),
    )
    .unwrap();
    let r = wait(
        &anon
            .start_export("web-disk-1", &gopts(out.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.error().unwrap().kind, ErrorKind::Auth, "{}", r.to_json());
    // A login the token endpoint refuses.
    let revoked = Client::new(
        "gcp",
        &gcp().config(json!({"credentials_json": gcp().credentials("rt-revoked")})),
    )
    .unwrap();
    let r = wait(
        &revoked
            .start_export(
                &format!("gs://{BUCKET}/plain/disk.img"),
                &gopts(out.path(), json!({})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.error().unwrap().kind, ErrorKind::Auth, "{}", r.to_json());
    assert!(!r.to_json().contains("cs-good"), "the client secret leaked");
    no_final_files(out.path());
}

#[test]
fn bad_input_is_refused_before_anything_starts() {
    let out = tempfile::tempdir().unwrap();
    let c = client();
    for (src, o) in [
        ("a'b\"c; rm -rf /", json!({})),
        ("web-disk-1", json!({"format": "raw"})),
        ("instance:app-1", json!({"file_name": "one.vmdk"})),
        ("gs://UPPER/x", json!({})),
    ] {
        let e = c.start_export(src, &gopts(out.path(), o.clone()), None);
        let Err(e) = e else {
            panic!("{src} {o} was accepted")
        };
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{src}: {e}");
    }
    let nobucket = Client::new("gcp", &gcp().config(json!({"bucket": null}))).unwrap();
    let Err(e) = nobucket.start_export("web-disk-1", &gopts(out.path(), json!({})), None) else {
        panic!("an export without a bucket was accepted")
    };
    assert!(e.to_string().contains("bucket"), "{e}");
}

#[test]
fn list_shows_instances_disks_images_and_objects_with_filters() {
    let g = gcp();
    g.disk("lst-disk-1", 1 << 20, 61, &["instances/lst-vm"]);
    g.admin(
        "instance",
        json!({"project": PROJECT, "zone": ZONE, "name": "lst-vm", "disks": [{"name": "lst-disk-1", "boot": true}]}),
    );
    upload("lst/a.img", b"abc");
    let c = client();
    let all = c
        .list_sources(&json!({"bucket": BUCKET, "prefix": "lst/"}).to_string())
        .unwrap();
    let has = |kind: &str, id: &str| all.iter().any(|s| s.kind == kind && s.id == id);
    assert!(
        has(
            "instance",
            &format!("projects/{PROJECT}/zones/{ZONE}/instances/lst-vm")
        ),
        "{all:?}"
    );
    assert!(
        has(
            "disk",
            &format!("projects/{PROJECT}/zones/{ZONE}/disks/lst-disk-1")
        ),
        "{all:?}"
    );
    assert!(
        has("object", &format!("gs://{BUCKET}/lst/a.img")),
        "{all:?}"
    );
    let disks = c
        .list_sources(&json!({"kind": "disk", "name_contains": "LST-DISK"}).to_string())
        .unwrap();
    assert!(
        !disks.is_empty()
            && disks
                .iter()
                .all(|s| s.kind == "disk" && s.name.contains("lst-disk")),
        "{disks:?}"
    );
    for bad in [
        json!({"region": "x"}),
        json!({"kind": "bucket"}),
        json!({"zone": 3}),
    ] {
        let e = c.list_sources(&bad.to_string()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}: {e}");
    }
    // Listing needs the same credentials as exporting.
    let anon = Client::new(
        "gcp",
        &g.config(json!({"credentials_json": null, "anonymous": true})),
    )
    .unwrap();
    assert_eq!(anon.list_sources("").unwrap_err().kind(), ErrorKind::Auth);
}

/// Issue 25, item 6: cleanup deletes only what this run wrote. The user keeps an earlier
/// export at the name exports used to get (`{prefix}{disk}.vmdk`); an export of a disk of that
/// name that is cancelled during its build, or whose build fails, before the object's metadata
/// was read, must leave it (the old cleanup read "whatever is at the destination now" and
/// deleted it).
#[test]
fn an_object_the_user_kept_survives_a_cancelled_and_a_failed_export() {
    let g = gcp();
    let kept = support::server::pattern(1 << 20, 71);
    upload("exports/kept-1.vmdk", &kept);
    upload("exports/kept-2.vmdk", &kept);
    let r = cancel_when("kept-1", json!({"hold_build": true}), json!({}), |p| {
        p.message.contains("Cloud Build")
    });
    assert_eq!(r.provider["builds_cancelled"], 1, "{}", r.to_json());
    assert!(
        object_exists(BUCKET, "exports/kept-1.vmdk"),
        "the cancelled export's cleanup deleted the user's object"
    );
    g.disk("kept-2", 1 << 20, 73, &[]);
    g.faults("kept-2", json!({"build_fails": "step 0 failed"}));
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export("kept-2", &gopts(out.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.status, "failed", "{}", r.to_json());
    assert!(
        object_exists(BUCKET, "exports/kept-2.vmdk"),
        "the failed export's cleanup deleted the user's object"
    );
    assert_ne!(gs_object(&r, 0), "exports/kept-2.vmdk");
}

/// Issue 25, item 4: a bucket listing whose every page names the same `nextPageToken` (the
/// stand-in's hostile switch) ends with an error naming the listing, after two pages, instead
/// of never returning.
#[test]
fn a_gcs_listing_that_repeats_its_page_token_is_stopped() {
    let g = gcp();
    let p = g.dir.path().join("loop-obj");
    std::fs::write(&p, b"abc").unwrap();
    g.admin(
        "object",
        json!({"bucket": "hs-loop", "object": "l/a.img", "path": p}),
    );
    g.faults("list:hs-loop", json!({"page_token_loop": true}));
    let before = g.stats()["list_loop_gets"].as_u64().unwrap_or(0);
    let c = Client::new("gcp", &g.config(json!({"project": null, "zone": null}))).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(c.list_sources(&json!({"bucket": "hs-loop", "prefix": "l/"}).to_string()));
    });
    let r = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the listing did not end within 60 s");
    let e = r.expect_err("a listing that repeats its token must fail");
    assert_eq!(e.kind(), ErrorKind::Remote, "{e}");
    assert!(e.to_string().contains("gs://hs-loop/l/"), "{e}");
    assert!(e.to_string().contains("earlier page"), "{e}");
    let gets = g.stats()["list_loop_gets"].as_u64().unwrap_or(0) - before;
    assert!(gets <= 3, "the listing was fetched {gets} times");
}

/// Issue 25, item 5: Compute answers are read through our client, capped. The stand-in's
/// hostile switch answers every poll of the image's operation with a JSON body that never ends
/// (chunked, up to 1 GiB): the export fails promptly with an error naming the operation, having
/// taken a few MiB of it, not the whole body (the SDK read it whole: 1–2 GiB of RSS), and the
/// temporary image is still deleted.
#[test]
fn an_endless_compute_answer_is_cut_at_the_cap_and_the_export_fails_naming_the_call() {
    let g = gcp();
    g.disk("huge-1", 1 << 20, 47, &[]);
    g.faults("huge-1", json!({"huge_op_poll": true}));
    let before = g.stats()["huge_bytes_sent"].as_u64().unwrap_or(0);
    let out = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    let r = wait(
        &client()
            .start_export("huge-1", &gopts(out.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.status, "failed");
    let err = r.error().unwrap();
    assert!(
        err.message.contains("operation operation-") && err.message.contains("larger than"),
        "{}",
        err.message
    );
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "took {:?}",
        t.elapsed()
    );
    // The stand-in counts once its writes fail (the client hung up).
    let mut sent = 0;
    for _ in 0..200 {
        sent = g.stats()["huge_bytes_sent"].as_u64().unwrap_or(0) - before;
        if sent > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(sent > 0, "the stand-in never sent the endless answer");
    eprintln!(
        "endless answer: the client took {} MiB, failed after {:?}",
        sent >> 20,
        t.elapsed()
    );
    assert!(
        sent < 64 << 20,
        "the client took {} MiB of an endless answer",
        sent >> 20
    );
    assert!(
        g.live_images_of("huge-1").is_empty(),
        "the temporary image outlived the failed export"
    );
    no_final_files(out.path());
}

/// images.insert carries a `requestId`, so it is sent again like a read: when Compute made the
/// image but the answer was lost (a 500 backendError), the retry with the same id is answered
/// with the original operation (Compute's contract, held by the stand-in) and the export goes
/// on with one image made, not a failure or a second image.
#[test]
fn an_image_insert_whose_answer_was_lost_is_retried_with_its_request_id() {
    let g = gcp();
    let raw = g.disk("lost-1", 1 << 20, 53, &[]);
    g.faults("lost-1", json!({"insert_lost_answer": true}));
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(
                "lost-1",
                &gopts(out.path(), json!({"format": "qcow2"})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    let made: Vec<String> = g.stats()["images_made_names"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str().map(str::to_string))
        .filter(|n| n.starts_with("hs-lost-1-"))
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    assert!(g.live_images_of("lost-1").is_empty());
    assert_eq!(g.raw_of(&out.path().join("lost-1.qcow2")), raw);
}
