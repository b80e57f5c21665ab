//! `hypersdk history`: the newest records, or one of them run again. Apart from the store in
//! `history.rs` because a resume runs exports, and the run itself writes to the store: kept in
//! one module, the two would import each other.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use serde_json::{Map, Value};

use crate::exit::Failure;
use crate::item::Item;
use crate::{batch, history, input, run, shown};

#[derive(Args)]
pub(crate) struct HistoryArgs {
    /// `show ID`: one export's whole record (options, files and checksums, error, cleanup).
    #[arg(value_parser = ["show"], requires = "id")]
    action: Option<String>,
    /// The export `show` shows.
    id: Option<u64>,
    /// Run this export again (same provider, source, options and config file).
    #[arg(long, value_name = "ID")]
    resume: Option<u64>,
    /// The provider config for --resume, when the original came inline or from stdin.
    #[arg(long)]
    config: Option<String>,
    /// The source for --resume, when it held a secret the history does not keep (a pre-signed
    /// or SAS URL): it must be the same source, secrets aside.
    #[arg(long)]
    source: Option<String>,
    /// An option for --resume, KEY=VALUE, over the recorded ones: how withheld options (header
    /// values, signed URLs in `files`) are given again. Repeatable.
    #[arg(short = 'o', long = "option", value_name = "KEY=VALUE")]
    options: Vec<String>,
    /// A config secret for --resume, KEY=env:NAME or KEY=file:PATH (as `export --secret`).
    /// Repeatable.
    #[arg(long = "secret", value_name = "KEY=env:NAME|file:PATH")]
    secrets: Vec<String>,
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn command(a: &HistoryArgs) -> Result<u8, Failure> {
    // A history that cannot be read is a local file error, not bad input.
    let all = history::load().map_err(|message| Failure {
        code: 7,
        kind: hypersdk::ErrorKind::Io.as_str(),
        message,
    })?;
    match (a.resume, a.action.as_deref(), a.id) {
        (Some(id), _, _) => resume(a, &all, id),
        (None, Some("show"), Some(id)) => show_one(a, &all, id),
        _ => {
            show(a, &all);
            Ok(0)
        }
    }
}

fn resume(a: &HistoryArgs, all: &[Value], id: u64) -> Result<u8, Failure> {
    let given = Given {
        config: a.config.as_deref(),
        source: a.source.as_deref(),
        options: &a.options,
        secrets: &a.secrets,
    };
    let (item, replayed) = resume_item(all, id, &given)?;
    eprintln!(
        "hypersdk: resuming export {id}: {} {} with {replayed}",
        item.provider,
        shown::source(&item.source),
    );
    Ok(run::run_all(
        vec![item],
        &run::Output {
            json: a.json,
            max_concurrent: Some(1),
            ..Default::default()
        },
    ))
}

/// What a resume is given besides the record: `--config`, `--source`, `-o` and `--secret`.
#[derive(Default)]
pub(crate) struct Given<'a> {
    pub config: Option<&'a str>,
    pub source: Option<&'a str>,
    pub options: &'a [String],
    pub secrets: &'a [String],
}

/// The item that runs history record `id` again, and the options it replays as they are
/// shown (printable, secrets redacted): `history --resume` and the TUI's history view.
pub(crate) fn resume_item(
    all: &[Value],
    id: u64,
    given: &Given<'_>,
) -> Result<(Item, String), Failure> {
    let rec = all
        .iter()
        .find(|v| v["id"].as_u64() == Some(id))
        .ok_or_else(|| format!("no export {id} in the history"))?;
    if rec["status"] == "done" {
        return Err(format!("export {id} is done; nothing to resume").into());
    }
    let source = resumed_source(given.source, rec, id)?;
    let options = resumed_options(given.options, rec, id)?;
    let profile = rec["profile"]["path"]
        .as_str()
        .zip(rec["profile"]["provider"].as_str())
        .map(|(p, n)| (PathBuf::from(p), n.to_string()));
    let provider = rec["provider"].as_str().unwrap_or_default().to_string();
    // --config wins over the recorded file: the file may have moved, or the original config
    // came inline and was never stored.
    let (text, config_file) = match (given.config.or(rec["config_file"].as_str()), &profile) {
        (Some(c), _) => {
            let c = input::load_config(Some(c))?;
            (c.text, c.file)
        }
        (None, Some((p, n))) => (batch::provider_config(p, n)?.1, None),
        (None, None) => ("{}".to_string(), None),
    };
    // As `export` completes it: --secret values, and what the environment fills in.
    let (text, _) = crate::discover::complete(&provider, &text, given.secrets)?;
    let client = Arc::new(hypersdk::Client::new(&provider, &text)?);
    // What runs again is said before it runs: an `overwrite` or a `file_name` replayed unseen
    // could replace a file the user kept since.
    let (shown_options, _) = history::redact_options(&options);
    let replayed: Vec<String> = shown_options
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.as_str().map_or_else(|| v.to_string(), str::to_string)
            )
        })
        .collect();
    let item = Item {
        label: format!("{} (resume of {id})", shown::source(&source)),
        provider,
        source,
        client: Ok(client),
        options,
        config_file,
        profile,
    };
    Ok((item, shown::text(&replayed.join(", ")).into_owned()))
}

/// Whether the record withheld `what` (its source, or an option key).
fn withheld(rec: &Value, what: &str) -> bool {
    rec["withheld"]
        .as_array()
        .is_some_and(|w| w.iter().any(|x| x == what))
}

/// The recorded source, or `--source` when the record withheld it; a `--source` that is not the
/// recorded one, secrets aside, is refused (a resume would mix two exports in one file).
fn resumed_source(given: Option<&str>, rec: &Value, id: u64) -> Result<String, Failure> {
    let stored = rec["source"].as_str().unwrap_or_default();
    match given {
        // Both sides redacted: a record from before sources were redacted holds it whole.
        Some(s) if hypersdk::redact_source(s) != hypersdk::redact_source(stored) => Err(format!(
            "--source {} is not the source of export {id} ({})",
            shown::source(s),
            shown::text(stored)
        )
        .into()),
        Some(s) => Ok(s.to_string()),
        None if withheld(rec, "source") => Err(format!(
            "export {id}'s source held a secret the history does not keep ({} without its \
             query or user info): give it again with --source",
            shown::text(stored)
        )
        .into()),
        None => Ok(stored.to_string()),
    }
}

/// The recorded options with `-o` over them; an option the record withheld must be given again.
fn resumed_options(given: &[String], rec: &Value, id: u64) -> Result<Map<String, Value>, Failure> {
    let mut options = rec["options"].as_object().cloned().unwrap_or_default();
    let given = input::parse_options(given)?;
    for k in rec["withheld"].as_array().into_iter().flatten() {
        let Some(k) = k.as_str().filter(|k| *k != "source") else {
            continue;
        };
        if !given.contains_key(k) {
            return Err(format!(
                "export {id}'s option {k} held a secret the history does not keep: give it \
                 again with -o {k}=..."
            )
            .into());
        }
    }
    options.extend(given);
    Ok(options)
}

/// `history show ID`: the record, every field on its own line (or the JSON line).
fn show_one(a: &HistoryArgs, all: &[Value], id: u64) -> Result<u8, Failure> {
    let mut v = all
        .iter()
        .find(|v| v["id"].as_u64() == Some(id))
        .cloned()
        .ok_or_else(|| format!("no export {id} in the history"))?;
    // Records written before sources were redacted may still hold a secret.
    if let Some(s) = v["source"].as_str() {
        v["source"] = hypersdk::redact_source(s).into();
    }
    if a.json {
        println!("{}", shown::json_line(&v));
        return Ok(0);
    }
    let field = |k: &str| match &v[k] {
        Value::Null => "-".to_string(),
        Value::String(s) => shown::text(s).into_owned(),
        other => shown::text(&other.to_string()).into_owned(),
    };
    println!("export    {id}");
    println!("when      {} UTC", utc(v["time"].as_u64().unwrap_or(0)));
    for k in ["provider", "source", "status"] {
        println!("{k:<9} {}", field(k));
    }
    if let Some(e) = v["error"].as_object() {
        println!(
            "error     {}: {}",
            shown::text(e.get("kind").and_then(Value::as_str).unwrap_or("")),
            shown::error(e.get("message").and_then(Value::as_str).unwrap_or(""))
        );
    }
    if let Some(o) = v["options"].as_object() {
        for (k, val) in o {
            let val = val.as_str().map_or_else(|| val.to_string(), str::to_string);
            println!("option    {}={}", shown::text(k), shown::text(&val));
        }
    }
    for w in v["withheld"].as_array().into_iter().flatten() {
        println!(
            "withheld  {} (give it again to resume)",
            shown::text(w.as_str().unwrap_or(""))
        );
    }
    for f in v["files"].as_array().into_iter().flatten() {
        println!(
            "file      {} ({} bytes, {})",
            shown::text(f["path"].as_str().unwrap_or("")),
            f["size"],
            shown::text(f["checksum"].as_str().unwrap_or("no checksum"))
        );
    }
    println!(
        "bytes     {} total, {} fetched, {} resumed, in {:.1} s",
        v["bytes_total"],
        v["bytes_fetched"],
        v["bytes_resumed"],
        v["elapsed_ms"].as_f64().unwrap_or(0.0) / 1000.0
    );
    for k in ["config_file", "profile"] {
        if !v[k].is_null() {
            println!("{k:<9} {}", field(k));
        }
    }
    Ok(0)
}

fn show(a: &HistoryArgs, all: &[Value]) {
    let newest: Vec<&Value> = all.iter().rev().take(a.limit).collect();
    if a.json {
        for v in newest {
            // Records written before sources were redacted may still hold a secret.
            let mut v = v.clone();
            if let Some(s) = v["source"].as_str() {
                v["source"] = hypersdk::redact_source(s).into();
            }
            println!("{}", shown::json_line(&v));
        }
        return;
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
                            shown::text(f["path"].as_str().unwrap_or("")),
                            shown::text(f["checksum"].as_str().unwrap_or("no checksum"))
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{:<5} {:<20} {:<8} {:<10} {:>12}  {} → {}",
            v["id"],
            utc(v["time"].as_u64().unwrap_or(0)),
            shown::text(v["provider"].as_str().unwrap_or("")),
            shown::text(v["status"].as_str().unwrap_or("")),
            v["bytes_total"],
            // Records written before sources were redacted may still hold a secret.
            shown::source(v["source"].as_str().unwrap_or("")),
            if files.is_empty() {
                shown::text(v["error"]["message"].as_str().unwrap_or("")).into_owned()
            } else {
                files.join(", ")
            }
        );
    }
}

/// `YYYY-MM-DD HH:MM:SS` of a Unix time (UTC), without a date crate.
pub(crate) fn utc(t: u64) -> String {
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
