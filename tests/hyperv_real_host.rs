//! Hyper-V as a real host behaves and the stand-in models it (issue 28): the OEM console code
//! page, checkpoint chains, Convert-VHD's offline rule, pass-through disks, other parties' jobs
//! and the VM's own merge, the remote session's "second hop", Windows PowerShell 5.1 without
//! SSH remoting. Each test fails without the fix it is named after (see the commit messages).
#![cfg(feature = "hyperv")]

mod support;

use hypersdk::{Client, ErrorKind};
use serde_json::{Value, json};
use support::hyperv::{HyperV, alive, disks, hv_opts, only, raw_of, vm, vm_with_checkpoints};
use support::wait_long as wait;

const ID1: &str = "6f1c2a3b-0d4e-4f5a-8b9c-0d1e2f3a4b5c";

fn vhdx_len(i: usize) -> u64 {
    std::fs::metadata(&disks()[i].vhdx).unwrap().len()
}

#[test]
fn non_ascii_names_survive_an_oem_console_locally_and_remotely() {
    // Windows PowerShell 5.1 on a German host: stdin and stdout in code page 850 unless the
    // script says UTF-8. The VM and its disks' folder carry non-ASCII characters.
    let name = "Büro-Ω 名前";
    let mut v = vm(name, ID1, json!({}));
    for (i, d) in v["disks"].as_array_mut().unwrap().iter_mut().enumerate() {
        d["path"] = json!(format!("C:\\VMs\\Büro\\disk{i}.vhdx"));
    }
    let share = tempfile::tempdir().unwrap();
    let hv = HyperV::new(json!({
        "vms": [v],
        "oem_code_page": 850,
        "remote": {"transport": "winrm", "host": "hv1.example", "username": "CORP\\ops", "password": "pw"},
        "share": {"host": "\\\\nas\\exports", "local": share.path()},
    }));
    let local = Client::new("hyperv", &hv.config(json!({}))).unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &local
            .start_export(
                name,
                &hv_opts(out.path(), json!({"export_type": "vhd-only"})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(r.provider["vm"]["name"], name, "the name came back garbled");
    only(out.path(), &["disk0.vhdx", "disk1.vhdx"]);
    assert_eq!(raw_of(&out.path().join("disk0.vhdx")), disks()[0].raw);
    // The listing too.
    let all = local.list_sources("").unwrap();
    assert_eq!(all[0].name, name);

    let remote = Client::new(
        "hyperv",
        &hv.config(json!({"host": "hv1.example", "username": "CORP\\ops", "password": "pw"})),
    )
    .unwrap();
    let r = wait(
        &remote
            .start_export(
                name,
                &hv_opts(
                    share.path(),
                    json!({"export_type": "vhd-only", "host_output_dir": "\\\\nas\\exports"}),
                ),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(r.provider["vm"]["name"], name);
    // What reached PowerShell's stdin is ASCII whatever the code page.
    for c in hv.calls() {
        assert!(c["stdin"].as_str().unwrap().is_ascii(), "{}", c["script"]);
    }
}

#[test]
fn vhd_only_of_a_vm_with_checkpoints_writes_disks_named_after_their_base() {
    let hv = HyperV::new(json!({"vms": [vm_with_checkpoints("chained", ID1, 2, json!({}))]}));
    let client = Client::new("hyperv", &hv.config(json!({}))).unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client
            .start_export(
                "chained",
                &hv_opts(out.path(), json!({"export_type": "vhd-only"})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    // <disk>.vhdx, as the README promises — not the .avhdx the VM writes now.
    only(out.path(), &["disk0.vhdx", "disk1.vhdx"]);
    for (i, d) in disks().iter().enumerate() {
        assert_eq!(raw_of(&out.path().join(format!("disk{i}.vhdx"))), d.raw);
    }
    let export = hv
        .calls()
        .into_iter()
        .find(|c| c["script"] == "export")
        .unwrap();
    for d in export["input"]["disks"].as_array().unwrap() {
        let dest = d["dest"].as_str().unwrap();
        assert!(
            dest.ends_with(".vhdx") && !dest.ends_with(".avhdx"),
            "{dest}"
        );
    }
}

#[test]
fn vhd_only_converts_hyperv_s_exported_copy_never_the_attached_disk() {
    // The VM runs: its checkpoint's files are the parents of the chain it writes, attached.
    let hv = HyperV::new(json!({"vms": [vm("running", ID1, json!({}))]}));
    let client = Client::new("hyperv", &hv.config(json!({}))).unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client
            .start_export(
                "running",
                &hv_opts(out.path(), json!({"export_type": "vhd-only"})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    only(out.path(), &["disk0.vhdx", "disk1.vhdx"]);
    // Two steps ran on the host: Export-VMSnapshot (one job naming the VM), then one
    // Convert-VHD per disk; the exported copy went with the staging folder.
    let jobs = hv.state()["jobs"].as_array().unwrap().clone();
    let steps: Vec<&str> = jobs.iter().filter_map(|j| j["step"].as_str()).collect();
    assert_eq!(steps, ["export", "convert", "convert"], "{jobs:?}");
    assert!(hv.state()["checkpoints"].as_array().unwrap().is_empty());
}

#[test]
fn pass_through_disks_are_left_out_and_said() {
    let mut v = vm("with-lun", ID1, json!({}));
    v["disks"]
        .as_array_mut()
        .unwrap()
        .push(json!({"path": "", "passthrough": true, "disk_number": 3}));
    let hv = HyperV::new(json!({"vms": [v]}));
    let client = Client::new("hyperv", &hv.config(json!({}))).unwrap();
    for export_type in ["vhd-only", "full"] {
        let out = tempfile::tempdir().unwrap();
        let r = wait(
            &client
                .start_export(
                    "with-lun",
                    &hv_opts(out.path(), json!({"export_type": export_type})),
                    None,
                )
                .unwrap(),
        );
        assert_eq!(r.status, "done", "{export_type}: {}", r.to_json());
        assert_eq!(r.files.len(), 2, "{}", r.to_json());
        let skipped = r.provider["skipped"]
            .as_array()
            .expect("the skipped disk is named");
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0]["reason"], "pass-through");
        assert_eq!(skipped[0]["disk_number"], 3);
        assert_eq!(skipped[0]["controller_location"], 2);
    }
    let listed = client.list_sources("").unwrap();
    assert_eq!(listed[0].size_bytes, Some(vhdx_len(0) + vhdx_len(1)));
}

#[test]
fn a_cancel_stops_neither_other_parties_jobs_nor_the_vms_merge() {
    // While the export starts its job, a backup application compacts a disk of no VM and
    // Hyper-V merges an older checkpoint of this VM: all three appear on the host together.
    let hv = HyperV::new(json!({
        "vms": [vm("busy", ID1, json!({"write_delay_ms": 200, "chunk": 65536, "bystanders": true}))],
    }));
    let client = Client::new("hyperv", &hv.config(json!({}))).unwrap();
    let out = tempfile::tempdir().unwrap();
    let e = client
        .start_export("busy", &hv_opts(out.path(), json!({})), None)
        .unwrap();
    support::wait_until(&e, "the first bytes", |p| p.bytes_done > 0);
    let jobs = hv.state()["jobs"].as_array().unwrap().clone();
    let ours = jobs.iter().find(|j| j["source_vm"] == ID1).unwrap().clone();
    let others: Vec<Value> = jobs
        .iter()
        .filter(|j| j["source_vm"].is_null())
        .cloned()
        .collect();
    assert_eq!(others.len(), 2, "{jobs:?}");
    e.cancel();
    let r = wait(&e);
    assert_eq!(r.status, "cancelled", "{}", r.to_json());
    assert_eq!(
        r.provider["job_ids"],
        json!([ours["instance_id"]]),
        "{}",
        r.to_json()
    );
    assert!(
        !alive(ours["pid"].as_i64().unwrap()),
        "the export's job runs on"
    );
    let state = hv.state();
    assert_eq!(
        state["stopped_jobs"],
        json!([ours["instance_id"]]),
        "{state:?}"
    );
    // The backup's job and the merge still run; so does the merge Remove-VMSnapshot started
    // when cleanup removed the export's checkpoint.
    let now = state["jobs"].as_array().unwrap();
    let merges_running = now
        .iter()
        .filter(|j| j["job_type"] == 5 && j.get("stopped").is_none())
        .count();
    assert_eq!(merges_running, 2, "{now:?}");
    for o in &others {
        let j = now
            .iter()
            .find(|j| j["instance_id"] == o["instance_id"])
            .unwrap();
        assert!(
            j.get("stopped").is_none(),
            "another party's job was stopped: {j}"
        );
    }
    only(out.path(), &[]);
}

#[test]
fn a_full_export_of_a_vm_with_checkpoints_counts_and_checks_every_file_of_the_chain() {
    let hv = HyperV::new(json!({"vms": [vm_with_checkpoints("tree", ID1, 2, json!({}))]}));
    let client = Client::new("hyperv", &hv.config(json!({}))).unwrap();
    let out = tempfile::tempdir().unwrap();
    let rec = support::Recorder::default();
    let r = wait(
        &client
            .start_export(
                "tree",
                &hv_opts(out.path(), json!({"include_snapshots": true})),
                Some(rec.callback()),
            )
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    let folder = out.path().join("tree/Virtual Hard Disks");
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 6, "{names:?}");
    let on_disk: u64 = names
        .iter()
        .map(|n| std::fs::metadata(folder.join(n)).unwrap().len())
        .sum();
    // The total is every file of each chain, from the start, and matches what was written.
    assert!(on_disk > vhdx_len(0) + vhdx_len(1), "{on_disk}");
    assert_eq!(rec.last().bytes_total, on_disk);
    assert_eq!(rec.last().bytes_done, on_disk);
    let verified = r.provider["verified"].as_array().unwrap();
    assert_eq!(verified.len(), 6, "{}", r.to_json());
    assert_eq!(r.files.len(), 6);
    for (i, d) in disks().iter().enumerate() {
        assert_eq!(raw_of(&folder.join(format!("disk{i}.vhdx"))), d.raw);
    }
}

#[test]
fn a_remote_export_checks_the_files_on_the_share_here_without_a_second_hop() {
    let share = tempfile::tempdir().unwrap();
    let state = |computer_account: bool| {
        json!({
            "vms": [vm("far", ID1, json!({}))],
            "remote": {"transport": "winrm", "host": "hv1.example", "username": "CORP\\ops", "password": "pw"},
            "share": {"host": "\\\\nas\\exports", "local": share.path(), "computer_account": computer_account},
        })
    };
    let hv = HyperV::new(state(true));
    let cfg = |auth: Option<&str>| {
        let mut c = json!({"host": "hv1.example", "username": "CORP\\ops", "password": "pw"});
        if let Some(a) = auth {
            c["authentication"] = json!(a);
        }
        hv.config(c)
    };
    let o = |t: &str| {
        hv_opts(
            share.path(),
            json!({"export_type": t, "host_output_dir": "\\\\nas\\exports"}),
        )
    };
    for t in ["vhd-only", "full"] {
        // Default authentication: the session's credential does not reach \\nas.
        let client = Client::new("hyperv", &cfg(None)).unwrap();
        let r = wait(&client.start_export("far", &o(t), None).unwrap());
        assert_eq!(r.status, "done", "{t}: {}", r.to_json());
        for v in r.provider["verified"].as_array().unwrap() {
            assert_eq!(v["structure"], "vhdx", "{t}: {v}");
        }
        std::fs::remove_dir_all(share.path().join("far")).ok();
        for f in ["disk0.vhdx", "disk1.vhdx"] {
            std::fs::remove_file(share.path().join(f)).ok();
        }
    }
    assert!(!hv.calls().iter().any(|c| {
        c["input"]["script"]
            .as_str()
            .is_some_and(|s| s.starts_with("# hypersdk verify"))
    }));
    // CredSSP, when a user asks for it, reaches Invoke-Command.
    let client = Client::new("hyperv", &cfg(Some("credssp"))).unwrap();
    let r = wait(&client.start_export("far", &o("vhd-only"), None).unwrap());
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(
        hv.calls().last().unwrap()["input"]["authentication"],
        "Credssp"
    );

    // A share the host's computer account may not write: Hyper-V's own refusal, as AUTH.
    let denied_share = tempfile::tempdir().unwrap();
    let hv = HyperV::new(json!({
        "vms": [vm("far", ID1, json!({}))],
        "remote": {"transport": "winrm", "host": "hv1.example", "username": "CORP\\ops", "password": "pw"},
        "share": {"host": "\\\\nas\\exports", "local": denied_share.path(), "computer_account": false},
    }));
    let client = Client::new(
        "hyperv",
        &hv.config(json!({"host": "hv1.example", "username": "CORP\\ops", "password": "pw"})),
    )
    .unwrap();
    let r = wait(
        &client
            .start_export(
                "far",
                &hv_opts(
                    denied_share.path(),
                    json!({"export_type": "vhd-only", "host_output_dir": "\\\\nas\\exports"}),
                ),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "failed");
    let err = r.error().unwrap();
    assert_eq!(err.kind, ErrorKind::Auth, "{}", err.message);
    assert!(err.message.contains("computer account"), "{}", err.message);
    only(denied_share.path(), &[]);
}

#[test]
fn ssh_remoting_from_windows_powershell_5_1_is_unsupported_naming_the_version() {
    let hv = HyperV::new(json!({
        "vms": [vm("far", ID1, json!({}))],
        "ps_version": "5.1.19041.4648",
        "remote": {"transport": "ssh", "host": "hv1.example", "username": "ops"},
    }));
    let client = Client::new(
        "hyperv",
        &hv.config(json!({"host": "hv1.example", "transport": "ssh", "username": "ops"})),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = wait(
        &client
            .start_export(
                "far",
                &hv_opts(out.path(), json!({"host_output_dir": "\\\\nas\\exports"})),
                None,
            )
            .unwrap(),
    );
    assert_eq!(r.status, "failed");
    let err = r.error().unwrap();
    assert_eq!(err.kind, ErrorKind::Unsupported, "{}", err.message);
    assert!(
        err.message.contains("5.1.19041.4648") && err.message.contains("PowerShell 6"),
        "{}",
        err.message
    );
}

#[test]
fn a_job_hyperv_refuses_to_stop_is_a_cleanup_error_naming_its_code() {
    let hv = HyperV::new(json!({
        "vms": [vm("stubborn", ID1, json!({"write_delay_ms": 200, "chunk": 65536, "refuse_stop": true}))],
    }));
    let client = Client::new("hyperv", &hv.config(json!({}))).unwrap();
    let out = tempfile::tempdir().unwrap();
    let e = client
        .start_export("stubborn", &hv_opts(out.path(), json!({})), None)
        .unwrap();
    support::wait_until(&e, "the first bytes", |p| p.bytes_done > 0);
    let job = hv.state()["jobs"][0].clone();
    e.cancel();
    let r = wait(&e);
    let pid = job["pid"].as_i64().unwrap();
    let still = alive(pid);
    // The job Hyper-V would not stop: ended here so the test leaves nothing behind.
    // SAFETY: a plain libc call on a pid this test's stand-in started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    assert_eq!(r.status, "cancelled", "{}", r.to_json());
    assert!(still, "the stand-in stopped a job it refused to stop");
    let left = r.cleanup_error.clone().expect("a cleanup error");
    assert!(
        left.contains("did not stop") && left.contains("32775"),
        "{left}"
    );
    assert_eq!(
        r.provider["jobs_not_stopped"][0]["code"],
        32775,
        "{}",
        r.to_json()
    );
}
