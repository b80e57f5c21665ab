//! The last step of an export: every verified temp file renamed to its final name in one
//! pass, synced first, so a crash never leaves a file that looks complete and is not.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::transfer::{self, OutDir};

/// Where a finished file is now.
pub(super) enum Origin {
    /// A temp file of ours in the output folder.
    Temp(String),
    /// A file another process wrote, where it chose.
    Path(PathBuf),
}

pub(super) struct Rename {
    /// The open file, synced before the rename.
    pub file: Option<Arc<std::fs::File>>,
    pub from: Origin,
    pub to: String,
}

/// Renames every verified temp file to its final name (refusing to replace a file unless
/// `overwrite`: decided by the kernel at the rename), drops the journals, and syncs the folder
/// so the renames survive a crash.
pub(super) fn rename_into_place(dir: &OutDir, files: &[Rename], overwrite: bool) -> Result<()> {
    for r in files {
        if let Some(f) = &r.file {
            f.sync_all()
                .map_err(|e| Error::io(&dir.join(&r.to), "cannot sync", e))?;
        }
        match &r.from {
            Origin::Temp(t) => dir.rename(t, &r.to, overwrite)?,
            Origin::Path(p) => dir.rename_from(p, &r.to, overwrite)?,
        }
        transfer::discard_journal(dir, &r.to);
    }
    dir.sync();
    Ok(())
}
