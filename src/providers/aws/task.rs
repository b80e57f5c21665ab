//! EC2 export tasks: start (`CreateInstanceExportTask` / `ExportImage`), wait for them with the
//! shared poller (their status message is the progress message), cancel (`CancelExportTask`,
//! also for image export tasks).
//!
//! EC2 is eventually consistent: a task just created may be unknown to `Describe…` for a while
//! (`InvalidExportTaskID.NotFound`, or an empty set). That does not end the wait until
//! [`VISIBILITY_GRACE`] has passed since the create call. A task that ends `cancelled`
//! (`deleted` for image tasks) without us carries AWS's reason in its `statusMessage`: that is
//! the error, and the task is not cancelled again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::api::{Api, list_param};
use super::config::AwsOptions;
use crate::error::{Error, Result};
use crate::providers::poll::{Backoff, Poll, poll_until};
use crate::seam::FlowCtx;

/// How long after the create call a task EC2 does not show yet is taken for eventual
/// consistency rather than a task that is gone (EC2's API reference, "Eventual consistency in
/// the Amazon EC2 API": describe calls right after a create may answer `…NotFound`).
pub(crate) const VISIBILITY_GRACE: Duration = Duration::from_secs(120);

/// An export task we started or adopted (its id is what cleanup cancels).
#[derive(Clone, Debug)]
pub(crate) struct Task {
    id: String,
    /// When the create call answered: the start of the visibility grace.
    created: Instant,
    /// The task ended in the cloud without us (cancelled, deleted): nothing to cancel.
    ended: Arc<AtomicBool>,
}

impl Task {
    fn new(id: String) -> Self {
        Task {
            id,
            created: Instant::now(),
            ended: Arc::default(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether a task EC2 does not show yet may still appear (eventual consistency).
    fn may_be_invisible(&self) -> bool {
        self.created.elapsed() < VISIBILITY_GRACE
    }

    /// The error of a task that ended in the cloud without us: AWS's reason, and cleanup
    /// will not cancel it again.
    fn ended_error(&self, what: &str, state: &str, msg: &str) -> Error {
        self.ended.store(true, Ordering::SeqCst);
        let why = if msg.is_empty() {
            "AWS gave no reason".to_string()
        } else {
            format!("AWS says: {msg}")
        };
        Error::Remote(format!("{what} {} ended {state}: {why}", self.id))
    }

    /// Cancels the task in the cloud (on failure, cancel and timeout while it is active); a
    /// task that already ended is left alone.
    pub async fn cancel(&self, api: &Api) -> Result<()> {
        if self.ended.load(Ordering::SeqCst) {
            return Ok(());
        }
        api.ec2(
            "CancelExportTask",
            self.id(),
            &[("ExportTaskId", self.id())],
        )
        .await
        .map(|_| ())
    }
}

/// Checks the instance exists, then starts its export task. Returns the task and the key the
/// task says it will write, if it says.
pub(crate) async fn start_instance(
    api: &Api,
    ctx: &FlowCtx,
    opts: &AwsOptions,
    bucket: &str,
    id: &str,
) -> Result<(Task, Option<String>)> {
    super::snapshot::describe_instance(api, id).await?;
    let format = opts.disk_image_format.to_lowercase();
    if opts.reuse_export_task
        && let Some((task, key)) = find_active(api, opts, bucket, id, &format).await?
    {
        ctx.waiting_for_cloud(&format!("adopting export task {}", task.id()));
        return Ok((task, key));
    }
    let mut params = vec![
        ("InstanceId", id),
        ("TargetEnvironment", opts.target_environment.as_str()),
        ("ExportToS3.DiskImageFormat", format.as_str()),
        ("ExportToS3.S3Bucket", bucket),
        ("ExportToS3.S3Prefix", opts.s3_prefix.as_str()),
    ];
    if opts.container_format.is_some() {
        params.push(("ExportToS3.ContainerFormat", "ova"));
    }
    ctx.waiting_for_cloud("creating the export task");
    let r = api.ec2("CreateInstanceExportTask", id, &params).await?;
    let task = r
        .child("exportTask")
        .ok_or_else(|| Error::Remote("CreateInstanceExportTask returned no task".into()))?;
    let task_id = task
        .child_text("exportTaskId")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::Remote("CreateInstanceExportTask returned no task id".into()))?
        .to_string();
    let key = s3_key(task);
    Ok((Task::new(task_id), key))
}

/// An active export task of this instance that writes where this export would: same bucket,
/// prefix (the key is `{prefix}{task id}.{ext}`), format, container and target environment.
async fn find_active(
    api: &Api,
    opts: &AwsOptions,
    bucket: &str,
    id: &str,
    format: &str,
) -> Result<Option<(Task, Option<String>)>> {
    let r = api.ec2("DescribeExportTasks", id, &[]).await?;
    let container = opts.container_format.as_deref().unwrap_or("");
    let found = r
        .children_named("exportTaskSet")
        .flat_map(|s| s.children_named("item"))
        .find(|t| {
            let text = |parent: &str, name: &str| {
                t.child(parent)
                    .and_then(|p| p.child_text(name))
                    .unwrap_or("")
                    .trim()
                    .to_lowercase()
            };
            let task_id = t.child_text("exportTaskId").unwrap_or("").trim();
            let key = s3_key(t).unwrap_or_default();
            let own_prefix = key
                .strip_prefix(opts.s3_prefix.as_str())
                .is_some_and(|rest| rest.starts_with(task_id) && !rest.contains('/'));
            t.child_text("state").map(str::trim) == Some("active")
                && !task_id.is_empty()
                && text("instanceExport", "instanceId") == id.to_lowercase()
                && text("instanceExport", "targetEnvironment") == opts.target_environment
                && text("exportToS3", "s3Bucket") == bucket
                && text("exportToS3", "diskImageFormat") == format
                && text("exportToS3", "containerFormat") == container
                && own_prefix
        });
    Ok(found.map(|t| {
        let task_id = t
            .child_text("exportTaskId")
            .unwrap_or("")
            .trim()
            .to_string();
        (Task::new(task_id), s3_key(t))
    }))
}

fn pairs<'a>(v: &'a [(String, &'a str)]) -> Vec<(&'a str, &'a str)> {
    v.iter().map(|(k, v)| (k.as_str(), *v)).collect()
}

fn s3_key(task: &crate::providers::xml::Node) -> Option<String> {
    task.child("exportToS3")
        .and_then(|t| t.child_text("s3Key"))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
}

/// Waits for an instance export task; returns the object key it reports, if any.
pub(crate) async fn wait_instance(
    api: &Api,
    ctx: &FlowCtx,
    opts: &AwsOptions,
    task: &Task,
) -> Result<Option<String>> {
    let task_id = task.id();
    poll_until(
        ctx,
        &format!("export task {task_id}"),
        Duration::from_secs(opts.timeout_secs),
        Backoff::fixed(Duration::from_millis(opts.poll_interval_ms)),
        || async {
            // Right after the create call EC2 may not know the task yet.
            let r = match api
                .ec2(
                    "DescribeExportTasks",
                    task_id,
                    &pairs(&list_param("ExportTaskId", &[task_id])),
                )
                .await
            {
                Ok(r) => Some(r),
                Err(Error::NotFound(_)) => None,
                Err(e) => return Err(e),
            };
            let found = r.as_ref().and_then(|r| {
                r.child("exportTaskSet")?
                    .children_named("item")
                    .find(|t| t.child_text("exportTaskId").map(str::trim) == Some(task_id))
            });
            let Some(t) = found else {
                return not_visible(task, "export task");
            };
            let key = s3_key(t);
            let msg = t.child_text("statusMessage").unwrap_or("").trim();
            // ExportTaskState (botocore ec2 service-2.json): active | cancelling | cancelled |
            // completed.
            Ok(match t.child_text("state").unwrap_or("").trim() {
                "completed" => Poll::Done(key),
                state @ ("cancelled" | "cancelling") => {
                    return Err(task.ended_error("export task", state, msg));
                }
                _ => Poll::pending(format!(
                    "export task {task_id}: {}",
                    if msg.is_empty() { "active" } else { msg }
                )),
            })
        },
    )
    .await
}

/// A task the describe call did not show: pending within the grace after its creation
/// (eventual consistency), then an error.
fn not_visible<T>(task: &Task, what: &str) -> Result<Poll<T>> {
    if task.may_be_invisible() {
        Ok(Poll::pending(format!(
            "{what} {}: not visible yet (EC2 is eventually consistent)",
            task.id()
        )))
    } else {
        Err(Error::NotFound(format!(
            "{what} {} is unknown to EC2 {} s after it was created",
            task.id(),
            task.created.elapsed().as_secs()
        )))
    }
}

/// Checks the image exists, then starts its export (`ExportImage`). `client_token` makes the
/// call idempotent: a retry after a lost answer gets the same task, not a second one.
pub(crate) async fn start_image(
    api: &Api,
    ctx: &FlowCtx,
    opts: &AwsOptions,
    bucket: &str,
    id: &str,
    client_token: &str,
) -> Result<Task> {
    let r = api
        .ec2("DescribeImages", id, &pairs(&list_param("ImageId", &[id])))
        .await?;
    let found = r.child("imagesSet").is_some_and(|s| {
        s.children_named("item")
            .any(|i| i.child_text("imageId") == Some(id))
    });
    if !found {
        return Err(Error::NotFound(format!("image {id} does not exist")));
    }
    let fmt = opts.disk_image_format.to_uppercase();
    ctx.waiting_for_cloud("creating the image export task");
    let mut params = vec![
        ("ImageId", id),
        ("DiskImageFormat", fmt.as_str()),
        ("S3ExportLocation.S3Bucket", bucket),
        ("S3ExportLocation.S3Prefix", opts.s3_prefix.as_str()),
        ("ClientToken", client_token),
    ];
    if let Some(role) = &opts.role_name {
        params.push(("RoleName", role.as_str()));
    }
    let r = api.ec2("ExportImage", id, &params).await?;
    let task_id = r
        .child_text("exportImageTaskId")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::Remote("ExportImage returned no task id".into()))?;
    Ok(Task::new(task_id.to_string()))
}

/// Waits for an image export task.
pub(crate) async fn wait_image(
    api: &Api,
    ctx: &FlowCtx,
    opts: &AwsOptions,
    task: &Task,
) -> Result<()> {
    let task_id = task.id();
    poll_until(
        ctx,
        &format!("image export task {task_id}"),
        Duration::from_secs(opts.timeout_secs),
        Backoff::fixed(Duration::from_millis(opts.poll_interval_ms)),
        || async {
            // Right after the create call EC2 may not know the task yet.
            let r = match api
                .ec2(
                    "DescribeExportImageTasks",
                    task_id,
                    &pairs(&list_param("ExportImageTaskId", &[task_id])),
                )
                .await
            {
                Ok(r) => Some(r),
                Err(Error::NotFound(_)) => None,
                Err(e) => return Err(e),
            };
            let found = r.as_ref().and_then(|r| {
                r.child("exportImageTaskSet")?
                    .children_named("item")
                    .find(|t| t.child_text("exportImageTaskId").map(str::trim) == Some(task_id))
            });
            let Some(t) = found else {
                return not_visible(task, "image export task");
            };
            let status = t.child_text("status").unwrap_or("").trim();
            let pct = t.child_text("progress").unwrap_or("").trim();
            let msg = t.child_text("statusMessage").unwrap_or("").trim();
            // ExportImageTask.Status: active | completed | deleting | deleted.
            Ok(match status {
                "completed" => Poll::Done(()),
                "deleting" | "deleted" => {
                    return Err(task.ended_error("image export task", status, msg));
                }
                _ => {
                    let pct = if pct.is_empty() {
                        String::new()
                    } else {
                        format!(" {pct}%")
                    };
                    Poll::pending(
                        format!("image export task {task_id}: {status}{pct} {msg}")
                            .trim()
                            .to_string(),
                    )
                }
            })
        },
    )
    .await
}
