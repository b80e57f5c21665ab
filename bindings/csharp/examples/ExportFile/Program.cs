// Downloads one file with the "http" provider: ranged requests, a progress line, the SHA-256
// checked when given, Ctrl+C cancels (the partial file stays for a resume with the same command).
//
//   dotnet run -- https://example.com/disk.qcow2 /var/backups [SHA256]
using System;
using System.Threading;
using System.Threading.Tasks;
using HyperSdk;

static class Program
{
    static int Main(string[] args)
    {
        return Run(args).GetAwaiter().GetResult();
    }

    static async Task<int> Run(string[] args)
    {
        if (args.Length < 2)
        {
            Console.Error.WriteLine("usage: ExportFile URL FOLDER [SHA256]");
            return 2;
        }
        using (var cancel = new CancellationTokenSource())
        using (var client = new HyperSdkClient("http", "{}"))
        {
            Console.CancelKeyPress += (s, e) => { e.Cancel = true; cancel.Cancel(); };
            var options = new HttpExportOptions(args[1]) { Sha256 = args.Length > 2 ? args[2] : null };
            // The handler runs on the thread pool (or the caller's SynchronizationContext), one
            // reading at a time and in order, never on a library thread; a slow one skips
            // readings, never the last. (System.Progress<T> would post each reading again, to
            // the pool, where lines can overtake each other.)
            var progress = new ProgressHandler(p =>
                Console.Error.Write($"\r{p.Phase} {p.BytesDone}/{p.BytesTotal} bytes   "));
            try
            {
                ExportResult r = await client.ExportAsync(args[0], options, progress, cancel.Token);
                Console.Error.WriteLine();
                foreach (var f in r.Files) Console.WriteLine($"{f.Path} {f.Size}");
                return 0;
            }
            catch (OperationCanceledException)
            {
                Console.Error.WriteLine("\ncancelled");
                return 130;
            }
            catch (HyperSdkException e)
            {
                Console.Error.WriteLine($"\n{e.Status} during {e.Phase}: {e.Message}");
                return 1;
            }
        }
    }
}
