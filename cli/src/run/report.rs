//! After the run: one result event per export (JSON) or the summary table (otherwise), and the
//! exit code of the worst outcome.

use std::io::Write as _;
use std::time::Duration;

use hypersdk::ExportResult;
use serde_json::{Value, json};

use super::screen::{Lane, Mode, Screen};
use crate::exit;
use crate::item::{Item, Refusal};
use crate::shown;

/// `println!` that cannot panic: after a SIGHUP the terminal may be gone (EIO) and a pipe's
/// reader dead (EPIPE); the summary is then lost, not the exit code.
macro_rules! say {
    () => {{
        let _ = writeln!(std::io::stdout());
    }};
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// How one item ended, once every export has.
pub(super) struct Finished {
    pub item: Item,
    pub outcome: Result<ExportResult, Refusal>,
    pub history_id: Option<u64>,
    /// Kept until the run returns: indicatif drops a dropped bar from its later redraws, so
    /// letting it go earlier would change the last frame the total bar draws.
    pub _lane: Lane,
}

pub(super) fn report(
    finished: &[Finished],
    screen: &Screen,
    elapsed: Duration,
    interrupted: bool,
) -> u8 {
    let mut worst = 0u8;
    for f in finished {
        let code = match &f.outcome {
            Ok(res) => exit::of_result(res, interrupted),
            // Refused before it ran: a Ctrl+C cannot have caused it.
            Err(refusal) => exit::of_kind(refusal.kind, false),
        };
        worst = worst.max(code);
        if screen.mode == Mode::Json {
            screen.emit(&result_event(f, code));
        }
    }
    match screen.mode {
        Mode::Json => {}
        Mode::Quiet => failures(finished),
        Mode::Bars | Mode::Text => summary(finished, elapsed, interrupted),
    }
    worst
}

fn result_event(f: &Finished, code: u8) -> Value {
    let mut v = match &f.outcome {
        Ok(res) => serde_json::from_str(&res.to_json()).unwrap_or(Value::Null),
        Err(Refusal { kind, message }) => {
            json!({"status": "failed", "error": {"kind": kind.as_str(), "message": message}})
        }
    };
    v["event"] = "result".into();
    v["export"] = f.item.label.clone().into();
    v["provider"] = f.item.provider.clone().into();
    v["exit_code"] = code.into();
    if let Some(id) = f.history_id {
        v["history_id"] = id.into();
    }
    v
}

pub(crate) fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `--skip-done`: what was not run, before the rest starts.
pub(super) fn skipped(skipped: &[(Item, u64)], screen: &Screen) {
    for (item, id) in skipped {
        match screen.mode {
            Mode::Json => screen.emit(&json!({
                "event": "result", "status": "skipped", "export": item.label,
                "provider": item.provider, "history_id": id, "exit_code": 0,
            })),
            Mode::Quiet => {}
            Mode::Bars | Mode::Text => {
                say!(
                    "{}: skipped: done in export {id}, its files unchanged",
                    item.label
                )
            }
        }
    }
}

/// `-q`: one line on stderr per export that did not finish.
fn failures(finished: &[Finished]) {
    for f in finished {
        let why = match &f.outcome {
            Ok(r) => match r.error() {
                None => continue,
                Some(e) => format!("{}: {}", r.status, shown::error(&e.message)),
            },
            Err(refusal) => format!("refused: {}", shown::error(&refusal.message)),
        };
        let _ = writeln!(std::io::stderr(), "{}: {why}", f.item.label);
    }
}

/// The bytes of a done export; of one that was not, what it had of the total (a cancelled
/// export that fetched a third of 30 GiB did not move 30 GiB).
fn bytes_column(r: &ExportResult) -> String {
    if r.error().is_none() {
        human(r.bytes_total)
    } else {
        format!(
            "{}/{}",
            human(r.bytes_fetched + r.bytes_resumed),
            human(r.bytes_total)
        )
    }
}

fn summary(finished: &[Finished], elapsed: Duration, interrupted: bool) {
    say!();
    say!(
        "{:<4} {:<28} {:<8} {:<10} {:>6} {:>11} {:>8}  detail",
        "id",
        "export",
        "provider",
        "status",
        "files",
        "bytes",
        "secs"
    );
    for f in finished {
        let id = f
            .history_id
            .map(|i| i.to_string())
            .unwrap_or_else(|| "-".into());
        let (label, provider) = (&f.item.label, &f.item.provider);
        match &f.outcome {
            Ok(r) => {
                let detail = match r.error() {
                    Some(e) => shown::error(&e.message),
                    None => r
                        .files
                        .iter()
                        .map(|f| shown::text(&f.path.display().to_string()).into_owned())
                        .collect::<Vec<_>>()
                        .join(", "),
                };
                let detail = match &r.cleanup_error {
                    Some(c) => format!("{detail} (cleanup: {})", shown::text(c)),
                    None => detail,
                };
                say!(
                    "{:<4} {:<28} {:<8} {:<10} {:>6} {:>11} {:>8.1}  {}",
                    id,
                    label,
                    provider,
                    r.status,
                    r.files.len(),
                    bytes_column(r),
                    r.elapsed_ms as f64 / 1000.0,
                    detail
                );
            }
            Err(refusal) => say!(
                "{:<4} {:<28} {:<8} {:<10} {:>6} {:>11} {:>8}  {}",
                id,
                label,
                provider,
                "refused",
                0,
                "-",
                "-",
                shown::error(&refusal.message)
            ),
        }
    }
    let done = finished
        .iter()
        .filter(|f| f.outcome.as_ref().is_ok_and(|r| r.error().is_none()))
        .count();
    say!(
        "\n{done} of {} exports done in {:.1} s{}",
        finished.len(),
        elapsed.as_secs_f64(),
        if interrupted {
            " (interrupted; cloud cleanup ran)"
        } else {
            ""
        }
    );
}
