// One export: its handle, and the per-export state the native callback reaches through a
// GCHandle passed as user_data (freed in the terminal call, which always comes exactly once).
using System;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;

namespace HyperSdk
{
    /// <summary>A running or ended export. Dispose it when done (disposing a running export
    /// cancels it; its cleanup still runs).</summary>
    public sealed class Export : IDisposable
    {
        private readonly ExportHandle handle;
        private readonly ExportState state;

        internal Export(ExportHandle handle, ExportState state)
        {
            this.handle = handle;
            this.state = state;
        }

        /// <summary>Completes (never faults) once the export has ended and its last progress
        /// reading has been delivered to the IProgress handler; then <see cref="GetResult"/>
        /// answers.</summary>
        public Task Completion { get { return state.Terminal; } }

        /// <summary>The latest progress, read now (pull).</summary>
        public ExportProgress Progress
        {
            get
            {
                NativeProgress p;
                var st = Native.hs_export_progress(handle, out p);
                if (st != 0) throw HyperSdkException.Create((Status)st, Phase.Queued, "hs_export_progress: " + Native.StatusName(st));
                return ExportProgress.From(ref p);
            }
        }

        /// <summary>Asks the export to stop; returns at once. Cleanup runs, then the export ends
        /// as cancelled (unless it had already ended).</summary>
        public void Cancel()
        {
            if (!handle.IsClosed) Native.hs_export_cancel(handle);
        }

        /// <summary>Changes the priority of an export still waiting for a slot (higher goes first;
        /// among equals, the earlier start). True if it changed; false once the export runs, has
        /// ended or was cancelled (nothing changes then).</summary>
        public bool SetPriority(int priority)
        {
            if (handle.IsClosed) return false;
            return Native.hs_export_set_priority(handle, priority) == 0;
        }

        /// <summary>Waits for the end, at most <paramref name="timeout"/>; true if it ended.
        /// Does not throw for a failed export: see <see cref="GetResult"/>.</summary>
        public bool Wait(TimeSpan timeout)
        {
            IntPtr err;
            var st = Native.hs_export_wait(handle, (long)timeout.TotalMilliseconds, out err);
            if (err != IntPtr.Zero) Native.hs_error_free(err);
            if (st == (int)Status.Pending) return false;
            if (st == (int)Status.InvalidState)
                throw new InvalidOperationException("Wait on an export from inside its own progress handler");
            return true;
        }

        /// <summary>The result of the ended export; throws the export's error when it failed
        /// (HyperSdkException with Status Cancelled when it was cancelled), and
        /// InvalidOperationException while it still runs.</summary>
        public ExportResult GetResult()
        {
            IntPtr err;
            // Once Completion is done, the library's terminal call is returning: wait for it.
            var st = Native.hs_export_wait(handle, state.Terminal.IsCompleted ? -1 : 0, out err);
            if (st == (int)Status.Pending)
            {
                if (err != IntPtr.Zero) Native.hs_error_free(err);
                throw new InvalidOperationException("the export is still running");
            }
            if (st != 0) throw Native.TakeError(st, err, "export");
            IntPtr json;
            st = Native.hs_export_result_json(handle, out json, out err);
            if (st != 0) throw Native.TakeError(st, err, "hs_export_result_json");
            try
            {
                return ExportResult.Parse(Native.FromUtf8(json));
            }
            finally
            {
                Native.hs_string_free(json);
            }
        }

        /// <summary>The result JSON of the ended export, whatever its outcome (failed and
        /// cancelled exports have one too); null while it runs.</summary>
        public string ResultJson
        {
            get
            {
                IntPtr json, err;
                var st = Native.hs_export_result_json(handle, out json, out err);
                if (err != IntPtr.Zero) Native.hs_error_free(err);
                if (st != 0) return null;
                try { return Native.FromUtf8(json); }
                finally { Native.hs_string_free(json); }
            }
        }

        public void Dispose()
        {
            handle.Dispose();
        }
    }

    /// <summary>What the native callback needs of one export.</summary>
    internal sealed class ExportState
    {
        // One delegate for every export, rooted for the life of the process: the library may call
        // it until each export's terminal call.
        internal static readonly NativeProgressCallback Callback = OnNative;
        private static int live;

        private readonly IProgress<ExportProgress> progress;
        private readonly SynchronizationContext context;
        private readonly TaskCompletionSource<bool> terminal =
            new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly object gate = new object();
        private ExportProgress latest;
        private bool delivering;
        private GCHandle pin;

        /// <summary>Exports whose state is still pinned for the library (not yet ended).</summary>
        internal static int Live { get { return Volatile.Read(ref live); } }

        internal Task Terminal { get { return terminal.Task; } }

        internal ExportState(IProgress<ExportProgress> progress, SynchronizationContext context)
        {
            this.progress = progress;
            this.context = context;
        }

        internal IntPtr Pin()
        {
            pin = GCHandle.Alloc(this);
            Interlocked.Increment(ref live);
            return GCHandle.ToIntPtr(pin);
        }

        internal void Unpin()
        {
            if (pin.IsAllocated)
            {
                pin.Free();
                Interlocked.Decrement(ref live);
            }
        }

        private static void OnNative(IntPtr userData, IntPtr p)
        {
            // Runs on a library thread: copy, hand over, return. Never throw into native code,
            // and whatever fails, the terminal call unpins and completes (in finally).
            ExportState state = null;
            var terminalCall = false;
            var handedOver = false;
            try
            {
                state = (ExportState)GCHandle.FromIntPtr(userData).Target;
                var np = (NativeProgress)Marshal.PtrToStructure(p, typeof(NativeProgress));
                terminalCall = ((Phase)np.Phase).IsTerminal();
                var reading = ExportProgress.From(ref np);
                handedOver = state.Offer(reading);
            }
            catch (Exception e)
            {
                System.Diagnostics.Debug.WriteLine("HyperSdk progress callback: " + e);
            }
            finally
            {
                if (state != null && terminalCall)
                {
                    // The library never touches user_data after this call.
                    state.Unpin();
                    // No delivery loop will see the terminal reading (no handler, or handing it
                    // over failed): complete here.
                    if (!handedOver) state.terminal.TrySetResult(true);
                }
            }
        }

        /// <summary>Keeps the newest reading and makes sure one delivery loop runs: a slow
        /// handler skips readings in between, and the last one is always delivered. False when
        /// no loop will deliver it (no handler, or the context refused the hand-over).</summary>
        private bool Offer(ExportProgress reading)
        {
            if (progress == null) return false;
            lock (gate)
            {
                latest = reading;
                if (delivering) return true;
                delivering = true;
            }
            try
            {
                if (context != null) context.Post(_ => Deliver(), null);
                else ThreadPool.QueueUserWorkItem(_ => Deliver());
                return true;
            }
            catch (Exception e)
            {
                // The context refused (a UI context already shut down): no loop runs, so the
                // next reading must start one.
                lock (gate)
                {
                    delivering = false;
                    latest = null;
                }
                System.Diagnostics.Debug.WriteLine("HyperSdk could not hand over progress: " + e);
                return false;
            }
        }

        private void Deliver()
        {
            while (true)
            {
                ExportProgress next;
                lock (gate)
                {
                    next = latest;
                    latest = null;
                    if (next == null)
                    {
                        delivering = false;
                        return;
                    }
                }
                try
                {
                    progress.Report(next);
                }
                catch (Exception e)
                {
                    System.Diagnostics.Debug.WriteLine("HyperSdk progress handler threw: " + e);
                }
                if (next.Phase.IsTerminal()) terminal.TrySetResult(true);
            }
        }
    }

    /// <summary>Counters the tests use to find leaks (internal: not part of the API).</summary>
    internal static class Diagnostics
    {
        /// <summary>Exports whose callback state is pinned (started and not yet ended).</summary>
        public static int LiveExports { get { return ExportState.Live; } }
    }
}
