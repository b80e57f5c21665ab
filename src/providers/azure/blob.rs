//! Page blobs behind a SAS (a disk's grant) or an Entra ID token (a blob URL): properties,
//! and the [`FileSource`] that fetches only the written ranges (`pages`) with per-range MD5.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
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
pub(super) const CALL_DEADLINE: Duration = Duration::from_secs(60);

/// How blob requests are authorized.
#[derive(Clone)]
pub(crate) enum BlobAuth {
    /// A SAS: the URL's query, replaced in every request by the current one, so a renewed
    /// grant reaches downloads already running.
    Sas(Arc<std::sync::Mutex<String>>),
    /// An Entra ID token for Azure Storage, fetched (and refreshed) per request.
    Token(Arc<dyn TokenCredential>),
    /// Both: the grant of a disk with `dataAccessAuthMode: AzureActiveDirectory`, whose SAS
    /// the service takes only with a token of a user holding the disk's download right.
    SasAndToken(Arc<std::sync::Mutex<String>>, Arc<dyn TokenCredential>),
}

impl std::fmt::Debug for BlobAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BlobAuth::Sas(_) => "BlobAuth::Sas(***)",
            BlobAuth::Token(_) => "BlobAuth::Token",
            BlobAuth::SasAndToken(..) => "BlobAuth::SasAndToken(***)",
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
            let (sas, cred) = match self {
                BlobAuth::Sas(q) => (Some(q), None),
                BlobAuth::Token(c) => (None, Some(c)),
                BlobAuth::SasAndToken(q, c) => (Some(q), Some(c)),
            };
            if let Some(q) = sas {
                let q = crate::sync::lock(q).clone();
                req.url_mut().set_query(Some(&q));
            }
            if let Some(cred) = cred {
                // A SAS with a token is a managed disk's export URL: its audience is the disk
                // service's, not Storage's.
                let scope = if sas.is_some() {
                    DISK_SCOPE
                } else {
                    STORAGE_SCOPE
                };
                req.headers_mut().insert(
                    reqwest::header::AUTHORIZATION,
                    storage_token(cred, scope).await?,
                );
            }
            Ok(())
        })
    }
}

/// A storage account's blobs.
const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
/// A managed disk's or snapshot's export URL (`dataAccessAuthMode: AzureActiveDirectory`): the
/// service checks the audience `https://disk.azure.com/` with its slash, so the scope has two
/// (AzCopy's `ManagedDiskScope`; the storage SDKs turn that challenge's resource into it).
const DISK_SCOPE: &str = "https://disk.azure.com//.default";

/// `Bearer <token>` for Azure Storage or the managed-disk endpoint (`scope`; a bearer token is
/// taken from x-ms-version 2017-11-09 on, BLOB_VERSION is newer).
async fn storage_token(
    cred: &Arc<dyn TokenCredential>,
    scope: &str,
) -> Result<reqwest::header::HeaderValue> {
    let t = tokio::time::timeout(CALL_DEADLINE, cred.get_token(&[scope], None))
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
    let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", t.token.secret()))
        .map_err(|_| Error::Auth("Entra ID gave an unusable token".into()))?;
    v.set_sensitive(true);
    Ok(v)
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
            // The last three: a bearer token missing, not valid, or without the right (a disk
            // with dataAccessAuthMode AzureActiveDirectory, read by someone lacking it).
            "AuthenticationFailed"
            | "AuthorizationFailure"
            | "NoAuthenticationInformation"
            | "InvalidAuthenticationInfo"
            | "AuthorizationPermissionMismatch" => Some(CodeClass::Kind(ErrorKind::Auth)),
            "BlobNotFound" | "ContainerNotFound" => Some(CodeClass::Kind(ErrorKind::NotFound)),
            _ => None,
        }
    }
}

/// What a HEAD says about a blob.
pub(super) struct Properties {
    pub(super) size: u64,
    page_blob: bool,
    md5: Option<String>,
}

pub(super) async fn properties(
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

/// Ranged GETs of a blob with its SAS or token, each range's MD5 asked for (and, for a block
/// blob, its stored MD5 read).
pub(super) fn http_source(
    http: &reqwest::Client,
    url: &Url,
    auth: &BlobAuth,
    page_blob: bool,
) -> HttpSource {
    HttpSource {
        client: http.clone(),
        url: url.clone(),
        headers: Default::default(),
        signer: Some(Arc::new(auth.clone())),
        hooks: crate::transfer::SourceHooks {
            server_checksum: (!page_blob)
                .then_some(crate::providers::kit::checksums::ms_blob_md5 as _),
            range_md5_header: Some(crate::providers::kit::checksums::MS_RANGE_MD5),
            version_header: None,
        },
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
    let source = http_source(http, url, auth, props.page_blob);
    let kind = if props.page_blob {
        SourceKind::HttpExtents {
            http: source,
            size: props.size,
            extents: super::pages::page_ranges(http, url, auth, CALL_DEADLINE, props.size, segment)
                .await?,
            base: None,
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
