//! Hyper-V exports through the safe Rust API against the PowerShell + Hyper-V stand-in of
//! tests/peers/hyperv (no PowerShell exists on our machines): the library's real scripts are
//! decoded, parsed and matched by the stand-in, which then acts as Hyper-V would.
#![cfg(feature = "hyperv")]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use hypersdk::{Client, ErrorKind, Phase};
use serde_json::{Value, json};
use support::Recorder;
use support::hyperv::{HyperV, alive, disks, group_members, hv_opts, only, raw_of, vm};
use support::wait_long as wait;

const ID1: &str = "6f1c2a3b-0d4e-4f5a-8b9c-0d1e2f3a4b5c";

fn checkpoints(hv: &HyperV) -> Vec<Value> {
    hv.state()["checkpoints"].as_array().unwrap().clone()
}

#[test]
fn full_export_lays_out_the_vm_with_real_progress_and_removes_its_checkpoint() {
    let name = "web-01 ü $(whoami)";
    let hv = HyperV::new(
        json!({"vms": [vm(name, ID1, json!({"write_delay_ms": 15, "chunk": 131072}))]}),
    );
    let client = Client::new("hyperv", &hv.config(json!({}))).unwrap();
    let out = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let e = client
        .start_export(name, &hv_opts(out.path(), json!({})), Some(rec.callback()))
        .unwrap();
    let r = wait(&e);
    assert_eq!(r.status, "done", "{}", r.to_json());
    only(out.path(), &[name]);
    let folder = out.path().join(name);
    for (i, d) in disks().iter().enumerate() {
        let f = folder.join(format!("Virtual Hard Disks/disk{i}.vhdx"));
        assert_eq!(std::fs::read(&f).unwrap(), std::fs::read(&d.vhdx).unwrap());
        assert_eq!(raw_of(&f), d.raw, "disk{i} does not hold the VM's bytes");
    }
    assert!(
        folder
            .join(format!("Virtual Machines/{}.vmcx", ID1.to_uppercase()))
            .is_file()
    );
    assert_eq!(r.files.len(), 2);
    assert_eq!(r.provider["folder"], json!(folder));
    assert_eq!(r.provider["checkpoint"]["made"], true, "{}", r.to_json());
    assert_eq!(r.provider["checkpoint"]["removed"], true);
    assert!(checkpoints(&hv).is_empty(), "{:?}", hv.state());
    assert_eq!(r.provider["verified"].as_array().unwrap().len(), 2);

    // Progress: totals are the disks' real sizes from the first byte on, and bytes rise
    // through values read from the growing files.
    let phases = rec.check();
    assert!(phases.contains(&Phase::Downloading), "{phases:?}");
    let total: u64 = disks()
        .iter()
        .map(|d| std::fs::metadata(&d.vhdx).unwrap().len())
        .sum();
    let ev = rec.events.lock().unwrap().clone();
    let downloading: Vec<_> = ev
        .iter()
        .filter(|p| p.phase == Phase::Downloading)
        .collect();
    assert_eq!(downloading[0].bytes_total, total, "{:?}", downloading[0]);
    let between: std::collections::BTreeSet<u64> = downloading
        .iter()
        .map(|p| p.bytes_done)
        .filter(|&b| b > 0 && b < total)
        .collect();
    assert!(
        between.len() >= 3,
        "too few intermediate sizes: {between:?}"
    );
    assert!(
        ev.iter().any(|p| p.message.contains("Hyper-V export")),
        "Hyper-V's percent never reached the message"
    );
    assert_eq!(rec.last().bytes_done, total);
}

#[test]
fn hostile_vm_names_reach_powershell_as_data_only() {
    let names = [
        "a'b\"c",
        "$(whoami)",
        "x; Remove-Item -Recurse /",
        "ünïcødé 名前 `n",
    ];
    let ids = [
        "00000000-0000-4000-8000-000000000001",
        "00000000-0000-4000-8000-000000000002",
        "00000000-0000-4000-8000-000000000003",
        "00000000-0000-4000-8000-000000000004",
    ];
    let hv = HyperV::new(
        json!({"vms": names.iter().zip(ids).map(|(n, id)| vm(n, id, json!({}))).collect::<Vec<_>>()}),
    );
    let client = Client::new("hyperv", &hv.config(json!({}))).unwrap();
    for (n, id) in names.iter().zip(ids) {
        let out = tempfile::tempdir().unwrap();
        let r = wait(
            &client
                .start_export(
                    n,
                    &hv_opts(out.path(), json!({"export_type": "vhd-only"})),
                    None,
                )
                .unwrap(),
        );
        if n.contains(['"', '/']) {
            // Export-VMSnapshot (vhd-only's first step) names a folder after the VM: Windows
            // has no folder of this name. Refused before anything starts.
            assert_eq!(r.status, "failed", "{n}: {}", r.to_json());
            assert_eq!(r.error().unwrap().kind, ErrorKind::Unsupported, "{n}");
            assert_eq!(r.provider["vm"]["id"], id, "{n}: the wrong VM was found");
            only(out.path(), &[]);
            continue;
        }
        assert_eq!(r.status, "done", "{n}: {}", r.to_json());
        assert_eq!(r.provider["vm"]["id"], id, "{n}: the wrong VM was exported");
        only(out.path(), &["disk0.vhdx", "disk1.vhdx"]);
        for (i, d) in disks().iter().enumerate() {
            assert_eq!(
                raw_of(&out.path().join(format!("disk{i}.vhdx"))),
                d.raw,
                "{n}"
            );
        }
    }
    let calls = hv.calls();
    let inventories: Vec<&Value> = calls
        .iter()
        .filter(|c| c["script"] == "inventory")
        .collect();
    assert_eq!(inventories.len(), names.len());
    for (c, n) in inventories.iter().zip(names) {
        // The name arrived as data, byte for byte ...
        assert_eq!(c["input"]["vm"], n);
    }
    for c in &calls {
        let text = c["text"].as_str().unwrap();
        for n in names {
            // ... and never as code, on the command line or in the environment.
            assert!(!text.contains(n), "{n:?} is in the {} script", c["script"]);
            assert!(!c["argv"].as_str().unwrap().contains(n), "{n:?} in argv");
            assert!(
                !c["environ"].as_str().unwrap().contains(n),
                "{n:?} in environ"
            );
        }
    }
}

#[test]
fn winrm_password_goes_on_stdin_only_and_a_wrong_one_is_auth() {
    let password = "S3cr3t-'Pa55\"$x";
    let out = tempfile::tempdir().unwrap();
    let hv = HyperV::new(json!({
        "vms": [vm("db-1", ID1, json!({}))],
        "remote": {"transport": "winrm", "host": "hv1.example", "username": "CORP\\ops", "password": password},
        "share": {"host": "\\\\nas\\exports", "local": out.path()},
    }));
    let cfg = |pw: &str| {
        hv.config(json!({"host": "hv1.example", "username": "CORP\\ops", "password": pw}))
    };
    let client = Client::new("hyperv", &cfg(password)).unwrap();
    let o = hv_opts(
        out.path(),
        json!({"export_type": "vhd-only", "host_output_dir": "\\\\nas\\exports"}),
    );
    let r = wait(&client.start_export("db-1", &o, None).unwrap());
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(r.provider["transport"], "winrm");
    assert_eq!(raw_of(&out.path().join("disk0.vhdx")), disks()[0].raw);
    let calls = hv.calls();
    // Inventory and export: the files are checked here, on the share (no second hop).
    assert!(calls.len() >= 2, "{calls:?}");
    for c in &calls {
        assert_eq!(
            c["script"], "remote",
            "a remote export runs every script through remote.ps1"
        );
        assert!(
            !c["argv"].as_str().unwrap().contains(password),
            "password in argv"
        );
        assert!(
            !c["environ"].as_str().unwrap().contains(password),
            "password in environ"
        );
        assert!(!c["text"].as_str().unwrap().contains(password));
        // It travelled on stdin, the one place it belongs.
        assert_eq!(c["input"]["password"], password);
    }

    let wrong = Client::new("hyperv", &cfg("nope")).unwrap();
    let out2 = tempfile::tempdir().unwrap();
    let r = wait(
        &wrong
            .start_export(
                "db-1",
                &hv_opts(
                    out2.path(),
                    json!({"export_type": "vhd-only", "host_output_dir": "\\\\nas\\exports"}),
                ),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "failed");
    assert_eq!(r.error().unwrap().kind, ErrorKind::Auth);
    assert!(!r.to_json().contains("nope"));
}

#[test]
fn cancel_mid_export_kills_powershell_stops_the_job_and_removes_everything() {
    let hv = HyperV::new(
        json!({"vms": [vm("slow", ID1, json!({"write_delay_ms": 200, "chunk": 65536}))]}),
    );
    let client = Client::new("hyperv", &hv.config(json!({}))).unwrap();
    let out = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    let e = client
        .start_export(
            "slow",
            &hv_opts(out.path(), json!({})),
            Some(rec.callback()),
        )
        .unwrap();
    let t = Instant::now();
    while e.progress().bytes_done == 0 {
        assert!(t.elapsed() < Duration::from_secs(60), "{:?}", e.progress());
        std::thread::sleep(Duration::from_millis(10));
    }
    let export_call = hv
        .calls()
        .into_iter()
        .find(|c| c["script"] == "export")
        .expect("the export script ran");
    let writer = hv.state()["jobs"][0]["pid"].as_i64().unwrap();
    assert!(alive(writer));
    e.cancel();
    let r = wait(&e);
    assert_eq!(r.status, "cancelled", "{}", r.to_json());
    rec.check();
    // PowerShell and everything in its process group are gone ...
    let (pid, pgid) = (
        export_call["pid"].as_i64().unwrap(),
        export_call["pgid"].as_i64().unwrap(),
    );
    assert!(!alive(pid), "the export's PowerShell outlived the cancel");
    assert!(group_members(pgid).is_empty(), "its process group lives on");
    // ... the Hyper-V job (outside it, like the Hyper-V service) was stopped by cleanup ...
    assert!(!alive(writer), "Hyper-V's export job still runs");
    assert_eq!(r.provider["jobs_stopped"], 1, "{}", r.to_json());
    // ... its checkpoint removed, and no partial export left behind.
    assert!(checkpoints(&hv).is_empty(), "{:?}", hv.state());
    assert_eq!(r.provider["checkpoint"]["removed"], true);
    only(out.path(), &[]);
}

#[test]
fn a_failing_export_leaves_nothing_and_removes_the_checkpoint() {
    let hv =
        HyperV::new(json!({"vms": [vm("full-disk", ID1, json!({"fail_after_bytes": 1_500_000}))]}));
    let client = Client::new("hyperv", &hv.config(json!({}))).unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client
            .start_export(
                "full-disk",
                &hv_opts(out.path(), json!({"export_type": "vhd-only"})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "failed");
    let err = r.error().cloned().unwrap();
    assert!(err.message.contains("not enough space"), "{}", err.message);
    assert!(checkpoints(&hv).is_empty(), "{:?}", hv.state());
    only(out.path(), &[]);
    assert!(r.cleanup_error.is_none(), "{:?}", r.cleanup_error);
}

#[test]
fn an_export_refused_by_hyperv_maps_its_error_and_cleans_up() {
    let hv = HyperV::new(
        json!({"vms": [vm("locked", ID1, json!({"export_error": "You do not have permission to export"}))]}),
    );
    let client = Client::new("hyperv", &hv.config(json!({}))).unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client
            .start_export("locked", &hv_opts(out.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.status, "failed");
    let err = r.error().unwrap();
    assert_eq!(err.kind, ErrorKind::Auth, "{}", err.message);
    assert!(
        checkpoints(&hv).is_empty(),
        "the checkpoint made before the refusal remains"
    );
    only(out.path(), &[]);
}

#[test]
fn unknown_vm_is_not_found_and_missing_powershell_is_unsupported() {
    let hv = HyperV::new(json!({"vms": [vm("exists", ID1, json!({}))]}));
    let client = Client::new("hyperv", &hv.config(json!({}))).unwrap();
    let out = tempfile::tempdir().unwrap();
    for src in [
        "nope",
        "00000000-0000-4000-8000-00000000ffff",
        "EXISTS*",
        "*",
    ] {
        let r = wait(
            &client
                .start_export(src, &hv_opts(out.path(), json!({})), None)
                .unwrap(),
        );
        assert_eq!(r.status, "failed", "{src}");
        assert_eq!(r.error().unwrap().kind, ErrorKind::NotFound, "{src}");
    }
    only(out.path(), &[]);

    let Err(e) = Client::new(
        "hyperv",
        &json!({"powershell_path": "/nonexistent/pwsh"}).to_string(),
    ) else {
        panic!("a client without PowerShell");
    };
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.to_string().contains("/nonexistent/pwsh"), "{e}");
}

#[test]
fn a_hanging_powershell_times_out_and_its_tree_is_killed() {
    let hv = HyperV::new(json!({"vms": [vm("stuck", ID1, json!({"hang_inventory": true}))]}));
    let client = Client::new("hyperv", &hv.config(json!({"timeout_secs": 2}))).unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client
            .start_export("stuck", &hv_opts(out.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.status, "failed");
    assert_eq!(r.error().unwrap().kind, ErrorKind::Timeout);
    let grandchild: i64 = std::fs::read_to_string(hv.dir.path().join("hang-grandchild.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let t = Instant::now();
    while alive(grandchild) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the hanging PowerShell's child outlived the timeout"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_standin_refuses_a_script_that_is_not_the_crates() {
    // What makes every other test meaningful: the stand-in acts only on the library's own
    // scripts, so a test passes only if that exact text reached PowerShell.
    let hv = HyperV::new(json!({"vms": []}));
    let run = |script: &str| {
        let b64 = {
            use std::io::Write as _;
            let mut child = std::process::Command::new("base64")
                .arg("-w0")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let utf16: Vec<u8> = script.encode_utf16().flat_map(u16::to_le_bytes).collect();
            child.stdin.take().unwrap().write_all(&utf16).unwrap();
            String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
        };
        let mut child = std::process::Command::new(&hv.pwsh)
            .args(["-NoProfile", "-NonInteractive", "-EncodedCommand", &b64])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        drop(child.stdin.take());
        child.wait().unwrap().code()
    };
    assert_eq!(run("Remove-Item -Recurse C:\\"), Some(66));
    assert_eq!(
        run("Get-VM | Where-Object { "),
        Some(1),
        "a syntax error must be refused"
    );
    // PowerShell 7 syntax that Windows PowerShell 5.1 (a Hyper-V host's default, and the
    // remoting endpoint) cannot parse.
    for ps7 in [
        "Get-VM && Get-VHD -Path x",
        "Get-VM || exit 1",
        "$a = $b ? 1 : 2",
        "$a = $b ?? 3",
        "1..3 | ForEach-Object -Parallel { $_ }",
    ] {
        assert_eq!(run(ps7), Some(1), "{ps7}");
    }
}

#[test]
fn list_shows_every_vm_with_its_disk_bytes() {
    let hv = HyperV::new(
        json!({"vms": [vm("web-01", ID1, json!({})), vm("db-01", "00000000-0000-4000-8000-000000000009", json!({}))]}),
    );
    let client = Client::new("hyperv", &hv.config(json!({}))).unwrap();
    let all = client.list_sources("").unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    let web = all.iter().find(|s| s.name == "web-01").unwrap();
    assert_eq!((web.kind, web.id.as_str()), ("vm", ID1));
    let bytes: u64 = disks()
        .iter()
        .map(|d| std::fs::metadata(&d.vhdx).unwrap().len())
        .sum();
    assert_eq!(web.size_bytes, Some(bytes));
    let db = client
        .list_sources(&json!({"name_contains": "DB"}).to_string())
        .unwrap();
    assert_eq!(db.len(), 1);
    assert_eq!(db[0].name, "db-01");
    assert!(
        client
            .list_sources(&json!({"zone": "x"}).to_string())
            .is_err()
    );
    assert!(hv.calls().iter().any(|c| c["script"] == "list"));
}

#[test]
fn a_password_quoted_in_a_json_error_line_is_redacted_everywhere() {
    let password = "S3cr3t-'Pa55\"$x";
    let out = tempfile::tempdir().unwrap();
    let hv = HyperV::new(json!({
        "vms": [vm("db-1", ID1, json!({"echo_password": true}))],
        "remote": {"transport": "winrm", "host": "hv1.example", "username": "CORP\\ops", "password": password},
        "share": {"host": "\\\\nas\\exports", "local": out.path()},
    }));
    let client = Client::new(
        "hyperv",
        &hv.config(json!({"host": "hv1.example", "username": "CORP\\ops", "password": password})),
    )
    .unwrap();
    let rec = Recorder::default();
    let o = hv_opts(
        out.path(),
        json!({"export_type": "vhd-only", "host_output_dir": "\\\\nas\\exports"}),
    );
    let r = wait(
        &client
            .start_export("db-1", &o, Some(rec.callback()))
            .unwrap(),
    );
    assert_eq!(r.status, "failed", "{}", r.to_json());
    let err = r.error().unwrap();
    // The stand-in did quote it: the message is there, with the secret replaced.
    assert!(
        err.message.contains("logon with password '***'"),
        "{}",
        err.message
    );
    assert!(!err.message.contains(password), "{}", err.message);
    assert!(!r.to_json().contains(password), "{}", r.to_json());
    for p in rec.events.lock().unwrap().iter() {
        assert!(!p.message.contains(password), "progress: {}", p.message);
    }
    assert!(checkpoints(&hv).is_empty(), "{:?}", hv.state());
}

/// Waits until `e` has written its first bytes.
fn wait_for_bytes(e: &hypersdk::Export) {
    let t = Instant::now();
    while e.progress().bytes_done == 0 {
        assert!(t.elapsed() < Duration::from_secs(60), "{:?}", e.progress());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_cancel_stops_only_its_own_jobs_not_another_exports_or_a_backups() {
    const ID2: &str = "00000000-0000-4000-8000-0000000000b2";
    let backup = json!({"instance_id": "B4C7E0A1-0000-4000-8000-00000000BAC0", "vm": null,
                        "kind": "Export", "owner": "a backup application"});
    let hv = HyperV::new(json!({
        "vms": [
            vm("cancelled", ID1, json!({"write_delay_ms": 200, "chunk": 65536})),
            vm("survivor", ID2, json!({"write_delay_ms": 100, "chunk": 65536})),
        ],
        "jobs": [backup],
    }));
    let client = Client::new("hyperv", &hv.config(json!({}))).unwrap();
    let (out_a, out_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let full = |d: &Path| hv_opts(d, json!({}));
    let b = client
        .start_export("survivor", &full(out_b.path()), None)
        .unwrap();
    let a = client
        .start_export("cancelled", &full(out_a.path()), None)
        .unwrap();
    wait_for_bytes(&a);
    wait_for_bytes(&b);
    // The stand-in's own record of which export started a job (Hyper-V's storage jobs name
    // no VM).
    let job_of = |vm_id: &str| {
        let state = hv.state();
        state["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["source_vm"] == vm_id)
            .cloned()
            .unwrap_or_else(|| panic!("no job for {vm_id}: {state:?}"))
    };
    let (job_a, job_b) = (job_of(ID1), job_of(ID2));
    a.cancel();
    let ra = wait(&a);
    assert_eq!(ra.status, "cancelled", "{}", ra.to_json());
    assert!(
        !alive(job_a["pid"].as_i64().unwrap()),
        "the cancelled export's job runs on"
    );
    assert_eq!(ra.provider["jobs_stopped"], 1, "{}", ra.to_json());
    assert_eq!(ra.provider["job_ids"], json!([job_a["instance_id"]]));
    // The host says which jobs were stopped: the cancelled export's, and nothing else.
    assert_eq!(
        hv.state()["stopped_jobs"],
        json!([job_a["instance_id"]]),
        "{:?}",
        hv.state()
    );
    // (The other export was still running then: what follows is not a race it won.)
    assert!(alive(job_b["pid"].as_i64().unwrap()), "{:?}", b.progress());
    // The other export goes on to the end, whole.
    let rb = wait(&b);
    assert_eq!(rb.status, "done", "{}", rb.to_json());
    for (i, d) in disks().iter().enumerate() {
        let f = out_b
            .path()
            .join(format!("survivor/Virtual Hard Disks/disk{i}.vhdx"));
        assert_eq!(raw_of(&f), d.raw);
    }
    assert!(
        rb.provider.get("jobs_stopped").is_none_or(|n| n == 0),
        "{}",
        rb.to_json()
    );
    let backup_now = hv.state()["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["owner"] == "a backup application")
        .cloned()
        .unwrap();
    assert!(
        backup_now.get("stopped").is_none(),
        "the backup's job was stopped"
    );
    only(out_a.path(), &[]);
}

#[test]
fn disks_of_one_file_name_or_hostile_names_are_refused_before_anything_starts() {
    let layouts: [&[&str]; 2] = [
        &["C:\\VMs\\a\\disk.vhdx", "D:\\Other\\b\\disk.vhdx"],
        &["C:\\Hyper-V\\..", "C:\\Hyper-V\\a'b\"c; rm -rf /"],
    ];
    for paths in layouts {
        let mut v = vm("twins", ID1, json!({}));
        for (d, p) in v["disks"].as_array_mut().unwrap().iter_mut().zip(paths) {
            d["path"] = json!(p);
        }
        let hv = HyperV::new(json!({ "vms": [v] }));
        let client = Client::new("hyperv", &hv.config(json!({}))).unwrap();

        // Full: Hyper-V names the files after the host's; these cannot each be one file of
        // their own, so the export refuses before anything starts.
        let out = tempfile::tempdir().unwrap();
        let r = wait(
            &client
                .start_export("twins", &hv_opts(out.path(), json!({})), None)
                .unwrap(),
        );
        assert_eq!(r.status, "failed", "{paths:?}: {}", r.to_json());
        let err = r.error().unwrap();
        assert_eq!(err.kind, ErrorKind::Unsupported, "{}", err.message);
        assert!(err.message.contains("not unique"), "{}", err.message);
        assert!(!hv.calls().iter().any(|c| c["script"] == "export"));
        assert!(checkpoints(&hv).is_empty());
        only(out.path(), &[]);

        // vhd-only converts the files Hyper-V exported, which bear the same names: refused
        // the same way.
        let out = tempfile::tempdir().unwrap();
        let r = wait(
            &client
                .start_export(
                    "twins",
                    &hv_opts(out.path(), json!({"export_type": "vhd-only"})),
                    None,
                )
                .unwrap(),
        );
        assert_eq!(r.status, "failed", "{paths:?}: {}", r.to_json());
        assert_eq!(r.error().unwrap().kind, ErrorKind::Unsupported);
        assert!(!hv.calls().iter().any(|c| c["script"] == "export"));
        only(out.path(), &[]);
    }
}

#[test]
fn a_cancel_before_every_job_is_reported_still_stops_the_ones_that_run() {
    // The script reports each job as it appears; here Hyper-V's first job runs while the script
    // still waits for the others (before its `started` line).
    let hv = HyperV::new(json!({
        "vms": [vm("early", ID1, json!({"hold_before_started": true}))],
    }));
    let client = Client::new("hyperv", &hv.config(json!({}))).unwrap();
    let out = tempfile::tempdir().unwrap();
    let e = client
        .start_export(
            "early",
            &hv_opts(out.path(), json!({"export_type": "vhd-only"})),
            None,
        )
        .unwrap();
    let t = Instant::now();
    while !e.progress().message.contains("export job started") {
        assert!(t.elapsed() < Duration::from_secs(60), "{:?}", e.progress());
        std::thread::sleep(Duration::from_millis(10));
    }
    let job = hv.state()["jobs"][0].clone();
    e.cancel();
    let r = wait(&e);
    assert_eq!(r.status, "cancelled", "{}", r.to_json());
    assert_eq!(
        r.provider["job_ids"],
        json!([job["instance_id"]]),
        "{}",
        r.to_json()
    );
    assert_eq!(hv.state()["stopped_jobs"], json!([job["instance_id"]]));
    assert!(!alive(job["pid"].as_i64().unwrap()), "the job runs on");
    only(out.path(), &[]);
}
