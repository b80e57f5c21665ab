//! Writing the OVF package: `<name>.ovf`, `<name>.mf` (SHA-256 of each file), or one
//! `<name>.ova` (tar: descriptor first, then manifest, then disks, as the OVF spec requires).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use crate::error::{Error, Result};
use crate::providers::AfterDownload;
use crate::transfer::{Downloaded, temp_path};

pub fn write(
    out_dir: &Path,
    base: &str,
    descriptor: &str,
    files: &[Downloaded],
    ova: bool,
) -> Result<AfterDownload> {
    let ovf_name = format!("{base}.ovf");
    let mf_name = format!("{base}.mf");
    let mut manifest = format!(
        "SHA256({ovf_name})= {}\n",
        hex::encode(sha2::Sha256::digest(descriptor.as_bytes()))
    );
    for f in files {
        let sum = f
            .sha256
            .ok_or_else(|| Error::Internal(format!("no SHA-256 for {}", f.name)))?;
        manifest.push_str(&format!("SHA256({})= {}\n", f.name, hex::encode(sum)));
    }
    if !ova {
        let ovf_tmp = temp_path(&out_dir.join(&ovf_name));
        let mf_tmp = temp_path(&out_dir.join(&mf_name));
        write_synced(&ovf_tmp, descriptor.as_bytes())?;
        write_synced(&mf_tmp, manifest.as_bytes())?;
        return Ok(AfterDownload {
            extra: vec![(ovf_tmp, ovf_name), (mf_tmp, mf_name)],
            consumed: false,
        });
    }
    let ova_name = format!("{base}.ova");
    let ova_tmp = temp_path(&out_dir.join(&ova_name));
    let file =
        std::fs::File::create(&ova_tmp).map_err(|e| Error::io(&ova_tmp, "cannot create", e))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, file));
    let io = |e: std::io::Error| Error::io(&ova_tmp, "cannot write", e);
    append_bytes(&mut tar, &ovf_name, descriptor.as_bytes()).map_err(io)?;
    append_bytes(&mut tar, &mf_name, manifest.as_bytes()).map_err(io)?;
    for f in files {
        tar.append_path_with_name(&f.temp, &f.name).map_err(io)?;
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
    h.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    tar.append_data(&mut h, name, data)
}

fn write_synced(path: &PathBuf, data: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, "cannot create", e))?;
    f.write_all(data)
        .map_err(|e| Error::io(path, "cannot write", e))?;
    f.sync_all().map_err(|e| Error::io(path, "cannot sync", e))
}
