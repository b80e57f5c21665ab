//! Providers: each parses its own client config and export options, runs the cloud side of its
//! flow, hands [`FileSource`]s to the downloader, and runs its cleanup on every path.
//!
//! The seam they implement (`Provider`, `Flow`, the contexts) is `crate::seam`; this module
//! holds the registry (the one way the engine reaches a provider) and the providers.
//!
//! The toolkit every provider shares: [`kit`] (one API client, the network config, the HTTP
//! client with our TLS stack),
//! [`poll`] (waiting for cloud-side work: operations, tasks, leases), [`process`] (child
//! processes: arguments only, secrets on stdin, process-group kill). See "How to add a provider"
//! in docs/DESIGN-NOTES.md.

// Built without any cloud provider (`--no-default-features`), the toolkit has no user but its
// own tests.
#![cfg_attr(
    not(any(
        feature = "aws",
        feature = "azure",
        feature = "gcp",
        feature = "vsphere"
    )),
    allow(dead_code)
)]

#[cfg(feature = "aws")]
pub(crate) mod aws;
#[cfg(feature = "azure")]
pub(crate) mod azure;
#[cfg(feature = "gcp")]
pub(crate) mod gcp;
pub(crate) mod http;
#[cfg(feature = "hyperv")]
pub(crate) mod hyperv;
pub(crate) mod kit;
pub(crate) mod poll;
pub(crate) mod schema;
// The runner for Hyper-V's PowerShell (and any helper to come).
#[cfg_attr(not(feature = "hyperv"), allow(dead_code))]
pub(crate) mod process;
#[cfg(feature = "vsphere")]
pub(crate) mod vsphere;
#[cfg(any(feature = "aws", feature = "vsphere"))]
pub(crate) mod xml;

use std::sync::Arc;

use crate::error::{Error, Result};
pub(crate) use crate::seam::Provider;

/// One entry of the provider table: a name and how to build it from its config JSON.
struct Registration {
    name: &'static str,
    new: fn(&str) -> Result<Arc<dyn Provider>>,
    info: fn() -> schema::ProviderInfo,
}

/// Every provider compiled into this build. Adding a provider is one module and one line here.
const REGISTRY: &[Registration] = &[
    #[cfg(feature = "aws")]
    Registration {
        name: "aws",
        new: |c| Ok(Arc::new(aws::AwsProvider::new(c)?)),
        info: aws::info,
    },
    #[cfg(feature = "azure")]
    Registration {
        name: "azure",
        new: |c| Ok(Arc::new(azure::AzureProvider::new(c)?)),
        info: azure::info,
    },
    #[cfg(feature = "gcp")]
    Registration {
        name: "gcp",
        new: |c| Ok(Arc::new(gcp::GcpProvider::new(c)?)),
        info: gcp::info,
    },
    Registration {
        name: "http",
        new: |c| Ok(Arc::new(http::HttpProvider::new(c)?)),
        info: http::info,
    },
    #[cfg(feature = "hyperv")]
    Registration {
        name: "hyperv",
        new: |c| Ok(Arc::new(hyperv::HyperVProvider::new(c)?)),
        info: hyperv::info,
    },
    #[cfg(feature = "vsphere")]
    Registration {
        name: "vsphere",
        new: |c| Ok(Arc::new(vsphere::VsphereProvider::new(c)?)),
        info: vsphere::info,
    },
];

/// Providers that exist, built into this library or not (a clear "not built in" error for
/// those behind a disabled cargo feature).
const KNOWN: &[&str] = &["aws", "azure", "gcp", "http", "hyperv", "vsphere"];

/// The providers compiled into this build.
pub fn available() -> Vec<&'static str> {
    REGISTRY.iter().map(|r| r.name).collect()
}

/// What every known provider accepts; those not built in are listed by name only.
pub(crate) fn schema() -> schema::Schema {
    let providers = KNOWN
        .iter()
        .map(|name| match REGISTRY.iter().find(|r| r.name == *name) {
            Some(r) => (r.info)(),
            None => schema::ProviderInfo {
                name,
                built_in: false,
                sources: &[],
                config_keys: Vec::new(),
                option_keys: Vec::new(),
            },
        })
        .collect();
    schema::Schema {
        common_options: schema::common_options(),
        providers,
    }
}

/// Builds a provider by name from its config JSON.
pub(crate) fn new_provider(name: &str, config_json: &str) -> Result<Arc<dyn Provider>> {
    if let Some(r) = REGISTRY.iter().find(|r| r.name == name) {
        let json = if config_json.trim().is_empty() {
            "{}"
        } else {
            config_json
        };
        return (r.new)(json);
    }
    let list = available().join(", ");
    if KNOWN.contains(&name) {
        Err(Error::Unsupported(format!(
            "provider {name:?} is not built into this library; available: {list}"
        )))
    } else {
        Err(Error::InvalidArgument(format!(
            "unknown provider {name:?}; available: {list}"
        )))
    }
}

/// Cleanup's outcome from the steps that failed (each already says what it was undoing).
#[cfg_attr(not(feature = "hyperv"), allow(dead_code))]
pub(crate) fn cleanup_result(errors: Vec<String>) -> Result<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Remote(errors.join("; ")))
    }
}

/// Refuses scope keys a provider's `list` does not read.
#[cfg_attr(
    not(any(
        feature = "aws",
        feature = "gcp",
        feature = "hyperv",
        feature = "vsphere"
    )),
    allow(dead_code)
)]
pub(crate) fn scope_keys(
    provider: &str,
    scope: &serde_json::Map<String, serde_json::Value>,
    known: &[&str],
) -> Result<()> {
    match scope.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(Error::InvalidArgument(format!(
            "{provider} list: unknown filter key {k:?} (known: kind, name_contains{})",
            known.iter().map(|k| format!(", {k}")).collect::<String>()
        ))),
        None => Ok(()),
    }
}

/// A scope value that must be a string.
#[cfg_attr(not(any(feature = "aws", feature = "gcp")), allow(dead_code))]
pub(crate) fn scope_str<'a>(
    scope: &'a serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Result<Option<&'a str>> {
    match scope.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::InvalidArgument(format!(
            "list filter {key} must be a string"
        ))),
    }
}
