//! The `hypersdk` command driven as a user would: its binary against the project's HTTP peer
//! (examples/serve, built by `cargo build --examples`), each test with its own history folder.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{BIN, Env, env, json_lines, serve, text};

#[test]
fn text_mode_on_a_pipe_exports_every_source_and_summarizes() {
    let peer = serve(2, 1 << 20, 0);
    let e = env();
    let out = e.out().display().to_string();
    let (a, b) = (
        format!("{}/file0.bin", peer.url),
        format!("{}/file1.bin", peer.url),
    );
    let o = e.run(&["export", "http", &a, &b, "--output", &out]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("2 of 2 exports done"), "{s}");
    assert!(!s.contains('\u{1b}'), "terminal escapes on a pipe: {s}");
    assert!(s.contains("file0.bin: done ("), "no progress lines: {s}");
    for f in ["file0.bin", "file1.bin"] {
        assert_eq!(std::fs::metadata(e.out().join(f)).unwrap().len(), 1 << 20);
    }
}

#[test]
fn json_events_parse_and_end_with_one_result_per_export() {
    let peer = serve(3, 512 << 10, 0);
    let e = env();
    let out = e.out().display().to_string();
    let srcs: Vec<String> = (0..3)
        .map(|i| format!("{}/file{i}.bin", peer.url))
        .collect();
    let mut args = vec!["export", "http", "--json", "--output", &out];
    args.extend(srcs.iter().map(String::as_str));
    let o = e.run(&args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let ev = json_lines(&o);
    let results: Vec<&Value> = ev.iter().filter(|v| v["event"] == "result").collect();
    assert_eq!(results.len(), 3, "{ev:?}");
    assert!(
        ev[ev.len() - 3..].iter().all(|v| v["event"] == "result"),
        "the results come last"
    );
    for r in &results {
        assert_eq!(r["status"], "done");
        assert_eq!(r["exit_code"], 0);
        assert!(r["history_id"].as_u64().is_some());
    }
    let progress = ev.iter().filter(|v| v["event"] == "progress").count();
    assert!(progress >= 3, "{progress} progress events");
    assert!(ev.iter().any(|v| v["phase"] == "done"));
    // An ETA the library cannot tell (queued, before any rate) is null, never -1 seconds.
    let etas: Vec<&Value> = ev
        .iter()
        .filter(|v| v["event"] == "progress")
        .map(|v| &v["eta_seconds"])
        .collect();
    assert!(etas.iter().any(|t| t.is_null()), "{etas:?}");
    assert!(
        etas.iter()
            .all(|t| t.is_null() || t.as_f64().unwrap() >= 0.0),
        "{etas:?}"
    );

    // A failure before any export starts reaches a JSON reader on stdout too (the message also
    // on stderr), with the kind from the error and the exit code.
    let o = e.run(&["export", "nosuch", "x", "--json", "--output", &out]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let ev = json_lines(&o);
    let last = ev.last().expect("no JSON event for the failure");
    assert_eq!(last["event"], "error", "{last}");
    assert_eq!(last["error"]["kind"], "invalid_argument", "{last}");
    assert_eq!(last["exit_code"], 2, "{last}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("nosuch"),
        "{}",
        text(&o)
    );
}

#[test]
fn exit_codes_follow_the_worst_outcome() {
    let peer = serve(1, 64 << 10, 0);
    let e = env();
    let out = e.out().display().to_string();
    let good = format!("{}/file0.bin", peer.url);
    let missing = format!("{}/nope.bin", peer.url);
    let o = e.run(&[
        "export",
        "http",
        &good,
        "--output",
        &out,
        "-o",
        "overwrite=true",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = e.run(&[
        "export",
        "http",
        &good,
        &missing,
        "--output",
        &out,
        "-o",
        "overwrite=true",
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "not found wins over done: {}",
        text(&o)
    );
    let o = e.run(&[
        "export",
        "http",
        &good,
        "--output",
        &out,
        "-o",
        "bogus_option=1",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("bogus_option"),
        "{}",
        text(&o)
    );
    let o = e.run(&["export", "nosuch", "x", "--output", &out]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = e.run(&["export", "http", &good, "--output", &out]);
    assert_eq!(
        o.status.code(),
        Some(7),
        "an existing file is a local-file error: {}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("(-o overwrite=true)"),
        "the error names the library's key, not the command's flag: {}",
        text(&o)
    );
}

/// Starts `hypersdk` with `args`, waits until the partial file holds `at_least` bytes, sends
/// SIGINT, and returns the output.
/// An export of `src` (4 MiB from a peer paced at 1 MiB/s per connection) in small parts, two
/// at a time (fixed: the part count would grow and end it in a second, before its journal's
/// first write), sent `sig` once 256 KiB of it and its journal are on disk.
fn slow_export(e: &Env, src: &str, sig: i32) -> Output {
    let out = e.out().display().to_string();
    let args = [
        "export",
        "http",
        src,
        "--output",
        &out,
        "-o",
        "part_size=262144",
        "-o",
        "parts_in_flight=2",
        "-o",
        "max_parts_in_flight=2",
    ];
    signal(e, &args, &e.out().join("file0.bin.hspart"), 256 << 10, sig)
}

/// Runs the command until `partial` holds `at_least` bytes, then sends it `sig`.
fn signal(e: &Env, args: &[&str], partial: &Path, at_least: u64, sig: i32) -> Output {
    let child = e
        .cmd()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0) < at_least
        || !journal_covers(partial, 1)
    {
        assert!(t.elapsed() < Duration::from_secs(60), "no bytes arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: a plain syscall on our own child.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
    child.wait_with_output().unwrap()
}

fn journal_covers(partial: &Path, n: u64) -> bool {
    let j = PathBuf::from(format!("{}.journal", partial.display()));
    std::fs::read(j)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| {
            v["done"].as_array().map(|r| {
                r.iter()
                    .map(|x| x[1].as_u64().unwrap_or(0) - x[0].as_u64().unwrap_or(0))
                    .sum::<u64>()
            })
        })
        .is_some_and(|c| c >= n)
}

#[test]
fn ctrl_c_cancels_exits_130_and_history_resumes_the_export() {
    let peer = serve(1, 4 << 20, 1 << 20);
    let e = env();
    let o = slow_export(&e, &format!("{}/file0.bin", peer.url), libc::SIGINT);
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    let all = text(&o);
    assert!(all.contains("interrupted"), "{all}");
    assert!(
        !e.out().join("file0.bin").exists(),
        "a final file after Ctrl+C"
    );
    // The summary shows what the cancelled export had of the total, not the total.
    let row = String::from_utf8_lossy(&o.stdout)
        .lines()
        .skip_while(|l| !l.starts_with("id "))
        .find(|l| l.contains("cancelled"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no summary row: {all}"));
    assert!(row.contains("/4.0 MiB"), "{row}");

    // The history has it, cancelled; --resume fetches only what is missing.
    let h = e.run(&["history", "--json"]);
    let recs = json_lines(&h);
    assert_eq!(recs.len(), 1, "{}", text(&h));
    assert_eq!(recs[0]["status"], "cancelled");
    let id = recs[0]["id"].as_u64().unwrap().to_string();
    let r = e.run(&["history", "--resume", &id, "--json"]);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r));
    let res = json_lines(&r)
        .into_iter()
        .find(|v| v["event"] == "result")
        .unwrap();
    assert!(res["bytes_resumed"].as_u64().unwrap() > 0, "{res}");
    assert_eq!(
        std::fs::metadata(e.out().join("file0.bin")).unwrap().len(),
        4 << 20
    );
    let h = e.run(&["history"]);
    let s = String::from_utf8_lossy(&h.stdout);
    assert!(s.contains("cancelled") && s.contains("done"), "{s}");
    assert!(
        s.contains("crc32c:") || s.contains("sha256:") || s.contains("no checksum"),
        "{s}"
    );
    let again = e.run(&["history", "--resume", &id]);
    assert_ne!(
        again.status.code(),
        Some(0),
        "a done export was resumed again? {}",
        text(&again)
    );
}

#[test]
fn sigterm_and_sighup_cancel_and_record_like_ctrl_c() {
    let peer = serve(1, 4 << 20, 1 << 20);
    for (i, sig) in [libc::SIGTERM, libc::SIGHUP].into_iter().enumerate() {
        let e = env();
        let o = slow_export(&e, &format!("{}/file0.bin", peer.url), sig);
        // Killed outright, a process shows the signal and no code; cancelled, it exits 130.
        assert_eq!(o.status.code(), Some(130), "signal {i}: {}", text(&o));
        assert!(text(&o).contains("interrupted"), "{}", text(&o));
        let recs = json_lines(&e.run(&["history", "--json"]));
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0]["status"], "cancelled");
        assert!(
            e.out().join("file0.bin.hspart").exists(),
            "the partial file was kept"
        );
    }
}

#[test]
fn batch_runs_by_priority_and_keeps_secrets_out_of_the_profile() {
    // One slot: a slow export holds it while the others queue; they start by priority.
    let slow = serve(1, 2 << 20, 2 << 20);
    let fast = serve(3, 64 << 10, 0);
    let e = env();
    let dir = e.out().display().to_string();
    let profile = e.state.path().join("p.toml");
    std::fs::write(
        &profile,
        format!(
            r#"
max_concurrent = 1

[providers.web]
provider = "http"
config = {{}}

[[export]]
provider = "web"
sources = ["{s}/file0.bin"]
output = "{dir}/slow"
priority = 100

[[export]]
provider = "web"
sources = ["{f}/file0.bin"]
output = "{dir}/low"
priority = 1

[[export]]
provider = "web"
sources = ["{f}/file1.bin"]
output = "{dir}/high"
priority = 50

[[export]]
provider = "web"
sources = ["{f}/file2.bin"]
output = "{dir}/mid"
priority = 10
"#,
            s = slow.url,
            f = fast.url
        ),
    )
    .unwrap();
    for d in ["slow", "low", "high", "mid"] {
        std::fs::create_dir(e.out().join(d)).unwrap();
    }
    let o = e.run(&["batch", profile.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let ev = json_lines(&o);
    let mut started: Vec<String> = Vec::new();
    for v in &ev {
        if v["event"] == "progress" && v["phase"] != "queued" {
            let x = v["export"].as_str().unwrap().to_string();
            if !started.contains(&x) {
                started.push(x);
            }
        }
    }
    let order: Vec<&str> = started
        .iter()
        .map(|s| match s {
            s if s.contains(&slow.url) => "slow",
            s if s.ends_with("file0.bin") => "low",
            s if s.ends_with("file1.bin") => "high",
            _ => "mid",
        })
        .collect();
    assert_eq!(order, ["slow", "high", "mid", "low"], "{started:?}");
    assert!(
        ev.iter().any(|v| v["phase"] == "queued"),
        "nothing was ever queued"
    );

    std::fs::write(
        &profile,
        "[providers.vc]\nprovider = \"vsphere\"\nconfig = { url = \"https://vc/sdk\", username = \"u\", password = \"hunter2\" }\n\n[[export]]\nprovider = \"vc\"\nsources = [\"vm\"]\noutput = \"/tmp\"\n",
    )
    .unwrap();
    let o = e.run(&["batch", profile.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let all = text(&o);
    assert!(all.contains("must not be written in the profile"), "{all}");
    assert!(!all.contains("hunter2"), "{all}");
}

#[test]
fn bars_redraw_in_place_on_a_terminal_and_end_full() {
    let peer = serve(1, 2 << 20, 4 << 20);
    let e = env();
    let cmd = format!(
        "'{}' export http '{}/file0.bin' --output '{}'",
        BIN,
        peer.url,
        e.out().display()
    );
    // util-linux `script` gives the command a pseudo-terminal and copies what it draws.
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("HYPERSDK_STATE_DIR", e.state.path())
        .env("TERM", "xterm")
        .env("COLUMNS", "160")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("\u{1b}[") || s.contains('\r'),
        "no redraw sequences on a terminal: {s:?}"
    );
    assert!(s.contains("100%"), "the bar never reached 100 %: {s:?}");
    assert!(s.contains("1 of 1 exports done"), "{s}");
}

#[test]
fn help_has_examples() {
    for args in [
        vec!["--help"],
        vec!["export", "--help"],
        vec!["batch", "--help"],
        vec!["history", "--help"],
    ] {
        let o = Command::new(BIN).args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(0));
        let s = String::from_utf8_lossy(&o.stdout);
        assert!(s.contains("hypersdk "), "{args:?}: {s}");
        assert!(
            s.to_lowercase().contains("example"),
            "{args:?} has no example: {s}"
        );
    }
}

/// The GCP peer of tests/peers/gcp (fake-gcs-server behind the Compute + Cloud Build stand-in),
/// started for one test.
struct Gcp {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Gcp {
    fn drop(&mut self) {
        // Closing stdin stops the stand-in, which stops fake-gcs-server.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn gcp() -> Gcp {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/peers/gcp");
    let out = Command::new(root.join("install.sh")).output().unwrap();
    assert!(out.status.success(), "tests/peers/gcp/install.sh failed");
    let fake = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("python3")
        .arg(root.join("gcp_standin.py"))
        .args(["--fake-gcs", &fake, "--workdir"])
        .arg(dir.path())
        .arg("--exit-on-stdin-eof")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: Value = serde_json::from_str(&line).unwrap();
    let g = Gcp {
        child,
        url: format!("http://127.0.0.1:{}", info["port"]),
        dir,
    };
    g.admin(
        "client",
        serde_json::json!({"refresh_token": "rt", "client_secret": "cs"}),
    );
    g.admin("bucket", serde_json::json!({"name": "cli-exports"}));
    g
}

impl Gcp {
    fn admin(&self, what: &str, body: Value) -> Value {
        let out = Command::new("curl")
            .args(["-sS", "-X", "POST", "-d", &body.to_string()])
            .arg(format!("{}/_admin/{what}", self.url))
            .output()
            .unwrap();
        assert!(out.status.success(), "admin {what}");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// A config file as users keep them.
    fn config_file(&self) -> PathBuf {
        let creds = serde_json::json!({"type": "authorized_user", "client_id": "c", "client_secret": "cs",
            "refresh_token": "rt", "token_uri": format!("{}/token", self.url)});
        let p = self.dir.path().join("gcp.json");
        std::fs::write(
            &p,
            serde_json::json!({"project": "cli-proj-1", "zone": "europe-west1-b", "bucket": "cli-exports",
                "credentials_json": creds.to_string(), "storage_endpoint": self.url,
                "compute_endpoint": self.url, "cloudbuild_endpoint": self.url,
                "resourcemanager_endpoint": self.url, "serviceusage_endpoint": self.url,
                "artifactregistry_endpoint": self.url, "gcr_endpoint": self.url, "iam_endpoint": self.url})
            .to_string(),
        )
        .unwrap();
        p
    }

    fn disk(&self, name: &str, faults: Value) {
        let raw = self.dir.path().join(format!("{name}.raw"));
        std::fs::write(&raw, vec![7u8; 1 << 20]).unwrap();
        self.admin(
            "disk",
            serde_json::json!({"project": "cli-proj-1", "zone": "europe-west1-b", "name": name, "raw": raw}),
        );
        self.admin(
            "faults",
            serde_json::json!({"name": name, "faults": faults}),
        );
    }
}

#[test]
fn sigterm_while_the_cloud_works_undoes_it_at_the_peer_and_list_shows_the_disks() {
    let g = gcp();
    g.disk("held-disk", serde_json::json!({"hold_build": true}));
    let e = env();
    let conf = g.config_file();
    let out = e.out().display().to_string();

    // list: the disk is there, filtered by kind and name.
    let l = e.run(&[
        "list",
        "gcp",
        "--config",
        conf.to_str().unwrap(),
        "--kind",
        "disk",
        "--name-contains",
        "HELD",
    ]);
    assert_eq!(l.status.code(), Some(0), "{}", text(&l));
    let s = String::from_utf8_lossy(&l.stdout);
    assert!(
        s.contains("projects/cli-proj-1/zones/europe-west1-b/disks/held-disk"),
        "{s}"
    );
    assert!(s.contains("1 source(s)"), "{s}");

    // Ctrl+C while Cloud Build works: the build is cancelled and the image deleted before exit.
    let mut child = e
        .cmd()
        .args([
            "export",
            "gcp",
            "held-disk",
            "--config",
            conf.to_str().unwrap(),
            "--output",
            &out,
            "-o",
            "poll_interval_ms=50",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    loop {
        let st = g.admin("stats", serde_json::json!({}));
        if st["builds"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b["status"] == "WORKING"))
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the build never started: {st}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: a plain syscall on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let o = {
        let t = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                break child.wait_with_output().unwrap();
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "no exit after Ctrl+C"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    let st = g.admin("stats", serde_json::json!({}));
    assert_eq!(st["builds_cancelled"], 1, "{st}");
    assert_eq!(st["images_made"], st["images_deleted"], "{st}");
    assert!(text(&o).contains("interrupted"), "{}", text(&o));

    // A failure lands in the history too, with its error.
    let f = e.run(&[
        "export",
        "gcp",
        "no-such-disk",
        "--config",
        conf.to_str().unwrap(),
        "--output",
        &out,
    ]);
    assert_eq!(f.status.code(), Some(3), "{}", text(&f));
    let h = json_lines(&e.run(&["history", "--json"]));
    assert_eq!(h.len(), 2, "{h:?}");
    assert_eq!(h[0]["status"], "failed");
    assert_eq!(h[0]["error"]["kind"], "not_found");
    assert_eq!(h[1]["status"], "cancelled");
    assert_eq!(h[1]["config_file"], conf.to_str().unwrap());
    let all: String = h.iter().map(|v| v.to_string()).collect();
    assert!(
        !all.contains("\"rt\"") && !all.contains("refresh_token"),
        "a secret in the history: {all}"
    );
}

/// `--dry-run` starts nothing: a GCP disk's plan names the temporary image, the build and the
/// object, and the stand-in saw no image made and no build; an HTTP source on a port nothing
/// listens on is planned (a real run fails there, exit 5), no folder is made and the history
/// stays empty; bad options are refused as a start refuses them. `--transfers` reaches each
/// export's parallel_files. A batch whose output folder cannot be made exits 7 (a local file
/// problem), dry run or not.
#[test]
fn dry_run_starts_nothing_and_transfers_reach_the_options() {
    let g = gcp();
    g.disk("plan-disk", serde_json::json!({}));
    let e = env();
    let conf = g.config_file();
    let out = e.out().join("not/yet");
    let out_s = out.display().to_string();
    let o = e.run(&[
        "export",
        "gcp",
        "plan-disk",
        "--config",
        conf.to_str().unwrap(),
        "--output",
        &out_s,
        "--dry-run",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let plan = &json_lines(&o)[0];
    assert_eq!(plan["event"], "dry_run", "{plan}");
    let cloud = plan["cloud"].to_string();
    assert!(
        cloud.contains("temporary image") && cloud.contains("Cloud Build"),
        "{plan}"
    );
    assert_eq!(plan["files"][0], "plan-disk.vmdk", "{plan}");
    let st = g.admin("stats", serde_json::json!({}));
    assert_eq!(st["images_made"], 0, "{st}");
    assert!(st["builds"].as_array().is_none_or(|b| b.is_empty()), "{st}");

    let src = "http://127.0.0.1:1/disk.img";
    let o = e.run(&["export", "http", src, "--output", &out_s, "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("nothing is made") && s.contains("- disk.img"),
        "{s}"
    );
    assert!(s.contains("(made when the export runs)"), "{s}");
    assert!(!out.exists(), "a dry run made the output folder");
    assert!(json_lines(&e.run(&["history", "--json"])).is_empty());
    let o = e.run(&[
        "export",
        "http",
        src,
        "--output",
        &out_s,
        "--dry-run",
        "-o",
        "parallel_filez=2",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("parallel_files"), "{}", text(&o));
    let o = e.run(&["export", "http", src, "--output", &out_s, "-q"]);
    assert_eq!(o.status.code(), Some(5), "the real run: {}", text(&o));

    let peer = serve(1, 64 << 10, 0);
    let o = e.run(&[
        "export",
        "http",
        &format!("{}/file0.bin", peer.url),
        "--output",
        &out_s,
        "-q",
        "--transfers",
        "3",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let h = json_lines(&e.run(&["history", "--json"]));
    assert_eq!(h[0]["options"]["parallel_files"], 3, "{h:?}");
    // With --skip-done, a dry run says what a run would skip.
    let o = e.run(&[
        "export",
        "http",
        &format!("{}/file0.bin", peer.url),
        "--output",
        &out_s,
        "--skip-done",
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("skipped: done as history #"),
        "{}",
        text(&o)
    );

    std::fs::write(e.out().join("a-file"), b"x").unwrap();
    let profile = e.out().join("p.toml");
    std::fs::write(
        &profile,
        "[providers.web]\nprovider = \"http\"\n\n[[export]]\nprovider = \"web\"\n\
         sources = [\"http://127.0.0.1:1/x.img\"]\noutput = \"a-file/sub\"\n",
    )
    .unwrap();
    for dry in [true, false] {
        let mut args = vec!["batch", profile.to_str().unwrap()];
        if dry {
            args.push("--dry-run");
        }
        let o = e.run(&args);
        assert_eq!(o.status.code(), Some(7), "dry run {dry}: {}", text(&o));
    }
}

/// `clean` removes the leftovers of an export that did not finish (a dry run only lists them)
/// and leaves everything else; `-v` and `--log-file` show the library's log, which is silent
/// otherwise; completions and the man page come from the same definitions as `--help`.
#[test]
fn clean_log_completions_and_man() {
    let peer = serve(1, 256 << 10, 0);
    let e = env();
    let out = e.out().display().to_string();
    let leftovers = ["x.vmdk.hspart", "x.vmdk.hspart.journal"];
    for f in leftovers {
        std::fs::write(e.out().join(f), b"partial").unwrap();
    }
    std::fs::write(e.out().join("kept.vmdk"), b"done").unwrap();
    let o = e.run(&["clean", &out, "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("would remove"), "{}", text(&o));
    assert!(leftovers.iter().all(|f| e.out().join(f).exists()));
    let o = e.run(&["clean", &out, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let ev = json_lines(&o);
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(ev.iter().all(|v| v["action"] == "removed"), "{ev:?}");
    assert!(leftovers.iter().all(|f| !e.out().join(f).exists()));
    assert!(e.out().join("kept.vmdk").exists());

    let src = format!("{}/file0.bin", peer.url);
    let o = e.run(&["export", "http", &src, "--output", &out]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("export ended"),
        "a log without -v: {}",
        text(&o)
    );
    let o = e.run(&[
        "-v",
        "export",
        "http",
        &src,
        "--output",
        &out,
        "-o",
        "overwrite=true",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("export ended"), "{}", text(&o));
    assert!(!err.contains('\u{1b}'), "colours on a pipe: {err}");
    let log = e.state.path().join("hs.log");
    let o = e.run(&[
        "export",
        "http",
        &src,
        "--output",
        &out,
        "-o",
        "overwrite=true",
        "--log-file",
        log.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("export ended") && logged.contains("status=\"done\""),
        "{logged}"
    );

    let o = e.run(&["completions", "bash"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("_hypersdk()"),
        "{}",
        text(&o)
    );
    let o = e.run(&["man"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(".TH hypersdk 1"),
        "{}",
        text(&o)
    );
}

/// `-q` prints nothing on stdout for a done export and one line on stderr for a failed one;
/// the output folder is made when missing; `--bwlimit-per-export 1M` reaches every export's
/// options (the history records them); a rate without a known unit is refused by name.
#[test]
fn quiet_missing_folder_and_bandwidth_flags() {
    let peer = serve(1, 64 << 10, 0);
    let e = env();
    let out = e.out().join("new/sub");
    let out_s = out.display().to_string();
    let src = format!("{}/file0.bin", peer.url);
    let o = e.run(&[
        "export",
        "http",
        &src,
        "-q",
        "--output",
        &out_s,
        "--bwlimit-per-export",
        "1M",
        "--bwlimit",
        "1.5G",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(o.stdout.is_empty() && o.stderr.is_empty(), "{}", text(&o));
    assert_eq!(
        std::fs::metadata(out.join("file0.bin")).unwrap().len(),
        64 << 10
    );
    let h = json_lines(&e.run(&["history", "--json"]));
    assert_eq!(h[0]["options"]["max_bytes_per_second"], 1 << 20, "{h:?}");

    let o = e.run(&[
        "export",
        "http",
        &format!("{}/nosuch", peer.url),
        "-q",
        "--output",
        &out_s,
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(o.stdout.is_empty(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("nosuch") && err.contains("failed"), "{err}");

    let o = e.run(&[
        "export",
        "http",
        &src,
        "--bwlimit",
        "5Q",
        "--output",
        &out_s,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--bwlimit"),
        "{}",
        text(&o)
    );
}

/// Keys a config leaves out come from the variables govc reads: with GOVC_URL (user and
/// password in it) and no --config at all, `list vsphere` gets as far as the network (exit 5:
/// nothing listens there), where without it the config is incomplete (exit 2). A --secret
/// value must be env: or file:, never the secret itself.
#[test]
fn govc_variables_stand_in_for_the_config() {
    let e = env();
    let o = e
        .cmd()
        .args(["list", "vsphere"])
        .env_remove("GOVC_URL")
        .env_remove("GOVC_USERNAME")
        .env_remove("GOVC_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = e
        .cmd()
        .args([
            "list",
            "vsphere",
            "--config",
            r#"{"connect_timeout_ms": 2000}"#,
        ])
        .env("GOVC_URL", "https://admin:pa55word@127.0.0.1:1/sdk")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(!text(&o).contains("pa55word"), "{}", text(&o));
    let o = e
        .cmd()
        .args(["list", "vsphere", "--secret", "password=hunter2"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("env:NAME or file:PATH"), "{}", text(&o));
}

/// `--skip-done`: a rerun skips an export the history has as done when its files are intact
/// (no request, no new record), and runs it again once a file changed size.
#[test]
fn a_rerun_with_skip_done_runs_only_what_is_not_done() {
    let peer = serve(2, 128 << 10, 0);
    let e = env();
    let out = e.out().display().to_string();
    let (a, b) = (
        format!("{}/file0.bin", peer.url),
        format!("{}/file1.bin", peer.url),
    );
    let o = e.run(&["export", "http", &a, "--output", &out]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = e.run(&["export", "http", &a, &b, "--output", &out, "--skip-done"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("file0.bin: skipped: done in export 1"), "{s}");
    assert!(s.contains("1 of 1 exports done"), "only file1 ran: {s}");
    assert_eq!(json_lines(&e.run(&["history", "--json"])).len(), 2);
    // `history show` gives one record whole.
    let o = e.run(&["history", "show", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("status    done") && s.contains("file0.bin (131072 bytes"),
        "{s}"
    );
    assert_eq!(e.run(&["history", "show", "99"]).status.code(), Some(2));

    // A file that changed is not done any more.
    std::fs::write(e.out().join("file0.bin"), b"short").unwrap();
    let o = e.run(&[
        "export",
        "http",
        &a,
        "--output",
        &out,
        "--skip-done",
        "-o",
        "overwrite=true",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let ev = json_lines(&o);
    assert!(
        ev.iter()
            .any(|v| v["event"] == "result" && v["status"] == "done"),
        "{ev:?}"
    );
    assert_eq!(
        std::fs::metadata(e.out().join("file0.bin")).unwrap().len(),
        128 << 10
    );
}

/// A named account of the accounts file ($HYPERSDK_CONFIG, `[providers.NAME]` as in a batch
/// profile) stands for provider and config: `export web …` runs the http provider with its
/// config and the history records where it came from; a broken account is refused by name.
#[test]
fn a_named_account_of_the_accounts_file_stands_for_provider_and_config() {
    let peer = serve(1, 64 << 10, 0);
    let e = env();
    let out = e.out().display().to_string();
    let accounts = e.state.path().join("config.toml");
    std::fs::write(
        &accounts,
        "[providers.web]\nprovider = \"http\"\nconfig = { connect_timeout_ms = 5000 }\n\n\
         [providers.broken]\nprovider = \"http\"\nconfig = { no_such_key = 1 }\n",
    )
    .unwrap();
    let src = format!("{}/file0.bin", peer.url);
    let o = e
        .cmd()
        .args(["export", "web", &src, "--output", &out])
        .env("HYPERSDK_CONFIG", &accounts)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let h = json_lines(&e.run(&["history", "--json"]));
    assert_eq!(h[0]["provider"], "http", "{h:?}");
    assert_eq!(h[0]["profile"]["provider"], "web", "{h:?}");
    let o = e
        .cmd()
        .args(["export", "broken", &src, "--output", &out])
        .env("HYPERSDK_CONFIG", &accounts)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no_such_key"), "{}", text(&o));
}

/// Local file problems exit 7, as the help says (not 2, bad input): an output folder that
/// cannot be made (a file stands in its way) and a log file that cannot be opened. A resume
/// takes `--secret` as `export` does (a secret value itself is refused, naming the form).
#[test]
fn local_file_problems_exit_7_and_a_resume_takes_secrets() {
    let peer = serve(1, 64 << 10, 0);
    let e = env();
    std::fs::write(e.out().join("a-file"), b"x").unwrap();
    let blocked = e.out().join("a-file/sub").display().to_string();
    let src = format!("{}/file0.bin", peer.url);
    let o = e.run(&["export", "http", &src, "--output", &blocked, "--json"]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert_eq!(
        json_lines(&o).last().unwrap()["error"]["kind"],
        "io",
        "{}",
        text(&o)
    );
    let out = e.out().display().to_string();
    let log = e.out().join("no-such-folder/log.txt").display().to_string();
    let o = e.run(&["--log-file", &log, "export", "http", &src, "--output", &out]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));

    let o = e.run(&[
        "export",
        "http",
        &format!("{}/nosuch", peer.url),
        "--output",
        &out,
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let id = json_lines(&e.run(&["history", "--json"]))[0]["id"]
        .as_u64()
        .unwrap()
        .to_string();
    let o = e.run(&["history", "--resume", &id, "--secret", "password=hunter2"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("env:NAME or file:PATH") && !text(&o).contains("hunter2"),
        "{}",
        text(&o)
    );
}
