// What every known provider accepts (hs_provider_info), parsed: no client needed.
using System;
using System.Collections.Generic;
using System.Linq;

namespace HyperSdk
{
    /// <summary>A common export option (one every provider takes): its key, JSON type and default.</summary>
    public sealed class CommonOption
    {
        public string Key { get; internal set; }
        /// <summary>The JSON type: "string", "boolean", "integer", "number", "array" or "object".</summary>
        public string Type { get; internal set; }
        /// <summary>The library's default as parsed JSON: a string, bool, long, double or null.</summary>
        public object Default { get; internal set; }
    }

    /// <summary>One provider as the library describes it.</summary>
    public sealed class ProviderDescription
    {
        /// <summary>The name HyperSdkClient takes ("aws", "vsphere", …).</summary>
        public string Name { get; internal set; }
        /// <summary>Compiled into the loaded library (false: known, behind a disabled cargo feature).</summary>
        public bool BuiltIn { get; internal set; }
        /// <summary>The forms of source id it exports, as text for people.</summary>
        public IReadOnlyList<string> Sources { get; internal set; }
        /// <summary>The keys of its client config (network keys included).</summary>
        public IReadOnlyList<string> ConfigKeys { get; internal set; }
        /// <summary>Its own export option keys, besides the common ones.</summary>
        public IReadOnlyList<string> OptionKeys { get; internal set; }
    }

    /// <summary>What every known provider accepts (<see cref="HyperSdkClient.ProviderInfo"/>).</summary>
    public sealed class ProviderSchema
    {
        public IReadOnlyList<CommonOption> CommonOptions { get; internal set; }
        public IReadOnlyList<ProviderDescription> Providers { get; internal set; }

        /// <summary>The provider named <paramref name="name"/>, or null.</summary>
        public ProviderDescription Find(string name)
        {
            return Providers.FirstOrDefault(p => p.Name == name);
        }

        internal static ProviderSchema Parse(string json)
        {
            var d = (IDictionary<string, object>)Json.Parse(json);
            var common = new List<CommonOption>();
            foreach (var o in List(d, "common_options"))
            {
                var c = (IDictionary<string, object>)o;
                object def;
                c.TryGetValue("default", out def);
                common.Add(new CommonOption { Key = Json.Str(c, "key"), Type = Json.Str(c, "type"), Default = def });
            }
            var providers = new List<ProviderDescription>();
            foreach (var o in List(d, "providers"))
            {
                var p = (IDictionary<string, object>)o;
                object builtIn;
                providers.Add(new ProviderDescription
                {
                    Name = Json.Str(p, "name"),
                    BuiltIn = p.TryGetValue("built_in", out builtIn) && builtIn is bool && (bool)builtIn,
                    Sources = Strings(p, "sources"),
                    ConfigKeys = Strings(p, "config_keys"),
                    OptionKeys = Strings(p, "option_keys"),
                });
            }
            return new ProviderSchema { CommonOptions = common, Providers = providers };
        }

        private static IList<object> List(IDictionary<string, object> d, string k)
        {
            object v;
            return d.TryGetValue(k, out v) && v is IList<object> ? (IList<object>)v : new List<object>();
        }

        private static IReadOnlyList<string> Strings(IDictionary<string, object> d, string k)
        {
            return List(d, k).Select(v => Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        }
    }
}
