//! The local history of exports: one JSON line per finished export in
//! `$XDG_STATE_HOME/hypersdk/history.jsonl` (default `~/.local/state/hypersdk/`; override with
//! `HYPERSDK_STATE_DIR`). It records what a resume needs — provider, source, options, the config
//! *file* (never an inline config: it may hold secrets) — and what happened: outcome, files,
//! sizes, checksums, time.

use std::io::Write as _;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::run::Job;

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
    let text = match std::fs::read_to_string(&f) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", f.display())),
    };
    // A line cut short by a crash is skipped, not fatal.
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Appends the export's record; returns its id.
pub(crate) fn record(job: &Job, r: &hypersdk::ExportResult) -> Result<u64, String> {
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
        "provider": job.provider,
        "source": job.source,
        "options": job.options,
        "config_file": job.config_file,
        "profile": job.profile.as_ref().map(|(p, name)| json!({"path": p, "provider": name})),
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

pub(crate) fn command(a: &crate::HistoryArgs) -> Result<u8, String> {
    let all = load()?;
    if let Some(id) = a.resume {
        let rec = all
            .iter()
            .find(|v| v["id"].as_u64() == Some(id))
            .ok_or_else(|| format!("no export {id} in the history"))?;
        if rec["status"] == "done" {
            return Err(format!("export {id} is done; nothing to resume"));
        }
        let profile = rec["profile"]["path"]
            .as_str()
            .zip(rec["profile"]["provider"].as_str())
            .map(|(p, n)| (PathBuf::from(p), n.to_string()));
        let provider = rec["provider"].as_str().unwrap_or_default().to_string();
        let (text, config_file) = match (&a.config, rec["config_file"].as_str(), &profile) {
            (Some(c), _, _) => {
                let c = crate::load_config(Some(c))?;
                (c.text, c.file)
            }
            (None, Some(f), _) => {
                let c = crate::load_config(Some(f))?;
                (c.text, c.file)
            }
            (None, None, Some((p, n))) => (crate::batch::provider_config(p, n)?.1, None),
            (None, None, None) => ("{}".to_string(), None),
        };
        let client = std::sync::Arc::new(
            hypersdk::Client::new(&provider, &text).map_err(|e| e.to_string())?,
        );
        let source = rec["source"].as_str().unwrap_or_default().to_string();
        let job = Job {
            label: format!("{source} (resume of {id})"),
            provider,
            source,
            client,
            options: rec["options"].as_object().cloned().unwrap_or_default(),
            config_file,
            profile,
        };
        return Ok(crate::run::run_all(
            vec![job],
            &crate::Output {
                json: a.json,
                max_concurrent: 1,
            },
        ));
    }
    let newest: Vec<&Value> = all.iter().rev().take(a.limit).collect();
    if a.json {
        for v in newest {
            println!("{v}");
        }
        return Ok(0);
    }
    println!(
        "{:<5} {:<20} {:<8} {:<10} {:>12}  source → files",
        "id", "when (UTC)", "provider", "status", "bytes"
    );
    for v in newest {
        let files: Vec<String> = v["files"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|f| {
                        format!(
                            "{} [{}]",
                            f["path"].as_str().unwrap_or(""),
                            f["checksum"].as_str().unwrap_or("no checksum")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{:<5} {:<20} {:<8} {:<10} {:>12}  {} → {}",
            v["id"],
            utc(v["time"].as_u64().unwrap_or(0)),
            v["provider"].as_str().unwrap_or(""),
            v["status"].as_str().unwrap_or(""),
            v["bytes_total"],
            v["source"].as_str().unwrap_or(""),
            if files.is_empty() {
                v["error"]["message"].as_str().unwrap_or("").to_string()
            } else {
                files.join(", ")
            }
        );
    }
    Ok(0)
}

/// `YYYY-MM-DD HH:MM:SS` of a Unix time (UTC), without a date crate.
fn utc(t: u64) -> String {
    let (days, secs) = (t / 86_400, t % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(1_795_819_892), "2026-11-27 22:51:32");
        assert_eq!(super::utc(951_782_400), "2000-02-29 00:00:00");
    }
}
