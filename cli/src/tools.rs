//! The small commands around exports: `clean` (leftovers of unfinished exports), shell
//! completions and the man page (generated from the same clap definitions as `--help`), and
//! where the library's log goes (`-v`, `RUST_LOG`, `--log-file`).

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, CommandFactory};

use crate::exit::Failure;
use crate::shown;

#[derive(Args)]
pub(crate) struct CleanArgs {
    /// The output folder to clean (not its subfolders).
    pub dir: PathBuf,
    /// Only list what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON object per leftover file.
    #[arg(long)]
    pub json: bool,
}

/// Removes the `.hspart`, `.hspart.journal` and `.hspart.lock` files of exports that did not
/// finish (giving up their resume), except what a running export holds or this user did not
/// make.
pub(crate) fn clean(a: &CleanArgs) -> Result<u8, Failure> {
    let found = hypersdk::clean_partials(&a.dir, a.dry_run)?;
    let mut out = std::io::stdout().lock();
    for l in &found {
        let _ = if a.json {
            writeln!(
                out,
                "{}",
                shown::json_line(&serde_json::to_value(l).unwrap_or_default())
            )
        } else {
            writeln!(
                out,
                "{:<13} {:>11}  {}",
                l.action.replace('_', " "),
                crate::run::human(l.bytes),
                shown::text(&l.name)
            )
        };
    }
    if !a.json {
        let gone = found
            .iter()
            .filter(|l| matches!(l.action, "removed" | "would_remove"))
            .count();
        let verb = if a.dry_run {
            "would be removed"
        } else {
            "removed"
        };
        let _ = writeln!(out, "{gone} of {} leftover file(s) {verb}", found.len());
    }
    Ok(0)
}

#[derive(Args)]
pub(crate) struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

/// Shell completion for `hypersdk`, on stdout (e.g. `hypersdk completions bash >
/// ~/.local/share/bash-completion/completions/hypersdk`).
pub(crate) fn completions(a: &CompletionsArgs) -> Result<u8, Failure> {
    let mut cmd = crate::Cli::command();
    // Into memory first: clap_complete panics when its writer fails (a closed pipe).
    let mut text = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "hypersdk", &mut text);
    let _ = std::io::stdout().write_all(&text);
    Ok(0)
}

/// The man page, roff on stdout (`hypersdk man > hypersdk.1; man ./hypersdk.1`).
pub(crate) fn man() -> Result<u8, Failure> {
    let mut text = Vec::new();
    clap_mangen::Man::new(crate::Cli::command())
        .render(&mut text)
        .map_err(|e| format!("making the man page: {e}"))?;
    // A closed pipe (`| head`) is the reader's choice, not an error.
    let _ = std::io::stdout().write_all(&text);
    Ok(0)
}

/// Where the library's `tracing` events go: nowhere unless asked; `-v` (info), `-vv` (debug),
/// `-vvv` (trace) for hypersdk's own events, or `RUST_LOG` (full `tracing-subscriber` filter
/// syntax, over `-v`); on stderr, or appended to `--log-file`.
pub(crate) fn init_log(verbose: u8, log_file: Option<&PathBuf>) -> Result<(), Failure> {
    use tracing_subscriber::EnvFilter;
    let from_env = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let filter = match (&from_env, verbose) {
        (Some(v), _) => EnvFilter::try_new(v).map_err(|e| format!("RUST_LOG {v:?}: {e}"))?,
        (None, 0) if log_file.is_none() => return Ok(()),
        (None, 0 | 1) => EnvFilter::new("hypersdk=info"),
        (None, 2) => EnvFilter::new("hypersdk=debug"),
        (None, _) => EnvFilter::new("hypersdk=trace"),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let done = match log_file {
        Some(p) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| Failure::local(format!("--log-file {}: {e}", p.display())))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .try_init()
        }
        None => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .try_init(),
    };
    done.map_err(|e| format!("starting the log: {e}").into())
}
