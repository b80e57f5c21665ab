//! What the user sees while the exports run, in one of three modes: bars on a terminal, a line
//! per change on a pipe (logs and CI), JSON events with `--json` (programs).

use std::io::{IsTerminal as _, Write as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hypersdk::{ExportResult, Progress, ProgressCallback};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::shown;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Bars,
    Text,
    Json,
    /// `-q`: nothing while the exports run, no summary.
    Quiet,
}

impl Mode {
    pub(super) fn of(json: bool, quiet: bool) -> Mode {
        if json {
            Mode::Json
        } else if quiet {
            Mode::Quiet
        } else if std::io::stdout().is_terminal() {
            Mode::Bars
        } else {
            Mode::Text
        }
    }
}

pub(super) struct Screen {
    pub mode: Mode,
    /// Hidden unless `Mode::Bars`, so the other modes can drive the same bars and never draw.
    multi: MultiProgress,
    /// Shared with the JSON progress callbacks, which run on the library's threads.
    stdout: Arc<Mutex<()>>,
}

impl Screen {
    pub(super) fn new(mode: Mode) -> Screen {
        let stdout = Arc::new(Mutex::new(()));
        let multi = MultiProgress::with_draw_target(if mode == Mode::Bars {
            ProgressDrawTarget::stdout_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        });
        Screen {
            mode,
            multi,
            stdout,
        }
    }

    pub(super) fn bar(&self, label: &str) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(0));
        bar.set_style(style());
        bar.set_prefix(bar_label(label));
        bar
    }

    /// Added after every export's bar, so it stays at the bottom. One export needs no total.
    pub(super) fn total(&self, exports: usize) -> Option<ProgressBar> {
        (self.mode == Mode::Bars && exports > 1).then(|| {
            let t = self.multi.add(ProgressBar::new(0));
            t.set_style(style());
            t.set_prefix(format!("total ({exports} exports)"));
            t
        })
    }

    /// In JSON mode every progress delivery is an event, not just what the poll happens to see.
    pub(super) fn callback(&self, label: &str) -> Option<ProgressCallback> {
        (self.mode == Mode::Json).then(|| {
            let (label, lock) = (label.to_string(), self.stdout.clone());
            Box::new(move |p: &Progress| emit(&lock, &progress_json(&label, p))) as ProgressCallback
        })
    }

    pub(super) fn interrupted(&self) {
        let msg = "interrupted: cancelling every export and undoing its cloud side (Ctrl+C again to quit at once)";
        match self.mode {
            Mode::Json => self.emit(&json!({"event": "interrupted"})),
            Mode::Bars => {
                let _ = self.multi.println(msg);
            }
            // Never a panic (a hung-up terminal, a closed pipe): cleanup must still be waited for.
            Mode::Text | Mode::Quiet => {
                let _ = writeln!(std::io::stderr(), "{msg}");
            }
        }
    }

    pub(super) fn emit(&self, v: &Value) {
        emit(&self.stdout, v);
    }
}

/// One export's place on the screen.
pub(super) struct Lane {
    bar: ProgressBar,
    last_line: String,
    last_print: Instant,
}

impl Lane {
    pub(super) fn new(bar: ProgressBar) -> Lane {
        Lane {
            bar,
            last_line: String::new(),
            last_print: Instant::now(),
        }
    }

    pub(super) fn show(&mut self, mode: Mode, label: &str, p: &Progress) {
        let line = describe(p);
        match mode {
            Mode::Bars => {
                self.bar.set_length(p.bytes_total.max(p.bytes_done));
                self.bar.set_position(p.bytes_done);
                self.bar.set_message(line.clone());
            }
            Mode::Text => {
                // A line when the phase or message changes, and every 5 s while bytes move.
                if line != self.last_line || self.last_print.elapsed() > Duration::from_secs(5) {
                    let _ = writeln!(
                        std::io::stdout(),
                        "{label}: {line} ({} of {} bytes)",
                        p.bytes_done,
                        p.bytes_total
                    );
                    self.last_print = Instant::now();
                }
            }
            Mode::Json | Mode::Quiet => {}
        }
        self.last_line = line;
    }

    pub(super) fn finish(&self, res: &ExportResult) {
        self.end(
            res.error()
                .map(|e| format!("{}: {}", res.status, shown::error(&e.message))),
        );
    }

    fn end(&self, failure: Option<String>) {
        match failure {
            None => self.bar.finish_with_message("done"),
            // A failed or cancelled bar stays where it stopped: finishing would fill it to 100 %.
            Some(why) => self.bar.abandon_with_message(why),
        }
    }

    pub(super) fn refused(&self, why: &str) {
        self.bar.abandon_with_message(shown::text(why).into_owned());
    }
}

/// Room for a label in front of a bar.
const LABEL_WIDTH: usize = 24;

/// A label that fits in front of a bar, keeping its end: sources of one command usually share
/// their beginning (`vsphere:/DC0/vm/…`, a bucket's URL), and differ at the end.
pub(crate) fn bar_label(label: &str) -> String {
    let n = label.chars().count();
    if n <= LABEL_WIDTH {
        return label.to_string();
    }
    let tail: String = label.chars().skip(n - (LABEL_WIDTH - 1)).collect();
    format!("…{tail}")
}

/// One event per line, never two interleaved: the callbacks and the main loop both write.
fn emit(lock: &Mutex<()>, v: &Value) {
    let _g = lock.lock().unwrap_or_else(|p| p.into_inner());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", shown::json_line(v));
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
        // The library says -1 when it cannot tell; JSON readers get null, not a time.
        "eta_seconds": (p.eta_seconds >= 0.0).then_some(p.eta_seconds),
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
        // The library escapes its messages already; a second pass costs nothing and keeps
        // this screen safe whatever a caller's library version does.
        s.push_str(": ");
        s.push_str(&shown::text(&p.message));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_labels_keep_their_distinguishing_end() {
        assert_eq!(bar_label("vsphere:vm-32"), "vsphere:vm-32");
        let a = bar_label("vsphere:/Datacenter-east/vm/production/db-01");
        let b = bar_label("vsphere:/Datacenter-east/vm/production/db-02");
        assert_ne!(a, b);
        assert!(a.ends_with("db-01") && a.starts_with('…'), "{a}");
        assert_eq!(a.chars().count(), LABEL_WIDTH);
    }

    #[test]
    fn a_bar_that_did_not_finish_stays_where_it_stopped() {
        let screen = Screen::new(Mode::Text);
        let lane = Lane::new(screen.bar("x"));
        lane.bar.set_length(300);
        lane.bar.set_position(100);
        lane.end(Some("cancelled: by the user".into()));
        assert_eq!(lane.bar.position(), 100);
        let lane = Lane::new(screen.bar("y"));
        lane.bar.set_length(300);
        lane.bar.set_position(100);
        lane.end(None);
        assert_eq!(lane.bar.position(), 300, "a done bar is full");
    }
}
