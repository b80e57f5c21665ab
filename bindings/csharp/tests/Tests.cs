// Tests of the C# binding against the real library (Mono here). Peers: the project's HTTP test
// server (examples/serve), vcsim (tests/peers/vcsim, HS_VCSIM_PEER) and moto (tests/peers/moto,
// HS_MOTO_PYTHON). The last line of output is "N passed, N failed".
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Net;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using System.Threading;
using System.Threading.Tasks;
using HyperSdk;

[AttributeUsage(AttributeTargets.Method)]
sealed class TestAttribute : Attribute { }

static class Check
{
    public static void That(bool ok, string what)
    {
        if (!ok) throw new Exception("check failed: " + what);
    }

    public static T Throws<T>(Action a, string what) where T : Exception
    {
        try
        {
            a();
        }
        catch (T e)
        {
            return e;
        }
        catch (AggregateException ae) when (ae.InnerException is T)
        {
            return (T)ae.InnerException;
        }
        catch (Exception e)
        {
            throw new Exception(what + ": expected " + typeof(T).Name + ", got " + e.GetType().Name + ": " + e.Message);
        }
        throw new Exception(what + ": expected " + typeof(T).Name + ", nothing was thrown");
    }
}

/// <summary>Records progress as an IProgress handler sees it and checks the contract.</summary>
sealed class Recorder : IProgress<ExportProgress>
{
    public readonly List<ExportProgress> Seen = new List<ExportProgress>();
    public readonly List<string> Violations = new List<string>();
    int inCall;

    public void Report(ExportProgress p)
    {
        if (Interlocked.Exchange(ref inCall, 1) == 1) lock (Violations) Violations.Add("two calls at once");
        lock (Seen)
        {
            if (Seen.Count > 0)
            {
                var last = Seen[Seen.Count - 1];
                if (last.Phase.IsTerminal()) Violations.Add("a call after the terminal one");
                if (p.BytesDone < last.BytesDone) Violations.Add("bytes went back");
            }
            Seen.Add(p);
        }
        Interlocked.Exchange(ref inCall, 0);
    }

    public void CheckContract()
    {
        Check.That(Violations.Count == 0, string.Join("; ", Violations));
        Check.That(Seen.Count > 0, "no progress at all");
        Check.That(Seen.Count(p => p.Phase.IsTerminal()) == 1, "exactly one terminal reading");
        Check.That(Seen[Seen.Count - 1].Phase.IsTerminal(), "the terminal reading is the last");
    }
}

static class Peers
{
    public static string Root = FindRoot();
    public static string Target = Environment.GetEnvironmentVariable("CARGO_TARGET_DIR") ??
        Path.Combine(Environment.GetEnvironmentVariable("HOME"), ".cache/hypersdk-target");

    static string FindRoot()
    {
        var d = Environment.GetEnvironmentVariable("HS_REPO_ROOT") ?? Environment.CurrentDirectory;
        while (!string.IsNullOrEmpty(d) && !File.Exists(Path.Combine(d, "include/hypersdk.h"))) d = Path.GetDirectoryName(d);
        if (string.IsNullOrEmpty(d)) throw new Exception("run from the repository (include/hypersdk.h not found)");
        return d;
    }

    /// <summary>Starts a program and reads its first stdout line.</summary>
    public static Process Start(string exe, string args, out string firstLine)
    {
        var psi = new ProcessStartInfo(exe, args)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardInput = true,
            RedirectStandardError = true,
        };
        var p = Process.Start(psi);
        // Peers' logs are not the tests' output; drained so a full pipe never blocks them.
        p.ErrorDataReceived += (s, e) => { };
        p.BeginErrorReadLine();
        firstLine = p.StandardOutput.ReadLine();
        lock (Started) Started.Add(p);
        return p;
    }

    public static readonly List<Process> Started = new List<Process>();

    /// <summary>examples/serve: `count` files of `size` bytes (/file0.bin …), optionally paced.</summary>
    public static string Serve(int count, long size, long pace = 0)
    {
        string line;
        Start(Path.Combine(Target, "debug/examples/serve"), count + " " + size + " " + pace, out line);
        Check.That(line != null && line.StartsWith("READY "), "serve said " + line);
        return line.Substring(6);
    }

    public static byte[] Get(string url)
    {
        using (var wc = new WebClient()) return wc.DownloadData(url);
    }

    public static string Temp()
    {
        var d = Path.Combine(Path.GetTempPath(), "hs-cs-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }

    public static string Qemu(string dir, int size, int seed)
    {
        var raw = Path.Combine(dir, "disk.raw");
        var data = new byte[size];
        new Random(seed).NextBytes(data);
        File.WriteAllBytes(raw, data);
        var vmdk = Path.Combine(dir, "disk.vmdk");
        var p = Process.Start(new ProcessStartInfo("qemu-img", "convert -f raw -O vmdk " + raw + " " + vmdk) { UseShellExecute = false });
        p.WaitForExit();
        Check.That(p.ExitCode == 0, "qemu-img");
        return vmdk;
    }
}

static class Tests
{
    static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);

    /// <summary>Every PREFIX_NAME = N of the header is the enum member Name = N, and the enum
    /// has no other member.</summary>
    static void SameAsHeader<T>(string header, string prefix) where T : struct
    {
        var found = Regex.Matches(header, prefix + @"([A-Z_]+) = (\d+)");
        Check.That(found.Count == Enum.GetValues(typeof(T)).Length, "as many " + typeof(T).Name + " values as the header");
        foreach (Match m in found)
        {
            var name = string.Concat(m.Groups[1].Value.Split('_').Select(w => w.Substring(0, 1) + w.Substring(1).ToLowerInvariant()));
            T v;
            Check.That(Enum.TryParse(name, out v), typeof(T).Name + "." + name + " exists");
            Check.That(Convert.ToInt32(v) == int.Parse(m.Groups[2].Value), typeof(T).Name + "." + name + " value");
        }
    }

    [Test]
    static void StatusPhaseAndLayoutMatchTheHeader()
    {
        var h = File.ReadAllText(Path.Combine(Peers.Root, "include/hypersdk.h"));
        SameAsHeader<Status>(h, "HS_STATUS_");
        SameAsHeader<Phase>(h, "HS_PHASE_");
        Check.That(h.Contains("#define HS_FILE_NAME_MAX 256") && h.Contains("#define HS_MESSAGE_MAX 512"), "inline string sizes");
        var t = typeof(HyperSdkClient).Assembly.GetType("HyperSdk.NativeProgress");
        Check.That(Marshal.SizeOf(t) == 832, "hs_progress is 832 bytes, not " + Marshal.SizeOf(t));
        Check.That((int)Marshal.OffsetOf(t, "BytesDone") == 16, "bytes_done at 16");
        Check.That((int)Marshal.OffsetOf(t, "FileName") == 64, "file_name at 64");
        Check.That((int)Marshal.OffsetOf(t, "Message") == 320, "message at 320");
        Check.That(HyperSdkClient.Version.Length > 0, "version");
    }

    /// <summary>A value for each kind of typed option property, so ToJson writes its key.</summary>
    static object Sample(Type t)
    {
        if (t == typeof(string)) return "x";
        if (t == typeof(bool?)) return true;
        if (t == typeof(int?)) return 1;
        if (t == typeof(long?)) return 1L;
        if (t == typeof(IDictionary<string, string>)) return new Dictionary<string, string> { { "X-A", "b" } };
        if (t == typeof(IList<HttpFile>)) return new List<HttpFile> { new HttpFile("http://h/a") { Crc32c = "00000000" } };
        throw new Exception("no sample value for a " + t.Name + " option");
    }

    /// <summary>The keys <paramref name="o"/> writes with every typed property set.</summary>
    static SortedSet<string> KeysWritten(ExportOptions o)
    {
        foreach (var prop in o.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance))
            if (prop.CanWrite && prop.GetSetMethod() != null) prop.SetValue(o, Sample(prop.PropertyType));
        return new SortedSet<string>(((IDictionary<string, object>)Json.Parse(o.ToJson())).Keys);
    }

    [Test]
    static void ProviderInfoMatchesTheTypedOptions()
    {
        var s = HyperSdkClient.ProviderInfo();
        var names = s.Providers.Select(p => p.Name).ToList();
        foreach (var n in new[] { "aws", "azure", "gcp", "http", "hyperv", "vsphere" })
            Check.That(names.Contains(n), "provider " + n + " in " + string.Join(",", names));
        Check.That(s.Find("http").BuiltIn && s.Find("nope") == null, "Find");
        Check.That(s.Find("aws").ConfigKeys.Contains("region") && s.Find("aws").Sources.Count > 0, "aws described");
        var overwrite = s.CommonOptions.Single(o => o.Key == "overwrite");
        Check.That(overwrite.Type == "boolean" && (bool)overwrite.Default == false, "overwrite: boolean, false");
        var parts = s.CommonOptions.Single(o => o.Key == "part_size");
        Check.That(parts.Type == "integer" && (long)parts.Default == 8L << 20, "part_size: integer, 8 MiB");
        // Every common key is a typed property of ExportOptions, and nothing else is.
        var common = new SortedSet<string>(s.CommonOptions.Select(o => o.Key));
        var baseKeys = KeysWritten(new ExportOptions("/tmp"));
        Check.That(baseKeys.SetEquals(common), "ExportOptions writes " + string.Join(",", baseKeys) +
            "; the common options are " + string.Join(",", common));
        // Every provider has {Name}ExportOptions, writing exactly its option keys and the common ones.
        var types = typeof(ExportOptions).Assembly.GetTypes().Where(t => t.IsSubclassOf(typeof(ExportOptions))).ToList();
        foreach (var p in s.Providers)
        {
            var t = types.SingleOrDefault(x => string.Equals(x.Name, p.Name + "ExportOptions", StringComparison.OrdinalIgnoreCase));
            Check.That(t != null, "an options class for provider " + p.Name);
            var keys = KeysWritten((ExportOptions)Activator.CreateInstance(t, "/tmp"));
            var want = new SortedSet<string>(common.Concat(p.OptionKeys));
            Check.That(keys.SetEquals(want), t.Name + ": writes [" + string.Join(",", keys.Except(want)) +
                "] that " + p.Name + " does not take; misses [" + string.Join(",", want.Except(keys)) + "]");
        }
        Check.That(types.Count == s.Providers.Count, "an options class per provider, no more");
    }

    [Test]
    static void JsonAndDiagnosticsAreNotPublic()
    {
        // The binding's JSON helper and its leak counters are internal (this program reads them
        // through InternalsVisibleTo); the public API is the client, exports, options and types.
        var exported = typeof(HyperSdkClient).Assembly.GetExportedTypes().Select(t => t.FullName).ToList();
        foreach (var hidden in new[] { "HyperSdk.Json", "HyperSdk.Diagnostics" })
            Check.That(!exported.Contains(hidden), hidden + " is public");
        Check.That(exported.Contains("HyperSdk.HyperSdkClient") && exported.Contains("HyperSdk.GcpExportOptions"),
            "public types: " + string.Join(",", exported));
    }

    [Test]
    static void HttpExportReportsMonotonicProgressAndOneTerminal()
    {
        var url = Peers.Serve(2, 3 << 20);
        var dir = Peers.Temp();
        var rec = new Recorder();
        using (var c = new HyperSdkClient("http"))
        {
            var opts = new HttpExportOptions(dir) { PartSize = 262144, ProgressIntervalMs = 10, FileName = "one.bin" };
            // Through the binding's ProgressHandler, as the example does: the recorder sees the
            // contract held (one call at a time, in order, the terminal one last).
            var r = c.ExportAsync(url + "/file0.bin", opts, new ProgressHandler(rec.Report)).Result;
            Check.That(r.Status == "done", r.RawJson);
            Check.That(r.Files.Count == 1 && r.Files[0].Size == 3 << 20, r.RawJson);
            var got = File.ReadAllBytes(Path.Combine(dir, "one.bin"));
            Check.That(got.SequenceEqual(Peers.Get(url + "/file0.bin")), "bytes equal the server's");
        }
        rec.CheckContract();
        Check.That(rec.Seen.Last().Phase == Phase.Done, "ends done");
        Check.That(rec.Seen.Any(p => p.Phase == Phase.Downloading), "saw downloading");
    }

    [Test]
    static void CancellationTokenStopsWithinOneSecondAndLeavesNothing()
    {
        var url = Peers.Serve(1, 16 << 20, 256 << 10);
        var dir = Peers.Temp();
        using (var c = new HyperSdkClient("http"))
        using (var cts = new CancellationTokenSource())
        {
            var rec = new Recorder();
            var opts = new HttpExportOptions(dir) { KeepPartial = false, PartSize = 262144 };
            var task = c.ExportAsync(url + "/file0.bin", opts, rec, cts.Token);
            var t0 = DateTime.UtcNow;
            while (!rec.Seen.ToArray().Any(p => p.BytesDone > 0))
            {
                Check.That(DateTime.UtcNow - t0 < Minute, "bytes never arrived");
                Thread.Sleep(10);
            }
            var sw = Stopwatch.StartNew();
            cts.Cancel();
            var e = Check.Throws<OperationCanceledException>(() => task.Wait(), "cancelled ExportAsync");
            Check.That(sw.Elapsed < TimeSpan.FromSeconds(1), "cancel took " + sw.Elapsed);
            Check.That(e.CancellationToken == cts.Token, "the token is the caller's");
            rec.CheckContract();
            Check.That(rec.Seen.Last().Phase == Phase.Cancelled, "ends cancelled");
            Check.That(Directory.GetFiles(dir).Length == 0, "files left: " + string.Join(",", Directory.GetFiles(dir)));
        }
    }

    /// <summary>One slot: a running export's priority does not change; raised while queued, the
    /// later export c is let in before b when the slot frees.</summary>
    [Test]
    static void SetPriorityLetsARaisedQueuedExportInFirst()
    {
        var url = Peers.Serve(1, 8 << 20, 256 << 10);
        var dir = Peers.Temp();
        HyperSdkClient.Configure("{\"max_concurrent_exports\": 1}");
        var started = new List<Export>();
        try
        {
            using (var c = new HyperSdkClient("http"))
            {
                Func<string, Export> start = name =>
                {
                    var e = c.StartExport(url + "/file0.bin", new HttpExportOptions(dir)
                    { FileName = name, PartsInFlight = 1, MaxPartsInFlight = 1 });
                    started.Add(e);
                    return e;
                };
                var a = start("a.raw");
                var t0 = DateTime.UtcNow;
                while (a.Progress.Phase == Phase.Queued)
                {
                    Check.That(DateTime.UtcNow - t0 < Minute, "a never left the queue");
                    Thread.Sleep(5);
                }
                Check.That(!a.SetPriority(5), "a running export is not queued");
                var b = start("b.raw");
                var cc = start("c.raw");
                Check.That(cc.SetPriority(3), "c waits: its priority changes");
                a.Cancel();
                Check.That(a.Wait(Minute), "a ends after its cancel");
                t0 = DateTime.UtcNow;
                while (cc.Progress.Phase == Phase.Queued)
                {
                    Check.That(DateTime.UtcNow - t0 < Minute, "c never left the queue");
                    Thread.Sleep(5);
                }
                Check.That(b.Progress.Phase == Phase.Queued, "b was let in before c: " + b.Progress.Phase);
            }
        }
        finally
        {
            foreach (var e in started) { e.Cancel(); e.Wait(Minute); e.Dispose(); }
            HyperSdkClient.Configure("{}");
        }
    }

    [Test]
    static void TwentyConcurrentExports()
    {
        var url = Peers.Serve(20, 1 << 20);
        var dir = Peers.Temp();
        using (var c = new HyperSdkClient("http"))
        {
            var tasks = Enumerable.Range(0, 20).Select(i =>
                c.ExportAsync(url + "/file" + i + ".bin", new HttpExportOptions(dir) { PartSize = 262144 })).ToArray();
            Check.That(Task.WaitAll(tasks, Minute), "20 exports within a minute");
            foreach (var t in tasks) Check.That(t.Result.Status == "done", t.Result.RawJson);
            Check.That(Directory.GetFiles(dir).Length == 20, "20 files");
        }
    }

    [Test]
    static void BadOptionsNameTheKey()
    {
        var dir = Peers.Temp();
        using (var c = new HyperSdkClient("http"))
        {
            var opts = new HttpExportOptions(dir);
            opts.Extra["bogus_key"] = 1;
            var e = Check.Throws<InvalidOptionException>(() => c.StartExport("http://127.0.0.1:1/x", opts), "bad option");
            Check.That(e.Message.Contains("bogus_key"), e.Message);
            Check.That(e.Status == Status.InvalidArgument, "status");
            var e2 = Check.Throws<InvalidOptionException>(() => c.StartExport("http://127.0.0.1:1/x", "{not json"), "bad JSON");
            Check.That(e2.Message.Length > 0, "message");
        }
        Check.Throws<InvalidOptionException>(() => new HyperSdkClient("http", "{\"nope\": 1}"), "bad config");
        var g = Check.Throws<InvalidOptionException>(() => new HyperSdkClient("gcp", "{\"credentials_json\": \"{oops\"}"), "bad GCP credentials");
        Check.That(g.Message.Contains("not JSON") && !g.Message.Contains("oops"), g.Message);
    }

    [Test]
    static void HyperVOptionsAreTheLibrarysKeys()
    {
        // /bin/true stands for a PowerShell that answers nothing: enough to see the options
        // accepted or refused by the library itself (end-to-end Hyper-V runs in the Rust tests).
        var dir = Peers.Temp();
        using (var c = new HyperSdkClient("hyperv", "{\"powershell_path\": \"/bin/true\"}"))
        {
            var good = new HyperVExportOptions(dir) { ExportType = "vhd-only", Verify = false, TimeoutSecs = 60 };
            using (var x = c.StartExport("web01", good))
            {
                Check.That(x.Wait(Minute), "ended");
                var failed = Check.Throws<HyperSdkException>(() => x.GetResult(), "a PowerShell that names no VM");
                Check.That(failed.Status == Status.Remote && failed.Message.Contains("named no VM"), failed.Message);
            }
            var remoteOnly = new HyperVExportOptions(dir) { HostOutputDir = @"\\nas\exports" };
            var e = Check.Throws<InvalidOptionException>(() => c.StartExport("web01", remoteOnly), "host_output_dir on a local client");
            Check.That(e.Message.Contains("host_output_dir"), e.Message);
        }
        var u = Check.Throws<HyperSdkException>(() => new HyperSdkClient("hyperv", "{\"powershell_path\": \"/nonexistent/pwsh\"}"), "no PowerShell");
        Check.That(u.Status == Status.Unsupported && u.Message.Contains("/nonexistent/pwsh"), u.Message);
    }

    [Test]
    static void DisposeWhileRunningStillEndsAndUnpins()
    {
        var url = Peers.Serve(1, 8 << 20, 512 << 10);
        var fast = Peers.Serve(1, 8 << 20);
        var dir = Peers.Temp();
        var before = Diagnostics.LiveExports;
        var c = new HyperSdkClient("http");
        var rec = new Recorder();
        var e = c.StartExport(url + "/file0.bin", new HttpExportOptions(dir) { KeepPartial = false }, rec);
        // Disposing the client does not stop its exports; disposing the export cancels it.
        var other = c.StartExport(fast + "/file0.bin", new HttpExportOptions(dir) { FileName = "other.bin", MaxBytesPerSecond = 16L << 20 });
        c.Dispose();
        Thread.Sleep(100);
        e.Dispose();
        Check.That(other.Wait(Minute), "the other export ended");
        Check.That(other.GetResult().Status == "done", "the other export finished after its client was disposed");
        other.Dispose();
        var t0 = DateTime.UtcNow;
        while (Diagnostics.LiveExports != before)
        {
            Check.That(DateTime.UtcNow - t0 < Minute, "the disposed export never ended");
            Thread.Sleep(10);
        }
        // Completion waits for the terminal reading to reach the handler.
        Check.That(e.Completion.Wait(Minute), "the disposed export completed");
        Check.That(rec.Seen.Count(p => p.Phase.IsTerminal()) == 1, "one terminal reading after dispose");
        Check.Throws<ObjectDisposedException>(() => c.StartExport("http://x/y", new HttpExportOptions(dir)), "disposed client");
    }

    [Test]
    static void VsphereExportThroughVcsim()
    {
        var peer = Environment.GetEnvironmentVariable("HS_VCSIM_PEER");
        Check.That(!string.IsNullOrEmpty(peer) && File.Exists(peer), "HS_VCSIM_PEER names the built vcsim peer");
        var dir = Peers.Temp();
        var disk = Peers.Qemu(dir, 2 << 20, 42);
        string line;
        Peers.Start(peer, "-dir " + dir + " -disk " + disk, out line);
        var info = (IDictionary<string, object>)Json.Parse(line);
        var config = Json.Serialize(new Dictionary<string, object>
        {
            { "url", info["url"] }, { "username", "admin" }, { "password", "s3cret-pass" }, { "ca_bundle_path", info["ca_file"] },
        });
        var out1 = Peers.Temp();
        using (var c = new HyperSdkClient("vsphere", config))
        {
            var vms = c.ListSources("{\"kind\": \"vm\", \"name_contains\": \"DC0_H0_VM0\"}");
            Check.That(vms.Count == 1 && vms[0].Name == "DC0_H0_VM0" && vms[0].Id.StartsWith("vm-"), "one VM: " + vms.Count);
            var le = Check.Throws<InvalidOptionException>(() => c.ListSources("{\"zone\": \"x\"}"), "unknown filter key");
            Check.That(le.Message.Contains("zone"), le.Message);
            var rec = new Recorder();
            var r = c.ExportAsync("/DC0/vm/DC0_H0_VM0", new VsphereExportOptions(out1) { Format = "ova" }, rec).Result;
            Check.That(r.Status == "done", r.RawJson);
            Check.That(File.Exists(Path.Combine(out1, "DC0_H0_VM0.ova")), "the OVA");
            rec.CheckContract();
            // IProgress may skip intermediate readings (by design); the result names the VM.
            Check.That(r.RawJson.Contains("\"vm\":\"vm-"), r.RawJson);
        }
        var wrong = config.Replace("s3cret-pass", "nope");
        var e = Check.Throws<AuthException>(() => new HyperSdkClient("vsphere", wrong), "wrong password");
        Check.That(!e.Message.Contains("nope"), "the password is not in the error");
    }

    [Test]
    static void HttpListsNothing()
    {
        using (var web = new HyperSdkClient("http"))
        {
            var u = Check.Throws<HyperSdkException>(() => web.ListSources(), "http lists nothing");
            Check.That(u.Status == Status.Unsupported, "status " + u.Status);
        }
    }

    [Test]
    static void AwsInstanceExportThroughMoto()
    {
        var py = Environment.GetEnvironmentVariable("HS_MOTO_PYTHON") ??
            Path.Combine(Environment.GetEnvironmentVariable("HOME"), ".cache/hypersdk-tools/moto-venv/bin/python");
        Check.That(File.Exists(py), "the moto venv (made by the Rust tests) at " + py);
        var dir = Peers.Temp();
        var disk = Peers.Qemu(dir, 1 << 20, 7);
        string line;
        Peers.Start(py, Path.Combine(Peers.Root, "tests/peers/moto/moto_peer.py") + " --fixture " + disk + " --exit-on-stdin-eof", out line);
        var info = (IDictionary<string, object>)Json.Parse(line);
        var config = Json.Serialize(new Dictionary<string, object>
        {
            { "region", "us-east-1" }, { "endpoint_url", info["endpoint"] },
            { "access_key_id", info["access_key_id"] }, { "secret_access_key", info["secret_access_key"] },
        });
        var out1 = Peers.Temp();
        using (var c = new HyperSdkClient("aws", config))
        {
            var opts = new AwsExportOptions(out1) { S3Bucket = "exports", S3Prefix = "cs/", PollIntervalMs = 100 };
            var r = c.ExportAsync((string)info["instance_id"], opts).Result;
            Check.That(r.Status == "done", r.RawJson);
            Check.That(File.ReadAllBytes(r.Files[0].Path).SequenceEqual(File.ReadAllBytes(disk)), "the exported disk is the fixture");
            Check.That(((string)r.Json["task_id"]).StartsWith("export-i-"), r.RawJson);
            var e = Check.Throws<NotFoundException>(() => c.ExportAsync("i-0000000000000dead", opts).Wait(), "unknown instance");
            Check.That(e.Status == Status.NotFound, "status");
        }
    }

    [Test]
    static void AThousandExportsLeaveNoPinnedState()
    {
        var url = Peers.Serve(1, 4096);
        var dir = Peers.Temp();
        var before = Diagnostics.LiveExports;
        using (var c = new HyperSdkClient("http"))
        {
            for (var batch = 0; batch < 20; batch++)
            {
                var tasks = Enumerable.Range(0, 50).Select(i =>
                {
                    var n = batch * 50 + i;
                    var rec = n % 2 == 0 ? new Recorder() : null;
                    return c.ExportAsync(url + "/file0.bin", new HttpExportOptions(dir) { FileName = "f" + n + ".bin" }, rec);
                }).ToArray();
                Check.That(Task.WaitAll(tasks, Minute), "a batch of 50 within a minute");
                foreach (var t in tasks) Check.That(t.Result.Status == "done", t.Result.RawJson);
            }
        }
        Check.That(Diagnostics.LiveExports == before, "pinned export states left: " + (Diagnostics.LiveExports - before));
        Check.That(Directory.GetFiles(dir).Length == 1000, "1000 files");
        GC.Collect();
        GC.WaitForPendingFinalizers();
    }

    /// <summary>A handler that throws on the terminal reading.</summary>
    sealed class ThrowsAtTheEnd : IProgress<ExportProgress>
    {
        public int Terminal;

        public void Report(ExportProgress p)
        {
            if (p.Phase.IsTerminal())
            {
                Interlocked.Increment(ref Terminal);
                throw new InvalidOperationException("the handler fails on the last reading");
            }
        }
    }

    /// <summary>A context that refuses every hand-over, as a UI context that was shut down does.</summary>
    sealed class ClosedContext : SynchronizationContext
    {
        public int Refused;

        public override void Post(SendOrPostCallback d, object state)
        {
            Interlocked.Increment(ref Refused);
            throw new InvalidOperationException("the context is closed");
        }
    }

    static Export StartIn(HyperSdkClient c, SynchronizationContext ctx, string url, string dir, string name, IProgress<ExportProgress> p)
    {
        var before = SynchronizationContext.Current;
        SynchronizationContext.SetSynchronizationContext(ctx);
        try
        {
            return c.StartExport(url, new HttpExportOptions(dir) { FileName = name }.ToJson(), p);
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(before);
        }
    }

    [Test]
    static void AThrowingHandlerOrARefusedHandOverStillCompletesAndUnpins()
    {
        var url = Peers.Serve(1, 1 << 20);
        var dir = Peers.Temp();
        var before = Diagnostics.LiveExports;
        using (var c = new HyperSdkClient("http"))
        {
            // The handler throws on the terminal reading: the task still completes.
            var thrower = new ThrowsAtTheEnd();
            var r = c.ExportAsync(url + "/file0.bin", new HttpExportOptions(dir) { FileName = "a.bin" }, thrower);
            Check.That(r.Wait(Minute), "ExportAsync completed after its handler threw");
            Check.That(r.Result.Status == "done" && thrower.Terminal == 1, r.Result.RawJson);

            // The captured context refuses the hand-over (also of the terminal reading):
            // Completion still completes and the export's state is unpinned.
            var closed = new ClosedContext();
            using (var e = StartIn(c, closed, url + "/file0.bin", dir, "b.bin", new ThrowsAtTheEnd()))
            {
                Check.That(e.Completion.Wait(Minute), "Completion never completed (" + closed.Refused + " refused hand-overs)");
                Check.That(closed.Refused > 0, "the context was asked");
                Check.That(e.GetResult().Status == "done", e.ResultJson);
            }
        }
        Check.That(Diagnostics.LiveExports == before, "pinned export states left: " + (Diagnostics.LiveExports - before));
    }

    static int Main(string[] args)
    {
        var tests = typeof(Tests).GetMethods(BindingFlags.Static | BindingFlags.NonPublic)
            .Where(m => m.GetCustomAttributes(typeof(TestAttribute), false).Length > 0)
            .Where(m => args.Length == 0 || args.Any(a => m.Name.Contains(a)))
            .ToList();
        int passed = 0, failed = 0;
        foreach (var t in tests)
        {
            var sw = Stopwatch.StartNew();
            try
            {
                t.Invoke(null, null);
                passed++;
                Console.WriteLine("ok   {0} ({1} ms)", t.Name, sw.ElapsedMilliseconds);
            }
            catch (TargetInvocationException e)
            {
                failed++;
                Console.WriteLine("FAIL {0}: {1}", t.Name, e.InnerException);
            }
        }
        foreach (var p in Peers.Started)
        {
            try { p.Kill(); } catch (Exception) { }
        }
        Console.WriteLine("{0} passed, {1} failed", passed, failed);
        Console.Out.Flush();
        // Main returns: the process must now end by itself (run.sh fails when it does not).
        return failed == 0 ? 0 : 1;
    }


}
