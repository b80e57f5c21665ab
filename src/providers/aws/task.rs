//! EC2 export tasks: start (`CreateInstanceExportTask` / `ExportImage`), wait for them with the
//! shared poller (their status message is the progress message), cancel (`CancelExportTask`,
//! also for image export tasks).

use std::time::Duration;

use aws_sdk_ec2::types::{
    ContainerFormat, DiskImageFormat, ExportEnvironment, ExportTaskS3LocationRequest,
    ExportTaskState, ExportToS3TaskSpecification,
};

use super::config::AwsOptions;
use super::sdk_error::sdk_error;
use crate::error::{Error, Result};
use crate::providers::FlowCtx;
use crate::providers::poll::{Backoff, Poll, poll_until};

/// An export task we started (its id is what cleanup cancels).
#[derive(Clone, Debug)]
pub(crate) enum Task {
    Instance(String),
    Image(String),
}

impl Task {
    pub fn id(&self) -> &str {
        match self {
            Task::Instance(id) | Task::Image(id) => id,
        }
    }

    /// Cancels the task in the cloud (on failure, cancel and timeout while it is active).
    pub async fn cancel(&self, ec2: &aws_sdk_ec2::Client) -> Result<()> {
        ec2.cancel_export_task()
            .export_task_id(self.id())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error(&format!("EC2 CancelExportTask {}", self.id()), e))
    }
}

/// Checks the instance exists, then starts its export task. Returns the task and the key the
/// task says it will write, if it says.
pub(crate) async fn start_instance(
    ec2: &aws_sdk_ec2::Client,
    ctx: &FlowCtx,
    opts: &AwsOptions,
    bucket: &str,
    id: &str,
) -> Result<(Task, Option<String>)> {
    let r = ec2
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
    let mut spec = ExportToS3TaskSpecification::builder()
        .disk_image_format(DiskImageFormat::from(
            opts.disk_image_format.to_lowercase().as_str(),
        ))
        .s3_bucket(bucket)
        .s3_prefix(&opts.s3_prefix);
    if opts.container_format.is_some() {
        spec = spec.container_format(ContainerFormat::Ova);
    }
    ctx.waiting_for_cloud("creating the export task");
    let r = ec2
        .create_instance_export_task()
        .instance_id(id)
        .target_environment(ExportEnvironment::from(opts.target_environment.as_str()))
        .export_to_s3_task(spec.build())
        .send()
        .await
        .map_err(|e| sdk_error("EC2 CreateInstanceExportTask", e))?;
    let task = r
        .export_task()
        .ok_or_else(|| Error::Remote("CreateInstanceExportTask returned no task".into()))?;
    let task_id = task.export_task_id().unwrap_or_default().to_string();
    let key = task
        .export_to_s3_task()
        .and_then(|t| t.s3_key())
        .map(str::to_string);
    Ok((Task::Instance(task_id), key))
}

/// Waits for an instance export task; returns the object key it reports, if any.
pub(crate) async fn wait_instance(
    ec2: &aws_sdk_ec2::Client,
    ctx: &FlowCtx,
    opts: &AwsOptions,
    task_id: &str,
) -> Result<Option<String>> {
    poll_until(
        ctx,
        &format!("export task {task_id}"),
        Duration::from_secs(opts.timeout_secs),
        Backoff::fixed(Duration::from_millis(opts.poll_interval_ms)),
        || async {
            let r = ec2
                .describe_export_tasks()
                .export_task_ids(task_id)
                .send()
                .await
                .map_err(|e| sdk_error("EC2 DescribeExportTasks", e))?;
            let t = r
                .export_tasks()
                .first()
                .ok_or_else(|| Error::Remote(format!("export task {task_id} vanished")))?;
            let key = t
                .export_to_s3_task()
                .and_then(|s| s.s3_key())
                .map(str::to_string);
            let msg = t.status_message().unwrap_or("");
            Ok(match t.state() {
                Some(ExportTaskState::Completed) => Poll::Done(key),
                Some(ExportTaskState::Cancelled) | Some(ExportTaskState::Cancelling) => {
                    return Err(Error::Remote(format!(
                        "export task {task_id} was cancelled outside hypersdk {msg}"
                    )));
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

/// Checks the image exists, then starts its export (`ExportImage`).
pub(crate) async fn start_image(
    ec2: &aws_sdk_ec2::Client,
    ctx: &FlowCtx,
    opts: &AwsOptions,
    bucket: &str,
    id: &str,
) -> Result<Task> {
    let r = ec2
        .describe_images()
        .image_ids(id)
        .send()
        .await
        .map_err(|e| sdk_error("EC2 DescribeImages", e))?;
    if !r.images().iter().any(|i| i.image_id() == Some(id)) {
        return Err(Error::NotFound(format!("image {id} does not exist")));
    }
    let fmt = opts.disk_image_format.to_uppercase();
    ctx.waiting_for_cloud("creating the image export task");
    let loc = ExportTaskS3LocationRequest::builder()
        .s3_bucket(bucket)
        .s3_prefix(&opts.s3_prefix)
        .build();
    let mut req = ec2
        .export_image()
        .image_id(id)
        .disk_image_format(DiskImageFormat::from(fmt.as_str()))
        .s3_export_location(loc);
    if let Some(role) = &opts.role_name {
        req = req.role_name(role);
    }
    let r = req
        .send()
        .await
        .map_err(|e| sdk_error("EC2 ExportImage", e))?;
    Ok(Task::Image(
        r.export_image_task_id().unwrap_or_default().to_string(),
    ))
}

/// Waits for an image export task.
pub(crate) async fn wait_image(
    ec2: &aws_sdk_ec2::Client,
    ctx: &FlowCtx,
    opts: &AwsOptions,
    task_id: &str,
) -> Result<()> {
    poll_until(
        ctx,
        &format!("image export task {task_id}"),
        Duration::from_secs(opts.timeout_secs),
        Backoff::fixed(Duration::from_millis(opts.poll_interval_ms)),
        || async {
            let r = ec2
                .describe_export_image_tasks()
                .export_image_task_ids(task_id)
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
            Ok(match status {
                "completed" => Poll::Done(()),
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
