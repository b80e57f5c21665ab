//! `hypersdk tui`: every account of a batch profile (or the accounts file) in one screen —
//! browse and filter their sources, mark some, export them, watch and cancel the exports live,
//! resume from the history. k9s is the model: a live table, `/` filters, `?` helps, `:`
//! switches views. ratatui draws; crossterm reads keys.
//!
//! [`app::App`] is a pure state machine (events in, effects out) so tests drive it with a fake
//! event stream and render it into ratatui's `TestBackend`; [`driver::Driver`] carries out its
//! effects with the library; this module wires both to the terminal.

pub(crate) mod app;
pub(crate) mod driver;
pub(crate) mod form;
pub(crate) mod history_view;
pub(crate) mod keys;
pub(crate) mod render;
pub(crate) mod sources;
pub(crate) mod views;
pub(crate) mod watch;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_effects;
#[cfg(test)]
mod tests_render;

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use clap::Args;
use crossterm::event::{self, Event as TermEvent, KeyEventKind};

use crate::exit::Failure;
use app::{App, Effect, Event};

#[derive(Args)]
pub(crate) struct TuiArgs {
    /// A batch profile (TOML): its `[providers.NAME]` entries are the accounts browsed, its
    /// `[[export]]` sources stand in for a provider that cannot list (http). Default: the
    /// accounts file (~/.config/hypersdk/config.toml, or $HYPERSDK_CONFIG).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Browse only: no export, cancel or resume.
    #[arg(long)]
    read_only: bool,
    /// Exports running at once (the rest wait, by priority). Default 4; over the profile's
    /// max_concurrent.
    #[arg(long)]
    max_concurrent: Option<u64>,
}

/// Redraws and spinner steps when nothing else happens.
const TICK: Duration = Duration::from_millis(200);

/// Colour unless `NO_COLOR` is set to something (https://no-color.org).
pub(crate) fn color_wanted(no_color: Option<std::ffi::OsString>) -> bool {
    no_color.is_none_or(|v| v.is_empty())
}

pub(crate) fn run(a: &TuiArgs) -> Result<u8, Failure> {
    let path = match &a.profile {
        Some(p) => p.clone(),
        None => crate::batch::accounts_file()
            .filter(|p| p.exists())
            .ok_or("no accounts: give --profile FILE (a batch profile: hypersdk batch --help)")?,
    };
    let (accounts, max) = crate::batch::accounts(&path)?;
    let settings = serde_json::json!({
        "max_concurrent_exports": a.max_concurrent.or(max).unwrap_or(4).max(1)
    });
    hypersdk::configure(&settings.to_string())?;
    let views = accounts
        .iter()
        .map(|x| {
            let mut v = sources::AccountView::new(&x.name, &x.provider, x.sources.clone());
            v.output = x.output.as_ref().map(|o| o.display().to_string());
            v.options = x
                .options
                .iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect::<Vec<_>>()
                .join(" ");
            v
        })
        .collect();
    let mut app = App::new(
        views,
        form::Schema::from_library(),
        color_wanted(std::env::var_os("NO_COLOR")),
    );
    app.read_only = a.read_only;
    let profile = std::fs::canonicalize(&path).ok();
    let (tx, rx) = mpsc::channel();
    let driver = driver::Driver::new(tx.clone(), accounts, profile);
    // ratatui::init panics without a terminal: a clear error instead.
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err("tui needs a terminal: stdout is not one (for scripts: hypersdk batch)".into());
    }
    let mut terminal = ratatui::init();
    if let Ok(s) = terminal.size() {
        app.size = (s.width, s.height);
    }
    spawn_input(tx.clone());
    // SIGINT, SIGTERM, SIGHUP (a closed terminal, systemd, `timeout`) as Ctrl+C: the first
    // cancels every export and quits once its cloud side is undone, the second at once.
    let signal = tx.clone();
    let _ = ctrlc::set_handler(move || {
        let _ = signal.send(Event::Stop);
    });
    std::thread::spawn(move || {
        while tx.send(Event::Tick).is_ok() {
            std::thread::sleep(TICK);
        }
    });
    for e in app.start() {
        driver.apply(e);
    }
    let outcome = run_loop(&mut terminal, &mut app, &driver, &rx);
    ratatui::restore();
    match outcome {
        Ok(true) => std::process::exit(130),
        Ok(false) => Ok(app.exit_code()),
        Err(e) => Err(Failure::local(format!("terminal: {e}"))),
    }
}

/// Draws, reads events, applies effects until the app exits. `Ok(true)`: exit at once.
fn run_loop(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    driver: &driver::Driver,
    rx: &mpsc::Receiver<Event>,
) -> std::io::Result<bool> {
    loop {
        // A terminal that went away (SIGHUP) cannot be drawn on, but the exports' cleanup
        // must still be waited for: drawing fails quietly.
        let _ = terminal.draw(|f| render::draw(f, app));
        let Ok(first) = rx.recv() else {
            return Ok(false);
        };
        // Everything that is waiting, then one draw.
        for ev in std::iter::once(first).chain(rx.try_iter()) {
            for effect in app.update(ev) {
                match effect {
                    Effect::Exit => return Ok(false),
                    Effect::ExitNow => return Ok(true),
                    e => driver.apply(e),
                }
            }
        }
    }
}

/// Keys and resizes from the terminal, on their own thread (reading blocks).
fn spawn_input(tx: mpsc::Sender<Event>) {
    std::thread::spawn(move || {
        loop {
            let ev = match event::read() {
                Ok(TermEvent::Key(k)) if k.kind != KeyEventKind::Release => Event::Key(k),
                Ok(TermEvent::Resize(w, h)) => Event::Resize(w, h),
                Ok(_) => continue,
                // The terminal is gone: as Ctrl+C, so the exports are undone, not orphaned.
                Err(_) => {
                    let _ = tx.send(Event::Stop);
                    return;
                }
            };
            if tx.send(ev).is_err() {
                return;
            }
        }
    });
}
