//! Expected checksums and their verification by reading the finished temp file back (parts
//! arrive out of order, so a whole-file digest cannot be streamed; reading back also checks what
//! really reached the disk).

use std::fs::File;
use std::path::Path;

use base64::Engine as _;
use md5::Digest as _;

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// Read-back chunk: a cancel is noticed between two of these (well under a second).
const READ_CHUNK: usize = 1 << 20;

/// Reads the open `file` from its start to its end in chunks (positioned reads: the handle's
/// cursor is not used, so several readers may share it), feeding each to `f`; stops with
/// `Cancelled` between chunks once `cancel` fires, so verifying a terabyte does not hold up a
/// cancel. Reading through the handle, not a path, means a file swapped in meanwhile is not
/// what gets verified.
fn read_all(
    file: &File,
    path: &Path,
    cancel: &CancellationToken,
    mut f: impl FnMut(&[u8]),
) -> Result<()> {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut pos = 0u64;
    loop {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let n = crate::platform::read_at(file, &mut buf, pos)
            .map_err(|e| Error::io(path, "cannot read", e))?;
        if n == 0 {
            return Ok(());
        }
        pos += n as u64;
        f(&buf[..n]);
    }
}

/// A digest of a whole file (for a manifest), read back through its handle.
pub(crate) fn digest_file(
    kind: super::Digest,
    file: &File,
    path: &Path,
    cancel: &CancellationToken,
) -> Result<Vec<u8>> {
    let mut h = kind.hasher();
    read_all(file, path, cancel, |b| h.update(b))?;
    Ok(h.finalize().into_vec())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    Sha256([u8; 32]),
    Md5([u8; 16]),
    Crc32c(u32),
    /// CRC-64/NVME (S3's default full-object checksum for new objects).
    Crc64Nvme(u64),
}

/// CRC-64/NVME as S3 computes it (`x-amz-checksum-crc64nvme`).
const CRC64_NVME: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_NVME);

impl Checksum {
    pub fn algorithm(&self) -> &'static str {
        match self {
            Checksum::Sha256(_) => "sha256",
            Checksum::Md5(_) => "md5",
            Checksum::Crc32c(_) => "crc32c",
            Checksum::Crc64Nvme(_) => "crc64nvme",
        }
    }

    pub fn hex(&self) -> String {
        match self {
            Checksum::Sha256(d) => hex::encode(d),
            Checksum::Md5(d) => hex::encode(d),
            Checksum::Crc32c(c) => format!("{c:08x}"),
            Checksum::Crc64Nvme(c) => format!("{c:016x}"),
        }
    }

    /// Parses a digest given as hex or base64 (S3, GCS and Azure send base64).
    pub fn parse(algorithm: &str, text: &str) -> Result<Checksum> {
        let bytes = decode(text).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{algorithm} checksum {text:?} is neither hex nor base64"
            ))
        })?;
        let wrong = || {
            Error::InvalidArgument(format!(
                "{algorithm} checksum {text:?} has the wrong length"
            ))
        };
        Ok(match algorithm {
            "sha256" => Checksum::Sha256(bytes.try_into().map_err(|_| wrong())?),
            "md5" => Checksum::Md5(bytes.try_into().map_err(|_| wrong())?),
            "crc32c" => {
                Checksum::Crc32c(u32::from_be_bytes(bytes.try_into().map_err(|_| wrong())?))
            }
            "crc64nvme" => {
                Checksum::Crc64Nvme(u64::from_be_bytes(bytes.try_into().map_err(|_| wrong())?))
            }
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown checksum algorithm {other:?}"
                )));
            }
        })
    }

    /// Reads `path` and compares; the error names the file and both digests.
    pub fn verify_file(
        &self,
        file: &File,
        path: &Path,
        name: &str,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let got = self.compute(file, path, cancel)?;
        if got != *self {
            return Err(Error::Verification(format!(
                "{} of {name} is {}, expected {}",
                self.algorithm(),
                got.hex(),
                self.hex()
            )));
        }
        Ok(())
    }

    fn compute(&self, file: &File, path: &Path, cancel: &CancellationToken) -> Result<Checksum> {
        let mut sha = sha2::Sha256::new();
        let mut md5 = md5::Md5::new();
        let mut crc = 0u32;
        let mut crc64 = CRC64_NVME.digest();
        read_all(file, path, cancel, |b| match self {
            Checksum::Sha256(_) => sha.update(b),
            Checksum::Md5(_) => md5.update(b),
            Checksum::Crc32c(_) => crc = crc32c::crc32c_append(crc, b),
            Checksum::Crc64Nvme(_) => crc64.update(b),
        })?;
        Ok(match self {
            Checksum::Sha256(_) => Checksum::Sha256(sha.finalize().into()),
            Checksum::Md5(_) => Checksum::Md5(md5.finalize().into()),
            Checksum::Crc32c(_) => Checksum::Crc32c(crc),
            Checksum::Crc64Nvme(_) => Checksum::Crc64Nvme(crc64.finalize()),
        })
    }
}

fn decode(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    if t.len().is_multiple_of(2) && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex::decode(t).ok();
    }
    base64::engine::general_purpose::STANDARD.decode(t).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hex_and_base64() {
        let a = Checksum::parse("md5", "900150983cd24fb0d6963f7d28e17f72").unwrap();
        let b = Checksum::parse("md5", "kAFQmDzST7DWlj99KOF/cg==").unwrap();
        assert_eq!(a, b);
        assert_eq!(
            Checksum::parse("crc32c", "AAAAAA==").unwrap(),
            Checksum::Crc32c(0)
        );
        assert!(Checksum::parse("sha256", "abcd").is_err());
        assert!(Checksum::parse("sha1", "abcd").is_err());
    }

    #[test]
    fn verifies() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"abc").unwrap();
        let f = File::open(&p).unwrap();
        Checksum::parse("md5", "900150983cd24fb0d6963f7d28e17f72")
            .unwrap()
            .verify_file(&f, &p, "x", &CancellationToken::new())
            .unwrap();
        Checksum::Crc32c(crc32c::crc32c(b"abc"))
            .verify_file(&f, &p, "x", &CancellationToken::new())
            .unwrap();
        let e = Checksum::Crc32c(1)
            .verify_file(&f, &p, "x", &CancellationToken::new())
            .unwrap_err();
        assert!(e.to_string().contains("expected 00000001"), "{e}");
        // CRC-64/NVME of "123456789" is the catalogue's check value; S3 sends it base64.
        std::fs::write(&p, b"123456789").unwrap();
        let f = File::open(&p).unwrap();
        let c = Checksum::parse("crc64nvme", "rosUhgp5mIg=").unwrap();
        assert_eq!(c, Checksum::Crc64Nvme(0xae8b_1486_0a79_9888));
        c.verify_file(&f, &p, "x", &CancellationToken::new())
            .unwrap();
        let cancelled = CancellationToken::new();
        cancelled.cancel();
        let e = Checksum::Crc32c(1)
            .verify_file(&f, &p, "x", &cancelled)
            .unwrap_err();
        assert!(matches!(e, Error::Cancelled), "{e}");
    }
}
