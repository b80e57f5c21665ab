//! Azure: managed disks, snapshots and VMs (every managed disk of one) to local VHD files, and
//! page blobs by URL.
//!
//! Flow per disk: `GET` the disk → attached to a running VM (`diskState: Attached`)? then
//! `PUT` a full snapshot of it and export that instead (never stop, deallocate or generalize
//! anything) → `POST beginGetAccess` (Read, `access_duration_secs`) → wait for the operation
//! (`Azure-AsyncOperation` / `Location`, Retry-After honoured; phase waiting-for-cloud) → SAS →
//! HEAD (size, stored MD5) + Get Page Ranges → the downloader fetches only the written pages
//! (holes elsewhere), each range checked with its MD5 → `POST endGetAccess` and `DELETE` of the
//! snapshot on every path, under cleanup's own deadline. A grant is renewed while a download
//! runs close to the SAS's expiry (`se`); the new SAS reaches running requests through the
//! signer. A SAS never appears in an error, a log line or the result.
//!
//! Files: `config` (client config, options, source ids), `flow` (one export's run), `target`
//! (what it reads, and the checks before anything is made), `access`
//! (read grants and snapshots, and their undo), `arm` (ARM calls and operations), `blob`
//! (properties, the download source), `pages` (Get Page Ranges, bounded and coalesced).

mod access;
mod arm;
mod blob;
mod cert;
mod config;
mod flow;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz;
mod incremental;
mod pages;
mod target;

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use serde_json::Value;
use url::Url;

use super::kit::config::parse_with_net;
use super::kit::net::Redirects;
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::seam::options::parse_provider_options;
use crate::seam::{Flow, Provider};
use arm::Arm;
use config::{AzureConfig, AzureOptions, CredentialKind, Source};
use flow::AzureFlow;

pub(crate) struct AzureProvider {
    /// Blob downloads (same-origin redirects only).
    blob_http: reqwest::Client,
    arm: Arc<Arm>,
    cred: Arc<dyn TokenCredential>,
    resource_group: Option<String>,
    token_hosts: Vec<String>,
}

impl AzureProvider {
    pub fn new(config_json: &str) -> Result<Self> {
        let (cfg, net): (AzureConfig, _) = parse_with_net("azure", config_json)?;
        let kind = cfg.check()?;
        // ARM and token calls carry credentials: no redirect is ever followed.
        let api_http = net.client(Redirects::Never)?;
        let blob_http = net.client(Redirects::SameOrigin)?;
        let cred = credential(&kind, &cfg, &api_http)?;
        let arm_base = Url::parse(&cfg.arm_endpoint).expect("checked");
        Ok(AzureProvider {
            blob_http,
            arm: Arc::new(Arm::new(
                api_http,
                arm_base,
                cfg.subscription_id.clone(),
                cred.clone(),
                net.api_timeout(),
            )),
            cred,
            resource_group: cfg.resource_group,
            token_hosts: cfg.token_hosts,
        })
    }
}

/// The Entra ID credential, its requests sent through our client (our TLS stack and CAs).
fn credential(
    kind: &CredentialKind,
    cfg: &AzureConfig,
    http: &reqwest::Client,
) -> Result<Arc<dyn TokenCredential>> {
    let mut client_options = azure_core::http::ClientOptions {
        transport: Some(azure_core::http::Transport::new(Arc::new(http.clone()))),
        ..Default::default()
    };
    if let Some(host) = &cfg.authority_host {
        let mut custom = azure_core::cloud::CustomConfiguration::default();
        custom.authority_host = host.clone();
        client_options.cloud = Some(Arc::new(custom.into()));
    }
    let bad = |e: azure_core::Error| Error::InvalidArgument(format!("azure credential: {e}"));
    Ok(match kind {
        CredentialKind::ClientSecret {
            tenant,
            client,
            secret,
        } => azure_identity::ClientSecretCredential::new(
            tenant,
            client.clone(),
            azure_core::credentials::Secret::new(secret.expose().to_string()),
            Some(azure_identity::ClientSecretCredentialOptions { client_options }),
        )
        .map_err(bad)?,
        CredentialKind::WorkloadIdentity {
            tenant,
            client,
            token_file,
        } => azure_identity::WorkloadIdentityCredential::new(Some(
            azure_identity::WorkloadIdentityCredentialOptions {
                credential_options: azure_identity::ClientAssertionCredentialOptions {
                    client_options,
                },
                tenant_id: Some(tenant.clone()),
                client_id: Some(client.clone()),
                token_file_path: Some(token_file.clone()),
            },
        ))
        .map_err(bad)?,
        CredentialKind::ClientCertificate {
            tenant,
            client,
            path,
            send_chain,
        } => {
            // The host azure_identity sends the token request to (its get_authority_host:
            // the config's cloud, else AZURE_AUTHORITY_HOST, else the public cloud's), so the
            // assertion's audience is that endpoint.
            let env = std::env::var("AZURE_AUTHORITY_HOST")
                .ok()
                .filter(|v| !v.is_empty());
            let authority = url::Url::parse(
                cfg.authority_host
                    .as_deref()
                    .or(env.as_deref())
                    .unwrap_or("https://login.microsoftonline.com"),
            )
            .map_err(|e| Error::InvalidArgument(format!("azure authority_host: {e}")))?;
            let assertion =
                cert::CertificateAssertion::load(path, &authority, tenant, client, *send_chain)?;
            azure_identity::ClientAssertionCredential::new(
                tenant.clone(),
                client.clone(),
                assertion,
                Some(azure_identity::ClientAssertionCredentialOptions { client_options }),
            )
            .map_err(bad)?
        }
        CredentialKind::ManagedIdentity => azure_identity::ManagedIdentityCredential::new(Some(
            azure_identity::ManagedIdentityCredentialOptions {
                client_options,
                ..Default::default()
            },
        ))
        .map_err(bad)?,
        CredentialKind::AzureCli => azure_identity::AzureCliCredential::new(None).map_err(bad)?,
        CredentialKind::DeveloperTools => {
            azure_identity::DeveloperToolsCredential::new(None).map_err(bad)?
        }
    })
}

impl Provider for AzureProvider {
    fn list<'a>(
        &'a self,
        scope: &'a serde_json::Map<String, Value>,
    ) -> BoxFuture<'a, Result<Vec<crate::seam::SourceInfo>>> {
        Box::pin(async move {
            super::scope_keys("azure", scope, &["resource_group"])?;
            let rg = super::scope_str(scope, "resource_group")?.or(self.resource_group.as_deref());
            if let Some(r) = rg
                && !config::is_resource_name(r)
            {
                return Err(Error::InvalidArgument(format!(
                    "azure list: resource_group {r:?} is not a resource group name"
                )));
            }
            let mut out = Vec::new();
            for (kind, what) in [
                ("virtualMachines", "vm"),
                ("disks", "disk"),
                ("snapshots", "snapshot"),
            ] {
                for v in self.arm.list(rg, kind).await? {
                    let (Some(id), Some(name)) = (v["id"].as_str(), v["name"].as_str()) else {
                        continue;
                    };
                    let p = &v["properties"];
                    out.push(crate::seam::SourceInfo {
                        // An ARM id is itself an export source (disk, snapshot or VM).
                        id: id.to_string(),
                        kind: what,
                        name: name.to_string(),
                        size_bytes: p["diskSizeBytes"].as_u64(),
                        state: p["diskState"]
                            .as_str()
                            .or(p["provisioningState"].as_str())
                            .map(str::to_string),
                    });
                }
            }
            Ok(out)
        })
    }

    fn plan(
        &self,
        source_id: &str,
        _common: &crate::seam::options::CommonOptions,
        options: serde_json::Map<String, Value>,
    ) -> Result<Box<dyn Flow>> {
        let opts: AzureOptions = parse_provider_options(options)?;
        opts.check()?;
        let rg = opts
            .resource_group
            .as_deref()
            .or(self.resource_group.as_deref());
        let source = config::parse_source(source_id, self.arm.subscription(), rg)?;
        if matches!(source, Source::Vm { .. }) && opts.file_name.is_some() {
            return Err(Error::InvalidArgument(
                "file_name names one file; a VM exports one file per disk".into(),
            ));
        }
        // A VM's disks are each read through an incremental snapshot, as a disk is; a snapshot
        // or a blob given as the source is not a disk whose later snapshots can be compared.
        if !matches!(source, Source::Disk { .. } | Source::Vm { .. })
            && (opts.keep_base || opts.incremental_from.is_some())
        {
            return Err(Error::InvalidArgument(format!(
                "source {source_id:?}: incremental_from and keep_base take a managed disk (disk:NAME \
                 or its ARM id) or a VM (each of its managed disks): their incremental snapshots \
                 are what Azure compares"
            )));
        }
        let mut flow = AzureFlow::new(
            self.arm.clone(),
            self.blob_http.clone(),
            self.cred.clone(),
            source,
            opts,
        );
        if let Source::Blob(url) = &flow.source {
            flow.blob_token = config::token_host(url, &self.token_hosts);
            if !flow.blob_token && !url.query_pairs().any(|(k, _)| k == "sig") {
                return Err(Error::InvalidArgument(format!(
                    "blob URL on {}: without a SAS it is read with an Entra ID token, which goes \
                     only to Azure Storage (*.blob.core.windows.net, *.blob.storage.azure.net, \
                     the sovereign clouds') or a host the config's token_hosts names",
                    url.host_str().unwrap_or("?")
                )));
            }
        }
        Ok(Box::new(flow))
    }
}

/// What this provider accepts (`hs_provider_info`).
pub(crate) fn info() -> super::schema::ProviderInfo {
    super::schema::ProviderInfo {
        name: "azure",
        built_in: true,
        sources: &[
            "disk:NAME, snapshot:NAME, vm:NAME or NAME (with a resource group)",
            "an ARM id of a disk, snapshot or VM",
            "https://… (a page blob URL)",
        ],
        config_keys: super::schema::with_net::<AzureConfig>(),
        option_keys: super::schema::field_names::<AzureOptions>(),
    }
}
