//! `--dry-run`: for each export, what it would create in the cloud and which files it would
//! write where, from the library's `Client::dry_run` (the options checked as a start checks
//! them, nothing asked of the cloud beyond the login the client made). Nothing starts.

use serde_json::{Value, json};

use crate::exit;
use crate::item::Item;
use crate::shown;

/// Prints every item's plan (or why it would be refused); the exit code is what a real run's
/// refusals would give: 0 when every export would start.
pub(super) fn show(items: &[Item], skipped: &[(Item, u64)], json: bool) -> u8 {
    for (item, id) in skipped {
        if json {
            let event =
                json!({"event": "dry_run", "label": item.label, "skipped": {"done_as": id}});
            println!("{}", shown::json_line(&event));
        } else {
            println!(
                "{}\n  skipped: done as history #{id} (--skip-done)",
                item.label
            );
        }
    }
    let mut code = 0;
    for item in items {
        // As a run starts it: a history id in incremental_from becomes that export's record.
        let mut options = item.options.clone();
        let resolved = crate::history::resolve_incremental(&mut options);
        let opts = Value::Object(options).to_string();
        let invalid = hypersdk::ErrorKind::InvalidArgument;
        let plan = match (&item.client, resolved) {
            (Ok(client), Ok(())) => client.dry_run(&item.source, &opts).map_err(|e| {
                let kind = e.kind();
                (kind.as_str(), exit::of_kind(kind, false), e.to_string())
            }),
            (Err(r), _) => Err((
                r.kind.as_str(),
                exit::of_kind(r.kind, false),
                r.message.clone(),
            )),
            (_, Err(m)) => Err((invalid.as_str(), exit::of_kind(invalid, false), m)),
        };
        match plan {
            Ok(p) => {
                if json {
                    let mut v = serde_json::to_value(&p).unwrap_or_default();
                    v["event"] = "dry_run".into();
                    v["label"] = item.label.clone().into();
                    println!("{}", shown::json_line(&v));
                    continue;
                }
                let dir = std::path::Path::new(&p.output_dir);
                let missing = if dir.exists() {
                    ""
                } else {
                    " (made when the export runs)"
                };
                println!("{}", item.label);
                println!("  into {}{missing}", shown::text(&p.output_dir));
                if p.cloud.is_empty() {
                    println!("  in the cloud: nothing is made; the source is only read");
                } else {
                    println!("  in the cloud:");
                    for c in &p.cloud {
                        println!("    - {}", shown::text(c));
                    }
                }
                println!("  files:");
                for f in &p.files {
                    println!("    - {}", shown::text(f));
                }
            }
            Err((kind, c, message)) => {
                code = code.max(c);
                eprintln!("hypersdk: {}: {}", item.label, shown::text(&message));
                if json {
                    let event = json!({
                        "event": "dry_run",
                        "label": item.label,
                        "error": {"kind": kind, "message": message},
                    });
                    println!("{}", shown::json_line(&event));
                }
            }
        }
    }
    code
}
