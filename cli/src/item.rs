//! One row of the command's work list: a source to export, with everything the run and the
//! history need. Named `Item`, not `Job` or `Task`: in the library a `Job` is the engine's own
//! unit of work and a `Task` is a cloud-side export task, neither of which this is.

use std::path::PathBuf;
use std::sync::Arc;

use hypersdk::{Client, ErrorKind};
use serde_json::{Map, Value};

pub(crate) struct Item {
    /// How the run shows the item: printable, without the source's secrets.
    pub label: String,
    pub provider: String,
    pub source: String,
    /// The provider's client, or why it could not be made: a batch still runs the exports of
    /// its other providers, and reports these as refused with the client's error.
    pub client: Result<Arc<Client>, Refusal>,
    /// Export options (output_dir included, absolute).
    pub options: Map<String, Value>,
    pub config_file: Option<PathBuf>,
    /// From a batch profile: (profile, provider entry), so a resume rebuilds the config with
    /// its secrets from the same places.
    pub profile: Option<(PathBuf, String)>,
}

/// Why an export never started: the library refused it, or its provider's client.
#[derive(Clone)]
pub(crate) struct Refusal {
    pub kind: ErrorKind,
    pub message: String,
}

impl Refusal {
    pub(crate) fn of(e: &hypersdk::Error, context: &str) -> Refusal {
        Refusal {
            kind: e.kind(),
            message: if context.is_empty() {
                e.to_string()
            } else {
                format!("{context}: {e}")
            },
        }
    }
}
