//! The `azure` provider's client config, export options and source ids.

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::paths::validate_file_name;
use crate::secret::Secret;

/// Client config of the `azure` provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AzureConfig {
    pub subscription_id: String,
    /// For sources given by name (also an export option).
    #[serde(default)]
    pub resource_group: Option<String>,
    /// `client_secret` (default when `client_secret` is given), `client_certificate` (default
    /// when `client_certificate_path` is given), `workload_identity`, `managed_identity`,
    /// `azure_cli`, `developer_tools` (Azure CLI, then Azure Developer CLI) or `environment`
    /// (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, and `AZURE_CLIENT_SECRET` or
    /// `AZURE_CLIENT_CERTIFICATE_PATH`).
    #[serde(default)]
    pub credential: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// Workload identity (AKS): the file holding the service account token that Entra ID
    /// exchanges for its own (`AZURE_FEDERATED_TOKEN_FILE` when left out).
    #[serde(default)]
    pub federated_token_file: Option<std::path::PathBuf>,
    /// A service principal's certificate: a PEM file holding the certificate and its
    /// unencrypted RSA private key (what `az ad sp create-for-rbac --create-cert` writes).
    #[serde(default)]
    pub client_certificate_path: Option<std::path::PathBuf>,
    /// Send the certificate chain (`x5c`) with each assertion, for apps that trust a subject
    /// name and issuer rather than one certificate. Default false.
    #[serde(default)]
    pub send_certificate_chain: bool,
    /// Azure Resource Manager, for sovereign clouds and tests. Default
    /// `https://management.azure.com`.
    #[serde(default = "default_arm")]
    pub arm_endpoint: String,
    /// Entra ID, for sovereign clouds and tests. Default `https://login.microsoftonline.com`.
    #[serde(default)]
    pub authority_host: Option<String>,
    /// Hosts besides Azure Storage's own (`*.blob.core.windows.net`, `*.blob.storage.azure.net`
    /// and the sovereign clouds') that a blob URL given as a source may name and that may then
    /// get an Entra ID token (an Azure Stack Hub or emulator endpoint). A token never goes
    /// anywhere else: a URL is the user's input, and its server could keep the token.
    #[serde(default)]
    pub token_hosts: Vec<String>,
    // The network keys (CA bundle, insecure flag, connect timeout, the deadline of one ARM or
    // token call) are the kit's NetConfig, split off before this struct is parsed.
}

fn default_arm() -> String {
    "https://management.azure.com".into()
}

/// How the provider gets its Entra ID tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CredentialKind {
    ClientSecret {
        tenant: String,
        client: String,
        secret: Secret,
    },
    /// Workload identity: a federated token from a file (AKS projects it and rotates it).
    WorkloadIdentity {
        tenant: String,
        client: String,
        token_file: std::path::PathBuf,
    },
    /// A service principal's certificate (PEM: certificate and RSA private key).
    ClientCertificate {
        tenant: String,
        client: String,
        path: std::path::PathBuf,
        send_chain: bool,
    },
    ManagedIdentity,
    AzureCli,
    DeveloperTools,
}

impl AzureConfig {
    pub fn check(&self) -> Result<CredentialKind> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("azure config: {m}")));
        if !is_resource_name(&self.subscription_id) {
            return bad(format!(
                "subscription_id {:?} is not a subscription id",
                self.subscription_id
            ));
        }
        if let Some(rg) = &self.resource_group
            && !is_resource_name(rg)
        {
            return bad(format!(
                "resource_group {rg:?} is not a resource group name"
            ));
        }
        for (key, url) in [
            ("arm_endpoint", Some(&self.arm_endpoint)),
            ("authority_host", self.authority_host.as_ref()),
        ] {
            if let Some(u) = url {
                match url::Url::parse(u) {
                    Ok(p) if p.scheme() == "https" && p.host().is_some() => {}
                    _ => return bad(format!("{key} {u:?} must be an https:// URL")),
                }
            }
        }
        let default = if self.client_secret.is_some() {
            "client_secret"
        } else if self.client_certificate_path.is_some() {
            "client_certificate"
        } else {
            "developer_tools"
        };
        let kind = self.credential.as_deref().unwrap_or(default);
        if kind != "client_secret" && kind != "environment" && self.client_secret.is_some() {
            return bad(format!("client_secret is given but credential is {kind:?}"));
        }
        if kind != "client_certificate" && self.client_certificate_path.is_some() {
            return bad(format!(
                "client_certificate_path is given but credential is {kind:?}"
            ));
        }
        Ok(match kind {
            "client_secret" => {
                let (Some(t), Some(c), Some(s)) =
                    (&self.tenant_id, &self.client_id, &self.client_secret)
                else {
                    return bad(
                        "credential client_secret needs tenant_id, client_id and client_secret"
                            .into(),
                    );
                };
                CredentialKind::ClientSecret {
                    tenant: t.clone(),
                    client: c.clone(),
                    secret: s.clone(),
                }
            }
            "client_certificate" => {
                let (Some(t), Some(c), Some(p)) = (
                    &self.tenant_id,
                    &self.client_id,
                    &self.client_certificate_path,
                ) else {
                    return bad("credential client_certificate needs tenant_id, client_id and client_certificate_path".into());
                };
                CredentialKind::ClientCertificate {
                    tenant: t.clone(),
                    client: c.clone(),
                    path: p.clone(),
                    send_chain: self.send_certificate_chain,
                }
            }
            "environment" => {
                // As azure_identity's EnvironmentCredential reads them: a secret first, else a
                // certificate.
                let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
                let (Some(t), Some(c)) = (var("AZURE_TENANT_ID"), var("AZURE_CLIENT_ID")) else {
                    return bad("credential environment needs AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH".into());
                };
                match (var("AZURE_CLIENT_SECRET"), var("AZURE_CLIENT_CERTIFICATE_PATH")) {
                    (Some(s), _) => CredentialKind::ClientSecret {
                        tenant: t,
                        client: c,
                        secret: Secret::new(s),
                    },
                    (None, Some(p)) => CredentialKind::ClientCertificate {
                        tenant: t,
                        client: c,
                        path: p.into(),
                        send_chain: var("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN")
                            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true")),
                    },
                    (None, None) => return bad("credential environment needs AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH beside AZURE_TENANT_ID and AZURE_CLIENT_ID".into()),
                }
            }
            "workload_identity" => {
                // What AKS's workload identity webhook injects, unless the config says.
                let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
                let (Some(t), Some(c), Some(f)) = (
                    self.tenant_id.clone().or_else(|| var("AZURE_TENANT_ID")),
                    self.client_id.clone().or_else(|| var("AZURE_CLIENT_ID")),
                    self.federated_token_file
                        .clone()
                        .or_else(|| var("AZURE_FEDERATED_TOKEN_FILE").map(Into::into)),
                ) else {
                    return bad("credential workload_identity needs tenant_id, client_id and federated_token_file (or AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE)".into());
                };
                CredentialKind::WorkloadIdentity {
                    tenant: t,
                    client: c,
                    token_file: f,
                }
            }
            "managed_identity" => CredentialKind::ManagedIdentity,
            "azure_cli" => CredentialKind::AzureCli,
            "developer_tools" => CredentialKind::DeveloperTools,
            other => {
                return bad(format!(
                    "credential {other:?}: use client_secret, client_certificate, workload_identity, managed_identity, azure_cli, developer_tools or environment"
                ));
            }
        })
    }
}

/// Export options of the `azure` provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AzureOptions {
    /// For sources given by name (overrides the config's).
    pub resource_group: Option<String>,
    /// A disk attached to a running VM is exported through a snapshot made for the export
    /// (full; incremental for Premium SSD v2 and Ultra, which take no other) and deleted
    /// afterwards. Default true; false makes such a disk
    /// an error.
    pub snapshot_attached: bool,
    /// How long the read SAS is granted for, seconds. Default 3600; the grant is renewed while
    /// a longer download runs.
    pub access_duration_secs: u64,
    /// `vhd` (default) or `vhdx`: the API's `fileFormat`, which is for disks and snapshots with
    /// 4096-byte logical sectors (Premium SSD v2, Ultra), not a conversion; refused elsewhere.
    pub file_format: String,
    /// Longest wait for one cloud operation (snapshot, grant), seconds. Default 3600.
    pub timeout_secs: u64,
    /// First interval between two looks at an operation, ms (grows to 10 s; Retry-After
    /// wins). Default 1000.
    pub poll_interval_ms: u64,
    /// Local file name, for a source of one file (default: the disk's or blob's name + `.vhd`).
    pub file_name: Option<String>,
    /// Get Page Ranges is asked this many MiB of the disk at a time: over a whole large,
    /// fragmented disk the service can time out (a 500 seen on a 1.6 TB snapshot). Default
    /// 16384 (16 GiB).
    pub page_ranges_segment_mib: u64,
    /// A disk: export an incremental snapshot of it (made even when unattached) and keep it as
    /// the base of a later incremental export (issue 35).
    pub keep_base: bool,
    /// A disk: an earlier export's result JSON (path or object) whose kept base is the starting
    /// point: only the pages changed since are fetched, over a clone of its image; in full,
    /// saying why, when that base cannot serve.
    pub incremental_from: Option<serde_json::Value>,
    /// With `incremental_from`: `image` (default) writes a complete new image; `delta` writes
    /// only the changed pages (`<file>.delta`, sparse) and their map (`<file>.delta.json`), for
    /// tools that keep chains.
    pub incremental_output: crate::transfer::incremental::Output,
}

impl Default for AzureOptions {
    fn default() -> Self {
        AzureOptions {
            resource_group: None,
            snapshot_attached: true,
            access_duration_secs: 3600,
            file_format: "vhd".into(),
            timeout_secs: 3600,
            poll_interval_ms: 1000,
            file_name: None,
            page_ranges_segment_mib: 16 << 10,
            keep_base: false,
            incremental_from: None,
            incremental_output: Default::default(),
        }
    }
}

impl AzureOptions {
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if let Some(rg) = &self.resource_group
            && !is_resource_name(rg)
        {
            return bad(format!(
                "resource_group {rg:?} is not a resource group name"
            ));
        }
        if !(300..=7 * 24 * 3600).contains(&self.access_duration_secs) {
            return bad("access_duration_secs must be between 300 and 604800".into());
        }
        if !["vhd", "vhdx"].contains(&self.file_format.to_lowercase().as_str()) {
            return bad(format!(
                "file_format {:?}: use vhd or vhdx",
                self.file_format
            ));
        }
        if self.poll_interval_ms < 10 || self.timeout_secs == 0 {
            return bad("poll_interval_ms must be ≥ 10 and timeout_secs ≥ 1".into());
        }
        if let Some(n) = &self.file_name {
            validate_file_name(n)?;
        }
        crate::transfer::incremental::delta::check(
            self.incremental_output,
            self.incremental_from.as_ref(),
        )?;
        if !(1..=1 << 20).contains(&self.page_ranges_segment_mib) {
            return bad("page_ranges_segment_mib must be between 1 and 1048576".into());
        }
        Ok(())
    }
}

/// Names ARM accepts for what we put in a URL path: letters, digits, `-`, `_`, `.`, `(`, `)`,
/// at most 90 characters. Anything else (a `/`, `?`, `%`, quote, space) is refused before it
/// reaches a URL.
pub(crate) fn is_resource_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 90
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.()".contains(c))
}

/// What the user asked to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Disk { rg: String, name: String },
    Snapshot { rg: String, name: String },
    Vm { rg: String, name: String },
    Blob(url::Url),
}

/// Parses a source id: an ARM id of a disk, snapshot or VM, `NAME` / `disk:NAME` /
/// `snapshot:NAME` / `vm:NAME` (with a resource group), or a blob URL.
pub(crate) fn parse_source(src: &str, subscription: &str, rg: Option<&str>) -> Result<Source> {
    let src = src.trim();
    let invalid = |why: &str| {
        Err(Error::InvalidArgument(format!(
            "source {:?}: {why}",
            crate::transfer::redact_url_text(src)
        )))
    };
    if src.starts_with("https://") || src.starts_with("http://") {
        let u = url::Url::parse(src)
            .map_err(|_| Error::InvalidArgument("source: not a valid blob URL".into()))?;
        if u.scheme() != "https" {
            return invalid("a blob URL must be https:// (a SAS must not travel in clear)");
        }
        if u.path_segments()
            .map(|s| s.filter(|p| !p.is_empty()).count())
            < Some(2)
        {
            return invalid("a blob URL is https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB");
        }
        return Ok(Source::Blob(u));
    }
    if src.starts_with('/') {
        let parts: Vec<&str> = src.trim_end_matches('/').split('/').skip(1).collect();
        let ok = parts.len() == 8
            && parts[0].eq_ignore_ascii_case("subscriptions")
            && parts[2].eq_ignore_ascii_case("resourceGroups")
            && parts[4].eq_ignore_ascii_case("providers")
            && parts[5].eq_ignore_ascii_case("Microsoft.Compute");
        if !ok {
            return invalid(
                "an ARM id is /subscriptions/S/resourceGroups/G/providers/Microsoft.Compute/{disks|snapshots|virtualMachines}/NAME",
            );
        }
        if !parts[1].eq_ignore_ascii_case(subscription) {
            return invalid("the ARM id's subscription is not the client's subscription_id");
        }
        let (rg, name) = (parts[3], parts[7]);
        if !is_resource_name(rg) || !is_resource_name(name) {
            return invalid("the resource group or name holds characters ARM does not allow");
        }
        let (rg, name) = (rg.to_string(), name.to_string());
        return match parts[6].to_ascii_lowercase().as_str() {
            "disks" => Ok(Source::Disk { rg, name }),
            "snapshots" => Ok(Source::Snapshot { rg, name }),
            "virtualmachines" => Ok(Source::Vm { rg, name }),
            _ => invalid("only disks, snapshots and virtualMachines can be exported"),
        };
    }
    let (kind, name) = match src.split_once(':') {
        Some((k, n)) => (k, n),
        None => ("disk", src),
    };
    if !is_resource_name(name) {
        return invalid("not a resource name (letters, digits, - _ . ( ), at most 90)");
    }
    let Some(rg) = rg else {
        return invalid("give resource_group (config or options) or a full ARM id");
    };
    let (rg, name) = (rg.to_string(), name.to_string());
    match kind {
        "disk" => Ok(Source::Disk { rg, name }),
        "snapshot" => Ok(Source::Snapshot { rg, name }),
        "vm" => Ok(Source::Vm { rg, name }),
        _ => invalid("prefix with disk:, snapshot: or vm:, or give an ARM id or a blob URL"),
    }
}

/// The blob endpoints of Azure Storage and of managed disks in the public and sovereign clouds
/// (Azure's "Azure Storage endpoints" per cloud): a blob URL given as a source gets an Entra ID
/// token only on these, or on a host the config's `token_hosts` names.
const STORAGE_SUFFIXES: &[&str] = &[
    ".blob.core.windows.net",
    ".blob.storage.azure.net",
    ".blob.core.usgovcloudapi.net",
    ".blob.core.chinacloudapi.cn",
];

/// Whether `url`'s server may be given an Entra ID token.
pub(crate) fn token_host(url: &url::Url, extra: &[String]) -> bool {
    let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
        return false;
    };
    url.scheme() == "https"
        && (STORAGE_SUFFIXES.iter().any(|s| host.ends_with(s))
            || extra.iter().any(|h| h.eq_ignore_ascii_case(&host)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "00000000-0000-0000-0000-000000000001";

    #[test]
    fn sources_parse_and_hostile_names_are_refused() {
        let id =
            format!("/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.Compute/disks/d1");
        assert_eq!(
            parse_source(&id, SUB, None).unwrap(),
            Source::Disk {
                rg: "rg1".into(),
                name: "d1".into()
            }
        );
        let vm = format!(
            "/subscriptions/{SUB}/resourceGroups/rg1/providers/microsoft.compute/virtualMachines/web-01"
        );
        assert!(matches!(
            parse_source(&vm, SUB, None).unwrap(),
            Source::Vm { .. }
        ));
        assert!(matches!(
            parse_source("snapshot:s1", SUB, Some("rg")).unwrap(),
            Source::Snapshot { .. }
        ));
        assert!(matches!(
            parse_source("vm:v", SUB, Some("rg")).unwrap(),
            Source::Vm { .. }
        ));
        assert!(matches!(
            parse_source("d", SUB, Some("rg")).unwrap(),
            Source::Disk { .. }
        ));
        let e = parse_source("d", SUB, None).unwrap_err();
        assert!(e.to_string().contains("resource_group"), "{e}");
        for hostile in [
            "a'b\"c; rm -rf /",
            "../disks/other",
            "d?x=1",
            "d%2F..",
            "a b",
        ] {
            let e = parse_source(hostile, SUB, Some("rg")).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{hostile}: {e}");
        }
        let other_sub = id.replace(SUB, "ffffffff-0000-0000-0000-000000000001");
        assert!(parse_source(&other_sub, SUB, None).is_err());
        let bad_rg = id.replace("rg1", "rg1..%2f");
        assert!(parse_source(&bad_rg, SUB, None).is_err());
        // A blob URL's SAS never shows in the error.
        let e = parse_source(
            "http://a.blob.core.windows.net/c/b.vhd?sig=SECRETSIG",
            SUB,
            None,
        )
        .unwrap_err();
        assert!(!e.to_string().contains("SECRETSIG"), "{e}");
        assert!(matches!(
            parse_source("https://a.blob.core.windows.net/c/b.vhd?sig=x", SUB, None).unwrap(),
            Source::Blob(_)
        ));
    }

    #[test]
    fn config_checks_credentials_and_hides_the_secret() {
        let c: AzureConfig = serde_json::from_str(&format!(
            r#"{{"subscription_id": "{SUB}", "tenant_id": "t", "client_id": "c", "client_secret": "topsecret"}}"#
        ))
        .unwrap();
        assert!(matches!(
            c.check().unwrap(),
            CredentialKind::ClientSecret { .. }
        ));
        assert!(!format!("{c:?}").contains("topsecret"));
        let c: AzureConfig = serde_json::from_str(&format!(
            r#"{{"subscription_id": "{SUB}", "client_secret": "topsecret"}}"#
        ))
        .unwrap();
        assert!(c.check().unwrap_err().to_string().contains("tenant_id"));
        let c: AzureConfig = serde_json::from_str(&format!(
            r#"{{"subscription_id": "{SUB}", "arm_endpoint": "http://x"}}"#
        ))
        .unwrap();
        assert!(c.check().unwrap_err().to_string().contains("arm_endpoint"));
        let e = serde_json::from_str::<AzureConfig>(&format!(
            r#"{{"subscription_id": "{SUB}", "client_secert": "x"}}"#
        ))
        .unwrap_err();
        assert!(e.to_string().contains("client_secert"), "{e}");
    }
}
