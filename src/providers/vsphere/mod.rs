//! vSphere: export a VM (or one of its snapshots) to OVF or OVA over the NFC lease.
//!
//! Flow: login (once per client) → find the VM (inventory path, name or moref) → `ExportVm` /
//! `ExportSnapshot` → wait for the `HttpNfcLease` to be ready → download every disk's device URL
//! (host `*` replaced, session cookie sent) with the core downloader, disks in parallel →
//! `HttpNfcLeaseProgress` every leaseTimeout/4 as keep-alive → `OvfManager.CreateDescriptor`
//! with the files really downloaded → `<vm>.ovf` + `<vm>.mf` (SHA-256) or one `<vm>.ova` →
//! `HttpNfcLeaseComplete`; `HttpNfcLeaseAbort` on failure or cancel. Nothing on the VM changes.

mod ovf;
mod soap;

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{COOKIE, HeaderMap, HeaderValue};
use serde::Deserialize;
use url::Url;

use super::kit::config::parse_with_net;
use super::kit::net::Redirects;
use super::poll::{Backoff, Poll, poll_until};
use super::xml;
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::paths::{sanitize_file_name, validate_file_name};
use crate::seam::options::parse_provider_options;
use crate::seam::{AfterDownload, Flow, FlowCtx, Provider, When};
use crate::secret::Secret;
use crate::transfer::{Downloaded, FileSource, HttpSource, OutDir};
use soap::{Moref, Vim};
use xml::esc;

/// Client config of the `vsphere` provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VsphereConfig {
    /// `https://host/sdk` (a bare host gets `https://` and `/sdk`).
    pub url: String,
    pub username: String,
    /// Never logged, never in an error.
    pub password: Secret,
    // The network keys (CA bundle, insecure flag, connect timeout, the deadline of every SOAP
    // call, login included) are the kit's NetConfig, split off before this struct is parsed.
}

/// Export options of the `vsphere` provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct VsphereOptions {
    /// `ovf` (a folder of .ovf, .mf and disks) or `ova` (one tar). Default `ovf`.
    pub format: String,
    /// Export this snapshot (by name) instead of the VM's current state.
    pub snapshot: Option<String>,
    /// Disks downloaded at the same time, 1–8. Default 2.
    pub parallel_disks: usize,
    /// Base name of the .ovf/.mf/.ova files. Default: the VM's name.
    pub name: Option<String>,
    /// Longest wait for the lease to become ready, ms. Default 600000.
    pub lease_wait_timeout_ms: u64,
    /// The manifest (`.mf`): `sha256` (default), `sha1` (what older vSphere and OVF tools
    /// write), or `none` (no manifest, and no hashing: a plain copy, like `govc export.ovf`
    /// without `-sha`).
    pub manifest: String,
}

impl VsphereOptions {
    /// The digest each disk needs for the manifest.
    pub fn manifest_digest(&self) -> Option<crate::transfer::Digest> {
        match self.manifest.as_str() {
            "sha1" => Some(crate::transfer::Digest::Sha1),
            "none" => None,
            _ => Some(crate::transfer::Digest::Sha256),
        }
    }
}

impl Default for VsphereOptions {
    fn default() -> Self {
        VsphereOptions {
            format: "ovf".into(),
            snapshot: None,
            parallel_disks: 2,
            name: None,
            lease_wait_timeout_ms: 600_000,
            manifest: "sha256".into(),
        }
    }
}

pub(crate) struct VsphereProvider {
    http: reqwest::Client,
    vim: Arc<Vim>,
}

impl VsphereProvider {
    pub fn new(config_json: &str) -> Result<Self> {
        let (cfg, net): (VsphereConfig, _) = parse_with_net("vsphere", config_json)?;
        let mut url = cfg.url.trim().to_string();
        if !url.contains("://") {
            url = format!("https://{url}");
        }
        let mut url = Url::parse(&url)
            .map_err(|e| Error::InvalidArgument(format!("vsphere url {:?}: {e}", cfg.url)))?;
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err(Error::InvalidArgument(
                "vsphere url must be https://host/sdk".into(),
            ));
        }
        if url.path() == "/" || url.path().is_empty() {
            url.set_path("/sdk");
        }
        // No redirects at all: a SOAP call carries the password or the session.
        let http = net.client(Redirects::Never)?;
        let timeout = net.api_timeout();
        let vim = Arc::new(Vim::new(http.clone(), url, timeout));
        // One login per client; the session cookie also authorizes NFC downloads.
        let (v, user, pass) = (vim.clone(), cfg.username.clone(), cfg.password.clone());
        crate::runtime::block_on(async move { v.connect(&user, pass.expose()).await })?;
        Ok(VsphereProvider { http, vim })
    }
}

impl Provider for VsphereProvider {
    fn list<'a>(
        &'a self,
        scope: &'a serde_json::Map<String, serde_json::Value>,
    ) -> BoxFuture<'a, Result<Vec<crate::seam::SourceInfo>>> {
        Box::pin(async move {
            super::scope_keys("vsphere", scope, &[])?;
            let vms = self
                .vim
                .all_vms(&[
                    "name",
                    "runtime.powerState",
                    "summary.storage.committed",
                    "config.template",
                ])
                .await?;
            Ok(vms
                .into_iter()
                .map(|(m, props)| {
                    let get = |k: &str| {
                        props
                            .iter()
                            .find(|(n, _)| n == k)
                            .map(|(_, v)| v.text.clone())
                    };
                    let template = get("config.template").as_deref() == Some("true");
                    crate::seam::SourceInfo {
                        id: m.value.clone(),
                        kind: if template { "image" } else { "vm" },
                        name: get("name").unwrap_or_default(),
                        size_bytes: get("summary.storage.committed").and_then(|c| c.parse().ok()),
                        state: get("runtime.powerState"),
                    }
                })
                .collect())
        })
    }

    fn plan(
        &self,
        source_id: &str,
        _common: &crate::seam::options::CommonOptions,
        options: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Box<dyn Flow>> {
        let o: VsphereOptions = parse_provider_options(options)?;
        if o.format != "ovf" && o.format != "ova" {
            return Err(Error::InvalidArgument(format!(
                "format {:?}: use \"ovf\" or \"ova\"",
                o.format
            )));
        }
        if !["sha256", "sha1", "none"].contains(&o.manifest.as_str()) {
            return Err(Error::InvalidArgument(format!(
                "manifest {:?}: use \"sha256\", \"sha1\" or \"none\"",
                o.manifest
            )));
        }
        if !(1..=8).contains(&o.parallel_disks) {
            return Err(Error::InvalidArgument(
                "parallel_disks must be between 1 and 8".into(),
            ));
        }
        if let Some(n) = &o.name {
            validate_file_name(n)?;
        }
        if source_id.trim().is_empty() {
            return Err(Error::InvalidArgument(
                "source_id must name a VM (inventory path, name or vm-N id)".into(),
            ));
        }
        Ok(Box::new(VsphereFlow {
            vim: self.vim.clone(),
            http: self.http.clone(),
            source: source_id.trim().to_string(),
            opts: o,
            vm: None,
            base_name: String::new(),
            lease: None,
            lease_timeout: Duration::from_secs(300),
            devices: Vec::new(),
        }))
    }
}

#[derive(Debug, Clone)]
struct Device {
    key: String,
    name: String,
}

struct VsphereFlow {
    vim: Arc<Vim>,
    http: reqwest::Client,
    source: String,
    opts: VsphereOptions,
    vm: Option<Moref>,
    base_name: String,
    lease: Option<Moref>,
    lease_timeout: Duration,
    devices: Vec<Device>,
}

impl VsphereFlow {
    async fn find_vm(&self) -> Result<Moref> {
        let s = &self.source;
        let is_moref = s
            .strip_prefix("vm-")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if is_moref {
            let vm = Moref::new("VirtualMachine", s);
            // Checks it exists (a clear not-found rather than a fault later).
            self.vim.properties(&vm, &["name"]).await?;
            return Ok(vm);
        }
        if s.starts_with('/') {
            return match self.vim.find_by_inventory_path(s).await? {
                Some(m) if m.kind == "VirtualMachine" => Ok(m),
                Some(m) => Err(Error::InvalidArgument(format!(
                    "{s} is a {}, not a virtual machine",
                    m.kind
                ))),
                None => Err(Error::NotFound(format!(
                    "no virtual machine at inventory path {s}"
                ))),
            };
        }
        let found = self.vim.find_vms_by_name(s).await?;
        match found.len() {
            0 => Err(Error::NotFound(format!("no virtual machine named {s:?}"))),
            1 => Ok(found.into_iter().next().expect("one")),
            n => Err(Error::InvalidArgument(format!(
                "{n} virtual machines are named {s:?}; give its inventory path or its id (vm-N)"
            ))),
        }
    }

    async fn find_snapshot(&self, vm: &Moref, name: &str) -> Result<Moref> {
        let props = self.vim.properties(vm, &["snapshot"]).await?;
        let tree = props
            .into_iter()
            .find(|(n, _)| n == "snapshot")
            .map(|(_, v)| v);
        fn walk(n: &xml::Node, name: &str, out: &mut Vec<Moref>) {
            if (n.name == "rootSnapshotList" || n.name == "childSnapshotList")
                && n.child_text("name") == Some(name)
                && let Some(s) = n.child("snapshot")
            {
                out.push(Moref::new("VirtualMachineSnapshot", s.text.trim()));
            }
            for c in &n.children {
                walk(c, name, out);
            }
        }
        let mut found = Vec::new();
        if let Some(t) = &tree {
            walk(t, name, &mut found);
        }
        match found.len() {
            0 => Err(Error::NotFound(format!(
                "the VM has no snapshot named {name:?}"
            ))),
            1 => Ok(found.remove(0)),
            n => Err(Error::InvalidArgument(format!(
                "{n} snapshots are named {name:?}"
            ))),
        }
    }

    /// Capacity of each virtual disk of the VM, in device order.
    async fn disk_capacities(&self, vm: &Moref) -> Result<Vec<u64>> {
        let props = self.vim.properties(vm, &["config.hardware.device"]).await?;
        let Some((_, devices)) = props.into_iter().next() else {
            return Ok(Vec::new());
        };
        Ok(devices
            .children
            .iter()
            .filter(|d| d.attr("type") == Some("VirtualDisk"))
            .filter_map(|d| d.child_text("capacityInBytes")?.trim().parse::<u64>().ok())
            .collect())
    }

    async fn wait_lease(&self, ctx: &FlowCtx, lease: &Moref) -> Result<xml::Node> {
        poll_until(
            ctx,
            "the export lease",
            Duration::from_millis(self.opts.lease_wait_timeout_ms),
            Backoff::growing(Duration::from_millis(200), Duration::from_secs(5)),
            || async {
                let props = self
                    .vim
                    .properties(lease, &["state", "info", "error"])
                    .await?;
                let get = |n: &str| props.iter().find(|(k, _)| k == n).map(|(_, v)| v);
                match get("state").map(|v| v.text.trim()) {
                    Some("ready") => get("info")
                        .cloned()
                        .map(Poll::Done)
                        .ok_or_else(|| Error::Remote("the ready lease has no info".into())),
                    Some("error") => {
                        let msg = get("error")
                            .and_then(|e| e.child_text("localizedMessage").map(str::to_string))
                            .unwrap_or_else(|| "no reason given".into());
                        Err(Error::Remote(format!("the export lease failed: {msg}")))
                    }
                    Some("done") => Err(Error::Remote(
                        "the export lease ended before the download".into(),
                    )),
                    other => Ok(Poll::pending(format!(
                        "waiting for the export lease ({})",
                        other.unwrap_or("initializing")
                    ))),
                }
            },
        )
        .await
    }
}

impl Flow for VsphereFlow {
    fn prepare<'a>(&'a mut self, ctx: &'a FlowCtx) -> BoxFuture<'a, Result<Vec<FileSource>>> {
        Box::pin(async move {
            let vm = self.find_vm().await?;
            let name = self
                .vim
                .properties(&vm, &["name"])
                .await?
                .into_iter()
                .find(|(n, _)| n == "name")
                .map(|(_, v)| v.text)
                .unwrap_or_else(|| vm.value.clone());
            self.base_name = match &self.opts.name {
                Some(n) => n.clone(),
                None => sanitize_file_name(&name, "vm"),
            };
            self.vm = Some(vm.clone());
            ctx.waiting_for_cloud("requesting the export lease");
            let r = match &self.opts.snapshot {
                Some(s) => {
                    let snap = self.find_snapshot(&vm, s).await?;
                    self.vim.call("ExportSnapshot", &snap.xml("_this")).await?
                }
                None => self.vim.call("ExportVm", &vm.xml("_this")).await?,
            };
            let lease = r
                .child("returnval")
                .and_then(|n| n.attr("type").map(|t| Moref::new(t, n.text.trim())))
                .ok_or_else(|| Error::Remote("ExportVm returned no lease".into()))?;
            // From here on, cleanup aborts or completes this lease.
            self.lease = Some(lease.clone());
            lease_steps(ctx, &self.vim, &lease);
            ctx.message("waiting for the export lease");
            let info = self.wait_lease(ctx, &lease).await?;
            ctx.message("");
            let timeout = info
                .child_text("leaseTimeout")
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(300);
            self.lease_timeout = Duration::from_secs(timeout.max(4));

            let host = self.vim.url.host_str().unwrap_or("localhost").to_string();
            let cookie = self
                .vim
                .cookie()
                .ok_or_else(|| Error::InvalidState("no vSphere session".into()))?;
            let mut headers = HeaderMap::new();
            let mut cv = HeaderValue::from_str(&cookie)
                .map_err(|_| Error::Remote("bad session cookie".into()))?;
            cv.set_sensitive(true);
            headers.insert(COOKIE, cv);
            // Best estimate while the lease gives no size: each disk's capacity, in device
            // order. The total is corrected as real sizes arrive and never shows over 100 %.
            let capacities = self.disk_capacities(&vm).await.unwrap_or_default();
            let mut sources = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for d in info.children_named("deviceUrl") {
                if d.child_text("disk").map(str::trim) != Some("true") {
                    continue;
                }
                let raw = d.child_text("url").unwrap_or("").trim().to_string();
                let url = device_url(&raw, &host, self.vim.url.port())?;
                let target = d.child_text("targetId").unwrap_or("").trim();
                let key = d.child_text("key").unwrap_or("").trim().to_string();
                let fallback = format!("disk-{}.vmdk", sources.len());
                let mut file =
                    sanitize_file_name(target.rsplit(['/', '\\']).next().unwrap_or(""), &fallback);
                // Target ids that collide (after cleaning) get distinct names.
                let mut n = sources.len();
                while !seen.insert(file.to_lowercase()) {
                    file = format!("disk-{n}.vmdk");
                    n += 1;
                }
                let size = d
                    .child_text("fileSize")
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .filter(|s| *s > 0)
                    .or_else(|| capacities.get(sources.len()).copied());
                self.devices.push(Device {
                    key,
                    name: file.clone(),
                });
                // The session cookie goes only to the vCenter it belongs to; a device URL on an
                // ESXi host carries its own ticket in the path.
                let headers = if url.origin() == self.vim.url.origin() {
                    headers.clone()
                } else {
                    HeaderMap::new()
                };
                let mut src = FileSource::http(
                    file,
                    HttpSource {
                        client: self.http.clone(),
                        url,
                        headers,
                        signer: None,
                        range_md5: false,
                    },
                );
                src.size_hint = size;
                src.want_digest = self.opts.manifest_digest();
                sources.push(src);
            }
            if sources.is_empty() {
                return Err(Error::NotFound(format!(
                    "the export lease of {name} lists no disk"
                )));
            }
            // The engine checks that no disk is named like the descriptor (extra_names).
            Ok(sources)
        })
    }

    fn parallel_files(&self) -> Option<usize> {
        Some(self.opts.parallel_disks)
    }

    fn keep_alive_interval(&self) -> Option<Duration> {
        Some(self.lease_timeout / 4)
    }

    fn keep_alive<'a>(&'a mut self, percent: u8) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let Some(lease) = &self.lease else {
                return Ok(());
            };
            let body = format!(
                "{}<percent>{}</percent>",
                lease.xml("_this"),
                percent.min(99)
            );
            self.vim
                .call("HttpNfcLeaseProgress", &body)
                .await
                .map(|_| ())
        })
    }

    fn extra_names(&self) -> Vec<String> {
        ovf::names(
            &self.base_name,
            self.opts.format == "ova",
            self.opts.manifest_digest().is_some(),
        )
    }

    fn after_download<'a>(
        &'a mut self,
        _ctx: &'a FlowCtx,
        files: &'a [Downloaded],
        dir: &'a Arc<OutDir>,
    ) -> BoxFuture<'a, Result<AfterDownload>> {
        Box::pin(async move {
            let vm = self
                .vm
                .clone()
                .ok_or_else(|| Error::InvalidState("no VM".into()))?;
            // The descriptor lists the files as really downloaded (size) under their names.
            let mut ovf_files = String::new();
            for f in files {
                let key = self
                    .devices
                    .iter()
                    .find(|d| d.name == f.name)
                    .map(|d| d.key.clone())
                    .unwrap_or_default();
                ovf_files.push_str(&format!(
                    "<ovfFiles><deviceId>{}</deviceId><path>{}</path><size>{}</size></ovfFiles>",
                    esc(&key),
                    esc(&f.name),
                    f.size
                ));
            }
            let sc = self.vim.content()?;
            let body = format!(
                "{}{}<cdp>{ovf_files}<name>{}</name></cdp>",
                sc.ovf_manager.xml("_this"),
                vm.xml("obj"),
                esc(&self.base_name)
            );
            let r = self.vim.call("CreateDescriptor", &body).await?;
            let rv = r
                .child("returnval")
                .ok_or_else(|| Error::Remote("CreateDescriptor returned nothing".into()))?;
            if let Some(err) = rv.child("error") {
                let msg = err
                    .child_text("localizedMessage")
                    .unwrap_or("unknown error");
                return Err(Error::Remote(format!("CreateDescriptor: {msg}")));
            }
            let descriptor = rv
                .child_text("ovfDescriptor")
                .ok_or_else(|| Error::Remote("CreateDescriptor returned no descriptor".into()))?
                .to_string();
            let (base, files, dir) = (self.base_name.clone(), files.to_vec(), dir.clone());
            let ova = self.opts.format == "ova";
            let manifest = self.opts.manifest_digest();
            tokio::task::spawn_blocking(move || {
                ovf::write(&dir, &base, &descriptor, &files, ova, manifest)
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
        })
    }

    fn result_fields(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        if let Some(vm) = &self.vm {
            m.insert("vm".into(), vm.value.clone().into());
        }
        m.insert("format".into(), self.opts.format.clone().into());
        m
    }
}

/// Registers the end of an export lease: completed after a success (at 100 %), aborted on
/// every other outcome, so vCenter frees it at once instead of at its timeout.
fn lease_steps(ctx: &FlowCtx, vim: &Arc<Vim>, lease: &Moref) {
    let (v, body) = (vim.clone(), lease.xml("_this"));
    ctx.ledger().add(
        "aborting the export lease",
        When::UnlessSuccess,
        move |_| {
            let (v, body) = (v.clone(), body.clone());
            async move { v.call("HttpNfcLeaseAbort", &body).await.map(|_| ()) }
        },
    );
    let (v, body) = (vim.clone(), lease.xml("_this"));
    ctx.ledger()
        .add("completing the export lease", When::OnSuccess, move |_| {
            let (v, body) = (v.clone(), body.clone());
            async move {
                let progress = format!("{body}<percent>100</percent>");
                let _ = v.call("HttpNfcLeaseProgress", &progress).await;
                v.call("HttpNfcLeaseComplete", &body).await.map(|_| ())
            }
        });
}

/// A lease's device URL with `*` replaced by the host we connected to.
fn device_url(raw: &str, host: &str, port: Option<u16>) -> Result<Url> {
    let had_star = raw.contains("://*");
    let fixed = raw.replacen("://*", &format!("://{host}"), 1);
    let mut url = Url::parse(&fixed).map_err(|e| {
        Error::Remote(format!(
            "the lease gave a device URL that cannot be parsed: {e}"
        ))
    })?;
    if had_star && url.port().is_none() {
        let _ = url.set_port(port);
    }
    Ok(url)
}

/// What this provider accepts (`hs_provider_info`).
pub(crate) fn info() -> super::schema::ProviderInfo {
    super::schema::ProviderInfo {
        name: "vsphere",
        built_in: true,
        sources: &[
            "an inventory path (/dc/vm/folder/name)",
            "a VM name",
            "a VM id (vm-N)",
        ],
        config_keys: super::schema::with_net::<VsphereConfig>(),
        option_keys: super::schema::field_names::<VsphereOptions>(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_urls() {
        let u = device_url("https://*/nfc/52/disk-0.vmdk", "10.0.0.5", None).unwrap();
        assert_eq!(u.as_str(), "https://10.0.0.5/nfc/52/disk-0.vmdk");
        let u = device_url("https://esx1:443/nfc/52/disk-0.vmdk", "vc", Some(8443)).unwrap();
        assert_eq!(u.host_str(), Some("esx1"));
    }

    #[test]
    fn config_is_checked_and_password_hidden() {
        let e = VsphereProvider::new(
            r#"{"url": "https://h/sdk", "username": "u", "password": "p", "bogus": 1}"#,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("bogus"), "{e}");
        let cfg: VsphereConfig =
            serde_json::from_str(r#"{"url": "h", "username": "u", "password": "hunter2"}"#)
                .unwrap();
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}
