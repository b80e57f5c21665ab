//! What the incremental-export tests of every provider share (issue 35): saving a result where
//! `incremental_from` can name it, comparing two images, reading a result's incremental report.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use hypersdk::{Client, ExportResult};
use serde_json::{Value, json};

/// Waits for the end of an export (three minutes at most: the measures read 1 GiB).
pub fn wait(e: &hypersdk::Export) -> ExportResult {
    e.wait(Some(std::time::Duration::from_secs(180)))
        .unwrap()
        .expect("export did not end within 180 s")
}

/// An export of `src` into `out` by `provider` with `config`, polling quickly, plus `extra`;
/// it must end done.
pub fn export_done(
    provider: &str,
    config: &str,
    src: &str,
    out: &Path,
    extra: Value,
) -> ExportResult {
    let mut o = json!({"poll_interval_ms": 20});
    for (k, v) in extra.as_object().unwrap() {
        o[k] = v.clone();
    }
    let c = Client::new(provider, config).unwrap();
    let r = wait(&c.start_export(src, &super::opts(out, o), None).unwrap());
    assert_eq!(r.status, "done", "{}", r.to_json());
    r
}

/// Writes the result JSON where `incremental_from` can name it.
pub fn save(r: &ExportResult, dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, r.to_json()).unwrap();
    p
}

/// The two files are equal, read 8 MiB at a time.
pub fn assert_same(a: &Path, b: &Path) {
    use std::io::Read as _;
    let (mut fa, mut fb) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    assert_eq!(
        fa.metadata().unwrap().len(),
        fb.metadata().unwrap().len(),
        "{} and {} differ in size",
        a.display(),
        b.display()
    );
    let (mut x, mut y) = (vec![0u8; 8 << 20], vec![0u8; 8 << 20]);
    loop {
        let n = fa.read(&mut x).unwrap();
        fb.read_exact(&mut y[..n]).unwrap();
        assert!(
            x[..n] == y[..n],
            "{} and {} differ",
            a.display(),
            b.display()
        );
        if n == 0 {
            break;
        }
    }
}

/// The result's report of its `i`-th file (`incremental.files[i]`).
pub fn report(r: &ExportResult, i: usize) -> &Value {
    &r.provider["incremental"]["files"][i]
}
