// Typed export options, serialized to the JSON the C ABI takes. Unset (null) values are left out,
// so the library's defaults apply; Extra carries any key not modelled here (and overrides).
using System.Collections.Generic;

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

    /// <summary>Options of the "http" provider (a URL, or a list of files).</summary>
    public class HttpExportOptions : ExportOptions
    {
        public string FileName { get; set; }
        public string Sha256 { get; set; }
        public string Md5 { get; set; }
        public long? Size { get; set; }
        /// <summary>Extra request headers (may be credentials: never logged).</summary>
        public IDictionary<string, string> Headers { get; set; }

        public HttpExportOptions(string outputDir) : base(outputDir) { }

        protected override void Add(IDictionary<string, object> d)
        {
            base.Add(d);
            Put(d, "file_name", FileName);
            Put(d, "sha256", Sha256);
            Put(d, "md5", Md5);
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
        public string TargetEnvironment { get; set; }
        public bool? DeleteS3ObjectAfterDownload { get; set; }
        public long? PollIntervalMs { get; set; }
        public long? TimeoutSecs { get; set; }
        public string FileName { get; set; }

        public AwsExportOptions(string outputDir) : base(outputDir) { }

        protected override void Add(IDictionary<string, object> d)
        {
            base.Add(d);
            Put(d, "s3_bucket", S3Bucket);
            Put(d, "s3_prefix", S3Prefix);
            Put(d, "disk_image_format", DiskImageFormat);
            Put(d, "target_environment", TargetEnvironment);
            Put(d, "delete_s3_object_after_download", DeleteS3ObjectAfterDownload);
            Put(d, "poll_interval_ms", PollIntervalMs);
            Put(d, "timeout_secs", TimeoutSecs);
            Put(d, "file_name", FileName);
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
        }
    }

    /// <summary>Options of the "vsphere" provider.</summary>
    public class VsphereExportOptions : ExportOptions
    {
        /// <summary>ovf (default) or ova.</summary>
        public string Format { get; set; }
        public string Snapshot { get; set; }
        public int? ParallelDisks { get; set; }
        /// <summary>Base name of the files (default: the VM's name).</summary>
        public string Name { get; set; }

        public VsphereExportOptions(string outputDir) : base(outputDir) { }

        protected override void Add(IDictionary<string, object> d)
        {
            base.Add(d);
            Put(d, "format", Format);
            Put(d, "snapshot", Snapshot);
            Put(d, "parallel_disks", ParallelDisks);
            Put(d, "name", Name);
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
        }
    }
}
