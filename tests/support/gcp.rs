//! One GCP peer for the whole test process: fake-gcs-server (real object storage: ranges,
//! crc32c, generations, versioning) behind the Compute + Cloud Build + Resource Manager +
//! Service Usage stand-in of tests/peers/gcp, which holds every request to Google's discovery
//! documents, checks a bearer token on every call and mints tokens through the OAuth refresh
//! flow. Built and started on first use; it exits when this process does (stdin closes).
#![allow(dead_code)]

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

/// A client of the shared peer with its default config.
pub fn client() -> hypersdk::Client {
    hypersdk::Client::new("gcp", &gcp().config(json!({}))).unwrap()
}

/// Export options for `dir` with a quick poll, plus `extra`.
pub fn gopts(dir: &Path, extra: Value) -> String {
    let mut o = json!({"poll_interval_ms": 50});
    for (k, v) in extra.as_object().unwrap() {
        o[k] = v.clone();
    }
    super::opts(dir, o)
}

/// An export of `src` into a temp folder of its own (kept alive with the result).
pub fn export(src: &str, extra: Value) -> (hypersdk::ExportResult, tempfile::TempDir) {
    let out = tempfile::tempdir().unwrap();
    let r = super::wait_long(
        &client()
            .start_export(src, &gopts(out.path(), extra), None)
            .unwrap(),
    );
    (r, out)
}

/// Edits a stand-in project (`/_admin/project`: services, roles, bindings, custom roles).
pub fn edit(project: &str, e: Value) {
    let mut b = json!({"project": project});
    for (k, v) in e.as_object().unwrap() {
        b[k] = v.clone();
    }
    gcp().admin("project", b);
}

/// A project of its own, numbered `number`, with a zonal disk `disk` (1 MiB of a pattern) in
/// ZONE; returns the disk's bytes.
pub fn project_with_disk(project: &str, number: &str, disk: &str) -> Vec<u8> {
    let g = gcp();
    g.admin("project", json!({"project": project, "number": number}));
    let raw = super::server::pattern(1 << 20, 97);
    let p = g.dir.path().join(format!("{project}-{disk}.raw"));
    std::fs::write(&p, &raw).unwrap();
    g.admin(
        "disk",
        json!({"project": project, "zone": ZONE, "name": disk, "raw": p}),
    );
    raw
}

/// An access token from the stand-in's OAuth refresh flow (the test client's good refresh
/// token), for calls a test makes to the stand-in itself.
pub async fn access_token(http: &reqwest::Client, base: &str) -> String {
    let tok: Value = http
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "rt-good"),
            ("client_secret", "cs-good"),
            ("client_id", "hs-test-client"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tok["access_token"].as_str().unwrap().to_string()
}

pub const PROJECT: &str = "hs-test-proj";
pub const ZONE: &str = "europe-west1-b";
pub const BUCKET: &str = "hs-exports";
/// The stand-in project's number (it names the two service accounts).
pub const PROJECT_NUMBER: &str = "614120832451";

pub struct Gcp {
    pub port: u16,
    pub gcs_port: u16,
    pub dir: tempfile::TempDir,
    _child: Mutex<(Child, ChildStdin)>,
}

pub fn gcp() -> &'static Gcp {
    static PEER: OnceLock<Gcp> = OnceLock::new();
    PEER.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/gcp");
        let out = Command::new(root.join("install.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run tests/peers/gcp/install.sh");
        assert!(
            out.status.success(),
            "tests/peers/gcp/install.sh failed (fake-gcs-server, the venv)"
        );
        let fake_gcs = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let dir = super::static_tempdir();
        // The stand-in runs itself again under the venv install.sh made.
        let mut child = Command::new("python3")
            .arg(root.join("gcp_standin.py"))
            .arg("--fake-gcs")
            .arg(&fake_gcs)
            .arg("--workdir")
            .arg(dir.path())
            .arg("--exit-on-stdin-eof")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the GCP peer");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info: Value = serde_json::from_str(&line).expect("the GCP peer's first line");
        let stdin = child.stdin.take().unwrap();
        let g = Gcp {
            port: info["port"].as_u64().unwrap() as u16,
            gcs_port: info["gcs_port"].as_u64().unwrap() as u16,
            dir,
            _child: Mutex::new((child, stdin)),
        };
        g.admin(
            "client",
            json!({"refresh_token": "rt-good", "client_secret": "cs-good"}),
        );
        g.admin(
            "project",
            json!({"project": PROJECT, "number": PROJECT_NUMBER}),
        );
        // The exports' bucket exists, as in a real project (its location decides the scratch
        // bucket's).
        g.admin("bucket", json!({"name": BUCKET}));
        g
    })
}

impl Gcp {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn admin(&self, what: &str, body: Value) -> Value {
        let url = format!("{}/_admin/{what}", self.url());
        super::block_on_peer(async {
            let r = reqwest::Client::new()
                .post(url)
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "admin {what}: {}", r.status());
            r.json::<Value>().await.unwrap()
        })
    }

    pub fn stats(&self) -> Value {
        self.admin("stats", json!({}))
    }

    /// A user login (`authorized_user`) whose refresh goes to the stand-in's token endpoint.
    pub fn credentials(&self, refresh_token: &str) -> String {
        json!({
            "type": "authorized_user",
            "client_id": "hs-test-client",
            "client_secret": "cs-good",
            "refresh_token": refresh_token,
            "token_uri": format!("{}/token", self.url()),
        })
        .to_string()
    }

    pub fn config(&self, extra: Value) -> String {
        let mut c = json!({
            "project": PROJECT,
            "zone": ZONE,
            "bucket": BUCKET,
            "prefix": "exports/",
            "credentials_json": self.credentials("rt-good"),
            "storage_endpoint": self.url(),
            "compute_endpoint": self.url(),
            "cloudbuild_endpoint": self.url(),
            "resourcemanager_endpoint": self.url(),
            "serviceusage_endpoint": self.url(),
            "artifactregistry_endpoint": self.url(),
            "gcr_endpoint": self.url(),
            "iam_endpoint": self.url(),
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c.to_string()
    }

    /// A raw disk of `len` known bytes (seed), as the stand-in's disk `name`.
    pub fn disk(&self, name: &str, len: usize, seed: u64, users: &[&str]) -> Vec<u8> {
        self.disk_with(name, len, seed, json!({"zone": ZONE, "users": users}))
    }

    /// A raw disk with more of its attributes given (`region` for a regional disk, `size_gb`,
    /// `users`, `zone`).
    pub fn disk_with(&self, name: &str, len: usize, seed: u64, extra: Value) -> Vec<u8> {
        let raw = super::server::pattern(len, seed);
        let p = self.dir.path().join(format!("{name}.raw"));
        std::fs::write(&p, &raw).unwrap();
        let mut d = json!({"project": PROJECT, "name": name, "raw": p});
        for (k, v) in extra.as_object().unwrap() {
            d[k] = v.clone();
        }
        self.admin("disk", d);
        raw
    }

    /// Edits the stand-in project (see project_model.admin: disable_service, remove_role, …).
    pub fn project(&self, edit: Value) {
        let mut e = json!({"project": PROJECT});
        for (k, v) in edit.as_object().unwrap() {
            e[k] = v.clone();
        }
        self.admin("project", e);
    }

    pub fn faults(&self, name: &str, faults: Value) {
        self.admin("faults", json!({"name": name, "faults": faults}));
    }

    /// Temporary images still alive whose name starts with `hs-{disk}-`.
    pub fn live_images_of(&self, disk: &str) -> Vec<String> {
        self.image_names("live_images", disk)
    }

    /// Builds that exported an image whose name starts with `image_prefix`: {id, status, args,
    /// step, tags, image}.
    pub fn builds_of(&self, image_prefix: &str) -> Vec<Value> {
        self.stats()["builds"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["image"].as_str().unwrap().starts_with(image_prefix))
            .cloned()
            .collect()
    }

    /// Images ever inserted through the API (deleted or not) whose name starts with
    /// `hs-{disk}-`.
    pub fn images_made_of(&self, disk: &str) -> Vec<String> {
        self.image_names("images_made_names", disk)
    }

    /// The names in the stand-in's stats list `key` that start with `hs-{disk}-`.
    fn image_names(&self, key: &str, disk: &str) -> Vec<String> {
        let prefix = format!("hs-{disk}-");
        self.stats()[key]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .filter(|n| n.starts_with(&prefix))
            .map(str::to_string)
            .collect()
    }

    /// Objects of `bucket` whose name starts with `prefix` (fake-gcs-server's own listing).
    pub fn objects_under(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let url = format!(
            "http://127.0.0.1:{}/storage/v1/b/{bucket}/o?prefix={}",
            self.gcs_port,
            url::form_urlencoded::byte_serialize(prefix.as_bytes()).collect::<String>()
        );
        let v: Value =
            super::block_on_peer(async { reqwest::get(url).await.unwrap().json().await.unwrap() });
        v["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|o| o["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The raw bytes of a disk image file (qemu-img convert -O raw).
    pub fn raw_of(&self, file: &Path) -> Vec<u8> {
        let out = tempfile::tempdir().unwrap();
        let raw = out.path().join("x.raw");
        let ok = Command::new("qemu-img")
            .args(["convert", "-O", "raw"])
            .arg(file)
            .arg(&raw)
            .status()
            .unwrap()
            .success();
        assert!(ok, "qemu-img could not read {}", file.display());
        std::fs::read(&raw).unwrap()
    }
}
