//! Cloud Storage through its JSON API on our HTTP client: object metadata, delete, and the
//! download source (ranged media GETs with the generation pinned, a bearer token per request).
//! google-cloud-storage's own metadata and delete calls are gRPC-only (`StorageControl`), and
//! its reads do not fit the ranged downloader, so these few calls are ours.

use std::time::Duration;

use google_cloud_auth::credentials::{CacheableResource, Credentials};
use reqwest::Method;
use serde_json::Value;
use url::Url;

use crate::BoxFuture;
use crate::error::{Error, ErrorKind, Result};
use crate::providers::kit::paging::Pages;
use crate::providers::kit::text::one_line;
use crate::providers::kit::{Answer, ApiClient, Call, CodeClass, Dialect};
use crate::transfer::{Checksum, HttpSource, RequestSigner};

/// Largest metadata answer read (a page of 1000 listed objects is well under).
pub(crate) const MAX_BODY: usize = 4 << 20;

/// Adds the credentials' headers (`Authorization: Bearer …`, a quota project) to a request,
/// fresh for each one: google-cloud-auth caches and refreshes the token, so a day-long download
/// never outlives it.
#[derive(Clone)]
pub(crate) struct GcpSigner {
    pub creds: Credentials,
    pub timeout: Duration,
}

impl std::fmt::Debug for GcpSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GcpSigner")
    }
}

impl GcpSigner {
    pub async fn headers(&self) -> Result<reqwest::header::HeaderMap> {
        let got = tokio::time::timeout(self.timeout, self.creds.headers(http::Extensions::new()))
            .await
            .map_err(|_| Error::Timeout(format!("no GCP access token within {:?}", self.timeout)))?
            .map_err(|e| Error::Auth(format!("GCP credentials: {}", one_line(&e.to_string()))))?;
        match got {
            CacheableResource::New { data, .. } => Ok(data),
            CacheableResource::NotModified => Err(Error::Internal(
                "GCP credentials answered \"not modified\" to a request without a tag".into(),
            )),
        }
    }
}

impl RequestSigner for GcpSigner {
    fn sign<'a>(&'a self, req: &'a mut reqwest::Request) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            for (k, v) in self.headers().await?.iter() {
                req.headers_mut().insert(k.clone(), v.clone());
            }
            Ok(())
        })
    }
}

/// What the download needs of an object.
#[derive(Debug, Clone)]
pub(crate) struct ObjectMeta {
    pub bucket: String,
    pub name: String,
    pub size: u64,
    pub generation: String,
    pub crc32c: Option<Checksum>,
}

pub(crate) struct Storage {
    pub client: ApiClient,
    pub base: Url,
    pub signer: GcpSigner,
}

impl Storage {
    /// `{base}/storage/v1/b/{bucket}/o/{object}`, the object name as one encoded segment.
    fn object_url(&self, bucket: &str, name: &str) -> Url {
        let mut u = self.base.clone();
        u.path_segments_mut()
            .expect("http(s) URL")
            .pop_if_empty()
            .extend(["storage", "v1", "b", bucket, "o", name]);
        u
    }

    async fn call(&self, method: Method, url: Url, what: &str) -> Result<Value> {
        Ok(self.call_sized(method, url, what).await?.0)
    }

    /// A call's JSON answer and its size in bytes.
    async fn call_sized(&self, method: Method, url: Url, what: &str) -> Result<(Value, u64)> {
        // Every call here is a read or a generation-pinned delete: safe to send again.
        let a = self
            .client
            .call(&Call::read(what), &self.signer, &|| {
                self.client.http.request(method.clone(), url.clone())
            })
            .await?;
        let v = serde_json::from_slice(&a.body).unwrap_or(Value::Null);
        Ok((v, a.body.len() as u64))
    }

    pub async fn metadata(&self, bucket: &str, name: &str) -> Result<ObjectMeta> {
        let what = format!("GCS gs://{bucket}/{name}");
        let v = self
            .call(Method::GET, self.object_url(bucket, name), &what)
            .await?;
        let size = v["size"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Remote(format!("{what}: no size in the object's metadata")))?;
        let generation = v["generation"]
            .as_str()
            .filter(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| Error::Remote(format!("{what}: no generation in the metadata")))?
            .to_string();
        let crc32c = match v["crc32c"].as_str() {
            Some(c) => Some(Checksum::parse("crc32c", c).map_err(|e| {
                Error::Remote(format!("{what}: the object's crc32c is unusable: {e}"))
            })?),
            None => None,
        };
        Ok(ObjectMeta {
            bucket: bucket.into(),
            name: name.into(),
            size,
            generation,
            crc32c,
        })
    }

    /// Objects of `bucket` under `prefix`: (name, size), every page (a repeated
    /// `nextPageToken`, a listing past its bounds or deadline: an error naming the listing).
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<(String, u64)>> {
        let what = format!("listing gs://{bucket}/{prefix}");
        let mut pages = Pages::new(what.clone());
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut u = self.base.clone();
            u.path_segments_mut()
                .expect("http(s) URL")
                .pop_if_empty()
                .extend(["storage", "v1", "b", bucket, "o"]);
            {
                let mut q = u.query_pairs_mut();
                q.append_pair("prefix", prefix)
                    .append_pair("fields", "items(name,size),nextPageToken");
                if let Some(t) = &token {
                    q.append_pair("pageToken", t);
                }
            }
            let (v, len) =
                tokio::time::timeout(pages.remaining(), self.call_sized(Method::GET, u, &what))
                    .await
                    .map_err(|_| {
                        Error::Timeout(format!("{what}: still paging at its deadline"))
                    })??;
            let items = v["items"].as_array().map(Vec::as_slice).unwrap_or_default();
            pages.page(items.len(), len)?;
            for o in items {
                if let Some(n) = o["name"].as_str() {
                    out.push((
                        n.to_string(),
                        o["size"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0),
                    ));
                }
            }
            match v["nextPageToken"].as_str() {
                Some(t) if !t.is_empty() => {
                    pages.next(t)?;
                    token = Some(t.to_string());
                }
                _ => return Ok(out),
            }
        }
    }

    /// Deletes exactly the generation we exported (`generation=G`): a newer live object of
    /// the same name is never touched, a versioned bucket keeps no noncurrent copy of it (a
    /// precondition on the live object, `ifGenerationMatch`, did both wrong), and a
    /// generation already gone is done.
    pub async fn delete(&self, o: &ObjectMeta) -> Result<()> {
        let mut u = self.object_url(&o.bucket, &o.name);
        u.query_pairs_mut().append_pair("generation", &o.generation);
        match self
            .call(
                Method::DELETE,
                u,
                &format!("deleting gs://{}/{}", o.bucket, o.name),
            )
            .await
        {
            Ok(_) | Err(Error::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A bucket's location (lower case: `europe-west1`, `us`, `eu`, `nam4`) and project number.
    pub async fn bucket(&self, bucket: &str) -> Result<(String, Option<String>)> {
        let mut u = self.base.clone();
        u.path_segments_mut()
            .expect("http(s) URL")
            .pop_if_empty()
            .extend(["storage", "v1", "b", bucket]);
        let v = self
            .call(Method::GET, u, &format!("GCS bucket {bucket}"))
            .await?;
        let location = v["location"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| Error::Remote(format!("GCS bucket {bucket}: no location")))?;
        Ok((location, v["projectNumber"].as_str().map(str::to_string)))
    }

    /// The exporter's scratch bucket, made with the caller's credentials as gcloud makes it
    /// (daisy_utils `CreateDaisyBucketInProject`): `{project}-daisy-bkt-{location}`, in the
    /// destination bucket's location; reused when it is already the project's, else a random
    /// suffix (a name taken by another project). Kept afterwards, like gcloud's, for the next
    /// export.
    pub async fn scratch_bucket(
        &self,
        project: &str,
        number: Option<&str>,
        location: &str,
    ) -> Result<String> {
        let base = daisy_bucket_name(project, location);
        for attempt in 0..10 {
            let name = if attempt == 0 {
                base.clone()
            } else {
                let suffix: String = (0..8)
                    .map(|_| (b'a' + rand::random::<u8>() % 26) as char)
                    .collect();
                format!("{}-{suffix}", &base[..base.len().min(63 - 9)])
            };
            let mut u = self.base.clone();
            u.path_segments_mut()
                .expect("http(s) URL")
                .pop_if_empty()
                .extend(["storage", "v1", "b"]);
            u.query_pairs_mut().append_pair("project", project);
            let body = serde_json::json!({"name": name, "location": location});
            let what = format!("creating the scratch bucket {name}");
            let made = self
                .client
                .call(&Call::read(&what), &self.signer, &|| {
                    self.client.http.post(u.clone()).json(&body)
                })
                .await;
            match made {
                Ok(_) => return Ok(name),
                Err(Error::AlreadyExists(_)) => match self.bucket(&name).await {
                    Ok((_, n)) if number.is_none() || n.as_deref() == number => return Ok(name),
                    // Another project's bucket (or one we cannot read): another name.
                    Ok(_) | Err(Error::Auth(_)) => continue,
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
        Err(Error::AlreadyExists(format!(
            "no scratch bucket name like {base} is free for project {project}"
        )))
    }

    /// The object's bytes, generation pinned: a replaced object answers 404, never new bytes
    /// mixed into old ones.
    pub fn source(&self, o: &ObjectMeta) -> HttpSource {
        let mut url = self.object_url(&o.bucket, &o.name);
        url.query_pairs_mut()
            .append_pair("alt", "media")
            .append_pair("generation", &o.generation);
        HttpSource {
            client: self.client.http.clone(),
            url,
            headers: Default::default(),
            signer: Some(std::sync::Arc::new(self.signer.clone())),
            hooks: crate::transfer::SourceHooks {
                server_checksum: Some(crate::providers::kit::checksums::goog_hash),
                range_md5_header: None,
                version_header: Some("x-goog-generation"),
            },
        }
    }
}

/// gcloud's scratch bucket name (daisy_utils `GetDaisyBucketName`, `_GetSafeBucketName`):
/// `{project}-daisy-bkt-{location}`, `:` and `.` of a domain-scoped project as `-`, no
/// "google" in it, at most 63 characters.
pub(crate) fn daisy_bucket_name(project: &str, location: &str) -> String {
    let safe = project.replace([':', '.'], "-");
    let mut name = format!("{safe}-daisy-bkt-{location}")
        .to_ascii_lowercase()
        .replace("google", "go-ogle");
    if name.starts_with("goog") {
        name = format!("go-og{}", &name[4..]);
    }
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// Google's JSON APIs (Cloud Storage, Compute, Cloud Build) sign with the credentials' headers
/// and write `{"error": {"code", "message", "status", "errors": [{"reason"}]}}`: one dialect,
/// spoken by the signer, for every Google call.
impl Dialect for GcpSigner {
    fn sign<'a>(&'a self, req: &'a mut reqwest::Request) -> BoxFuture<'a, Result<()>> {
        crate::transfer::RequestSigner::sign(self, req)
    }

    fn error_detail(&self, a: &Answer) -> Option<(String, String)> {
        json_error(&a.body)
    }

    fn classify(&self, code: &str) -> Option<CodeClass> {
        classify_reason(code)
    }
}

/// The `reason` of a Google JSON error and its message.
pub(crate) fn json_error(body: &[u8]) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = &v["error"];
    let reason = e["errors"][0]["reason"]
        .as_str()
        .or_else(|| e["status"].as_str())
        .unwrap_or("")
        .to_string();
    let msg = e["message"].as_str().unwrap_or("").to_string();
    (!reason.is_empty() || !msg.is_empty()).then_some((reason, msg))
}

/// Google's error reasons that say more than the status.
pub(crate) fn classify_reason(reason: &str) -> Option<CodeClass> {
    match reason {
        "rateLimitExceeded" | "userRateLimitExceeded" | "RESOURCE_EXHAUSTED" | "UNAVAILABLE" => {
            Some(CodeClass::Throttled)
        }
        "backendError" => Some(CodeClass::Retry),
        "conditionNotMet" | "FAILED_PRECONDITION" => Some(CodeClass::Kind(ErrorKind::InvalidState)),
        // buckets.insert of a name that exists (anyone's).
        "conflict" => Some(CodeClass::Kind(ErrorKind::AlreadyExists)),
        _ => None,
    }
}
