//! The AWS calls the provider makes, as SigV4-signed HTTP requests on our own client: EC2's
//! Query API (a form-encoded POST, an XML answer) and S3's REST calls (HEAD, GET, DELETE).
//!
//! Why not aws-sdk-ec2 / aws-sdk-s3: they are generated for hundreds of operations and were most
//! of a 2-core release build (aws-sdk-ec2 alone 7+ minutes, docs/BENCHMARKS.md) for the eleven
//! calls made here. Credentials still come from aws-config's provider chain (environment,
//! profiles, SSO, web identity, instance metadata, credential_process), signing from aws-sigv4.
//!
//! Every call goes through the provider kit's API client (`providers::kit::api`): a deadline
//! per attempt and the library's one retry rule (8 attempts, ~25 s), on connection errors,
//! timeouts, HTTP 5xx and 429, and the throttling codes below. An hours-long export must ride
//! out a short outage.

use std::sync::Arc;

use reqwest::Method;
use url::Url;

use super::sign::Signer;
use crate::BoxFuture;
use crate::error::{Error, ErrorKind, Result};
use crate::providers::kit::paging::Pages;
use crate::providers::kit::{ApiClient, Call, CodeClass, Dialect};
use crate::providers::xml::{self, Node};

pub(crate) use crate::providers::kit::Answer;

/// The EC2 Query API version every call names (the current one; its XML is what we read).
const EC2_VERSION: &str = "2016-11-15";
/// Largest answer accepted (a page of 1000 instances is a few MiB).
pub(crate) const MAX_BODY: usize = 32 << 20;

/// Error codes that mean "slow down" or "unavailable", across EC2 and S3: the call was not
/// taken, so it is sent again whatever it does.
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "TooManyRequestsException",
    "EC2ThrottledException",
    "ServiceUnavailable",
    "Unavailable",
];

/// Error codes of a passing fault on AWS's side: it may have acted, so only a call that does
/// no harm twice is sent again.
const PASSING: &[&str] = &[
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
];

const AUTH_CODES: &[&str] = &[
    "AuthFailure",
    "SignatureDoesNotMatch",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "AccessDenied",
    "InvalidAccessKeyId",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "UnauthorizedOperation",
    "Forbidden",
];

/// Where EC2 and S3 are, and how to reach them.
pub(crate) struct Api {
    /// The kit's client: our HTTP client, the per-attempt deadline, the body cap.
    pub client: ApiClient,
    pub signer: Arc<Signer>,
    pub ec2: Url,
    pub s3: S3Urls,
    /// The EBS direct APIs (`ebs.{region}.amazonaws.com`).
    pub ebs: Url,
}

/// Builds S3 URLs: the base endpoint and whether buckets are addressed by path.
#[derive(Clone)]
pub(crate) struct S3Urls {
    pub base: Url,
    pub path_style: bool,
    /// The endpoint was configured (it stays when a bucket is in another region).
    pub configured: bool,
}

/// Percent-encodes the way SigV4 canonicalizes: RFC 3986 unreserved characters kept (and `/`
/// when asked), every other byte `%XX`. Never `+` for a space.
pub(crate) fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl S3Urls {
    /// The URL of an object (key encoded for SigV4), or of the bucket itself when `key` is None;
    /// `query` is appended already encoded.
    pub fn url(&self, bucket: &str, key: Option<&str>, query: &[(&str, &str)]) -> Result<Url> {
        if let Some(k) = key
            && k.split('/').any(|seg| seg == "." || seg == "..")
        {
            // A URL parser removes dot segments (WHATWG URL, also in their %2E forms), so the
            // request would name another object: refused rather than fetched wrong.
            return Err(Error::InvalidArgument(format!(
                "S3 key {k:?} has a \".\" or \"..\" segment, which an HTTP URL cannot carry unchanged; copy the object to a key without one"
            )));
        }
        let path = match key {
            Some(k) => format!("/{}", encode(k, true)),
            None => String::new(),
        };
        // A bucket name with dots cannot be a TLS-valid host label: address it by path.
        let mut text = if self.path_style || bucket.contains('.') {
            format!(
                "{}/{bucket}{path}",
                self.base.as_str().trim_end_matches('/')
            )
        } else {
            let host = self.base.host_str().unwrap_or("s3.amazonaws.com");
            let port = self
                .base
                .port()
                .map(|p| format!(":{p}"))
                .unwrap_or_default();
            let path = if path.is_empty() { "/" } else { &path };
            format!("{}://{bucket}.{host}{port}{path}", self.base.scheme())
        };
        for (i, (k, v)) in query.iter().enumerate() {
            text.push(if i == 0 { '?' } else { '&' });
            text.push_str(&encode(k, false));
            text.push('=');
            text.push_str(&encode(v, false));
        }
        Url::parse(&text).map_err(|e| Error::InvalidArgument(format!("S3 URL: {e}")))
    }

    pub fn object_url(&self, bucket: &str, key: &str) -> Result<Url> {
        self.url(bucket, Some(key), &[])
    }
}

/// How EC2 or S3 signs and writes errors.
struct Aws<'a> {
    signer: &'a Signer,
    service: Service,
}

#[derive(Clone, Copy)]
enum Service {
    Ec2,
    S3,
}

impl Dialect for Aws<'_> {
    fn sign<'a>(&'a self, req: &'a mut reqwest::Request) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            match self.service {
                Service::Ec2 => self.signer.sign_ec2(req).await,
                Service::S3 => self.signer.sign_s3(req).await,
            }
        })
    }

    fn error_detail(&self, a: &Answer) -> Option<(String, String)> {
        detail(&a.body)
    }

    fn classify(&self, code: &str) -> Option<CodeClass> {
        classify_code(code)
    }
}

/// What an EC2 or S3 error code means, where it says more than the status.
pub(super) fn classify_code(code: &str) -> Option<CodeClass> {
    Some(if THROTTLING.contains(&code) {
        CodeClass::Throttled
    } else if PASSING.contains(&code) {
        CodeClass::Retry
    } else if AUTH_CODES.contains(&code) {
        CodeClass::Kind(ErrorKind::Auth)
    } else if code.ends_with(".NotFound") || code.starts_with("NoSuch") || code == "NotFound" {
        CodeClass::Kind(ErrorKind::NotFound)
    } else if code.starts_with("InvalidParameter") || code.ends_with(".Malformed") {
        CodeClass::Kind(ErrorKind::InvalidArgument)
    } else if code == "IncorrectState" || code.starts_with("IncorrectInstanceState") {
        CodeClass::Kind(ErrorKind::InvalidState)
    } else {
        return None;
    })
}

/// EC2 actions that may run twice without harm: reads, cancels, and those we send with a
/// `ClientToken` (EC2 then starts one task however often it is sent).
fn idempotent(action: &str) -> bool {
    action.starts_with("Describe") || action.starts_with("Cancel") || action == "ExportImage"
}

impl Api {
    /// One EC2 Query call: `Action` with its parameters (already flattened the Query way,
    /// `Name.1`, `Struct.Member`); the answer's XML root on success. `about` (an id, or "")
    /// goes into the error message.
    pub async fn ec2(&self, action: &str, about: &str, params: &[(&str, &str)]) -> Result<Node> {
        let mut form = format!("Action={}&Version={EC2_VERSION}", encode(action, false));
        for (k, v) in params {
            form.push('&');
            form.push_str(&encode(k, false));
            form.push('=');
            form.push_str(&encode(v, false));
        }
        let what = format!("EC2 {action} {about}").trim_end().to_string();
        let call = Call {
            what: &what,
            idempotent: idempotent(action),
            cancel: None,
        };
        let dialect = Aws {
            signer: &self.signer,
            service: Service::Ec2,
        };
        let a = self
            .client
            .call(&call, &dialect, &|| {
                self.client
                    .http
                    .post(self.ec2.clone())
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded; charset=utf-8",
                    )
                    .body(form.clone())
            })
            .await?;
        parse(&what, &a.body)
    }

    /// Every `item` of `set` in the answers of a paged EC2 describe call: `MaxResults=1000`,
    /// then `NextToken` until there is none (botocore's paginators-1.json for the action),
    /// under the kit's paging guard (a deadline, a token that repeats).
    pub async fn ec2_items(
        &self,
        action: &str,
        params: &[(&str, &str)],
        set: &str,
    ) -> Result<Vec<Node>> {
        let mut pages = Pages::new(format!("EC2 {action} listing"));
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut p = params.to_vec();
            p.push(("MaxResults", "1000"));
            if let Some(t) = &token {
                p.push(("NextToken", t));
            }
            let page = tokio::time::timeout(pages.remaining(), self.ec2(action, "", &p))
                .await
                .map_err(|_| {
                    Error::Timeout(format!("{}: still paging at its deadline", pages.what()))
                })??;
            let before = out.len();
            out.extend(
                page.children_named(set)
                    .flat_map(|s| s.children_named("item"))
                    .cloned(),
            );
            pages.page(out.len() - before, 0)?;
            match page.child_text("nextToken").map(str::trim) {
                Some(t) if !t.is_empty() => {
                    pages.next(t)?;
                    token = Some(t.to_string());
                }
                _ => return Ok(out),
            }
        }
    }

    /// One S3 call; any HTTP status is returned (the caller knows what 404 means for it), after
    /// the retries for 5xx, 429 and throttling.
    pub async fn s3(
        &self,
        what: &str,
        method: Method,
        url: Url,
        headers: &[(&str, &str)],
    ) -> Result<Answer> {
        let dialect = Aws {
            signer: &self.signer,
            service: Service::S3,
        };
        self.client
            .send(&Call::read(what), &dialect, &|| {
                let mut b = self.client.http.request(method.clone(), url.clone());
                for (k, v) in headers {
                    b = b.header(*k, *v);
                }
                b
            })
            .await
    }
}

fn parse(what: &str, body: &[u8]) -> Result<Node> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Error::Remote(format!("{what}: the answer is not UTF-8")))?;
    xml::parse(text).map_err(|e| Error::Remote(format!("{what}: {e}")))
}

/// The `Code` and `Message` of an error answer (EC2: `Response/Errors/Error`; S3: `Error`).
/// HEAD answers have no body: the status must do.
pub(super) fn detail(body: &[u8]) -> Option<(String, String)> {
    let root = xml::parse(std::str::from_utf8(body).ok()?).ok()?;
    let e = root.find("Error")?;
    let code = e.child_text("Code").unwrap_or("").trim().to_string();
    (!code.is_empty()).then(|| (code, e.child_text("Message").unwrap_or("").to_string()))
}

/// An S3 error answer as our error, by the kit's one mapping (the code where it says more
/// than the status). Nothing of the request (its signature, the credentials) is in it.
pub(crate) fn api_error(what: &str, a: &Answer) -> Error {
    crate::providers::kit::api::error_from(what, a, detail, classify_code)
}

/// `Name.1=a&Name.2=b`: a list parameter the Query way.
pub(crate) fn list_param<'a>(name: &str, values: &[&'a str]) -> Vec<(String, &'a str)> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("{name}.{}", i + 1), *v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            headers: reqwest::header::HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn error_answers_map_by_code_then_status() {
        let ec2 = |code: &str| {
            answer(
                400,
                &format!(
                    "<Response><Errors><Error><Code>{code}</Code><Message>it\n went   wrong</Message></Error></Errors><RequestID>r</RequestID></Response>"
                ),
            )
        };
        let e = api_error("EC2 X", &ec2("InvalidInstanceID.NotFound"));
        assert!(matches!(e, Error::NotFound(_)), "{e}");
        assert!(e.to_string().contains("it went wrong"), "{e}");
        assert!(matches!(
            api_error("x", &ec2("AuthFailure")),
            Error::Auth(_)
        ));
        assert!(matches!(
            api_error("x", &ec2("InvalidParameterValue")),
            Error::InvalidArgument(_)
        ));
        assert!(matches!(
            api_error("x", &ec2("IncorrectState")),
            Error::InvalidState(_)
        ));
        assert!(matches!(
            api_error("x", &ec2("SomethingElse")),
            Error::InvalidArgument(_)
        ));
        let s3 = answer(
            404,
            "<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>",
        );
        assert!(matches!(api_error("x", &s3), Error::NotFound(_)));
        assert!(matches!(api_error("x", &answer(403, "")), Error::Auth(_)));
        assert!(matches!(
            api_error("x", &answer(404, "")),
            Error::NotFound(_)
        ));
        // A 5xx that outlived the retries: the same kind as from every other cloud.
        assert!(matches!(
            api_error("x", &answer(500, "<html>")),
            Error::Network(_)
        ));
    }

    #[test]
    fn throttling_codes_are_retried_client_errors_are_not() {
        assert_eq!(
            classify_code("RequestLimitExceeded"),
            Some(CodeClass::Throttled)
        );
        assert_eq!(classify_code("SlowDown"), Some(CodeClass::Throttled));
        assert_eq!(classify_code("InternalError"), Some(CodeClass::Retry));
        assert_eq!(
            classify_code("InvalidParameterValue"),
            Some(CodeClass::Kind(ErrorKind::InvalidArgument))
        );
        assert_eq!(classify_code("UnknownThing"), None);
        assert!(idempotent("DescribeExportTasks") && idempotent("CancelExportTask"));
        assert!(!idempotent("CreateInstanceExportTask"));
    }

    #[test]
    fn urls_are_encoded_for_sigv4() {
        let u = S3Urls {
            base: Url::parse("http://127.0.0.1:9000").unwrap(),
            path_style: true,
            configured: true,
        };
        assert_eq!(
            u.object_url("b", "vms/export-i-1 x+y.vmdk")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9000/b/vms/export-i-1%20x%2By.vmdk"
        );
        assert_eq!(
            u.url("b", None, &[("list-type", "2"), ("prefix", "a b/+=")])
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9000/b?list-type=2&prefix=a%20b%2F%2B%3D"
        );
        let u = S3Urls {
            base: Url::parse("https://s3.eu-west-1.amazonaws.com").unwrap(),
            path_style: false,
            configured: false,
        };
        assert_eq!(
            u.object_url("bk", "a/b.vmdk").unwrap().as_str(),
            "https://bk.s3.eu-west-1.amazonaws.com/a/b.vmdk"
        );
        assert_eq!(
            u.url("bk", None, &[]).unwrap().as_str(),
            "https://bk.s3.eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            u.object_url("b.k", "x").unwrap().as_str(),
            "https://s3.eu-west-1.amazonaws.com/b.k/x"
        );
        for k in ["a/../b", "./x", "a/.", ".."] {
            let e = u.object_url("b", k).unwrap_err();
            assert!(e.to_string().contains(k), "{e}");
        }
        assert!(u.object_url("b", "a/.hidden/..x/...").is_ok());
        assert_eq!(
            list_param("InstanceId", &["i-1", "i-2"]),
            vec![
                ("InstanceId.1".to_string(), "i-1"),
                ("InstanceId.2".to_string(), "i-2")
            ]
        );
    }
}
