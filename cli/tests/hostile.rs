//! The command in a hostile world (issue 25): secrets kept out of the history and the screen,
//! escape sequences from a cloud never printed raw, absolute output folders for a resume from
//! elsewhere, exit codes by the library's error kind, a batch that outlives one provider's
//! broken client, and history ids that two commands never share.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

mod common;

use common::{env, serve, text};

/// What a terminal would act on: C0 controls (ESC, BEL…) other than newline, DEL, C1.
fn raw_controls(s: &str) -> Vec<char> {
    s.chars().filter(|c| c.is_control() && *c != '\n').collect()
}

fn history_lines(state: &Path) -> Vec<Value> {
    let h = state.join("history.jsonl");
    std::fs::read_to_string(h)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_history_keeps_no_secret_and_a_resume_asks_for_it_again() {
    let peer = serve(1, 256 << 10, 0);
    let e = env();
    // The history in its default place (XDG), so the folder is ours to make 0700.
    let xdg = tempfile::tempdir().unwrap();
    let cmd = || {
        let mut c = e.cmd();
        c.env_remove("HYPERSDK_STATE_DIR")
            .env("XDG_STATE_HOME", xdg.path());
        c
    };
    let url = format!("{}/file0.bin?X-Amz-Signature=s1gnature", peer.url);
    let out = e.out().display().to_string();
    // A file already there: the export fails (7) and is recorded, resumable.
    std::fs::write(e.out().join("file0.bin"), b"kept").unwrap();
    let o = cmd()
        .args(["export", "http", &url, "--output", &out])
        .args(["-o", r#"headers={"Authorization": "Bearer t0ken"}"#])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    let all = format!("{}{}", text(&o), "");
    assert!(
        !all.contains("s1gnature") && !all.contains("t0ken"),
        "{all}"
    );
    let dir = xdg.path().join("hypersdk");
    let file = dir.join("history.jsonl");
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(
        !stored.contains("s1gnature") && !stored.contains("t0ken"),
        "{stored}"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&file), 0o600);
    let rec: Value = serde_json::from_str(stored.lines().next().unwrap()).unwrap();
    assert_eq!(rec["withheld"], json!(["source", "headers"]));
    let id = rec["id"].to_string();
    // `history` shows no secret either.
    let h = cmd().args(["history"]).output().unwrap();
    assert!(!text(&h).contains("s1gnature"), "{}", text(&h));

    std::fs::remove_file(e.out().join("file0.bin")).unwrap();
    let resume = |extra: &[&str]| {
        cmd()
            .args(["history", "--resume", &id])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = resume(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--source"), "{}", text(&o));
    let other = format!("{}/file1.bin?X-Amz-Signature=s1gnature", peer.url);
    let o = resume(&["--source", &other]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("is not the source"), "{}", text(&o));
    let o = resume(&["--source", &url]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("-o headers="), "{}", text(&o));
    let o = resume(&[
        "--source",
        &url,
        "-o",
        r#"headers={"Authorization": "Bearer t0ken"}"#,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains("s1gnature"), "{}", text(&o));
    // What is replayed is said.
    assert!(text(&o).contains("resuming export 1"), "{}", text(&o));
    assert!(text(&o).contains("output_dir="), "{}", text(&o));
    assert_eq!(
        std::fs::metadata(e.out().join("file0.bin")).unwrap().len(),
        256 << 10
    );
}

#[test]
fn a_relative_output_is_kept_absolute_so_a_resume_elsewhere_writes_there() {
    let peer = serve(1, 128 << 10, 0);
    let e = env();
    let (here, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::create_dir(here.path().join("rel")).unwrap();
    std::fs::write(here.path().join("rel/file0.bin"), b"kept").unwrap();
    let url = format!("{}/file0.bin", peer.url);
    let o = e
        .cmd()
        .current_dir(here.path())
        .args(["export", "http", &url, "--output", "rel"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    let rec = &history_lines(e.state.path())[0];
    let stored = PathBuf::from(rec["options"]["output_dir"].as_str().unwrap());
    assert!(stored.is_absolute(), "{rec}");
    std::fs::remove_file(here.path().join("rel/file0.bin")).unwrap();
    std::fs::create_dir(elsewhere.path().join("rel")).unwrap();
    let o = e
        .cmd()
        .current_dir(elsewhere.path())
        .args(["history", "--resume", "1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(here.path().join("rel/file0.bin").exists());
    assert!(!elsewhere.path().join("rel/file0.bin").exists());
}

/// A `pwsh` that is the project's Hyper-V stand-in over `state` (tests/peers/hyperv).
fn hyperv(dir: &Path, state: Value) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/hyperv");
    let out = Command::new(root.join("install.sh")).output().unwrap();
    assert!(out.status.success(), "tests/peers/hyperv/install.sh failed");
    let py = String::from_utf8(out.stdout).unwrap().trim().to_string();
    std::fs::write(dir.join("state.json"), state.to_string()).unwrap();
    let pwsh = dir.join("pwsh");
    std::fs::write(
        &pwsh,
        format!(
            "#!/bin/sh\nexec '{py}' '{}' --state '{}' \"$@\"\n",
            root.join("pwsh_standin.py").display(),
            dir.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&pwsh, std::fs::Permissions::from_mode(0o755)).unwrap();
    pwsh
}

#[test]
fn escape_sequences_from_a_host_never_reach_the_terminal_raw() {
    let e = env();
    let host = tempfile::tempdir().unwrap();
    let disk = host.path().join("d.vhdx");
    std::fs::write(&disk, vec![0u8; 4096]).unwrap();
    // OSC 52 writes the clipboard, OSC 0 sets the title, CSI 2J clears the screen, U+009B is a
    // one-character CSI, U+202E reverses what follows.
    let evil = "web\u{1b}]52;c;cHduZWQ=\u{7}\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}31m\u{202e}";
    let vm = |name: &str, id: &str, faults: Value| {
        json!({"name": name, "id": id, "state": format!("Running{evil}"), "faults": faults,
               "disks": [{"path": format!("C:\\VMs\\{id}\\d.vhdx"), "local": disk, "size": 4096}]})
    };
    let pwsh = hyperv(
        host.path(),
        json!({"vms": [
            vm(evil, "11111111-1111-1111-1111-111111111111", json!({})),
            vm("locked", "22222222-2222-2222-2222-222222222222",
               json!({"export_error": format!("denied{evil}")})),
        ]}),
    );
    let config = json!({"powershell_path": pwsh}).to_string();
    for json_flag in [false, true] {
        let mut args = vec!["list", "hyperv", "--config", &config];
        if json_flag {
            args.push("--json");
        }
        let o = e.run(&args);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let t = text(&o);
        assert!(raw_controls(&t).is_empty(), "{t:?}");
        assert!(!t.contains('\u{202e}'), "{t:?}");
        assert!(
            t.contains("web\\u{1b}]52") || t.contains("web\\u001b]52"),
            "{t}"
        );
        if json_flag {
            // Escaped, not lost: the JSON still holds the name as the host gave it.
            let v: Value = serde_json::from_str(
                std::str::from_utf8(&o.stdout)
                    .unwrap()
                    .lines()
                    .next()
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(v["name"], evil);
        }
    }
    let out = e.out().display().to_string();
    for json_flag in [false, true] {
        let mut args = vec![
            "export", "hyperv", "locked", evil, "--config", &config, "--output", &out,
        ];
        if json_flag {
            args.push("--json");
        }
        let o = e.run(&args);
        assert_ne!(o.status.code(), Some(0), "{}", text(&o));
        let t = text(&o);
        assert!(raw_controls(&t).is_empty(), "{t:?}");
        assert!(t.contains("denied"), "{t}");
    }
    let h = e.run(&["history"]);
    assert!(raw_controls(&text(&h)).is_empty(), "{:?}", text(&h));
    let h = e.run(&["history", "--json"]);
    assert!(raw_controls(&text(&h)).is_empty(), "{:?}", text(&h));
    assert!(!text(&h).contains('\u{9b}'), "{:?}", text(&h));
}

#[test]
fn a_client_failure_exits_by_its_kind_and_a_batch_runs_the_other_providers() {
    let e = env();
    let missing = json!({"powershell_path": "/nonexistent/pwsh"}).to_string();
    let o = e.run(&["export", "hyperv", "vm1", "--config", &missing]);
    let t = text(&o);
    // No PowerShell is "unsupported" (8), not bad input (2).
    assert_eq!(o.status.code(), Some(8), "{t}");

    let peer = serve(1, 64 << 10, 0);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "unused").unwrap();
    let profile = dir.path().join("wave.toml");
    std::fs::write(
        &profile,
        format!(
            r#"
[providers.broken]
provider = "hyperv"
config = {{ powershell_path = "/nonexistent/pwsh" }}

[providers.web]
provider = "http"

[[export]]
provider = "broken"
sources = ["vm1"]
output = "out/hv"

[[export]]
provider = "web"
sources = ["{}/file0.bin"]
output = "out/web"
"#,
            peer.url
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("out/hv")).unwrap();
    std::fs::create_dir_all(dir.path().join("out/web")).unwrap();
    // Run from elsewhere: `output` is relative to the profile.
    let o = e
        .cmd()
        .current_dir(e.out())
        .args(["batch", profile.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(8), "{t}");
    let results: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "result")
        .collect();
    assert_eq!(results.len(), 2, "{t}");
    let web = results.iter().find(|r| r["provider"] == "http").unwrap();
    assert_eq!(web["status"], "done", "{t}");
    let hv = results.iter().find(|r| r["provider"] == "hyperv").unwrap();
    assert_eq!(hv["exit_code"], 8, "{t}");
    assert!(
        hv["error"]["message"]
            .as_str()
            .unwrap()
            .contains("[providers.broken]"),
        "{t}"
    );
    assert_eq!(
        std::fs::metadata(dir.path().join("out/web/file0.bin"))
            .unwrap()
            .len(),
        64 << 10
    );
}

#[test]
fn commands_finishing_together_never_share_a_history_id() {
    let peer = serve(1, 4 << 10, 0);
    let e = env();
    let url = format!("{}/file0.bin", peer.url);
    // Each run fails at once on a file that is already there: many records land together.
    std::fs::write(e.out().join("file0.bin"), b"kept").unwrap();
    let out = e.out().display().to_string();
    let children: Vec<_> = (0..12)
        .map(|_| {
            e.cmd()
                .args(["export", "http", &url, &url, &url, &url, "--output", &out])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        c.wait().unwrap();
    }
    let ids: Vec<u64> = history_lines(e.state.path())
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 48);
    let unique: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
}
