//! Azure disk reads the disk service checks beyond Azurite's own (tests/peers/azure/blob_proxy.py
//! in front of Azurite): Entra ID on a disk's SAS (`dataAccessAuthMode: AzureActiveDirectory`)
//! and Get Page Ranges that time out over too large a span.
#![cfg(feature = "azure")]

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use hypersdk::{Client, ErrorKind};
use serde_json::json;
use support::azure::azure;
use support::opts;
use support::wait_long as wait;

/// A fixed VHD (qemu-img) of a 40 MiB disk with data in three regions, and its bytes.
fn fixture() -> &'static (PathBuf, Vec<u8>) {
    static F: OnceLock<(PathBuf, Vec<u8>)> = OnceLock::new();
    F.get_or_init(|| {
        let dir = azure().dir.path();
        let raw = dir.join("access.raw");
        let mut data = vec![0u8; 40 << 20];
        for (at, len, seed) in [
            (512 << 10, 200_000, 4u64),
            (17 << 20, 4096, 6),
            (33 << 20, 3 << 20, 8),
        ] {
            data[at..at + len].copy_from_slice(&support::server::pattern(len, seed));
        }
        std::fs::write(&raw, &data).unwrap();
        let path = dir.join("access.vhd");
        let ok = Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed"])
            .arg(&raw)
            .arg(&path)
            .status()
            .expect("qemu-img (apt: qemu-utils)")
            .success();
        assert!(ok, "qemu-img convert failed");
        let bytes = std::fs::read(&path).unwrap();
        (path, bytes)
    })
}

fn client() -> Client {
    Client::new("azure", &azure().config()).unwrap()
}

/// A counter of one disk in the stand-in (0 when it never moved).
fn stat(disk: &str, k: &str) -> u64 {
    azure().disk(disk)[k].as_u64().unwrap_or(0)
}

/// A disk with `dataAccessAuthMode: AzureActiveDirectory` is read with its SAS and an Entra ID
/// token for Azure Storage on every request; the disk service refuses its SAS alone (401
/// NoAuthenticationInformation). The export's snapshot of such a disk keeps the mode.
#[test]
fn a_disk_readable_only_with_entra_id_gets_a_storage_token_beside_its_sas() {
    let az = azure();
    let (path, bytes) = fixture();
    az.add("disks", "entra-1", path, "Unattached", None);
    az.faults(
        "entra-1",
        json!({"data_access_auth_mode": "AzureActiveDirectory"}),
    );
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export("entra-1", &opts(out.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(&std::fs::read(&r.files[0].path).unwrap(), bytes);
    assert!(
        stat("entra-1", "entra_reads") >= 2,
        "{}",
        az.disk("entra-1")
    );
    assert_eq!(
        stat("entra-1", "entra_refused"),
        0,
        "{}",
        az.disk("entra-1")
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&r.to_json()).unwrap()["disks"][0]["data_access_auth_mode"],
        "AzureActiveDirectory",
        "{}",
        r.to_json()
    );

    // The stand-in holds the service's side: the SAS alone is refused, with its code.
    let sas = az.disk("entra-1")["last_sas"].as_str().unwrap().to_string();
    let (status, code) = support::block_on_peer(async {
        let c = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(az.ca_pem.as_bytes()).unwrap())
            .build()
            .unwrap();
        let resp = c
            .get(&sas)
            .header("x-ms-version", "2021-08-06")
            .send()
            .await
            .unwrap();
        let code = resp
            .headers()
            .get("x-ms-error-code")
            .map(|v| v.to_str().unwrap().to_string());
        (resp.status().as_u16(), code)
    });
    assert_eq!(
        (status, code.as_deref()),
        (401, Some("NoAuthenticationInformation"))
    );

    // Attached: exported through a snapshot that is also readable only with Entra ID.
    az.add("disks", "entra-att", path, "Attached", None);
    az.faults(
        "entra-att",
        json!({"data_access_auth_mode": "AzureActiveDirectory"}),
    );
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(
                "entra-att",
                &opts(out.path(), json!({"poll_interval_ms": 50})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(&std::fs::read(&r.files[0].path).unwrap(), bytes);
    let d = az.disk("entra-att");
    assert_eq!(
        d["snapshot_data_access_auth_mode"], "AzureActiveDirectory",
        "{d}"
    );
    assert!(stat("entra-att", "entra_reads") >= 2, "{d}");
    assert_eq!(d["snapshots_left"], json!([]), "{d}");
}

/// Get Page Ranges over a span the service cannot list in time answers 500
/// OperationTimedOut (the stand-in's threshold here: 8 MiB of a 40 MiB blob): segments under it
/// get through and fetch exactly the disk; segments over it fail with the service's code.
#[test]
fn page_ranges_are_listed_in_segments_the_service_can_answer() {
    let az = azure();
    let (path, bytes) = fixture();
    az.add("disks", "pagelist-1", path, "Unattached", None);
    az.faults("pagelist-1", json!({"pagelist_max_span": 8 << 20}));
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(
                "pagelist-1",
                &opts(out.path(), json!({"page_ranges_segment_mib": 4})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(&std::fs::read(&r.files[0].path).unwrap(), bytes);
    let d = az.disk("pagelist-1");
    assert_eq!(stat("pagelist-1", "pagelist_timeouts"), 0, "{d}");
    assert!(stat("pagelist-1", "pagelist_calls") >= 10, "{d}");
    assert!(stat("pagelist-1", "pagelist_max_asked") <= 4 << 20, "{d}");

    // One listing of the whole blob (segments larger than it) is what the service refuses.
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(
                "pagelist-1",
                &opts(out.path(), json!({"page_ranges_segment_mib": 64})),
                None,
            )
            .unwrap(),
    );
    let e = r.error().unwrap_or_else(|| panic!("{}", r.to_json()));
    assert!(e.message.contains("OperationTimedOut"), "{e:?}");
    assert_ne!(e.kind, ErrorKind::InvalidArgument, "{e:?}");
    assert!(stat("pagelist-1", "pagelist_timeouts") >= 1);
    assert_eq!(stat("pagelist-1", "active_policies"), 0, "revoked");
}

/// A disk's SAS given as a blob URL cannot say the disk is readable only with Entra ID: the
/// service's 401 NoAuthenticationInformation does, and the reads then carry a Storage token.
#[test]
fn a_sas_url_the_service_wants_a_token_with_is_read_with_one() {
    let az = azure();
    let (path, bytes) = fixture();
    az.add("disks", "entra-url", path, "Unattached", None);
    az.faults(
        "entra-url",
        json!({"data_access_auth_mode": "AzureActiveDirectory"}),
    );
    let sas = az.sas("entra-url");
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client()
            .start_export(&sas, &opts(out.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(&std::fs::read(&r.files[0].path).unwrap(), bytes);
    let d = az.disk("entra-url");
    assert_eq!(
        stat("entra-url", "entra_refused"),
        1,
        "only the first look: {d}"
    );
    assert!(stat("entra-url", "entra_reads") >= 2, "{d}");
}
