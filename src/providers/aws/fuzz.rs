//! The fuzz targets' way in (cargo feature `fuzzing`, off by default): AWS's parsers of outside
//! input — the client config, the export options and source id, and EC2/S3 XML error answers.

use super::api::{classify_code, detail};
use super::config::{AwsConfig, AwsOptions};
use super::s3::validate_bucket;
use crate::providers::kit::api::{Answer, error_from};
use crate::providers::kit::config::parse_with_net;
use crate::seam::options::parse_provider_options;

pub(crate) fn config(json: &str) {
    if let Ok((cfg, _net)) = parse_with_net::<AwsConfig>("aws", json) {
        let _ = cfg.check();
        if let Some(e) = &cfg.endpoint_url {
            let _ = url::Url::parse(e);
        }
    }
}

pub(crate) fn options(source: &str, rest: serde_json::Map<String, serde_json::Value>) {
    let Ok(o) = parse_provider_options::<AwsOptions>(rest) else {
        return;
    };
    let src = source.trim();
    let object = src
        .strip_prefix("s3://")
        .and_then(|r| r.split_once('/'))
        .filter(|(b, k)| !b.is_empty() && !k.is_empty());
    let _ = o.check(object.is_none());
    if let Some((b, _)) = object {
        let _ = validate_bucket(b);
    }
    if let Some(b) = &o.s3_bucket {
        let _ = validate_bucket(b);
    }
}

/// An EC2/S3 answer through the kit's one error mapping with AWS's code reader.
pub(crate) fn answer(a: &Answer) -> crate::error::Error {
    let _ = detail(&a.body);
    error_from("fuzz", a, detail, classify_code)
}
