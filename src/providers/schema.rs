//! What each built-in provider accepts, as data (`hs_provider_info`): its name, the forms of
//! source id it takes, its config keys and its option keys, so bindings, the command's help
//! and tools can be checked against the library instead of copying lists by hand.
//!
//! The key lists are read off the serde structs themselves (see [`field_names`]), so a key
//! added to a config or options struct appears here without a second list to keep in step.
//! The common options carry their type and default (from `CommonOptions::default()`); a
//! provider's own options carry names only (their structs are not serializable).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::seam::options::CommonOptions;

/// One provider, as `hs_provider_info` describes it.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderInfo {
    pub name: &'static str,
    /// Compiled into this library (a provider behind a disabled cargo feature is listed, not
    /// built in).
    pub built_in: bool,
    /// The forms of `source_id` it takes.
    pub sources: &'static [&'static str],
    /// Client config keys (the network keys included where the provider takes them).
    pub config_keys: Vec<String>,
    /// The provider's own export options (besides the common ones).
    pub option_keys: Vec<String>,
}

/// Everything `hs_provider_info` returns: the common options (with type and default) and
/// every known provider.
#[derive(Debug, Clone, Serialize)]
pub struct Schema {
    pub common_options: Vec<OptionInfo>,
    pub providers: Vec<ProviderInfo>,
}

/// A common export option: its key, JSON type and default.
#[derive(Debug, Clone, Serialize)]
pub struct OptionInfo {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub default: Value,
}

/// The fields a `deny_unknown_fields` struct accepts, read from serde's own "unknown field"
/// error for a key no struct has. Empty if the struct accepts anything.
pub(crate) fn field_names<T: DeserializeOwned>() -> Vec<String> {
    let mut probe = Map::new();
    probe.insert("\u{1}".into(), Value::Null);
    let Err(e) = serde_json::from_value::<T>(Value::Object(probe)) else {
        return Vec::new();
    };
    let msg = e.to_string();
    let Some((_, expected)) = msg.split_once("expected ") else {
        return Vec::new();
    };
    // "one of `a`, `b`" or "`a`": the names are what the backticks hold.
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The keys of a provider config that embeds the kit's network keys.
pub(crate) fn with_net<T: DeserializeOwned>() -> Vec<String> {
    let mut keys = field_names::<T>();
    keys.extend(
        super::kit::config::NET_KEYS
            .iter()
            .map(|k| (*k).to_string()),
    );
    keys
}

/// The common options with their types and defaults.
pub(crate) fn common_options() -> Vec<OptionInfo> {
    let defaults = serde_json::to_value(CommonOptions::default()).unwrap_or_default();
    CommonOptions::FIELDS
        .iter()
        .map(|k| {
            let default = defaults.get(*k).cloned().unwrap_or(Value::Null);
            let kind = match &default {
                Value::Bool(_) => "boolean",
                Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
                Value::Null => "null",
            };
            OptionInfo {
                key: (*k).to_string(),
                kind,
                default,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Two {
        alpha: u32,
        beta: Option<String>,
    }

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct One {
        only: u32,
    }

    #[test]
    fn reads_field_names_off_serde() {
        assert_eq!(field_names::<Two>(), ["alpha", "beta"]);
        assert_eq!(field_names::<One>(), ["only"]);
        // A struct that takes anything has no list.
        assert!(field_names::<Map<String, Value>>().is_empty());
    }

    #[test]
    fn common_options_have_types_and_defaults() {
        let c = common_options();
        let get = |k: &str| c.iter().find(|o| o.key == k).unwrap();
        assert_eq!(get("overwrite").kind, "boolean");
        assert_eq!(get("overwrite").default, Value::Bool(false));
        assert_eq!(get("keep_partial").default, Value::Bool(true));
        assert_eq!(get("parallel_files").kind, "integer");
        assert_eq!(c.len(), CommonOptions::FIELDS.len());
    }
}
