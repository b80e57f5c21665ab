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
//! Snapshot method (`i-…`, `vol-…`, `snap-…`): EBS snapshots read through the EBS direct APIs
//! into one sparse raw image per volume (`snapflow`).
//!
//! Files: `config` (client config, options), `endpoints` (partitions, configured endpoints),
//! `api` (the signed EC2 Query and S3 calls, their retries and errors), `redirect` (a bucket in
//! another region), `task` (export tasks), `s3` (buckets, objects), `sign` (SigV4),
//! `snapflow` (the snapshot method's flow), `snapshot` (EC2's snapshot calls), `ebs` (the EBS
//! direct APIs: block listing, block reads), `gate` (the adaptive block request count).

mod api;
mod config;
mod ebs;
mod endpoints;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz;
mod gate;
mod incremental;
mod redirect;
mod s3;
mod sign;
mod snapflow;
mod snapshot;
mod task;

use std::sync::Arc;
use std::time::Duration;

use super::kit::ApiClient;
use super::kit::config::parse_with_net;
use super::kit::paging::Pages;
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::seam::ledger::StepId;
use crate::seam::options::parse_provider_options;
use crate::seam::{Flow, FlowCtx, Provider, When};
use crate::transfer::FileSource;
use api::{Api, S3Urls};
use config::{AwsConfig, AwsOptions};
use snapflow::{SnapSource, SnapshotFlow};
use task::Task;

pub(crate) struct AwsProvider {
    api: Arc<Api>,
}

impl AwsProvider {
    pub fn new(config_json: &str) -> Result<Self> {
        let (cfg, net): (AwsConfig, _) = parse_with_net("aws", config_json)?;
        cfg.check()?;
        let (ec2, _) = endpoints::resolve("ec2", &cfg)?;
        let (ebs, _) = endpoints::resolve("ebs", &cfg)?;
        let (s3, s3_configured) = endpoints::resolve("s3", &cfg)?;
        let path_style = cfg.force_path_style.unwrap_or(s3_configured);
        let region = cfg.region.clone();
        // aws-config only finds the credentials (environment, profile, SSO, web identity,
        // instance metadata, credential_process); its own calls (STS, SSO, IMDS) get deadlines
        // and the same patient retries as ours.
        let sdk = crate::runtime::block_on(async {
            let timeouts = aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(net.connect_timeout())
                .operation_attempt_timeout(net.api_timeout())
                .build();
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
            loader.load().await
        });
        let provider = sdk
            .credentials_provider()
            .ok_or_else(|| Error::Auth("no AWS credentials provider could be set up".into()))?;
        let http = net.client(super::kit::net::Redirects::SameOrigin)?;
        Ok(AwsProvider {
            api: Arc::new(Api {
                client: ApiClient::new(http, net.api_timeout(), api::MAX_BODY),
                signer: Arc::new(sign::Signer::new(provider, region.clone())),
                ec2,
                ebs,
                s3: S3Urls {
                    base: s3,
                    path_style,
                    configured: s3_configured,
                },
            }),
        })
    }
}

impl Provider for AwsProvider {
    fn list<'a>(
        &'a self,
        scope: &'a serde_json::Map<String, serde_json::Value>,
    ) -> BoxFuture<'a, Result<Vec<crate::seam::SourceInfo>>> {
        Box::pin(async move {
            use crate::seam::SourceInfo;
            super::scope_keys("aws", scope, &["bucket", "prefix"])?;
            let api = &self.api;
            let mut out = Vec::new();
            let mut token: Option<String> = None;
            let mut pages = Pages::new("EC2 DescribeInstances listing");
            loop {
                let mut params = vec![("MaxResults", "1000")];
                if let Some(t) = &token {
                    params.push(("NextToken", t));
                }
                let page = tokio::time::timeout(
                    pages.remaining(),
                    api.ec2("DescribeInstances", "", &params),
                )
                .await
                .map_err(|_| {
                    Error::Timeout(format!("{}: still paging at its deadline", pages.what()))
                })??;
                let before = out.len();
                let instances = page
                    .children_named("reservationSet")
                    .flat_map(|s| s.children_named("item"))
                    .flat_map(|r| r.children_named("instancesSet"))
                    .flat_map(|s| s.children_named("item"));
                for i in instances {
                    let Some(id) = i.child_text("instanceId").map(str::trim) else {
                        continue;
                    };
                    let name = i
                        .children_named("tagSet")
                        .flat_map(|s| s.children_named("item"))
                        .find(|t| t.child_text("key") == Some("Name"))
                        .and_then(|t| t.child_text("value"))
                        .unwrap_or(id);
                    out.push(SourceInfo {
                        id: id.to_string(),
                        kind: "instance",
                        name: name.to_string(),
                        size_bytes: None,
                        state: i
                            .child("instanceState")
                            .and_then(|s| s.child_text("name"))
                            .map(|n| n.trim().to_string()),
                    });
                }
                // The answer's size is bounded by the API client's cap per page.
                pages.page(out.len() - before, 0)?;
                match page.child_text("nextToken").map(str::trim) {
                    Some(t) if !t.is_empty() => {
                        pages.next(t)?;
                        token = Some(t.to_string());
                    }
                    _ => break,
                }
            }
            // The account's own available AMIs, page after page (DescribeImages' paginator).
            let own = [
                ("Owner.1", "self"),
                ("Filter.1.Name", "state"),
                ("Filter.1.Value.1", "available"),
            ];
            for im in api.ec2_items("DescribeImages", &own, "imagesSet").await? {
                let Some(id) = im.child_text("imageId").map(str::trim) else {
                    continue;
                };
                let gib: u64 = im
                    .children_named("blockDeviceMapping")
                    .flat_map(|s| s.children_named("item"))
                    .filter_map(|b| {
                        b.child("ebs")?
                            .child_text("volumeSize")?
                            .trim()
                            .parse::<u64>()
                            .ok()
                    })
                    .sum();
                out.push(SourceInfo {
                    id: id.to_string(),
                    kind: "image",
                    name: im.child_text("name").unwrap_or(id).to_string(),
                    size_bytes: (gib > 0).then_some(gib << 30),
                    state: im.child_text("imageState").map(|s| s.trim().to_string()),
                });
            }
            if let Some(bucket) = super::scope_str(scope, "bucket")? {
                s3::validate_bucket(bucket)?;
                let prefix = super::scope_str(scope, "prefix")?.unwrap_or("");
                for o in s3::list_objects(api, bucket, prefix).await? {
                    out.push(SourceInfo {
                        id: format!("s3://{bucket}/{}", o.key),
                        kind: "object",
                        name: o.key,
                        size_bytes: o.size,
                        state: None,
                    });
                }
            }
            Ok(out)
        })
    }

    fn plan(
        &self,
        source_id: &str,
        common: &crate::seam::options::CommonOptions,
        options: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Box<dyn Flow>> {
        let o: AwsOptions = parse_provider_options(options)?;
        let src = source_id.trim();
        let method = o.method.as_deref();
        let snap_source = if src.starts_with("vol-") {
            Some(SnapSource::Volume(src.to_string()))
        } else if src.starts_with("snap-") {
            Some(SnapSource::Snapshot(src.to_string()))
        } else if src.starts_with("i-")
            && (method == Some("snapshot") || method.is_none() && o.s3_bucket.is_none())
        {
            Some(SnapSource::Instance(src.to_string()))
        } else {
            None
        };
        if let Some(ss) = snap_source {
            if method == Some("export-task") {
                return Err(Error::InvalidArgument(format!(
                    "source {src:?}: the export task takes instances and AMIs; a volume or a \
                     snapshot goes through method \"snapshot\""
                )));
            }
            o.check(false)?;
            return Ok(Box::new(SnapshotFlow::new(
                self.api.clone(),
                ss,
                o,
                &common.output_dir,
            )));
        }
        // Incremental exports compare EBS snapshots: an export task or an S3 object has none.
        if o.incremental_from.is_some() || o.keep_base {
            return Err(Error::InvalidArgument(format!(
                "source {src:?}: incremental_from and keep_base take the snapshot method (an \
                 instance with method \"snapshot\" or without s3_bucket, a vol-… or a snap-…)"
            )));
        }
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
            if method == Some("snapshot") {
                return Err(Error::Unsupported(format!(
                    "source {src:?}: an AMI goes through the export task (method \"export-task\")"
                )));
            }
            Source::Image(src.to_string())
        } else {
            return Err(Error::InvalidArgument(format!(
                "source {src:?}: give an instance (i-…), a volume (vol-…), a snapshot (snap-…), \
                 an AMI (ami-…) or s3://bucket/key"
            )));
        };
        o.check(!matches!(source, Source::Object { .. }))?;
        if let Source::Object { bucket, .. } = &source {
            s3::validate_bucket(bucket)?;
        }
        if let Some(b) = &o.s3_bucket {
            s3::validate_bucket(b)?;
        }
        // An instance given with a bucket and no method goes to the export task only if the
        // task can take it; otherwise through snapshots.
        let fallback = match (&source, method) {
            (Source::Instance(id), None) => Some(SnapshotFlow::new(
                self.api.clone(),
                SnapSource::Instance(id.clone()),
                o.clone(),
                &common.output_dir,
            )),
            _ => None,
        };
        Ok(Box::new(AwsFlow {
            api: self.api.clone(),
            client_token: format!("hypersdk-{:032x}", rand::random::<u128>()),
            source,
            opts: o,
            task: None,
            object: None,
            fallback,
            snap: None,
        }))
    }
}

enum Source {
    Instance(String),
    Image(String),
    Object { bucket: String, key: String },
}

struct AwsFlow {
    api: Arc<Api>,
    /// ExportImage's idempotency token: a retried call returns the task the first one made.
    client_token: String,
    source: Source,
    opts: AwsOptions,
    /// The export task we started (for the result; the ledger cancels it unless it
    /// completed).
    task: Option<Task>,
    object: Option<(String, String)>,
    /// An instance with no method chosen: the snapshot flow it goes through when the export
    /// task cannot take it.
    fallback: Option<SnapshotFlow>,
    /// The snapshot flow this export went through instead.
    snap: Option<SnapshotFlow>,
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
                s3::check_bucket(&self.api, &bucket).await?;
                let (t, first_key) =
                    task::start_instance(&self.api, ctx, &self.opts, &bucket, &id).await?;
                let task_id = t.id().to_string();
                // From here on, cleanup cancels the task unless it completes.
                let step = cancel_step(ctx, &self.api, &t);
                self.task = Some(t.clone());
                let key = task::wait_instance(&self.api, ctx, &self.opts, &t).await?;
                ctx.ledger().forget(step);
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
                s3::check_bucket(&self.api, &bucket).await?;
                let t =
                    task::start_image(&self.api, ctx, &self.opts, &bucket, &id, &self.client_token)
                        .await?;
                let task_id = t.id().to_string();
                let step = cancel_step(ctx, &self.api, &t);
                self.task = Some(t.clone());
                task::wait_image(&self.api, ctx, &self.opts, &t).await?;
                ctx.ledger().forget(step);
                Ok((bucket, format!("{prefix}{task_id}.{format}")))
            }
            Source::Object { bucket, key } => Ok((bucket.clone(), key.clone())),
        }
    }
}

/// Registers the cancel of a task that is running in the cloud: it runs on every outcome that
/// is not a success, until the task completes.
fn cancel_step(ctx: &FlowCtx, api: &Arc<Api>, t: &Task) -> StepId {
    let (api, t) = (api.clone(), t.clone());
    ctx.ledger().add(
        format!("cancelling export task {}", t.id()),
        When::UnlessSuccess,
        move |_| {
            let (api, t) = (api.clone(), t.clone());
            async move { t.cancel(&api).await }
        },
    )
}

impl Flow for AwsFlow {
    fn dry_run(&self) -> (Vec<String>, Vec<String>) {
        let bucket = self.opts.s3_bucket.as_deref().unwrap_or("?");
        let object = if self.opts.delete_s3_object_after_download {
            "deleted once the file is verified; kept after a failure or cancel"
        } else {
            "kept (delete_s3_object_after_download deletes it once the file is verified)"
        };
        let ext = match self.opts.container_format.as_deref() {
            Some(c) => c.to_string(),
            None => self.opts.disk_image_format.to_lowercase(),
        };
        let task = |what: &str, id: &str| {
            let mut c = vec![
                format!(
                    "an {what} task of {id} writing s3://{bucket}/{}<task-id>.{ext}: cancelled \
                     after a failure or cancel",
                    self.opts.s3_prefix
                ),
                format!("that S3 object: {object}"),
            ];
            if let Some(fallback) = &self.fallback {
                c.push(
                    "if the export task refuses the instance: the snapshot method instead, \
                     which makes:"
                        .into(),
                );
                c.extend(fallback.dry_run().0);
            }
            c
        };
        let (cloud, file) = match &self.source {
            Source::Instance(id) => (task("instance export", id), format!("<task-id>.{ext}")),
            Source::Image(id) => (task("image export", id), format!("<task-id>.{ext}")),
            Source::Object { key, .. } => (
                Vec::new(),
                key.rsplit('/').next().unwrap_or(key).to_string(),
            ),
        };
        (cloud, vec![self.opts.file_name.clone().unwrap_or(file)])
    }

    fn prepare<'a>(&'a mut self, ctx: &'a FlowCtx) -> BoxFuture<'a, Result<Vec<FileSource>>> {
        Box::pin(async move {
            if let Source::Instance(id) = &self.source
                && let Some(why) = snapshot::task_refuses(&self.api, id).await?
            {
                let Some(mut f) = self.fallback.take() else {
                    return Err(Error::Unsupported(format!(
                        "instance {id}: EC2's export task refuses it ({why}); use method \"snapshot\""
                    )));
                };
                tracing::info!(instance = %id, reason = %why, "the export task cannot take the instance: going through snapshots");
                let files = f.prepare(ctx).await?;
                self.snap = Some(f);
                return Ok(files);
            }
            let (bucket, key) = self.run_task(ctx).await?;
            ctx.message("");
            self.object = Some((bucket.clone(), key.clone()));
            if self.opts.delete_s3_object_after_download {
                let (api, b, k) = (self.api.clone(), bucket.clone(), key.clone());
                ctx.ledger().add(
                    format!("deleting s3://{bucket}/{key}"),
                    When::OnSuccess,
                    move |_| {
                        let (api, b, k) = (api.clone(), b.clone(), k.clone());
                        async move { s3::delete_object(&api, &b, &k).await }
                    },
                );
            }
            let src =
                s3::file_source(&self.api, &bucket, &key, self.opts.file_name.as_deref()).await?;
            Ok(vec![src])
        })
    }

    fn after_download<'a>(
        &'a mut self,
        ctx: &'a FlowCtx,
        files: &'a [crate::transfer::Downloaded],
        dir: &'a Arc<crate::transfer::OutDir>,
    ) -> BoxFuture<'a, Result<crate::seam::AfterDownload>> {
        match &mut self.snap {
            Some(f) => f.after_download(ctx, files, dir),
            None => Box::pin(async { Ok(crate::seam::AfterDownload::default()) }),
        }
    }

    fn extra_names(&self) -> Vec<String> {
        self.snap
            .as_ref()
            .map(|f| f.extra_names())
            .unwrap_or_default()
    }

    fn result_fields(&self) -> serde_json::Map<String, serde_json::Value> {
        if let Some(f) = &self.snap {
            return f.result_fields();
        }
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

/// What this provider accepts (`hs_provider_info`).
pub(crate) fn info() -> super::schema::ProviderInfo {
    super::schema::ProviderInfo {
        name: "aws",
        built_in: true,
        sources: &[
            "i-… (an EC2 instance: every EBS volume through snapshots, or an export task)",
            "vol-… (an EBS volume, through a snapshot)",
            "snap-… (an EBS snapshot, read through the EBS direct APIs)",
            "ami-… (an AMI, through ExportImage)",
            "s3://bucket/key",
        ],
        config_keys: super::schema::with_net::<AwsConfig>(),
        option_keys: super::schema::field_names::<AwsOptions>(),
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
