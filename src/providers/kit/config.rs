//! The network keys every cloud provider's client config accepts, in one struct, and the parse
//! that splits them off the provider's own keys.
//!
//! serde cannot combine `flatten` with `deny_unknown_fields`, and an unknown key must stay an
//! error that names it; so the JSON object is split by key first: the network keys go to
//! [`NetConfig`], the rest to the provider's own struct, each with `deny_unknown_fields`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::net::{Redirects, build_client};
use crate::error::{Error, Result};

/// The keys of [`NetConfig`], as they appear in a provider's config.
pub(crate) const NET_KEYS: &[&str] = &[
    "ca_bundle_pem",
    "ca_bundle_path",
    "insecure_skip_verify",
    "connect_timeout_ms",
    "api_timeout_ms",
];

/// How a provider reaches its cloud. Proxies come from the standard environment variables
/// (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`), which reqwest reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct NetConfig {
    /// Extra trusted CA certificates, PEM text (a corporate TLS proxy, a private cloud).
    pub ca_bundle_pem: Option<String>,
    /// Extra trusted CA certificates, path of a PEM file.
    pub ca_bundle_path: Option<PathBuf>,
    /// Accept any server certificate. Off by default; for test peers only.
    pub insecure_skip_verify: bool,
    /// Connect timeout, ms. Default 30000.
    pub connect_timeout_ms: u64,
    /// Deadline of one API call attempt (not of a download), ms. Default 60000.
    pub api_timeout_ms: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            ca_bundle_pem: None,
            ca_bundle_path: None,
            insecure_skip_verify: false,
            connect_timeout_ms: 30_000,
            api_timeout_ms: 60_000,
        }
    }
}

impl NetConfig {
    fn check(&self, provider: &str) -> Result<()> {
        for (key, v) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("api_timeout_ms", self.api_timeout_ms),
        ] {
            if !(100..=3_600_000).contains(&v) {
                return Err(Error::InvalidArgument(format!(
                    "{provider} config: {key} must be between 100 and 3600000"
                )));
            }
        }
        Ok(())
    }

    pub fn api_timeout(&self) -> Duration {
        Duration::from_millis(self.api_timeout_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// An HTTP client with these settings.
    pub fn client(&self, redirects: Redirects) -> Result<reqwest::Client> {
        build_client(
            self.ca_bundle_pem.as_deref(),
            self.ca_bundle_path.as_deref(),
            self.insecure_skip_verify,
            self.connect_timeout(),
            redirects,
        )
    }
}

/// Parses a provider's client config that has no network keys, naming the provider in the
/// error.
pub(crate) fn parse_config<T: DeserializeOwned>(provider: &str, json: &str) -> Result<T> {
    serde_json::from_str(json)
        .map_err(|e| Error::InvalidArgument(format!("{provider} config: {e}")))
}

/// Parses a cloud provider's client config: its own keys into `T`, the network keys into a
/// checked [`NetConfig`]. An unknown key is an error that names it (and lists the network keys
/// too, which `T`'s own message cannot).
pub(crate) fn parse_with_net<T: DeserializeOwned>(
    provider: &str,
    json: &str,
) -> Result<(T, NetConfig)> {
    let bad = |e: serde_json::Error| Error::InvalidArgument(format!("{provider} config: {e}"));
    let mut own: Map<String, Value> = serde_json::from_str(json).map_err(bad)?;
    let mut net = Map::new();
    for k in NET_KEYS {
        if let Some(v) = own.remove(*k) {
            net.insert((*k).to_string(), v);
        }
    }
    let cfg = T::deserialize(Value::Object(own)).map_err(|e| {
        let mut msg = format!("{provider} config: {e}");
        if msg.contains("unknown field") {
            msg.push_str(&format!(", or a network key: {}", NET_KEYS.join(", ")));
        }
        Error::InvalidArgument(msg)
    })?;
    let net = NetConfig::deserialize(Value::Object(net)).map_err(bad)?;
    net.check(provider)?;
    Ok((cfg, net))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Own {
        region: String,
    }

    #[test]
    fn splits_network_keys_and_names_unknown_ones() {
        let (own, net): (Own, NetConfig) = parse_with_net(
            "x",
            r#"{"region": "r", "insecure_skip_verify": true, "api_timeout_ms": 500}"#,
        )
        .unwrap();
        assert_eq!(own.region, "r");
        assert!(net.insecure_skip_verify);
        assert_eq!(net.api_timeout(), Duration::from_millis(500));
        assert_eq!(net.connect_timeout(), Duration::from_secs(30));

        let e = parse_with_net::<Own>("x", r#"{"region": "r", "ca_bundle": "p"}"#).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("ca_bundle") && msg.contains("ca_bundle_pem"),
            "{msg}"
        );
        let e = parse_with_net::<Own>("x", r#"{"region": "r", "api_timeout_ms": 5}"#).unwrap_err();
        assert!(e.to_string().contains("api_timeout_ms"), "{e}");
        let e = parse_with_net::<Own>("x", r#"{"region": "r", "insecure_skip_verify": "yes"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("x config"), "{e}");
        assert!(parse_with_net::<Own>("x", "[1]").is_err());
    }
}
