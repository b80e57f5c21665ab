//! Writing the OVF package: `<name>.ovf`, `<name>.mf` (SHA-256 or SHA-1 of each file, or no
//! manifest), or one `<name>.ova` (tar: descriptor first, then manifest, then disks, as the OVF
//! spec requires).

use std::io::Write as _;

use crate::error::{Error, Result};
use crate::seam::AfterDownload;
use crate::transfer::{Digest, Downloaded, OutDir};

/// The largest streamOptimized VMDK (what NFC sends) a disk of `capacity` bytes can make: every
/// 64 KiB grain incompressible (zlib's stored blocks, 16 bytes more), behind its 12-byte marker
/// and padded to 512-byte sectors (129 sectors per 128: capacity/128), one 2 KiB grain table
/// and its marker per 512 grains (capacity/12800), header, descriptor, directory and footer
/// (well under 1 MiB); capacity/64 + 1 MiB covers them all. An estimate that can only be
/// corrected downward: a disk of random or encrypted data is a little larger than its capacity,
/// and starting from the capacity had the total go up, the percent back, at its end.
pub fn stream_bound(capacity: u64) -> u64 {
    capacity
        .saturating_add(capacity / 64)
        .saturating_add(1 << 20)
}

/// The names `write` makes: `.ovf` (+ `.mf`), or one `.ova`.
pub fn names(base: &str, ova: bool, manifest: bool) -> Vec<String> {
    if ova {
        vec![format!("{base}.ova")]
    } else if manifest {
        vec![format!("{base}.ovf"), format!("{base}.mf")]
    } else {
        vec![format!("{base}.ovf")]
    }
}

pub fn write(
    dir: &OutDir,
    base: &str,
    descriptor: &str,
    files: &[Downloaded],
    ova: bool,
    digest: Option<Digest>,
) -> Result<AfterDownload> {
    let ovf_name = format!("{base}.ovf");
    let mf_name = format!("{base}.mf");
    let manifest = match digest {
        None => None,
        Some(kind) => {
            let tag = kind.manifest_name();
            let mut m = format!(
                "{tag}({ovf_name})= {}\n",
                hex::encode(kind.of(descriptor.as_bytes()))
            );
            for f in files {
                let sum = f
                    .digest
                    .as_ref()
                    .ok_or_else(|| Error::Internal(format!("no {tag} for {}", f.name)))?;
                m.push_str(&format!("{tag}({})= {}\n", f.name, hex::encode(sum)));
            }
            Some(m)
        }
    };
    if !ova {
        let ovf_tmp = format!("{ovf_name}.hspart");
        write_synced(dir, &ovf_tmp, descriptor.as_bytes())?;
        let mut extra = vec![(ovf_tmp, ovf_name)];
        if let Some(m) = &manifest {
            let mf_tmp = format!("{mf_name}.hspart");
            write_synced(dir, &mf_tmp, m.as_bytes())?;
            extra.push((mf_tmp, mf_name));
        }
        return Ok(AfterDownload {
            extra,
            consumed: false,
        });
    }
    let ova_name = format!("{base}.ova");
    let ova_tmp = format!("{ova_name}.hspart");
    let ova_path = dir.join(&ova_tmp);
    let file = dir.create_replacing_own(&ova_tmp)?;
    let mut tar = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, file));
    let io = |e: std::io::Error| Error::io(&ova_path, "cannot write", e);
    append_bytes(&mut tar, &ovf_name, descriptor.as_bytes()).map_err(io)?;
    if let Some(m) = &manifest {
        append_bytes(&mut tar, &mf_name, m.as_bytes()).map_err(io)?;
    }
    for f in files {
        // The disk's verified bytes, read through its open handle (not its path).
        let mut h = tar::Header::new_gnu();
        h.set_size(f.size);
        h.set_mode(0o644);
        h.set_mtime(now_secs());
        tar.append_data(&mut h, &f.name, HandleReader::new(&f.file))
            .map_err(io)?;
    }
    let file = tar
        .into_inner()
        .map_err(io)?
        .into_inner()
        .map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(AfterDownload {
        extra: vec![(ova_tmp, ova_name)],
        consumed: true,
    })
}

fn append_bytes<W: std::io::Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
) -> std::io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(now_secs());
    tar.append_data(&mut h, name, data)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads a shared file handle from its start with positioned reads.
struct HandleReader<'a> {
    file: &'a std::fs::File,
    pos: u64,
}

impl<'a> HandleReader<'a> {
    fn new(file: &'a std::fs::File) -> Self {
        HandleReader { file, pos: 0 }
    }
}

impl std::io::Read for HandleReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = crate::platform::read_at(self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn write_synced(dir: &OutDir, name: &str, data: &[u8]) -> Result<()> {
    let path = dir.join(name);
    let mut f = dir.create_replacing_own(name)?;
    f.write_all(data)
        .map_err(|e| Error::io(&path, "cannot write", e))?;
    f.sync_all().map_err(|e| Error::io(&path, "cannot sync", e))
}
