//! The HTTP(S) source: one URL or a list of `{url, file_name}` (pre-signed S3/GCS/SAS links,
//! NFC URLs, any web server), fetched by the core downloader.

use std::collections::{BTreeMap, HashSet};

use reqwest::header::HeaderMap;
use serde::Deserialize;
use url::Url;

use super::kit::config::parse_with_net;
use super::kit::net::{Redirects, header_map};
use super::kit::text::percent_decode;
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::paths::{sanitize_file_name, validate_file_name};
use crate::seam::options::parse_provider_options;
use crate::seam::{Flow, FlowCtx, Provider};
use crate::secret::Secret;
use crate::transfer::{Checksum, FileSource, HttpSource};

/// Client config of the `http` provider.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HttpConfig {
    /// Headers sent with every request (e.g. Authorization). Never logged.
    pub headers: BTreeMap<String, Secret>,
    // The network keys (CA bundle, insecure flag, connect timeout) are the kit's NetConfig,
    // split off before this struct is parsed.
}

/// Export options of the `http` provider (besides the common ones).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HttpOptions {
    /// Several files in one export (a VM's disks); then `source_id` is empty.
    pub files: Vec<HttpFile>,
    /// Headers for this export's requests, on top of the client's.
    pub headers: BTreeMap<String, Secret>,
    /// File name for a single `source_id` URL (default: the URL's last path segment).
    pub file_name: Option<String>,
    pub sha256: Option<String>,
    pub md5: Option<String>,
    pub crc32c: Option<String>,
    /// Expected size, for an early total (the server's answer wins).
    pub size: Option<u64>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpFile {
    pub url: String,
    pub file_name: Option<String>,
    pub sha256: Option<String>,
    pub md5: Option<String>,
    pub crc32c: Option<String>,
    pub size: Option<u64>,
}

impl std::fmt::Debug for HttpFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A pre-signed URL's query is a credential.
        f.debug_struct("HttpFile")
            .field("url", &crate::transfer::redact_url_text(&self.url))
            .field("file_name", &self.file_name)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl HttpFile {
    fn to_source(&self, client: &reqwest::Client, headers: &HeaderMap) -> Result<FileSource> {
        let url = parse_url(&self.url)?;
        let name = match &self.file_name {
            Some(n) => {
                validate_file_name(n)?;
                n.clone()
            }
            None => name_from_url(&url),
        };
        let mut src = FileSource::http(
            name,
            HttpSource {
                client: client.clone(),
                url,
                headers: headers.clone(),
                signer: None,
                // A plain URL may be a pre-signed GCS link or a blob SAS: their checksums are
                // read too.
                hooks: crate::transfer::SourceHooks {
                    server_checksum: Some(super::kit::checksums::any_cloud),
                    range_md5_header: None,
                    version_header: None,
                },
            },
        );
        src.size_hint = self.size;
        src.expected_size = self.size;
        src.checksum = checksum_of(&self.sha256, &self.md5, &self.crc32c)?;
        Ok(src)
    }
}

pub(crate) struct HttpProvider {
    client: reqwest::Client,
    headers: HeaderMap,
}

impl HttpProvider {
    pub fn new(config_json: &str) -> Result<Self> {
        let (cfg, net): (HttpConfig, _) = parse_with_net("http", config_json)?;
        let client = net.client(Redirects::SameOrigin)?;
        Ok(HttpProvider {
            client,
            headers: header_map(&cfg.headers)?,
        })
    }
}

pub(crate) fn parse_url(s: &str) -> Result<Url> {
    let url = Url::parse(s).map_err(|e| {
        Error::InvalidArgument(format!(
            "URL {:?}: {e}",
            crate::transfer::redact_url_text(s)
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::InvalidArgument(format!(
            "URL scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    Ok(url)
}

fn checksum_of(
    sha256: &Option<String>,
    md5: &Option<String>,
    crc32c: &Option<String>,
) -> Result<Option<Checksum>> {
    // The strongest given wins; all given are well-formed or it is an error.
    let mut best = None;
    for (alg, v) in [("crc32c", crc32c), ("md5", md5), ("sha256", sha256)] {
        if let Some(v) = v {
            best = Some(Checksum::parse(alg, v)?);
        }
    }
    Ok(best)
}

fn name_from_url(url: &Url) -> String {
    let last = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or("");
    let decoded = percent_decode(last);
    sanitize_file_name(&decoded, "download")
}

impl Provider for HttpProvider {
    fn plan(
        &self,
        source_id: &str,
        _common: &crate::seam::options::CommonOptions,
        options: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Box<dyn Flow>> {
        let o: HttpOptions = parse_provider_options(options)?;
        let mut headers = self.headers.clone();
        headers.extend(header_map(&o.headers)?);
        let mut files = Vec::new();
        if !source_id.trim().is_empty() {
            if !o.files.is_empty() {
                return Err(Error::InvalidArgument(
                    "give either a URL as source_id or options.files, not both".into(),
                ));
            }
            let single = HttpFile {
                url: source_id.trim().to_string(),
                file_name: o.file_name.clone(),
                sha256: o.sha256.clone(),
                md5: o.md5.clone(),
                crc32c: o.crc32c.clone(),
                size: o.size,
            };
            files.push(single.to_source(&self.client, &headers)?);
        } else {
            if o.files.is_empty() {
                return Err(Error::InvalidArgument(
                    "source_id is empty and options.files lists no file".into(),
                ));
            }
            if o.file_name.is_some()
                || o.sha256.is_some()
                || o.md5.is_some()
                || o.crc32c.is_some()
                || o.size.is_some()
            {
                return Err(Error::InvalidArgument(
                    "file_name, size and checksums go inside each entry of options.files".into(),
                ));
            }
            for f in &o.files {
                files.push(f.to_source(&self.client, &headers)?);
            }
        }
        let mut seen = HashSet::new();
        for f in &files {
            if !seen.insert(f.name.to_lowercase()) {
                return Err(Error::InvalidArgument(format!(
                    "two files would be written as {:?}; give each a distinct file_name",
                    f.name
                )));
            }
        }
        Ok(Box::new(HttpFlow { files: Some(files) }))
    }
}

struct HttpFlow {
    files: Option<Vec<FileSource>>,
}

impl Flow for HttpFlow {
    fn dry_run(&self) -> (Vec<String>, Vec<String>) {
        let files = self
            .files
            .iter()
            .flatten()
            .map(|f| f.name.clone())
            .collect();
        (Vec::new(), files)
    }

    fn prepare<'a>(&'a mut self, _ctx: &'a FlowCtx) -> BoxFuture<'a, Result<Vec<FileSource>>> {
        let files = self.files.take().unwrap_or_default();
        Box::pin(async move { Ok(files) })
    }
}

/// What this provider accepts (`hs_provider_info`).
pub(crate) fn info() -> super::schema::ProviderInfo {
    super::schema::ProviderInfo {
        name: "http",
        built_in: true,
        sources: &["http(s)://… (one URL; or none, with the files option)"],
        config_keys: super::schema::with_net::<HttpConfig>(),
        option_keys: super::schema::field_names::<HttpOptions>(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(src: &str, opts: serde_json::Value) -> Result<Box<dyn Flow>> {
        let p = HttpProvider::new("{}").unwrap();
        p.plan(src, &Default::default(), opts.as_object().unwrap().clone())
    }

    #[test]
    fn names_and_errors() {
        assert_eq!(
            name_from_url(&Url::parse("http://h/a/disk%201.vmdk?sig=x").unwrap()),
            "disk 1.vmdk"
        );
        assert_eq!(
            name_from_url(&Url::parse("http://h/a/..%2F..%2Fetc").unwrap()),
            "_.._etc"
        );
        assert_eq!(name_from_url(&Url::parse("http://h/").unwrap()), "download");
        let e = plan("http://h/x", serde_json::json!({"bogus": 1}))
            .err()
            .unwrap();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = plan("http://h/x", serde_json::json!({"file_name": "../x"}))
            .err()
            .unwrap();
        assert!(e.to_string().contains("plain file name"), "{e}");
        let e = plan("ftp://h/x", serde_json::json!({})).err().unwrap();
        assert!(e.to_string().contains("scheme"), "{e}");
        let e = plan(
            "",
            serde_json::json!({"files": [{"url": "http://h/a/x"}, {"url": "http://h/b/x"}]}),
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("distinct"), "{e}");
        let e = plan(
            "http://h/x",
            serde_json::json!({"headers": {"bad name": "v"}}),
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("bad name"), "{e}");
        assert!(HttpProvider::new(r#"{"ca_bundle_pem": "nope"}"#).is_err());
        // A URL that does not parse (a bad port) keeps its signature out of the error.
        let e = plan(
            "https://user:pw@bucket.s3.amazonaws.com:99999/d.vmdk?X-Amz-Signature=sig-123abc",
            serde_json::json!({}),
        )
        .err()
        .unwrap();
        let m = e.to_string();
        assert!(!m.contains("sig-123abc") && !m.contains("pw@"), "{m}");
        let f: HttpFile = serde_json::from_value(
            serde_json::json!({"url": "https://h/x?sig=sig-456def", "file_name": "x"}),
        )
        .unwrap();
        assert!(!format!("{f:?}").contains("sig-456def"));
        let e = HttpProvider::new(r#"{"insecure": true}"#).err().unwrap();
        assert!(e.to_string().contains("insecure"), "{e}");
    }
}

/// Property tests of the source URL parser (proptest: the field's standard generator and
/// shrinker; see `src/proptests.rs` for the rest).
#[cfg(test)]
mod url_props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A source URL: parsed, or refused with INVALID_ARGUMENT whose message holds neither the
        /// password nor the query (a presigned URL's signature), whatever else the text holds.
        #[test]
        fn url_errors_never_show_credentials(
            scheme in prop::sample::select(vec!["http", "https", "ftp", "htt p", "", "s3"]),
            sep in prop::sample::select(vec!["://", ":/", ":", "//", ""]),
            host in "[a-z0-9.\\[\\]:%-]{0,12}",
            path in "[ -~]{0,12}",
        ) {
            let (password, sig) = ("Pw9secretQz", "Sig7secretXy");
            let text = format!("{scheme}{sep}user:{password}@{host}/{path}?X-Amz-Signature={sig}");
            match parse_url(&text) {
                Ok(u) => prop_assert!(matches!(u.scheme(), "http" | "https")),
                Err(Error::InvalidArgument(m)) => {
                    prop_assert!(!m.contains(password) && !m.contains(sig), "{text:?} → {m}");
                }
                Err(e) => prop_assert!(false, "{e:?}"),
            }
        }
    }
}
