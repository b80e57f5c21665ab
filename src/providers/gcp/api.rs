//! Compute Engine through its REST API (compute v1, as its discovery document writes it) on the project's own client: a bearer token per attempt from
//! google-cloud-auth, answers capped at [`MAX_BODY`], the kit's one retry rule, `Retry-After`
//! honoured, the configured CA bundle. (Google's SDK crates read every answer whole, whatever
//! its size, with their own client and retry loop.)

use reqwest::Method;
use serde_json::{Value, json};
use url::Url;

use super::storage::GcpSigner;
use crate::error::{Error, Result};
use crate::providers::kit::paging::Pages;
use crate::providers::kit::text::one_line;
use crate::providers::kit::{ApiClient, Call};

/// Largest Compute or Cloud Build answer read (a page of 500 listed instances is well under).
pub(crate) const MAX_BODY: usize = 16 << 20;

pub(crate) struct Gce {
    pub client: ApiClient,
    pub signer: GcpSigner,
    /// Compute's root (`https://compute.googleapis.com`): paths are `compute/v1/projects/…`.
    pub compute: Url,
    /// Cloud Build's root (`https://cloudbuild.googleapis.com`): paths are `v1/projects/…`.
    pub cloudbuild: Url,
    /// Cloud Resource Manager's root: `v1/projects/…`.
    pub resourcemanager: Url,
    /// Service Usage's root: `v1/projects/…/services/…`.
    pub serviceusage: Url,
    /// Artifact Registry's root: `v1/projects/…/locations/…/repositories/…`.
    pub artifactregistry: Url,
    /// Container Registry's root (`https://gcr.io`): `v2/{project}/{image}/manifests/{tag}`.
    pub gcr: Url,
    /// IAM's root: `v1/roles/…`, `v1/projects/…/roles/…` (roles' permissions).
    pub iam: Url,
}

/// A disk as the flow needs it.
#[derive(Debug, Clone)]
pub(crate) struct DiskInfo {
    pub self_link: String,
    pub attached: bool,
    pub size_gb: Option<u64>,
}

/// An instance's disk, in export order.
#[derive(Debug, Clone)]
pub(crate) struct AttachedDisk {
    /// `projects/P/zones/Z/disks/N`, `projects/P/regions/R/disks/N` (or a full URL).
    pub source: String,
    pub boot: bool,
    pub index: i64,
}

/// A compute operation as seen by one poll.
pub(crate) struct OpState {
    pub done: bool,
    pub progress: i64,
    pub error: Option<String>,
}

/// A JSON integer that Google writes as a string when it is 64-bit (`sizeGb`, `diskSizeGb`)
/// and as a number otherwise (`progress`, `index`).
pub(super) fn int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

pub(super) fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// `{root}/{segments…}`, each segment encoded as one.
pub(super) fn url(root: &Url, segments: &[&str]) -> Url {
    let mut u = root.clone();
    u.path_segments_mut()
        .expect("http(s) URL")
        .pop_if_empty()
        .extend(segments);
    u
}

/// A listed disk: (name, bytes, status, attached).
fn disk_row(d: &Value) -> (String, Option<u64>, String, bool) {
    (
        text(&d["name"]),
        int(&d["sizeGb"]).map(|g| (g.max(0) as u64) << 30),
        text(&d["status"]),
        d["users"].as_array().is_some_and(|u| !u.is_empty()),
    )
}

impl Gce {
    fn compute_url(&self, project: &str, rest: &[&str]) -> Url {
        let mut s = vec!["compute", "v1", "projects", project];
        s.extend_from_slice(rest);
        url(&self.compute, &s)
    }

    /// One call; its JSON answer and the answer's size.
    pub(super) async fn send(
        &self,
        call: &Call<'_>,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<(Value, u64)> {
        let a = self
            .client
            .call(call, &self.signer, &|| {
                let r = self.client.http.request(method.clone(), url.clone());
                match body {
                    Some(b) => r.json(b),
                    None => r,
                }
            })
            .await?;
        let v: Value = serde_json::from_slice(&a.body)
            .map_err(|e| Error::Remote(format!("{}: the answer is not JSON: {e}", call.what)))?;
        Ok((v, a.body.len() as u64))
    }

    pub(super) async fn get(&self, what: &str, url: Url) -> Result<Value> {
        Ok(self
            .send(&Call::read(what), Method::GET, url, None)
            .await?
            .0)
    }

    /// A disk; `location` is `zones/Z` or `regions/R` (a regional disk: `regionDisks.get`).
    pub async fn disk(&self, project: &str, location: &str, name: &str) -> Result<DiskInfo> {
        let path = format!("projects/{project}/{location}/disks/{name}");
        let (kind, place) = location.split_once('/').expect("zones/Z or regions/R");
        let u = self.compute_url(project, &[kind, place, "disks", name]);
        let d = self.get(&format!("GCE disk {path}"), u).await?;
        Ok(DiskInfo {
            self_link: d["selfLink"].as_str().map(str::to_string).unwrap_or(path),
            attached: d["users"].as_array().is_some_and(|u| !u.is_empty()),
            size_gb: int(&d["sizeGb"]).map(|g| g.max(0) as u64),
        })
    }

    /// The instance's disks: boot first, then by index.
    pub async fn instance_disks(
        &self,
        project: &str,
        zone: &str,
        name: &str,
    ) -> Result<Vec<AttachedDisk>> {
        let u = self.compute_url(project, &["zones", zone, "instances", name]);
        let what = format!("GCE instance projects/{project}/zones/{zone}/instances/{name}");
        let i = self.get(&what, u).await?;
        let mut disks: Vec<AttachedDisk> = i["disks"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|d| {
                Some(AttachedDisk {
                    source: d["source"].as_str()?.to_string(),
                    boot: d["boot"].as_bool().unwrap_or(false),
                    index: int(&d["index"]).unwrap_or(i64::MAX),
                })
            })
            .collect();
        disks.sort_by_key(|d| (!d.boot, d.index));
        Ok(disks)
    }

    /// `images.insert` of `name` from `source_disk` (forceCreate for a disk in use: the
    /// instance keeps running). The request id makes a retried insert the same insert, so it
    /// is sent again like a read. Returns the operation's name.
    pub async fn insert_image(
        &self,
        project: &str,
        name: &str,
        source_disk: &str,
        force: bool,
        request_id: &str,
    ) -> Result<String> {
        let what = format!("creating image {name}");
        let mut u = self.compute_url(project, &["global", "images"]);
        u.query_pairs_mut()
            .append_pair("forceCreate", if force { "true" } else { "false" })
            .append_pair("requestId", request_id);
        let body = json!({
            "name": name,
            "sourceDisk": source_disk,
            "description": "hypersdk export: temporary, deleted after the export",
        });
        let (op, _) = self
            .send(&Call::read(&what), Method::POST, u, Some(&body))
            .await?;
        op["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .ok_or_else(|| Error::Remote(format!("{what}: no operation name")))
    }

    /// An image's status (`READY`, `PENDING`, `FAILED`, …) and size in GiB: NotFound for an
    /// image that does not exist, before anything is made for it.
    pub async fn image_status(&self, project: &str, name: &str) -> Result<(String, Option<u64>)> {
        let u = self.compute_url(project, &["global", "images", name]);
        let i = self
            .get(
                &format!("GCE image projects/{project}/global/images/{name}"),
                u,
            )
            .await?;
        Ok((
            text(&i["status"]),
            int(&i["diskSizeGb"]).map(|g| g.max(0) as u64),
        ))
    }

    /// Deletes an image; the operation's name, `None` when there was no such image.
    pub async fn delete_image(&self, project: &str, name: &str) -> Result<Option<String>> {
        let what = format!("deleting image {name}");
        let u = self.compute_url(project, &["global", "images", name]);
        match self.send(&Call::read(&what), Method::DELETE, u, None).await {
            Ok((op, _)) => Ok(op["name"].as_str().map(str::to_string)),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One poll of a global operation (`globalOperations.get`).
    pub async fn global_op(&self, project: &str, op: &str) -> Result<OpState> {
        let u = self.compute_url(project, &["global", "operations", op]);
        let o = self.get(&format!("operation {op}"), u).await?;
        let error = o["error"]["errors"].as_array().map(|errs| {
            errs.iter()
                .map(|x| {
                    format!(
                        "{}: {}",
                        x["code"].as_str().unwrap_or("error"),
                        one_line(x["message"].as_str().unwrap_or(""))
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        });
        Ok(OpState {
            done: o["status"] == "DONE",
            progress: int(&o["progress"]).unwrap_or(0),
            error: error.filter(|e| !e.is_empty()),
        })
    }

    /// Every item of a paged Compute listing (`items`, `nextPageToken`), under the kit's
    /// paging guard.
    async fn list(&self, what: &str, base: Url) -> Result<Vec<Value>> {
        let mut pages = Pages::new(what);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut u = base.clone();
            if let Some(t) = &token {
                u.query_pairs_mut().append_pair("pageToken", t);
            }
            let (mut v, len) = tokio::time::timeout(
                pages.remaining(),
                self.send(&Call::read(what), Method::GET, u, None),
            )
            .await
            .map_err(|_| Error::Timeout(format!("{what}: still paging at its deadline")))??;
            let items = match v["items"].take() {
                Value::Array(a) => a,
                _ => Vec::new(),
            };
            pages.page(items.len(), len)?;
            out.extend(items);
            match v["nextPageToken"].as_str() {
                Some(t) if !t.is_empty() => {
                    pages.next(t)?;
                    token = Some(t.to_string());
                }
                _ => return Ok(out),
            }
        }
    }

    /// Disks of one zone: (name, bytes, status, attached).
    pub async fn list_disks(
        &self,
        project: &str,
        zone: &str,
    ) -> Result<Vec<(String, Option<u64>, String, bool)>> {
        let what = format!("listing disks of projects/{project}/zones/{zone}");
        let u = self.compute_url(project, &["zones", zone, "disks"]);
        Ok(self.list(&what, u).await?.iter().map(disk_row).collect())
    }

    /// Regional disks of one region (`regionDisks.list`): (name, bytes, status, attached).
    pub async fn list_region_disks(
        &self,
        project: &str,
        region: &str,
    ) -> Result<Vec<(String, Option<u64>, String, bool)>> {
        let what = format!("listing disks of projects/{project}/regions/{region}");
        let u = self.compute_url(project, &["regions", region, "disks"]);
        Ok(self.list(&what, u).await?.iter().map(disk_row).collect())
    }

    /// Instances of one zone: (name, status, bytes of its disks).
    pub async fn list_instances(
        &self,
        project: &str,
        zone: &str,
    ) -> Result<Vec<(String, String, u64)>> {
        let what = format!("listing instances of projects/{project}/zones/{zone}");
        let u = self.compute_url(project, &["zones", zone, "instances"]);
        Ok(self
            .list(&what, u)
            .await?
            .iter()
            .map(|i| {
                let gb: i64 = i["disks"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|d| int(&d["diskSizeGb"]))
                    .sum();
                (
                    text(&i["name"]),
                    text(&i["status"]),
                    (gb.max(0) as u64) << 30,
                )
            })
            .collect())
    }

    /// The project's own images: (name, bytes, status).
    pub async fn list_images(&self, project: &str) -> Result<Vec<(String, Option<u64>, String)>> {
        let what = format!("listing images of project {project}");
        let u = self.compute_url(project, &["global", "images"]);
        Ok(self
            .list(&what, u)
            .await?
            .iter()
            .map(|i| {
                (
                    text(&i["name"]),
                    int(&i["diskSizeGb"]).map(|g| (g.max(0) as u64) << 30),
                    text(&i["status"]),
                )
            })
            .collect())
    }
}
