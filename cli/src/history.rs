//! The local history of exports: one JSON line per finished export in
//! `$XDG_STATE_HOME/hypersdk/history.jsonl` (default `~/.local/state/hypersdk/`; override with
//! `HYPERSDK_STATE_DIR`). It records what a resume needs — provider, source, options, the config
//! *file* (never an inline config: it may hold secrets) — and what happened: outcome, files,
//! sizes, checksums, time.
//!
//! Nothing secret is stored: a source URL loses its query and user info (a pre-signed S3 link,
//! a SAS token), header values and the URLs of an http `files` list are redacted the same way,
//! and the record names what was withheld so `--resume` asks for it again. The folder is
//! `0700` and the file `0600`; ids come from the file under an exclusive lock, so two commands
//! finishing at once never share one.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::item::Item;

/// Where the history lives, and whether that folder is ours to tighten (not one the user named).
fn dir() -> Result<(PathBuf, bool), String> {
    if let Some(d) = std::env::var_os("HYPERSDK_STATE_DIR") {
        return Ok((PathBuf::from(d), false));
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Ok((PathBuf::from(d).join("hypersdk"), true));
    }
    let home = std::env::var_os("HOME").ok_or("no HOME for the history")?;
    Ok((PathBuf::from(home).join(".local/state/hypersdk"), true))
}

fn file() -> Result<PathBuf, String> {
    Ok(dir()?.0.join("history.jsonl"))
}

/// Every record, oldest first.
pub(crate) fn load() -> Result<Vec<Value>, String> {
    read(&file()?)
}

fn read(f: &Path) -> Result<Vec<Value>, String> {
    let bytes = match std::fs::read(f) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", f.display())),
    };
    // A line cut short by a crash is skipped, not fatal — also one cut inside a character,
    // which is not UTF-8 (reading the file as one string failed on it, and every later export
    // then failed to record: fuzz/, the history target).
    Ok(bytes
        .split(|b| *b == b'\n')
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect())
}

/// The history file, opened to append and locked: the folder made `0700` (and tightened when
/// it is our own default folder), the file `0600` (also when an older version made it `0644`).
fn open_locked() -> Result<(File, PathBuf), String> {
    let (d, ours) = dir()?;
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        b.mode(0o700);
        b.create(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        if ours {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("{}: {e}", d.display()))?;
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ours;
        b.create(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let path = d.join("history.jsonl");
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    let f = o
        .open(&path)
        .map_err(|e| format!("history {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("history {}: {e}", path.display()))?;
    }
    f.lock()
        .map_err(|e| format!("history {}: lock: {e}", path.display()))?;
    Ok((f, path))
}

/// What of `options` may be stored: header values become `***`, and every URL (a string
/// option, or a `url` of an http `files` entry) loses what [`hypersdk::redact_source`]
/// removes. Returns the stored options and the keys that lost something.
pub(crate) fn redact_options(options: &Map<String, Value>) -> (Map<String, Value>, Vec<String>) {
    let mut withheld = Vec::new();
    let mut out = Map::new();
    for (k, v) in options {
        let (stored, held) = match (k.as_str(), v) {
            ("headers", Value::Object(h)) => (
                Value::Object(h.keys().map(|n| (n.clone(), "***".into())).collect()),
                !h.is_empty(),
            ),
            // Only URLs: a Windows path or a snapshot name may hold `:` and `@`.
            (_, Value::String(s)) if s.contains("://") && held_secret(s) => {
                (hypersdk::redact_source(s).into(), true)
            }
            ("files", Value::Array(files)) => {
                let mut held = false;
                let files = files
                    .iter()
                    .map(|f| {
                        let mut f = f.clone();
                        if let Some(u) = f.get("url").and_then(Value::as_str)
                            && held_secret(u)
                        {
                            f["url"] = hypersdk::redact_source(u).into();
                            held = true;
                        }
                        f
                    })
                    .collect();
                (Value::Array(files), held)
            }
            _ => (v.clone(), false),
        };
        if held {
            withheld.push(k.clone());
        }
        out.insert(k.clone(), stored);
    }
    (out, withheld)
}

/// Whether redacting `s` removes something that may be a secret (user info, a query, a
/// fragment, an NFC ticket), not merely writes the same URL another way.
fn held_secret(s: &str) -> bool {
    hypersdk::redact_source(s) != s
        && (s.contains(['?', '#', '@']) || s.to_ascii_lowercase().contains("/nfc/"))
}

/// Options that change how an export runs, not what it writes: a rerun that differs only in
/// them is the same export.
const HOW_KEYS: &[&str] = &[
    "max_bytes_per_second",
    "priority",
    "parts_in_flight",
    "max_parts_in_flight",
    "part_size",
    "max_part_size",
    "parallel_files",
    "progress_interval_ms",
    "max_attempts",
    "stall_timeout_ms",
    "retry_base_delay_ms",
    "poll_file_interval_ms",
    "overwrite",
    "keep_partial",
    "verify_resumed",
];

/// The newest history record of this same export (provider, source and options, secrets
/// aside; how it ran aside) that ended done and whose files are all still where it wrote them
/// with the sizes it wrote: `--skip-done` skips the item then.
pub(crate) fn done_before(records: &[Value], item: &Item) -> Option<u64> {
    let source = if held_secret(&item.source) {
        hypersdk::redact_source(&item.source)
    } else {
        item.source.clone()
    };
    let what = |o: &Map<String, Value>| {
        let mut o = o.clone();
        o.retain(|k, _| !HOW_KEYS.contains(&k.as_str()));
        o
    };
    let options = what(&redact_options(&item.options).0);
    records.iter().rev().find_map(|r| {
        // The same account too: one VM name on two vCenters is two exports.
        let profile = item
            .profile
            .as_ref()
            .map(|(p, name)| json!({"path": p, "provider": name}));
        let same = r["status"] == "done"
            && r["provider"] == item.provider.as_str()
            && r["config_file"] == json!(item.config_file)
            && r["profile"] == json!(profile)
            && r["source"] == source.as_str()
            && r["options"].as_object().map(what).as_ref() == Some(&options);
        let files = r["files"].as_array().filter(|f| !f.is_empty())?;
        let intact = files.iter().all(|f| {
            let (Some(path), Some(size)) = (f["path"].as_str(), f["size"].as_u64()) else {
                return false;
            };
            // Not followed: a link planted where the file was is not the file.
            std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() == size)
        });
        (same && intact).then(|| r["id"].as_u64()).flatten()
    })
}

/// `incremental_from` given as a history id (`-o incremental_from=12`): the library takes that
/// export's record in its place (its `status` and `base`, as in a result JSON). A path stays a
/// path.
pub(crate) fn resolve_incremental(options: &mut Map<String, Value>) -> Result<(), String> {
    resolve_incremental_with(options, load)
}

/// [`resolve_incremental`] with the records from `records`, read only when the option is a
/// history id.
pub(crate) fn resolve_incremental_with(
    options: &mut Map<String, Value>,
    records: impl FnOnce() -> Result<Vec<Value>, String>,
) -> Result<(), String> {
    if options
        .get("incremental_from")
        .and_then(Value::as_u64)
        .is_none()
    {
        return Ok(());
    }
    resolve_incremental_in(&records()?, options)
}

fn resolve_incremental_in(
    records: &[Value],
    options: &mut Map<String, Value>,
) -> Result<(), String> {
    let Some(id) = options.get("incremental_from").and_then(Value::as_u64) else {
        return Ok(());
    };
    let record = records
        .iter()
        .find(|r| r["id"].as_u64() == Some(id))
        .cloned()
        .ok_or_else(|| format!("incremental_from: no export {id} in the history"))?;
    if record.get("base").is_none_or(Value::is_null) {
        return Err(format!(
            "incremental_from: export {id} recorded no base (only a block-level export does; \
             an export before this version recorded none)"
        ));
    }
    options.insert("incremental_from".into(), record);
    Ok(())
}

/// Appends the export's record; returns its id.
pub(crate) fn record(item: &Item, r: &hypersdk::ExportResult) -> Result<u64, String> {
    let (mut f, path) = open_locked()?;
    let id = read(&path)?
        .iter()
        .filter_map(|v| v["id"].as_u64())
        // An id no run of ours reaches (a hand-edited or damaged line) is not counted from:
        // past it the next id would overflow.
        .filter(|id| *id < 1 << 53)
        .max()
        .unwrap_or(0)
        + 1;
    let files: Vec<Value> = r
        .files
        .iter()
        .map(|f| {
            json!({
                "path": f.path,
                "size": f.size,
                "checksum": f.checksum.as_ref().map(|c| format!("{}:{}", c.algorithm, c.value)),
            })
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (options, mut withheld) = redact_options(&item.options);
    let source = if held_secret(&item.source) {
        withheld.insert(0, "source".into());
        hypersdk::redact_source(&item.source)
    } else {
        item.source.clone()
    };
    let line = json!({
        "id": id,
        "time": now,
        "provider": item.provider,
        "source": source,
        "options": options,
        "withheld": withheld,
        "config_file": item.config_file,
        "profile": item.profile.as_ref().map(|(p, name)| json!({"path": p, "provider": name})),
        "status": r.status,
        "error": r.error().map(|e| json!({"kind": e.kind.as_str(), "message": e.message})),
        "files": files,
        "bytes_total": r.bytes_total,
        "bytes_fetched": r.bytes_fetched,
        "bytes_resumed": r.bytes_resumed,
        "elapsed_ms": r.elapsed_ms,
        // A block-level export's base: what `-o incremental_from=<this id>` starts from.
        "base": r.provider.get("base"),
    });
    // One write per line, under the lock taken before the id was chosen.
    f.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| format!("history: {e}"))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_id_as_incremental_from_becomes_that_exports_record() {
        let base = json!({"provider": "aws", "kept": true, "files": []});
        let records = vec![
            json!({"id": 1, "status": "done", "base": null}),
            json!({"id": 2, "status": "done", "base": base}),
        ];
        let mut o = Map::new();
        o.insert("incremental_from".into(), json!(2));
        resolve_incremental_in(&records, &mut o).unwrap();
        assert_eq!(o["incremental_from"]["base"], base);
        // A path stays a path; an id without a base or unknown is an error naming it.
        let mut p = Map::new();
        p.insert("incremental_from".into(), json!("/r.json"));
        resolve_incremental_in(&records, &mut p).unwrap();
        assert_eq!(p["incremental_from"], "/r.json");
        for id in [1, 9] {
            let mut o = Map::new();
            o.insert("incremental_from".into(), json!(id));
            let e = resolve_incremental_in(&records, &mut o).unwrap_err();
            assert!(e.contains(&format!("export {id}")), "{e}");
        }
    }

    #[test]
    fn stored_options_keep_no_header_value_or_signed_url() {
        let o: Map<String, Value> = serde_json::from_value(json!({
            "headers": {"Authorization": "Bearer t0ken"},
            "files": [{"url": "https://h/a.img?sig=s1g", "file_name": "a.img"}],
            "output_dir": "/backups",
            "overwrite": true,
        }))
        .unwrap();
        let (stored, withheld) = redact_options(&o);
        let text = Value::Object(stored.clone()).to_string();
        assert!(!text.contains("t0ken") && !text.contains("s1g"), "{text}");
        assert_eq!(stored["headers"]["Authorization"], "***");
        assert_eq!(stored["files"][0]["url"], "https://h/a.img");
        assert_eq!(stored["output_dir"], "/backups");
        assert_eq!(withheld, ["files", "headers"]);
        // Paths and names with `:` and `@` are not URLs; a URL only written differently
        // held nothing.
        let o: Map<String, Value> = serde_json::from_value(json!({
            "output_dir": "C:\\Users\\a@corp\\x",
            "snapshot": "pre:upgrade@v2",
            "files": [{"url": "https://H/a b"}],
        }))
        .unwrap();
        let (stored, withheld) = redact_options(&o);
        assert_eq!(Value::Object(stored), Value::Object(o));
        assert!(withheld.is_empty(), "{withheld:?}");
        assert!(!held_secret("https://H/a b") && held_secret("https://h/nfc/t1/d.vmdk"));
    }
}
