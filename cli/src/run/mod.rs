//! Runs many exports at once and shows them: live bars on a terminal (indicatif), plain lines
//! on a pipe, JSON events with `--json`; then a summary and the exit code of the worst outcome.
//! Ctrl+C (or SIGTERM, SIGHUP) once: every export is cancelled and the command waits for their
//! cloud cleanup, printing what is being undone; twice: it exits at once.

mod dry;
mod report;
mod screen;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use hypersdk::{Export, ExportResult};
use indicatif::ProgressBar;
use serde_json::{Value, json};

use crate::history;
use crate::item::{Item, Refusal};
use report::Finished;
pub(crate) use report::human;
use screen::{Lane, Mode, Screen};

#[derive(Args, Default, Clone)]
pub(crate) struct Output {
    /// One JSON event per progress delivery and per result on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress and no summary: a line on stderr for each export that did not finish, and
    /// the exit code.
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,
    /// Exports running at once (the rest wait, by priority). Default 4; over a batch
    /// profile's max_concurrent.
    #[arg(long)]
    pub max_concurrent: Option<u64>,
    /// Bandwidth of all exports together, bytes per second: 50M, 1.5G, 800K (K, M, G, T are
    /// powers of 1024; a plain number is bytes).
    #[arg(long, value_name = "RATE", value_parser = crate::input::parse_rate)]
    pub bwlimit: Option<u64>,
    /// Skip an export the history has as done with the same provider, source and options (how
    /// it ran aside), when every file it wrote is still there with its size: a rerun of a
    /// batch runs only what did not finish.
    #[arg(long)]
    pub skip_done: bool,
    /// Bandwidth of each export, the same units (over `-o max_bytes_per_second`).
    #[arg(long, value_name = "RATE", value_parser = crate::input::parse_rate)]
    pub bwlimit_per_export: Option<u64>,
    /// Files of one export downloaded at once (the parallel_files option; vSphere's disks
    /// follow -o parallel_disks). Exports at once: --max-concurrent.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=64))]
    pub transfers: Option<u64>,
    /// Start nothing: check the config, the login and the options, and print for each export
    /// what it would create in the cloud and which files it would write where. Nothing is
    /// asked of the cloud beyond the login, and no folder is made.
    #[arg(long)]
    pub dry_run: bool,
}

/// Exports at once when neither the flag nor a profile says.
const DEFAULT_CONCURRENT: u64 = 4;

/// Presses of Ctrl+C so far. A static because the handler can be set once per process and
/// outlives any one run.
static INTERRUPTS: AtomicU32 = AtomicU32::new(0);

fn interrupted() -> bool {
    INTERRUPTS.load(Ordering::SeqCst) > 0
}

fn on_ctrl_c() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTS.fetch_add(1, Ordering::SeqCst) >= 1 {
            // The second press: out now, whatever is still being undone.
            std::process::exit(130);
        }
    });
}

struct Running {
    item: Item,
    lane: Lane,
    export: Result<Export, Refusal>,
    result: Option<ExportResult>,
}

pub(crate) fn run_all(items: Vec<Item>, out: &Output) -> u8 {
    let mode = Mode::of(out.json, out.quiet);
    let mut settings = json!({
        "max_concurrent_exports": out.max_concurrent.unwrap_or(DEFAULT_CONCURRENT).max(1)
    });
    if let Some(rate) = out.bwlimit {
        settings["max_bytes_per_second"] = rate.into();
    }
    let mut items = items;
    if let Some(rate) = out.bwlimit_per_export {
        for i in &mut items {
            i.options.insert("max_bytes_per_second".into(), rate.into());
        }
    }
    if let Some(n) = out.transfers {
        for i in &mut items {
            i.options.insert("parallel_files".into(), n.into());
        }
    }
    if out.dry_run {
        return dry::show(&items, out.json);
    }
    if let Err(e) = hypersdk::configure(&settings.to_string()) {
        eprintln!("hypersdk: {e}");
        return 2;
    }
    let (items, skipped) = if out.skip_done {
        let records = crate::history::load().unwrap_or_default();
        let (mut run, mut skip) = (Vec::new(), Vec::new());
        for i in items {
            match crate::history::done_before(&records, &i) {
                Some(id) => skip.push((i, id)),
                None => run.push(i),
            }
        }
        (run, skip)
    } else {
        (items, Vec::new())
    };
    on_ctrl_c();
    let screen = Screen::new(mode);
    let started = Instant::now();
    report::skipped(&skipped, &screen);
    let mut running = start(items, &screen);
    let total = screen.total(running.len());
    watch(&mut running, &screen, total.as_ref());
    let interrupted = interrupted();
    let finished = finish(running, total.as_ref());
    report::report(&finished, &screen, started.elapsed(), interrupted)
}

/// Every export is started at once: the library's queue, not this loop, holds back those over
/// `max_concurrent`, by priority.
fn start(items: Vec<Item>, screen: &Screen) -> Vec<Running> {
    items
        .into_iter()
        .map(|item| {
            let bar = screen.bar(&item.label);
            let callback = screen.callback(&item.label);
            let opts = Value::Object(item.options.clone()).to_string();
            let export = match &item.client {
                Ok(client) => client
                    .start_export(&item.source, &opts, callback)
                    .map_err(|e| Refusal::of(&e, "")),
                Err(refusal) => Err(refusal.clone()),
            };
            Running {
                item,
                lane: Lane::new(bar),
                export,
                result: None,
            }
        })
        .collect()
}

/// Polls every export until all have ended. Polled rather than drawn from the progress
/// callbacks: one loop sees every export at once, which the total bar and Ctrl+C need.
fn watch(running: &mut [Running], screen: &Screen, total: Option<&ProgressBar>) {
    let mut cancelled = false;
    loop {
        if interrupted() && !cancelled {
            cancelled = true;
            screen.interrupted();
            for r in running.iter() {
                if let Ok(e) = &r.export {
                    e.cancel();
                }
            }
        }
        let mut all_done = true;
        let (mut done_sum, mut total_sum) = (0u64, 0u64);
        for r in running.iter_mut() {
            let Ok(e) = &r.export else { continue };
            if r.result.is_none() {
                r.result = e.result();
            }
            // Read after the result, so an export's last update shows its final bytes.
            let p = e.progress();
            done_sum += p.bytes_done;
            total_sum += p.bytes_total.max(p.bytes_done);
            if r.result.is_none() {
                all_done = false;
            }
            r.lane.show(screen.mode, &r.item.label, &p);
        }
        if let Some(t) = total {
            t.set_length(total_sum);
            t.set_position(done_sum);
        }
        if all_done {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Leaves every bar on its last word and records the ended exports in the history, before any
/// result is printed: the results name their history ids.
fn finish(running: Vec<Running>, total: Option<&ProgressBar>) -> Vec<Finished> {
    let finished = running
        .into_iter()
        .map(|r| {
            let (outcome, history_id) = match (r.result, r.export) {
                (Some(res), _) => {
                    r.lane.finish(&res);
                    let id = history::record(&r.item, &res).ok();
                    (Ok(res), id)
                }
                (None, Err(refusal)) => {
                    r.lane.refused(&refusal.message);
                    (Err(refusal), None)
                }
                (None, Ok(_)) => unreachable!("watch returns once every started export has ended"),
            };
            Finished {
                item: r.item,
                outcome,
                history_id,
                _lane: r.lane,
            }
        })
        .collect();
    if let Some(t) = total {
        t.finish();
    }
    finished
}
