//! The fuzz targets' way in (cargo feature `fuzzing`, off by default): Hyper-V's parsers of
//! outside input — the client config, the export options and source id, PowerShell's error
//! records, the host's file names as they become local ones, disk chains and job lines.

use serde_json::Value;

use super::config::{self, HyperVConfig, HyperVOptions};
use super::ps::{Script, script_error};
use crate::providers::kit::parse_config;
use crate::seam::options::parse_provider_options;

pub(crate) fn config(json: &str) {
    if let Ok(cfg) = parse_config::<HyperVConfig>("hyperv", json) {
        let _ = cfg.check();
    }
}

pub(crate) fn options(source: &str, rest: serde_json::Map<String, Value>) {
    let Ok(o) = parse_provider_options::<HyperVOptions>(rest) else {
        return;
    };
    for t in [
        config::Transport::Local,
        config::Transport::Winrm,
        config::Transport::Ssh,
    ] {
        let _ = o.check(t);
    }
    let _ = config::parse_source(source);
}

/// A JSON line of a script: an `error` record as our error; a host path's leaf as the name
/// the export gives its local file.
pub(crate) fn line(v: &Value) -> Option<crate::error::Error> {
    for k in ["path", "source", "name"] {
        if let Some(p) = v[k].as_str() {
            let leaf = config::leaf(p);
            let _ = config::is_windows_folder_name(leaf);
            let mut used = std::collections::HashSet::new();
            let a = super::export::unique(&mut used, leaf.to_string());
            let b = super::export::unique(&mut used, leaf.to_string());
            assert_ne!(a.to_lowercase(), b.to_lowercase());
            // A disk's output file: always one Convert-VHD can write.
            let out = super::export::output_name(leaf).to_ascii_lowercase();
            assert!(out.ends_with(".vhdx") || out.ends_with(".vhd"), "{out}");
            let _ = super::export::chain_of(p, 1, &v["chain"]);
        }
    }
    // A `job` line: recording it never panics, whatever its fields.
    let _ = super::jobs::note_job(&std::sync::Mutex::default(), v);
    (v["event"] == "error").then(|| script_error(Script::Inventory, v))
}
