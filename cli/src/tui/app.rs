//! The TUI as a pure state machine: [`App::update`] takes one [`Event`] (a key, a resize, a
//! tick, a listing, an export's progress or end, the history) and returns the [`Effect`]s the
//! driver carries out (list, start, cancel, read the history, resume, exit). Nothing here
//! touches the terminal, a cloud or a file, so tests feed it events and render it into
//! ratatui's `TestBackend`.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use hypersdk::Progress;
use serde_json::{Map, Value};

use super::form::{Form, Schema};
use super::history_view::History;
use super::sources::{AccountView, ListError, Listing, SourceRow, Sources};
use super::watch::{Ended, Watch};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum View {
    Sources,
    Watch,
    History,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Dialog {
    Help,
    /// Cancel this watch row (None: every running export)?
    Cancel(Option<usize>),
    /// Exports run: cancel them, let them finish, or stay?
    Quit,
    /// The result JSON of this watch row.
    Result(usize),
    /// A message (what was refused), until a key.
    Message(String),
}

/// How the app is leaving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Quitting {
    /// Every export was cancelled; the app exits once each has ended (its cleanup done).
    AfterCancel,
    /// The app exits once every export has finished.
    AfterFinish,
}

pub(crate) enum Event {
    Key(KeyEvent),
    /// SIGINT, SIGTERM or SIGHUP, or the terminal gone: cancel everything and quit once the
    /// cloud side is undone. However often it comes (a closed terminal can bring SIGHUP twice,
    /// and the lost terminal too), it never becomes an exit that skips cleanup: only a second
    /// Ctrl+C typed at the keyboard does.
    Stop,
    Resize(u16, u16),
    Tick,
    Listed {
        account: usize,
        result: Result<Vec<hypersdk::SourceInfo>, ListError>,
    },
    /// The library refused to start watch row `row` (or its provider's client).
    Refused {
        row: usize,
        why: String,
    },
    Progress {
        row: usize,
        progress: Progress,
    },
    Ended {
        row: usize,
        ended: Ended,
    },
    History(Result<Vec<Value>, String>),
    /// The library's dry run of form number `form`'s exports, one per start, in order.
    DryRun {
        form: u64,
        plans: Vec<Result<hypersdk::DryRun, String>>,
    },
    /// Watch row `row`'s new priority `priority` was (or, no longer queued, was not) applied.
    Priority {
        row: usize,
        priority: i32,
        applied: bool,
    },
}

/// One export to start: the watch row it fills, the account (profile entry) and source.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Start {
    pub row: usize,
    pub account: usize,
    pub source: String,
    pub options: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Effect {
    List(usize),
    /// What these starts would do (`Client::dry_run`), for form number `form`.
    DryRun {
        form: u64,
        starts: Vec<Start>,
    },
    Start(Vec<Start>),
    /// A queued export's new priority.
    SetPriority {
        row: usize,
        priority: i32,
    },
    Cancel(usize),
    LoadHistory,
    Resume {
        row: usize,
        id: u64,
    },
    /// Leave; the exports (if any) have ended.
    Exit,
    /// The second Ctrl+C: leave now, whatever is still being undone.
    ExitNow,
}

pub(crate) struct App {
    pub view: View,
    pub dialog: Option<Dialog>,
    pub sources: Sources,
    pub form: Option<Form>,
    pub watch: Watch,
    pub history: History,
    pub schema: Schema,
    /// Colours (false with NO_COLOR).
    pub color: bool,
    /// No exports, cancels or resumes: browsing only.
    pub read_only: bool,
    pub size: (u16, u16),
    pub ticks: u64,
    /// `:` typed: the view name being typed.
    pub command: Option<String>,
    /// The last thing worth saying, on the bottom line.
    pub status: String,
    pub quitting: Option<Quitting>,
    pub ctrl_c: u32,
    /// Forms opened so far: a dry run answers the form it was asked for, not a later one.
    pub forms: u64,
}

pub(crate) const VIEW_NAMES: [(&str, View); 3] = [
    ("sources", View::Sources),
    ("watch", View::Watch),
    ("history", View::History),
];

impl App {
    pub(crate) fn new(accounts: Vec<AccountView>, schema: Schema, color: bool) -> App {
        App {
            view: View::Sources,
            dialog: None,
            sources: Sources {
                accounts,
                ..Default::default()
            },
            form: None,
            watch: Watch::default(),
            history: History::default(),
            schema,
            color,
            read_only: false,
            size: (80, 24),
            ticks: 0,
            command: None,
            status: String::new(),
            quitting: None,
            ctrl_c: 0,
            forms: 0,
        }
    }

    /// The listings to ask for at start: every account's, in the background.
    pub(crate) fn start(&mut self) -> Vec<Effect> {
        self.sources
            .accounts
            .iter_mut()
            .enumerate()
            .map(|(i, a)| {
                a.listing = Listing::Loading;
                Effect::List(i)
            })
            .collect()
    }

    pub(crate) fn update(&mut self, event: Event) -> Vec<Effect> {
        match event {
            Event::Key(k) => self.key(k),
            Event::Resize(w, h) => {
                self.size = (w, h);
                Vec::new()
            }
            Event::Tick => {
                self.ticks += 1;
                Vec::new()
            }
            Event::Stop => {
                // Counted as an interruption (exit 130), never towards an exit at once.
                self.ctrl_c = self.ctrl_c.max(1);
                self.dialog = None;
                if self.quitting == Some(Quitting::AfterCancel) {
                    return Vec::new();
                }
                self.cancel_all_and_quit()
            }
            Event::Listed { account, result } => {
                let rows = result.map(|v| v.iter().map(SourceRow::of).collect());
                self.sources.listed(account, rows);
                Vec::new()
            }
            Event::Refused { row, why } => {
                if let Some(r) = self.watch.rows.get_mut(row) {
                    r.refused = Some(crate::shown::error(&why));
                }
                self.maybe_exit()
            }
            Event::Progress { row, progress } => {
                if let Some(r) = self.watch.rows.get_mut(row) {
                    r.update(progress);
                }
                Vec::new()
            }
            Event::Ended { row, ended } => {
                if let Some(r) = self.watch.rows.get_mut(row) {
                    let ended = ended.printable();
                    if r.cancel_asked {
                        for (step, ok, err) in &ended.cleanup {
                            r.steps.push(match err {
                                Some(e) => format!("{} {step}: {e}", mark(*ok)),
                                None => format!("{} {step}", mark(*ok)),
                            });
                        }
                    }
                    r.ended = Some(ended);
                }
                self.maybe_exit()
            }
            Event::History(result) => {
                self.history.loaded(result);
                Vec::new()
            }
            Event::DryRun { form, plans } => {
                if let Some(f) = self.form.as_mut().filter(|f| f.number == form) {
                    f.dry_ran(plans);
                }
                Vec::new()
            }
            Event::Priority {
                row,
                priority,
                applied,
            } => {
                if let Some(r) = self.watch.rows.get_mut(row) {
                    self.status = if applied {
                        r.applied_priority = priority;
                        format!("{}: priority {priority} while queued", r.label)
                    } else {
                        // Shown at the key press; not taken: back to what the library has.
                        r.priority = r.applied_priority;
                        format!(
                            "{}: not waiting for a slot (running, ended or not yet started); \
                             its priority stays {}",
                            r.label, r.priority
                        )
                    };
                }
                Vec::new()
            }
        }
    }

    fn maybe_exit(&mut self) -> Vec<Effect> {
        if self.quitting.is_some() && self.watch.running() == 0 {
            vec![Effect::Exit]
        } else {
            Vec::new()
        }
    }

    /// The exit code: the worst outcome's, as the other commands (130 after Ctrl+C).
    pub(crate) fn exit_code(&self) -> u8 {
        let worst = self
            .watch
            .rows
            .iter()
            .map(|r| match (&r.refused, &r.ended) {
                (Some(_), _) => 2,
                (None, Some(e)) if e.status == "cancelled" && self.ctrl_c > 0 => 130,
                (None, Some(e)) => e.code,
                (None, None) => 0,
            })
            .max()
            .unwrap_or(0);
        if self.ctrl_c > 0 {
            worst.max(130)
        } else {
            worst
        }
    }

    fn key(&mut self, k: KeyEvent) -> Vec<Effect> {
        // What was said last is said until the next key.
        self.status.clear();
        if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
            return self.ctrl_c();
        }
        if let Some(d) = self.dialog.clone() {
            return self.dialog_key(d, k);
        }
        if let Some(cmd) = self.command.as_mut() {
            match k.code {
                KeyCode::Esc => self.command = None,
                KeyCode::Backspace => drop(cmd.pop()),
                KeyCode::Char(c) => cmd.push(c),
                KeyCode::Enter => {
                    let typed = self.command.take().unwrap_or_default();
                    return self.switch_to(&typed);
                }
                _ => {}
            }
            return Vec::new();
        }
        if self.form.is_some() {
            return self.form_key(k);
        }
        if self.view == View::Sources && self.sources.filtering {
            let s = &mut self.sources;
            match k.code {
                KeyCode::Esc => {
                    s.filter.clear();
                    s.filtering = false;
                }
                KeyCode::Enter => s.filtering = false,
                KeyCode::Backspace => drop(s.filter.pop()),
                KeyCode::Char(c) => s.filter.push(c),
                _ => {}
            }
            s.move_by(0);
            return Vec::new();
        }
        match k.code {
            KeyCode::Char('?') => self.dialog = Some(Dialog::Help),
            KeyCode::Char(':') => self.command = Some(String::new()),
            KeyCode::Char('q') => return self.quit(),
            _ => {
                return match self.view {
                    View::Sources => self.sources_key(k),
                    View::Watch => self.watch_key(k),
                    View::History => self.history_key(k),
                };
            }
        }
        Vec::new()
    }

    fn switch_to(&mut self, typed: &str) -> Vec<Effect> {
        let typed = typed.trim();
        match VIEW_NAMES
            .iter()
            .find(|(n, _)| !typed.is_empty() && n.starts_with(typed))
        {
            Some((_, v)) => {
                self.view = *v;
                if *v == View::History {
                    return vec![Effect::LoadHistory];
                }
            }
            None => {
                self.status = format!(
                    "no view {:?}: sources, watch or history",
                    crate::shown::text(typed)
                )
            }
        }
        Vec::new()
    }

    fn ctrl_c(&mut self) -> Vec<Effect> {
        self.ctrl_c += 1;
        if self.ctrl_c >= 2 {
            return vec![Effect::ExitNow];
        }
        // As the other commands: the first cancels everything and waits for cleanup.
        self.dialog = None;
        self.cancel_all_and_quit()
    }

    fn quit(&mut self) -> Vec<Effect> {
        if self.watch.running() == 0 {
            return vec![Effect::Exit];
        }
        self.dialog = Some(Dialog::Quit);
        Vec::new()
    }

    fn cancel_all_and_quit(&mut self) -> Vec<Effect> {
        self.quitting = Some(Quitting::AfterCancel);
        self.view = View::Watch;
        let mut out = self.cancel(None);
        out.extend(self.maybe_exit());
        out
    }

    fn cancel(&mut self, row: Option<usize>) -> Vec<Effect> {
        let mut out = Vec::new();
        for (i, r) in self.watch.rows.iter_mut().enumerate() {
            if row.is_none_or(|x| x == i) && r.running() && !r.cancel_asked {
                r.cancel_asked = true;
                out.push(Effect::Cancel(i));
            }
        }
        out
    }

    fn dialog_key(&mut self, d: Dialog, k: KeyEvent) -> Vec<Effect> {
        let yes = matches!(k.code, KeyCode::Char('y') | KeyCode::Enter);
        match d {
            Dialog::Cancel(row) if yes => {
                self.dialog = None;
                return self.cancel(row);
            }
            Dialog::Quit => match k.code {
                KeyCode::Char('c') => {
                    self.dialog = None;
                    return self.cancel_all_and_quit();
                }
                KeyCode::Char('w') => {
                    self.dialog = None;
                    self.quitting = Some(Quitting::AfterFinish);
                    self.view = View::Watch;
                    return self.maybe_exit();
                }
                KeyCode::Esc | KeyCode::Char('n') => self.dialog = None,
                _ => {}
            },
            _ => self.dialog = None,
        }
        Vec::new()
    }

    pub(super) fn refuse_read_only(&mut self, what: &str) -> bool {
        if self.read_only {
            self.status = format!("read-only: {what} is off (started with --read-only)");
        }
        self.read_only
    }
}

fn mark(ok: bool) -> &'static str {
    if ok { "undone:" } else { "FAILED:" }
}
