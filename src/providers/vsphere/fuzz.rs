//! The fuzz targets' way in (cargo feature `fuzzing`, off by default): vSphere's parsers of
//! outside input — the client config, the export options, and SOAP answers (faults through the
//! kit's one error mapping).

use super::config::{VsphereConfig, VsphereOptions};
use super::soap::fault_of;
use crate::providers::kit::api::{Answer, error_from};
use crate::providers::kit::config::parse_with_net;
use crate::seam::options::parse_provider_options;

pub(crate) fn config(json: &str) {
    if let Ok((cfg, _net)) = parse_with_net::<VsphereConfig>("vsphere", json) {
        let _ = url::Url::parse(&cfg.url);
    }
}

pub(crate) fn options(rest: serde_json::Map<String, serde_json::Value>) {
    if let Ok(o) = parse_provider_options::<VsphereOptions>(rest)
        && let Some(n) = &o.name
    {
        let _ = crate::paths::validate_file_name(n);
    }
}

/// A SOAP answer through the kit's one error mapping with vSphere's fault reader.
pub(crate) fn answer(a: &Answer) -> crate::error::Error {
    let _ = fault_of(&a.body);
    error_from("fuzz", a, fault_of, |_| None)
}
