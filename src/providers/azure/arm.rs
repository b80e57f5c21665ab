//! Azure Resource Manager: authenticated JSON calls with our HTTP client and a token from
//! `azure_identity`, and long-running operations (`Azure-AsyncOperation` / `Location`) waited
//! for through the shared poller.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use reqwest::header::{HeaderMap, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;

use crate::error::{Error, Result};
use crate::providers::FlowCtx;
use crate::providers::poll::{Backoff, Poll, poll_until};

/// `Microsoft.Compute` API version for disks, snapshots and VMs (has `fileFormat` on grants).
const COMPUTE_API: &str = "2024-03-02";
/// Largest ARM answer read (a VM or disk is a few KiB).
const MAX_BODY: usize = 4 << 20;

pub(crate) struct Arm {
    http: reqwest::Client,
    base: Url,
    subscription: String,
    cred: Arc<dyn TokenCredential>,
    scope: String,
    timeout: Duration,
}

/// One ARM answer.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Arm {
    pub fn new(
        http: reqwest::Client,
        base: Url,
        subscription: String,
        cred: Arc<dyn TokenCredential>,
        timeout: Duration,
    ) -> Arm {
        let scope = format!("{}/.default", base.as_str().trim_end_matches('/'));
        Arm {
            http,
            base,
            subscription,
            cred,
            scope,
            timeout,
        }
    }

    pub fn subscription(&self) -> &str {
        &self.subscription
    }

    /// `…/resourceGroups/{rg}/providers/Microsoft.Compute/{kind}/{name}[/{action}]`; every
    /// segment is encoded (and the names were checked before).
    pub fn url(&self, rg: &str, kind: &str, name: &str, action: Option<&str>) -> Url {
        let mut u = self.base.clone();
        {
            let mut p = u.path_segments_mut().expect("https URL");
            p.pop_if_empty().extend([
                "subscriptions",
                &self.subscription,
                "resourceGroups",
                rg,
                "providers",
                "Microsoft.Compute",
                kind,
                name,
            ]);
            if let Some(a) = action {
                p.push(a);
            }
        }
        u.query_pairs_mut().append_pair("api-version", COMPUTE_API);
        u
    }

    /// Every `kind` (disks, snapshots, virtualMachines) of a resource group, or of the whole
    /// subscription, following `nextLink` (same origin only, like every call).
    pub async fn list(&self, rg: Option<&str>, kind: &str) -> Result<Vec<Value>> {
        let mut u = self.base.clone();
        {
            let mut p = u.path_segments_mut().expect("https URL");
            p.pop_if_empty()
                .extend(["subscriptions", &self.subscription]);
            if let Some(rg) = rg {
                p.extend(["resourceGroups", rg]);
            }
            p.extend(["providers", "Microsoft.Compute", kind]);
        }
        u.query_pairs_mut().append_pair("api-version", COMPUTE_API);
        let mut out = Vec::new();
        let mut next = Some(u);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > 1000 {
                return Err(Error::Remote(format!(
                    "ARM listed {kind} in more than 1000 pages"
                )));
            }
            let page = self.get(url).await?;
            out.extend(page["value"].as_array().cloned().unwrap_or_default());
            next =
                match page["nextLink"].as_str() {
                    Some(l) if !l.is_empty() => Some(Url::parse(l).map_err(|e| {
                        Error::Remote(format!("ARM gave an unusable nextLink: {e}"))
                    })?),
                    _ => None,
                };
        }
        Ok(out)
    }

    /// The URL of an ARM id the cloud gave us (a VM's disk), checked to be one.
    pub fn id_url(&self, id: &str, action: Option<&str>) -> Result<(String, String, Url)> {
        let parts: Vec<&str> = id.trim_matches('/').split('/').collect();
        let ok = parts.len() == 8
            && parts[0].eq_ignore_ascii_case("subscriptions")
            && parts[2].eq_ignore_ascii_case("resourceGroups")
            && parts[5].eq_ignore_ascii_case("Microsoft.Compute")
            && super::config::is_resource_name(parts[3])
            && super::config::is_resource_name(parts[7]);
        if !ok {
            return Err(Error::Remote(format!(
                "ARM gave an unusable resource id {id:?}"
            )));
        }
        let kind = if parts[6].eq_ignore_ascii_case("snapshots") {
            "snapshots"
        } else {
            "disks"
        };
        Ok((
            parts[3].to_string(),
            parts[7].to_string(),
            self.url(parts[3], kind, parts[7], action),
        ))
    }

    async fn token(&self) -> Result<String> {
        let t = tokio::time::timeout(self.timeout, self.cred.get_token(&[&self.scope], None))
            .await
            .map_err(|_| {
                Error::Timeout(format!("no token from Entra ID within {:?}", self.timeout))
            })?
            .map_err(|e| {
                Error::Auth(format!(
                    "getting a token for Azure Resource Manager: {}",
                    one_line(&e.to_string())
                ))
            })?;
        Ok(t.token.secret().to_string())
    }

    /// One call; 429 and 5xx are retried (honouring Retry-After) a few times. The token goes
    /// only to the ARM endpoint's origin, whatever URL an answer pointed to.
    pub async fn call(&self, method: Method, url: Url, body: Option<&Value>) -> Result<Answer> {
        if url.origin() != self.base.origin() {
            return Err(Error::Remote(format!(
                "ARM pointed to {}, which is not the ARM endpoint; not following",
                crate::transfer::redact_url(&url)
            )));
        }
        let what = format!("{method} {}", url.path());
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let token = self.token().await?;
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token)
                .timeout(self.timeout);
            if let Some(b) = body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.to_string());
            } else if method == Method::POST {
                req = req.header(reqwest::header::CONTENT_LENGTH, "0");
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) if attempt < 4 => {
                    tracing::debug!(%what, error = %e, "ARM call failed, retrying");
                    tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                    continue;
                }
                Err(e) => return Err(Error::http(&format!("ARM {what}"), e)),
            };
            let status = resp.status();
            let headers = resp.headers().clone();
            let text = crate::providers::net::read_capped(resp, MAX_BODY, &what).await?;
            let body: Value = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&text).unwrap_or(Value::Null)
            };
            if status.is_success() {
                return Ok(Answer {
                    status,
                    headers,
                    body,
                });
            }
            if (status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()) && attempt < 4
            {
                let wait = retry_after(&headers).unwrap_or(Duration::from_millis(500 << attempt));
                tokio::time::sleep(wait.min(Duration::from_secs(60))).await;
                continue;
            }
            return Err(arm_error(status, &what, &body));
        }
    }

    pub async fn get(&self, url: Url) -> Result<Value> {
        Ok(self.call(Method::GET, url, None).await?.body)
    }

    /// Waits for the operation an answer started: `Azure-AsyncOperation` (its status JSON;
    /// the result is its `properties.output`, or the `Location`'s answer), else `Location`
    /// (202 while running). An answer without either is the result itself.
    pub async fn wait(
        &self,
        ctx: &FlowCtx,
        what: &str,
        first: Answer,
        timeout: Duration,
        first_delay: Duration,
    ) -> Result<Value> {
        let header = |k: &str| {
            first
                .headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| Url::parse(v).ok())
        };
        let async_op = header("azure-asyncoperation");
        let location = header(LOCATION.as_str());
        let backoff = Backoff::growing(first_delay, Duration::from_secs(10).max(first_delay));
        if let Some(op) = async_op {
            let output = poll_until(ctx, what, timeout, backoff, || {
                let op = op.clone();
                async move {
                    let a = self.call(Method::GET, op, None).await?;
                    let status = a.body["status"].as_str().unwrap_or("").to_string();
                    match status.as_str() {
                        "Succeeded" => Ok(Poll::Done(a.body["properties"]["output"].clone())),
                        "Failed" | "Canceled" | "Cancelled" => Err(operation_error(what, &a.body)),
                        _ => Ok(Poll::Pending {
                            status: format!(
                                "{what}: {}",
                                if status.is_empty() {
                                    "InProgress"
                                } else {
                                    &status
                                }
                            ),
                            retry_after: retry_after(&a.headers),
                        }),
                    }
                }
            })
            .await?;
            if !output.is_null() {
                return Ok(output);
            }
            return match location {
                Some(l) => Ok(self.call(Method::GET, l, None).await?.body),
                None => Ok(Value::Null),
            };
        }
        if let Some(loc) = location
            && first.status == StatusCode::ACCEPTED
        {
            return poll_until(ctx, what, timeout, backoff, || {
                let loc = loc.clone();
                async move {
                    let a = self.call(Method::GET, loc, None).await?;
                    if a.status == StatusCode::ACCEPTED {
                        Ok(Poll::Pending {
                            status: format!("{what}: InProgress"),
                            retry_after: retry_after(&a.headers),
                        })
                    } else {
                        Ok(Poll::Done(a.body))
                    }
                }
            })
            .await;
        }
        Ok(first.body)
    }
}

fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get("retry-after")?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn one_line(s: &str) -> String {
    let line = s
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    line.chars().take(300).collect()
}

/// ARM's `{"error": {"code", "message"}}` as our error, by status.
fn arm_error(status: StatusCode, what: &str, body: &Value) -> Error {
    let e = &body["error"];
    let detail = match (e["code"].as_str(), e["message"].as_str()) {
        (Some(c), Some(m)) => format!("{c}: {}", one_line(m)),
        (Some(c), None) => c.to_string(),
        _ => String::new(),
    };
    let text = format!("ARM {what}: HTTP {status} {detail}")
        .trim()
        .to_string();
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::Auth(text),
        StatusCode::NOT_FOUND => Error::NotFound(text),
        StatusCode::CONFLICT => Error::InvalidState(text),
        StatusCode::BAD_REQUEST => Error::InvalidArgument(text),
        s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => Error::Network(text),
        _ => Error::Remote(text),
    }
}

fn operation_error(what: &str, body: &Value) -> Error {
    let e = &body["error"];
    Error::Remote(format!(
        "{what} failed in Azure: {} {}",
        e["code"]
            .as_str()
            .unwrap_or(body["status"].as_str().unwrap_or("")),
        one_line(e["message"].as_str().unwrap_or(""))
    ))
}
