//! The moto peer's EBS stand-in (tests/peers/moto/ebs_stand_in.py) as the snapshot tests use it:
//! raw disks, volumes whose snapshots hold them, the stand-in's counters.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::moto::moto;
use super::server::pattern;

pub const BLOCK: usize = 524_288;
pub const GIB: u64 = 1 << 30;

/// A control call to the peer's EBS stand-in (`/ebs/...`).
pub fn ebs(method: &str, path_and_query: &str) -> Value {
    let url = format!("{}{path_and_query}", moto().s("control"));
    super::block_on_peer(async {
        let c = reqwest::Client::new();
        let r = match method {
            "GET" => c.get(&url),
            _ => c.post(&url),
        }
        .send()
        .await
        .unwrap();
        assert!(r.status().is_success(), "control {url}: {}", r.status());
        serde_json::from_str(&r.text().await.unwrap()).unwrap()
    })
}

/// A raw disk: `blocks` (index → seed) of data, zeros elsewhere, `len` bytes.
pub fn raw(dir: &Path, name: &str, len: usize, blocks: &[(usize, u8)]) -> (PathBuf, Vec<u8>) {
    let mut data = vec![0u8; len];
    for &(i, seed) in blocks {
        data[i * BLOCK..(i + 1) * BLOCK].copy_from_slice(&pattern(BLOCK, seed as u64));
    }
    let p = dir.join(name);
    std::fs::write(&p, &data).unwrap();
    (p, data)
}

/// A new 1 GiB volume whose snapshots hold `file`'s blocks; `extra` adds stand-in settings.
pub fn volume(file: &Path, extra: &str) -> String {
    let v = ebs(
        "POST",
        &format!("/ebs/volume?size=1&path={}{extra}", file.display()),
    );
    v["volume"].as_str().unwrap().to_string()
}

pub fn stats() -> Value {
    ebs("GET", "/ebs/stats")
}

/// The stand-in's snapshots of `vol`.
pub fn snaps_of(vol: &str) -> Vec<Value> {
    stats()["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["volume"] == vol)
        .cloned()
        .collect()
}

/// `GetSnapshotBlock` calls the stand-in answered for `snap`.
pub fn gets(snap: &str) -> u64 {
    stats()["gets"][snap].as_u64().unwrap_or(0)
}
