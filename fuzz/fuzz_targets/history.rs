//! The command's history file (JSON lines) as `hypersdk history` reads and shows it, through
//! the command's own code (cli/src, included by path: the command is a binary, not a library).
//! Run with `-close_fd_mask=1`: the listing goes to stdout.
#![no_main]
#![allow(dead_code, unused_imports)]

#[path = "../../cli/src/batch.rs"]
mod batch;
#[path = "../../cli/src/discover.rs"]
mod discover;
#[path = "../../cli/src/exit.rs"]
mod exit;
#[path = "../../cli/src/history.rs"]
mod history;
#[path = "../../cli/src/history_cmd.rs"]
mod history_cmd;
#[path = "../../cli/src/input.rs"]
mod input;
#[path = "../../cli/src/item.rs"]
mod item;
#[path = "../../cli/src/run/mod.rs"]
mod run;
#[path = "../../cli/src/shown.rs"]
mod shown;

use clap::{Args as _, FromArgMatches as _};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("hypersdk-fuzz-history-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // SAFETY: the fuzz loop is single-threaded and nothing else reads the environment.
    unsafe { std::env::set_var("HYPERSDK_STATE_DIR", &dir) };
    std::fs::write(dir.join("history.jsonl"), data).unwrap();
    for argv in [
        &["history"][..],
        &["history", "--json"],
        &["history", "--limit", "1000"],
    ] {
        let cmd = history_cmd::HistoryArgs::augment_args(clap::Command::new("history"));
        let args = history_cmd::HistoryArgs::from_arg_matches(&cmd.get_matches_from(argv)).unwrap();
        assert!(matches!(history_cmd::command(&args), Ok(0)));
    }
});
