// Typed export options, serialized to the JSON the C ABI takes. Unset (null) values are left out,
// so the library's defaults apply; Extra carries any key not modelled here (and overrides).
// The keys are the library's (HyperSdkClient.ProviderInfo()); tests/provider_info.rs checks
// every class here against them.
using System.Collections.Generic;
using System.Linq;

namespace HyperSdk
{
    /// <summary>The options every provider takes.</summary>
    public class ExportOptions
    {
        /// <summary>The folder the files go to (required; must exist).</summary>
        public string OutputDir { get; set; }
        public bool? Overwrite { get; set; }
        /// <summary>Keep temp files of a failed export for a later resume (library default: true).</summary>
        public bool? KeepPartial { get; set; }
        public int? ParallelFiles { get; set; }
        public int? ProgressIntervalMs { get; set; }
        /// <summary>Octal text such as "0640".</summary>
        public string FileMode { get; set; }
        /// <summary>Smallest ranged request, bytes (multiple of 64 KiB; library default 8 MiB).</summary>
        public long? PartSize { get; set; }
        /// <summary>Largest ranged request, bytes: requests grow while much of a file is left (library default 64 MiB).</summary>
        public long? MaxPartSize { get; set; }
        /// <summary>Ranged requests in flight per file at the start (library default 16).</summary>
        public int? PartsInFlight { get; set; }
        /// <summary>Most requests in flight per file while more still pay (library default 16, the same as PartsInFlight: a fixed count).</summary>
        public int? MaxPartsInFlight { get; set; }
        public long? MaxBytesPerSecond { get; set; }
        public int? MaxAttempts { get; set; }
        public long? StallTimeoutMs { get; set; }
        /// <summary>First backoff before a retry, ms; it doubles, jittered (library default 500).</summary>
        public long? RetryBaseDelayMs { get; set; }
        /// <summary>How often a file another process writes (Hyper-V's) is looked at, ms (library default 500).</summary>
        public long? PollFileIntervalMs { get; set; }
        /// <summary>Place in the queue for max_concurrent_exports: higher first (library default 0).</summary>
        public int? Priority { get; set; }
        public bool? VerifyResumed { get; set; }
        /// <summary>Any other key, written as is (wins over the typed properties).</summary>
        public IDictionary<string, object> Extra { get; private set; }

        public ExportOptions()
        {
            Extra = new Dictionary<string, object>();
        }

        public ExportOptions(string outputDir) : this()
        {
            OutputDir = outputDir;
        }

        protected virtual void Add(IDictionary<string, object> d)
        {
            Put(d, "output_dir", OutputDir);
            Put(d, "overwrite", Overwrite);
            Put(d, "keep_partial", KeepPartial);
            Put(d, "parallel_files", ParallelFiles);
            Put(d, "progress_interval_ms", ProgressIntervalMs);
            Put(d, "file_mode", FileMode);
            Put(d, "part_size", PartSize);
            Put(d, "max_part_size", MaxPartSize);
            Put(d, "parts_in_flight", PartsInFlight);
            Put(d, "max_parts_in_flight", MaxPartsInFlight);
            Put(d, "max_bytes_per_second", MaxBytesPerSecond);
            Put(d, "max_attempts", MaxAttempts);
            Put(d, "stall_timeout_ms", StallTimeoutMs);
            Put(d, "retry_base_delay_ms", RetryBaseDelayMs);
            Put(d, "poll_file_interval_ms", PollFileIntervalMs);
            Put(d, "priority", Priority);
            Put(d, "verify_resumed", VerifyResumed);
        }

        protected static void Put(IDictionary<string, object> d, string key, object value)
        {
            if (value != null) d[key] = value;
        }

        /// <summary>The JSON the library takes.</summary>
        public string ToJson()
        {
            var d = new SortedDictionary<string, object>();
            Add(d);
            foreach (var kv in Extra) d[kv.Key] = kv.Value;
            return Json.Serialize(d);
        }
    }

    /// <summary>One file of an "http" export of several (<see cref="HttpExportOptions.Files"/>).</summary>
    public sealed class HttpFile
    {
        public string Url { get; set; }
        public string FileName { get; set; }
        public string Sha256 { get; set; }
        public string Md5 { get; set; }
        /// <summary>Hex CRC32C (Castagnoli) of the whole file.</summary>
        public string Crc32c { get; set; }
        public long? Size { get; set; }

        public HttpFile() { }

        public HttpFile(string url)
        {
            Url = url;
        }

        internal IDictionary<string, object> ToDictionary()
        {
            var d = new SortedDictionary<string, object>();
            if (Url != null) d["url"] = Url;
            if (FileName != null) d["file_name"] = FileName;
            if (Sha256 != null) d["sha256"] = Sha256;
            if (Md5 != null) d["md5"] = Md5;
            if (Crc32c != null) d["crc32c"] = Crc32c;
            if (Size != null) d["size"] = Size;
            return d;
        }
    }

    /// <summary>Options of the "http" provider (a URL, or a list of files).</summary>
    public class HttpExportOptions : ExportOptions
    {
        /// <summary>Several files in one export (a VM's disks); then the source is empty.</summary>
        public IList<HttpFile> Files { get; set; }
        public string FileName { get; set; }
        public string Sha256 { get; set; }
        public string Md5 { get; set; }
        /// <summary>Hex CRC32C (Castagnoli) of the whole file.</summary>
        public string Crc32c { get; set; }
        public long? Size { get; set; }
        /// <summary>Extra request headers (may be credentials: never logged).</summary>
        public IDictionary<string, string> Headers { get; set; }

        public HttpExportOptions(string outputDir) : base(outputDir) { }

        protected override void Add(IDictionary<string, object> d)
        {
            base.Add(d);
            Put(d, "files", Files == null ? null : Files.Select(f => f.ToDictionary()).ToList());
            Put(d, "file_name", FileName);
            Put(d, "sha256", Sha256);
            Put(d, "md5", Md5);
            Put(d, "crc32c", Crc32c);
            Put(d, "size", Size);
            Put(d, "headers", Headers);
        }
    }

    /// <summary>Options of the "aws" provider.</summary>
    public class AwsExportOptions : ExportOptions
    {
        public string S3Bucket { get; set; }
        public string S3Prefix { get; set; }
        /// <summary>vmdk, vhd or raw.</summary>
        public string DiskImageFormat { get; set; }
        /// <summary>vmware (default), citrix or microsoft (instances only).</summary>
        public string TargetEnvironment { get; set; }
        /// <summary>"ova" for an OVA (instances only).</summary>
        public string ContainerFormat { get; set; }
        /// <summary>IAM role for ExportImage (default: AWS's vmimport).</summary>
        public string RoleName { get; set; }
        public bool? DeleteS3ObjectAfterDownload { get; set; }
        public long? PollIntervalMs { get; set; }
        public long? TimeoutSecs { get; set; }
        public string FileName { get; set; }
        /// <summary>Instances: adopt an active export task of the same instance, bucket, prefix and
        /// format (what an export that died left running) instead of converting again (default false).</summary>
        public bool? ReuseExportTask { get; set; }
        /// <summary>"snapshot" (EBS snapshots read through the EBS direct APIs, a sparse raw image per
        /// volume; the default) or "export-task" (EC2's export task: VMDK/VHD/OVA through S3).</summary>
        public string Method { get; set; }
        /// <summary>Snapshot method: keep the snapshots the export made (default false: deleted).</summary>
        public bool? KeepSnapshots { get; set; }
        /// <summary>Snapshot method: most block requests in flight per volume (default 64).</summary>
        public int? MaxBlockRequests { get; set; }
        /// <summary>Snapshot method: keep the snapshots as the base of a later incremental export
        /// (default false).</summary>
        public bool? KeepBase { get; set; }
        /// <summary>Snapshot method: the path of an earlier export's result JSON; only the blocks
        /// changed since its base are fetched, over a copy of its image (a full export, with the
        /// reason in the result, when the base cannot be used).</summary>
        public string IncrementalFrom { get; set; }
        /// <summary>With IncrementalFrom: "image" (default, a complete new image) or "delta"
        /// (only the changes: &lt;file&gt;.delta and its map &lt;file&gt;.delta.json).</summary>
        public string IncrementalOutput { get; set; }

        public AwsExportOptions(string outputDir) : base(outputDir) { }

        protected override void Add(IDictionary<string, object> d)
        {
            base.Add(d);
            Put(d, "s3_bucket", S3Bucket);
            Put(d, "s3_prefix", S3Prefix);
            Put(d, "disk_image_format", DiskImageFormat);
            Put(d, "target_environment", TargetEnvironment);
            Put(d, "container_format", ContainerFormat);
            Put(d, "role_name", RoleName);
            Put(d, "delete_s3_object_after_download", DeleteS3ObjectAfterDownload);
            Put(d, "poll_interval_ms", PollIntervalMs);
            Put(d, "timeout_secs", TimeoutSecs);
            Put(d, "file_name", FileName);
            Put(d, "reuse_export_task", ReuseExportTask);
            Put(d, "method", Method);
            Put(d, "keep_snapshots", KeepSnapshots);
            Put(d, "max_block_requests", MaxBlockRequests);
            Put(d, "keep_base", KeepBase);
            Put(d, "incremental_from", IncrementalFrom);
            Put(d, "incremental_output", IncrementalOutput);
        }
    }

    /// <summary>Options of the "azure" provider.</summary>
    public class AzureExportOptions : ExportOptions
    {
        public string ResourceGroup { get; set; }
        public bool? SnapshotAttached { get; set; }
        public long? AccessDurationSecs { get; set; }
        /// <summary>vhd or vhdx.</summary>
        public string FileFormat { get; set; }
        public long? PollIntervalMs { get; set; }
        public long? TimeoutSecs { get; set; }
        public string FileName { get; set; }
        /// <summary>Get Page Ranges covers this many MiB at a time (library default 16384).</summary>
        public long? PageRangesSegmentMib { get; set; }
        /// <summary>A disk: export an incremental snapshot of it and keep it as the base of a
        /// later incremental export (default false).</summary>
        public bool? KeepBase { get; set; }
        /// <summary>A disk: the path of an earlier export's result JSON; only the pages changed
        /// since its base snapshot are fetched, over a copy of its image (a full export, with the
        /// reason in the result, when the base cannot be used).</summary>
        public string IncrementalFrom { get; set; }
        /// <summary>With IncrementalFrom: "image" (default, a complete new image) or "delta"
        /// (only the changes: &lt;file&gt;.delta and its map &lt;file&gt;.delta.json).</summary>
        public string IncrementalOutput { get; set; }

        public AzureExportOptions(string outputDir) : base(outputDir) { }

        protected override void Add(IDictionary<string, object> d)
        {
            base.Add(d);
            Put(d, "resource_group", ResourceGroup);
            Put(d, "snapshot_attached", SnapshotAttached);
            Put(d, "access_duration_secs", AccessDurationSecs);
            Put(d, "file_format", FileFormat);
            Put(d, "poll_interval_ms", PollIntervalMs);
            Put(d, "timeout_secs", TimeoutSecs);
            Put(d, "file_name", FileName);
            Put(d, "page_ranges_segment_mib", PageRangesSegmentMib);
            Put(d, "keep_base", KeepBase);
            Put(d, "incremental_from", IncrementalFrom);
            Put(d, "incremental_output", IncrementalOutput);
        }
    }

    /// <summary>Options of the "vsphere" provider.</summary>
    public class VsphereExportOptions : ExportOptions
    {
        /// <summary>ovf (default), ova, or raw (each disk as a raw image read from a snapshot's
        /// flat disk; the format KeepBase and IncrementalFrom need).</summary>
        public string Format { get; set; }
        public string Snapshot { get; set; }
        /// <summary>Quiesce the guest (VMware Tools) for the snapshot a running VM is exported
        /// through (default false).</summary>
        public bool? Quiesce { get; set; }
        public int? ParallelDisks { get; set; }
        /// <summary>Base name of the files (default: the VM's name).</summary>
        public string Name { get; set; }
        /// <summary>Longest wait for the export lease to become ready, ms (default 600000).</summary>
        public long? LeaseWaitTimeoutMs { get; set; }
        /// <summary>The .mf manifest: sha256 (default), sha1 (older vSphere and OVF tools) or none.</summary>
        public string Manifest { get; set; }
        /// <summary>Format raw: keep changed block tracking on (turning it on if it is off) and
        /// record each disk's changeId as the base of a later incremental export (default
        /// false).</summary>
        public bool? KeepBase { get; set; }
        /// <summary>Format raw: the path of an earlier export's result JSON; only the areas
        /// changed since its base are read, over a copy of its images (a full export, with the
        /// reason in the result, when the base cannot be used).</summary>
        public string IncrementalFrom { get; set; }

        public VsphereExportOptions(string outputDir) : base(outputDir) { }

        protected override void Add(IDictionary<string, object> d)
        {
            base.Add(d);
            Put(d, "format", Format);
            Put(d, "snapshot", Snapshot);
            Put(d, "quiesce", Quiesce);
            Put(d, "parallel_disks", ParallelDisks);
            Put(d, "name", Name);
            Put(d, "lease_wait_timeout_ms", LeaseWaitTimeoutMs);
            Put(d, "manifest", Manifest);
            Put(d, "keep_base", KeepBase);
            Put(d, "incremental_from", IncrementalFrom);
        }
    }

    /// <summary>Options of the "gcp" provider.</summary>
    public class GcpExportOptions : ExportOptions
    {
        /// <summary>The project and zone of a short source name (default: the client's).</summary>
        public string Project { get; set; }
        public string Zone { get; set; }
        /// <summary>vmdk (default), vhdx, vpc (.vhd) or qcow2.</summary>
        public string Format { get; set; }
        /// <summary>The Cloud Storage bucket and prefix the export goes through (default: the client's).</summary>
        public string Bucket { get; set; }
        public string Prefix { get; set; }
        /// <summary>Delete the exported object once it is downloaded and verified (default false).</summary>
        public bool? DeleteObjectAfterDownload { get; set; }
        /// <summary>Download (resume) an exported object already at the destination instead of
        /// exporting again (default false).</summary>
        public bool? ReuseObject { get; set; }
        /// <summary>Each cloud-side stage (image, build), seconds (default: sized from the disk,
        /// 12 h per TB, at least 7200, at most 86400).</summary>
        public long? TimeoutSecs { get; set; }
        public long? PollIntervalMs { get; set; }
        /// <summary>The one file's name (not with an instance: one file per disk).</summary>
        public string FileName { get; set; }
        /// <summary>Where the exporter's temporary VM runs (default: the network "default").</summary>
        public string Network { get; set; }
        public string Subnet { get; set; }
        /// <summary>The exporter VM's service account (default: Compute Engine's).</summary>
        public string ComputeServiceAccount { get; set; }
        /// <summary>Do not check the project's services and roles first (default false).</summary>
        public bool? SkipPrerequisiteCheck { get; set; }

        public GcpExportOptions(string outputDir) : base(outputDir) { }

        protected override void Add(IDictionary<string, object> d)
        {
            base.Add(d);
            Put(d, "project", Project);
            Put(d, "zone", Zone);
            Put(d, "format", Format);
            Put(d, "bucket", Bucket);
            Put(d, "prefix", Prefix);
            Put(d, "delete_object_after_download", DeleteObjectAfterDownload);
            Put(d, "reuse_object", ReuseObject);
            Put(d, "timeout_secs", TimeoutSecs);
            Put(d, "poll_interval_ms", PollIntervalMs);
            Put(d, "file_name", FileName);
            Put(d, "network", Network);
            Put(d, "subnet", Subnet);
            Put(d, "compute_service_account", ComputeServiceAccount);
            Put(d, "skip_prerequisite_check", SkipPrerequisiteCheck);
        }
    }

    /// <summary>Options of the "hyperv" provider.</summary>
    public class HyperVExportOptions : ExportOptions
    {
        /// <summary>full (default: Export-VM's layout) or vhd-only (the disks alone).</summary>
        public string ExportType { get; set; }
        public bool? IncludeSnapshots { get; set; }
        /// <summary>Remote hosts: the output folder as the Hyper-V host sees it.</summary>
        public string HostOutputDir { get; set; }
        /// <summary>full: the folder's name in the output folder (default: the VM's name).</summary>
        public string FolderName { get; set; }
        /// <summary>Test-VHD on every exported disk (default true).</summary>
        public bool? Verify { get; set; }
        public long? TimeoutSecs { get; set; }
        /// <summary>With IncludeSnapshots: Export-VM's -CaptureLiveState (CaptureSavedState,
        /// CaptureCrashConsistentState or CaptureDataConsistentState).</summary>
        public string CaptureLiveState { get; set; }

        public HyperVExportOptions(string outputDir) : base(outputDir) { }

        protected override void Add(IDictionary<string, object> d)
        {
            base.Add(d);
            Put(d, "export_type", ExportType);
            Put(d, "include_snapshots", IncludeSnapshots);
            Put(d, "host_output_dir", HostOutputDir);
            Put(d, "folder_name", FolderName);
            Put(d, "verify", Verify);
            Put(d, "timeout_secs", TimeoutSecs);
            Put(d, "capture_live_state", CaptureLiveState);
        }
    }
}
