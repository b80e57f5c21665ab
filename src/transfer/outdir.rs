//! The output folder, treated as a place others may write to (backup jobs run as root and write
//! into shared folders). Everything the library creates there goes through an open handle on
//! the folder (`openat` and friends), never through a path that a planted symlink could
//! redirect:
//! - files are created with `O_CREAT | O_EXCL | O_NOFOLLOW` and mode `0600` (or the caller's);
//! - an existing temp file is reused only if it is a regular file owned by this user with one
//!   link (not a symlink, not a hard link to someone's file);
//! - one writer per destination: an exclusive `flock` on `<name>.hspart.lock` for the whole
//!   export, which names its holder (pid) to whoever is refused;
//! - the final rename refuses to replace a file (`renameat2(RENAME_NOREPLACE)`) unless asked.
//!
//! Windows (`outdir/windows.rs`) has no `openat`: names are opened by path under a handle that
//! keeps the folder from being renamed or removed, never following a reparse point
//! (`FILE_FLAG_OPEN_REPARSE_POINT`), created with `CREATE_NEW`, locked with `LockFileEx`, renamed
//! without replacing by `MoveFileExW` without `MOVEFILE_REPLACE_EXISTING`.

#[cfg(windows)]
mod windows;

#[cfg(unix)]
use std::ffi::CString;
use std::fs::File;
#[cfg(unix)]
use std::io::{Read as _, Seek as _, Write as _};
#[cfg(unix)]
use std::os::fd::{AsRawFd as _, FromRawFd as _};
#[cfg(unix)]
use std::os::unix::ffi::OsStrExt as _;
#[cfg(unix)]
use std::os::unix::fs::MetadataExt as _;
#[cfg(unix)]
use std::path::Path;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Suffixes of the files the library keeps beside a destination.
pub(crate) const TEMP_SUFFIX: &str = ".hspart";
pub(crate) const JOURNAL_SUFFIX: &str = ".hspart.journal";
pub(crate) const LOCK_SUFFIX: &str = ".hspart.lock";

/// An open output folder.
#[derive(Debug)]
pub(crate) struct OutDir {
    dir: File,
    path: PathBuf,
    mode: u32,
}

impl OutDir {
    /// Where `name` is, for messages and results.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Creates `name`, replacing a file of that name only if this library made it (see
    /// [`OutDir::open_own`]); anything else there is an error and stays untouched.
    pub fn create_replacing_own(&self, name: &str) -> Result<File> {
        if let Some(f) = self.open_own(name)? {
            f.set_len(0)
                .map_err(|e| Error::io(&self.join(name), "cannot truncate", e))?;
            return Ok(f);
        }
        self.create_new(name)
    }

    /// Makes the renames durable.
    pub fn sync(&self) {
        let _ = self.dir.sync_all();
    }

    /// Gives the lock up and removes its file (while still holding it, so a waiting export
    /// re-checks the name and makes a new one).
    pub fn unlock(&self, lock: DestLock) {
        self.remove(&lock.name);
        drop(lock);
    }

    fn not_ours(&self, name: &str) -> Error {
        Error::AlreadyExists(format!(
            "{} is not a file this library made (not a regular file of this user with one link); remove it",
            self.join(name).display()
        ))
    }
}

#[cfg(unix)]
impl OutDir {
    /// Opens `path` (which must be a folder; the caller named it, so a symlink to a folder is
    /// accepted here) for the files of one export, created with `mode`.
    pub fn open(path: &Path, mode: u32) -> Result<OutDir> {
        let c = cstr(path.as_os_str().as_bytes())?;
        // SAFETY: a valid C string; the returned fd is owned by the File below.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(Error::InvalidArgument(format!(
                "output_dir {} cannot be used: {}",
                path.display(),
                std::io::Error::last_os_error()
            )));
        }
        // SAFETY: fd is a fresh, owned descriptor.
        let dir = unsafe { File::from_raw_fd(fd) };
        Ok(OutDir {
            dir,
            path: path.to_path_buf(),
            mode,
        })
    }

    fn openat(&self, name: &str, flags: i32) -> std::io::Result<File> {
        let c = cstr(name.as_bytes()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        // SAFETY: dir is an open directory; c is a valid C string; the fd is owned below.
        let fd = unsafe {
            libc::openat(
                self.dir.as_raw_fd(),
                c.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                self.mode as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, owned descriptor.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Creates `name`, which must not exist (`O_EXCL`): a symlink or any file planted under
    /// that name makes this fail instead of writing through it.
    pub fn create_new(&self, name: &str) -> Result<File> {
        let f = self
            .openat(name, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL)
            .map_err(|e| self.planted_or_io(name, "cannot create", e))?;
        // Exactly the mode asked for, whatever the umask (it can only have narrowed it).
        use std::os::unix::fs::PermissionsExt as _;
        f.set_permissions(std::fs::Permissions::from_mode(self.mode))
            .map_err(|e| Error::io(&self.join(name), "cannot set the mode of", e))?;
        Ok(f)
    }

    /// Opens an existing `name` that this library made: a regular file, owned by this user,
    /// with one link. `None` when there is no such name.
    pub fn open_own(&self, name: &str) -> Result<Option<File>> {
        // O_NONBLOCK: a FIFO planted under the name must not block the open (regular files
        // ignore the flag).
        let f = match self.openat(name, libc::O_RDWR | libc::O_NONBLOCK) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.planted_or_io(name, "cannot open", e)),
        };
        let m = f
            .metadata()
            .map_err(|e| Error::io(&self.join(name), "cannot inspect", e))?;
        // SAFETY: plain syscall.
        let me = unsafe { libc::geteuid() };
        if !m.file_type().is_file() || m.uid() != me || m.nlink() != 1 {
            return Err(self.not_ours(name));
        }
        Ok(Some(f))
    }

    /// Whether something (anything, a dangling symlink too) has this name.
    pub fn exists(&self, name: &str) -> bool {
        let Ok(c) = cstr(name.as_bytes()) else {
            return false;
        };
        // SAFETY: a zeroed stat buffer and a valid C string.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            libc::fstatat(
                self.dir.as_raw_fd(),
                c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            ) == 0
        }
    }

    /// Removes `name` (a symlink is removed, not followed). Missing is fine.
    pub fn remove(&self, name: &str) {
        if let Ok(c) = cstr(name.as_bytes()) {
            // SAFETY: valid directory fd and C string.
            unsafe {
                libc::unlinkat(self.dir.as_raw_fd(), c.as_ptr(), 0);
            }
        }
    }

    /// Renames `from` to `to` inside the folder. Without `overwrite`, an existing `to` is an
    /// error, decided atomically by the kernel (no window between a check and the rename).
    pub fn rename(&self, from: &str, to: &str, overwrite: bool) -> Result<()> {
        let cf = cstr(from.as_bytes())?;
        self.rename_at(self.dir.as_raw_fd(), &cf, to, overwrite)
    }

    /// Renames a file from elsewhere (a path another process wrote to) to `to` in the folder,
    /// with the same rule; both must be on one file system.
    pub fn rename_from(&self, from: &Path, to: &str, overwrite: bool) -> Result<()> {
        let cf = cstr(from.as_os_str().as_bytes())?;
        self.rename_at(libc::AT_FDCWD, &cf, to, overwrite)
    }

    fn rename_at(&self, from_dir: i32, from: &CString, to: &str, overwrite: bool) -> Result<()> {
        let ct = cstr(to.as_bytes())?;
        let fd = self.dir.as_raw_fd();
        let exists = || {
            Error::AlreadyExists(format!(
                "{} appeared during the export; set overwrite to replace it",
                self.join(to).display()
            ))
        };
        let flags = if overwrite { 0 } else { libc::RENAME_NOREPLACE };
        // SAFETY: valid directory fds and C strings.
        if unsafe { libc::renameat2(from_dir, from.as_ptr(), fd, ct.as_ptr(), flags) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EEXIST) if !overwrite => Err(exists()),
            Some(libc::EINVAL) | Some(libc::ENOSYS) if !overwrite => {
                // A file system without RENAME_NOREPLACE: a hard link fails on an existing
                // name just as atomically; then the old name goes.
                // SAFETY: valid directory fds and C strings.
                if unsafe { libc::linkat(from_dir, from.as_ptr(), fd, ct.as_ptr(), 0) } == 0 {
                    // SAFETY: valid directory fd and C string.
                    unsafe { libc::unlinkat(from_dir, from.as_ptr(), 0) };
                    return Ok(());
                }
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EEXIST) {
                    return Err(exists());
                }
                Err(Error::io(&self.join(to), "cannot rename into", e))
            }
            _ => Err(Error::io(&self.join(to), "cannot rename into", e)),
        }
    }

    /// Takes the destination `name` for this export: an exclusive lock held until the
    /// returned guard is dropped. Refused at once, naming the holder, if another export (in
    /// this process or another) holds it.
    pub fn lock(&self, name: &str) -> Result<DestLock> {
        let lock_name = format!("{name}{LOCK_SUFFIX}");
        for _ in 0..5 {
            let mut f =
                match self.openat(&lock_name, libc::O_RDWR | libc::O_CREAT | libc::O_NONBLOCK) {
                    Ok(f) => f,
                    Err(e) => return Err(self.planted_or_io(&lock_name, "cannot create", e)),
                };
            let m = f
                .metadata()
                .map_err(|e| Error::io(&self.join(&lock_name), "cannot inspect", e))?;
            if !m.file_type().is_file() || m.nlink() != 1 {
                return Err(self.not_ours(&lock_name));
            }
            // SAFETY: plain syscall on an open fd.
            let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if r != 0 {
                let mut holder = String::new();
                let _ = f.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::AlreadyExists(format!(
                    "another export is writing {} ({}); wait for it or cancel it",
                    self.join(name).display(),
                    if holder.is_empty() {
                        "holder unknown".to_string()
                    } else {
                        holder.to_string()
                    }
                )));
            }
            // The lock is ours, but the name may have been removed and made anew by an export
            // that finished meanwhile: only the file that still has the name counts.
            let same = self.inode_of(&lock_name) == Some((m.dev(), m.ino()));
            if !same {
                continue;
            }
            let _ = f.set_len(0);
            let _ = f.rewind();
            let _ = write!(f, "pid {}", std::process::id());
            return Ok(DestLock {
                _file: f,
                name: lock_name,
            });
        }
        Err(Error::AlreadyExists(format!(
            "the lock of {} keeps changing; another export is working there",
            self.join(name).display()
        )))
    }

    fn inode_of(&self, name: &str) -> Option<(u64, u64)> {
        let c = cstr(name.as_bytes()).ok()?;
        // SAFETY: a zeroed stat buffer and a valid C string.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            (libc::fstatat(
                self.dir.as_raw_fd(),
                c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            ) == 0)
                .then_some((st.st_dev, st.st_ino))
        }
    }

    fn planted_or_io(&self, name: &str, what: &str, e: std::io::Error) -> Error {
        match e.raw_os_error() {
            Some(libc::ELOOP) => Error::AlreadyExists(format!(
                "{} is a symbolic link this library did not make; remove it (nothing was written through it)",
                self.join(name).display()
            )),
            Some(libc::EEXIST) => Error::AlreadyExists(format!(
                "{} exists and was not made by this export; remove it",
                self.join(name).display()
            )),
            _ => Error::io(&self.join(name), what, e),
        }
    }
}

/// An exclusive claim on one destination (see [`OutDir::lock`]).
#[derive(Debug)]
pub(crate) struct DestLock {
    /// Holds the `flock` for as long as it is open.
    _file: File,
    name: String,
}

#[cfg(unix)]
fn cstr(b: &[u8]) -> Result<CString> {
    CString::new(b).map_err(|_| Error::InvalidArgument("a path holds a NUL byte".into()))
}
