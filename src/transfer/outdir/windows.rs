//! The output folder on Windows (see the parent module for the rules). There is no `openat`, so
//! names are resolved under the folder's path; the folder itself is held open without
//! `FILE_SHARE_DELETE`, so it cannot be renamed or replaced by a junction while an export runs,
//! and no open follows a reparse point (symbolic link, junction) planted under a name.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::windows::fs::OpenOptionsExt as _;
use std::path::Path;

use windows_sys::Win32::Storage::FileSystem::{MOVEFILE_WRITE_THROUGH, MoveFileExW};

use super::{DestLock, LOCK_SUFFIX, OutDir};
use crate::error::{Error, Result};

const FILE_FLAG_BACKUP_SEMANTICS: u32 = 0x0200_0000;
const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
const FILE_SHARE_READ: u32 = 0x1;
const FILE_SHARE_WRITE: u32 = 0x2;
const ERROR_FILE_EXISTS: i32 = 80;
const ERROR_ALREADY_EXISTS: i32 = 183;

impl OutDir {
    /// Opens `path`, which must be a folder (a link to one is accepted: the caller named it).
    pub fn open(path: &Path, mode: u32) -> Result<OutDir> {
        let dir = OpenOptions::new()
            .read(true)
            .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE)
            .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
            .open(path)
            .and_then(|d| {
                if d.metadata()?.is_dir() {
                    Ok(d)
                } else {
                    Err(std::io::Error::other("not a folder"))
                }
            })
            .map_err(|e| {
                Error::InvalidArgument(format!("output_dir {} cannot be used: {e}", path.display()))
            })?;
        Ok(OutDir {
            dir,
            path: path.to_path_buf(),
            mode,
        })
    }

    fn options(&self) -> OpenOptions {
        let mut o = OpenOptions::new();
        o.read(true)
            .write(true)
            .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
        o
    }

    /// Creates `name`, which must not exist (`CREATE_NEW`: a link or file planted under the name
    /// makes this fail). Access follows the folder's inherited ACL; `file_mode` is a Unix notion.
    pub fn create_new(&self, name: &str) -> Result<File> {
        let _ = self.mode;
        self.options()
            .create_new(true)
            .open(self.join(name))
            .map_err(|e| self.planted_or_io(name, "cannot create", e))
    }

    /// Opens an existing `name` that this library made: a regular file, not a link. `None` when
    /// there is no such name.
    pub fn open_own(&self, name: &str) -> Result<Option<File>> {
        let f = match self.options().open(self.join(name)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.planted_or_io(name, "cannot open", e)),
        };
        let m = f
            .metadata()
            .map_err(|e| Error::io(&self.join(name), "cannot inspect", e))?;
        if !m.file_type().is_file() || m.file_type().is_symlink() {
            return Err(self.not_ours(name));
        }
        Ok(Some(f))
    }

    /// Whether something (anything, a dangling link too) has this name.
    pub fn exists(&self, name: &str) -> bool {
        std::fs::symlink_metadata(self.join(name)).is_ok()
    }

    /// Removes `name` (a link is removed, not followed). Missing is fine.
    pub fn remove(&self, name: &str) {
        let _ = std::fs::remove_file(self.join(name));
    }

    /// Renames `from` to `to` inside the folder; without `overwrite` an existing `to` is an error.
    pub fn rename(&self, from: &str, to: &str, overwrite: bool) -> Result<()> {
        self.rename_from(&self.join(from), to, overwrite)
    }

    /// Renames a file or folder from elsewhere to `to` in the folder, with the same rule.
    /// Without `overwrite`: `MoveFileExW` without `MOVEFILE_REPLACE_EXISTING`, which fails on an
    /// existing name (ERROR_ALREADY_EXISTS) atomically, for files and folders alike
    /// (learn.microsoft.com/windows/win32/api/winbase/nf-winbase-movefileexw). (A hard link,
    /// used before, cannot be made to a folder: a Hyper-V export's folder always failed there
    /// with "Access denied".) std's `rename` always replaces, so it serves `overwrite` only.
    pub fn rename_from(&self, from: &Path, to: &str, overwrite: bool) -> Result<()> {
        let target = self.join(to);
        if overwrite {
            // MoveFileEx(REPLACE_EXISTING): a link at `to` is replaced, not followed.
            return std::fs::rename(from, &target)
                .map_err(|e| Error::io(&target, "cannot rename into", e));
        }
        let (wide_from, wide_to) = (wide(from), wide(&target));
        // SAFETY: two NUL-terminated UTF-16 strings that live for the call.
        let ok =
            unsafe { MoveFileExW(wide_from.as_ptr(), wide_to.as_ptr(), MOVEFILE_WRITE_THROUGH) };
        if ok != 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if is_exists(&e) {
            return Err(Error::AlreadyExists(format!(
                "{} appeared during the export; set overwrite to replace it",
                target.display()
            )));
        }
        Err(Error::io(&target, "cannot rename into", e))
    }

    /// Takes the destination `name` for this export (see the Unix version): `LockFileEx` through
    /// `File::try_lock`, refused at once naming the holder.
    pub fn lock(&self, name: &str) -> Result<DestLock> {
        let lock_name = format!("{name}{LOCK_SUFFIX}");
        let mut f = self
            .options()
            .create(true)
            .truncate(false)
            .open(self.join(&lock_name))
            .map_err(|e| self.planted_or_io(&lock_name, "cannot create", e))?;
        let m = f
            .metadata()
            .map_err(|e| Error::io(&self.join(&lock_name), "cannot inspect", e))?;
        if !m.file_type().is_file() || m.file_type().is_symlink() {
            return Err(self.not_ours(&lock_name));
        }
        if f.try_lock().is_err() {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(Error::AlreadyExists(format!(
                "another export is writing {} ({}); wait for it or cancel it",
                self.join(name).display(),
                if holder.is_empty() {
                    "holder unknown"
                } else {
                    holder
                }
            )));
        }
        let _ = f.set_len(0);
        let _ = f.rewind();
        let _ = write!(f, "pid {}", std::process::id());
        Ok(DestLock {
            _file: f,
            name: lock_name,
        })
    }

    fn planted_or_io(&self, name: &str, what: &str, e: std::io::Error) -> Error {
        if is_exists(&e) {
            return Error::AlreadyExists(format!(
                "{} exists and was not made by this export; remove it",
                self.join(name).display()
            ));
        }
        Error::io(&self.join(name), what, e)
    }
}

fn is_exists(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::AlreadyExists
        || matches!(
            e.raw_os_error(),
            Some(ERROR_FILE_EXISTS | ERROR_ALREADY_EXISTS)
        )
}

/// `p` as a NUL-terminated UTF-16 string for a `…W` call. A path longer than `MAX_PATH` gets the
/// `\\?\` prefix (`\\?\UNC\` for a share), as std does for its own calls: the paths here
/// are absolute with `\` only (`paths::native_dir`), which verbatim paths require.
fn wide(p: &Path) -> Vec<u16> {
    use std::os::windows::ffi::OsStrExt as _;
    let s = p.as_os_str();
    let mut out: Vec<u16> = Vec::new();
    let text = s.to_string_lossy();
    if s.len() >= 248 && !text.starts_with(r"\\?\") {
        if let Some(unc) = text.strip_prefix(r"\\") {
            out.extend(r"\\?\UNC\".encode_utf16());
            out.extend(std::ffi::OsStr::new(unc).encode_wide());
            out.push(0);
            return out;
        }
        if text.as_bytes().get(1) == Some(&b':') {
            out.extend(r"\\?\".encode_utf16());
        }
    }
    out.extend(s.encode_wide());
    out.push(0);
    out
}
