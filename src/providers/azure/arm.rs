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

use crate::BoxFuture;
use crate::error::{Error, ErrorKind, Result};
use crate::providers::kit::paging::Pages;
use crate::providers::kit::text::one_line;
use crate::providers::kit::{ApiClient, Call, CodeClass, Dialect};
use crate::providers::poll::{Backoff, Poll, poll_until};
use crate::seam::FlowCtx;
use crate::transfer::retry::retry_after;

/// The api-version of each `Microsoft.Compute` resource type: ARM refuses a version its
/// resource provider does not define for that type (`NoRegisteredProviderFound`), and disks and
/// snapshots (DiskRP) are versioned apart from virtual machines (ComputeRP). These are the
/// versions Microsoft's own SDK, `azure-mgmt-compute` 39.0.0, sends for these operations (its
/// `build_disks_*`, `build_snapshots_*` and `build_virtual_machines_*` request builders); the
/// ARM stand-in reads them from that package and refuses any other.
const DISK_RP_API: &str = "2026-03-02";
const COMPUTE_RP_API: &str = "2026-04-01";

/// The api-version for a resource type (`disks`, `snapshots`, `virtualMachines`).
pub(crate) fn api_version(kind: &str) -> &'static str {
    if kind == "virtualMachines" {
        COMPUTE_RP_API
    } else {
        DISK_RP_API
    }
}
/// Largest ARM answer read (a VM or disk is a few KiB).
const MAX_BODY: usize = 4 << 20;

pub(crate) struct Arm {
    client: ApiClient,
    base: Url,
    subscription: String,
    cred: Arc<dyn TokenCredential>,
    scope: String,
    timeout: Duration,
}

/// One ARM answer, its body parsed as JSON.
pub(crate) struct Reply {
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
            client: ApiClient::new(http, timeout, MAX_BODY),
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
        u.query_pairs_mut()
            .append_pair("api-version", api_version(kind));
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
        u.query_pairs_mut()
            .append_pair("api-version", api_version(kind));
        let mut out = Vec::new();
        let mut next = Some(u);
        let what = format!(
            "ARM listing of {kind} in {}",
            rg.map(|r| format!("resource group {r}"))
                .unwrap_or_else(|| "the subscription".into())
        );
        let mut pages = Pages::new(what.clone());
        while let Some(url) = next.take() {
            let page = tokio::time::timeout(pages.remaining(), self.get(url))
                .await
                .map_err(|_| Error::Timeout(format!("{what}: still paging at its deadline")))??;
            let items = page["value"].as_array().cloned().unwrap_or_default();
            // The answer's size as read (`get` parsed it from a body capped by the client).
            pages.page(items.len(), page.to_string().len() as u64)?;
            out.extend(items);
            next = match page["nextLink"].as_str() {
                Some(l) if !l.is_empty() => {
                    pages.next(l)?;
                    Some(Url::parse(l).map_err(|e| {
                        Error::Remote(format!("{what}: ARM gave an unusable nextLink: {e}"))
                    })?)
                }
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

    /// One call, retried by the kit's rule. The token goes only to the ARM endpoint's
    /// origin, whatever URL an answer pointed to.
    pub async fn call(&self, method: Method, url: Url, body: Option<&Value>) -> Result<Reply> {
        if url.origin() != self.base.origin() {
            return Err(Error::Remote(format!(
                "ARM pointed to {}, which is not the ARM endpoint; not following",
                crate::transfer::redact_url(&url)
            )));
        }
        let what = format!("ARM {method} {}", url.path());
        // PUT and DELETE are idempotent in ARM; a grant asked twice is the same grant, and
        // endGetAccess twice revokes once.
        let call = Call::read(&what);
        let body_text = body.map(Value::to_string);
        let a = self
            .client
            .call(&call, self, &|| {
                let mut req = self.client.http.request(method.clone(), url.clone());
                if let Some(b) = &body_text {
                    req = req
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(b.clone());
                } else if method == Method::POST {
                    req = req.header(reqwest::header::CONTENT_LENGTH, "0");
                }
                req
            })
            .await?;
        let body = if a.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&a.body).unwrap_or(Value::Null)
        };
        Ok(Reply {
            status: a.status,
            headers: a.headers,
            body,
        })
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
        first: Reply,
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

/// ARM signs with an Entra ID token and writes `{"error": {"code", "message"}}`.
impl Dialect for Arm {
    fn sign<'a>(&'a self, req: &'a mut reqwest::Request) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let mut v =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", self.token().await?))
                    .map_err(|_| Error::Auth("the Entra ID token is not a valid header".into()))?;
            v.set_sensitive(true);
            req.headers_mut().insert(reqwest::header::AUTHORIZATION, v);
            Ok(())
        })
    }

    fn error_detail(&self, a: &crate::providers::kit::Answer) -> Option<(String, String)> {
        let v: Value = serde_json::from_slice(&a.body).ok()?;
        let e = &v["error"];
        let code = e["code"].as_str().unwrap_or("").to_string();
        let msg = e["message"].as_str().unwrap_or("").to_string();
        (!code.is_empty() || !msg.is_empty()).then_some((code, msg))
    }

    fn classify(&self, code: &str) -> Option<CodeClass> {
        match code {
            // ARM's own throttling and "try later" codes, whatever the status.
            "TooManyRequests" | "ServerBusy" => Some(CodeClass::Throttled),
            "RetryableError" | "OperationPreempted" => Some(CodeClass::Retry),
            "ResourceNotFound" | "ResourceGroupNotFound" | "NotFound" => {
                Some(CodeClass::Kind(ErrorKind::NotFound))
            }
            "AuthorizationFailed" | "InvalidAuthenticationToken" | "ExpiredAuthenticationToken" => {
                Some(CodeClass::Kind(ErrorKind::Auth))
            }
            _ => None,
        }
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
