//! The AWS calls the provider makes, as SigV4-signed HTTP requests on our own client: EC2's
//! Query API (a form-encoded POST, an XML answer) and S3's REST calls (HEAD, GET, DELETE).
//!
//! Why not aws-sdk-ec2 / aws-sdk-s3: they are generated for hundreds of operations and were most
//! of a 2-core release build (aws-sdk-ec2 alone 7+ minutes, docs/BENCHMARKS.md) for the eleven
//! calls made here. Credentials still come from aws-config's provider chain (environment,
//! profiles, SSO, web identity, instance metadata, credential_process), signing from aws-sigv4.
//!
//! Every call has a per-attempt deadline and is retried like the SDK's standard mode, but longer
//! (8 attempts, backoff from 0.5 s doubling to 5 s, jittered; ~25 s in all): on connection errors, timeouts,
//! HTTP 5xx and 429, and the throttling codes. An hours-long export must ride out a short outage.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use url::Url;

use super::sign::Signer;
use crate::error::{Error, Result};
use crate::providers::xml::{self, Node};

/// The EC2 Query API version every call names (the current one; its XML is what we read).
const EC2_VERSION: &str = "2016-11-15";
/// Largest answer accepted (a page of 1000 instances is a few MiB).
const MAX_BODY: usize = 32 << 20;
const ATTEMPTS: u32 = 8;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Error codes that mean "slow down and retry", across EC2 and S3.
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
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
    "Unavailable",
];

const AUTH_CODES: &[&str] = &[
    "AuthFailure",
    "SignatureDoesNotMatch",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "AccessDenied",
    "InvalidAccessKeyId",
    "ExpiredToken",
    "UnauthorizedOperation",
    "Forbidden",
];

/// An answer: status, headers and the (capped) body.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Where EC2 and S3 are, and how to reach them.
pub(crate) struct Api {
    pub http: reqwest::Client,
    pub signer: Arc<Signer>,
    pub ec2: Url,
    pub s3: S3Urls,
    /// Deadline of one attempt.
    pub timeout: Duration,
}

/// Builds S3 URLs: the base endpoint and whether buckets are addressed by path.
#[derive(Clone)]
pub(crate) struct S3Urls {
    pub base: Url,
    pub path_style: bool,
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

/// The default endpoints of a region (China's partition has its own domain).
pub(crate) fn default_endpoint(service: &str, region: &str) -> Url {
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    Url::parse(&format!("https://{service}.{region}.{domain}")).expect("static URL")
}

enum Service {
    Ec2,
    S3,
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
        let a = self
            .send(&what, Service::Ec2, || {
                self.http
                    .post(self.ec2.clone())
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded; charset=utf-8",
                    )
                    .body(form.clone())
            })
            .await?;
        if !a.status.is_success() {
            return Err(api_error(&what, &a));
        }
        parse(&what, &a.body)
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
        self.send(what, Service::S3, || {
            let mut b = self.http.request(method.clone(), url.clone());
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b
        })
        .await
    }

    async fn send(
        &self,
        what: &str,
        service: Service,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Answer> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let last = attempt >= ATTEMPTS;
            let mut req = build()
                .timeout(self.timeout)
                .build()
                .map_err(|e| Error::http(what, e))?;
            // Signed per attempt: the signature carries the time.
            match service {
                Service::Ec2 => self.signer.sign_ec2(&mut req).await?,
                Service::S3 => self.signer.sign_s3(&mut req).await?,
            }
            let resp = match self.http.execute(req).await {
                Ok(r) => r,
                Err(e) if !last => {
                    tracing::debug!(%what, error = %Error::http(what, e), attempt, "AWS call failed, retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(e) => return Err(Error::http(what, e)),
            };
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = match crate::providers::net::read_capped(resp, MAX_BODY, what).await {
                Ok(b) => b,
                // A body cut off mid-way is a network fault like any other.
                Err(e @ (Error::Network(_) | Error::Timeout(_))) if !last => {
                    tracing::debug!(%what, error = %e, attempt, "AWS answer cut off, retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let a = Answer {
                status,
                headers,
                body,
            };
            if !last && retryable(&a) {
                tracing::debug!(%what, status = %a.status, attempt, "AWS call throttled or failed, retrying");
                tokio::time::sleep(backoff(attempt)).await;
                continue;
            }
            return Ok(a);
        }
    }
}

/// Backoff before attempt `attempt + 1`: 0.5 s doubling to 5 s, times a random 0.5–1.
fn backoff(attempt: u32) -> Duration {
    let full = FIRST_BACKOFF
        .saturating_mul(1 << (attempt - 1).min(10))
        .min(MAX_BACKOFF);
    full.mul_f64(rand::random_range(0.5..=1.0))
}

fn retryable(a: &Answer) -> bool {
    if a.status.is_server_error() || a.status == StatusCode::TOO_MANY_REQUESTS {
        return true;
    }
    !a.status.is_success() && THROTTLING.contains(&error_code(&a.body).0.as_str())
}

fn parse(what: &str, body: &[u8]) -> Result<Node> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Error::Remote(format!("{what}: the answer is not UTF-8")))?;
    xml::parse(text).map_err(|e| Error::Remote(format!("{what}: {e}")))
}

/// The `Code` and `Message` of an error answer (EC2: `Response/Errors/Error`; S3: `Error`).
fn error_code(body: &[u8]) -> (String, String) {
    let Ok(text) = std::str::from_utf8(body) else {
        return Default::default();
    };
    let Ok(root) = xml::parse(text) else {
        return Default::default();
    };
    let Some(e) = root.find("Error") else {
        return Default::default();
    };
    let one_line = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    (
        e.child_text("Code").unwrap_or("").trim().to_string(),
        one_line(e.child_text("Message").unwrap_or("")),
    )
}

/// An error answer as our error: the service's code decides the category, else the status.
/// Nothing of the request (its signature, the credentials) is in it.
pub(crate) fn api_error(what: &str, a: &Answer) -> Error {
    let (code, msg) = error_code(&a.body);
    if code.is_empty() {
        // HEAD answers have no body, so no code: the status must do.
        let text = format!("{what}: HTTP {}", a.status);
        return match a.status.as_u16() {
            401 | 403 => Error::Auth(format!("{text} (access denied)")),
            404 => Error::NotFound(format!("{text} (not found)")),
            400 => Error::InvalidArgument(text),
            _ => Error::Remote(text),
        };
    }
    let text = format!("{what}: {code}: {msg}");
    if AUTH_CODES.contains(&code.as_str()) {
        Error::Auth(text)
    } else if code.ends_with(".NotFound") || code.starts_with("NoSuch") || code == "NotFound" {
        Error::NotFound(text)
    } else if code.starts_with("InvalidParameter") || code.ends_with(".Malformed") {
        Error::InvalidArgument(text)
    } else {
        Error::Remote(text)
    }
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
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
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
            Error::Remote(_)
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
        assert!(matches!(
            api_error("x", &answer(500, "<html>")),
            Error::Remote(_)
        ));
    }

    #[test]
    fn throttling_and_server_errors_are_retried_client_errors_are_not() {
        assert!(retryable(&answer(503, "")));
        assert!(retryable(&answer(429, "")));
        assert!(retryable(&answer(
            400,
            "<Response><Errors><Error><Code>RequestLimitExceeded</Code></Error></Errors></Response>"
        )));
        assert!(!retryable(&answer(
            400,
            "<Response><Errors><Error><Code>InvalidParameterValue</Code></Error></Errors></Response>"
        )));
        assert!(!retryable(&answer(403, "")));
        assert!(!retryable(&answer(200, "")));
        for n in 1..=ATTEMPTS {
            let b = backoff(n);
            assert!(b >= FIRST_BACKOFF / 2 && b <= MAX_BACKOFF, "{n}: {b:?}");
        }
    }

    #[test]
    fn urls_are_encoded_for_sigv4() {
        let u = S3Urls {
            base: Url::parse("http://127.0.0.1:9000").unwrap(),
            path_style: true,
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
        assert_eq!(
            default_endpoint("ec2", "cn-north-1").as_str(),
            "https://ec2.cn-north-1.amazonaws.com.cn/"
        );
        assert_eq!(
            list_param("InstanceId", &["i-1", "i-2"]),
            vec![
                ("InstanceId.1".to_string(), "i-1"),
                ("InstanceId.2".to_string(), "i-2")
            ]
        );
    }
}
