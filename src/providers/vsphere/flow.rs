//! One vSphere export's run: find the VM, open the export lease (its end registered in the
//! cleanup ledger), download every disk's device URL, keep the lease alive, write the
//! descriptor, the manifest or the OVA.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use url::Url;

use super::soap::{Moref, Vim};
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::paths::sanitize_file_name;
use crate::providers::poll::{Backoff, Poll, poll_until};
use crate::providers::xml;
use crate::seam::{AfterDownload, Flow, FlowCtx, When};
use crate::transfer::{Downloaded, FileSource, HttpSource, OutDir};
use xml::esc;

use super::config::VsphereOptions;
use super::ovf;

#[derive(Debug, Clone)]
pub(super) struct Device {
    key: String,
    name: String,
}

pub(super) struct VsphereFlow {
    pub(super) vim: Arc<Vim>,
    pub(super) http: reqwest::Client,
    /// The thumbprints the client trusts; the lease's device hosts are added (tls.rs).
    pub(super) pins: Arc<super::tls::Pins>,
    pub(super) source: String,
    pub(super) opts: VsphereOptions,
    pub(super) vm: Option<Moref>,
    pub(super) base_name: String,
    pub(super) lease: Option<Moref>,
    pub(super) lease_timeout: Duration,
    pub(super) devices: Vec<Device>,
    /// The snapshot exported (the user's, or the one made for a running VM): the
    /// descriptor describes it.
    pub(super) snapshot: Option<Moref>,
    /// Format `raw` (raw.rs, incremental.rs).
    pub(super) raw: super::raw::RawState,
    /// `incremental_from`'s base, read when the export was planned.
    pub(super) incr_base: Option<super::incremental::LoadedBase>,
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

    pub(super) async fn find_snapshot(&self, vm: &Moref, name: &str) -> Result<Moref> {
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
    fn dry_run(&self) -> (Vec<String>, Vec<String>) {
        if self.opts.format == "raw" {
            return self.dry_run_raw();
        }
        let mut cloud = Vec::new();
        match &self.opts.snapshot {
            Some(s) => cloud.push(format!(
                "an export (NFC) lease on snapshot {s:?} of {}: completed or aborted when done",
                self.source
            )),
            None => {
                cloud.push(format!(
                    "if {} is powered on or suspended: a snapshot without memory{}, removed on \
                     every outcome",
                    self.source,
                    if self.opts.quiesce { ", quiesced" } else { "" }
                ));
                cloud.push(
                    "an export (NFC) lease on the VM or that snapshot: completed or aborted when done"
                        .into(),
                );
            }
        }
        let base = self.opts.name.clone().unwrap_or_else(|| "<VM name>".into());
        let files = if self.opts.format == "ova" {
            vec![format!("{base}.ova")]
        } else {
            let mut f = vec![
                format!("{base}.ovf"),
                format!("{base}-<disk>.vmdk (one per disk)"),
            ];
            if self.opts.manifest != "none" {
                f.push(format!("{base}.mf"));
            }
            f
        };
        (cloud, files)
    }

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
            if self.opts.format == "raw" {
                let headers = super::raw::cookie_headers(&self.vim)?;
                return self.prepare_raw(ctx, &vm, headers).await;
            }
            // vCenter exports only a powered-off VM itself (ExportVm answers InvalidPowerState
            // otherwise): a running or suspended one goes through a snapshot made for the
            // export, removed on every outcome (snapshot.rs).
            let snap = match &self.opts.snapshot {
                Some(s) => Some(self.find_snapshot(&vm, s).await?),
                None => match super::snapshot::power_state(&self.vim, &vm).await?.as_str() {
                    "poweredOff" | "" => None,
                    _ => Some(
                        super::snapshot::create_for_export(ctx, &self.vim, &vm, self.opts.quiesce)
                            .await?,
                    ),
                },
            };
            ctx.waiting_for_cloud("requesting the export lease");
            let r = match &snap {
                Some(snap) => self.vim.call("ExportSnapshot", &snap.xml("_this")).await?,
                None => self.vim.call("ExportVm", &vm.xml("_this")).await?,
            };
            self.snapshot = snap;
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

            let headers = super::raw::cookie_headers(&self.vim)?;
            // While the lease gives no size (and NFC no length), each disk's estimate is the
            // largest streamOptimized file its capacity can make (ovf::stream_bound), so the
            // total is corrected only downward, once per disk as it ends, to the real bytes.
            let capacities = self.disk_capacities(&vm).await.unwrap_or_default();
            let mut sources = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for d in info.children_named("deviceUrl") {
                if d.child_text("disk").map(str::trim) != Some("true") {
                    continue;
                }
                let raw = d.child_text("url").unwrap_or("").trim().to_string();
                let url = device_url(&raw, &self.vim.url)?;
                // The host's certificate is trusted by this thumbprint when no CA vouches for
                // it (govmomi nfc/lease.go: SetThumbprint for each device URL's host).
                if let Some(tp) = d.child_text("sslThumbprint") {
                    self.pins.set_lease(&url, tp);
                }
                let target = d.child_text("targetId").unwrap_or("").trim();
                let key = d.child_text("key").unwrap_or("").trim().to_string();
                // Named after the VM, as govc's export.ovf does (`<VM>-<disk>`): the lease's
                // target ids (`disk-0.vmdk`) are the same for every VM, so several VMs exported
                // into one folder would collide.
                // At most 120 bytes of the VM's name, so `-<disk>.vmdk` always fits in a file
                // name (a long name would otherwise lose the end, `.vmdk` with it).
                let mut cut = self.base_name.len().min(120);
                while !self.base_name.is_char_boundary(cut) {
                    cut -= 1;
                }
                let base = &self.base_name[..cut];
                let fallback = format!("{base}-disk-{}.vmdk", sources.len());
                let target = target.rsplit(['/', '\\']).next().unwrap_or("");
                let mut file = if target.is_empty() {
                    fallback
                } else {
                    sanitize_file_name(&format!("{base}-{target}"), &fallback)
                };
                // Target ids that collide (after cleaning) get distinct names.
                let mut n = sources.len();
                while !seen.insert(file.to_lowercase()) {
                    file = format!("{base}-disk-{n}.vmdk");
                    n += 1;
                }
                let size = d
                    .child_text("fileSize")
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .filter(|s| *s > 0)
                    .or_else(|| capacities.get(sources.len()).map(|c| ovf::stream_bound(*c)));
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
                        hooks: Default::default(),
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
        if self.opts.format == "raw" {
            return Vec::new();
        }
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
            if self.opts.format == "raw" {
                self.record_base(files);
                return Ok(AfterDownload::default());
            }
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
            // OvfCreateDescriptorParams: ovfFiles, name, …, snapshot (govmomi vim25 types).
            let snapshot = self
                .snapshot
                .as_ref()
                .map(|s| s.xml("snapshot"))
                .unwrap_or_default();
            let body = format!(
                "{}{}<cdp>{ovf_files}<name>{}</name>{snapshot}</cdp>",
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
        if self.opts.format == "raw" {
            self.raw_fields(&mut m);
        }
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

/// A lease's device URL with a `*` host (`*` or `*:port`) replaced by the host and port we
/// connected to, as govmomi does (vim25/soap/client.go `ParseURL`: "Also use Client's port, to
/// support port forwarding"): the device URL's own port is the vCenter's internal one, which a
/// port-forwarded vCenter does not expose.
pub(super) fn device_url(raw: &str, client: &Url) -> Result<Url> {
    let mut fixed = raw.to_string();
    if let Some(i) = raw.find("://") {
        let rest = &raw[i + 3..];
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        if host == "*" {
            let mut with = client.host_str().unwrap_or("localhost").to_string();
            if let Some(p) = client.port() {
                with.push_str(&format!(":{p}"));
            }
            fixed = format!("{}{with}{}", &raw[..i + 3], &rest[end..]);
        }
    }
    Url::parse(&fixed).map_err(|e| {
        Error::Remote(format!(
            "the lease gave a device URL that cannot be parsed: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_urls() {
        let vc = Url::parse("https://10.0.0.5/sdk").unwrap();
        let u = device_url("https://*/nfc/52/disk-0.vmdk", &vc).unwrap();
        assert_eq!(u.as_str(), "https://10.0.0.5/nfc/52/disk-0.vmdk");
        // `*:port`: the client's host and port (none here), not the device URL's port.
        let u = device_url("https://*:443/nfc/52/disk-0.vmdk", &vc).unwrap();
        assert_eq!(u.as_str(), "https://10.0.0.5/nfc/52/disk-0.vmdk");
        let fwd = Url::parse("https://127.0.0.1:18443/sdk").unwrap();
        let u = device_url("https://*:443/nfc/52/disk-0.vmdk", &fwd).unwrap();
        assert_eq!(u.as_str(), "https://127.0.0.1:18443/nfc/52/disk-0.vmdk");
        let u = device_url("https://esx1:443/nfc/52/disk-0.vmdk", &fwd).unwrap();
        assert_eq!((u.host_str(), u.port()), (Some("esx1"), None));
    }
}
