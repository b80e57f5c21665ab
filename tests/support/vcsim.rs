//! Starts the vcsim test peer (tests/peers/vcsim: vcsim + ExportVm + CreateDescriptor) and the
//! govc built from the same govmomi, building both with `go build` (cached by Go) if needed.
#![allow(dead_code)]

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub fn tools_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("peers");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn go_build(pkg: &str, out: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/vcsim");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(out)
        .arg(pkg)
        .current_dir(&src)
        .status()
        .expect("go is needed to build the vcsim peer");
    assert!(
        status.success(),
        "building {pkg} in tests/peers/vcsim failed"
    );
}

static BUILD: std::sync::Once = std::sync::Once::new();

/// Paths of the peer and govc binaries, built once per test process.
pub fn binaries() -> (PathBuf, PathBuf) {
    let dir = tools_dir();
    let (peer, govc) = (dir.join("vcsim-peer"), dir.join("govc"));
    BUILD.call_once(|| {
        go_build(".", &peer);
        go_build("./cmd/govc", &govc);
    });
    (peer, govc)
}

/// Two disk fixtures made with qemu-img: a 3 MiB VMDK of random data and a 64 MiB empty one.
pub fn fixtures(dir: &Path) -> Vec<PathBuf> {
    let raw = dir.join("data.raw");
    std::fs::write(&raw, super::server::pattern(3 << 20, 77)).unwrap();
    let d0 = dir.join("d0.vmdk");
    let d1 = dir.join("d1.vmdk");
    let ok = Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "vmdk"])
        .arg(&raw)
        .arg(&d0)
        .status();
    assert!(ok.expect("qemu-img (apt: qemu-utils) is needed").success());
    let ok = Command::new("qemu-img")
        .args(["create", "-q", "-f", "vmdk"])
        .arg(&d1)
        .arg("64M")
        .status()
        .unwrap();
    assert!(ok.success());
    vec![d0, d1]
}

pub struct Peer {
    child: Child,
    pub info: serde_json::Value,
    pub dir: tempfile::TempDir,
}

impl Peer {
    /// Starts the peer with the disk fixtures for DC0_H0_VM0 and extra flags.
    pub fn start(extra: &[&str]) -> Peer {
        let dir = tempfile::tempdir().unwrap();
        let disks = fixtures(dir.path());
        Peer::start_in(dir, &disks, extra)
    }

    /// Starts the peer with flat disks (`-flat`, changed block tracking: cbt.go) for
    /// DC0_H0_VM0, one per raw image given (each a multiple of 512 bytes), and extra flags.
    pub fn start_flat(disks: &[Vec<u8>], extra: &[&str]) -> Peer {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = disks
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let p = dir.path().join(format!("flat{i}.raw"));
                std::fs::write(&p, d).unwrap();
                p
            })
            .collect();
        let mut all = vec!["-flat"];
        all.extend_from_slice(extra);
        Peer::start_in(dir, &paths, &all)
    }

    fn start_in(dir: tempfile::TempDir, disks: &[PathBuf], extra: &[&str]) -> Peer {
        let (bin, _) = binaries();
        let mut cmd = Command::new(bin);
        cmd.arg("-dir").arg(dir.path());
        for d in disks {
            cmd.arg("-disk").arg(d);
        }
        let mut child = cmd
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info: serde_json::Value = serde_json::from_str(&line).expect("peer ready line");
        Peer { child, info, dir }
    }

    pub fn url(&self) -> String {
        self.info["url"].as_str().unwrap().to_string()
    }

    pub fn ca_file(&self) -> String {
        self.info["ca_file"].as_str().unwrap().to_string()
    }

    pub fn config(&self) -> String {
        serde_json::json!({
            "url": self.url(), "username": "admin", "password": "s3cret-pass", "ca_bundle_path": self.ca_file()
        })
        .to_string()
    }

    pub fn disk_files(&self) -> Vec<PathBuf> {
        self.info["disk_files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| PathBuf::from(v.as_str().unwrap()))
            .collect()
    }

    pub fn moref(&self, vm: &str) -> String {
        self.info["vms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == vm)
            .map(|v| v["moref"].as_str().unwrap().to_string())
            .unwrap()
    }

    /// What clients did (GET /hs-stats).
    pub fn stats(&self) -> serde_json::Value {
        let url = self.url().replace("/sdk", "/hs-stats");
        http_get(&url, &self.ca_file()).1
    }

    /// A control request to the peer (`/hs-write?…`, `/hs-resize?…`, cbt.go): POST `body`.
    pub fn control(&self, path_and_query: &str, body: Vec<u8>) {
        let url = self.url().replace("/sdk", path_and_query);
        let ca = self.ca_file();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let status = rt.block_on(async {
            let pem = std::fs::read(ca).unwrap();
            let client = reqwest::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
                .build()
                .unwrap();
            client.post(&url).body(body).send().await.unwrap().status()
        });
        assert!(status.is_success(), "{path_and_query}: HTTP {status}");
    }

    pub fn govc(&self) -> Command {
        let (_, govc) = binaries();
        let mut c = Command::new(govc);
        c.env("GOVC_URL", self.url())
            .env("GOVC_USERNAME", "admin")
            .env("GOVC_PASSWORD", "s3cret-pass")
            .env("GOVC_TLS_CA_CERTS", self.ca_file())
            .env("GOVC_PERSIST_SESSION", "false");
        c
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GET trusting `ca_file`: (status, JSON body or Null).
pub fn http_get(url: &str, ca_file: &str) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pem = std::fs::read(ca_file).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .build()
            .unwrap();
        let r = client.get(url).send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        )
    })
}

/// Exports vcsim's DC0_H0_VM0 with `config` and default options into a new folder, to its end
/// (the folder is returned with the result so its files outlive the call).
pub fn export_vm(config: &str) -> (hypersdk::ExportResult, tempfile::TempDir) {
    let client = hypersdk::Client::new("vsphere", config).unwrap();
    let out = tempfile::tempdir().unwrap();
    let e = client
        .start_export(
            "DC0_H0_VM0",
            &super::opts(out.path(), serde_json::json!({})),
            None,
        )
        .unwrap();
    (super::wait_long(&e), out)
}
