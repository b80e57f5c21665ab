//! 500 exports from the HTTP test peer, each cancelled at a moment chosen at random among the
//! places a cancel can land: at once (before the export has done anything), while queued behind
//! the global limit, after a random delay, mid-part, during verification, during finalizing, and
//! after it is done. Whatever the moment: exactly one terminal callback and no call after it, the
//! status is `cancelled` or `done` (never `failed`), a cancelled export leaves nothing in its
//! folder (keep_partial false: no temp file, journal or lock), a done one leaves exactly its file.

mod support;

use std::time::{Duration, Instant};

use hypersdk::{Client, Phase};
use serde_json::json;
use support::server::{Faults, TestServer, pattern};
use support::{Recorder, opts, peer_runtime};

#[derive(Clone, Copy, Debug)]
enum Moment {
    AtOnce,
    Queued,
    AfterDelay(u64),
    MidPart,
    Verifying,
    Finalizing,
    AfterDone,
}

/// A small deterministic generator (no rand dependency for tests).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn five_hundred_exports_cancelled_at_random_moments() {
    let rt = peer_runtime();
    let server = rt.block_on(TestServer::start());
    // Paced, so parts are in flight for a while; four sizes.
    let sizes = [64 << 10, 300 << 10, 1 << 20, 2 << 20];
    let files: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &s)| pattern(s, 500 + i as u64))
        .collect();
    for (i, f) in files.iter().enumerate() {
        server.put(&format!("f{i}.bin"), f.clone());
    }
    let sums: Vec<String> = files
        .iter()
        .map(|f| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(f)))
        .collect();
    server.set_faults(Faults {
        bytes_per_sec: 32 << 20,
        ..Default::default()
    });
    // Few slots, so many exports wait in `queued`.
    hypersdk::configure(r#"{"max_concurrent_exports": 6}"#).unwrap();
    let client = Client::new("http", "{}").unwrap();
    let root = tempfile::tempdir().unwrap();
    let seed = std::env::var("HS_RACE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("cancel races: seed {seed} (HS_RACE_SEED={seed} repeats this run)");
    let mut rng = Lcg(seed);

    let mut running = Vec::new();
    let mut counts = std::collections::BTreeMap::<String, (u32, u32)>::new();
    for n in 0..500u32 {
        let i = (rng.next() % files.len() as u64) as usize;
        let moment = match rng.next() % 7 {
            0 => Moment::AtOnce,
            1 => Moment::Queued,
            2 => Moment::AfterDelay(rng.next() % 40),
            3 => Moment::MidPart,
            4 => Moment::Verifying,
            5 => Moment::Finalizing,
            _ => Moment::AfterDone,
        };
        let dir = root.path().join(format!("e{n}"));
        std::fs::create_dir(&dir).unwrap();
        let rec = Recorder::default();
        let o = opts(
            &dir,
            json!({"keep_partial": false, "sha256": sums[i], "part_size": 65536}),
        );
        let e = client
            .start_export(&server.url(&format!("f{i}.bin")), &o, Some(rec.callback()))
            .unwrap();
        // The two early moments land now: right after start returns, and while it waits for
        // a slot (24 are in the air for 6 slots).
        match moment {
            Moment::AtOnce => e.cancel(),
            Moment::Queued if e.progress().phase == Phase::Queued => e.cancel(),
            _ => {}
        }
        running.push((n, i, moment, dir, rec, e));
        // Keep ~24 in the air: several running, the rest queued.
        if running.len() >= 24 {
            let (n, i, m, dir, rec, e) = running.remove(0);
            finish(&mut counts, n, m, &dir, &rec, &e, &files[i]);
        }
    }
    for (n, i, m, dir, rec, e) in running {
        finish(&mut counts, n, m, &dir, &rec, &e, &files[i]);
    }
    eprintln!("moment → (done, cancelled): {counts:?}");
    // The draw covered the moments, and cancels did land.
    let cancelled: u32 = counts.values().map(|c| c.1).sum();
    assert!(counts.len() == 7 && cancelled > 150, "{counts:?}");
    hypersdk::configure("{}").unwrap();
}

/// Drives one export to its moment and end, checks it, and counts how it ended per moment.
fn finish(
    counts: &mut std::collections::BTreeMap<String, (u32, u32)>,
    n: u32,
    m: Moment,
    dir: &std::path::Path,
    rec: &Recorder,
    e: &hypersdk::Export,
    want: &[u8],
) {
    let status = drive(e, m);
    check(n, m, &status, dir, rec, e, want);
    let c = counts
        .entry(format!("{m:?}").split('(').next().unwrap().to_string())
        .or_default();
    if status == "done" { c.0 += 1 } else { c.1 += 1 }
}

/// Waits for the moment, cancels, waits for the end; returns the status.
fn drive(e: &hypersdk::Export, m: Moment) -> String {
    let until = |f: &dyn Fn(&hypersdk::Progress) -> bool| {
        let t = Instant::now();
        while !f(&e.progress()) && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_micros(200));
        }
    };
    match m {
        // Cancelled when started (see above); a second cancel is harmless.
        Moment::AtOnce | Moment::Queued => {}
        Moment::AfterDelay(ms) => std::thread::sleep(Duration::from_millis(ms)),
        Moment::MidPart => until(&|p| p.bytes_done > 0 || p.phase.is_terminal()),
        Moment::Verifying => until(&|p| p.phase as u8 >= Phase::Verifying as u8),
        Moment::Finalizing => until(&|p| p.phase as u8 >= Phase::Finalizing as u8),
        Moment::AfterDone => until(&|p| p.phase.is_terminal()),
    }
    e.cancel();
    let r = e
        .wait(Some(Duration::from_secs(60)))
        .unwrap()
        .expect("an export did not end within 60 s of its cancel");
    r.status.to_string()
}

fn check(
    n: u32,
    m: Moment,
    status: &str,
    dir: &std::path::Path,
    rec: &Recorder,
    e: &hypersdk::Export,
    want: &[u8],
) {
    let r = e.result().unwrap();
    assert!(
        status == "done" || status == "cancelled",
        "export {n} ({m:?}) ended {status}: {}",
        r.to_json()
    );
    // Exactly one terminal call, nothing after it, bytes never backwards.
    rec.check();
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    if status == "done" {
        assert_eq!(names.len(), 1, "export {n} ({m:?}) done but left {names:?}");
        let got = std::fs::read(dir.join(&names[0])).unwrap();
        assert!(got == want, "export {n} ({m:?}): wrong bytes");
    } else {
        assert!(
            names.is_empty(),
            "export {n} ({m:?}) cancelled but left {names:?}: {}",
            r.to_json()
        );
    }
}
