//! The keys: as `?` lists them (and the README), and what each view does with them.

use crossterm::event::{KeyCode, KeyEvent};
use serde_json::{Map, Value};

use super::app::{App, Dialog, Effect, Start, View};
use super::form::Form;
use super::sources::{Listing, SourceRow};
use super::watch::WatchRow;

pub(crate) const HELP: &[(&str, &str)] = &[
    ("?", "this help (any key closes it)"),
    (
        ":",
        "switch view: :sources, :watch, :history (a prefix is enough)",
    ),
    ("q", "quit (asks first while exports run)"),
    (
        "Ctrl+C",
        "cancel every export and quit after cleanup; twice: at once",
    ),
    ("↑ ↓ j k", "move; PgUp PgDn Home End page"),
    ("Tab ←→", "sources: next or previous account"),
    (
        "/",
        "sources: filter as you type (Enter keeps it, Esc clears)",
    ),
    ("Space", "sources: mark or unmark"),
    ("Enter", "sources, watch: details of the selected row"),
    ("e", "sources: export the marked sources (the form)"),
    (
        "r",
        "sources: list again; watch: result JSON; history: reload",
    ),
    ("s", "watch: sort by start, provider, phase, progress"),
    (
        "c / C",
        "watch: cancel the selected export / all (asks first)",
    ),
    ("p / P", "watch: raise / lower a queued export's priority"),
    (
        "R",
        "history: resume the selected failed or cancelled export",
    ),
];

impl App {
    pub(super) fn sources_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        let s = &mut self.sources;
        match k.code {
            KeyCode::Down | KeyCode::Char('j') => s.move_by(1),
            KeyCode::Up | KeyCode::Char('k') => s.move_by(-1),
            KeyCode::PageDown => s.move_by(self.size.1 as isize / 2),
            KeyCode::PageUp => s.move_by(-(self.size.1 as isize / 2)),
            KeyCode::Home | KeyCode::Char('g') => s.selected = 0,
            KeyCode::End | KeyCode::Char('G') => s.move_by(isize::MAX),
            KeyCode::Tab | KeyCode::Right => s.switch_tab(1),
            KeyCode::BackTab | KeyCode::Left => s.switch_tab(-1),
            KeyCode::Char(' ') => s.toggle_mark(),
            KeyCode::Char('/') => s.filtering = true,
            KeyCode::Enter => s.details = !s.details,
            KeyCode::Char('r') => {
                if let Some(a) = s.accounts.get_mut(s.tab) {
                    a.listing = Listing::Loading;
                    return vec![Effect::List(s.tab)];
                }
            }
            KeyCode::Char('e') => self.open_form(),
            _ => {}
        }
        Vec::new()
    }

    pub(super) fn open_form(&mut self) {
        if self.refuse_read_only("exporting") {
            return;
        }
        let marked = self.sources.marked();
        let marked = if marked.is_empty() {
            // Nothing marked: the selected row.
            let tab = self.sources.tab;
            self.sources
                .selected_row()
                .map(|r| vec![(tab, r.clone())])
                .unwrap_or_default()
        } else {
            marked
        };
        let Some((first, _)) = marked.first() else {
            self.status = "nothing to export: mark sources with Space".into();
            return;
        };
        let acc = &self.sources.accounts;
        let providers = marked
            .iter()
            .map(|(a, _)| acc[*a].provider.clone())
            .collect();
        let output = acc[*first].output.clone().unwrap_or_else(|| ".".into());
        let mut form = Form::new(&output, providers, marked.len());
        form.options = acc[*first].options.clone();
        self.forms += 1;
        form.number = self.forms;
        self.form = Some(form);
    }

    pub(super) fn form_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        let Some(form) = self.form.as_mut() else {
            return Vec::new();
        };
        if let Some(plan) = form.confirm.clone() {
            match k.code {
                KeyCode::Enter | KeyCode::Char('y') => {
                    self.form = None;
                    return self.start_exports(plan.options);
                }
                _ => form.confirm = None,
            }
            return Vec::new();
        }
        match k.code {
            KeyCode::Esc => self.form = None,
            KeyCode::Tab | KeyCode::Down => form.next(1),
            KeyCode::BackTab | KeyCode::Up => form.next(-1),
            KeyCode::Backspace => form.backspace(),
            KeyCode::Char(c) => form.type_char(c),
            KeyCode::Enter => match form.check(&self.schema) {
                Ok(plan) => {
                    // The library says what each would do, in the background.
                    let options = plan.options.clone();
                    form.confirm = Some(plan);
                    form.dry = None;
                    // Each check is a request of its own: a late answer to an earlier check
                    // (other options) must not show as this one's.
                    self.forms += 1;
                    form.number = self.forms;
                    let number = form.number;
                    let targets = self.targets();
                    let starts = targets
                        .iter()
                        .enumerate()
                        .map(|(i, (account, row))| Start {
                            row: i,
                            account: *account,
                            source: row.id.clone(),
                            options: options.clone(),
                        })
                        .collect();
                    let labels = targets.iter().map(|(a, r)| self.label(*a, r)).collect();
                    if let Some(form) = self.form.as_mut() {
                        form.labels = labels;
                    }
                    return vec![Effect::DryRun {
                        form: number,
                        starts,
                    }];
                }
                Err(e) => form.error = Some(e),
            },
            _ => {}
        }
        Vec::new()
    }

    /// What the form exports: the marked sources, or the selected one.
    fn targets(&self) -> Vec<(usize, SourceRow)> {
        let mut marked = self.sources.marked();
        if marked.is_empty() {
            let tab = self.sources.tab;
            marked.extend(self.sources.selected_row().map(|r| (tab, r.clone())));
        }
        marked
    }

    /// An export's label: account and name (it says more than an id, `vm-29`; the details
    /// pane has both).
    fn label(&self, account: usize, row: &SourceRow) -> String {
        let what = if row.name.is_empty() {
            &row.shown_id
        } else {
            &row.name
        };
        format!("{}:{what}", self.sources.accounts[account].name)
    }

    /// The marked sources (or the selected one), one watch row and one start each.
    pub(super) fn start_exports(&mut self, options: Map<String, Value>) -> Vec<Effect> {
        let priority = options.get("priority").and_then(Value::as_i64).unwrap_or(0) as i32;
        let mut starts = Vec::new();
        for (account, row) in self.targets() {
            let n = self.watch.rows.len();
            let mut w = WatchRow::new(
                &self.label(account, &row),
                &self.sources.accounts[account].provider,
            );
            w.priority = priority;
            w.applied_priority = priority;
            self.watch.rows.push(w);
            starts.push(Start {
                row: n,
                account,
                source: row.id,
                options: options.clone(),
            });
        }
        self.sources.marks.clear();
        self.view = View::Watch;
        self.status = format!("{} export(s) started", starts.len());
        vec![Effect::Start(starts)]
    }

    pub(super) fn watch_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        if matches!(k.code, KeyCode::Char('c' | 'C')) && self.refuse_read_only("cancelling") {
            return Vec::new();
        }
        if matches!(k.code, KeyCode::Char('p' | 'P'))
            && self.refuse_read_only("changing a priority")
        {
            return Vec::new();
        }
        let w = &mut self.watch;
        match k.code {
            KeyCode::Down | KeyCode::Char('j') => w.move_by(1),
            KeyCode::Up | KeyCode::Char('k') => w.move_by(-1),
            KeyCode::Char('s') => w.sort = w.sort.next(),
            KeyCode::Enter => w.details = !w.details,
            KeyCode::Char('r') => {
                if let Some(i) = w.selected_row().filter(|i| w.rows[*i].ended.is_some()) {
                    self.dialog = Some(Dialog::Result(i));
                }
            }
            KeyCode::Char('c') => {
                if let Some(i) = w.selected_row().filter(|i| w.rows[*i].running()) {
                    self.dialog = Some(Dialog::Cancel(Some(i)));
                }
            }
            KeyCode::Char('C') if w.running() > 0 => self.dialog = Some(Dialog::Cancel(None)),
            KeyCode::Char(c @ ('p' | 'P')) => {
                let Some(i) = w.selected_row() else {
                    return Vec::new();
                };
                let r = &mut w.rows[i];
                if !r.running() || r.progress.phase != hypersdk::Phase::Queued {
                    self.status =
                        format!("{}: not queued; priority only orders the queue", r.label);
                    return Vec::new();
                }
                r.priority = r.priority.saturating_add(if c == 'p' { 1 } else { -1 });
                return vec![Effect::SetPriority {
                    row: i,
                    priority: r.priority,
                }];
            }
            _ => {}
        }
        Vec::new()
    }

    pub(super) fn history_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        if k.code == KeyCode::Char('R') && self.refuse_read_only("resuming") {
            return Vec::new();
        }
        let h = &mut self.history;
        match k.code {
            KeyCode::Down | KeyCode::Char('j') => h.move_by(1),
            KeyCode::Up | KeyCode::Char('k') => h.move_by(-1),
            KeyCode::Char('r') => return vec![Effect::LoadHistory],
            KeyCode::Char('R') => {
                let Some(rec) = h.selected_record() else {
                    return Vec::new();
                };
                if rec.status == "done" {
                    self.dialog = Some(Dialog::Message(format!(
                        "export {} is done; nothing to resume",
                        rec.id
                    )));
                    return Vec::new();
                }
                let (id, provider) = (rec.id, rec.provider.clone());
                let row = self.watch.rows.len();
                self.watch.rows.push(WatchRow::new(
                    &format!("{} (resume of {id})", rec.source),
                    &provider,
                ));
                self.view = View::Watch;
                return vec![Effect::Resume { row, id }];
            }
            _ => {}
        }
        Vec::new()
    }
}
