//! One moto server for the whole test process (tests/peers/moto: moto + the EC2 export-task
//! stand-in), in a venv made on first use; it exits when this process does (stdin closes).
#![allow(dead_code)]

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

pub struct Moto {
    pub info: serde_json::Value,
    pub fixture: Vec<u8>,
    _child: Mutex<(Child, ChildStdin)>,
    _dir: tempfile::TempDir,
}

pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("HS_MOTO_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let venv = Path::new(&home).join(".cache/hypersdk-tools/moto-venv");
    let py = venv.join("bin/python");
    let req = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/moto/requirements.txt");
    let ok = py.exists()
        && Command::new(&py)
            .args(["-c", "import moto, boto3, awscrt"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    if !ok {
        let s = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .expect("python3 -m venv");
        assert!(s.success(), "creating the moto venv failed");
        let s = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "-r"])
            .arg(&req)
            .status()
            .expect("pip");
        assert!(
            s.success(),
            "pip install -r tests/peers/moto/requirements.txt failed"
        );
    }
    py
}

pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("disk.raw");
        std::fs::write(&raw, super::server::pattern(1 << 20, 31)).unwrap();
        let vmdk = dir.path().join("disk.vmdk");
        let s = Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", "vmdk"])
            .arg(&raw)
            .arg(&vmdk)
            .status();
        assert!(s.expect("qemu-img (apt: qemu-utils)").success());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/moto/moto_peer.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg("--fixture")
            .arg(&vmdk)
            .arg("--exit-on-stdin-eof")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the moto peer");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("moto peer said {line:?}"));
        let stdin = child.stdin.take().unwrap();
        Moto {
            info,
            fixture: std::fs::read(&vmdk).unwrap(),
            _child: Mutex::new((child, stdin)),
            _dir: dir,
        }
    })
}

impl Moto {
    pub fn s(&self, k: &str) -> String {
        self.info[k].as_str().unwrap().to_string()
    }

    pub fn config(&self) -> String {
        serde_json::json!({
            "region": "us-east-1", "endpoint_url": self.s("endpoint"),
            "access_key_id": self.s("access_key_id"), "secret_access_key": self.s("secret_access_key"),
        })
        .to_string()
    }

    /// A config with the peer's admin user (allowed everything), for what goes beyond AWS's
    /// documented VM Import/Export policy the test user holds (listing a bucket, deleting).
    pub fn admin_config(&self) -> String {
        serde_json::json!({
            "region": "us-east-1", "endpoint_url": self.s("endpoint"),
            "access_key_id": self.s("admin_access_key_id"),
            "secret_access_key": self.s("admin_secret_access_key"),
        })
        .to_string()
    }

    /// Stores an object through the peer with extra query settings (`checksum=crc64nvme`,
    /// `sse=aws:kms`, …).
    pub fn put_with(&self, bucket: &str, key: &str, data: Vec<u8>, query: &str) {
        control_with(
            "PUT",
            &format!(
                "{}/object?bucket={bucket}&key={key}&{query}",
                self.s("control")
            ),
            data,
        );
    }

    /// Stores an object through the peer (boto3 on moto's S3 API), with a stored SHA-256
    /// checksum when asked.
    pub fn put(&self, bucket: &str, key: &str, data: Vec<u8>, with_checksum: bool) {
        let sum = if with_checksum {
            "&checksum=sha256"
        } else {
            ""
        };
        control_with(
            "PUT",
            &format!(
                "{}/object?bucket={bucket}&key={key}{sum}",
                self.s("control")
            ),
            data,
        );
    }

    /// Whether the object exists (HeadObject through the peer).
    pub fn exists(&self, bucket: &str, key: &str) -> bool {
        let v = control(
            "GET",
            &format!("{}/object?bucket={bucket}&key={key}", self.s("control")),
        );
        v[0].as_bool().unwrap()
    }

    /// The peer's export tasks (GET /tasks on its control port).
    pub fn tasks(&self) -> Vec<serde_json::Value> {
        control("GET", &format!("{}/tasks", self.s("control")))
    }

    /// Flips bytes of an object, keeping its stored checksum and ETag.
    pub fn corrupt(&self, bucket: &str, key: &str) {
        control(
            "POST",
            &format!("{}/corrupt?bucket={bucket}&key={key}", self.s("control")),
        );
    }
}

fn control(method: &str, url: &str) -> Vec<serde_json::Value> {
    control_with(method, url, Vec::new())
}

fn control_with(method: &str, url: &str, body: Vec<u8>) -> Vec<serde_json::Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        let r = match method {
            "GET" => c.get(url),
            "PUT" => c.put(url).body(body),
            _ => c.post(url),
        }
        .send()
        .await
        .unwrap();
        assert!(r.status().is_success(), "control {url}: {}", r.status());
        serde_json::from_str(&r.text().await.unwrap()).unwrap_or_default()
    })
}
