//! The HTTP client every provider builds on: one TLS stack (rustls + aws-lc-rs), optional extra
//! CAs, connection reuse tuned for many parallel ranged GETs to one host; and header maps
//! checked up front.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{Error, Result};
use crate::secret::Secret;

/// How a client treats redirects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Redirects {
    /// Downloads: same-origin redirects are followed (at most 10); a cross-origin one is handed
    /// back to the downloader, which follows it without the source's own headers and signer
    /// (they may be credentials meant for the first host); https → http is refused.
    SameOrigin,
    /// API calls (SOAP with a password or a session): never followed, a 307 would re-send the
    /// credentials wherever it points.
    Never,
}

/// A reqwest client with our TLS stack, optional extra CAs, and connection reuse tuned for many
/// parallel ranged GETs to one host.
pub(crate) fn build_client(
    ca_pem: Option<&str>,
    ca_path: Option<&std::path::Path>,
    insecure: bool,
    connect_timeout: Duration,
    redirects: Redirects,
) -> Result<reqwest::Client> {
    let mut b = builder(connect_timeout, redirects);
    for pem in ca_pems(ca_pem, ca_path)? {
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| Error::InvalidArgument(format!("CA bundle is not valid PEM: {e}")))?;
        if certs.is_empty() {
            return Err(Error::InvalidArgument(
                "CA bundle holds no certificate".into(),
            ));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if insecure {
        b = b.tls_danger_accept_invalid_certs(true);
    }
    b.build().map_err(|e| {
        // reqwest's own text is only "builder error": the cause (a TLS setup the platform
        // refused, say) is in the chain.
        let mut m = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            m.push_str(&format!(": {c}"));
            cause = c.source();
        }
        Error::InvalidArgument(format!("HTTP client: {m}"))
    })
}

/// The extra CA bundles' PEM text, inline and from a file.
pub(crate) fn ca_pems(
    ca_pem: Option<&str>,
    ca_path: Option<&std::path::Path>,
) -> Result<Vec<Vec<u8>>> {
    let mut pems: Vec<Vec<u8>> = Vec::new();
    if let Some(p) = ca_pem {
        pems.push(p.as_bytes().to_vec());
    }
    if let Some(path) = ca_path {
        pems.push(std::fs::read(path).map_err(|e| {
            Error::InvalidArgument(format!("ca_bundle_path {}: {e}", path.display()))
        })?);
    }
    Ok(pems)
}

/// The client builder every provider starts from (TLS aside): redirects, timeouts, pool.
pub(crate) fn builder(connect_timeout: Duration, redirects: Redirects) -> reqwest::ClientBuilder {
    crate::runtime::handle(); // installs the TLS provider
    let policy = match redirects {
        Redirects::Never => reqwest::redirect::Policy::none(),
        Redirects::SameOrigin => reqwest::redirect::Policy::custom(|attempt| {
            let from = attempt.previous().last().cloned();
            if attempt.previous().len() > 10 {
                attempt.error("more than 10 redirects")
            } else if let Some(from) = from {
                if from.scheme() == "https" && attempt.url().scheme() != "https" {
                    attempt.error("refused a redirect from https to http")
                } else if from.origin() != attempt.url().origin() {
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            } else {
                attempt.follow()
            }
        }),
    };
    reqwest::Client::builder()
        .redirect(policy)
        .connect_timeout(connect_timeout)
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .user_agent(concat!("hypersdk/", env!("CARGO_PKG_VERSION")))
}

/// Reads a response body of at most `max` bytes: a server that sends more (a hostile or broken
/// API endpoint) gets a clean error instead of all the memory it asks for.
pub(crate) async fn read_capped(
    resp: reqwest::Response,
    max: usize,
    what: &str,
) -> Result<Vec<u8>> {
    use futures_util::StreamExt as _;
    if resp.content_length().is_some_and(|l| l > max as u64) {
        return Err(Error::Remote(format!(
            "{what}: the answer is larger than {} MiB",
            max >> 20
        )));
    }
    let mut body = resp.bytes_stream();
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Error::http(what, e))?;
        if out.len() + chunk.len() > max {
            return Err(Error::Remote(format!(
                "{what}: the answer is larger than {} MiB",
                max >> 20
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Header names and values checked up front, so a typo is an error naming the header (but not
/// its value, which may be a secret).
pub(crate) fn header_map(h: &BTreeMap<String, Secret>) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for (k, v) in h {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| Error::InvalidArgument(format!("header name {k:?} is not valid")))?;
        let mut value = HeaderValue::from_str(v.expose())
            .map_err(|_| Error::InvalidArgument(format!("value of header {k:?} is not valid")))?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}
