//! Draws an [`App`] into a ratatui frame: the same code draws the terminal and the tests'
//! `TestBackend`. Every string drawn here was made printable when it reached the app.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, Wrap};

use super::app::{App, Dialog, Quitting, View};
use super::form::Field;
use super::sources::Listing;
use super::views;
use crate::run::human;

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// Styles, or none but bold and reverse with `NO_COLOR` (https://no-color.org).
#[derive(Clone, Copy)]
pub(crate) struct Theme {
    pub color: bool,
}

impl Theme {
    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }
    pub(crate) fn title(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    pub(crate) fn header(self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }
    pub(crate) fn selected(self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }
    pub(crate) fn failed(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    pub(crate) fn done(self) -> Style {
        self.fg(Color::Green)
    }
    pub(crate) fn marked(self) -> Style {
        self.fg(Color::Magenta).add_modifier(Modifier::BOLD)
    }
    pub(crate) fn dim(self) -> Style {
        self.fg(Color::DarkGray)
    }
}

pub(crate) fn spinner(ticks: u64) -> &'static str {
    SPINNER[(ticks % SPINNER.len() as u64) as usize]
}

pub(crate) fn draw(f: &mut Frame, app: &App) {
    let theme = Theme { color: app.color };
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(Paragraph::new(title_line(app, theme)), top);
    match app.view {
        View::Sources => views::sources(f, body, app, theme),
        View::Watch => views::watch(f, body, app, theme),
        View::History => views::history(f, body, app, theme),
    }
    f.render_widget(Paragraph::new(bottom_line(app, theme)), bottom);
    if let Some(form) = &app.form {
        draw_form(f, body, app, form, theme);
    }
    if let Some(d) = &app.dialog {
        draw_dialog(f, body, app, d, theme);
    }
}

fn title_line(app: &App, theme: Theme) -> Line<'static> {
    let mut spans = vec![Span::styled(" hypersdk ", theme.title())];
    let running = app.watch.running();
    for (name, v) in super::app::VIEW_NAMES {
        let label = match v {
            View::Watch if running > 0 => format!(" {name} ({running} running) "),
            _ => format!(" {name} "),
        };
        let style = if v == app.view {
            theme.selected()
        } else {
            Style::default()
        };
        spans.push(Span::styled(label, style));
    }
    if app.read_only {
        spans.push(Span::styled(" read-only", theme.header()));
    }
    spans.push(Span::styled("  ? help", theme.dim()));
    Line::from(spans)
}

fn bottom_line(app: &App, theme: Theme) -> Line<'static> {
    if let Some(cmd) = &app.command {
        return Line::from(format!(":{cmd}█"));
    }
    if let Some(q) = app.quitting {
        let what = match q {
            Quitting::AfterCancel => {
                "cancelling every export; quitting once each one's cleanup is done"
            }
            Quitting::AfterFinish => "quitting once every export has finished",
        };
        return Line::styled(format!("{what} (Ctrl+C twice: at once)"), theme.header());
    }
    if !app.status.is_empty() {
        return Line::from(app.status.clone());
    }
    let hint = match app.view {
        View::Sources if app.sources.filtering => "type to filter · Enter keep · Esc clear",
        View::Sources => "Space mark · / filter · e export · Tab account · : view · q quit",
        View::Watch => "c cancel · C cancel all · s sort · Enter details · r result · q quit",
        View::History => "R resume · r reload · : view · q quit",
    };
    Line::styled(hint, theme.dim())
}

/// A rectangle of `w`×`h` in the middle of `area` (clipped to it).
pub(crate) fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn draw_form(f: &mut Frame, body: Rect, app: &App, form: &super::form::Form, theme: Theme) {
    let mut block = Block::bordered().title(format!(" export {} source(s) ", form.count));
    let mut lines = Vec::new();
    let area = if let Some(plan) = &form.confirm {
        lines.push(Line::styled(
            "dry run: nothing has started yet",
            theme.header(),
        ));
        let opts: Vec<String> = plan
            .options
            .iter()
            .filter(|(k, _)| k.as_str() != "output_dir")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        lines.push(Line::from(format!("options: {}", opts.join(" "))));
        dry_lines(&mut lines, app, form, theme);
        // On the border, so a dry run taller than the screen still says it.
        block = block.title_bottom(Line::styled(
            " Enter start · any other key back ",
            theme.dim(),
        ));
        // As tall as its wrapped lines, up to the screen.
        let w = 100.min(body.width);
        let inner = usize::from(w.saturating_sub(2)).max(1);
        let h: usize = lines.iter().map(|l| l.width().div_ceil(inner).max(1)).sum();
        centered(body, w, u16::try_from(h + 2).unwrap_or(u16::MAX))
    } else {
        centered(body, 76, 14)
    };
    f.render_widget(Clear, area);
    if form.confirm.is_none() {
        let field = |name: &str, value: String, which: Field| {
            let focused = form.field() == which;
            let style = if focused {
                theme.selected()
            } else {
                Style::default()
            };
            Line::from(vec![
                Span::raw(format!("{name:<11}")),
                Span::styled(format!("{value}{}", if focused { "█" } else { "" }), style),
            ])
        };
        lines.push(field("output", form.output.clone(), Field::Output));
        let ow = if form.overwrite { "[x]" } else { "[ ]" };
        lines.push(field("overwrite", ow.into(), Field::Overwrite));
        lines.push(field("priority", form.priority.clone(), Field::Priority));
        lines.push(field("options", form.options.clone(), Field::Options));
        let offered = form.offered(&app.schema);
        lines.push(Line::styled(
            format!(
                "provider keys: {}",
                if offered.is_empty() {
                    "none".into()
                } else {
                    offered.join(" ")
                }
            ),
            theme.dim(),
        ));
        if let Some(e) = &form.error {
            lines.push(Line::styled(e.clone(), theme.failed()));
        }
        lines.push(Line::styled(
            "Tab next · Space toggles · Enter check · Esc close",
            theme.dim(),
        ));
    }
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

/// What the library's dry run says each export would do: the cloud resources it makes (each
/// with when it is undone) and the files, and where.
fn dry_lines(lines: &mut Vec<Line<'static>>, app: &App, form: &super::form::Form, theme: Theme) {
    use super::form::Planned;
    let Some(plans) = &form.dry else {
        lines.push(Line::from(format!(
            "{} asking the library what each export would do…",
            spinner(app.ticks)
        )));
        return;
    };
    for p in plans {
        match p {
            Planned::Plan {
                source,
                provider,
                output_dir,
                cloud,
                files,
            } => {
                lines.push(Line::styled(
                    format!("{source} ({provider})"),
                    theme.header(),
                ));
                lines.push(Line::from(format!("  files land in {output_dir}")));
                for file in files {
                    lines.push(Line::from(format!("    {file}")));
                }
                if cloud.is_empty() {
                    lines.push(Line::from(
                        "  in the cloud: nothing made; the source is only read",
                    ));
                } else {
                    lines.push(Line::from("  in the cloud:"));
                    for c in cloud {
                        lines.push(Line::from(format!("    {c}")));
                    }
                }
            }
            Planned::Refused { source, why } => {
                lines.push(Line::styled(
                    format!("{source}: refused: {why}"),
                    theme.failed(),
                ));
            }
        }
    }
}

fn draw_dialog(f: &mut Frame, body: Rect, app: &App, d: &Dialog, theme: Theme) {
    let (title, lines): (&str, Vec<Line>) = match d {
        Dialog::Help => (
            " keys ",
            super::keys::HELP
                .iter()
                .map(|(k, what)| {
                    Line::from(vec![
                        Span::styled(format!("{k:<9}"), theme.header()),
                        Span::raw(*what),
                    ])
                })
                .collect(),
        ),
        Dialog::Cancel(row) => {
            let what = match row.and_then(|r| app.watch.rows.get(r)) {
                Some(r) => format!("Cancel {}?", r.label),
                None => format!("Cancel all {} running exports?", app.watch.running()),
            };
            (
                " cancel ",
                vec![
                    Line::from(what),
                    Line::from("Their cloud side is undone (cleanup) before they end."),
                    Line::styled("y / Enter: cancel · any other key: keep", theme.dim()),
                ],
            )
        }
        Dialog::Quit => (
            " quit ",
            vec![
                Line::from(format!("{} export(s) still running.", app.watch.running())),
                Line::from("c  cancel them, wait for their cleanup, then quit"),
                Line::from("w  let them finish, then quit"),
                Line::from("Esc  stay"),
            ],
        ),
        Dialog::Result(row) => (
            " result ",
            app.watch
                .rows
                .get(*row)
                .and_then(|r| r.ended.as_ref())
                .map(|e| e.json.lines().map(|l| Line::from(l.to_string())).collect())
                .unwrap_or_default(),
        ),
        Dialog::Message(m) => (" ! ", vec![Line::from(m.clone())]),
    };
    let h = (lines.len() as u16 + 2).min(body.height);
    let area = centered(body, 74, h);
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines)
            .block(Block::bordered().title(title))
            .wrap(Wrap { trim: false }),
        area,
    );
}

/// The rows `height` lines can show so that `selected` is among them: (first, last+1).
pub(crate) fn window(len: usize, selected: usize, height: usize) -> (usize, usize) {
    if height == 0 {
        return (0, 0);
    }
    let first = selected
        .saturating_sub(height - 1)
        .min(len.saturating_sub(1));
    (first, (first + height).min(len))
}

/// The tab line of the sources view: every account, a spinner while it lists.
pub(crate) fn tabs(app: &App, theme: Theme) -> Line<'static> {
    let mut spans = Vec::new();
    for (i, a) in app.sources.accounts.iter().enumerate() {
        let state = match &a.listing {
            Listing::Loading => format!(" {}", spinner(app.ticks)),
            Listing::Failed(_) => " !".into(),
            Listing::Loaded | Listing::FromProfile(_) => format!(" {}", a.rows.len()),
            Listing::NotAsked => String::new(),
        };
        let style = if i == app.sources.tab {
            theme.selected()
        } else if matches!(a.listing, Listing::Failed(_)) {
            theme.failed()
        } else {
            Style::default()
        };
        spans.push(Span::styled(format!(" {}{state} ", a.name), style));
        spans.push(Span::raw("│"));
    }
    Line::from(spans)
}

/// Lines of a table's block that hold no row: two borders and the header.
pub(crate) const CHROME: u16 = 3;

/// One table of the three views: `n` rows in a bordered block under `header`, only those that
/// fit drawn (windowed around `selected`), the selected one highlighted. `row(i)` gives row
/// `i`'s cells and its style when it is not the selected one.
#[allow(clippy::too_many_arguments)]
pub(crate) fn table<'a>(
    f: &mut Frame,
    area: Rect,
    title: String,
    header: Vec<&'a str>,
    widths: Vec<Constraint>,
    (n, selected): (usize, usize),
    theme: Theme,
    mut row: impl FnMut(usize) -> (Vec<Cell<'a>>, Style),
) {
    let (first, last) = window(n, selected, area.height.saturating_sub(CHROME) as usize);
    let rows: Vec<Row> = (first..last)
        .map(|i| {
            let (cells, style) = row(i);
            Row::new(cells).style(if i == selected {
                theme.selected()
            } else {
                style
            })
        })
        .collect();
    let header = Row::new(header.into_iter().map(Cell::from)).style(theme.header());
    f.render_widget(
        Table::new(rows, widths)
            .header(header)
            .column_spacing(1)
            .block(Block::bordered().title(title)),
        area,
    );
}

/// A selection `selected` moved by `delta` within `n` rows.
pub(crate) fn moved(selected: usize, delta: isize, n: usize) -> usize {
    if n == 0 {
        0
    } else {
        selected.saturating_add_signed(delta).min(n - 1)
    }
}

pub(crate) fn rate(bps: f64) -> String {
    if bps <= 0.0 {
        "-".into()
    } else {
        format!("{}/s", human(bps as u64))
    }
}

pub(crate) fn eta(s: f64) -> String {
    if s < 0.0 {
        "-".into()
    } else if s >= 3600.0 {
        format!("{}h{:02}", s as u64 / 3600, s as u64 / 60 % 60)
    } else {
        format!("{}:{:02}", s as u64 / 60, s as u64 % 60)
    }
}
