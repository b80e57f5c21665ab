//! The Hyper-V peer: tests/peers/hyperv/pwsh_standin.py, a stand-in for PowerShell and the
//! Hyper-V module (none exists on our machines), run as `pwsh` through a wrapper script. Each
//! test gets its own stand-in with its own fake host (state.json), and fixture disks that are
//! real VHDX files (qemu-img) of known bytes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};

/// The venv python with tree-sitter-powershell (tests/peers/hyperv/install.sh).
fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/hyperv");
        let out = Command::new(root.join("install.sh"))
            .output()
            .expect("run tests/peers/hyperv/install.sh");
        assert!(
            out.status.success(),
            "tests/peers/hyperv/install.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// A disk fixture: the VHDX file and the raw bytes it holds.
pub struct Disk {
    pub vhdx: PathBuf,
    pub raw: Vec<u8>,
}

/// Two disks (3 MiB and 1 MiB of known bytes), made once per test process.
pub fn disks() -> &'static [Disk] {
    static D: OnceLock<(tempfile::TempDir, Vec<Disk>)> = OnceLock::new();
    &D.get_or_init(|| {
        let dir = super::static_tempdir();
        let mut disks = Vec::new();
        for (i, (len, seed)) in [(3usize << 20, 11u64), (1 << 20, 13)]
            .into_iter()
            .enumerate()
        {
            let raw = super::server::pattern(len, seed);
            let rp = dir.path().join(format!("disk{i}.raw"));
            std::fs::write(&rp, &raw).unwrap();
            let vhdx = dir.path().join(format!("disk{i}.vhdx"));
            let ok = Command::new("qemu-img")
                .args(["convert", "-f", "raw", "-O", "vhdx"])
                .arg(&rp)
                .arg(&vhdx)
                .status()
                .expect("qemu-img (apt: qemu-utils)")
                .success();
            assert!(ok, "qemu-img convert -O vhdx failed");
            disks.push(Disk { vhdx, raw });
        }
        (dir, disks)
    })
    .1
}

/// The raw bytes of a VHDX file (qemu-img convert -O raw).
pub fn raw_of(vhdx: &Path) -> Vec<u8> {
    let out = tempfile::tempdir().unwrap();
    let raw = out.path().join("x.raw");
    let ok = Command::new("qemu-img")
        .args(["convert", "-f", "vhdx", "-O", "raw"])
        .arg(vhdx)
        .arg(&raw)
        .status()
        .unwrap()
        .success();
    assert!(ok, "qemu-img could not read {}", vhdx.display());
    std::fs::read(&raw).unwrap()
}

pub struct HyperV {
    pub dir: tempfile::TempDir,
    pub pwsh: PathBuf,
}

/// A VM of the fake host with the fixture disks (Windows paths on the host).
pub fn vm(name: &str, id: &str, faults: Value) -> Value {
    json!({
        "name": name,
        "id": id,
        "state": "Running",
        "faults": faults,
        "disks": disks().iter().enumerate().map(|(i, d)| json!({
            "path": format!("C:\\Hyper-V\\{id}\\disk{i}.vhdx"),
            "local": d.vhdx,
            "size": d.raw.len(),
        })).collect::<Vec<_>>(),
    })
}

impl HyperV {
    /// A stand-in whose fake host is `state` (`vms`, optional `remote` and `share`).
    pub fn new(state: Value) -> HyperV {
        let py = python();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("state.json"), state.to_string()).unwrap();
        let standin =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/hyperv/pwsh_standin.py");
        let pwsh = dir.path().join("pwsh");
        std::fs::write(
            &pwsh,
            format!(
                "#!/bin/sh\nexec '{}' '{}' --state '{}' \"$@\"\n",
                py.display(),
                standin.display(),
                dir.path().display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&pwsh, std::fs::Permissions::from_mode(0o755)).unwrap();
        HyperV { dir, pwsh }
    }

    pub fn config(&self, extra: Value) -> String {
        let mut c = json!({ "powershell_path": self.pwsh });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c.to_string()
    }

    /// Every call the stand-in received: script name, decoded text, argv, environ, stdin, input.
    pub fn calls(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("calls.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The fake host now (checkpoints, jobs).
    pub fn state(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.path().join("state.json")).unwrap())
            .unwrap()
    }
}

/// Running or sleeping; a zombie counts as gone.
pub fn alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Processes (not zombies) in process group `pgid`.
pub fn group_members(pgid: i64) -> Vec<i64> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i64>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            let fields: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            // state ppid pgrp ...
            if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
                out.push(pid);
            }
        }
    }
    out
}

/// Options for a Hyper-V export into `dir` (files polled every 20 ms) with `extra`.
pub fn hv_opts(dir: &Path, extra: Value) -> String {
    let mut o = json!({"poll_file_interval_ms": 20});
    for (k, v) in extra.as_object().unwrap() {
        o[k] = v.clone();
    }
    super::opts(dir, o)
}

/// Nothing but what `names` lists is left in the output folder (no staging folder, no temp).
pub fn only(dir: &Path, names: &[&str]) {
    let mut left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| !n.ends_with(".hslock"))
        .collect();
    left.sort();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(left, want, "the output folder holds something else");
}

/// A VM whose disks have checkpoints: each fixture disk is the base of a chain of `depth`
/// differencing files (`disk<i>_<n>.avhdx`, the newest the one the VM writes).
pub fn vm_with_checkpoints(name: &str, id: &str, depth: usize, faults: Value) -> Value {
    let mut v = vm(name, id, faults);
    for (i, d) in v["disks"].as_array_mut().unwrap().iter_mut().enumerate() {
        d["checkpoints"] = json!(
            (1..=depth)
                .map(|n| format!(
                    "C:\\Hyper-V\\{id}\\disk{i}_{n:02}A1B2C3-D4E5-4F60-8A9B-0C1D2E3F4A5B.avhdx"
                ))
                .collect::<Vec<_>>()
        );
    }
    v
}
