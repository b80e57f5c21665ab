//! One row of the command's work list: a source to export, with everything the run and the
//! history need. Named `Item`, not `Job` or `Task`: in the library a `Job` is the engine's own
//! unit of work and a `Task` is a cloud-side export task, neither of which this is.

use std::path::PathBuf;
use std::sync::Arc;

use hypersdk::Client;
use serde_json::{Map, Value};

pub(crate) struct Item {
    pub label: String,
    pub provider: String,
    pub source: String,
    pub client: Arc<Client>,
    /// Export options (output_dir included).
    pub options: Map<String, Value>,
    pub config_file: Option<PathBuf>,
    /// From a batch profile: (profile, provider entry), so a resume rebuilds the config with
    /// its secrets from the same places.
    pub profile: Option<(PathBuf, String)>,
}
