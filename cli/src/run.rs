//! Runs many exports at once and shows them: live bars on a terminal (indicatif), plain lines
//! on a pipe, JSON events with `--json`; then a summary and the exit code of the worst outcome.
//! Ctrl+C once: every export is cancelled and the command waits for their cloud cleanup,
//! printing what is being undone; twice: it exits at once.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hypersdk::{Client, ErrorKind, Export, ExportResult, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Map, Value, json};

use crate::Output;

/// One export to run.
pub(crate) struct Job {
    pub label: String,
    pub provider: String,
    pub source: String,
    pub client: Arc<Client>,
    /// Export options (output_dir included).
    pub options: Map<String, Value>,
    pub config_file: Option<PathBuf>,
    /// From a batch profile: (profile, provider entry), so a resume rebuilds the config with
    /// its secrets from the same places.
    pub profile: Option<(PathBuf, String)>,
}

static INTERRUPTS: AtomicU32 = AtomicU32::new(0);

/// The exit code for one outcome (see `hypersdk --help`).
pub(crate) fn exit_code(r: &ExportResult, interrupted: bool) -> u8 {
    match r.error() {
        None => 0,
        Some(e) => error_code(e.kind, interrupted),
    }
}

/// The exit code of an error kind.
pub(crate) fn error_code(kind: ErrorKind, interrupted: bool) -> u8 {
    match kind {
        ErrorKind::Cancelled if interrupted => 130,
        ErrorKind::Cancelled => 9,
        ErrorKind::InvalidArgument => 2,
        ErrorKind::NotFound => 3,
        ErrorKind::Auth => 4,
        ErrorKind::Network | ErrorKind::Timeout | ErrorKind::Remote => 5,
        ErrorKind::Verification => 6,
        ErrorKind::Io | ErrorKind::AlreadyExists => 7,
        _ => 8,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bars,
    Text,
    Json,
}

/// stdout shared by the JSON callbacks and the main loop: one event per line, never interleaved.
fn emit(lock: &Mutex<()>, v: &Value) {
    let _g = lock.lock().unwrap_or_else(|p| p.into_inner());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn progress_json(label: &str, p: &Progress) -> Value {
    json!({
        "event": "progress",
        "export": label,
        "phase": p.phase.as_str(),
        "bytes_done": p.bytes_done,
        "bytes_total": p.bytes_total,
        "file_index": p.file_index,
        "file_count": p.file_count,
        "file_name": p.file_name,
        "rate_bytes_per_sec": p.rate_bytes_per_sec,
        "eta_seconds": p.eta_seconds,
        "message": p.message,
    })
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:<24!} [{bar:28.cyan/blue}] {percent:>3}% {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>11} {eta:>4} {msg}",
    )
    .expect("a valid template")
    .progress_chars("=> ")
}

fn describe(p: &Progress) -> String {
    let mut s = p.phase.as_str().to_string();
    if p.file_count > 1 && p.file_index > 0 {
        s.push_str(&format!(" file {}/{}", p.file_index, p.file_count));
    }
    if !p.message.is_empty() {
        s.push_str(": ");
        s.push_str(&p.message);
    }
    s
}

pub(crate) fn run_all(jobs: Vec<Job>, out: &Output) -> u8 {
    let mode = if out.json {
        Mode::Json
    } else if std::io::stdout().is_terminal() {
        Mode::Bars
    } else {
        Mode::Text
    };
    if let Err(e) = hypersdk::configure(
        &json!({"max_concurrent_exports": out.max_concurrent.max(1)}).to_string(),
    ) {
        eprintln!("hypersdk: {e}");
        return 2;
    }
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTS.fetch_add(1, Ordering::SeqCst) >= 1 {
            // The second press: out now, whatever is still being undone.
            std::process::exit(130);
        }
    });
    let stdout_lock = Arc::new(Mutex::new(()));
    let started = Instant::now();
    let multi = MultiProgress::with_draw_target(if mode == Mode::Bars {
        ProgressDrawTarget::stdout_with_hz(10)
    } else {
        ProgressDrawTarget::hidden()
    });

    struct Running {
        job: Job,
        export: Option<Export>,
        start_error: Option<String>,
        start_kind: Option<ErrorKind>,
        bar: ProgressBar,
        last_line: String,
        last_print: Instant,
        result: Option<ExportResult>,
        history_id: Option<u64>,
    }
    let mut running: Vec<Running> = Vec::new();
    for job in jobs {
        let bar = multi.add(ProgressBar::new(0));
        bar.set_style(style());
        bar.set_prefix(job.label.clone());
        let callback: Option<hypersdk::ProgressCallback> = (mode == Mode::Json).then(|| {
            let (label, lock) = (job.label.clone(), stdout_lock.clone());
            Box::new(move |p: &Progress| emit(&lock, &progress_json(&label, p)))
                as hypersdk::ProgressCallback
        });
        let opts = Value::Object(job.options.clone()).to_string();
        let (export, start_error, start_kind) =
            match job.client.start_export(&job.source, &opts, callback) {
                Ok(e) => (Some(e), None, None),
                Err(e) => (None, Some(e.to_string()), Some(e.kind())),
            };
        running.push(Running {
            job,
            export,
            start_error,
            start_kind,
            bar,
            last_line: String::new(),
            last_print: Instant::now(),
            result: None,
            history_id: None,
        });
    }
    let total = (mode == Mode::Bars && running.len() > 1).then(|| {
        let t = multi.add(ProgressBar::new(0));
        t.set_style(style());
        t.set_prefix(format!("total ({} exports)", running.len()));
        t
    });

    let mut cancelled = false;
    loop {
        let interrupted = INTERRUPTS.load(Ordering::SeqCst) > 0;
        if interrupted && !cancelled {
            cancelled = true;
            let msg = "interrupted: cancelling every export and undoing its cloud side (Ctrl+C again to quit at once)";
            match mode {
                Mode::Json => emit(&stdout_lock, &json!({"event": "interrupted"})),
                Mode::Bars => {
                    let _ = multi.println(msg);
                }
                Mode::Text => eprintln!("{msg}"),
            }
            for r in &running {
                if let Some(e) = &r.export {
                    e.cancel();
                }
            }
        }
        let mut all_done = true;
        let (mut done_sum, mut total_sum) = (0u64, 0u64);
        for r in &mut running {
            let Some(e) = &r.export else { continue };
            if r.result.is_none() {
                r.result = e.result();
            }
            let p = e.progress();
            done_sum += p.bytes_done;
            total_sum += p.bytes_total.max(p.bytes_done);
            if r.result.is_none() {
                all_done = false;
            }
            let line = describe(&p);
            match mode {
                Mode::Bars => {
                    r.bar.set_length(p.bytes_total.max(p.bytes_done));
                    r.bar.set_position(p.bytes_done);
                    r.bar.set_message(line.clone());
                }
                Mode::Text => {
                    // A line when the phase or message changes, and every 5 s while bytes move.
                    if line != r.last_line || r.last_print.elapsed() > Duration::from_secs(5) {
                        println!(
                            "{}: {line} ({} of {} bytes)",
                            r.job.label, p.bytes_done, p.bytes_total
                        );
                        r.last_print = Instant::now();
                    }
                }
                Mode::Json => {}
            }
            r.last_line = line;
        }
        if let Some(t) = &total {
            t.set_length(total_sum);
            t.set_position(done_sum);
        }
        if all_done {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let interrupted = INTERRUPTS.load(Ordering::SeqCst) > 0;
    for r in &mut running {
        if let Some(res) = &r.result {
            r.bar.finish_with_message(match res.error() {
                None => "done".to_string(),
                Some(e) => format!("{}: {}", res.status, e.message),
            });
            r.history_id = crate::history::record(&r.job, res).ok();
        } else {
            r.bar
                .abandon_with_message(r.start_error.clone().unwrap_or_default());
        }
    }
    if let Some(t) = &total {
        t.finish();
    }

    let mut worst = 0u8;
    for r in &running {
        let code = match (&r.result, &r.start_error) {
            (Some(res), _) => exit_code(res, interrupted),
            (None, _) => r.start_kind.map(|k| error_code(k, false)).unwrap_or(2),
        };
        worst = worst.max(code);
        if mode == Mode::Json {
            let mut v = match &r.result {
                Some(res) => serde_json::from_str(&res.to_json()).unwrap_or(Value::Null),
                None => {
                    json!({"status": "failed", "error": {"kind": "invalid_argument", "message": r.start_error}})
                }
            };
            v["event"] = "result".into();
            v["export"] = r.job.label.clone().into();
            v["provider"] = r.job.provider.clone().into();
            v["exit_code"] = code.into();
            if let Some(id) = r.history_id {
                v["history_id"] = id.into();
            }
            emit(&stdout_lock, &v);
        }
    }
    if mode != Mode::Json {
        summary(
            &running
                .iter()
                .map(|r| {
                    (
                        r.job.label.as_str(),
                        r.job.provider.as_str(),
                        r.result.as_ref(),
                        r.start_error.as_deref(),
                        r.history_id,
                    )
                })
                .collect::<Vec<_>>(),
            started.elapsed(),
            interrupted,
        );
    }
    worst
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

type Row<'a> = (
    &'a str,
    &'a str,
    Option<&'a ExportResult>,
    Option<&'a str>,
    Option<u64>,
);

fn summary(rows: &[Row], elapsed: Duration, interrupted: bool) {
    println!();
    println!(
        "{:<4} {:<28} {:<8} {:<10} {:>6} {:>11} {:>8}  detail",
        "id", "export", "provider", "status", "files", "bytes", "secs"
    );
    for (label, provider, res, start_error, id) in rows {
        let id = id.map(|i| i.to_string()).unwrap_or_else(|| "-".into());
        match res {
            Some(r) => {
                let detail = match r.error() {
                    Some(e) => e.message.clone(),
                    None => r
                        .files
                        .iter()
                        .map(|f| f.path.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                };
                let detail = match &r.cleanup_error {
                    Some(c) => format!("{detail} (cleanup: {c})"),
                    None => detail,
                };
                println!(
                    "{:<4} {:<28} {:<8} {:<10} {:>6} {:>11} {:>8.1}  {}",
                    id,
                    label,
                    provider,
                    r.status,
                    r.files.len(),
                    human(r.bytes_total),
                    r.elapsed_ms as f64 / 1000.0,
                    detail
                );
            }
            None => println!(
                "{:<4} {:<28} {:<8} {:<10} {:>6} {:>11} {:>8}  {}",
                id,
                label,
                provider,
                "refused",
                0,
                "-",
                "-",
                start_error.unwrap_or("")
            ),
        }
    }
    let done = rows
        .iter()
        .filter(|r| r.2.is_some_and(|x| x.error().is_none()))
        .count();
    println!(
        "\n{done} of {} exports done in {:.1} s{}",
        rows.len(),
        elapsed.as_secs_f64(),
        if interrupted {
            " (interrupted; cloud cleanup ran)"
        } else {
            ""
        }
    );
}
