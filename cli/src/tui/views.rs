//! The three views' bodies: sources (tabs, table, details), watch (a row per export, a total
//! row, the selected export's details), history.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Paragraph, Wrap};

use super::app::App;
use super::render::{CHROME, Theme, eta, rate, spinner, table, tabs};
use super::sources::Listing;
use crate::run::human;

/// Room for an export's label in the watch table, below and from 120 columns.
const LABEL_NARROW: usize = 20;
const LABEL_WIDE: usize = 40;

/// `s` cut to `n` columns keeping its end: the labels of one account share their beginning
/// (`vc:/DC0/vm/…`, a bucket's URL) and differ at the end.
pub(crate) fn keep_end(s: &str, n: usize) -> String {
    let len = s.chars().count();
    if len <= n {
        return s.to_string();
    }
    let tail: String = s.chars().skip(len - (n - 1)).collect();
    format!("…{tail}")
}

pub(crate) fn sources(f: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let s = &app.sources;
    let details = if s.details { 5 } else { 0 };
    let [tab_area, table_area, detail_area, filter_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(details),
        Constraint::Length(1),
    ])
    .areas(area);
    f.render_widget(Paragraph::new(tabs(app, theme)), tab_area);
    let Some(acc) = s.account() else {
        f.render_widget(
            Paragraph::new("no accounts: give --profile FILE (a batch profile)"),
            table_area,
        );
        return;
    };
    let visible = s.visible();
    let status = match &acc.listing {
        Listing::Loading => format!("{} listing…", spinner(app.ticks)),
        Listing::Failed(e) => format!("listing failed: {e}"),
        Listing::FromProfile(_) => format!("{} from the profile (no listing)", acc.rows.len()),
        Listing::Loaded => format!("{} of {}", visible.len(), acc.rows.len()),
        Listing::NotAsked => String::new(),
    };
    let title = format!(
        " {} ({}) · {status} · {} marked ",
        acc.name,
        acc.provider,
        s.marks.len()
    );
    let wide = area.width >= 120;
    let widths = vec![
        Constraint::Length(1),
        Constraint::Length(8),
        Constraint::Fill(2),
        Constraint::Length(10),
        Constraint::Length(if wide { 14 } else { 10 }),
        Constraint::Fill(if wide { 3 } else { 2 }),
    ];
    table(
        f,
        table_area,
        title,
        vec!["", "kind", "name", "size", "state", "id"],
        widths,
        (visible.len(), s.selected),
        theme,
        |i| {
            let r = visible[i];
            let marked = s.is_marked(s.tab, &r.id);
            let cells = vec![
                Cell::from(if marked { "●" } else { " " }),
                Cell::from(r.kind.clone()),
                Cell::from(r.name.clone()),
                Cell::from(r.size.map(human).unwrap_or_else(|| "-".into())),
                Cell::from(r.state.clone()),
                Cell::from(r.shown_id.clone()),
            ];
            let style = if marked {
                theme.marked()
            } else {
                Style::default()
            };
            (cells, style)
        },
    );
    if let Listing::Failed(e) = &acc.listing {
        let inner = Rect::new(
            table_area.x + 1,
            table_area.y + 2,
            table_area.width.saturating_sub(2),
            table_area.height.saturating_sub(CHROME),
        );
        f.render_widget(
            Paragraph::new(Line::styled(e.clone(), theme.failed())).wrap(Wrap { trim: false }),
            inner,
        );
    }
    if s.details
        && let Some(r) = s.selected_row()
    {
        let lines = vec![
            Line::from(format!("id     {}", r.shown_id)),
            Line::from(format!("name   {}   kind {}", r.name, r.kind)),
            Line::from(format!(
                "size   {}   state {}",
                r.size.map(human).unwrap_or_else(|| "-".into()),
                r.state
            )),
        ];
        f.render_widget(
            Paragraph::new(lines).block(Block::bordered().title(" details ")),
            detail_area,
        );
    }
    let filter = if s.filtering || !s.filter.is_empty() {
        Line::from(format!(
            "/{}{}",
            s.filter,
            if s.filtering { "█" } else { "" }
        ))
    } else {
        Line::styled("/ to filter", theme.dim())
    };
    f.render_widget(Paragraph::new(filter), filter_area);
}

pub(crate) fn watch(f: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let w = &app.watch;
    let detail_h = if w.details || app.quitting.is_some() {
        (area.height / 3).max(5)
    } else {
        0
    };
    let [table_area, total_area, detail_area] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(detail_h),
    ])
    .areas(area);
    let wide = area.width >= 120;
    let order = w.order();
    let (header, widths) = if wide {
        (
            vec![
                "provider", "export", "phase", "file", "bytes", "rate", "eta", "message",
            ],
            vec![
                Constraint::Length(8),
                Constraint::Length(LABEL_WIDE as u16),
                Constraint::Length(17),
                Constraint::Length(5),
                Constraint::Length(14),
                Constraint::Length(12),
                Constraint::Length(5),
                Constraint::Fill(3),
            ],
        )
    } else {
        (
            vec!["provider", "export", "phase", "bytes", "eta", "message"],
            vec![
                Constraint::Length(8),
                Constraint::Length(LABEL_NARROW as u16),
                Constraint::Length(11),
                Constraint::Length(14),
                Constraint::Length(5),
                Constraint::Fill(2),
            ],
        )
    };
    let title = format!(" exports · sorted by {} ", w.sort.name());
    table(
        f,
        table_area,
        title,
        header,
        widths,
        (order.len(), w.selected),
        theme,
        |i| {
            let r = &w.rows[order[i]];
            let p = &r.progress;
            let style = if r.failed() {
                theme.failed()
            } else if r.ended.as_ref().is_some_and(|e| e.done()) {
                theme.done()
            } else {
                Style::default()
            };
            let total = p.bytes_total.max(p.bytes_done);
            let pct = (p.bytes_done * 100).checked_div(total).unwrap_or(0);
            let bytes = format!("{pct:>3}% {}", human(total));
            let files = if p.file_count > 0 {
                format!("{}/{}", p.file_index, p.file_count)
            } else {
                "-".into()
            };
            let running = r.running();
            let label = keep_end(&r.label, if wide { LABEL_WIDE } else { LABEL_NARROW });
            let mut cells = vec![Cell::from(r.provider.clone()), Cell::from(label)];
            cells.push(Cell::from(r.phase()));
            if wide {
                cells.push(Cell::from(files));
            }
            cells.push(Cell::from(bytes));
            if wide {
                cells.push(Cell::from(if running {
                    rate(p.rate_bytes_per_sec)
                } else {
                    "-".into()
                }));
            }
            cells.push(Cell::from(if running {
                eta(p.eta_seconds)
            } else {
                "-".into()
            }));
            cells.push(Cell::from(r.message()));
            (cells, style)
        },
    );
    let (done, total, bps) = w.totals();
    let ended = w.rows.iter().filter(|r| !r.running()).count();
    let failed = w.rows.iter().filter(|r| r.failed()).count();
    let pct = (done * 100).checked_div(total).unwrap_or(0);
    f.render_widget(
        Paragraph::new(Line::styled(
            format!(
                " total: {} exports, {} running, {ended} ended ({failed} failed) · {pct}% of {} · {}",
                w.rows.len(),
                w.running(),
                human(total),
                rate(bps)
            ),
            theme.header(),
        )),
        total_area,
    );
    if detail_h > 0 {
        f.render_widget(
            Paragraph::new(detail_lines(app, theme))
                .block(Block::bordered().title(" details "))
                .wrap(Wrap { trim: false }),
            detail_area,
        );
    }
}

/// The selected export's files, cleanup steps and error; while quitting, every export's steps.
fn detail_lines(app: &App, theme: Theme) -> Vec<Line<'static>> {
    let w = &app.watch;
    let mut lines = Vec::new();
    let rows: Vec<usize> = if app.quitting.is_some() {
        (0..w.rows.len())
            .filter(|i| w.rows[*i].cancel_asked)
            .collect()
    } else {
        w.selected_row().into_iter().collect()
    };
    for i in rows {
        let r = &w.rows[i];
        let p = &r.progress;
        lines.push(Line::styled(
            format!("{} ({})", r.label, r.phase()),
            theme.header(),
        ));
        if r.running() && !p.file_name.is_empty() {
            lines.push(Line::from(format!(
                "  file {}/{} {}: {} of {}",
                p.file_index,
                p.file_count,
                p.file_name,
                human(p.file_bytes_done),
                human(p.file_bytes_total)
            )));
        }
        for s in &r.steps {
            lines.push(Line::from(format!("  {s}")));
        }
        if let Some(e) = &r.ended {
            for file in &e.files {
                lines.push(Line::from(format!("  {file}")));
            }
            if !r.cancel_asked {
                for (step, ok, err) in &e.cleanup {
                    let line = format!(
                        "  cleanup {step}: {}",
                        err.as_deref().unwrap_or(if *ok { "ok" } else { "failed" })
                    );
                    lines.push(Line::styled(
                        line,
                        if *ok {
                            Style::default()
                        } else {
                            theme.failed()
                        },
                    ));
                }
            }
            if let Some(err) = &e.error {
                lines.push(Line::styled(format!("  {err}"), theme.failed()));
            }
        }
        if let Some(why) = &r.refused {
            lines.push(Line::styled(format!("  refused: {why}"), theme.failed()));
        }
    }
    lines
}

pub(crate) fn history(f: &mut Frame, area: Rect, app: &App, theme: Theme) {
    let h = &app.history;
    let title = match (&h.error, h.loaded) {
        (Some(e), _) => format!(" history: {e} "),
        (None, false) => format!(" history {} ", spinner(app.ticks)),
        (None, true) => format!(" history · {} exports ", h.records.len()),
    };
    table(
        f,
        area,
        title,
        vec![
            "id",
            "when (UTC)",
            "provider",
            "status",
            "bytes",
            "source",
            "files / error",
        ],
        vec![
            Constraint::Length(4),
            Constraint::Length(19),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(10),
            Constraint::Fill(2),
            Constraint::Fill(2),
        ],
        (h.records.len(), h.selected),
        theme,
        |i| {
            let r = &h.records[i];
            let cells = vec![
                Cell::from(r.id.to_string()),
                Cell::from(r.when.clone()),
                Cell::from(r.provider.clone()),
                Cell::from(r.status.clone()),
                Cell::from(human(r.bytes)),
                Cell::from(r.source.clone()),
                Cell::from(r.detail.clone()),
            ];
            let style = if r.status != "done" {
                theme.failed()
            } else {
                Style::default()
            };
            (cells, style)
        },
    );
}
