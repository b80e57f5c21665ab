//! GCP's client config, export options and source ids.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::secret::Secret;

// Source ids and the names Google accepts live in `source`; read through here too.
pub(crate) use super::source::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GcpConfig {
    /// The project of disks, instances and images named without one, and of the builds.
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
    /// A credentials JSON file (service account key, `authorized_user`, external account).
    #[serde(default)]
    pub credentials_path: Option<PathBuf>,
    /// The same document inline (never logged).
    #[serde(default)]
    pub credentials_json: Option<Secret>,
    /// No credentials at all (emulators only). Default: the two above, else Application
    /// Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's login, the metadata
    /// server).
    #[serde(default)]
    pub anonymous: bool,
    /// Where exports are written before the download (`gs://{bucket}/{prefix}{name}-{tag}.{ext}`,
    /// `tag` of the run, or of the export with `reuse_object`).
    #[serde(default)]
    pub bucket: Option<String>,
    #[serde(default = "default_prefix")]
    pub prefix: String,
    #[serde(default = "default_storage")]
    pub storage_endpoint: String,
    #[serde(default = "default_compute")]
    pub compute_endpoint: String,
    #[serde(default = "default_cloudbuild")]
    pub cloudbuild_endpoint: String,
    /// Cloud Resource Manager (project number, IAM policy: the prerequisite check).
    #[serde(default = "default_resourcemanager")]
    pub resourcemanager_endpoint: String,
    /// Service Usage (enabled services: the prerequisite check).
    #[serde(default = "default_serviceusage")]
    pub serviceusage_endpoint: String,
    /// Artifact Registry (whether the regional exporter image is there: the builder choice).
    #[serde(default = "default_artifactregistry")]
    pub artifactregistry_endpoint: String,
    /// Container Registry's Docker API (`HEAD /v2/…/manifests/release`, no credentials: the
    /// builder choice when Artifact Registry has no regional image).
    #[serde(default = "default_gcr")]
    pub gcr_endpoint: String,
    /// IAM (`roles.get`: a role held by its permissions, the prerequisite check).
    #[serde(default = "default_iam")]
    pub iam_endpoint: String,
    // The network keys (CA bundle, insecure flag, connect timeout, the deadline of each API
    // call) are the kit's NetConfig, split off before this struct is parsed.
}

fn default_prefix() -> String {
    "hypersdk-exports/".into()
}
fn default_storage() -> String {
    "https://storage.googleapis.com".into()
}
fn default_compute() -> String {
    "https://compute.googleapis.com".into()
}
fn default_cloudbuild() -> String {
    "https://cloudbuild.googleapis.com".into()
}
fn default_resourcemanager() -> String {
    "https://cloudresourcemanager.googleapis.com".into()
}
fn default_serviceusage() -> String {
    "https://serviceusage.googleapis.com".into()
}
fn default_artifactregistry() -> String {
    "https://artifactregistry.googleapis.com".into()
}
fn default_gcr() -> String {
    "https://gcr.io".into()
}
fn default_iam() -> String {
    "https://iam.googleapis.com".into()
}

/// Where the credentials come from.
#[derive(Debug)]
pub(crate) enum CredentialSource {
    Json(serde_json::Value),
    Adc,
    Anonymous,
}

impl GcpConfig {
    pub fn check(&self) -> Result<CredentialSource> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("gcp config: {m}")));
        check_where(
            "config",
            self.project.as_deref(),
            self.zone.as_deref(),
            self.bucket.as_deref(),
            Some(&self.prefix),
        )?;
        for (k, v) in [
            ("storage_endpoint", &self.storage_endpoint),
            ("compute_endpoint", &self.compute_endpoint),
            ("cloudbuild_endpoint", &self.cloudbuild_endpoint),
            ("resourcemanager_endpoint", &self.resourcemanager_endpoint),
            ("serviceusage_endpoint", &self.serviceusage_endpoint),
            ("artifactregistry_endpoint", &self.artifactregistry_endpoint),
            ("gcr_endpoint", &self.gcr_endpoint),
            ("iam_endpoint", &self.iam_endpoint),
        ] {
            match url::Url::parse(v) {
                Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {}
                _ => return bad(format!("{k} {v:?} is not an http(s) URL")),
            }
        }
        let given = [
            self.credentials_path.is_some(),
            self.credentials_json.is_some(),
            self.anonymous,
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if given > 1 {
            return bad("give one of credentials_path, credentials_json, anonymous".into());
        }
        if self.anonymous {
            return Ok(CredentialSource::Anonymous);
        }
        let text = match (&self.credentials_path, &self.credentials_json) {
            (Some(p), _) => std::fs::read_to_string(p).map_err(|e| {
                Error::InvalidArgument(format!("gcp config: credentials_path {}: {e}", p.display()))
            })?,
            (None, Some(j)) => j.expose().to_string(),
            (None, None) => return Ok(CredentialSource::Adc),
        };
        // The document holds a private key or a refresh token: its parse error must not quote
        // it.
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            Error::InvalidArgument(format!(
                "gcp config: the credentials are not JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        match v.get("type").and_then(|t| t.as_str()) {
            Some(
                "service_account"
                | "authorized_user"
                | "external_account"
                | "impersonated_service_account",
            ) => Ok(CredentialSource::Json(v)),
            Some(t) => bad(format!("credentials of type {t:?} are not supported")),
            None => bad("the credentials JSON has no \"type\"".into()),
        }
    }
}

/// Image formats `gce_vm_image_export` writes, and their file extensions.
pub(crate) fn extension(format: &str) -> Option<&'static str> {
    Some(match format {
        "vmdk" => "vmdk",
        "vhdx" => "vhdx",
        "vpc" => "vhd",
        "qcow2" => "qcow2",
        _ => return None,
    })
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct GcpOptions {
    pub project: Option<String>,
    pub zone: Option<String>,
    /// vmdk (default), vhdx, vpc (.vhd) or qcow2.
    pub format: String,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    /// Delete the exported object once it is downloaded and verified.
    pub delete_object_after_download: bool,
    /// An exported object already at the destination (an earlier run whose build finished) is
    /// downloaded (resumed) instead of exporting again.
    pub reuse_object: bool,
    /// Each cloud-side stage (image, build), seconds. Default: sized from the disk (see
    /// `stage_timeout`); at most Cloud Build's 24 hours.
    pub timeout_secs: Option<u64>,
    pub poll_interval_ms: u64,
    /// The one file's name (not with an instance: one file per disk).
    pub file_name: Option<String>,
    /// The VPC network the exporter's temporary VM uses (`-network`; the exporter's default is
    /// the network named `default`, which many projects do not have).
    pub network: Option<String>,
    /// Its subnetwork (`-subnet`; needed on a custom-mode network).
    pub subnet: Option<String>,
    /// The service account of the exporter's temporary VM (`-compute_service_account`;
    /// default: the project's Compute Engine default service account).
    pub compute_service_account: Option<String>,
    /// Do not check the project's services and the two service accounts' roles before
    /// anything is made (for accounts without `resourcemanager.projects.getIamPolicy`).
    pub skip_prerequisite_check: bool,
}

impl Default for GcpOptions {
    fn default() -> Self {
        GcpOptions {
            project: None,
            zone: None,
            format: "vmdk".into(),
            bucket: None,
            prefix: None,
            delete_object_after_download: false,
            reuse_object: false,
            timeout_secs: None,
            poll_interval_ms: 2_000,
            file_name: None,
            network: None,
            subnet: None,
            compute_service_account: None,
            skip_prerequisite_check: false,
        }
    }
}

impl GcpOptions {
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("gcp options: {m}")));
        if extension(&self.format).is_none() {
            return bad(format!(
                "format {:?} is not one of vmdk, vhdx, vpc, qcow2",
                self.format
            ));
        }
        check_where(
            "options",
            self.project.as_deref(),
            self.zone.as_deref(),
            self.bucket.as_deref(),
            self.prefix.as_deref(),
        )?;
        if let Some(f) = &self.file_name {
            crate::paths::validate_file_name(f)?;
        }
        if let Some(t) = self
            .timeout_secs
            .filter(|t| !(60..=MAX_BUILD_SECS).contains(t))
        {
            return bad(format!(
                "timeout_secs {t} must be between 60 and {MAX_BUILD_SECS} (Cloud Build's limit: 24 hours)"
            ));
        }
        for (k, v) in [("network", &self.network), ("subnet", &self.subnet)] {
            if let Some(v) = v.as_deref().filter(|v| !is_network_ref(v)) {
                return bad(format!(
                    "{k} {v:?} is not a network name or projects/…/{k}s/… path"
                ));
            }
        }
        if let Some(a) = self
            .compute_service_account
            .as_deref()
            .filter(|a| !is_service_account(a))
        {
            return bad(format!(
                "compute_service_account {a:?} is not a service account e-mail address"
            ));
        }
        if !(10..=600_000).contains(&self.poll_interval_ms) {
            return bad("poll_interval_ms must be between 10 and 600000".into());
        }
        Ok(())
    }
}

/// Project, zone, bucket and prefix, wherever they are given (config or options).
fn check_where(
    place: &str,
    project: Option<&str>,
    zone: Option<&str>,
    bucket: Option<&str>,
    prefix: Option<&str>,
) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidArgument(format!("gcp {place}: {m}")));
    if let Some(p) = project.filter(|p| !is_project(p)) {
        return bad(format!("project {p:?} is not a project id"));
    }
    if let Some(z) = zone.filter(|z| !is_name(z)) {
        return bad(format!("zone {z:?} is not a zone name"));
    }
    if let Some(b) = bucket.filter(|b| !is_bucket(b)) {
        return bad(format!("bucket {b:?} is not a bucket name"));
    }
    if let Some(p) = prefix.filter(|p| {
        p.len() > 512 || p.chars().any(char::is_control) || p.starts_with('/') || p.contains("..")
    }) {
        return bad(format!(
            "prefix {p:?} must be a relative object name prefix"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_credentials_are_checked_and_never_quoted() {
        let c = |v: serde_json::Value| serde_json::from_value::<GcpConfig>(v).unwrap().check();
        assert!(matches!(
            c(serde_json::json!({"anonymous": true})).unwrap(),
            CredentialSource::Anonymous
        ));
        assert!(matches!(
            c(serde_json::json!({})).unwrap(),
            CredentialSource::Adc
        ));
        let e = c(serde_json::json!({"credentials_json": "{\"private_key\": \"SECRET-KEY\""}))
            .unwrap_err()
            .to_string();
        assert!(!e.contains("SECRET-KEY"), "{e}");
        let e = c(serde_json::json!({"credentials_json": "{\"type\": \"mystery\"}"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("mystery"), "{e}");
        assert!(c(serde_json::json!({"anonymous": true, "credentials_json": "{}"})).is_err());
        assert!(c(serde_json::json!({"storage_endpoint": "ftp://x"})).is_err());
        assert!(c(serde_json::json!({"project": "A B"})).is_err());
        assert!(c(serde_json::json!({"prefix": "../x"})).is_err());
    }

    #[test]
    fn options_are_checked() {
        let o = |v: serde_json::Value| serde_json::from_value::<GcpOptions>(v).unwrap().check();
        assert!(o(serde_json::json!({"format": "vpc"})).is_ok());
        assert!(o(serde_json::json!({"format": "raw"})).is_err());
        assert!(o(serde_json::json!({"file_name": "a/b"})).is_err());
        assert!(o(serde_json::json!({"bucket": "UP"})).is_err());
        assert!(o(serde_json::json!({"timeout_secs": 86_400})).is_ok());
        assert!(o(serde_json::json!({"timeout_secs": 86_401})).is_err());
        assert!(o(serde_json::json!({"network": "a;b"})).is_err());
        assert!(o(serde_json::json!({"compute_service_account": "me@gmail.com"})).is_err());
        assert_eq!(extension("vpc"), Some("vhd"));
    }
}
