//! The AWS export-task path as a real account meets it (issue 29, items 6–9), against the moto
//! peer (tests/peers/moto): EC2's eventual consistency, tasks AWS ends itself, SSE-KMS objects,
//! a user holding exactly AWS's documented VM Import/Export policy.
#![cfg(feature = "aws")]

mod support;

use hypersdk::{Client, ErrorKind};
use serde_json::json;
use support::moto::moto;
use support::opts;
use support::wait_long as wait;

/// The test user: exactly AWS's documented VM Import/Export policy.
fn client() -> Client {
    Client::new("aws", &moto().config()).unwrap()
}

fn admin() -> Client {
    Client::new("aws", &moto().admin_config()).unwrap()
}

fn task(id: &str) -> serde_json::Value {
    moto()
        .tasks()
        .into_iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("the peer has no task {id}"))
}

/// Right after the create call EC2 may not know the task (`…NotFound`) or leave it out of the
/// answer: the wait goes on (the peer hides each task from its first two describe calls).
#[test]
fn a_task_ec2_does_not_show_yet_is_waited_for() {
    let m = moto();
    for (source, prefix) in [
        (m.s("instance_id"), "lagging/"),
        (m.s("instance_id"), "lagempty/"),
        (m.s("image_id"), "lagging/"),
        (m.s("image_id"), "lagempty/"),
    ] {
        let out = tempfile::tempdir().unwrap();
        let o = opts(
            out.path(),
            json!({"s3_bucket": "exports", "s3_prefix": prefix, "poll_interval_ms": 50}),
        );
        let r = wait(&client().start_export(&source, &o, None).unwrap());
        assert_eq!(r.status, "done", "{source} {prefix}: {}", r.to_json());
        let t = task(r.provider["task_id"].as_str().unwrap());
        assert_eq!(t["hidden"], 2, "the peer did not hide the task: {t}");
        assert_eq!(std::fs::read(&r.files[0].path).unwrap(), m.fixture);
    }
}

/// A task AWS ends itself (`cancelled`, `deleted` for image tasks) fails the export with AWS's
/// reason, and cleanup does not cancel it again.
#[test]
fn a_task_aws_ended_reports_its_reason_and_is_not_cancelled_again() {
    let m = moto();
    for source in [m.s("instance_id"), m.s("image_id")] {
        let out = tempfile::tempdir().unwrap();
        let o = opts(
            out.path(),
            json!({"s3_bucket": "exports", "s3_prefix": "doomed/", "poll_interval_ms": 50}),
        );
        let r = wait(&client().start_export(&source, &o, None).unwrap());
        let err = r.error().unwrap_or_else(|| panic!("{}", r.to_json()));
        assert_eq!(err.kind, ErrorKind::Remote, "{}", err.message);
        assert!(
            err.message
                .contains("Unsupported kernel version 5.10.0-aws"),
            "AWS's reason is not reported: {}",
            err.message
        );
        assert!(!err.message.contains("outside hypersdk"), "{}", err.message);
        let t = task(r.provider["task_id"].as_str().unwrap());
        assert!(
            t.get("cancel_calls").is_none(),
            "CancelExportTask was sent for a task that had ended: {t}"
        );
    }
}

/// A user set up by AWS's guide (exactly the documented VM Import/Export policy: no
/// s3:ListBucket) exports an instance and an AMI; the peer enforces the policy (the same user
/// cannot list the bucket).
#[test]
fn the_documented_vm_import_export_policy_is_enough() {
    let m = moto();
    for source in [m.s("instance_id"), m.s("image_id")] {
        let out = tempfile::tempdir().unwrap();
        let o = opts(
            out.path(),
            json!({"s3_bucket": "exports", "s3_prefix": "policy/", "poll_interval_ms": 50}),
        );
        let r = wait(&client().start_export(&source, &o, None).unwrap());
        assert_eq!(r.status, "done", "{source}: {}", r.to_json());
        assert_eq!(std::fs::read(&r.files[0].path).unwrap(), m.fixture);
    }
    let e = client()
        .list_sources(&json!({"bucket": "exports"}).to_string())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    // A bucket that does not exist is still a clear error.
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(
                &m.s("instance_id"),
                &opts(out.path(), json!({"s3_bucket": "no-such-bucket"})),
                None,
            )
            .unwrap(),
    );
    let err = r.error().unwrap();
    assert!(
        matches!(err.kind, ErrorKind::NotFound | ErrorKind::Auth)
            && err.message.contains("no-such-bucket"),
        "{}",
        err.message
    );
}

/// S3 asks for kms:Decrypt when HeadObject's checksum mode meets an SSE-KMS object: the HEAD is
/// asked again without it, and the object downloads (its size verified).
#[test]
fn an_sse_kms_object_downloads_without_kms_decrypt() {
    let m = moto();
    let data = support::server::pattern(1 << 20, 41);
    m.put_with(
        "exports",
        "kms/disk.raw",
        data.clone(),
        "checksum=sha256&sse=aws:kms",
    );
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(
                "s3://exports/kms/disk.raw",
                &opts(out.path(), json!({})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(std::fs::read(out.path().join("disk.raw")).unwrap(), data);
    // With kms:Decrypt (the admin) the checksum comes back and is verified.
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &admin()
            .start_export(
                "s3://exports/kms/disk.raw",
                &opts(out.path(), json!({})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(
        r.files[0].checksum.as_ref().map(|c| c.algorithm),
        Some("sha256")
    );
}

/// S3's default checksum for new objects, CRC-64/NVME, is read and verified; a corrupted copy
/// is caught.
#[test]
fn a_crc64nvme_checksum_is_verified() {
    let m = moto();
    let data = support::server::pattern(2 << 20, 43);
    m.put_with(
        "exports",
        "crc64/disk.raw",
        data.clone(),
        "checksum=crc64nvme",
    );
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(
                "s3://exports/crc64/disk.raw",
                &opts(out.path(), json!({})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(
        r.files[0].checksum.as_ref().map(|c| c.algorithm),
        Some("crc64nvme"),
        "{}",
        r.to_json()
    );
    m.corrupt("exports", "crc64/disk.raw");
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(
                "s3://exports/crc64/disk.raw",
                &opts(out.path(), json!({})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(
        r.error().unwrap().kind,
        ErrorKind::Verification,
        "{}",
        r.to_json()
    );
}

/// The standard endpoint variables: `AWS_ENDPOINT_URL_EC2`/`_S3` before `AWS_ENDPOINT_URL`
/// (here a port nothing listens on), with no endpoint in the config (a child process: the
/// environment is its own; the credentials come from the environment too).
#[test]
fn endpoint_variables_are_honoured_service_first() {
    let m = moto();
    let out = tempfile::tempdir().unwrap();
    let dead = "http://127.0.0.1:9";
    let status = std::process::Command::new(support::fetch_example())
        .args([
            "--provider",
            "aws",
            "--config",
            r#"{"region": "us-east-1"}"#,
        ])
        .arg("--options")
        .arg(
            json!({"s3_bucket": "exports", "s3_prefix": "env/", "poll_interval_ms": 50})
                .to_string(),
        )
        .arg(out.path())
        .arg(m.s("instance_id"))
        .env("AWS_ENDPOINT_URL", dead)
        .env("AWS_ENDPOINT_URL_EC2", m.s("endpoint"))
        .env("AWS_ENDPOINT_URL_S3", m.s("endpoint"))
        .env("AWS_ACCESS_KEY_ID", m.s("access_key_id"))
        .env("AWS_SECRET_ACCESS_KEY", m.s("secret_access_key"))
        .env_remove("AWS_PROFILE")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the export through the variables failed");
    let files: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::read(&files[0]).unwrap(), m.fixture);
}

/// A service's endpoint key in the config wins over `endpoint_url`.
#[test]
fn a_services_endpoint_key_wins() {
    let m = moto();
    let data = support::server::pattern(300_000, 44);
    m.put("exports", "perservice/disk.raw", data.clone(), false);
    let cfg = json!({"region": "us-east-1", "endpoint_url": "http://127.0.0.1:9",
                     "endpoint_url_s3": m.s("endpoint"),
                     "access_key_id": m.s("access_key_id"), "secret_access_key": m.s("secret_access_key")});
    let c = Client::new("aws", &cfg.to_string()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &c.start_export(
            "s3://exports/perservice/disk.raw",
            &opts(out.path(), json!({})),
            None,
        )
        .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(std::fs::read(out.path().join("disk.raw")).unwrap(), data);
}

/// The partition table is botocore's file as shipped (the venv's botocore).
#[test]
fn the_partition_table_is_botocores() {
    let _ = moto();
    let out = std::process::Command::new(support::moto::python())
        .args([
            "-c",
            "import botocore, os, sys; sys.stdout.write(open(os.path.join(os.path.dirname(botocore.__file__), 'data', 'partitions.json')).read())",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours: serde_json::Value =
        serde_json::from_str(include_str!("../src/providers/aws/partitions.json")).unwrap();
    assert_eq!(
        ours, theirs,
        "src/providers/aws/partitions.json differs from botocore's: copy it again"
    );
}

/// Keys XML 1.0 cannot carry, or that an XML reader changes (a carriage return becomes a line
/// feed, a control character is refused), come back intact: ListObjectsV2 asks for
/// `encoding-type=url` and decodes.
#[test]
fn listed_keys_come_back_intact() {
    let m = moto();
    let keys = [
        "enc/cr\rlf.raw",
        "enc/ctl\u{1}.raw",
        "enc/plus+and space.raw",
        "enc/pct%41.raw",
    ];
    for k in keys {
        let q: String = url::form_urlencoded::byte_serialize(k.as_bytes()).collect();
        m.put("exports", &q, vec![1u8; 10], false);
    }
    let all = Client::new("aws", &m.admin_config())
        .unwrap()
        .list_sources(&json!({"bucket": "exports", "prefix": "enc/"}).to_string())
        .unwrap();
    let mut got: Vec<&str> = all
        .iter()
        .filter(|s| s.kind == "object")
        .map(|s| s.name.as_str())
        .collect();
    got.sort();
    let mut want = keys.to_vec();
    want.sort();
    assert_eq!(got, want);
}

/// `list` follows DescribeImages' NextToken (the peer answers at most two images a page).
#[test]
fn own_images_are_listed_across_pages() {
    let m = moto();
    let all = client()
        .list_sources(&json!({"kind": "image"}).to_string())
        .unwrap();
    let mut got: Vec<&str> = all.iter().map(|s| s.id.as_str()).collect();
    got.sort();
    let mut want: Vec<&str> = m.info["own_image_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    want.sort();
    assert_eq!(got, want);
}

/// A key with a `..` segment is not silently fetched as another object (a URL parser would
/// turn `a/../plain/x` into `plain/x`): a clear error naming the key.
#[test]
fn a_key_with_dot_segments_is_not_another_object() {
    let m = moto();
    m.put("exports", "dots/x.raw", vec![5u8; 100], false);
    let out = tempfile::tempdir().unwrap();
    let r = client().start_export(
        "s3://exports/other/../dots/x.raw",
        &opts(out.path(), json!({})),
        None,
    );
    let err = match r {
        Err(e) => (e.kind(), e.to_string()),
        Ok(e) => {
            let r = wait(&e);
            let err = r
                .error()
                .unwrap_or_else(|| panic!("fetched: {}", r.to_json()));
            (err.kind, err.message.clone())
        }
    };
    assert_eq!(err.0, ErrorKind::InvalidArgument, "{}", err.1);
    assert!(err.1.contains("other/../dots/x.raw"), "{}", err.1);
}

/// A bucket in another region than the configured one: S3's 301 names it
/// (`x-amz-bucket-region`), and the object is read there (HEAD, listing, ranged GETs).
#[test]
fn a_bucket_in_another_region_is_followed() {
    let m = moto();
    let data = support::server::pattern(700_000, 45);
    m.put("exports-west", "west/disk.raw", data.clone(), false);
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &admin()
            .start_export(
                "s3://exports-west/west/disk.raw",
                &opts(out.path(), json!({})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(std::fs::read(out.path().join("disk.raw")).unwrap(), data);
    let all = admin()
        .list_sources(&json!({"bucket": "exports-west", "prefix": "west/"}).to_string())
        .unwrap();
    assert!(
        all.iter()
            .any(|s| s.id == "s3://exports-west/west/disk.raw"),
        "{all:?}"
    );
}
