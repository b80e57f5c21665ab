//! The temp file's life across runs: resumed when its journal still describes the source, checked
//! when asked, started over otherwise, with room kept so the last journal write fits on a full
//! disk.

use std::fs::File;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::WRITE_BUFFER;
use crate::error::{Error, Result};
use crate::transfer::incremental::{BaseImage, clone_into};
use crate::transfer::journal::{Journal, Validator};
use crate::transfer::range_set::RangeSet;
use crate::transfer::sparse::zero_range;
use crate::transfer::{OutDir, TempFile};

/// Room kept beside the temp file (`<temp>.reserve`) for the journal: when the disk fills up
/// mid-download, the data writes fail, and so would the journal's (a new file) — then nothing
/// fetched so far could be resumed. The reserve is released just before that last journal write,
/// and removed whenever the download ends. Best effort: no room for it is not an error.
pub(super) struct Reserve {
    dir: Arc<OutDir>,
    name: String,
    held: bool,
}

impl Reserve {
    pub(super) fn make(dir: Arc<OutDir>, temp_name: &str, len: u64) -> Reserve {
        let name = format!("{temp_name}.reserve");
        // A foreign file under the name is left alone (and no room is kept).
        let held = match dir.create_replacing_own(&name) {
            Ok(f) => {
                let ok = crate::platform::allocate(&f, len).is_ok();
                if !ok {
                    dir.remove(&name);
                }
                ok
            }
            Err(_) => false,
        };
        Reserve { dir, name, held }
    }

    /// Frees the room; whether there was any.
    pub(super) fn release(&mut self) -> bool {
        let had = std::mem::replace(&mut self.held, false);
        if had {
            self.dir.remove(&self.name);
        }
        had
    }
}

impl Drop for Reserve {
    fn drop(&mut self) {
        self.release();
    }
}

/// Room for a journal of `size` bytes in parts of `part`: each part may add a range and a CRC
/// (under 100 bytes of JSON), plus slack; at most 64 MiB.
pub(super) fn reserve_len(size: u64, part: u64) -> u64 {
    (size / part.max(1) + 1)
        .saturating_mul(100)
        .saturating_add(64 << 10)
        .min(64 << 20)
}

/// Opens the temp file: resumes when the journal matches the source and the temp file is
/// ours, otherwise starts a fresh sparse file of the right size whose holes count as done
/// (or, for an incremental export, a clone of the previous image).
/// Anything planted under the temp's name (a symlink, another user's file) is an error.
pub(super) fn open_temp(
    dir: &OutDir,
    temp: &TempFile,
    validator: Validator,
    holes: &RangeSet,
    base: Option<&BaseImage>,
    verify: bool,
    cancel: &CancellationToken,
) -> Result<(File, Journal)> {
    let existing = dir.open_own(&temp.name)?;
    if let Some(file) = existing {
        if validator.is_usable()
            && let Some(mut j) = Journal::load(dir, &temp.journal)
            && j.validator == validator
            && file
                .metadata()
                .map(|m| m.len() == validator.size)
                .unwrap_or(false)
        {
            if verify {
                recheck_kept(&file, temp, &mut j, holes, cancel)?;
            }
            // Ranges not in the journal may hold bytes of a lost attempt: make them zeros
            // again, since zero blocks are skipped when written.
            for (a, b) in j.done.gaps(validator.size) {
                zero_range(&file, &temp.path, a, b)?;
            }
            return Ok((file, j));
        }
        // Ours, but of another version of the source: start it over.
        file.set_len(0)
            .map_err(|e| Error::io(&temp.path, "cannot truncate", e))?;
        return fresh(dir, temp, file, validator, holes, base, cancel);
    }
    let file = dir.create_new(&temp.name)?;
    fresh(dir, temp, file, validator, holes, base, cancel)
}

fn fresh(
    dir: &OutDir,
    temp: &TempFile,
    file: File,
    validator: Validator,
    holes: &RangeSet,
    base: Option<&BaseImage>,
    cancel: &CancellationToken,
) -> Result<(File, Journal)> {
    // A journal of an earlier attempt must not outlive the bytes about to be rewritten: with a
    // base, a cancel during the clone would leave it beside a half-made file, which a later run
    // from that earlier base would resume as done.
    dir.remove(&temp.journal);
    if dir.exists(&temp.journal) {
        return Err(Error::io(
            &temp.path,
            "cannot remove the earlier journal of",
            std::io::Error::other("it is still there"),
        ));
    }
    match base {
        None => file
            .set_len(validator.size)
            .map_err(|e| Error::io(&temp.path, "cannot size", e))?,
        Some(b) => {
            // The previous image, then the ranges that changed made zeros: what is fetched
            // lands on zeros (zero blocks are skipped when written), what became zero is a
            // hole. The journal (stored last) makes a clone cut short start over.
            let way = clone_into(&file, &temp.path, &b.path, b.stamp, validator.size, cancel)?;
            tracing::debug!(file = %temp.path.display(), base = %b.path.display(), ?way, "previous image cloned");
            for (a, e) in holes
                .gaps(validator.size)
                .into_iter()
                .chain(b.zeroed.iter().copied())
            {
                zero_range(&file, &temp.path, a, e)?;
            }
            // The journal about to call these bytes done must not outlive them.
            file.sync_data()
                .map_err(|e| Error::io(&temp.path, "cannot sync", e))?;
        }
    }
    let mut j = Journal::new(validator);
    for (a, b) in holes.ranges() {
        j.done.insert(a, b);
    }
    j.store(dir, &temp.journal)?;
    Ok((file, j))
}

/// Keeps only the bytes of an earlier run that still match their part's CRC32C (and the
/// holes, which were never written); everything else is fetched again.
fn recheck_kept(
    file: &File,
    temp: &TempFile,
    j: &mut Journal,
    holes: &RangeSet,
    cancel: &CancellationToken,
) -> Result<()> {
    let mut done = RangeSet::new();
    for (a, b) in holes.ranges() {
        done.insert(a, b);
    }
    let mut kept = std::collections::BTreeMap::new();
    let mut buf = vec![0u8; WRITE_BUFFER];
    let mut dropped = 0u64;
    for (&start, &(end, want)) in &j.crcs {
        let mut crc = 0u32;
        let mut pos = start;
        while pos < end {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let n = ((end - pos) as usize).min(buf.len());
            crate::platform::read_exact_at(file, &mut buf[..n], pos)
                .map_err(|e| Error::io(&temp.path, "cannot read", e))?;
            crc = crc32c::crc32c_append(crc, &buf[..n]);
            pos += n as u64;
        }
        if crc == want {
            done.insert(start, end);
            kept.insert(start, (end, want));
        } else {
            dropped += end - start;
        }
    }
    let unverified = j.done.covered().saturating_sub(done.covered());
    if dropped > 0 || unverified > 0 {
        tracing::warn!(
            file = %temp.path.display(),
            mismatched = dropped,
            fetched_again = unverified,
            "bytes kept from an earlier run did not check out; fetching them again"
        );
    }
    j.done = done;
    j.crcs = kept;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An incremental run from another base, cancelled while it clones the previous image,
    /// must not leave the earlier attempt's journal beside the half-made temp file: a later run
    /// from that earlier base would find it matching and take every unfetched range as done.
    #[test]
    fn a_clone_cut_short_leaves_no_journal_of_an_earlier_attempt() {
        let root = tempfile::tempdir().unwrap();
        let dir = OutDir::open(root.path(), 0o600).unwrap();
        let temp = TempFile::for_name(&dir, "vol.img");
        let len = 4u64 << 20;
        let base_path = root.path().join("base.img");
        std::fs::write(&base_path, vec![7u8; len as usize]).unwrap();
        let validator = |from: &str| Validator {
            size: len,
            etag: Some(format!("\"snap-2\" - from {from}")),
            last_modified: None,
        };
        // The earlier attempt, from base A: its temp file and a journal calling it all done.
        let earlier = validator("snap-A");
        dir.create_new(&temp.name).unwrap().set_len(len).unwrap();
        let mut j = Journal::new(earlier.clone());
        j.done.insert(0, len);
        j.store(&dir, &temp.journal).unwrap();
        // Now from base B, cancelled during the clone.
        let stamp = crate::transfer::incremental::stamp(&File::open(&base_path).unwrap()).unwrap();
        let base = BaseImage {
            path: base_path,
            zeroed: Vec::new(),
            id: "snap-B".into(),
            stamp,
        };
        let cancel = CancellationToken::new();
        cancel.cancel();
        let _ = open_temp(
            &dir,
            &temp,
            validator("snap-B"),
            &RangeSet::new(),
            Some(&base),
            false,
            &cancel,
        );
        assert!(
            Journal::load(&dir, &temp.journal).is_none_or(|j| j.validator != earlier),
            "the earlier attempt's journal outlived the bytes it described"
        );
    }
}
