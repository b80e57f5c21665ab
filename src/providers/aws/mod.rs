//! AWS: EC2 instance export (`i-…`), AMI export (`ami-…`) and plain S3 objects
//! (`s3://bucket/key`), downloaded from S3 by the core downloader with SigV4-signed ranged GETs.
//!
//! Instance flow: `DescribeInstances` → `CreateInstanceExportTask` → poll `DescribeExportTasks`
//! (phase waiting-for-cloud, the task's StatusMessage as the progress message) → object
//! `{prefix}{task id}.{format}` → download (ETag is the resume validator, S3's full-object
//! checksum verified where stored). AMIs: `ExportImage` → `DescribeExportImageTasks`.
//! Cancel or timeout while the cloud works → `CancelExportTask`. Nothing on the instance
//! changes (EC2 exports a running instance without stopping it).
//!
//! Files: `config` (client config, options), `task` (export tasks), `s3` (objects, URLs),
//! `sign` (SigV4 per request), `sdk_error` (SDK errors → ours).

mod config;
mod s3;
mod sdk_error;
mod sign;
mod task;

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::{CleanupCtx, Flow, FlowCtx, Outcome, Provider, parse_config};
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::export::options::parse_provider_options;
use crate::transfer::FileSource;
use config::{AwsConfig, AwsOptions};
use s3::{ObjectSource, S3Urls};
use task::Task;

pub(crate) struct AwsProvider {
    http: reqwest::Client,
    ec2: aws_sdk_ec2::Client,
    s3: aws_sdk_s3::Client,
    signer: Arc<sign::S3Signer>,
    urls: S3Urls,
}

impl AwsProvider {
    pub fn new(config_json: &str) -> Result<Self> {
        let cfg: AwsConfig = parse_config("aws", config_json)?;
        cfg.check()?;
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
            // Every API call has a deadline: a silent endpoint must not hang an export (or
            // its cleanup) forever.
            let timeouts = aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(30))
                .operation_attempt_timeout(Duration::from_millis(cfg.api_timeout_ms))
                .build();
            // The SDK's default (3 attempts, ~0.5 s in all) gave up on a 1.5 s outage in the
            // middle of an hours-long export; 8 attempts with backoff from 0.5 s ride out tens of
            // seconds (throttling answers are retried the same way).
            let retry = aws_config::retry::RetryConfig::standard()
                .with_max_attempts(8)
                .with_initial_backoff(Duration::from_millis(500));
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(cfg.region.clone()))
                .timeout_config(timeouts)
                .retry_config(retry);
            if let Some(p) = &cfg.profile {
                loader = loader.profile_name(p);
            }
            if let (Some(id), Some(secret)) = (&cfg.access_key_id, &cfg.secret_access_key) {
                loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                    id,
                    secret.expose(),
                    cfg.session_token.as_ref().map(|t| t.expose().to_string()),
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
        let http = super::net::build_client(
            None,
            None,
            false,
            Duration::from_secs(30),
            super::net::Redirects::SameOrigin,
        )?;
        Ok(AwsProvider {
            http,
            ec2: aws_sdk_ec2::Client::new(&sdk),
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            signer: Arc::new(sign::S3Signer::new(provider, region)),
            urls: S3Urls { base, path_style },
        })
    }
}

impl Provider for AwsProvider {
    fn list<'a>(
        &'a self,
        scope: &'a serde_json::Map<String, serde_json::Value>,
    ) -> BoxFuture<'a, Result<Vec<super::SourceInfo>>> {
        Box::pin(async move {
            use super::SourceInfo;
            use aws_sdk_ec2::types::Filter;
            super::scope_keys("aws", scope, &["bucket", "prefix"])?;
            let mut out = Vec::new();
            let mut pages = self.ec2.describe_instances().into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| sdk_error::sdk_error("EC2 DescribeInstances", e))?;
                for i in page.reservations().iter().flat_map(|r| r.instances()) {
                    let Some(id) = i.instance_id() else { continue };
                    let name = i
                        .tags()
                        .iter()
                        .find(|t| t.key() == Some("Name"))
                        .and_then(|t| t.value())
                        .unwrap_or(id);
                    out.push(SourceInfo {
                        id: id.to_string(),
                        kind: "instance",
                        name: name.to_string(),
                        size_bytes: None,
                        state: i
                            .state()
                            .and_then(|s| s.name())
                            .map(|n| n.as_str().to_string()),
                    });
                }
            }
            let images = self
                .ec2
                .describe_images()
                .owners("self")
                .filters(Filter::builder().name("state").values("available").build())
                .send()
                .await
                .map_err(|e| sdk_error::sdk_error("EC2 DescribeImages", e))?;
            for im in images.images() {
                let Some(id) = im.image_id() else { continue };
                let gib: i64 = im
                    .block_device_mappings()
                    .iter()
                    .filter_map(|b| b.ebs().and_then(|e| e.volume_size()))
                    .map(i64::from)
                    .sum();
                out.push(SourceInfo {
                    id: id.to_string(),
                    kind: "image",
                    name: im.name().unwrap_or(id).to_string(),
                    size_bytes: (gib > 0).then_some((gib as u64) << 30),
                    state: im.state().map(|s| s.as_str().to_string()),
                });
            }
            if let Some(bucket) = super::scope_str(scope, "bucket")? {
                let prefix = super::scope_str(scope, "prefix")?.unwrap_or("");
                let mut pages = self
                    .s3
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| sdk_error::sdk_error("S3 ListObjectsV2", e))?;
                    for o in page.contents() {
                        let Some(k) = o.key() else { continue };
                        out.push(SourceInfo {
                            id: format!("s3://{bucket}/{k}"),
                            kind: "object",
                            name: k.to_string(),
                            size_bytes: o.size().map(|s| s.max(0) as u64),
                            state: None,
                        });
                    }
                }
            }
            Ok(out)
        })
    }

    fn plan(
        &self,
        source_id: &str,
        _common: &crate::export::options::CommonOptions,
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
        o.check(!matches!(source, Source::Object { .. }))?;
        if let Source::Object { bucket, .. } = &source {
            s3::validate_bucket(bucket)?;
        }
        if let Some(b) = &o.s3_bucket {
            s3::validate_bucket(b)?;
        }
        Ok(Box::new(AwsFlow {
            ec2: self.ec2.clone(),
            s3: self.s3.clone(),
            http: self.http.clone(),
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

enum Source {
    Instance(String),
    Image(String),
    Object { bucket: String, key: String },
}

struct AwsFlow {
    ec2: aws_sdk_ec2::Client,
    s3: aws_sdk_s3::Client,
    http: reqwest::Client,
    signer: Arc<sign::S3Signer>,
    urls: S3Urls,
    source: Source,
    opts: AwsOptions,
    /// The export task we started; cleanup cancels it unless it completed.
    task: Option<Task>,
    task_done: bool,
    object: Option<(String, String)>,
}

impl AwsFlow {
    /// Runs the export task of an instance or an AMI to completion; returns its object.
    async fn run_task(&mut self, ctx: &FlowCtx) -> Result<(String, String)> {
        let bucket = self.opts.s3_bucket.clone().unwrap_or_default();
        let prefix = self.opts.s3_prefix.clone();
        let format = self.opts.disk_image_format.to_lowercase();
        match &self.source {
            Source::Instance(id) => {
                let id = id.clone();
                s3::check_bucket(&self.s3, &bucket).await?;
                let (t, first_key) =
                    task::start_instance(&self.ec2, ctx, &self.opts, &bucket, &id).await?;
                let task_id = t.id().to_string();
                // From here on, cleanup cancels the task unless it completes.
                self.task = Some(t);
                let key = task::wait_instance(&self.ec2, ctx, &self.opts, &task_id).await?;
                self.task_done = true;
                let ext = if self.opts.container_format.is_some() {
                    "ova".to_string()
                } else {
                    format
                };
                let key = key
                    .or(first_key)
                    .unwrap_or_else(|| format!("{prefix}{task_id}.{ext}"));
                Ok((bucket, key))
            }
            Source::Image(id) => {
                let id = id.clone();
                s3::check_bucket(&self.s3, &bucket).await?;
                let t = task::start_image(&self.ec2, ctx, &self.opts, &bucket, &id).await?;
                let task_id = t.id().to_string();
                self.task = Some(t);
                task::wait_image(&self.ec2, ctx, &self.opts, &task_id).await?;
                self.task_done = true;
                Ok((bucket, format!("{prefix}{task_id}.{format}")))
            }
            Source::Object { bucket, key } => Ok((bucket.clone(), key.clone())),
        }
    }
}

impl Flow for AwsFlow {
    fn prepare<'a>(&'a mut self, ctx: &'a FlowCtx) -> BoxFuture<'a, Result<Vec<FileSource>>> {
        Box::pin(async move {
            let (bucket, key) = self.run_task(ctx).await?;
            ctx.message("");
            self.object = Some((bucket.clone(), key.clone()));
            let objects = ObjectSource {
                s3: &self.s3,
                http: &self.http,
                urls: &self.urls,
                signer: &self.signer,
            };
            let src = objects
                .file_source(&bucket, &key, self.opts.file_name.as_deref())
                .await?;
            Ok(vec![src])
        })
    }

    fn cleanup<'a>(&'a mut self, ctx: &'a CleanupCtx) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            // A task still running in the cloud is cancelled on every path but success.
            if let Some(task) = &self.task
                && !self.task_done
                && ctx.outcome != Outcome::Success
            {
                ctx.message(&format!("cancelling export task {}", task.id()));
                ctx.retry("cancelling the export task", || task.cancel(&self.ec2))
                    .await?;
            }
            if ctx.outcome == Outcome::Success
                && self.opts.delete_s3_object_after_download
                && let Some((bucket, key)) = &self.object
            {
                ctx.message(&format!("deleting s3://{bucket}/{key}"));
                ctx.retry("deleting the exported object", || {
                    s3::delete_object(&self.s3, bucket, key)
                })
                .await?;
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
