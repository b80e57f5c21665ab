// P/Invoke declarations of include/hypersdk.h: the only place that knows the C ABI.
using System;
using System.Runtime.InteropServices;
using System.Text;

namespace HyperSdk
{
    /// <summary>hs_progress, laid out as in the header (832 bytes on 64-bit platforms).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeProgress
    {
        public int Phase;
        public uint FileIndex;
        public uint FileCount;
        public ulong BytesDone;
        public ulong BytesTotal;
        public ulong FileBytesDone;
        public ulong FileBytesTotal;
        public double RateBytesPerSec;
        public double EtaSeconds;
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = Native.FileNameMax)]
        public byte[] FileName;
        [MarshalAs(UnmanagedType.ByValArray, SizeConst = Native.MessageMax)]
        public byte[] Message;
    }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void NativeProgressCallback(IntPtr userData, IntPtr progress);

    internal static class Native
    {
        private const string Lib = "hypersdk";
        public const int FileNameMax = 256;
        public const int MessageMax = 512;

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr hs_version();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int hs_global_configure(byte[] settingsJson, out IntPtr err);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int hs_client_new(byte[] provider, byte[] configJson, out ClientHandle client, out IntPtr err);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern void hs_client_free(IntPtr client);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int hs_client_list_sources(ClientHandle client, byte[] filterJson, out IntPtr json, out IntPtr err);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int hs_provider_info(out IntPtr json, out IntPtr err);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int hs_error_code(IntPtr err);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr hs_error_message(IntPtr err);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int hs_error_phase(IntPtr err);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern void hs_error_free(IntPtr err);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern void hs_string_free(IntPtr s);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr hs_status_name(int status);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern IntPtr hs_phase_name(int phase);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int hs_export_start(ClientHandle client, byte[] sourceId, byte[] optionsJson,
            NativeProgressCallback cb, IntPtr userData, out ExportHandle export, out IntPtr err);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int hs_export_cancel(ExportHandle export);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int hs_export_set_priority(ExportHandle export, int priority);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int hs_export_wait(ExportHandle export, long timeoutMs, out IntPtr err);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int hs_export_progress(ExportHandle export, out NativeProgress progress);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern int hs_export_result_json(ExportHandle export, out IntPtr json, out IntPtr err);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl)]
        public static extern void hs_export_free(IntPtr export);

        /// <summary>A NUL-terminated UTF-8 copy of <paramref name="s"/> (null stays null).
        /// Done by hand: Mono's marshaller lacks LPUTF8Str in places.</summary>
        public static byte[] Utf8(string s)
        {
            if (s == null) return null;
            var n = Encoding.UTF8.GetByteCount(s);
            var b = new byte[n + 1];
            Encoding.UTF8.GetBytes(s, 0, s.Length, b, 0);
            return b;
        }

        /// <summary>The UTF-8 string at <paramref name="p"/> (borrowed; not freed).</summary>
        public static string FromUtf8(IntPtr p)
        {
            if (p == IntPtr.Zero) return null;
            var len = 0;
            while (Marshal.ReadByte(p, len) != 0) len++;
            var b = new byte[len];
            Marshal.Copy(p, b, 0, len);
            return Encoding.UTF8.GetString(b);
        }

        /// <summary>The text of a NUL-terminated inline char array.</summary>
        public static string FromUtf8(byte[] b)
        {
            if (b == null) return "";
            var len = Array.IndexOf(b, (byte)0);
            return Encoding.UTF8.GetString(b, 0, len < 0 ? b.Length : len);
        }

        /// <summary>Takes ownership of an hs_error: reads it, frees it, returns the exception.</summary>
        public static HyperSdkException TakeError(int status, IntPtr err, string fallback)
        {
            if (err == IntPtr.Zero)
                return HyperSdkException.Create((Status)status, Phase.Queued, fallback + ": " + StatusName(status));
            try
            {
                return HyperSdkException.Create((Status)hs_error_code(err), (Phase)hs_error_phase(err),
                    FromUtf8(hs_error_message(err)));
            }
            finally
            {
                hs_error_free(err);
            }
        }

        public static string StatusName(int status)
        {
            return FromUtf8(hs_status_name(status));
        }
    }

    /// <summary>An hs_client*, freed with hs_client_free.</summary>
    internal sealed class ClientHandle : SafeHandle
    {
        public ClientHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle()
        {
            Native.hs_client_free(handle);
            return true;
        }
    }

    /// <summary>An hs_export*, freed with hs_export_free (which cancels a running export).</summary>
    internal sealed class ExportHandle : SafeHandle
    {
        public ExportHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle()
        {
            Native.hs_export_free(handle);
            return true;
        }
    }
}
