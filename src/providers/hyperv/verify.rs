//! Checking what Hyper-V wrote. On this machine's Hyper-V, `verify.ps1` (the size Hyper-V reads
//! for each file, `Test-VHD`). On a remote host the files are on a share that is `output_dir`
//! here, and a remote session may not reach that share (the "second hop": with the default
//! authentication the session's credential does not travel on), so everything that needs the
//! files is done here: each file's size and its VHDX or VHD structure (below). In `full` the
//! VM's folder is read as Hyper-V wrote it: every disk file there is checked, whatever its
//! name; the names the library watched while Hyper-V wrote were only its expectation.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

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

/// One file to check: its name, where it is here and on the host, its size as read here, and
/// whether the library expected it.
struct Target {
    name: String,
    local: PathBuf,
    host: String,
    here: Option<u64>,
    expected: bool,
}

impl HyperVFlow {
    /// What to check. vhd-only: the disks, as named. full: every disk file in the VM's folder as
    /// Hyper-V wrote it (`Virtual Hard Disks`), whatever its name: the names the library watched
    /// were its expectation, and one Hyper-V did not write is not part of the export.
    fn targets(&self, files: &[Downloaded]) -> Result<Vec<Target>> {
        let here = |name: &str| files.iter().find(|f| f.name == name).map(|f| f.size);
        let Some((inside, _)) = &self.folder else {
            return Ok(self
                .disks
                .iter()
                .map(|d| Target {
                    name: d.name.clone(),
                    local: d.local.clone(),
                    host: d.host.clone(),
                    here: here(&d.name),
                    expected: true,
                })
                .collect());
        };
        let vm = &self.vm.as_ref().expect("inventory ran").name;
        let dir = self.output_dir.join(inside).join("Virtual Hard Disks");
        let read = |e: std::io::Error| Error::io(&dir, "cannot read the exported VM's disks", e);
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(read)? {
            let e = e.map_err(read)?;
            if !e.file_type().map_err(read)?.is_file() {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let expected = self.disks.iter().any(|d| d.local == e.path());
            let size = if expected {
                here(&name)
            } else {
                e.metadata().ok().map(|m| m.len())
            };
            out.push(Target {
                host: self.host_join(&[vm, "Virtual Hard Disks", &name]),
                local: e.path(),
                name,
                here: size,
                expected,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        if out.is_empty() {
            return Err(Error::Verification(format!(
                "Hyper-V's export of {vm:?} wrote no disk file"
            )));
        }
        Ok(out)
    }

    /// Checks every exported file; fills `verified`.
    pub(super) async fn verify_files(&mut self, ctx: &FlowCtx, files: &[Downloaded]) -> Result<()> {
        let targets = self.targets(files)?;
        let local = self.ps.transport() == Transport::Local;
        let mut lines = Vec::new();
        if local {
            ctx.message("Hyper-V is checking the exported disks");
            let input = json!({
                "paths": targets.iter().map(|t| t.host.clone()).collect::<Vec<_>>(),
                "test_vhd": self.opts.verify,
            });
            lines = self
                .ps
                .run(Script::Verify, &input, self.control_timeout, ctx.cancel())
                .await?;
        } else {
            ctx.message("checking the exported disks");
        }
        let full = self.folder.is_some();
        for t in &targets {
            let mut entry = json!({"name": t.name});
            if local {
                let Some(rep) = lines.iter().find(|l| l["path"] == t.host.as_str()) else {
                    return Err(Error::Verification(format!(
                        "Hyper-V did not report on {}",
                        t.name
                    )));
                };
                let says = rep["file_size"].as_u64();
                if t.here.is_none() || t.here != says {
                    return Err(Error::Verification(format!(
                        "{}: {} bytes here, Hyper-V reports {}",
                        t.name,
                        t.here.map(|g| g.to_string()).unwrap_or("no file".into()),
                        says.map(|s| s.to_string()).unwrap_or("no size".into())
                    )));
                }
                if self.opts.verify && rep["ok"] != true {
                    return Err(Error::Verification(format!(
                        "{}: Test-VHD found the exported disk unsound",
                        t.name
                    )));
                }
                entry["size"] = json!(says);
                entry["test_vhd"] = json!(self.opts.verify);
            } else {
                let size = std::fs::metadata(&t.local)
                    .map(|m| m.len())
                    .map_err(|e| Error::io(&t.local, "cannot read the exported disk", e))?;
                if t.here != Some(size) {
                    return Err(Error::Verification(format!(
                        "{}: {size} bytes on the share, {:?} read",
                        t.name, t.here
                    )));
                }
                entry["size"] = json!(size);
            }
            // The structure is read here whenever it is cheap to (a few bytes): remotely it is
            // the only check; in full, for every file Hyper-V wrote.
            if !local || full {
                let what = if t.expected {
                    t.name.clone()
                } else {
                    format!("{} (in the VM folder)", t.name)
                };
                let format = vhd_structure(&t.local)
                    .map_err(|m| Error::Verification(format!("{what}: {m}")))?;
                entry["structure"] = json!(format);
            }
            if !t.expected {
                entry["unexpected"] = json!(true);
            }
            self.verified.push(entry);
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
