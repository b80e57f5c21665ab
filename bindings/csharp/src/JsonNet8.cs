// Json on net8.0: System.Text.Json, with the same object model as the small reader in Json.cs
// (Dictionary<string, object>, List<object>, string, long when integral else double, bool, null).
// Not compiled by our tests: NuGet and the .NET SDK cannot be reached where we build, so the
// tested path is Mono's (netstandard2.0 API, Json.cs). `dotnet build` compiles this for net8.0.
#if NET8_0_OR_GREATER
using System;
using System.Buffers;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace HyperSdk
{
    internal static partial class Json
    {
        public static object Parse(string text)
        {
            try
            {
                using (var doc = JsonDocument.Parse(text, new JsonDocumentOptions { MaxDepth = 256 }))
                {
                    return FromElement(doc.RootElement);
                }
            }
            catch (JsonException e)
            {
                throw new FormatException("JSON: " + e.Message, e);
            }
        }

        private static object FromElement(JsonElement e)
        {
            switch (e.ValueKind)
            {
                case JsonValueKind.Object:
                    var d = new Dictionary<string, object>();
                    foreach (var p in e.EnumerateObject()) d[p.Name] = FromElement(p.Value);
                    return d;
                case JsonValueKind.Array:
                    var l = new List<object>();
                    foreach (var x in e.EnumerateArray()) l.Add(FromElement(x));
                    return l;
                case JsonValueKind.String:
                    return e.GetString();
                case JsonValueKind.Number:
                    long n;
                    if (e.TryGetInt64(out n)) return n;
                    return e.GetDouble();
                case JsonValueKind.True:
                    return true;
                case JsonValueKind.False:
                    return false;
                default:
                    return null;
            }
        }

        public static string Serialize(object v)
        {
            var buffer = new ArrayBufferWriter<byte>();
            using (var w = new Utf8JsonWriter(buffer))
            {
                Write(w, v);
            }
            return Encoding.UTF8.GetString(buffer.WrittenSpan);
        }

        private static void Write(Utf8JsonWriter w, object v)
        {
            if (v == null) { w.WriteNullValue(); return; }
            if (v is string) { w.WriteStringValue((string)v); return; }
            if (v is bool) { w.WriteBooleanValue((bool)v); return; }
            if (v is double || v is float || v is decimal)
            {
                w.WriteNumberValue(Convert.ToDouble(v, CultureInfo.InvariantCulture));
                return;
            }
            if (v is ulong) { w.WriteNumberValue((ulong)v); return; }
            if (v is int || v is long || v is uint || v is short || v is ushort || v is byte)
            {
                w.WriteNumberValue(Convert.ToInt64(v, CultureInfo.InvariantCulture));
                return;
            }
            if (v is Enum) { w.WriteStringValue(v.ToString()); return; }
            var dict = v as IDictionary;
            if (dict != null)
            {
                w.WriteStartObject();
                foreach (DictionaryEntry e in dict)
                {
                    w.WritePropertyName(Convert.ToString(e.Key, CultureInfo.InvariantCulture));
                    Write(w, e.Value);
                }
                w.WriteEndObject();
                return;
            }
            var list = v as IEnumerable;
            if (list != null)
            {
                w.WriteStartArray();
                foreach (var e in list) Write(w, e);
                w.WriteEndArray();
                return;
            }
            throw new ArgumentException("cannot write a " + v.GetType().Name + " as JSON");
        }
    }
}
#endif
