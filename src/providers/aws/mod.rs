//! AWS: EC2 instance export (`i-…`), AMI export (`ami-…`) and plain S3 objects
//! (`s3://bucket/key`), downloaded from S3 by the core downloader with SigV4-signed ranged GETs.
//!
//! Instance flow: `DescribeInstances` → `CreateInstanceExportTask` → poll `DescribeExportTasks`
//! (phase waiting-for-cloud, the task's StatusMessage as the progress message) → object
//! `{prefix}{task id}.{format}` → download (ETag is the resume validator, S3's full-object
//! checksum verified where stored). AMIs: `ExportImage` → `DescribeExportImageTasks`.
//! Cancel or timeout while the cloud works → `CancelExportTask`. Nothing on the instance
//! changes (EC2 exports a running instance without stopping it).

mod sign;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    ContainerFormat, DiskImageFormat, ExportEnvironment, ExportTaskS3LocationRequest,
    ExportTaskState, ExportToS3TaskSpecification,
};
use serde::Deserialize;
use url::Url;

use super::{BoxFuture, Flow, FlowCtx, Outcome, Provider};
use crate::error::{Error, Result};
use crate::export::Phase;
use crate::export::options::parse_provider_options;
use crate::paths::{sanitize_file_name, validate_file_name};
use crate::transfer::{Checksum, FileSource};

/// Client config of the `aws` provider. Credentials come from the standard chain
/// (environment, profile, web identity, instance metadata) unless keys are given here.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    pub region: String,
    /// For S3-compatible stores and local testing.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Path-style S3 addressing (`endpoint/bucket/key`). Default: on with `endpoint_url`.
    #[serde(default)]
    pub force_path_style: Option<bool>,
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    #[serde(default)]
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsConfig")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

/// Export options of the `aws` provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsOptions {
    /// Bucket the export task writes into (required for `i-…` and `ami-…`).
    pub s3_bucket: Option<String>,
    pub s3_prefix: String,
    /// `vmware` (default), `citrix` or `microsoft` (instances only).
    pub target_environment: String,
    /// `vmdk` (default), `vhd` or `raw`.
    pub disk_image_format: String,
    /// `ova` to get an OVA (instances only).
    pub container_format: Option<String>,
    /// IAM role for ExportImage (default: AWS's `vmimport`).
    pub role_name: Option<String>,
    /// Delete the S3 object once the local file is complete. Default false.
    pub delete_s3_object_after_download: bool,
    /// Longest wait for the cloud side, seconds. Default 21600 (6 h).
    pub timeout_secs: u64,
    /// Time between two status polls, ms. Default 15000.
    pub poll_interval_ms: u64,
    /// Local file name (default: the object's name).
    pub file_name: Option<String>,
}

impl Default for AwsOptions {
    fn default() -> Self {
        AwsOptions {
            s3_bucket: None,
            s3_prefix: String::new(),
            target_environment: "vmware".into(),
            disk_image_format: "vmdk".into(),
            container_format: None,
            role_name: None,
            delete_s3_object_after_download: false,
            timeout_secs: 6 * 3600,
            poll_interval_ms: 15_000,
            file_name: None,
        }
    }
}

pub struct AwsProvider {
    http: reqwest::Client,
    ec2: aws_sdk_ec2::Client,
    s3: aws_sdk_s3::Client,
    signer: Arc<sign::S3Signer>,
    /// Where objects are fetched: (base URL, path style).
    urls: AwsUrl,
}

impl AwsProvider {
    pub fn new(config_json: &str) -> Result<Self> {
        let cfg: AwsConfig = serde_json::from_str(config_json)
            .map_err(|e| Error::InvalidArgument(format!("aws config: {e}")))?;
        if cfg.region.trim().is_empty() {
            return Err(Error::InvalidArgument("aws config: region is empty".into()));
        }
        if cfg.access_key_id.is_some() != cfg.secret_access_key.is_some() {
            return Err(Error::InvalidArgument(
                "aws config: give both access_key_id and secret_access_key, or neither".into(),
            ));
        }
        let endpoint = match &cfg.endpoint_url {
            Some(e) => Some(
                Url::parse(e)
                    .map_err(|err| Error::InvalidArgument(format!("endpoint_url {e:?}: {err}")))?,
            ),
            None => None,
        };
        let path_style = cfg.force_path_style.unwrap_or(endpoint.is_some());
        let region = cfg.region.clone();
        let sdk = crate::runtime::block_on(async {
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(cfg.region.clone()));
            if let Some(p) = &cfg.profile {
                loader = loader.profile_name(p);
            }
            if let (Some(id), Some(secret)) = (&cfg.access_key_id, &cfg.secret_access_key) {
                loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                    id,
                    secret,
                    cfg.session_token.clone(),
                    None,
                    "hypersdk-config",
                ));
            }
            if let Some(e) = &cfg.endpoint_url {
                loader = loader.endpoint_url(e);
            }
            loader.load().await
        });
        let provider = sdk
            .credentials_provider()
            .ok_or_else(|| Error::Auth("no AWS credentials provider could be set up".into()))?;
        let s3_conf = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(path_style)
            .build();
        let base = match endpoint {
            Some(u) => u,
            None => Url::parse(&format!("https://s3.{region}.amazonaws.com")).expect("static URL"),
        };
        let http = super::http::build_client(None, None, false, Duration::from_secs(30))?;
        Ok(AwsProvider {
            http,
            ec2: aws_sdk_ec2::Client::new(&sdk),
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            signer: Arc::new(sign::S3Signer::new(provider, region)),
            urls: AwsUrl {
                s3_base: (base, path_style),
            },
        })
    }
}

/// Maps an SDK error: the service's code decides the category; the message never carries
/// credentials (the SDK does not put them there).
type HttpResponse = aws_smithy_runtime_api::client::orchestrator::HttpResponse;

fn sdk_error<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static>(
    what: &str,
    err: aws_sdk_ec2::error::SdkError<E, HttpResponse>,
) -> Error {
    use aws_sdk_ec2::error::SdkError;
    match &err {
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => {}
        SdkError::TimeoutError(_) => {
            return Error::Timeout(format!("{what}: the request timed out"));
        }
        _ => return Error::Network(format!("{what}: {}", error_chain(&err))),
    }
    let code = err.code().unwrap_or("").to_string();
    let msg = err.message().unwrap_or("").to_string();
    // HEAD answers have no body, so no code: the status must do.
    let status = err.raw_response().map(|r| r.status().as_u16());
    if code.is_empty() {
        match status {
            Some(401 | 403) => {
                return Error::Auth(format!(
                    "{what}: access denied (HTTP {})",
                    status.unwrap_or(403)
                ));
            }
            Some(404) => return Error::NotFound(format!("{what}: not found")),
            _ => {}
        }
    }
    let text = if code.is_empty() {
        format!("{what}: {}", error_chain(&err))
    } else {
        format!("{what}: {code}: {msg}")
    };
    let auth = [
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
    if auth.contains(&code.as_str()) {
        Error::Auth(text)
    } else if code.ends_with(".NotFound") || code.starts_with("NoSuch") || code == "NotFound" {
        Error::NotFound(text)
    } else if code.starts_with("InvalidParameter") || code.ends_with(".Malformed") {
        Error::InvalidArgument(text)
    } else {
        Error::Remote(text)
    }
}

fn error_chain<E: std::error::Error + 'static, R: std::fmt::Debug>(
    err: &aws_sdk_ec2::error::SdkError<E, R>,
) -> String {
    // The whole chain (connection refused, TLS, …), without request details.
    let mut s = err.to_string();
    let mut src = std::error::Error::source(err);
    while let Some(e) = src {
        s.push_str(": ");
        s.push_str(&e.to_string());
        src = e.source();
    }
    s
}

impl Provider for AwsProvider {
    fn http_client(&self) -> &reqwest::Client {
        &self.http
    }

    fn plan(
        &self,
        source_id: &str,
        options: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Box<dyn Flow>> {
        let o: AwsOptions = parse_provider_options(options)?;
        let src = source_id.trim();
        let source = if let Some(rest) = src.strip_prefix("s3://") {
            let (bucket, key) = rest
                .split_once('/')
                .filter(|(b, k)| !b.is_empty() && !k.is_empty())
                .ok_or_else(|| Error::InvalidArgument(format!("{src:?} is not s3://bucket/key")))?;
            Source::Object {
                bucket: bucket.to_string(),
                key: key.to_string(),
            }
        } else if src.starts_with("i-") {
            Source::Instance(src.to_string())
        } else if src.starts_with("ami-") {
            Source::Image(src.to_string())
        } else {
            return Err(Error::InvalidArgument(format!(
                "source {src:?}: give an instance (i-…), an AMI (ami-…) or s3://bucket/key"
            )));
        };
        if !matches!(source, Source::Object { .. })
            && o.s3_bucket.as_deref().is_none_or(str::is_empty)
        {
            return Err(Error::InvalidArgument(
                "s3_bucket is required to export an instance or an AMI".into(),
            ));
        }
        if !["vmdk", "vhd", "raw"].contains(&o.disk_image_format.to_lowercase().as_str()) {
            return Err(Error::InvalidArgument(format!(
                "disk_image_format {:?}: use vmdk, vhd or raw",
                o.disk_image_format
            )));
        }
        if !["vmware", "citrix", "microsoft"].contains(&o.target_environment.as_str()) {
            return Err(Error::InvalidArgument(format!(
                "target_environment {:?}: use vmware, citrix or microsoft",
                o.target_environment
            )));
        }
        if let Some(c) = &o.container_format
            && c != "ova"
        {
            return Err(Error::InvalidArgument(format!(
                "container_format {c:?}: only \"ova\" exists"
            )));
        }
        if let Some(n) = &o.file_name {
            validate_file_name(n)?;
        }
        if o.poll_interval_ms < 10 || o.timeout_secs == 0 {
            return Err(Error::InvalidArgument(
                "poll_interval_ms must be ≥ 10 and timeout_secs ≥ 1".into(),
            ));
        }
        Ok(Box::new(AwsFlow {
            ec2: self.ec2.clone(),
            s3: self.s3.clone(),
            signer: self.signer.clone(),
            urls: self.urls.clone(),
            source,
            opts: o,
            task: None,
            task_done: false,
            object: None,
        }))
    }
}

/// The URL of an object, its key encoded the way SigV4 for S3 expects (RFC 3986 unreserved
/// characters and `/` kept, every other byte %-encoded).
#[derive(Clone)]
struct AwsUrl {
    s3_base: (Url, bool),
}

impl AwsUrl {
    fn object_url(&self, bucket: &str, key: &str) -> Result<Url> {
        let mut enc = String::new();
        for b in key.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
                enc.push(b as char);
            } else {
                enc.push_str(&format!("%{b:02X}"));
            }
        }
        let (base, path_style) = &self.s3_base;
        // A bucket name with dots cannot be a TLS-valid host label: address it by path.
        let text = if *path_style || bucket.contains('.') {
            format!("{}/{bucket}/{enc}", base.as_str().trim_end_matches('/'))
        } else {
            let host = base.host_str().unwrap_or("s3.amazonaws.com");
            let port = base.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{bucket}.{host}{port}/{enc}", base.scheme())
        };
        Url::parse(&text).map_err(|e| Error::InvalidArgument(format!("S3 object URL: {e}")))
    }
}

enum Source {
    Instance(String),
    Image(String),
    Object { bucket: String, key: String },
}

#[derive(Clone)]
enum Task {
    Instance(String),
    Image(String),
}

impl Task {
    fn id(&self) -> &str {
        match self {
            Task::Instance(id) | Task::Image(id) => id,
        }
    }
}

struct AwsFlow {
    ec2: aws_sdk_ec2::Client,
    s3: aws_sdk_s3::Client,
    signer: Arc<sign::S3Signer>,
    urls: AwsUrl,
    source: Source,
    opts: AwsOptions,
    task: Option<Task>,
    task_done: bool,
    object: Option<(String, String)>,
}

impl AwsFlow {
    async fn check_bucket(&self, bucket: &str) -> Result<()> {
        match self.s3.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                match status {
                    Some(404) => Err(Error::NotFound(format!(
                        "S3 bucket {bucket:?} does not exist"
                    ))),
                    Some(403) => Err(Error::Auth(format!("S3 bucket {bucket:?}: access denied"))),
                    _ => Err(sdk_error(&format!("S3 HeadBucket {bucket}"), e)),
                }
            }
        }
    }

    async fn start_instance_export(&mut self, ctx: &FlowCtx, id: &str) -> Result<(String, String)> {
        let r = self
            .ec2
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| sdk_error("EC2 DescribeInstances", e))?;
        let found = r
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .any(|i| i.instance_id() == Some(id));
        if !found {
            return Err(Error::NotFound(format!("instance {id} does not exist")));
        }
        let bucket = self.opts.s3_bucket.clone().unwrap_or_default();
        self.check_bucket(&bucket).await?;
        let mut spec = ExportToS3TaskSpecification::builder()
            .disk_image_format(DiskImageFormat::from(
                self.opts.disk_image_format.to_lowercase().as_str(),
            ))
            .s3_bucket(&bucket)
            .s3_prefix(&self.opts.s3_prefix);
        if self.opts.container_format.is_some() {
            spec = spec.container_format(ContainerFormat::Ova);
        }
        ctx.progress.set_phase(Phase::WaitingForCloud);
        ctx.progress.set_message("creating the export task");
        let r = self
            .ec2
            .create_instance_export_task()
            .instance_id(id)
            .target_environment(ExportEnvironment::from(
                self.opts.target_environment.as_str(),
            ))
            .export_to_s3_task(spec.build())
            .send()
            .await
            .map_err(|e| sdk_error("EC2 CreateInstanceExportTask", e))?;
        let task = r
            .export_task()
            .ok_or_else(|| Error::Remote("CreateInstanceExportTask returned no task".into()))?;
        let task_id = task.export_task_id().unwrap_or_default().to_string();
        // From here on, cleanup cancels the task unless it completes.
        self.task = Some(Task::Instance(task_id.clone()));
        let ext = if self.opts.container_format.is_some() {
            "ova".to_string()
        } else {
            self.opts.disk_image_format.to_lowercase()
        };
        let mut key = task
            .export_to_s3_task()
            .and_then(|t| t.s3_key())
            .map(str::to_string);
        let deadline = Instant::now() + Duration::from_secs(self.opts.timeout_secs);
        loop {
            let r = self
                .ec2
                .describe_export_tasks()
                .export_task_ids(&task_id)
                .send()
                .await
                .map_err(|e| sdk_error("EC2 DescribeExportTasks", e))?;
            let t = r
                .export_tasks()
                .first()
                .ok_or_else(|| Error::Remote(format!("export task {task_id} vanished")))?;
            if let Some(k) = t.export_to_s3_task().and_then(|s| s.s3_key()) {
                key = Some(k.to_string());
            }
            let msg = t.status_message().unwrap_or("");
            match t.state() {
                Some(ExportTaskState::Completed) => {
                    self.task_done = true;
                    break;
                }
                Some(ExportTaskState::Cancelled) | Some(ExportTaskState::Cancelling) => {
                    return Err(Error::Remote(format!(
                        "export task {task_id} was cancelled outside hypersdk {msg}"
                    )));
                }
                _ => ctx.progress.set_message(&format!(
                    "export task {task_id}: {}",
                    if msg.is_empty() { "active" } else { msg }
                )),
            }
            self.pause(ctx, deadline).await?;
        }
        let key = key.unwrap_or_else(|| format!("{}{task_id}.{ext}", self.opts.s3_prefix));
        Ok((bucket, key))
    }

    async fn start_image_export(&mut self, ctx: &FlowCtx, id: &str) -> Result<(String, String)> {
        let bucket = self.opts.s3_bucket.clone().unwrap_or_default();
        let r = self
            .ec2
            .describe_images()
            .image_ids(id)
            .send()
            .await
            .map_err(|e| sdk_error("EC2 DescribeImages", e))?;
        if !r.images().iter().any(|i| i.image_id() == Some(id)) {
            return Err(Error::NotFound(format!("image {id} does not exist")));
        }
        self.check_bucket(&bucket).await?;
        let fmt = self.opts.disk_image_format.to_uppercase();
        ctx.progress.set_phase(Phase::WaitingForCloud);
        ctx.progress.set_message("creating the image export task");
        let loc = ExportTaskS3LocationRequest::builder()
            .s3_bucket(&bucket)
            .s3_prefix(&self.opts.s3_prefix)
            .build();
        let mut req = self
            .ec2
            .export_image()
            .image_id(id)
            .disk_image_format(DiskImageFormat::from(fmt.as_str()))
            .s3_export_location(loc);
        if let Some(role) = &self.opts.role_name {
            req = req.role_name(role);
        }
        let r = req
            .send()
            .await
            .map_err(|e| sdk_error("EC2 ExportImage", e))?;
        let task_id = r.export_image_task_id().unwrap_or_default().to_string();
        self.task = Some(Task::Image(task_id.clone()));
        let deadline = Instant::now() + Duration::from_secs(self.opts.timeout_secs);
        loop {
            let r = self
                .ec2
                .describe_export_image_tasks()
                .export_image_task_ids(&task_id)
                .send()
                .await
                .map_err(|e| sdk_error("EC2 DescribeExportImageTasks", e))?;
            let t = r
                .export_image_tasks()
                .first()
                .ok_or_else(|| Error::Remote(format!("image export task {task_id} vanished")))?;
            let status = t.status().unwrap_or("");
            let pct = t.progress().unwrap_or("");
            let msg = t.status_message().unwrap_or("");
            match status {
                "completed" => {
                    self.task_done = true;
                    break;
                }
                "deleting" | "deleted" => {
                    return Err(Error::Remote(format!(
                        "image export task {task_id} was cancelled outside hypersdk {msg}"
                    )));
                }
                _ => {
                    let pct = if pct.is_empty() {
                        String::new()
                    } else {
                        format!(" {pct}%")
                    };
                    ctx.progress.set_message(
                        format!("image export task {task_id}: {status}{pct} {msg}").trim(),
                    );
                }
            }
            self.pause(ctx, deadline).await?;
        }
        Ok((
            bucket,
            format!(
                "{}{task_id}.{}",
                self.opts.s3_prefix,
                self.opts.disk_image_format.to_lowercase()
            ),
        ))
    }

    async fn pause(&self, ctx: &FlowCtx, deadline: Instant) -> Result<()> {
        if Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "the export task did not finish within {} s",
                self.opts.timeout_secs
            )));
        }
        tokio::select! {
            _ = ctx.cancel.cancelled() => Err(Error::Cancelled),
            _ = tokio::time::sleep(Duration::from_millis(self.opts.poll_interval_ms)) => Ok(()),
        }
    }
}

impl Flow for AwsFlow {
    fn prepare<'a>(&'a mut self, ctx: &'a FlowCtx) -> BoxFuture<'a, Result<Vec<FileSource>>> {
        Box::pin(async move {
            let (bucket, key) = match &self.source {
                Source::Object { bucket, key } => (bucket.clone(), key.clone()),
                Source::Instance(id) => {
                    let id = id.clone();
                    self.start_instance_export(ctx, &id).await?
                }
                Source::Image(id) => {
                    let id = id.clone();
                    self.start_image_export(ctx, &id).await?
                }
            };
            ctx.progress.set_message("");
            self.object = Some((bucket.clone(), key.clone()));
            let head = self
                .s3
                .head_object()
                .bucket(&bucket)
                .key(&key)
                .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
                .send()
                .await
                .map_err(|e| {
                    if e.raw_response().map(|r| r.status().as_u16()) == Some(404) {
                        Error::NotFound(format!("s3://{bucket}/{key} does not exist"))
                    } else {
                        sdk_error(&format!("S3 HeadObject s3://{bucket}/{key}"), e)
                    }
                })?;
            // A full-object checksum is verified; composite (multipart "-N") ones are not whole-file digests.
            let full = head
                .checksum_type()
                .is_none_or(|t| t.as_str() == "FULL_OBJECT");
            let checksum = if !full {
                None
            } else if let Some(s) = head.checksum_sha256().filter(|s| !s.contains('-')) {
                Some(Checksum::parse("sha256", s)?)
            } else if let Some(c) = head.checksum_crc32_c().filter(|s| !s.contains('-')) {
                Some(Checksum::parse("crc32c", c)?)
            } else {
                None
            };
            let name = match &self.opts.file_name {
                Some(n) => n.clone(),
                None => sanitize_file_name(key.rsplit('/').next().unwrap_or(&key), "export.img"),
            };
            let url = self.urls.object_url(&bucket, &key)?;
            Ok(vec![FileSource {
                name,
                url,
                headers: Default::default(),
                size_hint: head.content_length().and_then(|l| u64::try_from(l).ok()),
                checksum,
                want_sha256: false,
                signer: Some(self.signer.clone()),
            }])
        })
    }

    fn cleanup<'a>(&'a mut self, outcome: Outcome) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            // A task still running in the cloud is cancelled on every path but success.
            if let Some(task) = &self.task
                && !self.task_done
                && outcome != Outcome::Success
            {
                self.ec2
                    .cancel_export_task()
                    .export_task_id(task.id())
                    .send()
                    .await
                    .map_err(|e| sdk_error(&format!("EC2 CancelExportTask {}", task.id()), e))?;
            }
            if outcome == Outcome::Success
                && self.opts.delete_s3_object_after_download
                && let Some((bucket, key)) = &self.object
            {
                self.s3
                    .delete_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| sdk_error(&format!("S3 DeleteObject s3://{bucket}/{key}"), e))?;
            }
            Ok(())
        })
    }

    fn result_fields(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        if let Some(t) = &self.task {
            m.insert("task_id".into(), t.id().into());
        }
        if let Some((b, k)) = &self.object {
            m.insert("bucket".into(), b.clone().into());
            m.insert("key".into(), k.clone().into());
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_urls_are_encoded_for_sigv4() {
        let u = AwsUrl {
            s3_base: (Url::parse("http://127.0.0.1:9000").unwrap(), true),
        };
        assert_eq!(
            u.object_url("b", "vms/export-i-1 x+y.vmdk")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9000/b/vms/export-i-1%20x%2By.vmdk"
        );
        let u = AwsUrl {
            s3_base: (
                Url::parse("https://s3.eu-west-1.amazonaws.com").unwrap(),
                false,
            ),
        };
        assert_eq!(
            u.object_url("bk", "a/b.vmdk").unwrap().as_str(),
            "https://bk.s3.eu-west-1.amazonaws.com/a/b.vmdk"
        );
        assert_eq!(
            u.object_url("b.k", "x").unwrap().as_str(),
            "https://s3.eu-west-1.amazonaws.com/b.k/x"
        );
    }

    #[test]
    fn config_checks_and_hides_secrets() {
        let e = AwsProvider::new(r#"{"region": "us-east-1", "secret_access_key": "x"}"#)
            .err()
            .unwrap();
        assert!(e.to_string().contains("both"), "{e}");
        let e = AwsProvider::new(r#"{"region": "us-east-1", "regoin": "x"}"#)
            .err()
            .unwrap();
        assert!(e.to_string().contains("regoin"), "{e}");
        let c: AwsConfig = serde_json::from_str(
            r#"{"region": "r", "access_key_id": "AK", "secret_access_key": "topsecret"}"#,
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("topsecret"));
    }
}
