//! A batch profile (TOML) as `hypersdk batch` and `--resume` read it: parsed, and every
//! provider entry resolved to its config JSON (secrets from env:/file: merged in), through the
//! command's own code (cli/src, included by path: the command is a binary, not a library).
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
#[path = "../../cli/src/input.rs"]
mod input;
#[path = "../../cli/src/item.rs"]
mod item;
#[path = "../../cli/src/run/mod.rs"]
mod run;
#[path = "../../cli/src/shown.rs"]
mod shown;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The profile lives in a folder of its own: `file:` secrets and config files are read
    // relative to it, and nothing else is there.
    let dir = std::env::temp_dir().join(format!("hypersdk-fuzz-batch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("profile.toml");
    std::fs::write(&path, text).unwrap();
    // The names the harness asks for: the profile's own provider tables, and one it lacks.
    let mut names = vec!["missing".to_string()];
    if let Ok(t) = text.parse::<toml::Table>()
        && let Some(toml::Value::Table(p)) = t.get("providers")
    {
        names.extend(p.keys().cloned());
    }
    for n in names {
        if let Ok((_provider, json)) = batch::provider_config(&path, &n) {
            // What the profile gives the library is a JSON object.
            assert!(matches!(
                serde_json::from_str::<serde_json::Value>(&json),
                Ok(serde_json::Value::Object(_))
            ));
        }
    }
});
