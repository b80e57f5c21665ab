//! The Hyper-V local transport of the Windows build under Wine: PowerShell found as Windows
//! finds it (PATH, here a folder with a space), spawned with Windows' quoting (what
//! `CommandLineToArgvW` gives back is what the library meant), the crate's scripts run end to
//! end by the stand-in (tests/peers/hyperv, reached through tests/c/win/pwsh_relay.c as
//! `pwsh.exe`), and a cancel ending PowerShell's whole job object, a grandchild included.
//! Ignored in a plain `cargo test`; scripts/test.sh runs them under Wine (or says SKIPPED).
#![cfg(feature = "hyperv")]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use support::hyperv::{HyperV, disks, vm};
use support::wine::{wine, z};
use support::wine_pwsh::{Linger, PwshRelay};

const ID1: &str = "6f1c2a3b-0d4e-4f5a-8b9c-0d1e2f3a4b5c";

/// A fake host whose drive `Z:` is this machine's `/`, as Wine shows it to the library (the
/// stand-in's `share` maps a host path prefix to a local folder).
fn host(vm_faults: serde_json::Value) -> HyperV {
    HyperV::new(json!({
        "vms": [vm("web 01", ID1, vm_faults)],
        "share": {"host": "Z:\\", "local": "/"},
    }))
}

/// `pwsh.exe` (the relay) in `<dir>/Power Shell 7/`: the folder to put in PATH.
fn install_pwsh(dir: &Path) -> std::path::PathBuf {
    let folder = dir.join("Power Shell 7");
    std::fs::create_dir(&folder).unwrap();
    wine().compile_tool(
        "pwsh_relay",
        &folder.join("pwsh.exe"),
        &["-lws2_32", "-lshell32"],
    );
    folder
}

/// Processes whose command line holds `token` (Wine's processes show their Windows one).
fn with_token(token: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true);
        if !zombie && String::from_utf8_lossy(&cmd).contains(token) {
            out.push(pid);
        }
    }
    out
}

#[test]
#[ignore = "needs the Windows build under Wine (scripts/test.sh runs it)"]
fn a_hyperv_export_from_the_windows_build_runs_the_scripts_through_pwsh_found_in_path() {
    let w = wine();
    let hv = host(json!({"write_delay_ms": 5, "chunk": 262144}));
    let relay = PwshRelay::start(&hv.pwsh, None);
    let tools = tempfile::tempdir().unwrap();
    let folder = install_pwsh(tools.path());
    let out = tempfile::tempdir().unwrap();
    let o = w.output(
        w.command(&w.exe("examples/fetch.exe"))
            .env("WINEPATH", support::wine::native(&folder))
            .env("HS_PWSH_RELAY", relay.addr.to_string())
            .args([
                "--provider",
                "hyperv",
                "--options",
                r#"{"poll_file_interval_ms": 20}"#,
                &z(out.path()),
                "web 01",
            ]),
    );
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let vm_folder = out.path().join("web 01");
    for (i, d) in disks().iter().enumerate() {
        let f = vm_folder.join(format!("Virtual Hard Disks/disk{i}.vhdx"));
        assert_eq!(std::fs::read(&f).unwrap(), std::fs::read(&d.vhdx).unwrap());
    }
    let calls = relay.calls();
    let scripts: Vec<String> = hv
        .calls()
        .iter()
        .map(|c| c["script"].as_str().unwrap_or("?").to_string())
        .collect();
    assert!(
        scripts.iter().any(|s| s == "inventory") && scripts.iter().any(|s| s == "export"),
        "{scripts:?}"
    );
    assert_eq!(
        calls.len(),
        scripts.len(),
        "every call went through pwsh.exe"
    );
    let exe = format!("{}\\pwsh.exe", support::wine::native(&folder));
    for c in &calls {
        // The program found in PATH, its path quoted (it holds spaces), and the arguments as
        // the library gave them, whatever Windows' parser did with the line.
        assert!(
            c.argv[0].eq_ignore_ascii_case(&exe),
            "argv[0] {:?}, want {exe:?}",
            c.argv[0]
        );
        assert!(
            c.command_line.starts_with('"'),
            "unquoted program path: {}",
            c.command_line
        );
        assert_eq!(
            c.argv[1..4],
            ["-NoProfile", "-NonInteractive", "-EncodedCommand"],
            "{c:?}"
        );
        assert_eq!(c.argv.len(), 5, "{c:?}");
    }
}

#[test]
#[ignore = "needs the Windows build under Wine (scripts/test.sh runs it)"]
fn a_cancel_ends_powershells_whole_job_object_under_wine() {
    let w = wine();
    let hv = host(json!({"write_delay_ms": 200, "chunk": 65536}));
    let tools = tempfile::tempdir().unwrap();
    // Unique to this test: the lingering grandchild's command line carries it. Only the
    // export's PowerShell starts one (a grandchild holds the pipes' ends under Wine, which
    // leaks its Unix descriptors to every child, so a finished call's would keep its stdout
    // open).
    let token = format!(
        "hslinger{}",
        tools.path().file_name().unwrap().to_string_lossy()
    );
    let relay = PwshRelay::start(
        &hv.pwsh,
        Some(Linger {
            script: include_str!("../src/providers/hyperv/scripts/export.ps1").to_string(),
            token: token.clone(),
        }),
    );
    let folder = install_pwsh(tools.path());
    let out = tempfile::tempdir().unwrap();
    let build = tempfile::tempdir().unwrap();
    let exe = w.compile_c("hyperv_cancel", build.path());
    let (go, done) = (build.path().join("go"), build.path().join("done"));
    let mut child = w
        .command(&exe)
        .env("WINEPATH", support::wine::native(&folder))
        .env("HS_PWSH_RELAY", relay.addr.to_string())
        .args(["web 01", &z(out.path()), &z(&go), &z(&done)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(build.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    // The export's pwsh.exe started its lingerer.
    while with_token(&token).is_empty() {
        assert!(t.elapsed() < Duration::from_secs(60), "no lingering child");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the program ended early"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(&go, "").unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut said = String::new();
    // Read until "cancelled": the program then waits for `done`.
    let mut buf = [0u8; 256];
    while !said.contains("cancelled") {
        use std::io::Read as _;
        let n = stdout.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "the program ended without cancelling: {said}{}",
            std::fs::read_to_string(build.path().join("stderr")).unwrap_or_default()
        );
        said.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // The program is still running (its job handles open): only the cancel can have ended
    // the lingerers. Wine ends them asynchronously: give it time, on a loaded machine.
    let t = Instant::now();
    while !with_token(&token).is_empty() && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let left = with_token(&token);
    std::fs::write(&done, "").unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(
        left.is_empty(),
        "PowerShell's grandchildren outlived the cancel: {left:?}"
    );
    assert!(relay.calls().len() >= 2, "{:?}", relay.calls());
}
