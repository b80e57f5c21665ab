//! The `vsphere` provider's client config and export options.

use serde::Deserialize;

use crate::secret::Secret;

/// Client config of the `vsphere` provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VsphereConfig {
    /// `https://host/sdk` (a bare host gets `https://` and `/sdk`).
    pub url: String,
    pub username: String,
    /// Never logged, never in an error.
    pub password: Secret,
    /// Pin the vCenter's certificate: its SHA-1 or SHA-256 fingerprint as govc prints it
    /// (`govc about.cert -k -thumbprint`; `AB:CD:…`, any case). It must match, whatever CA
    /// signed the certificate; use it instead of `insecure_skip_verify` for a self-signed vCenter.
    #[serde(default)]
    pub thumbprint: Option<String>,
    // The network keys (CA bundle, insecure flag, connect timeout, the deadline of every SOAP
    // call, login included) are the kit's NetConfig, split off before this struct is parsed.
}

/// Export options of the `vsphere` provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct VsphereOptions {
    /// `ovf` (a folder of .ovf, .mf and disks), `ova` (one tar), or `raw` (each disk as a raw
    /// image `<name>-disk-<N>.img`, read from a snapshot's flat disk through the datastore's
    /// `/folder` HTTP interface: the format `keep_base` and `incremental_from` need). Default `ovf`.
    pub format: String,
    /// Export this snapshot (by name) instead of the VM's current state.
    pub snapshot: Option<String>,
    /// A running VM is exported through a snapshot made for the export (without memory);
    /// `true` asks VMware Tools to quiesce the guest's file systems for it. Default false.
    pub quiesce: bool,
    /// Disks downloaded at the same time, 1–8. Default 2.
    pub parallel_disks: usize,
    /// Base name of the .ovf/.mf/.ova files, and of the disks (`<name>-<disk>.vmdk`, as govc
    /// names them). Default: the VM's name.
    pub name: Option<String>,
    /// Longest wait for the lease to become ready, ms. Default 600000.
    pub lease_wait_timeout_ms: u64,
    /// The manifest (`.mf`): `sha256` (default), `sha1` (what older vSphere and OVF tools
    /// write), or `none` (no manifest, and no hashing: a plain copy, like `govc export.ovf`
    /// without `-sha`).
    pub manifest: String,
    /// Format `raw`: keep changed block tracking (CBT) on the VM, turning it on if it is off
    /// (a VM reconfiguration, then a snapshot made and removed so it takes effect), and record
    /// each disk's `changeId` as the base of a later incremental export (issue 35). CBT is
    /// never turned on without it.
    pub keep_base: bool,
    /// Format `raw`: an earlier export's result JSON (path or object) whose base is the
    /// starting point: only the areas `QueryChangedDiskAreas` reports changed since it are
    /// read; a disk goes in full, with the reason in the result, when that base cannot serve.
    pub incremental_from: Option<serde_json::Value>,
}

impl VsphereOptions {
    /// The digest each disk needs for the manifest.
    pub fn manifest_digest(&self) -> Option<crate::transfer::Digest> {
        match self.manifest.as_str() {
            "sha1" => Some(crate::transfer::Digest::Sha1),
            "none" => None,
            _ => Some(crate::transfer::Digest::Sha256),
        }
    }
}

impl Default for VsphereOptions {
    fn default() -> Self {
        VsphereOptions {
            format: "ovf".into(),
            snapshot: None,
            quiesce: false,
            parallel_disks: 2,
            name: None,
            lease_wait_timeout_ms: 600_000,
            manifest: "sha256".into(),
            keep_base: false,
            incremental_from: None,
        }
    }
}
