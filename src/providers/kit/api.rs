//! One client for cloud API calls (EC2 and S3, ARM, Cloud Storage's JSON API, vSphere SOAP):
//! one retry rule, one deadline per attempt, one mapping from an answer to an [`Error`].
//!
//! A cloud plugs in a [`Dialect`]: how to sign an attempt (SigV4, a bearer token, a session
//! cookie) and how to read its error bodies (EC2/S3 XML codes, ARM/GCS JSON, SOAP faults).
//! Everything else is the same for all of them, so a 503 from any cloud is retried the same
//! way and, if it persists, gives the same `hs_status`.
//!
//! The rule (the downloader's [`Attempts`]): 8 attempts, backoff from 0.5 s doubling, capped at
//! 5 s, jittered (~25 s in all), or the server's `Retry-After` (seconds or an HTTP date); on
//! connection errors, timeouts, bodies cut off, HTTP 408/429/5xx and the cloud's throttling
//! codes. A call that is not idempotent is retried only where the cloud cannot have acted on
//! it: the connection was never made, or the cloud said "too many requests" / "unavailable".

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use tokio_util::sync::CancellationToken;

use super::errors::describe;
pub(crate) use super::errors::{answer_error, error_from};
use super::net::read_capped;
use crate::BoxFuture;
use crate::error::{Error, ErrorKind, Result};
use crate::transfer::retry::{Attempts, retry_after};

/// Attempts of one API call.
pub(crate) const ATTEMPTS: u32 = 8;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// What a cloud's error code says, where it says more than the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeClass {
    /// "Slow down" or "unavailable": the cloud did not take the call, so even a call that
    /// creates something is sent again.
    Throttled,
    /// A passing fault (an internal error, a timeout on the cloud's side): the cloud may have
    /// acted, so only an idempotent call is sent again.
    Retry,
    /// A definite answer of this kind.
    Kind(ErrorKind),
}

/// How one cloud signs its calls and writes its errors.
pub(crate) trait Dialect: Send + Sync {
    /// Signs one attempt; each attempt is signed anew (a signature carries the time, a token
    /// expires).
    fn sign<'a>(&'a self, _req: &'a mut reqwest::Request) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// The cloud's error code and message in an answer that is not a success (or, for SOAP, a
    /// fault in any answer), from its body or headers; `None` when it says nothing readable.
    fn error_detail(&self, answer: &Answer) -> Option<(String, String)>;

    /// What an error code means; `None` leaves it to the status.
    fn classify(&self, _code: &str) -> Option<CodeClass> {
        None
    }

    /// Whether an answer is an error although its status is a success (a SOAP fault is one
    /// whatever the status).
    fn is_error(&self, status: StatusCode, _body: &[u8]) -> bool {
        !status.is_success()
    }
}

/// An answer: status, headers and the (capped) body (its Debug shows no body: it may hold
/// anything the cloud sent).
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One call's description, besides the request.
pub(crate) struct Call<'a> {
    /// What the call does, for messages ("EC2 DescribeInstances i-1"); no secrets, no query.
    pub what: &'a str,
    /// Whether sending it twice does no harm (a read, a delete, a call with a client token).
    pub idempotent: bool,
    /// Stops the retries (not an attempt in flight: dropping the future does that).
    pub cancel: Option<&'a CancellationToken>,
}

impl<'a> Call<'a> {
    pub fn read(what: &'a str) -> Self {
        Call {
            what,
            idempotent: true,
            cancel: None,
        }
    }
}

/// The HTTP client of a cloud's API, with the per-attempt deadline and the body cap.
#[derive(Clone)]
pub(crate) struct ApiClient {
    pub http: reqwest::Client,
    /// Deadline of one attempt, the answer's body included.
    pub timeout: Duration,
    /// Largest answer read.
    pub max_body: usize,
}

impl ApiClient {
    pub fn new(http: reqwest::Client, timeout: Duration, max_body: usize) -> Self {
        ApiClient {
            http,
            timeout,
            max_body,
        }
    }

    /// Sends a call, retried by the rule; returns the last answer whatever its status (the
    /// caller may know what a 404 means for it). `build` makes the request afresh per attempt.
    pub async fn send(
        &self,
        call: &Call<'_>,
        dialect: &dyn Dialect,
        build: &(dyn Fn() -> reqwest::RequestBuilder + Send + Sync),
    ) -> Result<Answer> {
        let what = call.what;
        let never = CancellationToken::new();
        let cancel = call.cancel.unwrap_or(&never);
        let mut attempts = Attempts::new(ATTEMPTS, FIRST_BACKOFF).with_cap(MAX_BACKOFF);
        loop {
            let (err, server_wait) = match self.attempt(call, dialect, build).await {
                Ok(a) => match self.retry_reason(call, dialect, &a) {
                    None => return Ok(a),
                    Some(reason) => {
                        if attempts.made() >= ATTEMPTS {
                            return Ok(a);
                        }
                        // A server's Retry-After is honoured, up to a minute: an API call
                        // is not where an export waits out a long outage.
                        let wait = retry_after(&a.headers).map(|d| d.min(MAX_RETRY_AFTER));
                        (Error::Network(reason), wait)
                    }
                },
                Err(Failed::Retry(e)) => (e, None),
                Err(Failed::Final(e)) => return Err(e),
            };
            tracing::debug!(%what, attempt = attempts.made(), error = %err, "API call failed, retrying");
            attempts.failed(err, false, server_wait, cancel).await?;
        }
    }

    /// [`send`](Self::send), and an error answer becomes our error.
    pub async fn call(
        &self,
        call: &Call<'_>,
        dialect: &dyn Dialect,
        build: &(dyn Fn() -> reqwest::RequestBuilder + Send + Sync),
    ) -> Result<Answer> {
        let a = self.send(call, dialect, build).await?;
        if dialect.is_error(a.status, &a.body) {
            return Err(answer_error(call.what, dialect, &a));
        }
        Ok(a)
    }

    async fn attempt(
        &self,
        call: &Call<'_>,
        dialect: &dyn Dialect,
        build: &(dyn Fn() -> reqwest::RequestBuilder + Send + Sync),
    ) -> std::result::Result<Answer, Failed> {
        let what = call.what;
        let mut req = build()
            .timeout(self.timeout)
            .build()
            .map_err(|e| Failed::Final(Error::http(what, e)))?;
        // Signing can fail for a passing reason (the token endpoint timed out): retried too.
        dialect.sign(&mut req).await.map_err(Failed::by_kind)?;
        let resp = match self.http.execute(req).await {
            Ok(r) => r,
            // A connection never made cannot have reached the cloud.
            Err(e) if e.is_connect() || call.idempotent => {
                return Err(Failed::by_kind(Error::http(what, e)));
            }
            Err(e) => return Err(Failed::Final(Error::http(what, e))),
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = match read_capped(resp, self.max_body, what).await {
            Ok(b) => b,
            // Cut off mid-answer: the cloud acted on it, so only an idempotent call goes again.
            Err(e) if call.idempotent => return Err(Failed::by_kind(e)),
            Err(e) => return Err(Failed::Final(e)),
        };
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Why an answer should be tried again, if it should.
    fn retry_reason(&self, call: &Call<'_>, dialect: &dyn Dialect, a: &Answer) -> Option<String> {
        if !dialect.is_error(a.status, &a.body) {
            return None;
        }
        let detail = dialect.error_detail(a);
        let class = detail.as_ref().and_then(|(c, _)| dialect.classify(c));
        let again = match class {
            Some(CodeClass::Throttled) => true,
            Some(CodeClass::Retry) => call.idempotent,
            Some(CodeClass::Kind(_)) => false,
            None if call.idempotent => is_retryable_status(a.status),
            // Not idempotent: only answers that say the call was not taken.
            None => matches!(a.status.as_u16(), 429 | 503),
        };
        again.then(|| describe(call.what, a.status, detail.as_ref()))
    }
}

/// An attempt's failure: worth another attempt, or not.
enum Failed {
    Retry(Error),
    Final(Error),
}

impl Failed {
    fn by_kind(e: Error) -> Failed {
        if crate::transfer::retry::is_retryable(&e) {
            Failed::Retry(e)
        } else {
            Failed::Final(e)
        }
    }
}

/// Statuses that say "not now" rather than "no".
fn is_retryable_status(s: StatusCode) -> bool {
    crate::transfer::retry::is_retryable_status(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::kit::errors::status_kind;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// JSON errors `{"code", "message"}`; `Busy` is a throttling code, `Gone` a definite one.
    struct Json;
    impl Dialect for Json {
        fn error_detail(&self, a: &Answer) -> Option<(String, String)> {
            let v: serde_json::Value = serde_json::from_slice(&a.body).ok()?;
            Some((
                v["code"].as_str()?.to_string(),
                v["message"].as_str().unwrap_or("").to_string(),
            ))
        }
        fn classify(&self, code: &str) -> Option<CodeClass> {
            match code {
                "Busy" => Some(CodeClass::Throttled),
                "Oops" => Some(CodeClass::Retry),
                "Gone" => Some(CodeClass::Kind(ErrorKind::NotFound)),
                _ => None,
            }
        }
    }

    /// A server that answers the n-th request with `answers[min(n, last)]` and counts them.
    async fn server(answers: Vec<&'static str>) -> (String, Arc<AtomicUsize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                let n = c.fetch_add(1, Ordering::SeqCst);
                let a = answers[n.min(answers.len() - 1)];
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(a.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        });
        (format!("http://{addr}/"), count)
    }

    fn client() -> ApiClient {
        ApiClient::new(reqwest::Client::new(), Duration::from_secs(5), 1 << 20)
    }

    const UNAVAILABLE: &str = "HTTP/1.1 503 Service Unavailable\r\nretry-after: 0\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";
    const BUSY: &str = "HTTP/1.1 400 Bad Request\r\ncontent-length: 29\r\nconnection: close\r\n\r\n{\"code\":\"Busy\",\"message\":\"x\"}";
    const GONE: &str = "HTTP/1.1 500 Oops\r\ncontent-length: 29\r\nconnection: close\r\n\r\n{\"code\":\"Gone\",\"message\":\"x\"}";
    const SERVER_ERROR: &str =
        "HTTP/1.1 500 Oops\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

    #[tokio::test]
    async fn retries_unavailable_and_throttling_honouring_retry_after() {
        let (url, n) = server(vec![UNAVAILABLE, BUSY, OK]).await;
        let a = client()
            .call(&Call::read("t"), &Json, &|| {
                reqwest::Client::new().get(&url)
            })
            .await
            .unwrap();
        assert_eq!(a.body, b"ok");
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_definite_code_is_not_retried_and_maps_by_code() {
        let (url, n) = server(vec![GONE, OK]).await;
        let e = client()
            .call(&Call::read("t"), &Json, &|| {
                reqwest::Client::new().get(&url)
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert!(e.to_string().contains("Gone: x"), "{e}");
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_passing_fault_code_retries_reads_only_throttling_retries_writes_too() {
        const OOPS: &str = "HTTP/1.1 500 Oops\r\ncontent-length: 29\r\nconnection: close\r\n\r\n{\"code\":\"Oops\",\"message\":\"x\"}";
        let write = |what| Call {
            what,
            idempotent: false,
            cancel: None,
        };
        // The cloud may have acted on a call that failed with a passing fault: a write is not
        // sent again (it could make a second export task).
        let (url, n) = server(vec![OOPS, OK]).await;
        client()
            .call(&write("t"), &Json, &|| reqwest::Client::new().post(&url))
            .await
            .unwrap_err();
        assert_eq!(n.load(Ordering::SeqCst), 1);
        let (url, n) = server(vec![OOPS, OK]).await;
        client()
            .call(&Call::read("t"), &Json, &|| {
                reqwest::Client::new().get(&url)
            })
            .await
            .unwrap();
        assert_eq!(n.load(Ordering::SeqCst), 2);
        // Throttled: not taken, so a write goes again.
        let (url, n) = server(vec![BUSY, OK]).await;
        client()
            .call(&write("t"), &Json, &|| reqwest::Client::new().post(&url))
            .await
            .unwrap();
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_write_is_not_retried_after_a_plain_500() {
        let (url, n) = server(vec![SERVER_ERROR, OK]).await;
        let e = client()
            .call(
                &Call {
                    what: "t",
                    idempotent: false,
                    cancel: None,
                },
                &Json,
                &|| reqwest::Client::new().post(&url),
            )
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Network, "{e}");
        assert_eq!(n.load(Ordering::SeqCst), 1);
        // ... but a read is.
        let (url, n) = server(vec![SERVER_ERROR, OK]).await;
        client()
            .call(&Call::read("t"), &Json, &|| {
                reqwest::Client::new().get(&url)
            })
            .await
            .unwrap();
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_persistent_503_ends_after_the_attempts_as_network() {
        let (url, n) = server(vec![UNAVAILABLE]).await;
        let e = client()
            .call(&Call::read("t"), &Json, &|| {
                reqwest::Client::new().get(&url)
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Network, "{e}");
        assert_eq!(n.load(Ordering::SeqCst), ATTEMPTS as usize);
    }

    #[tokio::test]
    async fn cancel_stops_the_retries() {
        let (url, _) = server(vec![
            "HTTP/1.1 503 Service Unavailable\r\nretry-after: 30\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        ])
        .await;
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            c2.cancel();
        });
        let call = Call {
            what: "t",
            idempotent: true,
            cancel: Some(&cancel),
        };
        let started = std::time::Instant::now();
        let e = client()
            .call(&call, &Json, &|| reqwest::Client::new().get(&url))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Cancelled), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn statuses_map_the_same_for_every_cloud() {
        let k = |s: u16| status_kind(StatusCode::from_u16(s).unwrap());
        assert_eq!(k(401), ErrorKind::Auth);
        assert_eq!(k(403), ErrorKind::Auth);
        assert_eq!(k(404), ErrorKind::NotFound);
        assert_eq!(k(409), ErrorKind::InvalidState);
        assert_eq!(k(412), ErrorKind::InvalidState);
        assert_eq!(k(400), ErrorKind::InvalidArgument);
        assert_eq!(k(503), ErrorKind::Network);
        assert_eq!(k(429), ErrorKind::Network);
        assert_eq!(k(418), ErrorKind::Remote);
    }
}
