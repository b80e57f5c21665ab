//! `hypersdk`: the command-line tool over the hypersdk library. Many exports from one or
//! several providers at once, one live progress bar each (plain lines when stdout is not a
//! terminal, JSON events with `--json`), a summary, exit codes that follow the worst outcome,
//! a local history with resume, and Ctrl+C that undoes the cloud side before it exits.

// Imports point one way, down these layers (each may use any layer below it):
//   tui → history_cmd → batch → run → history → item, input, exit, shown
// (tools, the commands around exports, uses only run's formatting and the layers below.)
// so a resume can run exports and a run can write the history without a circle.
mod batch;
mod discover;
mod exit;
mod history;
mod history_cmd;
mod input;
mod item;
mod run;
mod shown;
mod tools;
mod tui;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value};

use exit::Failure;
use item::Item;

const EXAMPLES: &str = "\
Examples:
  hypersdk export http https://example.com/disk.img --output /backups
  hypersdk export aws i-0abc i-0def --config aws.json -o s3_bucket=exports --output /backups
  hypersdk export gcp instance:web-1 --config gcp.json -o format=vhdx --output /backups --json
  hypersdk batch migration.toml --max-concurrent 8
  hypersdk history
  hypersdk history --resume 12
  hypersdk clean /backups --dry-run
  hypersdk completions bash > ~/.local/share/bash-completion/completions/hypersdk

Exit codes: 0 every export done; 2 bad input; 3 not found; 4 authentication; 5 network, timeout
or cloud error; 6 verification failed or the source changed; 7 local file error; 8 unsupported
or internal; 9 cancelled; 130 interrupted by Ctrl+C, SIGTERM or SIGHUP (after cloud cleanup
ran). With several exports, the worst (highest) code wins.";

#[derive(Parser)]
#[command(name = "hypersdk", version, about = "Export VMs and disks from AWS, Azure, GCP, vSphere, Hyper-V and HTTP servers onto local disk, many at once", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Show the library's log on stderr: -v info, -vv debug, -vvv trace (RUST_LOG, in
    /// tracing-subscriber's filter syntax, overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Append the log to this file instead of stderr (info level unless -v or RUST_LOG say more).
    #[arg(long, global = true, value_name = "FILE")]
    log_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Export one or more sources of one provider, all at once.
    #[command(after_help = "Examples:
  hypersdk export http https://example.com/a.img https://example.com/b.img --output /backups
  hypersdk export vsphere /DC1/vm/db01 --config vc.json -o format=ova --output /backups
  echo '{\"region\": \"eu-west-1\"}' | hypersdk export aws ami-0123 --config - -o s3_bucket=exports")]
    Export(ExportArgs),
    /// Run a batch profile: several providers, each with its config, sources and options.
    #[command(after_help = batch::EXAMPLE)]
    Batch(batch::BatchArgs),
    /// Past exports (newest first), and resuming a failed or cancelled one.
    #[command(after_help = "Examples:
  hypersdk history
  hypersdk history --json --limit 100
  hypersdk history --resume 12      # runs export 12 again; its journal makes it fetch only what is missing
  hypersdk history --resume 13 --source 'https://b.s3.amazonaws.com/d.img?X-Amz-Signature=…'
                                    # the history keeps no secret: a signed URL is given again")]
    History(history_cmd::HistoryArgs),
    /// The sources a provider can export: instances, images, disks, snapshots, VMs, objects.
    #[command(after_help = "Examples:
  hypersdk list gcp --config gcp.json --kind instance
  hypersdk list gcp --config gcp.json --filter '{\"zone\": \"us-east1-b\", \"bucket\": \"exports\"}'
  hypersdk list hyperv --name-contains web --json")]
    List(ListArgs),
    /// The providers built into this library.
    Providers,
    /// Remove the leftovers (.hspart, .hspart.journal, .hspart.reserve, .hspart.lock) of exports
    /// that did not finish: what no running export holds and this user made. Their resume is given up.
    Clean(tools::CleanArgs),
    /// Print shell completion for bash, zsh, fish, elvish or powershell.
    Completions(tools::CompletionsArgs),
    /// Print the man page (roff).
    Man,
    /// One screen for every account of a profile: browse sources, export a selection, watch
    /// and cancel the exports live, resume from the history (`?` lists the keys).
    #[command(after_help = "Examples:
  hypersdk tui --profile migration.toml
  hypersdk tui --profile migration.toml --read-only
  NO_COLOR=1 hypersdk tui            # the accounts file; no colour")]
    Tui(tui::TuiArgs),
}

#[derive(Args)]
struct ListArgs {
    /// aws, azure, gcp, hyperv or vsphere (http has no list: unsupported), or an account named
    /// in the accounts file (~/.config/hypersdk/config.toml, or $HYPERSDK_CONFIG).
    provider: String,
    /// The provider's config: a JSON file, `-` for stdin, or inline JSON.
    #[arg(long)]
    config: Option<String>,
    /// Only this kind: instance, image, disk, snapshot, vm, object.
    #[arg(long)]
    kind: Option<String>,
    /// Only names containing this text (any case).
    #[arg(long)]
    name_contains: Option<String>,
    /// The provider's own filter keys, as a JSON object (a zone, a resource group, a bucket…).
    #[arg(long)]
    filter: Option<String>,
    /// One JSON object per source.
    #[arg(long)]
    json: bool,
    /// A config secret, KEY=env:NAME or KEY=file:PATH (never the value: ps shows arguments).
    /// Repeatable.
    #[arg(long = "secret", value_name = "KEY=env:NAME|file:PATH")]
    secrets: Vec<String>,
}

#[derive(Args)]
struct ExportArgs {
    /// aws, azure, gcp, hyperv, vsphere or http, or an account named in the accounts file
    /// (`[providers.NAME]` tables as in a batch profile: ~/.config/hypersdk/config.toml, or
    /// $HYPERSDK_CONFIG), used when no --config is given.
    provider: String,
    /// What to export: instance ids, disk names, VM paths, URLs… one export each.
    #[arg(required = true)]
    sources: Vec<String>,
    /// The provider's config: a JSON file, `-` for stdin, or inline JSON. Keys it leaves out
    /// come from the variables the platform's tools read (GOVC_URL/_USERNAME/_PASSWORD/
    /// _INSECURE, AWS_REGION, AZURE_SUBSCRIPTION_ID, CLOUDSDK_CORE_PROJECT/GOOGLE_CLOUD_PROJECT).
    #[arg(long)]
    config: Option<String>,
    /// A config secret, KEY=env:NAME or KEY=file:PATH (never the value: ps shows arguments).
    /// Repeatable.
    #[arg(long = "secret", value_name = "KEY=env:NAME|file:PATH")]
    secrets: Vec<String>,
    /// The folder the files go to.
    #[arg(long, short = 'd', default_value = ".")]
    output: PathBuf,
    /// An export option, KEY=VALUE (VALUE read as JSON when it parses, else as text). Repeatable.
    #[arg(short = 'o', long = "option", value_name = "KEY=VALUE")]
    options: Vec<String>,
    /// Queue priority of these exports (higher first).
    #[arg(long, default_value_t = 0)]
    priority: i32,
    #[command(flatten)]
    out: run::Output,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = match &cli.cmd {
        Cmd::Export(a) => a.out.json,
        Cmd::Batch(a) => a.out.json,
        Cmd::History(a) => a.json,
        Cmd::List(a) => a.json,
        Cmd::Clean(a) => a.json,
        Cmd::Providers | Cmd::Completions(_) | Cmd::Man | Cmd::Tui(_) => false,
    };
    // The TUI owns the terminal: a log on stderr would draw over it.
    let env_log = std::env::var_os("RUST_LOG").is_some_and(|v| !v.is_empty());
    if matches!(cli.cmd, Cmd::Tui(_)) && (cli.verbose > 0 || env_log) && cli.log_file.is_none() {
        eprintln!(
            "hypersdk: tui: the log would draw over the screen; give --log-file FILE with -v or RUST_LOG"
        );
        return ExitCode::from(2);
    }
    if let Err(f) = tools::init_log(cli.verbose, cli.log_file.as_ref()) {
        eprintln!("hypersdk: {}", shown::text(&f.message));
        return ExitCode::from(f.code);
    }
    let code = match cli.cmd {
        Cmd::Export(a) => export(a),
        Cmd::Batch(a) => batch::run(&a),
        Cmd::History(a) => history_cmd::command(&a),
        Cmd::List(a) => list(a),
        Cmd::Providers => {
            for p in hypersdk::available_providers() {
                println!("{p}");
            }
            Ok(0)
        }
        Cmd::Clean(a) => tools::clean(&a),
        Cmd::Completions(a) => tools::completions(&a),
        Cmd::Man => tools::man(),
        Cmd::Tui(a) => tui::run(&a),
    };
    match code {
        Ok(c) => ExitCode::from(c),
        Err(f) => {
            eprintln!("hypersdk: {}", shown::text(&f.message));
            if json {
                // A JSON reader gets the failure on stdout too, with its kind from the error.
                let event = serde_json::json!({
                    "event": "error",
                    "error": {"kind": f.kind, "message": f.message},
                    "exit_code": f.code,
                });
                let _ = writeln!(std::io::stdout(), "{}", shown::json_line(&event));
            }
            ExitCode::from(f.code)
        }
    }
}

/// What `export` and `list` run with.
struct Resolved {
    provider: String,
    config: input::Config,
    /// A named account: the accounts file and the entry (the history records them).
    account: Option<(PathBuf, String)>,
}

/// The provider, its config and (for a named account) the accounts file and entry: `--config`
/// when given, else the account of that name in the accounts file, else an empty config; then
/// `--secret` values and what the environment fills in.
fn provider_and_config(
    name: &str,
    config: Option<&str>,
    secrets: &[String],
) -> Result<Resolved, Failure> {
    let named = match config {
        None => batch::account(name).map_err(exit::Failure::local)?,
        Some(_) => None,
    };
    let (provider, mut c, account) = match (config, named) {
        (None, Some((provider, text, path))) => (
            provider,
            input::Config { text, file: None },
            Some((path, name.to_string())),
        ),
        _ => (name.to_string(), input::load_config(config)?, None),
    };
    c.text = complete_config(&provider, &c.text, secrets)?;
    Ok(Resolved {
        provider,
        config: c,
        account,
    })
}

fn export(a: ExportArgs) -> Result<u8, Failure> {
    let Resolved {
        provider,
        config,
        account,
    } = provider_and_config(&a.provider, a.config.as_deref(), &a.secrets)?;
    let client = Arc::new(hypersdk::Client::new(&provider, &config.text)?);
    let mut options = input::parse_options(&a.options)?;
    options.insert(
        "output_dir".into(),
        Value::from(
            input::output_dir(&a.output, !a.out.dry_run)
                .map_err(Failure::local)?
                .display()
                .to_string(),
        ),
    );
    if a.priority != 0 {
        options.insert("priority".into(), a.priority.into());
    }
    let items = a
        .sources
        .iter()
        .map(|s| Item {
            label: shown::source(s),
            provider: provider.clone(),
            source: s.clone(),
            client: Ok(client.clone()),
            options: options.clone(),
            config_file: config.file.clone(),
            profile: account.clone(),
        })
        .collect();
    Ok(run::run_all(items, &a.out))
}

/// The config with `--secret` values and what the platform's own tools would read from the
/// environment for keys it leaves out (discover.rs). A config that is not a JSON object is
/// passed on as it is, for the library to name what is wrong.
fn complete_config(provider: &str, text: &str, secrets: &[String]) -> Result<String, Failure> {
    let (text, filled) = discover::complete(provider, text, secrets)?;
    if !filled.is_empty() {
        tracing::info!(?filled, "config keys taken from the environment");
    }
    Ok(text)
}

fn list(a: ListArgs) -> Result<u8, Failure> {
    let Resolved {
        provider, config, ..
    } = provider_and_config(&a.provider, a.config.as_deref(), &a.secrets)?;
    let client = hypersdk::Client::new(&provider, &config.text)?;
    let mut filter = match &a.filter {
        Some(f) => match serde_json::from_str(f) {
            Ok(Value::Object(m)) => m,
            _ => return Err(format!("--filter {f:?} is not a JSON object").into()),
        },
        None => Map::new(),
    };
    if let Some(k) = a.kind {
        filter.insert("kind".into(), k.into());
    }
    if let Some(n) = a.name_contains {
        filter.insert("name_contains".into(), n.into());
    }
    let found = match client.list_sources(&Value::Object(filter).to_string()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("hypersdk: {}", shown::text(&e.to_string()));
            return Ok(exit::of_kind(e.kind(), false));
        }
    };
    if a.json {
        for s in &found {
            println!(
                "{}",
                shown::json_line(&serde_json::to_value(s).unwrap_or_default())
            );
        }
        return Ok(0);
    }
    println!(
        "{:<9} {:<24} {:>12} {:<14} id",
        "kind", "name", "size", "state"
    );
    // Every field came from the cloud: a name may hold escape sequences.
    for s in &found {
        println!(
            "{:<9} {:<24} {:>12} {:<14} {}",
            shown::text(s.kind),
            shown::text(&s.name),
            s.size_bytes.map(run::human).unwrap_or_else(|| "-".into()),
            shown::text(s.state.as_deref().unwrap_or("-")),
            shown::text(&s.id)
        );
    }
    println!("{} source(s)", found.len());
    Ok(0)
}
