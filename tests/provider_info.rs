//! hs_provider_info's schema, and the bindings, the command's help and the PowerShell module
//! checked against it: a provider or key added in Rust and missing there fails here.
//!
//! The bindings are read as text from the repository (no Mono, Go or PowerShell needed): the
//! C# options classes (`Put(d, "key", …)` in bindings/csharp/src/Options.cs), the PowerShell
//! module's `-Provider` set and the keys it writes, the command's clap doc comments (which are
//! its `--help`), and the README's lists. The C# and Go suites check the same schema at run
//! time through their own `ProviderInfo()`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

fn schema() -> Value {
    serde_json::from_str(&hypersdk::provider_info_json()).unwrap()
}

/// The schema, as sets: provider name → (config keys, option keys); and the common keys.
struct Keys {
    providers: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>,
    common: BTreeSet<String>,
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

fn keys() -> Keys {
    let s = schema();
    let providers = s["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                (strings(&p["config_keys"]), strings(&p["option_keys"])),
            )
        })
        .collect();
    let common = s["common_options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_string())
        .collect();
    Keys { providers, common }
}

impl Keys {
    fn names(&self) -> BTreeSet<String> {
        self.providers.keys().cloned().collect()
    }
}

/// A file of the repository.
fn repo(path: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The texts between successive `q`s: `'a', 'b'` → a, b.
fn quoted(s: &str, q: char) -> Vec<String> {
    s.split(q).skip(1).step_by(2).map(str::to_string).collect()
}

/// Every text that follows `open` up to the next `close`: `$m['k']` with `$m['` and `'`.
fn after<'a>(s: &'a str, open: &str, close: char) -> Vec<&'a str> {
    s.match_indices(open)
        .filter_map(|(i, _)| {
            let rest = &s[i + open.len()..];
            rest.find(close).map(|j| &rest[..j])
        })
        .collect()
}

/// Lower-case words (letters, digits, `_`): what a help text names.
fn words(s: &str) -> BTreeSet<String> {
    s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

#[test]
fn every_known_provider_is_described_with_its_keys() {
    let s = schema();
    let providers = s["providers"].as_array().unwrap();
    let names: Vec<&str> = providers
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["aws", "azure", "gcp", "http", "hyperv", "vsphere"]);
    for p in providers {
        assert_eq!(p["built_in"], true, "{p}");
        assert!(!p["sources"].as_array().unwrap().is_empty(), "{p}");
        assert!(!p["option_keys"].as_array().unwrap().is_empty(), "{p}");
    }
    let aws = &providers[0];
    let cfg: Vec<&str> = aws["config_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert!(
        cfg.contains(&"region") && cfg.contains(&"ca_bundle_pem"),
        "{cfg:?}"
    );
}

// ---- PowerShell (bindings/powershell/HyperSdk/HyperSdk.psm1) ----

const PSM1: &str = "bindings/powershell/HyperSdk/HyperSdk.psm1";
/// Export-HsHyperVVM, dot-sourced by the root module.
const HYPERV_PS1: &str = "bindings/powershell/HyperSdk/HyperSdk.HyperV.ps1";

/// The body of the PowerShell function `name`: up to the next function or the module's exports.
fn ps_function<'a>(psm1: &'a str, name: &str) -> &'a str {
    let start = psm1
        .find(&format!("function {name} {{"))
        .unwrap_or_else(|| panic!("{PSM1}: no function {name}"));
    let rest = &psm1[start + 1..];
    let end = ["\nfunction ", "\n<#", "\nExport-ModuleMember"]
        .iter()
        .filter_map(|m| rest.find(m))
        .min()
        .unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn powershell_provider_parameter_takes_exactly_the_providers() {
    let k = keys();
    let psm1 = repo(PSM1);
    // Every [ValidateSet(...)] that guards a $Provider parameter.
    let mut sets = 0;
    for (i, _) in psm1.match_indices("[ValidateSet(") {
        let rest = &psm1[i..];
        let close = rest.find(")]").unwrap();
        let param = rest[close..].lines().nth(1).unwrap_or("");
        if !param.contains("$Provider") {
            continue;
        }
        sets += 1;
        let listed = quoted(&rest[..close], '\'');
        let unique: BTreeSet<String> = listed.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            listed.len(),
            "{PSM1}: a name twice in {listed:?}"
        );
        assert_eq!(
            unique,
            k.names(),
            "{PSM1}: the ValidateSet of -Provider is not the library's providers"
        );
    }
    assert!(
        sets >= 1,
        "{PSM1}: no [ValidateSet(...)] before a $Provider parameter"
    );
    // Its help: ".PARAMETER Provider" then "The provider: a, b, … or z."
    let help = psm1
        .split(".PARAMETER Provider\n")
        .nth(1)
        .and_then(|h| h.lines().next())
        .expect(".PARAMETER Provider help");
    let named = words(help.trim_start_matches("The provider:"));
    let named: BTreeSet<String> = named.into_iter().filter(|w| w != "or").collect();
    assert_eq!(
        named,
        k.names(),
        "{PSM1}: .PARAMETER Provider says {help:?}"
    );
}

#[test]
fn powershell_writes_only_keys_the_library_takes() {
    let k = keys();
    let psm1 = repo(PSM1);
    // Merge-HsCredential: each `'provider' { $merged['key'] = … }` case writes config keys of
    // that provider; the default case serves every provider without a case of its own.
    let merge = ps_function(&psm1, "Merge-HsCredential");
    let mut cased = BTreeSet::new();
    let mut default_keys = Vec::new();
    for line in merge.lines().map(str::trim) {
        let written = after(line, "$merged['", '\'');
        if written.is_empty() || !line.contains('{') {
            continue;
        }
        if line.starts_with("default") {
            default_keys = written;
            continue;
        }
        let name = quoted(line, '\'')[0].clone();
        let (config, _) = k.providers.get(&name).unwrap_or_else(|| {
            panic!("{PSM1}: Merge-HsCredential has a case for {name:?}, not a provider")
        });
        for key in written {
            assert!(
                config.contains(key),
                "{PSM1}: Merge-HsCredential writes {key} for {name}, which takes {config:?}"
            );
        }
        cased.insert(name);
    }
    assert!(
        !cased.is_empty() && !default_keys.is_empty(),
        "{PSM1}: Merge-HsCredential not read"
    );
    // http takes no credential (a -Credential for it is refused by the library, naming the key).
    for (name, (config, _)) in &k.providers {
        if cased.contains(name) || name == "http" {
            continue;
        }
        for key in &default_keys {
            assert!(
                config.contains(*key),
                "{PSM1}: Merge-HsCredential's default case writes {key} for {name}, which takes \
                 {config:?}: give {name} a case of its own"
            );
        }
    }
    // Export-HsHyperVVM: hyperv config and option keys.
    let (hv_config, hv_options) = &k.providers["hyperv"];
    let hv_ps1 = repo(HYPERV_PS1);
    let hv = ps_function(&hv_ps1, "Export-HsHyperVVM");
    let mut option_keys = after(hv, "$option['", '\'');
    for table in after(hv, "$option = @{", '}') {
        option_keys.extend(
            table
                .split(';')
                .filter_map(|kv| kv.split('=').next())
                .map(str::trim),
        );
    }
    assert!(
        option_keys.len() >= 3,
        "{HYPERV_PS1}: Export-HsHyperVVM's options not read"
    );
    for key in option_keys {
        assert!(
            hv_options.contains(key) || k.common.contains(key),
            "{HYPERV_PS1}: Export-HsHyperVVM writes option {key}, not a hyperv or common option"
        );
    }
    let config_keys = after(hv, "$config['", '\'');
    assert!(
        !config_keys.is_empty(),
        "{HYPERV_PS1}: Export-HsHyperVVM's config not read"
    );
    for key in config_keys {
        assert!(
            hv_config.contains(key),
            "{HYPERV_PS1}: Export-HsHyperVVM writes config {key}, not a hyperv config key"
        );
    }
    // Start-HsExport: the common options it sets itself.
    for key in after(ps_function(&psm1, "Start-HsExport"), "$opts['", '\'') {
        assert!(
            k.common.contains(key),
            "{PSM1}: Start-HsExport writes {key}"
        );
    }
}

// ---- C# (bindings/csharp/src/Options.cs) ----

const OPTIONS_CS: &str = "bindings/csharp/src/Options.cs";

/// Common options the C# base class deliberately does not model, with the reason (they can
/// still be given through `Extra`). Empty today: every common option is a typed property.
const COMMON_NOT_IN_CSHARP: &[(&str, &str)] = &[];

/// Provider options a C# class deliberately does not model, as (provider, key, reason).
const PROVIDER_KEYS_NOT_IN_CSHARP: &[(&str, &str, &str)] = &[];

/// A class of Options.cs: its name, its `/// <summary>`, and the keys it `Put`s.
struct CsClass {
    name: String,
    summary: String,
    keys: BTreeSet<String>,
    /// It writes a key some other way (`d["key"] = …`), which these checks would not see.
    writes_directly: bool,
}

fn cs_classes(src: &str) -> Vec<CsClass> {
    let lines: Vec<&str> = src.lines().collect();
    let decl = |l: &str| {
        let t = l.trim();
        t.starts_with("public ") && t.contains(" class ")
    };
    let starts: Vec<usize> = (0..lines.len()).filter(|&i| decl(lines[i])).collect();
    starts
        .iter()
        .enumerate()
        .map(|(n, &i)| {
            let name = lines[i]
                .split(" class ")
                .nth(1)
                .unwrap()
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap()
                .to_string();
            // The doc comment right above the declaration.
            let mut j = i;
            while j > 0 && lines[j - 1].trim_start().starts_with("///") {
                j -= 1;
            }
            let summary = lines[j..i].join("\n");
            let end = starts.get(n + 1).copied().unwrap_or(lines.len());
            let body = lines[i..end].join("\n");
            let keys = after(&body, "Put(d, \"", '"')
                .into_iter()
                .map(str::to_string)
                .collect();
            CsClass {
                name,
                summary,
                keys,
                writes_directly: body.contains("d[\""),
            }
        })
        .collect()
}

/// The provider a class's summary says it holds the options of: `Options of the "NAME" provider`.
fn cs_provider(c: &CsClass) -> Option<String> {
    let rest = c.summary.split("Options of the \"").nth(1)?;
    let (name, tail) = rest.split_once('"')?;
    tail.starts_with(" provider").then(|| name.to_string())
}

#[test]
fn csharp_base_options_write_every_common_option() {
    let k = keys();
    let classes = cs_classes(&repo(OPTIONS_CS));
    let base = classes
        .iter()
        .find(|c| c.name == "ExportOptions")
        .expect("Options.cs: class ExportOptions");
    assert!(
        !base.writes_directly,
        "{OPTIONS_CS}: ExportOptions: write keys with Put(d, \"key\", …)"
    );
    for (key, why) in COMMON_NOT_IN_CSHARP {
        assert!(
            k.common.contains(*key),
            "{key} ({why}) is no longer a common option"
        );
        assert!(
            !base.keys.contains(*key),
            "ExportOptions now writes {key}: drop it from the list"
        );
    }
    let skipped: BTreeSet<String> = COMMON_NOT_IN_CSHARP
        .iter()
        .map(|(k, _)| k.to_string())
        .collect();
    let missing: Vec<&String> = k
        .common
        .iter()
        .filter(|c| !base.keys.contains(*c) && !skipped.contains(*c))
        .collect();
    assert!(
        missing.is_empty(),
        "{OPTIONS_CS}: ExportOptions does not write the common option(s) {missing:?}: add a typed \
         property and Put it in Add (or list it in COMMON_NOT_IN_CSHARP with the reason)"
    );
    let extra: Vec<&String> = base.keys.difference(&k.common).collect();
    assert!(
        extra.is_empty(),
        "{OPTIONS_CS}: ExportOptions writes {extra:?}, not common options"
    );
}

#[test]
fn csharp_has_an_options_class_per_provider_with_its_keys() {
    let k = keys();
    let classes = cs_classes(&repo(OPTIONS_CS));
    let mut by_provider: BTreeMap<String, &CsClass> = BTreeMap::new();
    for c in &classes {
        let Some(p) = cs_provider(c) else { continue };
        assert!(
            k.providers.contains_key(&p),
            "{OPTIONS_CS}: {} holds options of {p:?}, not a provider",
            c.name
        );
        if let Some(other) = by_provider.insert(p.clone(), c) {
            panic!(
                "{OPTIONS_CS}: {} and {} both hold {p:?}'s options",
                other.name, c.name
            );
        }
    }
    for (name, (_, options)) in &k.providers {
        let c = by_provider.get(name).unwrap_or_else(|| {
            panic!(
                "{OPTIONS_CS}: no options class for provider {name:?} (a class deriving from \
                 ExportOptions whose summary says: Options of the \"{name}\" provider)"
            )
        });
        assert!(
            !c.writes_directly,
            "{OPTIONS_CS}: {}: write keys with Put(d, \"key\", …)",
            c.name
        );
        // Every key it writes is the provider's or a common one …
        for key in &c.keys {
            assert!(
                options.contains(key) || k.common.contains(key),
                "{OPTIONS_CS}: {} writes {key:?}, which {name} does not take (its option keys: \
                 {options:?})",
                c.name
            );
        }
        // … and every key of the provider is written, unless deliberately left out.
        for key in options {
            let skipped = PROVIDER_KEYS_NOT_IN_CSHARP
                .iter()
                .any(|(p, k, _)| p == name && k == key);
            assert!(
                c.keys.contains(key) || skipped,
                "{OPTIONS_CS}: {} does not write {name}'s option {key:?}: add a typed property \
                 (or list it in PROVIDER_KEYS_NOT_IN_CSHARP with the reason)",
                c.name
            );
            assert!(
                !(skipped && c.keys.contains(key)),
                "{name}.{key} is written now: drop it from the list"
            );
        }
    }
}

// ---- The command (cli/src): its --help is clap's rendering of these doc comments ----

const CLI_MAIN: &str = "cli/src/main.rs";

#[test]
fn command_help_names_every_provider() {
    let k = keys();
    let main = repo(CLI_MAIN);
    let lines: Vec<&str> = main.lines().collect();
    // The doc comment of every `provider: String` argument (export, list).
    let mut found = 0;
    for (i, l) in lines.iter().enumerate() {
        if l.trim() != "provider: String," {
            continue;
        }
        let mut doc = Vec::new();
        let mut j = i;
        while j > 0 {
            let t = lines[j - 1].trim();
            if let Some(d) = t.strip_prefix("///") {
                doc.push(d);
            } else if !t.starts_with("#[") {
                break;
            }
            j -= 1;
        }
        if doc.is_empty() {
            continue;
        }
        found += 1;
        let text = doc.join(" ");
        let named = words(&text);
        let missing: Vec<String> = k.names().difference(&named).cloned().collect();
        assert!(
            missing.is_empty(),
            "{CLI_MAIN}:{}: the help of a provider argument, {text:?}, does not name {missing:?}",
            i + 1
        );
    }
    assert!(
        found >= 2,
        "{CLI_MAIN}: the provider arguments' help was not found"
    );
    // The one-line description (`hypersdk --help`): display names, so Hyper-V reads as hyperv.
    let about = main
        .split("about = \"")
        .nth(1)
        .and_then(|a| a.split('"').next())
        .expect("the command's about text");
    let named = words(&about.replace('-', ""));
    for name in k.names() {
        assert!(
            named.contains(&name),
            "{CLI_MAIN}: the about text {about:?} does not name {name}"
        );
    }
}

#[test]
fn command_secret_keys_are_config_keys() {
    let k = keys();
    let batch = repo("cli/src/batch.rs");
    let list = batch
        .split("const SECRET_KEYS: &[&str] = &[")
        .nth(1)
        .and_then(|s| s.split("];").next())
        .expect("cli/src/batch.rs: SECRET_KEYS");
    let all: BTreeSet<&String> = k.providers.values().flat_map(|(c, _)| c).collect();
    let secret = quoted(list, '"');
    assert!(!secret.is_empty());
    for s in &secret {
        assert!(
            all.contains(s),
            "cli/src/batch.rs: SECRET_KEYS has {s}, no provider's config key"
        );
    }
}

// ---- README.md's lists ----

#[test]
fn readme_lists_every_provider() {
    let k = keys();
    let readme = repo("README.md");
    // The layout: "`src/providers/` (`http`, `aws`, …, and the toolkit they share)".
    let layout = readme
        .split("`src/providers/` (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .expect("README.md: the layout's src/providers/ list");
    let listed: BTreeSet<String> = quoted(layout, '`').into_iter().collect();
    for name in k.names() {
        assert!(
            listed.contains(&name),
            "README.md: the layout's src/providers/ list lacks {name}"
        );
    }
    // The C# section names every provider's options class.
    let cs = readme
        .split("## Calling it from C#")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README.md: the C# section");
    for c in cs_classes(&repo(OPTIONS_CS)) {
        if cs_provider(&c).is_some() {
            assert!(
                cs.contains(&format!("`{}`", c.name)),
                "README.md's C# section does not name {}",
                c.name
            );
        }
    }
}
