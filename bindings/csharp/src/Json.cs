// JSON for the binding's own use (internal): objects read as Dictionary<string, object>, arrays
// as List<object>, numbers as long when integral else double. On net8.0 System.Text.Json reads and
// writes it (JsonNet8.cs); on netstandard2.0, which has no System.Text.Json, and on Mono, where our
// tests run, the small reader and writer below do, so the binding needs no package.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace HyperSdk
{
    internal static partial class Json
    {
        internal static string Str(IDictionary<string, object> d, string k)
        {
            object v;
            return d.TryGetValue(k, out v) && v != null ? Convert.ToString(v, CultureInfo.InvariantCulture) : null;
        }

        internal static long Long(IDictionary<string, object> d, string k)
        {
            object v;
            if (!d.TryGetValue(k, out v) || v == null) return 0;
            return Convert.ToInt64(v, CultureInfo.InvariantCulture);
        }

#if !NET8_0_OR_GREATER
        public static object Parse(string text)
        {
            var p = new Parser(text);
            p.Ws();
            var v = p.Value();
            p.Ws();
            if (p.Pos != text.Length) throw new FormatException("JSON: trailing characters at " + p.Pos);
            return v;
        }

        public static string Serialize(object v)
        {
            var sb = new StringBuilder();
            Write(sb, v);
            return sb.ToString();
        }

        private static void Write(StringBuilder sb, object v)
        {
            if (v == null) { sb.Append("null"); return; }
            if (v is string) { Quote(sb, (string)v); return; }
            if (v is bool) { sb.Append((bool)v ? "true" : "false"); return; }
            if (v is double || v is float || v is decimal)
            {
                sb.Append(Convert.ToDouble(v, CultureInfo.InvariantCulture).ToString("R", CultureInfo.InvariantCulture));
                return;
            }
            if (v is int || v is long || v is uint || v is ulong || v is short || v is ushort || v is byte)
            {
                sb.Append(Convert.ToString(v, CultureInfo.InvariantCulture));
                return;
            }
            if (v is Enum) { Quote(sb, v.ToString()); return; }
            var dict = v as IDictionary;
            if (dict != null)
            {
                sb.Append('{');
                var first = true;
                foreach (DictionaryEntry e in dict)
                {
                    if (!first) sb.Append(',');
                    first = false;
                    Quote(sb, Convert.ToString(e.Key, CultureInfo.InvariantCulture));
                    sb.Append(':');
                    Write(sb, e.Value);
                }
                sb.Append('}');
                return;
            }
            var list = v as IEnumerable;
            if (list != null)
            {
                sb.Append('[');
                var first = true;
                foreach (var e in list)
                {
                    if (!first) sb.Append(',');
                    first = false;
                    Write(sb, e);
                }
                sb.Append(']');
                return;
            }
            throw new ArgumentException("cannot write a " + v.GetType().Name + " as JSON");
        }

        private static void Quote(StringBuilder sb, string s)
        {
            sb.Append('"');
            foreach (var c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    default:
                        if (c < 0x20) sb.AppendFormat("\\u{0:x4}", (int)c);
                        else sb.Append(c);
                        break;
                }
            }
            sb.Append('"');
        }

        private sealed class Parser
        {
            private readonly string s;
            public int Pos;
            private int depth;

            public Parser(string s) { this.s = s; }

            public void Ws()
            {
                while (Pos < s.Length && (s[Pos] == ' ' || s[Pos] == '\t' || s[Pos] == '\n' || s[Pos] == '\r')) Pos++;
            }

            private Exception Bad(string what)
            {
                return new FormatException("JSON: " + what + " at " + Pos);
            }

            public object Value()
            {
                if (Pos >= s.Length) throw Bad("unexpected end");
                var c = s[Pos];
                if (c == '{') return Obj();
                if (c == '[') return Arr();
                if (c == '"') return Str();
                if (c == 't' && Lit("true")) return true;
                if (c == 'f' && Lit("false")) return false;
                if (c == 'n' && Lit("null")) return null;
                return Num();
            }

            private bool Lit(string w)
            {
                if (string.CompareOrdinal(s, Pos, w, 0, w.Length) != 0) throw Bad("bad literal");
                Pos += w.Length;
                return true;
            }

            private object Obj()
            {
                if (++depth > 256) throw Bad("nested too deep");
                var d = new Dictionary<string, object>();
                Pos++;
                Ws();
                if (Pos < s.Length && s[Pos] == '}') { Pos++; depth--; return d; }
                while (true)
                {
                    Ws();
                    if (Pos >= s.Length || s[Pos] != '"') throw Bad("expected a key");
                    var k = Str();
                    Ws();
                    if (Pos >= s.Length || s[Pos] != ':') throw Bad("expected ':'");
                    Pos++;
                    Ws();
                    d[k] = Value();
                    Ws();
                    if (Pos < s.Length && s[Pos] == ',') { Pos++; continue; }
                    if (Pos < s.Length && s[Pos] == '}') { Pos++; depth--; return d; }
                    throw Bad("expected ',' or '}'");
                }
            }

            private object Arr()
            {
                if (++depth > 256) throw Bad("nested too deep");
                var l = new List<object>();
                Pos++;
                Ws();
                if (Pos < s.Length && s[Pos] == ']') { Pos++; depth--; return l; }
                while (true)
                {
                    Ws();
                    l.Add(Value());
                    Ws();
                    if (Pos < s.Length && s[Pos] == ',') { Pos++; continue; }
                    if (Pos < s.Length && s[Pos] == ']') { Pos++; depth--; return l; }
                    throw Bad("expected ',' or ']'");
                }
            }

            private string Str()
            {
                Pos++;
                var sb = new StringBuilder();
                while (true)
                {
                    if (Pos >= s.Length) throw Bad("unterminated string");
                    var c = s[Pos++];
                    if (c == '"') return sb.ToString();
                    if (c != '\\') { sb.Append(c); continue; }
                    if (Pos >= s.Length) throw Bad("bad escape");
                    var e = s[Pos++];
                    switch (e)
                    {
                        case '"': sb.Append('"'); break;
                        case '\\': sb.Append('\\'); break;
                        case '/': sb.Append('/'); break;
                        case 'b': sb.Append('\b'); break;
                        case 'f': sb.Append('\f'); break;
                        case 'n': sb.Append('\n'); break;
                        case 'r': sb.Append('\r'); break;
                        case 't': sb.Append('\t'); break;
                        case 'u':
                            if (Pos + 4 > s.Length) throw Bad("bad \\u escape");
                            sb.Append((char)int.Parse(s.Substring(Pos, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                            Pos += 4;
                            break;
                        default: throw Bad("bad escape");
                    }
                }
            }

            private object Num()
            {
                var start = Pos;
                while (Pos < s.Length && "+-0123456789.eE".IndexOf(s[Pos]) >= 0) Pos++;
                if (start == Pos) throw Bad("unexpected character");
                var t = s.Substring(start, Pos - start);
                long l;
                if (long.TryParse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out l)) return l;
                double d;
                if (double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out d)) return d;
                throw Bad("bad number");
            }
        }
#endif
    }
}
