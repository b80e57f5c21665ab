//! What the command's tests share: its binary, the project's HTTP peer (examples/serve, built
//! by `cargo build --examples`), a history folder and an output folder per test.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_hypersdk");

/// The project's HTTP peer: `count` files of `size` bytes, paced per connection.
pub struct Peer {
    child: Child,
    pub url: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve(count: usize, size: usize, pace: u64) -> Peer {
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
        .args([count.to_string(), size.to_string(), pace.to_string()])
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

pub struct Env {
    pub state: tempfile::TempDir,
    pub out: tempfile::TempDir,
}

pub fn env() -> Env {
    Env {
        state: tempfile::tempdir().unwrap(),
        out: tempfile::tempdir().unwrap(),
    }
}

impl Env {
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env("HYPERSDK_STATE_DIR", self.state.path());
        // The log's level is each test's to choose (-v, --log-file), not the caller's shell's.
        c.env_remove("RUST_LOG");
        // No accounts file of the machine's user: a test that wants one sets it.
        c.env(
            "HYPERSDK_CONFIG",
            self.state.path().join("no-accounts-file.toml"),
        );
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    pub fn out(&self) -> &Path {
        self.out.path()
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn json_lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}
