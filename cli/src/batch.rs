//! Batch profiles (TOML): several providers, each with its config, and the exports to run,
//! all at once with priorities. Secrets never live in the profile: they come from environment
//! variables or files named under `secrets`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::exit::Failure;
use crate::item::{Item, Refusal};
use crate::{run, shown};

#[derive(Args)]
pub(crate) struct BatchArgs {
    /// The batch profile (TOML).
    file: PathBuf,
    #[command(flatten)]
    pub(crate) out: run::Output,
}

pub(crate) const EXAMPLE: &str = r#"Profile example (migration.toml):
  max_concurrent = 6

  [providers.aws]
  config = { region = "eu-west-1" }
  secrets = { access_key_id = "env:AWS_ACCESS_KEY_ID", secret_access_key = "env:AWS_SECRET_ACCESS_KEY" }

  [providers.vc]
  provider = "vsphere"
  config_file = "vcenter.json"                     # JSON, without the password
  secrets = { password = "file:/run/secrets/vc" }

  [[export]]
  provider = "aws"
  sources = ["i-0abc", "i-0def"]
  output = "/backups/aws"
  priority = 10                                    # higher first in the queue
  options = { s3_bucket = "exports" }

  [[export]]
  provider = "vc"
  sources = ["/DC1/vm/db01"]
  output = "/backups/vsphere"
  options = { format = "ova" }

Run: hypersdk batch migration.toml [--json] [--max-concurrent N]"#;

/// Config keys that hold secrets: refused inline, taken from `secrets` instead.
const SECRET_KEYS: &[&str] = &[
    "password",
    "client_secret",
    "secret_access_key",
    "session_token",
    "credentials_json",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    #[serde(default)]
    max_concurrent: Option<u64>,
    #[serde(default)]
    providers: BTreeMap<String, ProviderEntry>,
    #[serde(default)]
    export: Vec<ExportEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderEntry {
    /// The provider (default: the table's name).
    provider: Option<String>,
    #[serde(default)]
    config: Option<toml::Table>,
    /// A JSON config file, relative to the profile.
    config_file: Option<PathBuf>,
    /// KEY = "env:NAME" or "file:PATH": merged into the config.
    #[serde(default)]
    secrets: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportEntry {
    provider: String,
    sources: Vec<String>,
    output: PathBuf,
    #[serde(default)]
    priority: i32,
    #[serde(default)]
    options: Option<toml::Table>,
}

fn load(path: &Path) -> Result<Profile, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("profile {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("profile {}: {e}", path.display()))
}

/// The accounts file: `[providers.NAME]` tables as in a batch profile, so `export NAME …` and
/// `list NAME` use a named account without `--config`. `$HYPERSDK_CONFIG`, else
/// `$XDG_CONFIG_HOME/hypersdk/config.toml`, else `~/.config/hypersdk/config.toml`.
pub(crate) fn accounts_file() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HYPERSDK_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(base.join("hypersdk/config.toml"))
}

/// The account `name` of the accounts file, when that file exists and has it: (provider,
/// config JSON with its secrets, the file). An accounts file that cannot be read or parsed is
/// an error, not a silent fallback.
pub(crate) fn account(name: &str) -> Result<Option<(String, String, PathBuf)>, String> {
    let Some(path) = accounts_file().filter(|p| p.exists()) else {
        return Ok(None);
    };
    let profile = load(&path)?;
    let Some(entry) = profile.providers.get(name) else {
        return Ok(None);
    };
    let (provider, config) = resolve(&path, name, entry)?;
    Ok(Some((provider, config, path)))
}

/// The provider name and config JSON of the profile's entry `name`, secrets merged in.
pub(crate) fn provider_config(path: &Path, name: &str) -> Result<(String, String), String> {
    let profile = load(path)?;
    let entry = profile
        .providers
        .get(name)
        .ok_or_else(|| format!("profile {}: no [providers.{name}]", path.display()))?;
    resolve(path, name, entry)
}

fn resolve(path: &Path, name: &str, e: &ProviderEntry) -> Result<(String, String), String> {
    let base = path.parent().unwrap_or(Path::new("."));
    let mut config: Map<String, Value> = match (&e.config, &e.config_file) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "[providers.{name}]: give config or config_file, not both"
            ));
        }
        (Some(t), None) => {
            json_object(t).ok_or_else(|| format!("[providers.{name}]: config is not a table"))?
        }
        (None, Some(f)) => {
            let p = base.join(f);
            let text = std::fs::read_to_string(&p)
                .map_err(|err| format!("[providers.{name}] config_file {}: {err}", p.display()))?;
            match serde_json::from_str(&text) {
                Ok(Value::Object(m)) => m,
                _ => {
                    return Err(format!(
                        "[providers.{name}] config_file {} is not a JSON object",
                        p.display()
                    ));
                }
            }
        }
        (None, None) => Map::new(),
    };
    if e.config.is_some()
        && let Some(k) = config.keys().find(|k| SECRET_KEYS.contains(&k.as_str()))
    {
        return Err(format!(
            "[providers.{name}]: {k} must not be written in the profile; put it under secrets as \"env:NAME\" or \"file:PATH\""
        ));
    }
    for (k, how) in &e.secrets {
        let value = if let Some(var) = how.strip_prefix("env:") {
            std::env::var(var).map_err(|_| {
                format!("[providers.{name}] secret {k}: environment variable {var} is not set")
            })?
        } else if let Some(f) = how.strip_prefix("file:") {
            let p = base.join(f);
            std::fs::read_to_string(&p)
                .map_err(|err| format!("[providers.{name}] secret {k}: {}: {err}", p.display()))?
                .trim_end_matches(['\n', '\r'])
                .to_string()
        } else {
            return Err(format!(
                "[providers.{name}] secret {k}: give \"env:NAME\" or \"file:PATH\" (the value itself never goes in the profile)"
            ));
        };
        config.insert(k.clone(), Value::from(value));
    }
    Ok((
        e.provider.clone().unwrap_or_else(|| name.to_string()),
        Value::Object(config).to_string(),
    ))
}

/// One provider entry of a profile (or of the accounts file) as a front end browses it: its
/// name, provider, config (secrets merged; or why it cannot be had) and the sources and output
/// folder its `[[export]]` tables name (how a provider without a listing, http, offers sources).
pub(crate) struct Account {
    pub name: String,
    pub provider: String,
    pub config: Result<String, String>,
    pub sources: Vec<String>,
    pub output: Option<PathBuf>,
    pub options: Map<String, Value>,
}

/// Every `[providers.NAME]` entry of the profile at `path`, in name order, and its
/// `max_concurrent`. An entry whose config or secrets cannot be read is kept, with the error:
/// the others can still be browsed. A profile that does not parse is an error.
pub(crate) fn accounts(path: &Path) -> Result<(Vec<Account>, Option<u64>), String> {
    let profile = load(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let accounts = profile
        .providers
        .iter()
        .map(|(name, entry)| {
            let config = resolve(path, name, entry);
            let provider = entry.provider.clone().unwrap_or_else(|| name.clone());
            let mut sources = Vec::new();
            let (mut output, mut options) = (None, Map::new());
            for x in profile.export.iter().filter(|x| &x.provider == name) {
                sources.extend(x.sources.iter().cloned());
                output.get_or_insert_with(|| base.join(&x.output));
                if options.is_empty() {
                    options = x.options.as_ref().and_then(json_object).unwrap_or_default();
                }
            }
            Account {
                name: name.clone(),
                provider,
                config: config.map(|(_, c)| c),
                sources,
                output,
                options,
            }
        })
        .collect();
    Ok((accounts, profile.max_concurrent))
}

pub(crate) fn run(a: &BatchArgs) -> Result<u8, Failure> {
    let path = a.file.as_path();
    let profile = load(path)?;
    if profile.export.is_empty() {
        return Err(format!("profile {}: no [[export]]", path.display()).into());
    }
    let items = items(path, &profile, a.out.dry_run)?;
    let out = run::Output {
        max_concurrent: a.out.max_concurrent.or(profile.max_concurrent),
        ..a.out.clone()
    };
    Ok(run::run_all(items, &out))
}

/// One item per source of every `[[export]]`. A provider entry is resolved (its secrets read)
/// and its client built once, however many `[[export]]` tables name it. A client the library
/// refuses (a vCenter that is down, a wrong password, no PowerShell) does not stop the batch:
/// that provider's items are refused with its error and the others run. A profile that does
/// not hold together (an unknown provider entry, a secret that cannot be read) stops it before
/// anything runs.
fn items(path: &Path, profile: &Profile, dry_run: bool) -> Result<Vec<Item>, Failure> {
    let profile_path = std::fs::canonicalize(path).unwrap_or(path.to_path_buf());
    let base = profile_path.parent().unwrap_or(Path::new("."));
    type Made = Result<Arc<hypersdk::Client>, Refusal>;
    let mut clients: BTreeMap<String, (String, Made)> = BTreeMap::new();
    let mut items = Vec::new();
    for x in &profile.export {
        if !clients.contains_key(&x.provider) {
            let entry = profile.providers.get(&x.provider).ok_or_else(|| {
                format!(
                    "[[export]] names provider {:?}, which has no [providers.{0}]",
                    x.provider
                )
            })?;
            let (provider, config) = resolve(path, &x.provider, entry)?;
            let client = hypersdk::Client::new(&provider, &config)
                .map(Arc::new)
                .map_err(|e| Refusal::of(&e, &format!("[providers.{}]", x.provider)));
            clients.insert(x.provider.clone(), (provider, client));
        }
        let (provider, client) = clients[&x.provider].clone();
        let mut options = x.options.as_ref().and_then(json_object).unwrap_or_default();
        // Relative to the profile, as config_file and file: are; absolute in the history.
        let output =
            crate::input::output_dir(&base.join(&x.output), !dry_run).map_err(Failure::local)?;
        options.insert(
            "output_dir".into(),
            Value::from(output.display().to_string()),
        );
        options.insert("priority".into(), x.priority.into());
        for s in &x.sources {
            items.push(Item {
                label: format!("{}:{}", shown::text(&x.provider), shown::source(s)),
                provider: provider.clone(),
                source: s.clone(),
                client: client.clone(),
                options: options.clone(),
                config_file: None,
                profile: Some((profile_path.clone(), x.provider.clone())),
            });
        }
    }
    Ok(items)
}

fn json_object(t: &toml::Table) -> Option<Map<String, Value>> {
    match serde_json::to_value(t) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_env_or_files_never_the_profile() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
        let p = dir.path().join("p.toml");
        std::fs::write(
            &p,
            r#"
[providers.vc]
provider = "vsphere"
config = { url = "https://vc/sdk", username = "u" }
secrets = { password = "file:pw" }

[providers.bad]
provider = "vsphere"
config = { url = "https://vc/sdk", password = "inline" }

[providers.literal]
provider = "vsphere"
secrets = { password = "inline" }
"#,
        )
        .unwrap();
        let (provider, config) = provider_config(&p, "vc").unwrap();
        assert_eq!(provider, "vsphere");
        let c: Value = serde_json::from_str(&config).unwrap();
        assert_eq!(c["password"], "s3cret");
        assert_eq!(c["username"], "u");
        let e = provider_config(&p, "bad").unwrap_err();
        assert!(e.contains("password must not be written"), "{e}");
        assert!(!e.contains("inline"), "{e}");
        let e = provider_config(&p, "literal").unwrap_err();
        assert!(e.contains("env:NAME"), "{e}");
        assert!(provider_config(&p, "nope").is_err());
    }
}
