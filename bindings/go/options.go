package hypersdk

// Typed export options, like the C# binding's: each provider's struct embeds ExportOptions and
// adds its own keys. Pass a value or a pointer as StartExport's or Export's opts; a map or raw
// JSON still works. The keys are the library's (ProviderInfo); TestOptionStructsCoverTheSchema
// fails when a key the library lists has no field here, or a field names no key.

import "encoding/json"

// Ptr returns a pointer to v, for the optional fields: Overwrite: hypersdk.Ptr(true).
func Ptr[T any](v T) *T { return &v }

// extraOptions is what the option structs share through the embedded ExportOptions.
type extraOptions interface{ extraKeys() map[string]any }

func (o ExportOptions) extraKeys() map[string]any { return o.Extra }

// optionsJSON marshals an option struct and then its Extra keys over the typed ones.
func optionsJSON(v extraOptions) ([]byte, error) {
	b, err := json.Marshal(v)
	extra := v.extraKeys()
	if err != nil || len(extra) == 0 {
		return b, err
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, x := range extra {
		m[k] = x
	}
	return json.Marshal(m)
}

// ExportOptions holds the options every provider takes (hs_provider_info's common_options).
// Unset fields (nil, "") are left out, so the library's defaults apply.
type ExportOptions struct {
	// OutputDir: the folder the files go to (required; must exist).
	OutputDir string `json:"output_dir,omitempty"`
	Overwrite *bool  `json:"overwrite,omitempty"`
	// KeepPartial: keep temp files of a failed export for a later resume (library default: true).
	KeepPartial        *bool `json:"keep_partial,omitempty"`
	ParallelFiles      *int  `json:"parallel_files,omitempty"`
	ProgressIntervalMs *int  `json:"progress_interval_ms,omitempty"`
	// FileMode: octal text such as "0640".
	FileMode string `json:"file_mode,omitempty"`
	// PartSize: smallest ranged request, bytes (multiple of 64 KiB; library default 8 MiB).
	PartSize *int64 `json:"part_size,omitempty"`
	// MaxPartSize: largest ranged request, bytes: requests grow while much of a file is left (library
	// default 64 MiB).
	MaxPartSize *int64 `json:"max_part_size,omitempty"`
	// PartsInFlight: ranged requests in flight per file at the start (library default 16).
	PartsInFlight *int `json:"parts_in_flight,omitempty"`
	// MaxPartsInFlight: most requests in flight per file while more still pay (library default 16, the
	// same as PartsInFlight: a fixed count).
	MaxPartsInFlight  *int   `json:"max_parts_in_flight,omitempty"`
	MaxBytesPerSecond *int64 `json:"max_bytes_per_second,omitempty"`
	MaxAttempts       *int   `json:"max_attempts,omitempty"`
	StallTimeoutMs    *int64 `json:"stall_timeout_ms,omitempty"`
	// RetryBaseDelayMs: first backoff before a retry, ms; it doubles, jittered (library default 500).
	RetryBaseDelayMs *int64 `json:"retry_base_delay_ms,omitempty"`
	// PollFileIntervalMs: how often a file another process writes (Hyper-V's) is looked at, ms
	// (library default 500).
	PollFileIntervalMs *int64 `json:"poll_file_interval_ms,omitempty"`
	// Priority: place in the queue for max_concurrent_exports: higher first (library default 0).
	Priority      *int  `json:"priority,omitempty"`
	VerifyResumed *bool `json:"verify_resumed,omitempty"`
	// Extra holds any other key, written as is (it wins over the typed fields). StartExport
	// and Export merge it; json.Marshal alone leaves it out.
	Extra map[string]any `json:"-"`
}

// HTTPFile is one file of an "http" export of several (HTTPExportOptions.Files).
type HTTPFile struct {
	URL      string `json:"url,omitempty"`
	FileName string `json:"file_name,omitempty"`
	SHA256   string `json:"sha256,omitempty"`
	MD5      string `json:"md5,omitempty"`
	// CRC32C: hex CRC32C (Castagnoli) of the whole file.
	CRC32C string `json:"crc32c,omitempty"`
	Size   *int64 `json:"size,omitempty"`
}

// HTTPExportOptions holds the options of the "http" provider (a URL, or a list of files).
type HTTPExportOptions struct {
	ExportOptions
	// Files: several files in one export (a VM's disks); then the source is empty.
	Files    []HTTPFile `json:"files,omitempty"`
	FileName string     `json:"file_name,omitempty"`
	SHA256   string     `json:"sha256,omitempty"`
	MD5      string     `json:"md5,omitempty"`
	// CRC32C: hex CRC32C (Castagnoli) of the whole file.
	CRC32C string `json:"crc32c,omitempty"`
	Size   *int64 `json:"size,omitempty"`
	// Headers: extra request headers (may be credentials: never logged).
	Headers map[string]string `json:"headers,omitempty"`
}

// AWSExportOptions holds the options of the "aws" provider.
type AWSExportOptions struct {
	ExportOptions
	S3Bucket string `json:"s3_bucket,omitempty"`
	S3Prefix string `json:"s3_prefix,omitempty"`
	// DiskImageFormat: vmdk, vhd or raw.
	DiskImageFormat string `json:"disk_image_format,omitempty"`
	// TargetEnvironment: vmware (default), citrix or microsoft (instances only).
	TargetEnvironment string `json:"target_environment,omitempty"`
	// ContainerFormat: "ova" for an OVA (instances only).
	ContainerFormat string `json:"container_format,omitempty"`
	// RoleName: IAM role for ExportImage (default: AWS's vmimport).
	RoleName                    string `json:"role_name,omitempty"`
	DeleteS3ObjectAfterDownload *bool  `json:"delete_s3_object_after_download,omitempty"`
	PollIntervalMs              *int64 `json:"poll_interval_ms,omitempty"`
	TimeoutSecs                 *int64 `json:"timeout_secs,omitempty"`
	FileName                    string `json:"file_name,omitempty"`
	// ReuseExportTask: Instances: adopt an active export task of the same instance, bucket, prefix and
	// format (what an export that died left running) instead of converting again (default false).
	ReuseExportTask *bool `json:"reuse_export_task,omitempty"`
	// Method: "snapshot" (EBS snapshots read through the EBS direct APIs; the default) or
	// "export-task" (EC2's export task: VMDK/VHD/OVA into S3).
	Method string `json:"method,omitempty"`
	// KeepSnapshots: snapshot method: keep the snapshots this export made (default false).
	KeepSnapshots *bool `json:"keep_snapshots,omitempty"`
	// MaxBlockRequests: snapshot method: most GetSnapshotBlock requests in flight per volume
	// (default 64).
	MaxBlockRequests *int64 `json:"max_block_requests,omitempty"`
	// KeepBase: snapshot method: keep the snapshots as the base of a later incremental export
	// (default false).
	KeepBase *bool `json:"keep_base,omitempty"`
	// IncrementalFrom: snapshot method: the path of an earlier export's result JSON; only the
	// blocks changed since its base are fetched, over a copy of its image (a full export, with
	// the reason in the result, when the base cannot be used).
	IncrementalFrom string `json:"incremental_from,omitempty"`
	// IncrementalOutput: with IncrementalFrom, "image" (default: a complete new image) or
	// "delta" (only the changes: <file>.delta and its map <file>.delta.json).
	IncrementalOutput string `json:"incremental_output,omitempty"`
}

// AzureExportOptions holds the options of the "azure" provider.
type AzureExportOptions struct {
	ExportOptions
	ResourceGroup      string `json:"resource_group,omitempty"`
	SnapshotAttached   *bool  `json:"snapshot_attached,omitempty"`
	AccessDurationSecs *int64 `json:"access_duration_secs,omitempty"`
	// FileFormat: vhd or vhdx.
	FileFormat     string `json:"file_format,omitempty"`
	PollIntervalMs *int64 `json:"poll_interval_ms,omitempty"`
	TimeoutSecs    *int64 `json:"timeout_secs,omitempty"`
	FileName       string `json:"file_name,omitempty"`
	// PageRangesSegmentMiB: get Page Ranges covers this many MiB at a time (library default 16384).
	PageRangesSegmentMiB *int64 `json:"page_ranges_segment_mib,omitempty"`
	// KeepBase: a disk: export an incremental snapshot of it and keep it as the base of a later
	// incremental export (default false).
	KeepBase *bool `json:"keep_base,omitempty"`
	// IncrementalFrom: a disk: the path of an earlier export's result JSON; only the pages
	// changed since its base snapshot are fetched, over a copy of its image (a full export, with
	// the reason in the result, when the base cannot be used).
	IncrementalFrom string `json:"incremental_from,omitempty"`
	// IncrementalOutput: with IncrementalFrom, "image" (default: a complete new image) or
	// "delta" (only the changes: <file>.delta and its map <file>.delta.json).
	IncrementalOutput string `json:"incremental_output,omitempty"`
}

// VsphereExportOptions holds the options of the "vsphere" provider.
type VsphereExportOptions struct {
	ExportOptions
	// Format: ovf (default), ova, or raw (each disk as a raw image read from a snapshot's flat
	// disk through the datastore's /folder interface; the format KeepBase and IncrementalFrom
	// need).
	Format   string `json:"format,omitempty"`
	Snapshot string `json:"snapshot,omitempty"`
	// Quiesce: quiesce the guest (VMware Tools) for the snapshot a running VM is exported through
	// (default false).
	Quiesce       *bool `json:"quiesce,omitempty"`
	ParallelDisks *int  `json:"parallel_disks,omitempty"`
	// Name: base name of the files (default: the VM's name).
	Name string `json:"name,omitempty"`
	// LeaseWaitTimeoutMs: longest wait for the export lease to become ready, ms (default 600000).
	LeaseWaitTimeoutMs *int64 `json:"lease_wait_timeout_ms,omitempty"`
	// Manifest: the .mf manifest: sha256 (default), sha1 (older vSphere and OVF tools) or none.
	Manifest string `json:"manifest,omitempty"`
	// KeepBase: format raw: keep changed block tracking on (turning it on if it is off) and
	// record each disk's changeId as the base of a later incremental export (default false).
	KeepBase *bool `json:"keep_base,omitempty"`
	// IncrementalFrom: format raw: the path of an earlier export's result JSON; only the areas
	// changed since its base are read, over a copy of its images (a full export, with the reason
	// in the result, when the base cannot be used).
	IncrementalFrom string `json:"incremental_from,omitempty"`
}

// GCPExportOptions holds the options of the "gcp" provider.
type GCPExportOptions struct {
	ExportOptions
	// Project: the project and zone of a short source name (default: the client's).
	Project string `json:"project,omitempty"`
	Zone    string `json:"zone,omitempty"`
	// Format: vmdk (default), vhdx, vpc (.vhd) or qcow2.
	Format string `json:"format,omitempty"`
	// Bucket: the Cloud Storage bucket and prefix the export goes through (default: the client's).
	Bucket string `json:"bucket,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	// DeleteObjectAfterDownload: delete the exported object once it is downloaded and verified
	// (default false).
	DeleteObjectAfterDownload *bool `json:"delete_object_after_download,omitempty"`
	// ReuseObject: download (resume) an exported object already at the destination instead of
	// exporting again (default false).
	ReuseObject *bool `json:"reuse_object,omitempty"`
	// TimeoutSecs: each cloud-side stage (image, build), seconds (default: sized from the disk,
	// 12 h per TB, at least 7200, at most 86400).
	TimeoutSecs    *int64 `json:"timeout_secs,omitempty"`
	PollIntervalMs *int64 `json:"poll_interval_ms,omitempty"`
	// FileName: the one file's name (not with an instance: one file per disk).
	FileName string `json:"file_name,omitempty"`
	// Network, Subnet: where the exporter's temporary VM runs (default: the network "default").
	Network string `json:"network,omitempty"`
	Subnet  string `json:"subnet,omitempty"`
	// ComputeServiceAccount: the exporter VM's service account (default: Compute Engine's).
	ComputeServiceAccount string `json:"compute_service_account,omitempty"`
	// SkipPrerequisiteCheck: do not check the project's services and roles first (default false).
	SkipPrerequisiteCheck *bool `json:"skip_prerequisite_check,omitempty"`
}

// HyperVExportOptions holds the options of the "hyperv" provider.
type HyperVExportOptions struct {
	ExportOptions
	// ExportType: full (default: Export-VM's layout) or vhd-only (the disks alone).
	ExportType       string `json:"export_type,omitempty"`
	IncludeSnapshots *bool  `json:"include_snapshots,omitempty"`
	// HostOutputDir: remote hosts: the output folder as the Hyper-V host sees it.
	HostOutputDir string `json:"host_output_dir,omitempty"`
	// FolderName: full: the folder's name in the output folder (default: the VM's name).
	FolderName string `json:"folder_name,omitempty"`
	// Verify: test-VHD on every exported disk (default true).
	Verify      *bool  `json:"verify,omitempty"`
	TimeoutSecs *int64 `json:"timeout_secs,omitempty"`
	// CaptureLiveState: with IncludeSnapshots, Export-VM's -CaptureLiveState
	// (CaptureSavedState, CaptureCrashConsistentState or CaptureDataConsistentState).
	CaptureLiveState string `json:"capture_live_state,omitempty"`
}
