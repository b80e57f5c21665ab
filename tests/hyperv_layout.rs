//! A full Hyper-V export's layout is what Hyper-V wrote (issue 28 item 7): the VM folder in
//! staging is read after the export, every disk file there is checked and moves with it, and
//! the names the library watched while Hyper-V wrote are only its expectation. Against the
//! stand-in of tests/peers/hyperv. Each test fails without the fix it is named after (see the
//! commit messages).
#![cfg(feature = "hyperv")]

mod support;

use hypersdk::{Client, ErrorKind};
use serde_json::json;
use support::hyperv::{HyperV, disks, hv_opts, only, raw_of, vm, vm_with_checkpoints};
use support::wait_long as wait;

const ID1: &str = "6f1c2a3b-0d4e-4f5a-8b9c-0d1e2f3a4b5c";

#[test]
fn a_full_export_takes_the_files_as_hyperv_named_them_not_as_predicted() {
    // Hyper-V writes disk0's base file and a checkpoint file of disk1's chain under names of
    // its own; the library expected the host's names.
    let hv = HyperV::new(json!({"vms": [vm_with_checkpoints("named", ID1, 1, json!({
        "rename_files": {"disk0.vhdx": "disk0-Hyper-V.vhdx"},
    }))]}));
    let client = Client::new("hyperv", &hv.config(json!({}))).unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client
            .start_export(
                "named",
                &hv_opts(out.path(), json!({"include_snapshots": true})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    only(out.path(), &["named"]);
    let folder = out.path().join("named/Virtual Hard Disks");
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.contains(&"disk0-Hyper-V.vhdx".to_string()),
        "{names:?}"
    );
    assert!(!names.contains(&"disk0.vhdx".to_string()), "{names:?}");
    assert_eq!(raw_of(&folder.join("disk0-Hyper-V.vhdx")), disks()[0].raw);
    // Every file Hyper-V wrote was checked, under its own name; nothing else.
    let verified = r.provider["verified"].as_array().unwrap();
    let mut checked: Vec<&str> = verified
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    checked.sort();
    assert_eq!(
        checked,
        names.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let renamed = verified
        .iter()
        .find(|v| v["name"] == "disk0-Hyper-V.vhdx")
        .unwrap();
    assert_eq!(renamed["unexpected"], true, "{renamed}");
    assert_eq!(renamed["structure"], "vhdx", "{renamed}");
    // The files the engine watched and found are reported; the one never written is not.
    assert!(
        r.files.iter().all(|f| f.name != "disk0.vhdx"),
        "{}",
        r.to_json()
    );
    assert_eq!(r.files.len(), names.len() - 1, "{}", r.to_json());
}

#[test]
fn a_full_export_checks_every_disk_file_hyperv_wrote_even_one_it_did_not_expect() {
    for corrupt in [false, true] {
        let hv = HyperV::new(json!({"vms": [vm("extra", ID1, json!({
            "extra_file": {"name": "late.vhdx", "corrupt": corrupt},
        }))]}));
        let client = Client::new("hyperv", &hv.config(json!({}))).unwrap();
        let out = tempfile::tempdir().unwrap();
        let r = wait(
            &client
                .start_export("extra", &hv_opts(out.path(), json!({})), None)
                .unwrap(),
        );
        if corrupt {
            assert_eq!(r.status, "failed", "{}", r.to_json());
            let err = r.error().unwrap();
            assert_eq!(err.kind, ErrorKind::Verification, "{}", err.message);
            assert!(err.message.contains("late.vhdx"), "{}", err.message);
            only(out.path(), &[]);
        } else {
            assert_eq!(r.status, "done", "{}", r.to_json());
            let late = r.provider["verified"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == "late.vhdx")
                .cloned()
                .unwrap_or_else(|| panic!("late.vhdx was not checked: {}", r.to_json()));
            assert_eq!(late["unexpected"], true);
            assert_eq!(late["structure"], "vhdx");
            assert!(
                out.path()
                    .join("extra/Virtual Hard Disks/late.vhdx")
                    .is_file()
            );
        }
    }
}

/// `capture_live_state` (Export-VM's `-CaptureLiveState`) reaches Hyper-V's export settings
/// when the running VM itself is exported, and is refused, before anything starts, where the
/// export reads a checkpoint or the value is none of Export-VM's.
#[test]
fn capture_live_state_reaches_the_export_settings_of_a_live_export_only() {
    let hv = HyperV::new(json!({"vms": [vm_with_checkpoints("live", ID1, 1, json!({}))]}));
    let client = Client::new("hyperv", &hv.config(json!({}))).unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client
            .start_export(
                "live",
                &hv_opts(
                    out.path(),
                    json!({"include_snapshots": true, "capture_live_state": "CaptureCrashConsistentState"}),
                ),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    let sent: Vec<String> = hv
        .calls()
        .iter()
        .filter(|c| c["script"] == "export")
        .map(|c| {
            c["input"]["export_setting_data"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].contains("<PROPERTY NAME=\"CaptureLiveState\" TYPE=\"uint8\"><VALUE>0</VALUE>"),
        "{}",
        sent[0]
    );
    for bad in [
        json!({"capture_live_state": "CaptureSavedState"}),
        json!({"export_type": "vhd-only", "capture_live_state": "CaptureSavedState"}),
        json!({"include_snapshots": true, "capture_live_state": "Hibernate"}),
    ] {
        let e = client
            .start_export("live", &hv_opts(out.path(), bad.clone()), None)
            .err()
            .unwrap_or_else(|| panic!("{bad} was taken"));
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}: {e}");
        assert!(e.to_string().contains("capture_live_state"), "{e}");
    }
}
