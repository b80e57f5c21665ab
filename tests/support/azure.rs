//! One Azure peer for the whole test process: Azurite (real blob storage, HTTPS) behind the ARM
//! and Entra ID stand-in of tests/peers/azure, installed by tests/peers/azure/install.sh on
//! first use; it exits when this process does (stdin closes).
#![allow(dead_code)]

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

pub struct Azure {
    pub info: Value,
    pub ca_pem: String,
    pub dir: tempfile::TempDir,
    _child: Mutex<(Child, ChildStdin)>,
}

fn tools() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    Path::new(&home).join(".cache/hypersdk-tools")
}

pub fn azure() -> &'static Azure {
    static PEER: OnceLock<Azure> = OnceLock::new();
    PEER.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/azure");
        let s = Command::new(root.join("install.sh"))
            .status()
            .expect("run install.sh");
        assert!(
            s.success(),
            "tests/peers/azure/install.sh failed (npm azurite, pip)"
        );
        let dir = super::static_tempdir();
        let cert = super::server::TestCert::new();
        let (cp, kp) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cp, &cert.cert_pem).unwrap();
        std::fs::write(&kp, &cert.key_pem).unwrap();
        let work = dir.path().join("azurite");
        std::fs::create_dir(&work).unwrap();
        let mut child = Command::new(tools().join("azure-venv/bin/python"))
            .arg(root.join("arm_standin.py"))
            .arg("--azurite")
            .arg(tools().join("azurite/node_modules/.bin/azurite-blob"))
            .arg("--cert")
            .arg(&cp)
            .arg("--key")
            .arg(&kp)
            .arg("--workdir")
            .arg(&work)
            .arg("--exit-on-stdin-eof")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the Azure peer");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info: Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("Azure peer said {line:?}"));
        assert!(info.get("error").is_none(), "Azure peer: {info}");
        let stdin = child.stdin.take().unwrap();
        Azure {
            info,
            ca_pem: cert.cert_pem.clone(),
            dir,
            _child: Mutex::new((child, stdin)),
        }
    })
}

impl Azure {
    pub fn s(&self, k: &str) -> String {
        self.info[k].as_str().unwrap().to_string()
    }

    pub fn config_with_secret(&self, secret: &str) -> String {
        json!({
            "subscription_id": self.s("subscription"),
            "resource_group": "rg1",
            "tenant_id": self.s("tenant"),
            "client_id": self.s("client_id"),
            "client_secret": secret,
            "arm_endpoint": self.s("arm"),
            "authority_host": self.s("arm"),
            "ca_bundle_pem": self.ca_pem,
            "api_timeout_ms": 20000,
            // Azurite and the blob proxy: the hosts a token may go to besides Azure Storage's.
            "token_hosts": ["127.0.0.1"],
        })
        .to_string()
    }

    pub fn config(&self) -> String {
        self.config_with_secret(&self.s("client_secret"))
    }

    /// Makes a disk (or snapshot) in the stand-in whose blob holds the non-zero pages of `path`.
    pub fn add(
        &self,
        kind: &str,
        name: &str,
        path: &Path,
        state: &str,
        md5: Option<&str>,
    ) -> Value {
        admin(
            "POST",
            &format!("{}/_admin/disks", self.s("arm")),
            json!({"kind": kind, "name": name, "rg": "rg1", "path": path, "state": state, "md5": md5}),
            &self.ca_pem,
        )
    }

    pub fn add_vm(&self, name: &str, os_disk: &str, data: &[(u32, &str)]) {
        admin(
            "POST",
            &format!("{}/_admin/vms", self.s("arm")),
            json!({"name": name, "rg": "rg1", "os_disk": os_disk, "data_disks": data}),
            &self.ca_pem,
        );
    }

    /// A SAS of a disk's blob made outside any grant (a page blob URL as users have them).
    pub fn sas(&self, disk: &str) -> String {
        let v = admin(
            "POST",
            &format!("{}/_admin/sas", self.s("arm")),
            json!({"rg": "rg1", "name": disk}),
            &self.ca_pem,
        );
        v["sas"].as_str().unwrap().to_string()
    }

    /// Sets the stand-in's faults for one disk (replacing its last ones); `{}` clears them.
    pub fn faults(&self, disk: &str, mut f: Value) {
        f["disk"] = json!(disk);
        admin(
            "POST",
            &format!("{}/_admin/faults", self.s("arm")),
            f,
            &self.ca_pem,
        );
    }

    /// Registers the certificate (PEM, public part) the test app trusts for certificate
    /// credentials.
    pub fn trust_certificate(&self, pem: &str) {
        admin(
            "POST",
            &format!("{}/_admin/certificate", self.s("arm")),
            json!({ "pem": pem }),
            &self.ca_pem,
        );
    }

    /// Another admin call of the stand-in (`write`, `resize`, `delete-snapshot`), by POST.
    pub fn admin(&self, call: &str, body: Value) -> Value {
        admin(
            "POST",
            &format!("{}/_admin/{call}", self.s("arm")),
            body,
            &self.ca_pem,
        )
    }

    pub fn stats(&self) -> Value {
        admin(
            "GET",
            &format!("{}/_admin/stats", self.s("arm")),
            Value::Null,
            &self.ca_pem,
        )
    }

    /// What happened to one disk (and the snapshots made of it): grants, revokes,
    /// snapshots_made, snapshots_deleted, active_policies, last_sas, state, snapshots_left.
    pub fn disk(&self, name: &str) -> Value {
        admin(
            "GET",
            &format!(
                "{}/_admin/stats?disk={}",
                self.s("arm"),
                url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
            ),
            Value::Null,
            &self.ca_pem,
        )
    }
}

fn admin(method: &str, url: &str, body: Value, ca: &str) -> Value {
    super::block_on_peer(async {
        let c = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
            .build()
            .unwrap();
        let r = if method == "GET" {
            c.get(url)
        } else {
            c.post(url).body(body.to_string())
        }
        .send()
        .await
        .unwrap();
        assert!(r.status().is_success(), "admin {url}: {}", r.status());
        serde_json::from_str(&r.text().await.unwrap()).unwrap_or_default()
    })
}
