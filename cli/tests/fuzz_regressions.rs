//! What fuzzing the command's parsers found (fuzz/, scripts/fuzz.sh), as tests of the binary
//! against the project's HTTP peer (examples/serve, built by `cargo build --examples`).

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_hypersdk");

struct Peer {
    child: Child,
    url: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The project's HTTP peer with one file of `size` bytes.
fn serve(size: usize) -> Peer {
    let exe = std::env::current_exe().unwrap();
    let serve = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/serve");
    assert!(
        serve.exists(),
        "{} is missing: run `cargo build --examples` first",
        serve.display()
    );
    let mut child = Command::new(serve)
        .args(["1", &size.to_string(), "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("READY ")
        .expect("READY line")
        .to_string();
    Peer { child, url }
}

fn history(state: &std::path::Path) -> Vec<Value> {
    let o = Command::new(BIN)
        .env("HYPERSDK_STATE_DIR", state)
        .args(["history", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "history failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A record cut short inside a character (a crash while appending a source named `ü…`) is not
/// UTF-8. It is skipped like any torn line: the history still lists the other records, and the
/// next export is still recorded (reading the whole file as one string failed on it, so
/// `history` failed and every later record was silently lost).
#[test]
fn a_record_cut_inside_a_character_is_skipped() {
    let state = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let good =
        r#"{"id":1,"time":0,"provider":"http","source":"http://h/a","status":"failed","files":[]}"#;
    let mut torn = br#"{"id":2,"time":0,"provider":"http","source":"http://h/"#.to_vec();
    torn.push(0xc3); // the first byte of `ü`, and the crash
    let mut file = format!("{good}\n").into_bytes();
    file.extend_from_slice(&torn);
    file.push(b'\n');
    std::fs::write(state.path().join("history.jsonl"), &file).unwrap();

    let before = history(state.path());
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0]["id"], 1);

    let peer = serve(4096);
    let o = Command::new(BIN)
        .env("HYPERSDK_STATE_DIR", state.path())
        .args([
            "export",
            "http",
            &format!("{}/file0.bin", peer.url),
            "--output",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let after = history(state.path());
    assert_eq!(after.len(), 2, "the export was not recorded: {after:?}");
    assert_eq!(after[0]["status"], "done");
    assert_eq!(after[0]["id"], 2);
}
