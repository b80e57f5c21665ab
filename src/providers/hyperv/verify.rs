//! Checking what Hyper-V wrote. On this machine's Hyper-V, `verify.ps1` (the size Hyper-V reads
//! for each file, `Test-VHD`). On a remote host the files are on a share that is `output_dir`
//! here, and a remote session may not reach that share (the "second hop": with the default
//! authentication the session's credential does not travel on), so everything that needs the
//! files is done here: each file's size and its VHDX or VHD structure (below). In `full` the
//! VM's folder is read as Hyper-V wrote it: every disk file there is checked, expected or not.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde_json::json;

use super::config::Transport;
use super::flow::HyperVFlow;
use super::ps::Script;
use crate::error::{Error, Result};
use crate::seam::FlowCtx;
use crate::transfer::Downloaded;

/// The structure a VHDX or VHD file must have, read from its bytes: VHDX (MS-VHDX 2.1-2.2) has
/// the file type identifier `vhdxfile` at 0, its two headers (`head`) at 64 and 128 KiB and its
/// two region tables (`regi`) at 192 and 256 KiB; a VHD (the VHD Image Format Specification)
/// ends with its 512-byte footer, cookie `conectix` (dynamic and differencing disks also start
/// with a copy). The extension decides which, as for Hyper-V.
pub(crate) fn vhd_structure(path: &Path) -> std::result::Result<&'static str, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    let mut at = |off: u64, n: usize| -> std::result::Result<Vec<u8>, String> {
        let mut b = vec![0u8; n];
        f.seek(SeekFrom::Start(off)).map_err(|e| e.to_string())?;
        f.read_exact(&mut b)
            .map_err(|_| format!("ends at {len} bytes, before offset {}", off + n as u64))?;
        Ok(b)
    };
    if name.ends_with(".vhdx") || name.ends_with(".avhdx") {
        if at(0, 8)? != b"vhdxfile" {
            return Err("no VHDX file type identifier (vhdxfile) at offset 0".into());
        }
        for (off, sig) in [
            (0x1_0000, b"head"),
            (0x2_0000, b"head"),
            (0x3_0000, b"regi"),
            (0x4_0000, b"regi"),
        ] {
            if at(off, 4)? != sig {
                return Err(format!(
                    "no VHDX {} signature at offset {off:#x}",
                    String::from_utf8_lossy(sig)
                ));
            }
        }
        Ok("vhdx")
    } else if name.ends_with(".vhd") || name.ends_with(".avhd") {
        if len < 512 || at(len - 512, 8)? != b"conectix" {
            return Err("no VHD footer (conectix) in its last 512 bytes".into());
        }
        Ok("vhd")
    } else {
        Err("not a .vhdx or .vhd file".into())
    }
}

impl HyperVFlow {
    /// Checks every exported file; fills `verified`.
    pub(super) async fn verify_files(&mut self, ctx: &FlowCtx, files: &[Downloaded]) -> Result<()> {
        let here_size = |name: &str| files.iter().find(|f| f.name == name).map(|f| f.size);
        if self.ps.transport() == Transport::Local {
            ctx.message("Hyper-V is checking the exported disks");
            let input = json!({
                "paths": self.disks.iter().map(|d| d.host.clone()).collect::<Vec<_>>(),
                "test_vhd": self.opts.verify,
            });
            let lines = self
                .ps
                .run(Script::Verify, &input, self.control_timeout, ctx.cancel())
                .await?;
            for d in &self.disks {
                let Some(rep) = lines.iter().find(|l| l["path"] == d.host.as_str()) else {
                    return Err(Error::Verification(format!(
                        "Hyper-V did not report on {}",
                        d.name
                    )));
                };
                let got = here_size(&d.name);
                let says = rep["file_size"].as_u64();
                if got.is_none() || got != says {
                    return Err(Error::Verification(format!(
                        "{}: {} bytes here, Hyper-V reports {}",
                        d.name,
                        got.map(|g| g.to_string()).unwrap_or("no file".into()),
                        says.map(|s| s.to_string()).unwrap_or("no size".into())
                    )));
                }
                if self.opts.verify && rep["ok"] != true {
                    return Err(Error::Verification(format!(
                        "{}: Test-VHD found the exported disk unsound",
                        d.name
                    )));
                }
                self.verified.push(json!({
                    "name": d.name,
                    "size": says,
                    "test_vhd": self.opts.verify,
                }));
            }
        } else {
            ctx.message("checking the exported disks");
            for d in &self.disks {
                let size = std::fs::metadata(&d.local)
                    .map(|m| m.len())
                    .map_err(|e| Error::io(&d.local, "cannot read the exported disk", e))?;
                if here_size(&d.name) != Some(size) {
                    return Err(Error::Verification(format!(
                        "{}: {size} bytes on the share, {:?} read",
                        d.name,
                        here_size(&d.name)
                    )));
                }
                let format = vhd_structure(&d.local)
                    .map_err(|m| Error::Verification(format!("{}: {m}", d.name)))?;
                self.verified
                    .push(json!({"name": d.name, "size": size, "structure": format}));
            }
        }
        self.verify_folder()
    }

    /// `full`: every disk file in the VM's folder as Hyper-V wrote it (`Virtual Hard Disks`),
    /// whether or not it was one the library watched: a file Hyper-V named otherwise is
    /// checked and reported too, never left unseen.
    fn verify_folder(&mut self) -> Result<()> {
        let Some((inside, _)) = &self.folder else {
            return Ok(());
        };
        let dir = self.output_dir.join(inside).join("Virtual Hard Disks");
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(&dir, "cannot read the exported VM's disks", e))?;
        for e in entries {
            let e = e.map_err(|e| Error::io(&dir, "cannot read the exported VM's disks", e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if self.disks.iter().any(|d| d.local == e.path()) {
                continue;
            }
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            let format = vhd_structure(&e.path())
                .map_err(|m| Error::Verification(format!("{name} (in the VM folder): {m}")))?;
            self.verified.push(json!({
                "name": name,
                "size": size,
                "structure": format,
                "unexpected": true,
            }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vhdx_and_vhd_structures_are_read_from_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut good = vec![0u8; 0x5_0000];
        good[..8].copy_from_slice(b"vhdxfile");
        for (off, sig) in [
            (0x1_0000, b"head"),
            (0x2_0000, b"head"),
            (0x3_0000, b"regi"),
            (0x4_0000, b"regi"),
        ] {
            good[off..off + 4].copy_from_slice(sig);
        }
        let p = dir.path().join("a.vhdx");
        std::fs::write(&p, &good).unwrap();
        assert_eq!(vhd_structure(&p), Ok("vhdx"));
        let p2 = dir.path().join("a_1.avhdx");
        std::fs::write(&p2, &good).unwrap();
        assert_eq!(vhd_structure(&p2), Ok("vhdx"));
        let mut bad = good.clone();
        bad[0x3_0000] = b'x';
        std::fs::write(&p, &bad).unwrap();
        assert!(vhd_structure(&p).unwrap_err().contains("regi"));
        std::fs::write(&p, &good[..0x2_0000]).unwrap();
        assert!(vhd_structure(&p).unwrap_err().contains("ends at"));
        let mut vhd = vec![0u8; 4096];
        vhd[4096 - 512..4096 - 504].copy_from_slice(b"conectix");
        let v = dir.path().join("b.vhd");
        std::fs::write(&v, &vhd).unwrap();
        assert_eq!(vhd_structure(&v), Ok("vhd"));
        std::fs::write(&v, &vhd[..4000]).unwrap();
        assert!(vhd_structure(&v).is_err());
        let o = dir.path().join("c.raw");
        std::fs::write(&o, &good).unwrap();
        assert!(vhd_structure(&o).is_err());
    }
}
