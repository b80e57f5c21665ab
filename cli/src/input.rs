//! What `--config` and `-o KEY=VALUE` turn into, shared by `export` and `history --resume`.

use std::path::PathBuf;

use serde_json::{Map, Value};

/// A provider config and, when it came from a file, that file (kept in the history so a resume
/// reads it again; inline configs are never stored: they may hold secrets).
pub(crate) struct Config {
    pub text: String,
    pub file: Option<PathBuf>,
}

pub(crate) fn load_config(arg: Option<&str>) -> Result<Config, String> {
    match arg {
        None => Ok(Config {
            text: "{}".into(),
            file: None,
        }),
        Some("-") => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| format!("reading the config from stdin: {e}"))?;
            Ok(Config {
                text: s,
                file: None,
            })
        }
        Some(t) if t.trim_start().starts_with('{') => Ok(Config {
            text: t.to_string(),
            file: None,
        }),
        Some(path) => {
            let p = PathBuf::from(path.strip_prefix('@').unwrap_or(path));
            let text = std::fs::read_to_string(&p)
                .map_err(|e| format!("config file {}: {e}", p.display()))?;
            Ok(Config {
                text,
                file: Some(std::fs::canonicalize(&p).unwrap_or(p)),
            })
        }
    }
}

/// `path` made absolute against the current folder (not resolved: it may not exist yet), so a
/// resume from another folder writes where the export did.
pub(crate) fn absolute(path: &std::path::Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("output folder {}: {e}", path.display()))
}

/// `KEY=VALUE` pairs: VALUE as JSON when it parses (numbers, booleans, objects), else text.
pub(crate) fn parse_options(pairs: &[String]) -> Result<Map<String, Value>, String> {
    let mut m = Map::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("option {p:?} is not KEY=VALUE"))?;
        if k.is_empty() {
            return Err(format!("option {p:?} has no key"));
        }
        let v = serde_json::from_str(v).unwrap_or_else(|_| Value::from(v));
        m.insert(k.to_string(), v);
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_as_json_or_text() {
        let m = parse_options(&[
            "format=ova".into(),
            "parallel_disks=4".into(),
            "overwrite=true".into(),
            "headers={\"a\":\"b\"}".into(),
            "name=a=b".into(),
        ])
        .unwrap();
        assert_eq!(m["format"], "ova");
        assert_eq!(m["parallel_disks"], 4);
        assert_eq!(m["overwrite"], true);
        assert_eq!(m["headers"]["a"], "b");
        assert_eq!(m["name"], "a=b");
        assert!(parse_options(&["novalue".into()]).is_err());
        assert!(parse_options(&["=x".into()]).is_err());
    }
}
