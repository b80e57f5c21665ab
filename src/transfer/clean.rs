//! Leftovers of exports that did not finish — `<name>.hspart` (bytes), `<name>.hspart.journal`
//! (what of them is in place) and its `.tmp`, `<name>.hspart.reserve` (room kept on the disk)
//! and `<name>.hspart.lock` — found and removed, for the command's
//! `clean`. Only what no running export holds (its destination lock is taken first, so an
//! export cannot start on the name meanwhile) and what this library made (a regular file of
//! this user with one link: a planted link or another user's file is reported, never touched).
//! Removing them gives up resuming those downloads; that is what the user asked for.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::outdir::{JOURNAL_SUFFIX, LOCK_SUFFIX, OutDir, TEMP_SUFFIX};
use crate::error::{Error, Result};

/// One leftover file and what was done with it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Leftover {
    /// The file's name in the folder.
    pub name: String,
    /// Its size, bytes.
    pub bytes: u64,
    /// `removed`, `would_remove` (dry run), `in_use` (a running export holds its destination)
    /// or `not_ours` (not a regular file of this user with one link: left alone).
    pub action: &'static str,
}

/// The destination a leftover belongs to, or `None` when `name` is not one of ours.
fn destination(name: &str) -> Option<&str> {
    // Longer suffixes first: each contains the temp file's.
    let journal_tmp = format!("{JOURNAL_SUFFIX}.tmp");
    let reserve = format!("{TEMP_SUFFIX}.reserve");
    [
        journal_tmp.as_str(),
        JOURNAL_SUFFIX,
        &reserve,
        LOCK_SUFFIX,
        TEMP_SUFFIX,
    ]
    .iter()
    .find_map(|s| name.strip_suffix(s))
    .filter(|d| !d.is_empty())
}

/// Finds the leftovers in `dir` (not in its subfolders) and removes them unless `dry_run`.
pub fn clean_partials(dir: &Path, dry_run: bool) -> Result<Vec<Leftover>> {
    let out = OutDir::open(dir, 0o600)?;
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "cannot list", e))?;
    let mut by_dest: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
    for e in entries {
        let e = e.map_err(|e| Error::io(dir, "cannot list", e))?;
        let Some(name) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if let Some(dest) = destination(&name) {
            let bytes = e.metadata().map(|m| m.len()).unwrap_or(0);
            by_dest
                .entry(dest.to_string())
                .or_default()
                .push((name, bytes));
        }
    }
    let mut found = Vec::new();
    for (dest, files) in by_dest {
        let lock_name = format!("{dest}{LOCK_SUFFIX}");
        let lock_existed = out.exists(&lock_name);
        let lock = match out.lock(&dest) {
            Ok(l) => Some(l),
            Err(Error::AlreadyExists(m)) if m.contains("another export") => None,
            // A lock file that is not ours (a planted link): report, touch nothing.
            Err(_) => {
                found.extend(files.into_iter().map(|(name, bytes)| Leftover {
                    name,
                    bytes,
                    action: "not_ours",
                }));
                continue;
            }
        };
        let Some(lock) = lock else {
            found.extend(files.into_iter().map(|(name, bytes)| Leftover {
                name,
                bytes,
                action: "in_use",
            }));
            continue;
        };
        for (name, bytes) in files {
            if name == lock_name {
                continue;
            }
            let action = match out.open_own(&name) {
                Ok(Some(_)) if dry_run => "would_remove",
                Ok(Some(_)) => {
                    out.remove(&name);
                    "removed"
                }
                Ok(None) => continue,
                Err(_) => "not_ours",
            };
            found.push(Leftover {
                name,
                bytes,
                action,
            });
        }
        // The lock file goes with the rest; on a dry run only if this call made it.
        if dry_run && lock_existed {
            drop(lock);
        } else {
            out.unlock(lock);
        }
        if lock_existed {
            found.push(Leftover {
                name: lock_name,
                bytes: 0,
                action: if dry_run { "would_remove" } else { "removed" },
            });
        }
    }
    Ok(found)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn only_our_unheld_leftovers_go() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::write(p.join("a.vmdk.hspart"), b"12345").unwrap();
        std::fs::write(p.join("a.vmdk.hspart.journal"), b"{}").unwrap();
        std::fs::write(p.join("a.vmdk.hspart.journal.tmp"), b"{").unwrap();
        std::fs::write(p.join("a.vmdk.hspart.reserve"), b"room").unwrap();
        std::fs::write(p.join("done.vmdk"), b"keep").unwrap();
        std::fs::write(p.join("victim"), b"keep").unwrap();
        std::os::unix::fs::symlink(p.join("victim"), p.join("b.vmdk.hspart")).unwrap();
        // A running export holds c.vmdk.
        let out = OutDir::open(p, 0o600).unwrap();
        std::fs::write(p.join("c.vmdk.hspart"), b"running").unwrap();
        let held = out.lock("c.vmdk").unwrap();

        let dry = clean_partials(p, true).unwrap();
        assert!(p.join("a.vmdk.hspart").exists(), "a dry run removed a file");
        assert!(
            dry.iter()
                .any(|l| l.name == "a.vmdk.hspart" && l.action == "would_remove" && l.bytes == 5),
            "{dry:?}"
        );

        let done = clean_partials(p, false).unwrap();
        let action = |n: &str| done.iter().find(|l| l.name == n).map(|l| l.action);
        assert_eq!(action("a.vmdk.hspart"), Some("removed"), "{done:?}");
        assert_eq!(action("a.vmdk.hspart.journal"), Some("removed"));
        assert_eq!(action("a.vmdk.hspart.journal.tmp"), Some("removed"));
        assert_eq!(action("a.vmdk.hspart.reserve"), Some("removed"));
        assert_eq!(action("b.vmdk.hspart"), Some("not_ours"));
        assert_eq!(action("c.vmdk.hspart"), Some("in_use"));
        assert!(!p.join("a.vmdk.hspart").exists() && !p.join("a.vmdk.hspart.journal").exists());
        assert!(
            !p.join("a.vmdk.hspart.lock").exists(),
            "the lock file made to clean stayed"
        );
        assert_eq!(std::fs::read(p.join("victim")).unwrap(), b"keep");
        assert!(
            p.join("b.vmdk.hspart").symlink_metadata().is_ok(),
            "the planted link went"
        );
        assert!(
            p.join("c.vmdk.hspart").exists(),
            "a running export's file went"
        );
        assert!(p.join("done.vmdk").exists());
        drop(held);
    }
}
