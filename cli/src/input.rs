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

/// A rate with an optional binary unit: `50M` is 50 MiB/s, `1.5G`, `800K`, `800KiB`, `2MB`
/// (K, M, G, T are powers of 1024, with or without `i`/`B`); a plain number is bytes per
/// second.
pub(crate) fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_uppercase();
    let unit = unit.strip_suffix("/S").unwrap_or(&unit);
    let unit = unit.strip_suffix('B').unwrap_or(unit);
    let unit = unit.strip_suffix('I').unwrap_or(unit);
    let mult: u64 = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(format!("{s:?}: the unit must be K, M, G or T (e.g. 50M)")),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a rate (e.g. 50M, 1.5G, 800K)"))?;
    let v = n * mult as f64;
    if !(v >= 1.0 && v < u64::MAX as f64) {
        return Err(format!("{s:?}: a rate must be at least 1 byte per second"));
    }
    Ok(v as u64)
}

/// `path` made absolute against the current folder (not resolved: it may not exist yet), so a
/// resume from another folder writes where the export did.
pub(crate) fn absolute(path: &std::path::Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("output folder {}: {e}", path.display()))
}

/// The output folder of `export` and `batch`: absolute (see [`absolute`]) and, unless this is
/// a dry run, made when it is missing, with its parents, as `mkdir -p` would.
pub(crate) fn output_dir(path: &std::path::Path, create: bool) -> Result<PathBuf, String> {
    let p = absolute(path)?;
    if create {
        std::fs::create_dir_all(&p).map_err(|e| format!("output folder {}: {e}", p.display()))?;
    } else if let Some(up) = p.ancestors().find(|a| a.exists())
        && !up.is_dir()
    {
        // What mkdir -p would trip on, said now.
        return Err(format!(
            "output folder {} cannot be made: {} is not a folder",
            p.display(),
            up.display()
        ));
    }
    Ok(p)
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
    fn rates_take_binary_units() {
        assert_eq!(parse_rate("50M").unwrap(), 50 << 20);
        assert_eq!(parse_rate("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_rate("800KiB").unwrap(), 800 << 10);
        assert_eq!(parse_rate("2mb/s").unwrap(), 2 << 20);
        assert_eq!(parse_rate("1000").unwrap(), 1000);
        for bad in ["", "M", "5X", "-1M", "0", "1..5M"] {
            assert!(parse_rate(bad).is_err(), "{bad:?} accepted");
        }
    }

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
