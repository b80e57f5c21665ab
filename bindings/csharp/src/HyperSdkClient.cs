// The client (one provider, one login) and the process-wide calls.
using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace HyperSdk
{
    /// <summary>A configured provider ("http", "aws", "azure", "vsphere", …: the names are in
    /// <see cref="ProviderInfo"/>). Safe to use from several threads; exports started from it
    /// keep running after it is disposed.</summary>
    public sealed class HyperSdkClient : IDisposable
    {
        private readonly ClientHandle handle;

        /// <summary>The library's version, e.g. "0.1.0".</summary>
        public static string Version { get { return Native.FromUtf8(Native.hs_version()); } }

        public string Provider { get; private set; }

        /// <param name="provider">"http", "aws", "azure", "vsphere", … (<see cref="ProviderInfo"/>)</param>
        /// <param name="configJson">The provider's config as JSON (null for defaults). Unknown
        /// keys are errors naming the key. Secrets in it never appear in errors or logs.</param>
        public HyperSdkClient(string provider, string configJson = null)
        {
            if (provider == null) throw new ArgumentNullException("provider");
            IntPtr err;
            var st = Native.hs_client_new(Native.Utf8(provider), Native.Utf8(configJson), out handle, out err);
            if (st != 0) throw Native.TakeError(st, err, "hs_client_new");
            Provider = provider;
        }

        /// <summary>Process-wide limits, e.g. {"max_concurrent_exports": 4}.</summary>
        public static void Configure(string settingsJson)
        {
            IntPtr err;
            var st = Native.hs_global_configure(Native.Utf8(settingsJson), out err);
            if (st != 0) throw Native.TakeError(st, err, "hs_global_configure");
        }

        /// <summary>What every known provider accepts: the common options (type, default) and,
        /// per provider, its source forms, config keys and option keys (hs_provider_info). No
        /// client needed; the answer is the loaded library's.</summary>
        public static ProviderSchema ProviderInfo()
        {
            IntPtr json, err;
            var st = Native.hs_provider_info(out json, out err);
            if (st != 0) throw Native.TakeError(st, err, "hs_provider_info");
            string text;
            try { text = Native.FromUtf8(json); }
            finally { Native.hs_string_free(json); }
            return ProviderSchema.Parse(text);
        }

        /// <summary>Starts an export and returns at once. <paramref name="progress"/> (may be null)
        /// gets readings on the SynchronizationContext current here, or on the thread pool; never
        /// on a library thread. A slow handler misses intermediate readings, never the last.</summary>
        public Export StartExport(string source, ExportOptions options, IProgress<ExportProgress> progress = null)
        {
            if (options == null) throw new ArgumentNullException("options");
            return StartExport(source, options.ToJson(), progress);
        }

        /// <summary>What this provider can export (instances, images, disks, snapshots, VMs,
        /// objects). <paramref name="filterJson"/>: null, or a JSON object with kind,
        /// name_contains and the provider's own keys. Blocks until the cloud answers.</summary>
        public IReadOnlyList<SourceInfo> ListSources(string filterJson = null)
        {
            ThrowIfDisposed();
            IntPtr json, err;
            var st = Native.hs_client_list_sources(handle, filterJson == null ? null : Native.Utf8(filterJson), out json, out err);
            if (st != 0) throw Native.TakeError(st, err, "hs_client_list_sources");
            string text;
            try { text = Native.FromUtf8(json); }
            finally { Native.hs_string_free(json); }
            var list = new List<SourceInfo>();
            foreach (var o in (IList<object>)Json.Parse(text))
            {
                var d = (IDictionary<string, object>)o;
                object size;
                list.Add(new SourceInfo
                {
                    Id = Json.Str(d, "id"),
                    Kind = Json.Str(d, "kind"),
                    Name = Json.Str(d, "name"),
                    SizeBytes = d.TryGetValue("size_bytes", out size) && size != null ? (long?)Json.Long(d, "size_bytes") : null,
                    State = Json.Str(d, "state"),
                });
            }
            return list;
        }

        /// <summary>Like the typed overload, with the options as raw JSON.</summary>
        public Export StartExport(string source, string optionsJson, IProgress<ExportProgress> progress = null)
        {
            ThrowIfDisposed();
            var state = new ExportState(progress, SynchronizationContext.Current);
            var userData = state.Pin();
            ExportHandle export;
            IntPtr err;
            int st;
            try
            {
                st = Native.hs_export_start(handle, Native.Utf8(source), Native.Utf8(optionsJson),
                    ExportState.Callback, userData, out export, out err);
            }
            catch
            {
                state.Unpin();
                throw;
            }
            if (st != 0)
            {
                // No callback ever comes for an export that did not start.
                state.Unpin();
                throw Native.TakeError(st, err, "hs_export_start");
            }
            return new Export(export, state);
        }

        /// <summary>Runs an export to its end. The token cancels it (cloud cleanup runs first);
        /// then the task ends in OperationCanceledException. Failures are HyperSdkException
        /// (NotFoundException, AuthException, VerificationException, …).</summary>
        public async Task<ExportResult> ExportAsync(string source, ExportOptions options,
            IProgress<ExportProgress> progress = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            if (options == null) throw new ArgumentNullException("options");
            return await ExportAsync(source, options.ToJson(), progress, cancellationToken).ConfigureAwait(false);
        }

        /// <summary>Like the typed overload, with the options as raw JSON.</summary>
        public async Task<ExportResult> ExportAsync(string source, string optionsJson,
            IProgress<ExportProgress> progress = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            cancellationToken.ThrowIfCancellationRequested();
            using (var export = StartExport(source, optionsJson, progress))
            using (cancellationToken.Register(export.Cancel))
            {
                await export.Completion.ConfigureAwait(false);
                try
                {
                    return export.GetResult();
                }
                catch (HyperSdkException e) when (e.Status == Status.Cancelled)
                {
                    throw new OperationCanceledException(e.Message, e, cancellationToken);
                }
            }
        }

        private void ThrowIfDisposed()
        {
            if (handle.IsClosed) throw new ObjectDisposedException("HyperSdkClient");
        }

        public void Dispose()
        {
            handle.Dispose();
        }
    }
}
