//! Where each AWS service is: the configured endpoint if there is one, else the region's
//! endpoint in its partition.
//!
//! Partitions are botocore's `partitions.json`, committed verbatim beside this file (a test in
//! tests/aws_export_task.rs compares it with the file botocore ships): a region is in the
//! partition that lists it, else in the first whose `regionRegex` matches it, else in `aws`
//! (botocore's rule). The endpoint is `https://{service}.{region}.{dnsSuffix}`: the partition's
//! DNS suffix, so `eusc-de-east-1` is under `amazonaws.eu`, `us-iso-east-1` under `c2s.ic.gov`,
//! `us-isob-east-1` under `sc2s.sgov.gov`.
//!
//! Configured endpoints, first found wins (AWS SDKs and Tools reference, "Service-specific
//! endpoints"; a client's own configuration before the environment): the config keys
//! `endpoint_url_{service}` then `endpoint_url`, the variables `AWS_ENDPOINT_URL_{SERVICE}` then
//! `AWS_ENDPOINT_URL` (ignored when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is `true`).

use std::sync::OnceLock;

use serde::Deserialize;
use url::Url;

use super::config::AwsConfig;
use crate::error::{Error, Result};

static PARTITIONS_JSON: &str = include_str!("partitions.json");

#[derive(Deserialize)]
struct PartitionsFile {
    partitions: Vec<Partition>,
}

#[derive(Deserialize)]
struct Partition {
    id: String,
    outputs: Outputs,
    #[serde(rename = "regionRegex")]
    region_regex: String,
    regions: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct Outputs {
    #[serde(rename = "dnsSuffix")]
    dns_suffix: String,
}

fn partitions() -> &'static [(Partition, regex_lite::Regex)] {
    static TABLE: OnceLock<Vec<(Partition, regex_lite::Regex)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let file: PartitionsFile =
            serde_json::from_str(PARTITIONS_JSON).expect("partitions.json is botocore's file");
        file.partitions
            .into_iter()
            .map(|p| {
                let re = regex_lite::Regex::new(&p.region_regex).expect("botocore's regionRegex");
                (p, re)
            })
            .collect()
    })
}

/// The partition id and DNS suffix of a region.
pub(crate) fn partition_of(region: &str) -> (&'static str, &'static str) {
    let table = partitions();
    let p = table
        .iter()
        .find(|(p, _)| p.regions.contains_key(region))
        .or_else(|| table.iter().find(|(_, re)| re.is_match(region)))
        .or_else(|| table.iter().find(|(p, _)| p.id == "aws"))
        .map(|(p, _)| p)
        .expect("botocore's partitions.json has the aws partition");
    (&p.id, &p.outputs.dns_suffix)
}

/// The endpoint of `service` in `region`'s partition.
pub(crate) fn default_endpoint(service: &str, region: &str) -> Url {
    let (_, suffix) = partition_of(region);
    Url::parse(&format!("https://{service}.{region}.{suffix}")).expect("a host name")
}

/// Where `service` (`ec2`, `s3`, `ebs`) is for this config, and whether that is a configured
/// endpoint (S3 is then addressed by path unless the config says otherwise).
pub(crate) fn resolve(service: &str, cfg: &AwsConfig) -> Result<(Url, bool)> {
    resolve_with(service, cfg, &|k| std::env::var(k).ok())
}

fn resolve_with(
    service: &str,
    cfg: &AwsConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Url, bool)> {
    let var = format!("AWS_ENDPOINT_URL_{}", service.to_uppercase());
    let use_env = !env("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let candidates = [
        (
            format!("aws config: endpoint_url_{service}"),
            cfg.service_endpoint(service).map(str::to_string),
        ),
        (
            "aws config: endpoint_url".to_string(),
            cfg.endpoint_url.clone(),
        ),
        (var.clone(), env(&var).filter(|_| use_env)),
        (
            "AWS_ENDPOINT_URL".to_string(),
            env("AWS_ENDPOINT_URL").filter(|_| use_env),
        ),
    ];
    for (from, value) in candidates {
        let Some(v) = value
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
        else {
            continue;
        };
        let url =
            Url::parse(&v).map_err(|e| Error::InvalidArgument(format!("{from} {v:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(Error::InvalidArgument(format!(
                "{from} {v:?}: give an http(s) URL with a host"
            )));
        }
        return Ok((url, true));
    }
    Ok((default_endpoint(service, &cfg.region), false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_partition_has_its_own_domain() {
        for (service, region, url) in [
            ("ec2", "us-east-1", "https://ec2.us-east-1.amazonaws.com/"),
            ("s3", "ap-future-9", "https://s3.ap-future-9.amazonaws.com/"),
            (
                "ec2",
                "cn-north-1",
                "https://ec2.cn-north-1.amazonaws.com.cn/",
            ),
            (
                "ec2",
                "us-gov-west-1",
                "https://ec2.us-gov-west-1.amazonaws.com/",
            ),
            (
                "s3",
                "eusc-de-east-1",
                "https://s3.eusc-de-east-1.amazonaws.eu/",
            ),
            (
                "ec2",
                "us-iso-east-1",
                "https://ec2.us-iso-east-1.c2s.ic.gov/",
            ),
            (
                "ebs",
                "us-isob-east-1",
                "https://ebs.us-isob-east-1.sc2s.sgov.gov/",
            ),
            (
                "s3",
                "eu-isoe-west-1",
                "https://s3.eu-isoe-west-1.cloud.adc-e.uk/",
            ),
            (
                "ec2",
                "us-isof-south-1",
                "https://ec2.us-isof-south-1.csp.hci.ic.gov/",
            ),
            // Not listed yet, matched by its partition's regionRegex.
            (
                "ec2",
                "us-iso-north-7",
                "https://ec2.us-iso-north-7.c2s.ic.gov/",
            ),
        ] {
            assert_eq!(default_endpoint(service, region).as_str(), url, "{region}");
        }
        assert_eq!(partition_of("eusc-de-east-1").0, "aws-eusc");
    }

    fn cfg(json: serde_json::Value) -> AwsConfig {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn configured_endpoints_in_order() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let none = env(&[]);
        let c = cfg(serde_json::json!({"region": "eu-west-1"}));
        let (u, custom) = resolve_with("s3", &c, &none).unwrap();
        assert_eq!(
            (u.as_str(), custom),
            ("https://s3.eu-west-1.amazonaws.com/", false)
        );
        let vars = env(&[
            ("AWS_ENDPOINT_URL", "http://global:1"),
            ("AWS_ENDPOINT_URL_S3", "http://s3env:2"),
        ]);
        assert_eq!(
            resolve_with("s3", &c, &vars).unwrap().0.as_str(),
            "http://s3env:2/"
        );
        assert_eq!(
            resolve_with("ec2", &c, &vars).unwrap().0.as_str(),
            "http://global:1/"
        );
        let ignored = env(&[
            ("AWS_ENDPOINT_URL", "http://global:1"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
        ]);
        assert!(!resolve_with("ec2", &c, &ignored).unwrap().1);
        // The config before the environment, a service's key before the general one.
        let c = cfg(
            serde_json::json!({"region": "eu-west-1", "endpoint_url": "http://cfg:3",
                                       "endpoint_url_ec2": "http://cfgec2:4"}),
        );
        assert_eq!(
            resolve_with("ec2", &c, &vars).unwrap().0.as_str(),
            "http://cfgec2:4/"
        );
        assert_eq!(
            resolve_with("s3", &c, &vars).unwrap().0.as_str(),
            "http://cfg:3/"
        );
        let bad = env(&[("AWS_ENDPOINT_URL_EBS", "ftp://x")]);
        let e = resolve_with("ebs", &cfg(serde_json::json!({"region": "r"})), &bad).unwrap_err();
        assert!(e.to_string().contains("AWS_ENDPOINT_URL_EBS"), "{e}");
    }
}
