//! The few file operations whose spelling differs between Unix and Windows, so the code above
//! them compiles for both (Hyper-V hosts are Windows; `cargo check --target
//! x86_64-pc-windows-gnu` runs in `make test` where the target can be installed).

use std::fs::File;
use std::io;

/// Reads at `offset` without moving a shared cursor; may read less than `buf.len()`.
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        // seek_read moves the handle's cursor, which nothing here relies on.
        std::os::windows::fs::FileExt::seek_read(file, buf, offset)
    }
}

/// Reads exactly `buf.len()` bytes at `offset`.
pub(crate) fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match read_at(file, buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes all of `buf` at `offset`.
#[cfg(unix)]
pub(crate) fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

/// Writes all of `buf` at `offset`.
#[cfg(windows)]
pub(crate) fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_write(file, buf, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Starts writing `[offset, offset + len)` of `file` to disk without waiting for it (Linux
/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`; a no-op elsewhere). A hint, not a durability
/// guarantee: the journal's `fdatasync` still decides what counts. Written right after each
/// buffer, the bytes flow to the disk at the download's pace; without it they pile up in the page
/// cache and every journal sync (each second) has to push out a second's worth at once, which
/// stalled the writers and cost a fifth of the throughput on a fast link (docs/BENCHMARKS.md).
/// RocksDB's `bytes_per_sync` and PostgreSQL's `*_flush_after` do the same.
pub(crate) fn start_writeback(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd as _;
        // SAFETY: a plain syscall on a descriptor we own; no memory is passed. Its failure only
        // means the kernel writes the range back later, as it would anyway.
        unsafe {
            libc::sync_file_range(
                file.as_raw_fd(),
                offset as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// Gives `file` `len` bytes of real disk blocks (not a sparse length), so that a later write
/// into that room cannot fail for lack of space.
pub(crate) fn allocate(file: &File, len: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd as _;
        // SAFETY: a plain syscall on a descriptor we own; no memory is passed.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(e);
        }
    }
    // Elsewhere (or a file system without fallocate): write the zeros.
    let zeros = vec![0u8; 64 << 10];
    let mut pos = 0u64;
    while pos < len {
        let n = (len - pos).min(zeros.len() as u64) as usize;
        write_all_at(file, &zeros[..n], pos)?;
        pos += n as u64;
    }
    Ok(())
}
