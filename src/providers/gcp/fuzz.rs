//! The fuzz targets' way in (cargo feature `fuzzing`, off by default): GCP's parsers of outside
//! input — the client config, the export options and source id, and Google JSON error answers.

use super::config::{self, GcpConfig, GcpOptions};
use super::storage::{classify_reason, json_error};
use crate::providers::kit::api::{Answer, error_from};
use crate::providers::kit::config::parse_with_net;
use crate::seam::options::parse_provider_options;

pub(crate) fn config(json: &str) {
    if let Ok((cfg, _net)) = parse_with_net::<GcpConfig>("gcp", json) {
        // A credentials_path is read from disk: the fuzzer's paths are not ours to read.
        if cfg.credentials_path.is_none() {
            let _ = cfg.check();
        }
    }
}

pub(crate) fn options(source: &str, rest: serde_json::Map<String, serde_json::Value>) {
    let Ok(o) = parse_provider_options::<GcpOptions>(rest) else {
        return;
    };
    if o.check().is_ok() {
        let project = o.project.as_deref().or(Some("my-project"));
        let zone = o.zone.as_deref().or(Some("europe-west1-b"));
        let _ = config::parse_source(source, project, zone);
    }
}

/// A Cloud Storage / Compute answer through the kit's one error mapping with Google's reader.
pub(crate) fn answer(a: &Answer) -> crate::error::Error {
    let _ = json_error(&a.body);
    error_from("fuzz", a, json_error, classify_reason)
}
