//! The watch view's state: one row per export, fed by the library's progress and results,
//! every cloud-provided string made printable as it arrives.

use hypersdk::{ExportResult, Phase, Progress};

use crate::shown;

/// How an export ended, as the watch view keeps it (printable).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Ended {
    pub status: String,
    pub error: Option<String>,
    /// The cleanup steps that ran: (what, ok, error).
    pub cleanup: Vec<(String, bool, Option<String>)>,
    /// Each file: path, size, checksum, retries, size verified.
    pub files: Vec<String>,
    /// The result JSON (printable), for the `r` view.
    pub json: String,
    pub history_id: Option<u64>,
    /// The exit code this outcome gives (`exit::of_result`).
    pub code: u8,
}

impl Ended {
    pub(crate) fn of(r: &ExportResult, history_id: Option<u64>) -> Ended {
        let json = serde_json::from_str::<serde_json::Value>(&r.to_json())
            .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
            .unwrap_or_default();
        Ended {
            status: r.status.to_string(),
            error: r.error().map(|e| e.message.clone()),
            cleanup: r
                .cleanup
                .iter()
                .map(|c| (c.step.clone(), c.ok, c.error.clone()))
                .collect(),
            files: r
                .files
                .iter()
                .map(|f| {
                    format!(
                        "{} {} bytes {} retries {}{}",
                        f.path.display(),
                        f.size,
                        f.checksum
                            .as_ref()
                            .map(|c| format!("{}:{}", c.algorithm, c.value))
                            .unwrap_or_else(|| "no checksum".into()),
                        f.retries,
                        if f.size_verified {
                            " size verified"
                        } else {
                            ""
                        }
                    )
                })
                .collect(),
            json,
            history_id,
            code: crate::exit::of_result(r, false),
        }
    }

    /// The same, every string printable: what the app keeps.
    pub(crate) fn printable(self) -> Ended {
        let t = |s: &str| shown::text(s).into_owned();
        Ended {
            status: t(&self.status),
            error: self.error.as_deref().map(shown::error),
            cleanup: self
                .cleanup
                .iter()
                .map(|(s, ok, e)| (t(s), *ok, e.as_deref().map(t)))
                .collect(),
            files: self.files.iter().map(|f| t(f)).collect(),
            // Printable, and still one line per JSON line (its own newlines kept).
            json: self.json.lines().map(t).collect::<Vec<_>>().join("\n"),
            ..self
        }
    }

    pub(crate) fn done(&self) -> bool {
        self.status == "done"
    }
}

#[derive(Clone, Debug)]
pub(crate) struct WatchRow {
    pub label: String,
    pub provider: String,
    pub progress: Progress,
    /// The library refused to start it (or its client), with why.
    pub refused: Option<String>,
    pub ended: Option<Ended>,
    /// Each cleanup or status message seen while the export was being cancelled.
    pub steps: Vec<String>,
    pub cancel_asked: bool,
    /// Its priority in the queue (the form's, then `p`/`P`: shown at once).
    pub priority: i32,
    /// The last priority the library took: `priority` goes back to it when a change was not
    /// applied (no longer queued).
    pub applied_priority: i32,
}

pub(crate) fn queued() -> Progress {
    Progress {
        phase: Phase::Queued,
        bytes_done: 0,
        bytes_total: 0,
        file_index: 0,
        file_count: 0,
        file_name: String::new(),
        file_bytes_done: 0,
        file_bytes_total: 0,
        rate_bytes_per_sec: 0.0,
        eta_seconds: -1.0,
        message: String::new(),
    }
}

impl WatchRow {
    pub(crate) fn new(label: &str, provider: &str) -> WatchRow {
        WatchRow {
            label: shown::text(label).into_owned(),
            provider: provider.to_string(),
            progress: queued(),
            refused: None,
            ended: None,
            steps: Vec::new(),
            cancel_asked: false,
            priority: 0,
            applied_priority: 0,
        }
    }

    pub(crate) fn running(&self) -> bool {
        self.ended.is_none() && self.refused.is_none()
    }

    pub(crate) fn failed(&self) -> bool {
        self.refused.is_some() || self.ended.as_ref().is_some_and(|e| !e.done())
    }

    /// A progress reading: kept printable; while a cancel runs, each new message is a step.
    pub(crate) fn update(&mut self, mut p: Progress) {
        p.message = shown::text(&p.message).into_owned();
        p.file_name = shown::text(&p.file_name).into_owned();
        if self.cancel_asked
            && !p.message.is_empty()
            && p.message != self.progress.message
            && self.steps.last() != Some(&p.message)
        {
            self.steps.push(p.message.clone());
        }
        self.progress = p;
    }

    pub(crate) fn phase(&self) -> String {
        match (&self.refused, &self.ended) {
            (Some(_), _) => "refused".into(),
            (None, Some(e)) => e.status.clone(),
            (None, None) => self.progress.phase.as_str().into(),
        }
    }

    /// The cloud's message, or how it ended.
    pub(crate) fn message(&self) -> String {
        match (&self.refused, &self.ended) {
            (Some(why), _) => why.clone(),
            (None, Some(e)) => match &e.error {
                Some(err) => err.clone(),
                None => e
                    .history_id
                    .map(|id| format!("history {id}"))
                    .unwrap_or_default(),
            },
            (None, None) => self.progress.message.clone(),
        }
    }
}

/// The orders `s` cycles through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Sort {
    #[default]
    Started,
    Provider,
    Phase,
    Progress,
}

impl Sort {
    pub(crate) fn next(self) -> Sort {
        match self {
            Sort::Started => Sort::Provider,
            Sort::Provider => Sort::Phase,
            Sort::Phase => Sort::Progress,
            Sort::Progress => Sort::Started,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Sort::Started => "start",
            Sort::Provider => "provider",
            Sort::Phase => "phase",
            Sort::Progress => "progress",
        }
    }
}

#[derive(Default)]
pub(crate) struct Watch {
    pub rows: Vec<WatchRow>,
    /// Index into [`Watch::order`].
    pub selected: usize,
    pub sort: Sort,
    pub details: bool,
}

fn fraction(r: &WatchRow) -> f64 {
    let p = &r.progress;
    if p.bytes_total == 0 {
        0.0
    } else {
        p.bytes_done as f64 / p.bytes_total as f64
    }
}

impl Watch {
    /// Row indices in display order.
    pub(crate) fn order(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.rows.len()).collect();
        let r = &self.rows;
        match self.sort {
            Sort::Started => {}
            Sort::Provider => idx.sort_by(|a, b| r[*a].provider.cmp(&r[*b].provider)),
            Sort::Phase => idx.sort_by_key(|a| r[*a].phase()),
            Sort::Progress => idx.sort_by(|a, b| fraction(&r[*b]).total_cmp(&fraction(&r[*a]))),
        }
        idx
    }

    pub(crate) fn selected_row(&self) -> Option<usize> {
        self.order().get(self.selected).copied()
    }

    pub(crate) fn move_by(&mut self, delta: isize) {
        self.selected = super::render::moved(self.selected, delta, self.rows.len());
    }

    pub(crate) fn running(&self) -> usize {
        self.rows.iter().filter(|r| r.running()).count()
    }

    /// (bytes done, bytes total, rate) of every export together.
    pub(crate) fn totals(&self) -> (u64, u64, f64) {
        self.rows.iter().fold((0, 0, 0.0), |(d, t, r), row| {
            let p = &row.progress;
            (
                d + p.bytes_done,
                t + p.bytes_total.max(p.bytes_done),
                r + if row.running() {
                    p.rate_bytes_per_sec
                } else {
                    0.0
                },
            )
        })
    }
}
