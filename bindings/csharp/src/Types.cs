// Status and phase (values as in include/hypersdk.h; a test checks them against the header),
// progress snapshots, results and errors.
using System;
using System.Collections.Generic;

namespace HyperSdk
{
    /// <summary>Result of a library call (hs_status). Values are stable.</summary>
    public enum Status
    {
        Ok = 0,
        InvalidArgument = 1,
        NotFound = 2,
        Auth = 3,
        AlreadyExists = 4,
        Io = 5,
        Network = 6,
        Verification = 7,
        Cancelled = 8,
        Timeout = 9,
        Unsupported = 10,
        Remote = 11,
        InvalidState = 12,
        Pending = 13,
        Panic = 98,
        Internal = 99,
    }

    /// <summary>Phase of an export (hs_phase). Done, Failed and Cancelled are terminal.</summary>
    public enum Phase
    {
        Queued = 0,
        Preparing = 1,
        WaitingForCloud = 2,
        Downloading = 3,
        Verifying = 4,
        Finalizing = 5,
        Done = 6,
        Failed = 7,
        Cancelled = 8,
    }

    public static class PhaseExtensions
    {
        public static bool IsTerminal(this Phase p)
        {
            return p == Phase.Done || p == Phase.Failed || p == Phase.Cancelled;
        }
    }

    /// <summary>One progress reading of an export.</summary>
    public sealed class ExportProgress
    {
        public Phase Phase { get; private set; }
        /// <summary>1-based index of the current file; 0 before the first starts.</summary>
        public int FileIndex { get; private set; }
        public int FileCount { get; private set; }
        /// <summary>Bytes of the whole export in place (kept bytes of an earlier run included).</summary>
        public long BytesDone { get; private set; }
        /// <summary>Best known total; 0 while unknown; never below BytesDone.</summary>
        public long BytesTotal { get; private set; }
        public long FileBytesDone { get; private set; }
        public long FileBytesTotal { get; private set; }
        public double RateBytesPerSecond { get; private set; }
        /// <summary>Seconds left at the current rate; null when unknown.</summary>
        public double? EtaSeconds { get; private set; }
        public string FileName { get; private set; }
        /// <summary>What the cloud says (a task's status, a grant being made); may be empty.</summary>
        public string Message { get; private set; }

        internal static ExportProgress From(ref NativeProgress p)
        {
            return new ExportProgress
            {
                Phase = (Phase)p.Phase,
                FileIndex = (int)p.FileIndex,
                FileCount = (int)p.FileCount,
                BytesDone = (long)p.BytesDone,
                BytesTotal = (long)p.BytesTotal,
                FileBytesDone = (long)p.FileBytesDone,
                FileBytesTotal = (long)p.FileBytesTotal,
                RateBytesPerSecond = p.RateBytesPerSec,
                EtaSeconds = p.EtaSeconds < 0 ? (double?)null : p.EtaSeconds,
                FileName = Native.FromUtf8(p.FileName),
                Message = Native.FromUtf8(p.Message),
            };
        }

        public override string ToString()
        {
            return string.Format("{0} file {1}/{2} {3}/{4} bytes {5}", Phase, FileIndex, FileCount, BytesDone, BytesTotal, Message);
        }
    }

    /// <summary>One file of a finished export.</summary>
    public sealed class ExportedFile
    {
        public string Name { get; internal set; }
        public string Path { get; internal set; }
        public long Size { get; internal set; }
        /// <summary>The verified checksum as "algorithm:hex", or null.</summary>
        public string Checksum { get; internal set; }
        public long FetchedBytes { get; internal set; }
        public long ResumedBytes { get; internal set; }
        public int Retries { get; internal set; }
    }

    /// <summary>The result of an ended export (hs_export_result_json), parsed.</summary>
    public sealed class ExportResult
    {
        /// <summary>"done", "failed" or "cancelled".</summary>
        public string Status { get; internal set; }
        public IList<ExportedFile> Files { get; internal set; }
        public long BytesTotal { get; internal set; }
        public long BytesFetched { get; internal set; }
        public long BytesResumed { get; internal set; }
        public long ElapsedMs { get; internal set; }
        /// <summary>Cloud cleanup that failed (revoke, delete), or null.</summary>
        public string CleanupError { get; internal set; }
        /// <summary>The whole result as parsed JSON (provider fields included).</summary>
        public IDictionary<string, object> Json { get; internal set; }
        /// <summary>The result JSON as the library wrote it.</summary>
        public string RawJson { get; internal set; }

        internal static ExportResult Parse(string json)
        {
            var d = (IDictionary<string, object>)HyperSdk.Json.Parse(json);
            var r = new ExportResult
            {
                Status = HyperSdk.Json.Str(d, "status"),
                BytesTotal = HyperSdk.Json.Long(d, "bytes_total"),
                BytesFetched = HyperSdk.Json.Long(d, "bytes_fetched"),
                BytesResumed = HyperSdk.Json.Long(d, "bytes_resumed"),
                ElapsedMs = HyperSdk.Json.Long(d, "elapsed_ms"),
                CleanupError = HyperSdk.Json.Str(d, "cleanup_error"),
                Json = d,
                RawJson = json,
                Files = new List<ExportedFile>(),
            };
            object files;
            if (d.TryGetValue("files", out files) && files is IList<object>)
            {
                foreach (var o in (IList<object>)files)
                {
                    var f = (IDictionary<string, object>)o;
                    string sum = null;
                    object c;
                    if (f.TryGetValue("checksum", out c) && c is IDictionary<string, object>)
                    {
                        var cd = (IDictionary<string, object>)c;
                        sum = HyperSdk.Json.Str(cd, "algorithm") + ":" + HyperSdk.Json.Str(cd, "value");
                    }
                    r.Files.Add(new ExportedFile
                    {
                        Name = HyperSdk.Json.Str(f, "name"),
                        Path = HyperSdk.Json.Str(f, "path"),
                        Size = HyperSdk.Json.Long(f, "size"),
                        Checksum = sum,
                        FetchedBytes = HyperSdk.Json.Long(f, "fetched_bytes"),
                        ResumedBytes = HyperSdk.Json.Long(f, "resumed_bytes"),
                        Retries = (int)HyperSdk.Json.Long(f, "retries"),
                    });
                }
            }
            return r;
        }
    }

    /// <summary>An error of the library: its status, the phase it happened in, its message
    /// (never a credential).</summary>
    public class HyperSdkException : Exception
    {
        public Status Status { get; private set; }
        public Phase Phase { get; private set; }

        public HyperSdkException(Status status, Phase phase, string message) : base(message)
        {
            Status = status;
            Phase = phase;
        }

        internal static HyperSdkException Create(Status status, Phase phase, string message)
        {
            switch (status)
            {
                case Status.NotFound: return new NotFoundException(phase, message);
                case Status.Auth: return new AuthException(phase, message);
                case Status.Verification: return new VerificationException(phase, message);
                case Status.InvalidArgument: return new InvalidOptionException(phase, message);
                default: return new HyperSdkException(status, phase, message);
            }
        }
    }

    /// <summary>The source (VM, disk, object, URL) does not exist.</summary>
    public sealed class NotFoundException : HyperSdkException
    {
        public NotFoundException(Phase phase, string message) : base(Status.NotFound, phase, message) { }
    }

    /// <summary>Credentials were refused.</summary>
    public sealed class AuthException : HyperSdkException
    {
        public AuthException(Phase phase, string message) : base(Status.Auth, phase, message) { }
    }

    /// <summary>Size or checksum did not match; nothing was renamed into place.</summary>
    public sealed class VerificationException : HyperSdkException
    {
        public VerificationException(Phase phase, string message) : base(Status.Verification, phase, message) { }
    }

    /// <summary>A bad option, config or argument; the message names it.</summary>
    public sealed class InvalidOptionException : HyperSdkException
    {
        public InvalidOptionException(Phase phase, string message) : base(Status.InvalidArgument, phase, message) { }
    }

    /// <summary>One thing a provider can export (<see cref="HyperSdkClient.ListSources"/>).</summary>
    public sealed class SourceInfo
    {
        /// <summary>What to give StartExport as the source.</summary>
        public string Id { get; internal set; }
        /// <summary>instance, image, disk, snapshot, vm or object.</summary>
        public string Kind { get; internal set; }
        public string Name { get; internal set; }
        public long? SizeBytes { get; internal set; }
        public string State { get; internal set; }
    }

    /// <summary>An <see cref="IProgress{T}"/> that runs its action at once, where the export
    /// delivers: on the SynchronizationContext current at the start, or on one pool thread at a
    /// time, in order, the terminal reading last. <c>System.Progress&lt;T&gt;</c> posts each
    /// reading again instead (to the thread pool when there is no context, as in a console
    /// program), where two can run at once and a line can come out of order.</summary>
    public sealed class ProgressHandler : IProgress<ExportProgress>
    {
        private readonly Action<ExportProgress> action;

        /// <summary><paramref name="action"/> gets every reading handed over.</summary>
        public ProgressHandler(Action<ExportProgress> action)
        {
            if (action == null) throw new ArgumentNullException("action");
            this.action = action;
        }

        /// <summary>Runs the action on the calling thread.</summary>
        public void Report(ExportProgress value) { action(value); }
    }
}
