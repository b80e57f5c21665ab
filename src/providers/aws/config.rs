//! The `aws` provider's client config and export options.

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::paths::validate_file_name;
use crate::secret::Secret;

/// Client config of the `aws` provider. Credentials come from the standard chain
/// (environment, profile, web identity, instance metadata) unless keys are given here.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AwsConfig {
    pub region: String,
    /// Every service's endpoint (S3-compatible stores, local testing, private endpoints);
    /// `endpoint_url_{ec2,s3,ebs}` for one service. Else `AWS_ENDPOINT_URL_{EC2,S3,EBS}`,
    /// `AWS_ENDPOINT_URL`, else the region's endpoint in its partition (endpoints.rs).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    #[serde(default)]
    pub endpoint_url_ec2: Option<String>,
    #[serde(default)]
    pub endpoint_url_s3: Option<String>,
    #[serde(default)]
    pub endpoint_url_ebs: Option<String>,
    /// Path-style S3 addressing (`endpoint/bucket/key`). Default: on with `endpoint_url`.
    #[serde(default)]
    pub force_path_style: Option<bool>,
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    #[serde(default)]
    pub session_token: Option<Secret>,
    // The network keys (CA bundle, insecure flag, connect and API deadlines) are the kit's
    // NetConfig, split off before this struct is parsed.
}

impl AwsConfig {
    /// The config's own endpoint for one service (`endpoint_url_{service}`).
    pub fn service_endpoint(&self, service: &str) -> Option<&str> {
        match service {
            "ec2" => self.endpoint_url_ec2.as_deref(),
            "s3" => self.endpoint_url_s3.as_deref(),
            "ebs" => self.endpoint_url_ebs.as_deref(),
            _ => None,
        }
    }

    pub fn check(&self) -> Result<()> {
        // The region goes into host names (ec2.{region}.amazonaws.com).
        let r = &self.region;
        if r.is_empty()
            || r.len() > 64
            || !r
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(Error::InvalidArgument(format!(
                "aws config: region {r:?} is not a region name (like us-east-1)"
            )));
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return Err(Error::InvalidArgument(
                "aws config: give both access_key_id and secret_access_key, or neither".into(),
            ));
        }
        Ok(())
    }
}

/// Export options of the `aws` provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AwsOptions {
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
    /// Instances: before creating an export task, adopt an active one of the same instance,
    /// bucket, prefix, format, container and environment — what an export that died left
    /// running (a retry on another worker then waits for it instead of converting the disk
    /// again). Off by default: two live exports of one instance would otherwise share a task
    /// and the first to cancel would cancel it for both. Default false.
    pub reuse_export_task: bool,
    /// `snapshot` (EBS snapshots read through the EBS direct APIs: any instance, volume or
    /// snapshot, a sparse raw image per volume) or `export-task` (EC2's export task: a
    /// VMDK/VHD/OVA in S3). Default: `snapshot`, except that an instance or AMI given with
    /// `s3_bucket` goes through the export task when the task can take it.
    pub method: Option<String>,
    /// Snapshot method: keep the snapshots this export made (they are deleted by default, on
    /// every outcome).
    pub keep_snapshots: bool,
    /// Snapshot method: most `GetSnapshotBlock` requests in flight per volume (the ceiling of
    /// the adaptive count, which halves on throttling and grows back while calls succeed).
    /// Default 64. The transfer option `max_parts_in_flight` bounds it too.
    pub max_block_requests: usize,
    /// Snapshot method: export only the blocks that changed since an earlier export — the
    /// path of its result JSON (or that result as an object; the command takes a history id).
    /// The new image is whole: the earlier image cloned, the changed blocks fetched over it.
    /// Falls back to a full export, saying why, when the base cannot be used.
    pub incremental_from: Option<serde_json::Value>,
    /// Snapshot method: keep the snapshots as the base of a later incremental export (as
    /// `keep_snapshots`). Default false.
    pub keep_base: bool,
    /// With `incremental_from`: `image` (default) writes a complete new image; `delta` writes
    /// only the changed blocks (`<file>.delta`, sparse) and their map (`<file>.delta.json`),
    /// for tools that keep chains.
    pub incremental_output: crate::transfer::incremental::Output,
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
            reuse_export_task: false,
            method: None,
            keep_snapshots: false,
            max_block_requests: 64,
            incremental_from: None,
            keep_base: false,
            incremental_output: Default::default(),
        }
    }
}

impl AwsOptions {
    /// Checks the options; `needs_bucket` for sources that go through an export task.
    pub fn check(&self, needs_bucket: bool) -> Result<()> {
        if needs_bucket && self.s3_bucket.as_deref().is_none_or(str::is_empty) {
            return Err(Error::InvalidArgument(
                "s3_bucket is required to export an instance or an AMI".into(),
            ));
        }
        if !["vmdk", "vhd", "raw"].contains(&self.disk_image_format.to_lowercase().as_str()) {
            return Err(Error::InvalidArgument(format!(
                "disk_image_format {:?}: use vmdk, vhd or raw",
                self.disk_image_format
            )));
        }
        if !["vmware", "citrix", "microsoft"].contains(&self.target_environment.as_str()) {
            return Err(Error::InvalidArgument(format!(
                "target_environment {:?}: use vmware, citrix or microsoft",
                self.target_environment
            )));
        }
        if let Some(c) = &self.container_format
            && c != "ova"
        {
            return Err(Error::InvalidArgument(format!(
                "container_format {c:?}: only \"ova\" exists"
            )));
        }
        if let Some(n) = &self.file_name {
            validate_file_name(n)?;
        }
        if let Some(m) = &self.method
            && m != "snapshot"
            && m != "export-task"
        {
            return Err(Error::InvalidArgument(format!(
                "method {m:?}: use \"snapshot\" or \"export-task\""
            )));
        }
        if !(1..=1024).contains(&self.max_block_requests) {
            return Err(Error::InvalidArgument(format!(
                "max_block_requests {}: use 1 to 1024",
                self.max_block_requests
            )));
        }
        crate::transfer::incremental::delta::check(
            self.incremental_output,
            self.incremental_from.as_ref(),
        )?;
        if self.poll_interval_ms < 10 || self.timeout_secs == 0 {
            return Err(Error::InvalidArgument(
                "poll_interval_ms must be ≥ 10 and timeout_secs ≥ 1".into(),
            ));
        }
        Ok(())
    }
}
