//! Positioned writes that leave zero runs as holes.

use std::fs::File;
use std::path::Path;

use crate::error::{Error, Result};

/// Zero runs of at least this size, aligned to it, are not written.
pub const HOLE_BLOCK: u64 = 64 * 1024;

/// Writes `buf` at `offset`, skipping every aligned 64 KiB block that is all zeros. The file
/// region must read as zeros already (fresh from `set_len`, or punched).
pub fn write_sparse(file: &File, path: &Path, offset: u64, buf: &[u8]) -> Result<()> {
    let end = offset + buf.len() as u64;
    let mut pos = offset;
    let mut pending_start: Option<u64> = None;
    while pos < end {
        let block_end = ((pos / HOLE_BLOCK) + 1) * HOLE_BLOCK;
        let chunk_end = block_end.min(end);
        let chunk = &buf[(pos - offset) as usize..(chunk_end - offset) as usize];
        let full_block = pos.is_multiple_of(HOLE_BLOCK) && chunk_end == block_end;
        if full_block && is_zero(chunk) {
            if let Some(s) = pending_start.take() {
                write_at(
                    file,
                    path,
                    &buf[(s - offset) as usize..(pos - offset) as usize],
                    s,
                )?;
            }
        } else if pending_start.is_none() {
            pending_start = Some(pos);
        }
        pos = chunk_end;
    }
    if let Some(s) = pending_start {
        write_at(file, path, &buf[(s - offset) as usize..], s)?;
    }
    Ok(())
}

fn is_zero(b: &[u8]) -> bool {
    // Compare in u128 words: this runs over every byte downloaded.
    let (pre, mid, post) = unsafe { b.align_to::<u128>() };
    pre.iter().all(|&x| x == 0) && mid.iter().all(|&x| x == 0) && post.iter().all(|&x| x == 0)
}

/// Largest single write. A part's 1 MiB buffer goes to the kernel in 64 KiB pieces: on this VM
/// (Linux 6.18, ext4) 1 MiB-aligned writes of 1 MiB cost 0.5–1.8 CPU-s of kernel time per GiB,
/// varying run to run (large page-cache folios; the copy into them faults on the host), while
/// 64 KiB writes cost 0.25–0.29, with or without `sync_file_range` after each MiB — see
/// docs/BENCHMARKS.md (issue 31). Sixteen system calls per MiB cost far less than that.
const WRITE_PIECE: u64 = 64 * 1024;

/// `[offset, offset + len)` cut into writes of at most [`WRITE_PIECE`], each ending on a
/// multiple of it (or at the end).
fn pieces(offset: u64, len: u64) -> impl Iterator<Item = (u64, u64)> {
    let end = offset + len;
    let mut pos = offset;
    std::iter::from_fn(move || {
        if pos >= end {
            return None;
        }
        let e = ((pos / WRITE_PIECE + 1) * WRITE_PIECE).min(end);
        let piece = (pos, e - pos);
        pos = e;
        Some(piece)
    })
}

fn write_at(file: &File, path: &Path, buf: &[u8], offset: u64) -> Result<()> {
    for (at, n) in pieces(offset, buf.len() as u64) {
        let from = (at - offset) as usize;
        crate::platform::write_all_at(file, &buf[from..from + n as usize], at)
            .map_err(|e| Error::io(path, "cannot write", e))?;
    }
    Ok(())
}

/// Makes `[start, end)` read as zeros: a hole where the filesystem can punch one, else zeros
/// written. Used on resume, where ranges not in the journal may hold bytes of a lost attempt.
pub fn zero_range(file: &File, path: &Path, start: u64, end: u64) -> Result<()> {
    if start >= end {
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain syscall on a descriptor we own; no memory is passed.
        let rc = unsafe {
            libc::fallocate(
                file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                start as libc::off_t,
                (end - start) as libc::off_t,
            )
        };
        if rc == 0 {
            return Ok(());
        }
    }
    let zeros = vec![0u8; HOLE_BLOCK as usize];
    let mut pos = start;
    while pos < end {
        let n = (end - pos).min(HOLE_BLOCK) as usize;
        write_at(file, path, &zeros[..n], pos)?;
        pos += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_goes_to_the_kernel_in_64_kib_pieces() {
        const K: u64 = 1024;
        // A part's 1 MiB buffer, aligned: sixteen 64 KiB writes, none larger.
        let p: Vec<_> = pieces(1024 * K, 1024 * K).collect();
        assert_eq!(p.len(), 16);
        assert!(p.iter().all(|&(_, n)| n == 64 * K), "{p:?}");
        // Unaligned: the first and last pieces are short, and they cover the run exactly.
        let p: Vec<_> = pieces(100, 200 * K).collect();
        assert_eq!(p[0], (100, 64 * K - 100));
        assert!(
            p.iter()
                .all(|&(at, n)| n <= 64 * K && (at + n) % (64 * K) == 0 || at + n == 100 + 200 * K)
        );
        assert!(p.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
        assert_eq!(p.iter().map(|&(_, n)| n).sum::<u64>(), 200 * K);
    }

    #[test]
    fn skips_aligned_zero_blocks_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let n = 4 * HOLE_BLOCK as usize;
        file.set_len(n as u64 + 100).unwrap();
        let mut data = vec![0u8; n];
        data[10] = 1; // block 0 has data
        data[3 * HOLE_BLOCK as usize + 5] = 7; // block 3 has data
        write_sparse(&file, &path, 100, &data).unwrap(); // unaligned start
        let back = std::fs::read(&path).unwrap();
        assert_eq!(&back[100..], &data[..]);
        // Fill a region with junk, zero it, read zeros back.
        write_at(&file, &path, &[9u8; 1000], 5000).unwrap();
        zero_range(&file, &path, 4096, 8192).unwrap();
        assert!(
            std::fs::read(&path).unwrap()[4096..8192]
                .iter()
                .all(|&b| b == 0)
        );
    }

    #[test]
    fn zero_detection() {
        assert!(is_zero(&[0u8; 1000]));
        let mut v = vec![0u8; 1000];
        v[999] = 1;
        assert!(!is_zero(&v));
        v[999] = 0;
        v[0] = 1;
        assert!(!is_zero(&v[..]));
    }
}
