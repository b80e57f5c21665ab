//! The names a destination's bytes live under until they are verified, and their removal: the
//! engine and every strategy must agree on them, or a resume would not find its journal.

use std::path::PathBuf;

use super::journal::Journal;
use super::outdir::{self, OutDir};

/// The temp file of one destination: `<name>.hspart` (bytes until verified) and its journal
/// `<name>.hspart.journal`, both in the output folder.
#[derive(Debug, Clone)]
pub(crate) struct TempFile {
    pub name: String,
    pub journal: String,
    /// For messages.
    pub path: PathBuf,
}

impl TempFile {
    pub fn for_name(dir: &OutDir, dest_name: &str) -> TempFile {
        let name = format!("{dest_name}{}", outdir::TEMP_SUFFIX);
        TempFile {
            journal: Journal::name_for(dest_name),
            path: dir.join(&name),
            name,
        }
    }
}

/// Removes the temp file and journal of destination `dest_name` (a failed export with
/// `keep_partial` off, or downloads whose bytes were packed elsewhere).
pub(crate) fn discard_partial(dir: &OutDir, dest_name: &str) {
    let t = TempFile::for_name(dir, dest_name);
    dir.remove(&t.journal);
    dir.remove(&t.name);
}

/// Removes the journal of a destination whose temp file was renamed into place.
pub(crate) fn discard_journal(dir: &OutDir, dest_name: &str) {
    dir.remove(&Journal::name_for(dest_name));
}
