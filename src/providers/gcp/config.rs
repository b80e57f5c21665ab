//! GCP's client config, export options and source ids.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::secret::Secret;

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

/// Cloud Build's longest build: 24 hours.
pub(crate) const MAX_BUILD_SECS: u64 = 86_400;

/// The default timeout of each cloud-side stage for a disk of `gib` GiB: Google's maintainers
/// quote about 12 hours per TB for an image export, so 12 h / 1024 GiB per GiB, never under
/// the 2 hours gcloud defaults to, never over Cloud Build's 24 hours.
pub(crate) fn stage_timeout(gib: u64) -> u64 {
    const FLOOR: u64 = 7_200;
    (gib.saturating_mul(12 * 3_600) / 1_024).clamp(FLOOR, MAX_BUILD_SECS)
}

/// A network or subnetwork as `-network`/`-subnet` take it: a name, or a
/// `projects/P/global/networks/N` / `projects/P/regions/R/subnetworks/N` path (a full
/// `https://…/compute/v1/` URL too).
pub(crate) fn is_network_ref(s: &str) -> bool {
    let path = s.split_once("/compute/v1/").map(|(_, p)| p).unwrap_or(s);
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [n] => is_name(n),
        ["projects", p, "global", "networks", n] => is_project(p) && is_name(n),
        ["projects", p, "regions", r, "subnetworks", n] => {
            is_project(p) && is_name(r) && is_name(n)
        }
        _ => false,
    }
}

/// `name@project.iam.gserviceaccount.com`, `N-compute@developer.gserviceaccount.com`, …
pub(crate) fn is_service_account(s: &str) -> bool {
    match s.split_once('@') {
        Some((user, domain)) => {
            (1..=100).contains(&user.len())
                && user
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && domain.ends_with(".gserviceaccount.com")
                && domain
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b".-:".contains(&c))
        }
        None => false,
    }
}

/// The region of a zone (`europe-west1-b` → `europe-west1`).
pub(crate) fn zone_region(zone: &str) -> &str {
    zone.rsplit_once('-').map(|(r, _)| r).unwrap_or(zone)
}

/// What to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Disk {
        project: String,
        /// `zones/Z` (a zonal persistent disk) or `regions/R` (a regional one).
        location: String,
        name: String,
    },
    Instance {
        project: String,
        zone: String,
        name: String,
    },
    Image {
        project: String,
        name: String,
    },
    Object {
        bucket: String,
        name: String,
    },
}

/// `projects/P/zones/Z/disks/N`, `projects/P/regions/R/disks/N` (a regional disk), `disk:N`,
/// `N`; `projects/P/zones/Z/instances/N`,
/// `instance:N`; `projects/P/global/images/N`, `image:N`; `gs://BUCKET/OBJECT`. A full
/// `https://…/compute/v1/` URL is read as its path.
pub(crate) fn parse_source(src: &str, project: Option<&str>, zone: Option<&str>) -> Result<Source> {
    let bad = |why: &str| Error::InvalidArgument(format!("gcp source {src:?}: {why}"));
    if let Some(rest) = src.strip_prefix("gs://") {
        let (bucket, name) = rest
            .split_once('/')
            .ok_or_else(|| bad("gs://BUCKET/OBJECT"))?;
        if !is_bucket(bucket) {
            return Err(bad("not a bucket name"));
        }
        if name.is_empty() || name.len() > 1024 || name.chars().any(char::is_control) {
            return Err(bad("not an object name"));
        }
        return Ok(Source::Object {
            bucket: bucket.into(),
            name: name.into(),
        });
    }
    let path = src
        .split_once("/compute/v1/")
        .map(|(_, p)| p)
        .unwrap_or(src);
    let need_project = || {
        project
            .map(str::to_string)
            .ok_or_else(|| bad("no project: set project in the config or options"))
    };
    let need_zone = || {
        zone.map(str::to_string)
            .ok_or_else(|| bad("no zone: set zone in the config or options"))
    };
    let parts: Vec<&str> = path.split('/').collect();
    let mut regional = false;
    let (kind, project, zone, name) = match parts.as_slice() {
        ["projects", p, "zones", z, kind @ ("disks" | "instances"), n] => {
            (*kind, p.to_string(), Some(z.to_string()), *n)
        }
        ["projects", p, "regions", r, "disks", n] => {
            regional = true;
            ("disks", p.to_string(), Some(r.to_string()), *n)
        }
        ["projects", p, "global", "images", n] => ("images", p.to_string(), None, *n),
        [one] => match one.split_once(':') {
            Some(("disk", n)) => ("disks", need_project()?, Some(need_zone()?), n),
            Some(("instance", n)) => ("instances", need_project()?, Some(need_zone()?), n),
            Some(("image", n)) => ("images", need_project()?, None, n),
            None => ("disks", need_project()?, Some(need_zone()?), *one),
            Some(_) => return Err(bad("unknown kind (disk:, instance:, image:, gs://)")),
        },
        _ => return Err(bad("not a disk, instance, image or gs:// object")),
    };
    if !is_project(&project) {
        return Err(bad("not a project id"));
    }
    if zone.as_deref().is_some_and(|z| !is_name(z)) {
        return Err(bad(if regional {
            "not a region name"
        } else {
            "not a zone name"
        }));
    }
    if !is_name(name) {
        return Err(bad("not a resource name (lowercase letters, digits, -)"));
    }
    let name = name.to_string();
    Ok(match kind {
        "disks" => Source::Disk {
            project,
            location: format!(
                "{}/{}",
                if regional { "regions" } else { "zones" },
                zone.expect("zone")
            ),
            name,
        },
        "instances" => Source::Instance {
            project,
            zone: zone.expect("zone"),
            name,
        },
        _ => Source::Image { project, name },
    })
}

/// A Compute resource name: `[a-z]([-a-z0-9]{0,61}[a-z0-9])?`.
pub(crate) fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && !s.ends_with('-')
}

/// A project id (`my-proj-123`, or domain-scoped `example.com:proj`).
pub(crate) fn is_project(s: &str) -> bool {
    let id = s.rsplit(':').next().unwrap_or(s);
    let domain_ok = match s.rsplit_once(':') {
        Some((d, _)) => {
            !d.is_empty()
                && d.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        }
        None => true,
    };
    domain_ok && (6..=30).contains(&id.len()) && is_name(id)
}

/// A bucket name (3–222 chars of `a-z0-9._-`, starting and ending with a letter or digit).
pub(crate) fn is_bucket(s: &str) -> bool {
    let b = s.as_bytes();
    (3..=222).contains(&b.len())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-')
        })
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
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
    fn sources_parse_and_hostile_names_are_refused() {
        let s = |x: &str| parse_source(x, Some("proj-123"), Some("europe-west1-b"));
        assert_eq!(
            s("web-1").unwrap(),
            Source::Disk {
                project: "proj-123".into(),
                location: "zones/europe-west1-b".into(),
                name: "web-1".into()
            }
        );
        assert_eq!(
            s("projects/proj-123/regions/europe-west1/disks/shared-1").unwrap(),
            Source::Disk {
                project: "proj-123".into(),
                location: "regions/europe-west1".into(),
                name: "shared-1".into()
            }
        );
        assert_eq!(
            s("https://www.googleapis.com/compute/v1/projects/other-proj/zones/us-east1-c/instances/vm-a").unwrap(),
            Source::Instance {
                project: "other-proj".into(),
                zone: "us-east1-c".into(),
                name: "vm-a".into()
            }
        );
        assert_eq!(
            s("projects/proj-123/global/images/img-1").unwrap(),
            Source::Image {
                project: "proj-123".into(),
                name: "img-1".into()
            }
        );
        assert_eq!(
            s("gs://b-1/dir/x y.vmdk").unwrap(),
            Source::Object {
                bucket: "b-1".into(),
                name: "dir/x y.vmdk".into()
            }
        );
        for bad in [
            "a'b\"c; rm -rf /",
            "../x",
            "disk:UPPER",
            "projects/p/zones/z/disks/../../x",
            "projects/proj-123/zones/z1/snapshots/s",
            "projects/proj-123/regions/r1/instances/i",
            "projects/proj-123/regions/R1/disks/d",
            "gs://B/x",
            "gs://bucket",
            "gs://bucket/a\nb",
            "",
            "web%2F1",
        ] {
            let e = s(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{bad}: {e}");
        }
        let e = parse_source("web-1", None, None).unwrap_err();
        assert!(e.to_string().contains("no project"), "{e}");
    }

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
        assert_eq!(extension("vpc"), Some("vhd"));
    }
}
