//! The local history of exports: one JSON line per finished export in
//! `$XDG_STATE_HOME/hypersdk/history.jsonl` (default `~/.local/state/hypersdk/`; override with
//! `HYPERSDK_STATE_DIR`). It records what a resume needs — provider, source, options, the config
//! *file* (never an inline config: it may hold secrets) — and what happened: outcome, files,
//! sizes, checksums, time.

use std::io::Write as _;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::item::Item;

fn dir() -> Result<PathBuf, String> {
    if let Some(d) = std::env::var_os("HYPERSDK_STATE_DIR") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("hypersdk"));
    }
    let home = std::env::var_os("HOME").ok_or("no HOME for the history")?;
    Ok(PathBuf::from(home).join(".local/state/hypersdk"))
}

fn file() -> Result<PathBuf, String> {
    Ok(dir()?.join("history.jsonl"))
}

/// Every record, oldest first.
pub(crate) fn load() -> Result<Vec<Value>, String> {
    let f = file()?;
    let bytes = match std::fs::read(&f) {
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

/// Appends the export's record; returns its id.
pub(crate) fn record(item: &Item, r: &hypersdk::ExportResult) -> Result<u64, String> {
    let d = dir()?;
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    let id = load()?
        .iter()
        .filter_map(|v| v["id"].as_u64())
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
    let line = json!({
        "id": id,
        "time": now,
        "provider": item.provider,
        "source": item.source,
        "options": item.options,
        "config_file": item.config_file,
        "profile": item.profile.as_ref().map(|(p, name)| json!({"path": p, "provider": name})),
        "status": r.status,
        "error": r.error().map(|e| json!({"kind": e.kind.as_str(), "message": e.message})),
        "files": files,
        "bytes_total": r.bytes_total,
        "bytes_fetched": r.bytes_fetched,
        "bytes_resumed": r.bytes_resumed,
        "elapsed_ms": r.elapsed_ms,
    });
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file()?)
        .map_err(|e| format!("history: {e}"))?;
    // One write per line: concurrent commands append whole lines.
    f.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| format!("history: {e}"))?;
    Ok(id)
}
