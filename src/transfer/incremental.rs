//! Incremental exports (issue 35), the parts every block-level provider shares:
//!
//! - the **base** an export records in its result JSON (and so in the command's history): per
//!   file its path, size and modification time, plus the cloud's own names of the point it was
//!   read at (an EBS snapshot, …), and whether that point was kept in the cloud (`keep_base`);
//! - reading `incremental_from` (the path of an earlier result JSON, or that result itself as
//!   an object: the command puts a history record there) and checking that the local image is
//!   still the one the base describes — otherwise the provider exports in full and says why;
//! - the new image's start: the previous image cloned into the temp file (`FICLONE` where the
//!   file system shares blocks, else `copy_file_range` of its data extents, else read + write),
//!   the changed and zeroed ranges punched out; then the downloader fetches only the changed
//!   blocks, and verification and the rename run as for any export. The previous image is only
//!   read, so a cancel or a failure leaves it as it was.
// The aws and azure providers use all of this; vsphere only the base and the clone (no
// `incremental_output`): without aws and azure, parts are unused.
#![cfg_attr(not(any(feature = "aws", feature = "azure")), allow(dead_code))]

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

pub(crate) mod delta;
#[cfg(any(feature = "aws", feature = "azure"))]
pub(crate) use delta::Output;

/// A temp file's start for an incremental export: the previous image, with `zeroed` (blocks
/// that became zeros) and the ranges to fetch punched out.
#[derive(Debug, Clone)]
pub(crate) struct BaseImage {
    pub path: PathBuf,
    pub zeroed: Vec<(u64, u64)>,
    /// Names the base (its cloud point): the journal's validator includes it, so a temp file
    /// started from another base is never resumed.
    pub id: String,
    /// The previous image's size and modification time (ns) as its export wrote it: checked
    /// on the opened file before and after it is copied, since the copy may run long after
    /// `check_local` (a queued file) and a write meanwhile would land in the new image.
    pub stamp: (u64, u64),
}

/// One file of a base, as the result JSON records it (`base.files[]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BaseFile {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    /// The image's modification time, nanoseconds since the epoch, when it was renamed into
    /// place: a later change of the image (a mount, a tool) changes it.
    pub modified_ns: u64,
    /// The cloud's names of the point the file was read at (AWS: `snapshot_id`, `volume_id`).
    #[serde(flatten)]
    pub cloud: Map<String, Value>,
}

/// The `base` of a result JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Base {
    pub provider: String,
    /// Whether the cloud side (snapshots, …) was kept for a later incremental export.
    pub kept: bool,
    pub files: Vec<BaseFile>,
}

impl Base {
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl BaseFile {
    /// A downloaded file as a base records it, with the cloud's names of its point: its
    /// absolute path (a later export from another folder finds it), size and modification
    /// time as the rename left them. `None` when the file cannot be read.
    #[cfg(any(feature = "azure", feature = "vsphere"))]
    pub fn of(d: &super::Downloaded, cloud: Map<String, Value>) -> Option<BaseFile> {
        let (size, modified_ns) = stamp(&d.file)?;
        let path = d
            .dest
            .parent()
            .and_then(|p| p.canonicalize().ok())
            .map_or_else(|| d.dest.clone(), |p| p.join(&d.name));
        Some(BaseFile {
            name: d.name.clone(),
            path,
            size,
            modified_ns,
            cloud,
        })
    }
}

/// The size and modification time of an open file.
pub(crate) fn stamp(file: &File) -> Option<(u64, u64)> {
    let m = file.metadata().ok()?;
    let t = m
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some((m.len(), u64::try_from(t.as_nanos()).ok()?))
}

/// The base of an earlier export, from `incremental_from`: the path of its result JSON, or
/// the result (or a history record) itself. `Ok(Err(why))`: that export gives no base (an
/// export task, a failed export, another provider's): the caller exports in full and says why.
pub(crate) fn load(from: &Value, provider: &str) -> Result<std::result::Result<Base, String>> {
    let (result, what) = match from {
        Value::String(p) => {
            let text = std::fs::read(p).map_err(|e| {
                Error::InvalidArgument(format!("incremental_from {p:?} cannot be read: {e}"))
            })?;
            let v: Value = serde_json::from_slice(&text).map_err(|e| {
                Error::InvalidArgument(format!("incremental_from {p:?} is not a result JSON: {e}"))
            })?;
            (v, p.clone())
        }
        Value::Object(_) => (from.clone(), "the result given".to_string()),
        other => {
            return Err(Error::InvalidArgument(format!(
                "incremental_from must be the path of an earlier export's result JSON (or that \
                 result as an object), not {other}"
            )));
        }
    };
    if let Some(s) = result.get("status").and_then(Value::as_str)
        && s != "done"
    {
        return Ok(Err(format!("the export in {what} ended {s:?}")));
    }
    let Some(b) = result.get("base").filter(|b| !b.is_null()) else {
        return Ok(Err(format!(
            "{what} records no base (only a block-level export does)"
        )));
    };
    let base: Base = serde_json::from_value(b.clone()).map_err(|e| {
        Error::InvalidArgument(format!(
            "incremental_from {what}: its base is unreadable: {e}"
        ))
    })?;
    if base.provider != provider {
        return Ok(Err(format!(
            "the base in {what} is a {} export, not {provider}",
            base.provider
        )));
    }
    Ok(Ok(base))
}

/// Whether the image a base file names is still the one its export wrote; else why not.
pub(crate) fn check_local(f: &BaseFile) -> std::result::Result<(), String> {
    let file = File::open(&f.path).map_err(|e| {
        format!(
            "the previous image {} cannot be opened: {e}",
            f.path.display()
        )
    })?;
    match stamp(&file) {
        Some((size, t)) if size == f.size && t == f.modified_ns => Ok(()),
        Some((size, _)) if size != f.size => Err(format!(
            "the previous image {} has {size} bytes, its export wrote {}",
            f.path.display(),
            f.size
        )),
        _ => Err(format!(
            "the previous image {} was modified after its export",
            f.path.display()
        )),
    }
}

/// How the previous image reached the temp file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloneWay {
    /// Shared blocks (`FICLONE`: btrfs, XFS with reflink, bcachefs): no bytes copied.
    /// Linux only (FICLONE); elsewhere a copy.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Reflink,
    /// The data extents copied in the kernel (`copy_file_range`), holes kept.
    CopyRange,
    /// Read and written here, zero blocks left as holes.
    Copy,
}

/// Gives the empty file `dest` the first `len` bytes of `base` (a shorter base: the rest
/// reads as zeros).
pub(crate) fn clone_into(
    dest: &File,
    dest_path: &Path,
    base_path: &Path,
    expect: (u64, u64),
    len: u64,
    cancel: &CancellationToken,
) -> Result<CloneWay> {
    let base = File::open(base_path).map_err(|e| Error::io(base_path, "cannot open", e))?;
    let unchanged = |when: &str| {
        if stamp(&base) == Some(expect) {
            Ok(())
        } else {
            Err(Error::Verification(format!(
                "the previous image {} changed {when} (size or modification time): the new \
                 image would carry that change; export in full or from another base",
                base_path.display()
            )))
        }
    };
    unchanged("after its export")?;
    let base_len = base
        .metadata()
        .map_err(|e| Error::io(base_path, "cannot read the size of", e))?
        .len();
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd as _;
        if base_len == len {
            // SAFETY: FICLONE takes the source descriptor as its argument; both are ours and open.
            let rc = unsafe { libc::ioctl(dest.as_raw_fd(), libc::FICLONE, base.as_raw_fd()) };
            if rc == 0 {
                unchanged("while it was cloned")?;
                return Ok(CloneWay::Reflink);
            }
        }
    }
    dest.set_len(len)
        .map_err(|e| Error::io(dest_path, "cannot size", e))?;
    let mut way = CloneWay::CopyRange;
    for (a, b) in data_extents(&base, base_len.min(len)) {
        let mut pos = a;
        while pos < b {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let n = (b - pos).min(COPY_CHUNK);
            if way == CloneWay::CopyRange && !copy_range(&base, dest, pos, n) {
                way = CloneWay::Copy;
            }
            if way == CloneWay::Copy {
                copy_plain(&base, base_path, dest, dest_path, pos, n)?;
            }
            pos += n;
        }
    }
    unchanged("while it was copied")?;
    Ok(way)
}

/// Bytes copied between two looks at cancel.
const COPY_CHUNK: u64 = 8 << 20;

/// The ranges of `[0, len)` of `f` that hold data (`SEEK_DATA`/`SEEK_HOLE`; elsewhere, or
/// where the file system cannot tell, all of it).
fn data_extents(f: &File, len: u64) -> Vec<(u64, u64)> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd as _;
        let fd = f.as_raw_fd();
        let mut out = Vec::new();
        let mut pos = 0u64;
        while pos < len {
            // SAFETY: plain lseek calls on a descriptor we own.
            let data = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
            if data < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ENXIO) {
                    break; // only a hole is left
                }
                return vec![(0, len)];
            }
            let data = (data as u64).min(len);
            // SAFETY: as above.
            let hole = unsafe { libc::lseek(fd, data as libc::off_t, libc::SEEK_HOLE) };
            let hole = if hole < 0 {
                len
            } else {
                (hole as u64).min(len)
            };
            if hole > data {
                out.push((data, hole));
            }
            pos = hole.max(data + 1);
        }
        out
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = f;
        vec![(0, len)]
    }
}

/// `copy_file_range` of `[pos, pos + n)`; false when the kernel or file system cannot.
fn copy_range(src: &File, dest: &File, pos: u64, n: u64) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd as _;
        let (mut off_in, mut off_out) = (pos as libc::loff_t, pos as libc::loff_t);
        let mut left = n as usize;
        while left > 0 {
            // SAFETY: both descriptors are ours; the offsets are plain integers we own.
            let r = unsafe {
                libc::copy_file_range(
                    src.as_raw_fd(),
                    &mut off_in,
                    dest.as_raw_fd(),
                    &mut off_out,
                    left,
                    0,
                )
            };
            if r <= 0 {
                // Unsupported (EXDEV, EINVAL, ENOSYS, …) or an early end: the plain copy
                // writes the whole chunk again.
                return false;
            }
            left -= r as usize;
        }
        true
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (src, dest, pos, n);
        false
    }
}

fn copy_plain(
    src: &File,
    src_path: &Path,
    dest: &File,
    dest_path: &Path,
    pos: u64,
    n: u64,
) -> Result<()> {
    let mut buf = vec![0u8; n as usize];
    crate::platform::read_exact_at(src, &mut buf, pos)
        .map_err(|e| Error::io(src_path, "cannot read", e))?;
    super::sparse::write_sparse(dest, dest_path, pos, &buf)
}

/// How one file of an export asked to be incremental was made.
#[derive(Debug, Clone)]
pub(crate) struct FileOutcome {
    pub name: String,
    /// The changes since the base, or why the file went in full.
    pub how: std::result::Result<Delta, String>,
}

/// What an incremental file took from the cloud.
#[derive(Debug, Clone)]
pub(crate) struct Delta {
    /// The cloud's name of the base point (a snapshot id).
    pub base: String,
    pub changed_bytes: u64,
    pub zeroed_bytes: u64,
}

impl FileOutcome {
    /// As the result JSON says it (`incremental.files[]`).
    pub fn report(&self) -> Value {
        match &self.how {
            Ok(d) => serde_json::json!({
                "name": self.name, "mode": "incremental", "base": d.base,
                "changed_bytes": d.changed_bytes, "zeroed_bytes": d.zeroed_bytes,
            }),
            Err(reason) => serde_json::json!({"name": self.name, "mode": "full", "reason": reason}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, data: &[(u64, &[u8])], len: u64) {
        let f = File::create(path).unwrap();
        f.set_len(len).unwrap();
        for (at, d) in data {
            crate::platform::write_all_at(&f, d, *at).unwrap();
        }
    }

    #[test]
    fn a_clone_has_the_bases_bytes_and_keeps_its_holes() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.img");
        let len = 64u64 << 20;
        write(&base, &[(0, &[1u8; 4096]), (40 << 20, &[2u8; 70000])], len);
        let dest_path = dir.path().join("new.img");
        let dest = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&dest_path)
            .unwrap();
        let expect = stamp(&File::open(&base).unwrap()).unwrap();
        let way = clone_into(
            &dest,
            &dest_path,
            &base,
            expect,
            len,
            &CancellationToken::new(),
        )
        .unwrap();
        assert_eq!(
            std::fs::read(&base).unwrap(),
            std::fs::read(&dest_path).unwrap()
        );
        #[cfg(unix)]
        if way != CloneWay::Copy {
            use std::os::unix::fs::MetadataExt as _;
            let used = std::fs::metadata(&dest_path).unwrap().blocks() * 512;
            assert!(
                used < 8 << 20,
                "{used} bytes allocated: holes filled ({way:?})"
            );
        }
        // A cancelled clone stops with Cancelled.
        let p2 = dir.path().join("c.img");
        let d2 = File::create(&p2).unwrap();
        let c = CancellationToken::new();
        c.cancel();
        let r = clone_into(&d2, &p2, &base, expect, len, &c);
        assert!(
            matches!(r, Err(Error::Cancelled)) || matches!(r, Ok(CloneWay::Reflink)),
            "{r:?}"
        );
        // A previous image written after its export (here: after the stamp taken above) is
        // refused, not copied into the new image.
        write(&base, &[(8 << 20, &[3u8; 512])], len);
        let p3 = dir.path().join("d.img");
        let d3 = File::create(&p3).unwrap();
        let old = (expect.0, expect.1.saturating_sub(1));
        let r = clone_into(&d3, &p3, &base, old, len, &CancellationToken::new());
        assert!(matches!(r, Err(Error::Verification(_))), "{r:?}");
    }

    #[test]
    fn a_base_is_read_from_a_result_and_its_image_checked() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("v.img");
        std::fs::write(&img, b"abcd").unwrap();
        let (size, t) = stamp(&File::open(&img).unwrap()).unwrap();
        let base = Base {
            provider: "aws".into(),
            kept: true,
            files: vec![BaseFile {
                name: "v.img".into(),
                path: img.clone(),
                size,
                modified_ns: t,
                cloud: [("snapshot_id".to_string(), Value::from("snap-1"))]
                    .into_iter()
                    .collect(),
            }],
        };
        let result = serde_json::json!({"status": "done", "base": base.to_value()});
        let p = dir.path().join("r.json");
        std::fs::write(&p, result.to_string()).unwrap();
        let got = load(&Value::from(p.to_str().unwrap()), "aws")
            .unwrap()
            .unwrap();
        assert_eq!(got.files[0].cloud["snapshot_id"], "snap-1");
        check_local(&got.files[0]).unwrap();
        let other = load(&result, "azure").unwrap().unwrap_err();
        assert!(other.contains("aws export"), "{other}");
        let none = load(&serde_json::json!({"status": "done"}), "aws").unwrap();
        assert!(none.unwrap_err().contains("no base"));
        assert!(load(&Value::from(3), "aws").is_err());
        assert!(load(&Value::from("/nonexistent/r.json"), "aws").is_err());
        // The image changed after its export: not a base any more.
        std::fs::write(&img, b"abce").unwrap();
        let f = File::options().write(true).open(&img).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(5))
            .unwrap();
        let why = check_local(&got.files[0]).unwrap_err();
        assert!(why.contains("modified"), "{why}");
        std::fs::write(&img, b"abcdef").unwrap();
        assert!(check_local(&got.files[0]).unwrap_err().contains("6 bytes"));
    }
}
