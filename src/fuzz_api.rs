//! The fuzz targets' way in (fuzz/, cargo-fuzz on nightly): every parser of input the library
//! reads from outside — options and config JSON, the resume journal, `Content-Range`, ETags,
//! `Retry-After` and checksum headers, XML and JSON answers of the clouds (through the kit's
//! one error mapping), page-range XML, PowerShell's JSON lines — each called the way the
//! library calls it, with no network and no files. Behind the `fuzzing` feature, off by
//! default: hidden, not part of the API, never in the C header. A panic (or a failed `assert!`
//! of a property below) is a finding.

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::providers::kit::api::Answer;
use crate::seam::options::CommonOptions;
use crate::transfer::journal::{Journal, Validator};

/// The providers, as the first byte of a target's input picks them.
pub const PROVIDERS: [&str; 6] = ["aws", "azure", "gcp", "hyperv", "vsphere", "http"];

/// Client config JSON, as `Client::new(provider, json)` parses and checks it before any
/// network call.
pub fn config(provider: &str, json: &str) {
    match provider {
        #[cfg(feature = "aws")]
        "aws" => crate::providers::aws::fuzz::config(json),
        #[cfg(feature = "azure")]
        "azure" => crate::providers::azure::fuzz::config(json),
        #[cfg(feature = "gcp")]
        "gcp" => crate::providers::gcp::fuzz::config(json),
        #[cfg(feature = "hyperv")]
        "hyperv" => crate::providers::hyperv::fuzz::config(json),
        #[cfg(feature = "vsphere")]
        "vsphere" => crate::providers::vsphere::fuzz::config(json),
        "http" => {
            let _ = crate::providers::http::HttpProvider::new(json);
        }
        _ => {}
    }
}

/// Options JSON and a source id, as `start_export` splits, parses and checks them: the common
/// options, then the provider's own (and its source id). Accepted common options are within
/// their documented bounds.
pub fn options(provider: &str, source: &str, json: &str) {
    let (common, rest) = match CommonOptions::parse(json) {
        Ok(x) => x,
        Err(crate::Error::InvalidArgument(m)) => {
            assert!(!m.is_empty());
            return;
        }
        Err(e) => panic!("options refused with a kind other than invalid argument: {e:?}"),
    };
    assert!((1..=16).contains(&common.parallel_files));
    assert!(common.progress_interval_ms >= 1);
    assert!(common.file_mode().is_ok());
    match provider {
        #[cfg(feature = "aws")]
        "aws" => crate::providers::aws::fuzz::options(source, rest),
        #[cfg(feature = "azure")]
        "azure" => crate::providers::azure::fuzz::options(source, rest),
        #[cfg(feature = "gcp")]
        "gcp" => crate::providers::gcp::fuzz::options(source, rest),
        #[cfg(feature = "hyperv")]
        "hyperv" => crate::providers::hyperv::fuzz::options(source, rest),
        #[cfg(feature = "vsphere")]
        "vsphere" => crate::providers::vsphere::fuzz::options(rest),
        "http" => {
            use crate::seam::Provider as _;
            // One client for every run: building its TLS setup is most of a run's time.
            static HTTP: std::sync::OnceLock<crate::providers::http::HttpProvider> =
                std::sync::OnceLock::new();
            let p = HTTP.get_or_init(|| {
                crate::providers::http::HttpProvider::new("{}").expect("an empty config")
            });
            let _ = p.plan(source, &common, rest);
        }
        _ => {}
    }
}

/// A resume journal's bytes. What is accepted claims only sorted, disjoint, non-empty ranges
/// within the object, and writes back to bytes that read back the same (a fixed point).
pub fn journal(bytes: &[u8]) {
    let Some(j) = Journal::from_bytes(bytes) else {
        return;
    };
    let size = j.validator.size;
    let mut prev = None;
    for (a, b) in j.done.ranges() {
        assert!(a < b && b <= size, "range {a}-{b} of {size}");
        if let Some(p) = prev {
            assert!(a > p, "ranges overlap or touch at {a}");
        }
        prev = Some(b);
    }
    let once = serde_json::to_vec(&j).expect("a journal serializes");
    let again = Journal::from_bytes(&once).expect("a journal we wrote reads back");
    assert_eq!(
        once,
        serde_json::to_vec(&again).expect("a journal serializes")
    );
}

/// Header values a server sends: `Content-Range` (an accepted one has start ≤ end < total),
/// an ETag and Last-Modified (only a strong ETag validates a resume; `If-Range` never carries a
/// weak one), `Retry-After` (capped), `x-goog-hash`, and a checksum text.
pub fn headers(value: &str, other: &str) {
    if let Some((a, b, t)) = crate::transfer::request::content_range(value) {
        assert!(a <= b && b < t, "{value:?} gave {a}-{b}/{t}");
    }
    let v = Validator {
        size: 1,
        etag: Some(value.to_string()),
        last_modified: Some(other.to_string()),
    };
    assert_eq!(v.is_usable(), !value.starts_with("W/"));
    if let Some(h) = v.if_range() {
        assert!(!h.starts_with("W/") || h == other, "If-Range {h:?}");
        assert!(h == value || httpdate::parse_http_date(h).is_ok());
    }
    if let Ok(hv) = HeaderValue::from_str(value) {
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, hv.clone());
        h.insert(HeaderName::from_static("x-goog-hash"), hv);
        if let Some(d) = crate::transfer::retry::retry_after(&h) {
            assert!(d <= std::time::Duration::from_secs(300));
        }
        let _ = crate::providers::kit::checksums::goog_hash(&h);
    }
    for alg in ["sha256", "md5", "crc32c"] {
        if let Ok(c) = crate::transfer::Checksum::parse(alg, value) {
            // What parsed prints as hex that parses to the same digest.
            let hex = c.hex();
            assert_eq!(
                crate::transfer::Checksum::parse(alg, &hex)
                    .ok()
                    .map(|c| c.hex()),
                Some(hex)
            );
        }
    }
}

/// An API answer (status, `Retry-After`, body) through each cloud's error reader and the kit's
/// one mapping: whatever the body, an error with a message and no panic. XML answers (EC2, S3,
/// vSphere SOAP) also go through the XML tree reader.
pub fn answer(status: u16, retry_after: &str, body: &[u8]) {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(retry_after) {
        headers.insert(reqwest::header::RETRY_AFTER, v);
    }
    let a = Answer {
        status,
        headers,
        body: body.to_vec(),
    };
    if let Ok(text) = std::str::from_utf8(body) {
        xml(text);
    }
    let mut errors = vec![crate::providers::kit::api::error_from(
        "fuzz",
        &a,
        |_| None,
        |_| None,
    )];
    #[cfg(feature = "aws")]
    errors.push(crate::providers::aws::fuzz::answer(&a));
    #[cfg(feature = "gcp")]
    errors.push(crate::providers::gcp::fuzz::answer(&a));
    #[cfg(feature = "vsphere")]
    errors.push(crate::providers::vsphere::fuzz::answer(&a));
    for e in errors {
        assert!(!e.to_string().is_empty());
    }
}

/// An XML document through the tree reader the vSphere and AWS code walks (depth first).
pub fn xml(text: &str) {
    #[cfg(any(feature = "aws", feature = "vsphere"))]
    if let Ok(root) = crate::providers::xml::parse(text) {
        let _ = root.find("Fault");
        let _ = root.find("Error");
    }
    #[cfg(not(any(feature = "aws", feature = "vsphere")))]
    let _ = text;
}

/// A `Get Page Ranges` answer from Azure Blob Storage of a blob of `size` bytes, read, checked
/// and merged as the export does.
pub fn page_list(xml: &[u8], size: u64) -> Option<Vec<(u64, u64)>> {
    #[cfg(feature = "azure")]
    return crate::providers::azure::fuzz::page_list(xml, size);
    #[cfg(not(feature = "azure"))]
    {
        let _ = (xml, size);
        None
    }
}

/// One line a child process (PowerShell) wrote, with the secrets of its run: JSON or text; a
/// text line never carries a secret; an `error` record becomes an error.
pub fn process_line(line: &str, secrets: &[String]) {
    match crate::providers::process::parse_line(line, secrets) {
        crate::providers::process::Line::Text(t) => {
            for s in secrets {
                // A secret with `*` in it can be made by the `***` that replaced another.
                if !s.is_empty() && !s.contains('*') {
                    assert!(!t.contains(s.as_str()), "secret {s:?} in {t:?}");
                }
            }
        }
        crate::providers::process::Line::Json(v) => {
            #[cfg(feature = "hyperv")]
            let _ = crate::providers::hyperv::fuzz::line(&v);
            #[cfg(not(feature = "hyperv"))]
            let _ = v;
        }
    }
}
