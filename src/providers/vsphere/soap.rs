//! A minimal vim25 SOAP client over reqwest: the dozen calls an export needs, with faults
//! mapped to our errors. Passwords and session cookies never reach a message or a log.

use std::sync::Mutex;

use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use url::Url;

use super::xml::{Node, esc, parse};
use crate::BoxFuture;
use crate::error::{Error, ErrorKind, Result};
use crate::providers::kit::api::answer_error;
use crate::providers::kit::paging::Pages;
use crate::providers::kit::{Answer, ApiClient, Call, CodeClass, Dialect};
use crate::sync::lock;

/// The largest SOAP answer read (a descriptor of a VM with many disks is well under 1 MiB).
const MAX_SOAP_BODY: usize = 32 << 20;

/// A managed object reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moref {
    pub kind: String,
    pub value: String,
}

impl Moref {
    pub fn new(kind: &str, value: &str) -> Moref {
        Moref {
            kind: kind.to_string(),
            value: value.to_string(),
        }
    }

    fn from_node(n: &Node) -> Option<Moref> {
        let kind = n.attr("type")?;
        (!n.text.trim().is_empty()).then(|| Moref::new(kind, n.text.trim()))
    }

    /// `<tag type="Kind">value</tag>`
    pub fn xml(&self, tag: &str) -> String {
        format!(
            "<{tag} type=\"{}\">{}</{tag}>",
            esc(&self.kind),
            esc(&self.value)
        )
    }
}

#[derive(Debug, Clone)]
pub struct ServiceContent {
    pub root_folder: Moref,
    pub property_collector: Moref,
    pub view_manager: Moref,
    pub search_index: Moref,
    pub session_manager: Moref,
    pub ovf_manager: Moref,
}

/// A vim25 session. Shared (`Arc`) by the client and its running exports; it is logged out
/// when the last of them lets go, so freeing a client never cuts a running export's lease or
/// NFC downloads short.
pub struct Vim {
    /// The kit's client: the per-attempt deadline and the one retry rule.
    client: ApiClient,
    pub url: Url,
    cookie: Mutex<Option<String>>,
    content: Mutex<Option<ServiceContent>>,
    /// The vim25 version named in `SOAPAction` (version.rs), read at login.
    version: Mutex<String>,
    logout_on_drop: bool,
}

impl Drop for Vim {
    fn drop(&mut self) {
        let cookie = lock(&self.cookie).take();
        let content = lock(&self.content).take();
        if !self.logout_on_drop || cookie.is_none() {
            return;
        }
        // Best effort and bounded, through a copy that does not log out again.
        let copy = Vim {
            client: self.client.clone(),
            url: self.url.clone(),
            cookie: Mutex::new(cookie),
            content: Mutex::new(content),
            version: Mutex::new(lock(&self.version).clone()),
            logout_on_drop: false,
        };
        crate::runtime::handle().spawn(async move {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), copy.logout()).await;
        });
    }
}

impl Vim {
    pub fn new(http: reqwest::Client, url: Url, timeout: std::time::Duration) -> Vim {
        Vim {
            client: ApiClient::new(http, timeout, MAX_SOAP_BODY),
            url,
            cookie: Mutex::new(None),
            content: Mutex::new(None),
            version: Mutex::new(super::version::FALLBACK.into()),
            logout_on_drop: true,
        }
    }

    /// `vmware_soap_session=…`, for NFC downloads.
    pub fn cookie(&self) -> Option<String> {
        lock(&self.cookie).clone()
    }

    pub fn content(&self) -> Result<ServiceContent> {
        lock(&self.content)
            .clone()
            .ok_or_else(|| Error::InvalidState("not connected".into()))
    }

    /// One SOAP call; returns the `…Response` element. Reads are retried by the kit's rule;
    /// calls that start something (a task, a lease) only where vCenter cannot have acted.
    pub async fn call(&self, method: &str, inner: &str) -> Result<Node> {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><soapenv:Body><{method} xmlns=\"urn:vim25\">{inner}</{method}></soapenv:Body></soapenv:Envelope>"
        );
        let what = format!("vSphere {method}");
        let action = format!("\"urn:vim25/{}\"", lock(&self.version));
        let call = Call {
            what: &what,
            idempotent: idempotent(method),
            cancel: None,
        };
        let a = self
            .client
            .send(&call, self, &|| {
                self.client
                    .http
                    .post(self.url.clone())
                    .header(CONTENT_TYPE, "text/xml; charset=utf-8")
                    .header("SOAPAction", action.as_str())
                    .body(body.clone())
            })
            .await?;
        for v in a.headers.get_all(SET_COOKIE) {
            if let Ok(s) = v.to_str()
                && let Some(first) = s.split(';').next()
                && first.trim_start().starts_with("vmware_soap_session=")
            {
                *lock(&self.cookie) = Some(first.trim().to_string());
            }
        }
        let status = a.status;
        if status.is_redirection() {
            return Err(Error::Remote(format!(
                "{what}: HTTP {status}; SOAP calls follow no redirect (it would carry the session elsewhere)"
            )));
        }
        if self.is_error(status, &a.body) {
            return Err(answer_error(&what, self, &a));
        }
        let text = String::from_utf8_lossy(&a.body);
        let doc = parse(&text).map_err(|e| {
            Error::Remote(format!(
                "vSphere {method}: HTTP {status}, and the answer is not SOAP ({e})"
            ))
        })?;
        let want = format!("{method}Response");
        doc.find(&want)
            .cloned()
            .ok_or_else(|| Error::Remote(format!("vSphere {method}: no {want} in the answer")))
    }

    pub async fn connect(&self, username: &str, password: &str) -> Result<()> {
        *lock(&self.version) = super::version::choose(&self.service_versions().await);
        let r = self
            .call(
                "RetrieveServiceContent",
                "<_this type=\"ServiceInstance\">ServiceInstance</_this>",
            )
            .await?;
        let rv = r
            .child("returnval")
            .ok_or_else(|| Error::Remote("no service content".into()))?;
        let get = |name: &str| {
            rv.child(name).and_then(Moref::from_node).ok_or_else(|| {
                Error::Unsupported(format!(
                    "the server has no {name} (is this vCenter or ESXi?)"
                ))
            })
        };
        let sc = ServiceContent {
            root_folder: get("rootFolder")?,
            property_collector: get("propertyCollector")?,
            view_manager: get("viewManager")?,
            search_index: get("searchIndex")?,
            session_manager: get("sessionManager")?,
            ovf_manager: get("ovfManager")?,
        };
        let login = format!(
            "{}<userName>{}</userName><password>{}</password>",
            sc.session_manager.xml("_this"),
            esc(username),
            esc(password)
        );
        *lock(&self.content) = Some(sc);
        self.call("Login", &login).await?;
        if self.cookie().is_none() {
            return Err(Error::Remote(
                "vSphere Login: the server set no session cookie".into(),
            ));
        }
        Ok(())
    }

    /// The text of `/sdk/vimServiceVersions.xml` (at most 64 KiB), or "" when the server has
    /// none or it cannot be read: then the fallback version is used and the login's own call
    /// reports any connection trouble.
    async fn service_versions(&self) -> String {
        let mut u = self.url.clone();
        u.set_path("/sdk/vimServiceVersions.xml");
        u.set_query(None);
        let get = async {
            let mut r = self.client.http.get(u).send().await.ok()?;
            if !r.status().is_success() {
                return None;
            }
            let mut body = Vec::new();
            while let Some(c) = r.chunk().await.ok()? {
                body.extend_from_slice(&c);
                if body.len() > 64 << 10 {
                    return None;
                }
            }
            String::from_utf8(body).ok()
        };
        tokio::time::timeout(self.client.timeout, get)
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    pub async fn logout(&self) -> Result<()> {
        let sc = self.content()?;
        self.call("Logout", &sc.session_manager.xml("_this"))
            .await?;
        *lock(&self.cookie) = None;
        Ok(())
    }

    pub async fn find_by_inventory_path(&self, path: &str) -> Result<Option<Moref>> {
        let sc = self.content()?;
        let r = self
            .call(
                "FindByInventoryPath",
                &format!(
                    "{}<inventoryPath>{}</inventoryPath>",
                    sc.search_index.xml("_this"),
                    esc(path)
                ),
            )
            .await?;
        Ok(r.child("returnval").and_then(Moref::from_node))
    }

    /// Every VM of the inventory with the properties `paths`, through a container view.
    pub async fn all_vms(&self, paths: &[&str]) -> Result<Vec<(Moref, Vec<(String, Node)>)>> {
        let sc = self.content()?;
        let r = self
            .call(
                "CreateContainerView",
                &format!(
                    "{}{}<type>VirtualMachine</type><recursive>true</recursive>",
                    sc.view_manager.xml("_this"),
                    sc.root_folder.xml("container")
                ),
            )
            .await?;
        let view = r
            .child("returnval")
            .and_then(Moref::from_node)
            .ok_or_else(|| Error::Remote("CreateContainerView returned no view".into()))?;
        let path_set: String = paths
            .iter()
            .map(|p| format!("<pathSet>{}</pathSet>", esc(p)))
            .collect();
        let spec = format!(
            "{}<specSet><propSet><type>VirtualMachine</type>{path_set}</propSet><objectSet>{}<skip>true</skip><selectSet xsi:type=\"TraversalSpec\"><name>traverseEntities</name><type>ContainerView</type><path>view</path><skip>false</skip></selectSet></objectSet></specSet><options></options>",
            sc.property_collector.xml("_this"),
            view.xml("obj")
        );
        // The view lives until every page is read: the pages are results of it.
        let result = self.retrieve_all(&spec).await;
        let _ = self.call("DestroyView", &view.xml("_this")).await;
        let mut found = Vec::new();
        for obj in result? {
            let Some(m) = obj.child("obj").and_then(Moref::from_node) else {
                continue;
            };
            let props = obj
                .children_named("propSet")
                .filter_map(|p| Some((p.child_text("name")?.to_string(), p.child("val")?.clone())))
                .collect();
            found.push((m, props));
        }
        Ok(found)
    }

    /// `RetrievePropertiesEx` and, while its result carries a `token`,
    /// `ContinueRetrievePropertiesEx`: the `objects` of every page (vCenter pages a large
    /// inventory; a repeated token or a listing past its bounds is an error).
    async fn retrieve_all(&self, spec: &str) -> Result<Vec<Node>> {
        let sc = self.content()?;
        let mut pages = Pages::new("vSphere RetrievePropertiesEx listing of VMs");
        let mut out = Vec::new();
        let mut r = self.call("RetrievePropertiesEx", spec).await?;
        loop {
            let Some(rv) = r.children.iter_mut().find(|c| c.name == "returnval") else {
                return Ok(out);
            };
            let before = out.len();
            let token = rv.child_text("token").map(|t| t.trim().to_string());
            out.extend(
                std::mem::take(&mut rv.children)
                    .into_iter()
                    .filter(|c| c.name == "objects"),
            );
            pages.page(out.len() - before, 0)?;
            match token.filter(|t| !t.is_empty()) {
                Some(t) => {
                    pages.next(&t)?;
                    let body = format!(
                        "{}<token>{}</token>",
                        sc.property_collector.xml("_this"),
                        esc(&t)
                    );
                    r = tokio::time::timeout(
                        pages.remaining(),
                        self.call("ContinueRetrievePropertiesEx", &body),
                    )
                    .await
                    .map_err(|_| {
                        Error::Timeout(format!("{}: still paging at its deadline", pages.what()))
                    })??;
                }
                None => return Ok(out),
            }
        }
    }

    /// Every VM whose name is `name`.
    pub async fn find_vms_by_name(&self, name: &str) -> Result<Vec<Moref>> {
        Ok(self
            .all_vms(&["name"])
            .await?
            .into_iter()
            .filter(|(_, props)| {
                props
                    .iter()
                    .any(|(n, v)| n == "name" && v.text.as_str() == name)
            })
            .map(|(m, _)| m)
            .collect())
    }

    /// Properties of one object: the `propSet` elements (name → val node).
    pub async fn properties(&self, obj: &Moref, paths: &[&str]) -> Result<Vec<(String, Node)>> {
        let sc = self.content()?;
        let path_set: String = paths
            .iter()
            .map(|p| format!("<pathSet>{}</pathSet>", esc(p)))
            .collect();
        let spec = format!(
            "{}<specSet><propSet><type>{}</type>{path_set}</propSet><objectSet>{}<skip>false</skip></objectSet></specSet><options></options>",
            sc.property_collector.xml("_this"),
            esc(&obj.kind),
            obj.xml("obj")
        );
        let r = self.call("RetrievePropertiesEx", &spec).await?;
        let mut out = Vec::new();
        if let Some(o) = r.child("returnval").and_then(|rv| rv.child("objects")) {
            for p in o.children_named("propSet") {
                if let (Some(n), Some(v)) = (p.child_text("name"), p.child("val")) {
                    out.push((n.to_string(), v.clone()));
                }
            }
        }
        Ok(out)
    }
}

/// Methods that start something in vCenter (a snapshot, an export lease): sent again only
/// where vCenter cannot have acted on the first (see the kit's rule).
fn idempotent(method: &str) -> bool {
    !(method.ends_with("_Task") || matches!(method, "ExportVm" | "ExportSnapshot"))
}

/// SOAP: the session cookie signs; a fault is an error whatever the status (vCenter sends
/// them with 500), and its type says what it is.
impl Dialect for Vim {
    fn sign<'a>(&'a self, req: &'a mut reqwest::Request) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if let Some(c) = self.cookie() {
                let mut v = reqwest::header::HeaderValue::from_str(&c).map_err(|_| {
                    Error::Remote("the server's session cookie is not a valid header".into())
                })?;
                v.set_sensitive(true);
                req.headers_mut().insert(COOKIE, v);
            }
            Ok(())
        })
    }

    fn is_error(&self, status: reqwest::StatusCode, body: &[u8]) -> bool {
        !status.is_success() || fault_of(body).is_some()
    }

    fn error_detail(&self, a: &Answer) -> Option<(String, String)> {
        fault_of(&a.body)
    }

    fn classify(&self, kind: &str) -> Option<CodeClass> {
        Some(CodeClass::Kind(match kind {
            "InvalidLogin" | "NotAuthenticated" | "NoPermission" | "InvalidLoginFault" => {
                ErrorKind::Auth
            }
            "ManagedObjectNotFound" => ErrorKind::NotFound,
            "InvalidArgument" | "InvalidRequest" => ErrorKind::InvalidArgument,
            "NotSupported" | "MethodNotFound" => ErrorKind::Unsupported,
            "InvalidPowerState" | "InvalidState" | "TaskInProgress" => ErrorKind::InvalidState,
            // A fault is a definite answer: never retried.
            _ => ErrorKind::Remote,
        }))
    }
}

/// A SOAP fault in an answer: (its type, its faultstring).
pub(super) fn fault_of(body: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(body).ok()?;
    if !text.contains("Fault") {
        return None;
    }
    let doc = parse(text).ok()?;
    let fault = doc.find("Fault")?;
    let msg = fault
        .child_text("faultstring")
        .unwrap_or("")
        .trim()
        .to_string();
    let kind = fault
        .child("detail")
        .and_then(|d| d.children.first())
        .map(|f| {
            f.attr("type")
                .map(str::to_string)
                .unwrap_or_else(|| f.name.trim_end_matches("Fault").to_string())
        })
        .unwrap_or_else(|| "Fault".to_string());
    Some((kind, msg))
}
