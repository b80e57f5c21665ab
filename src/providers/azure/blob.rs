//! Page blobs behind a SAS (a disk's grant) or an Entra ID token (a blob URL): properties,
//! page ranges (with `azure_storage_blob`, paginated), and the [`FileSource`] that fetches only
//! those ranges with per-range MD5.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use futures_util::TryStreamExt as _;
use url::Url;

use crate::BoxFuture;
use crate::error::{Error, ErrorKind, Result};
use crate::providers::kit::text::one_line;
use crate::providers::kit::{Answer, ApiClient, Call, CodeClass, Dialect};
use crate::transfer::{Checksum, FileSource, HttpSource, RequestSigner, SourceKind, redact_url};

/// Blob service version for our own requests (HEAD, ranged GETs with a token).
const BLOB_VERSION: &str = "2021-08-06";
/// Deadline of one call that is not a download (HEAD, a page of page ranges, a token): a
/// silent server must not hang an export.
const CALL_DEADLINE: Duration = Duration::from_secs(60);

/// How blob requests are authorized.
#[derive(Clone)]
pub(crate) enum BlobAuth {
    /// A SAS: the URL's query, replaced in every request by the current one, so a renewed
    /// grant reaches downloads already running.
    Sas(Arc<std::sync::Mutex<String>>),
    /// An Entra ID token for Azure Storage, fetched (and refreshed) per request.
    Token(Arc<dyn TokenCredential>),
}

impl std::fmt::Debug for BlobAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BlobAuth::Sas(_) => "BlobAuth::Sas(***)",
            BlobAuth::Token(_) => "BlobAuth::Token",
        })
    }
}

impl RequestSigner for BlobAuth {
    fn sign<'a>(&'a self, req: &'a mut reqwest::Request) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            req.headers_mut().insert(
                "x-ms-version",
                reqwest::header::HeaderValue::from_static(BLOB_VERSION),
            );
            match self {
                BlobAuth::Sas(q) => {
                    let q = crate::sync::lock(q).clone();
                    req.url_mut().set_query(Some(&q));
                }
                BlobAuth::Token(cred) => {
                    let t = tokio::time::timeout(
                        CALL_DEADLINE,
                        cred.get_token(&["https://storage.azure.com/.default"], None),
                    )
                    .await
                    .map_err(|_| {
                        Error::Timeout(format!(
                            "no token for Azure Storage within {CALL_DEADLINE:?}"
                        ))
                    })?
                    .map_err(|e| {
                        Error::Auth(format!(
                            "getting a token for Azure Storage: {}",
                            one_line(&e.to_string())
                        ))
                    })?;
                    let v = reqwest::header::HeaderValue::from_str(&format!(
                        "Bearer {}",
                        t.token.secret()
                    ))
                    .map_err(|_| Error::Auth("Entra ID gave an unusable token".into()))?;
                    req.headers_mut().insert(reqwest::header::AUTHORIZATION, v);
                }
            }
            Ok(())
        })
    }
}

/// Blob requests sign with their SAS or token; errors carry their code in `x-ms-error-code`
/// (a HEAD has no body) and an XML `<Error><Code>…<Message>` body otherwise.
impl Dialect for BlobAuth {
    fn sign<'a>(&'a self, req: &'a mut reqwest::Request) -> BoxFuture<'a, Result<()>> {
        RequestSigner::sign(self, req)
    }

    fn error_detail(&self, a: &Answer) -> Option<(String, String)> {
        let code = a.header("x-ms-error-code")?.to_string();
        let text = String::from_utf8_lossy(&a.body);
        let msg = text
            .split_once("<Message>")
            .and_then(|(_, r)| r.split_once("</Message>"))
            .map(|(m, _)| m.to_string())
            .unwrap_or_default();
        Some((code, msg))
    }

    fn classify(&self, code: &str) -> Option<CodeClass> {
        match code {
            "ServerBusy" => Some(CodeClass::Throttled),
            "OperationTimedOut" | "InternalError" => Some(CodeClass::Retry),
            "AuthenticationFailed" | "AuthorizationFailure" => {
                Some(CodeClass::Kind(ErrorKind::Auth))
            }
            "BlobNotFound" | "ContainerNotFound" => Some(CodeClass::Kind(ErrorKind::NotFound)),
            _ => None,
        }
    }
}

/// What a HEAD says about a blob.
struct Properties {
    size: u64,
    page_blob: bool,
    md5: Option<String>,
}

async fn properties(
    http: &reqwest::Client,
    url: &Url,
    auth: &BlobAuth,
    name: &str,
) -> Result<Properties> {
    let what = format!("HEAD {name} ({})", redact_url(url));
    let client = ApiClient::new(http.clone(), CALL_DEADLINE, 1 << 20);
    let resp = client
        .call(&Call::read(&what), auth, &|| http.head(url.clone()))
        .await?;
    let h = &resp.headers;
    let text = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
    let size = text("content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::Remote(format!("{name}: the blob service gave no size")))?;
    Ok(Properties {
        size,
        page_blob: text("x-ms-blob-type").as_deref() == Some("PageBlob"),
        md5: text("content-md5").filter(|v| !v.is_empty()),
    })
}

/// The written ranges of a page blob of `size` bytes, `[start, end)`, sorted and merged, asked
/// `segment` bytes at a time (each segment paged by the service; the SDK's pipeline retries a
/// failed page).
async fn page_ranges(
    http: &reqwest::Client,
    url: &Url,
    auth: &BlobAuth,
    deadline: Duration,
    size: u64,
    segment: u64,
) -> Result<Vec<(u64, u64)>> {
    use azure_storage_blob::clients::PageBlobClient;
    let mut options = azure_storage_blob::PageBlobClientOptions::default();
    options.client_options.transport =
        Some(azure_core::http::Transport::new(Arc::new(http.clone())));
    let (url, cred) = match auth {
        BlobAuth::Sas(q) => {
            let mut u = url.clone();
            u.set_query(Some(&crate::sync::lock(q).clone()));
            (u, None)
        }
        BlobAuth::Token(c) => (url.clone(), Some(c.clone())),
    };
    let what = format!("listing the page ranges of {}", redact_url(&url));
    let client = PageBlobClient::new(url, cred, Some(options)).map_err(|e| sdk_error(&what, &e))?;
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut start = 0u64;
    while start < size {
        let len = segment.min(size - start);
        list_segment(&client, &what, deadline, start, len, &mut out).await?;
        start += len;
    }
    out.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(out.len());
    for (a, b) in out {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    Ok(merged)
}

/// The written ranges within `[start, start + len)`, every page of the answer.
async fn list_segment(
    client: &azure_storage_blob::clients::PageBlobClient,
    what: &str,
    deadline: Duration,
    start: u64,
    len: u64,
    out: &mut Vec<(u64, u64)>,
) -> Result<()> {
    let options = azure_storage_blob::models::PageBlobClientListPageRangesOptions {
        range: Some(azure_storage_blob::models::HttpRange::new(start, len)),
        ..Default::default()
    };
    let mut pages = client
        .list_page_ranges(Some(options))
        .map_err(|e| sdk_error(what, &e))?;
    loop {
        let page = tokio::time::timeout(deadline, pages.try_next())
            .await
            .map_err(|_| Error::Timeout(format!("{what}: no answer within {deadline:?}")))?;
        let Some(resp) = page.map_err(|e| sdk_error(what, &e))? else {
            break;
        };
        let list = resp.into_model().map_err(|e| sdk_error(what, &e))?;
        for r in list.page_ranges {
            let (Some(a), Some(b)) = (r.start, r.end) else {
                continue;
            };
            let (Ok(a), Ok(b)) = (u64::try_from(a), u64::try_from(b)) else {
                return Err(Error::Remote(format!("{what}: a negative offset")));
            };
            if b < a {
                return Err(Error::Remote(format!(
                    "{what}: a range ends before it starts"
                )));
            }
            out.push((a, b + 1));
        }
    }
    Ok(())
}

/// An `azure_core` error as ours, without its text (which may quote the URL and its SAS).
fn sdk_error(what: &str, e: &azure_core::Error) -> Error {
    use azure_core::error::ErrorKind as K;
    match e.kind() {
        K::HttpResponse {
            status, error_code, ..
        } => {
            let code = error_code.as_deref().unwrap_or("");
            let text = format!("{what}: HTTP {} {code}", u16::from(*status));
            match u16::from(*status) {
                401 | 403 => Error::Auth(text),
                404 => Error::NotFound(text),
                429 | 500..=599 => Error::Network(text),
                _ => Error::Remote(text),
            }
        }
        K::Credential => Error::Auth(format!("{what}: {}", one_line(&e.to_string()))),
        K::Io => Error::Network(format!("{what}: connection failed")),
        _ => Error::Remote(format!("{what}: {:?}", e.kind())),
    }
}

/// The downloader's source for one blob: only its written pages when it is a page blob,
/// per-range MD5 on, its size exact; and the checks that will run, for the result.
///
/// A page blob's stored Content-MD5 is never used: Put Page does not update it, so on a disk
/// written since it was made (every disk in use) it is stale, and trusting it failed every
/// such export (Azure Storage Explorer stopped checking it for disk VHDs for this reason). A
/// block blob's stored MD5 is set with its content and is checked at the end.
pub(crate) async fn file_source(
    http: &reqwest::Client,
    url: &Url,
    auth: &BlobAuth,
    file_name: String,
    segment: u64,
) -> Result<(FileSource, &'static [&'static str])> {
    if url.scheme() != "https" {
        return Err(Error::Remote(format!(
            "{file_name}: the blob URL is not https ({}); a SAS must not travel in clear",
            redact_url(url)
        )));
    }
    let props = properties(http, url, auth, &file_name).await?;
    let source = HttpSource {
        client: http.clone(),
        url: url.clone(),
        headers: Default::default(),
        signer: Some(Arc::new(auth.clone())),
        hooks: crate::transfer::SourceHooks {
            server_checksum: (!props.page_blob)
                .then_some(crate::providers::kit::checksums::ms_blob_md5 as _),
            range_md5_header: Some(crate::providers::kit::checksums::MS_RANGE_MD5),
        },
    };
    let kind = if props.page_blob {
        SourceKind::HttpExtents {
            http: source,
            size: props.size,
            extents: page_ranges(http, url, auth, CALL_DEADLINE, props.size, segment).await?,
        }
    } else {
        SourceKind::Http(source)
    };
    let checksum = match &props.md5 {
        Some(m) if !props.page_blob => Some(Checksum::parse("md5", m)?),
        _ => None,
    };
    let checks: &[&str] = if checksum.is_some() {
        &["size", "range_md5", "stored_md5"]
    } else {
        &["size", "range_md5"]
    };
    let src = FileSource {
        name: file_name,
        kind,
        size_hint: Some(props.size),
        expected_size: Some(props.size),
        checksum,
        want_digest: None,
    };
    Ok((src, checks))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blob service that accepts the connection and never answers: listing page ranges ends
    /// with a timeout instead of hanging the export.
    #[tokio::test]
    async fn a_silent_blob_service_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _held = tokio::spawn(async move {
            let mut socks = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                socks.push(s);
            }
        });
        let url = Url::parse(&format!("http://{addr}/account/container/blob")).unwrap();
        let auth = BlobAuth::Sas(Arc::new(std::sync::Mutex::new("sig=x".into())));
        crate::runtime::handle(); // installs the TLS provider the client needs
        let e = page_ranges(
            &reqwest::Client::new(),
            &url,
            &auth,
            Duration::from_millis(300),
            1 << 20,
            1 << 20,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Timeout(_)), "{e}");
        assert!(!e.to_string().contains("sig=x"), "{e}");
    }
}
