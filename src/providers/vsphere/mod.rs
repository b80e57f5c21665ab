//! vSphere: export a VM (or one of its snapshots) to OVF or OVA over the NFC lease.
//!
//! Flow: login (once per client, in the server's vim25 version) → find the VM (inventory path,
//! name or moref) → `ExportVm` if powered off, else `ExportSnapshot` of the user's snapshot or
//! of one made for the export (snapshot.rs, removed on every outcome) → wait for the
//! `HttpNfcLease` to be ready → download every disk's device URL (host `*` replaced, session
//! cookie sent) with the core downloader, disks in parallel → `HttpNfcLeaseProgress` every
//! leaseTimeout/4 as keep-alive → `OvfManager.CreateDescriptor` with the files really
//! downloaded → `<vm>.ovf` + `<vm>.mf` (SHA-256) or one `<vm>.ova` → `HttpNfcLeaseComplete`;
//! `HttpNfcLeaseAbort` on failure or cancel. Nothing else on the VM changes.

mod config;
mod flow;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz;
mod incremental;
mod ovf;
mod raw;
mod snapshot;
mod soap;
mod tls;
mod version;

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::kit::config::parse_with_net;
use super::xml;
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::paths::validate_file_name;
use crate::seam::options::parse_provider_options;
use crate::seam::{Flow, Provider};
use config::{VsphereConfig, VsphereOptions};
use flow::VsphereFlow;
use soap::Vim;

pub(crate) struct VsphereProvider {
    http: reqwest::Client,
    vim: Arc<Vim>,
    pins: Arc<tls::Pins>,
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
        // No redirects at all: a SOAP call carries the password or the session. The client
        // trusts the pinned vCenter and the hosts its leases give thumbprints for (tls.rs).
        let (http, pins) = tls::client(&net, &url, cfg.thumbprint.as_deref())?;
        let timeout = net.api_timeout();
        let vim = Arc::new(Vim::new(http.clone(), url, timeout));
        // One login per client; the session cookie also authorizes NFC downloads.
        let (v, user, pass) = (vim.clone(), cfg.username.clone(), cfg.password.clone());
        crate::runtime::block_on(async move { v.connect(&user, pass.expose()).await })?;
        Ok(VsphereProvider { http, vim, pins })
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
        if !["ovf", "ova", "raw"].contains(&o.format.as_str()) {
            return Err(Error::InvalidArgument(format!(
                "format {:?}: use \"ovf\", \"ova\" or \"raw\"",
                o.format
            )));
        }
        if o.format != "raw" && (o.keep_base || o.incremental_from.is_some()) {
            return Err(Error::InvalidArgument(format!(
                "keep_base and incremental_from need format \"raw\" (format {:?} streams \
                 streamOptimized disks over NFC, which cannot be patched block by block)",
                o.format
            )));
        }
        let incr_base = match &o.incremental_from {
            Some(from) => Some(incremental::load_base(from)?),
            None => None,
        };
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
            pins: self.pins.clone(),
            source: source_id.trim().to_string(),
            opts: o,
            vm: None,
            base_name: String::new(),
            lease: None,
            lease_timeout: Duration::from_secs(300),
            devices: Vec::new(),
            snapshot: None,
            raw: Default::default(),
            incr_base,
        }))
    }
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
