//! Faults made by toxiproxy (a real TCP proxy, tests/support/toxiproxy.rs) between the library and
//! real peers: the HTTP test server, moto's S3 and EC2 (through the AWS provider) and vcsim's SDK
//! and NFC (through the vSphere provider). Connections reset mid-body, stalled, slowed, sliced into
//! tiny segments, cut after N bytes, or refused. Each test ends with the exported bytes equal to
//! the source and more requests than parts (proof that the fault hit and was retried), or — where
//! the fault is permanent — a clear error within its deadline and nothing at the final name; cloud
//! cleanup must still reach the peer when the control plane is the faulted link.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use hypersdk::{Client, ExportResult, Phase};
use serde_json::json;
use support::server::{TestServer, pattern};
use support::toxiproxy::{Proxy, toxiproxy};
use support::{Recorder, opts, peer_runtime};

const PART: u64 = 256 * 1024;

struct HttpPeer {
    _rt: tokio::runtime::Runtime,
    server: TestServer,
    proxy: Proxy,
    data: Vec<u8>,
}

/// The test server with `name` of `size` bytes, behind a fresh proxy.
fn http_peer(name: &str, size: usize, seed: u64) -> HttpPeer {
    let rt = peer_runtime();
    let server = rt.block_on(TestServer::start());
    let data = pattern(size, seed);
    server.put(name, data.clone());
    let proxy = toxiproxy().proxy(&server.addr.to_string());
    HttpPeer {
        _rt: rt,
        server,
        proxy,
        data,
    }
}

impl HttpPeer {
    fn gets(&self) -> usize {
        self.server
            .requests()
            .iter()
            .filter(|r| r.starts_with("GET"))
            .count()
    }
}

fn export(url: &str, dir: &Path, extra: serde_json::Value, rec: &Recorder) -> hypersdk::Export {
    let client = Client::new("http", "{}").unwrap();
    client
        .start_export(url, &opts(dir, extra), Some(rec.callback()))
        .unwrap()
}

fn wait(e: &hypersdk::Export) -> ExportResult {
    e.wait(Some(Duration::from_secs(120)))
        .unwrap()
        .expect("export did not end within 120 s")
}

/// Done, the file equals the source, no temp file or journal left, the progress contract held.
fn assert_exact(r: &ExportResult, dir: &Path, name: &str, want: &[u8], rec: &Recorder) {
    assert_eq!(r.status, "done", "{}", r.to_json());
    let got = std::fs::read(dir.join(name)).unwrap();
    assert!(got == want, "{name}: the bytes differ from the source");
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != name)
        .collect();
    assert!(left.is_empty(), "left beside {name}: {left:?}");
    let phases = rec.check();
    assert_eq!(phases.last(), Some(&Phase::Done));
}

/// Nothing at the final name, and (keep_partial false) no temp file either.
fn assert_nothing_left(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "left: {left:?}");
}

/// A storm of resets: for 1.5 s every connection is reset by the peer (toxiproxy's reset_peer
/// swallows the answer and sends RST after 100 ms), shorter than the retry budget the options
/// give (backoff 0.3 + 0.6 + 1.2 + 2.4 s): the export rides it out.
#[test]
fn http_connection_reset_storm_shorter_than_the_retry_budget() {
    let p = http_peer("r.bin", 4 << 20, 1);
    let dir = tempfile::tempdir().unwrap();
    p.proxy
        .add("reset", "reset_peer", "downstream", json!({"timeout": 100}));
    let rec = Recorder::default();
    let e = export(
        &p.proxy.url("r.bin"),
        dir.path(),
        json!({"retry_base_delay_ms": 300, "max_attempts": 5}),
        &rec,
    );
    std::thread::sleep(Duration::from_millis(1500));
    p.proxy.remove("reset");
    let r = wait(&e);
    assert_exact(&r, dir.path(), "r.bin", &p.data, &rec);
    let parts = (4 << 20) / PART as usize;
    assert!(
        p.gets() > parts + 1,
        "{} GETs for {parts} parts and the probe: the resets never hit",
        p.gets()
    );
}

/// Resets that never stop: a network error once the attempts are spent, within their backoff
/// budget, and nothing left behind.
#[test]
fn http_permanent_reset_fails_in_time_with_nothing_left() {
    let p = http_peer("rp.bin", 1 << 20, 11);
    let dir = tempfile::tempdir().unwrap();
    p.proxy
        .add("reset", "reset_peer", "downstream", json!({"timeout": 0}));
    let rec = Recorder::default();
    let t = Instant::now();
    let e = export(
        &p.proxy.url("rp.bin"),
        dir.path(),
        json!({"retry_base_delay_ms": 100, "max_attempts": 4, "keep_partial": false}),
        &rec,
    );
    let r = wait(&e);
    assert_eq!(r.status, "failed", "{}", r.to_json());
    assert_eq!(r.error.as_ref().unwrap().kind, "network", "{}", r.to_json());
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    // Every attempt reached the server: it was the answers that were reset.
    assert_eq!(p.gets(), 4, "{:?}", p.server.requests());
    assert_nothing_left(dir.path());
    assert_eq!(rec.check().last(), Some(&Phase::Failed));
}

/// Connections that go silent (no byte, never closed) for 1.5 s: the stall timeout gives up on
/// them and asks again; once the link is back the export completes.
#[test]
fn http_stalled_connections_are_retried_until_the_link_is_back() {
    let p = http_peer("s.bin", 2 << 20, 2);
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::default();
    p.proxy
        .add("stall", "timeout", "downstream", json!({"timeout": 0}));
    let e = export(
        &p.proxy.url("s.bin"),
        dir.path(),
        json!({"stall_timeout_ms": 400, "max_attempts": 20}),
        &rec,
    );
    std::thread::sleep(Duration::from_millis(1500));
    p.proxy.remove("stall");
    let r = wait(&e);
    assert_exact(&r, dir.path(), "s.bin", &p.data, &rec);
    // The first requests reached the server and were answered into the stall.
    assert!(p.gets() > 8, "{} GETs", p.gets());
}

/// A link that stays silent: a timeout error within the deadline the options give
/// (attempts × stall timeout + backoff), never a hang, and nothing left behind.
#[test]
fn http_permanent_stall_fails_in_time_with_nothing_left() {
    let p = http_peer("p.bin", 1 << 20, 3);
    let dir = tempfile::tempdir().unwrap();
    p.proxy
        .add("stall", "timeout", "downstream", json!({"timeout": 0}));
    let rec = Recorder::default();
    let t = Instant::now();
    let e = export(
        &p.proxy.url("p.bin"),
        dir.path(),
        json!({"stall_timeout_ms": 300, "max_attempts": 3, "keep_partial": false}),
        &rec,
    );
    let r = wait(&e);
    let took = t.elapsed();
    assert_eq!(r.status, "failed", "{}", r.to_json());
    let err = r.error.as_ref().unwrap();
    assert_eq!(err.kind, "timeout", "{}", r.to_json());
    assert!(
        took < Duration::from_secs(20),
        "took {took:?} to give up on a dead link"
    );
    assert_nothing_left(dir.path());
    assert_eq!(rec.check().last(), Some(&Phase::Failed));
}

/// 200 ms ± 50 ms each way on every packet.
#[test]
fn http_high_latency_link() {
    let p = http_peer("l.bin", 3 << 20, 4);
    let dir = tempfile::tempdir().unwrap();
    for stream in ["downstream", "upstream"] {
        p.proxy.add(
            &format!("lat-{stream}"),
            "latency",
            stream,
            json!({"latency": 200, "jitter": 50}),
        );
    }
    let rec = Recorder::default();
    let e = export(&p.proxy.url("l.bin"), dir.path(), json!({}), &rec);
    let r = wait(&e);
    assert_exact(&r, dir.path(), "l.bin", &p.data, &rec);
}

/// A slow link per connection (256 KB/s each): parallel parts each get their own share.
#[test]
fn http_bandwidth_limited_per_connection() {
    let p = http_peer("b.bin", 2 << 20, 5);
    let dir = tempfile::tempdir().unwrap();
    p.proxy
        .add("bw", "bandwidth", "downstream", json!({"rate": 256}));
    let rec = Recorder::default();
    let e = export(&p.proxy.url("b.bin"), dir.path(), json!({}), &rec);
    let r = wait(&e);
    assert_exact(&r, dir.path(), "b.bin", &p.data, &rec);
}

/// The answer arrives in TCP segments of ~100 bytes, so headers, chunk boundaries and body
/// bytes are split everywhere.
#[test]
fn http_tiny_tcp_segments() {
    let p = http_peer("t.bin", 1 << 20, 6);
    let dir = tempfile::tempdir().unwrap();
    p.proxy.add(
        "slicer",
        "slicer",
        "downstream",
        json!({"average_size": 100, "size_variation": 60, "delay": 0}),
    );
    let rec = Recorder::default();
    let e = export(&p.proxy.url("t.bin"), dir.path(), json!({}), &rec);
    let r = wait(&e);
    assert_exact(&r, dir.path(), "t.bin", &p.data, &rec);
}

/// Every connection is closed after 200 kB, fewer than a part (1 MiB here): each part needs
/// several connections and must go on from where the last one stopped, or it never completes.
#[test]
fn http_every_connection_cut_after_200_kb() {
    let p = http_peer("c.bin", 4 << 20, 7);
    let dir = tempfile::tempdir().unwrap();
    p.proxy
        .add("cut", "limit_data", "downstream", json!({"bytes": 200_000}));
    let rec = Recorder::default();
    let e = export(
        &p.proxy.url("c.bin"),
        dir.path(),
        json!({"part_size": 1 << 20, "max_attempts": 3}),
        &rec,
    );
    let r = wait(&e);
    assert_exact(&r, dir.path(), "c.bin", &p.data, &rec);
    // Each part took several connections, and each new request asked for the rest of its part
    // only: no range was asked for twice.
    let starts: Vec<String> = p
        .server
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET") && !r.ends_with("bytes=0-0"))
        .map(|r| {
            r.split("bytes=")
                .nth(1)
                .unwrap_or("")
                .split('-')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(starts.len() >= 4 * 5, "{} ranged GETs", starts.len());
    let mut unique = starts.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        starts.len(),
        "a range was asked for twice: {starts:?}"
    );
}

/// The peer goes away mid-download (the proxy refuses connections): a network error within the
/// deadline, the partial kept; when it is back, a second run fetches only the rest.
#[test]
fn http_peer_gone_then_back_resumes_from_the_partial() {
    let p = http_peer("g.bin", 4 << 20, 8);
    let dir = tempfile::tempdir().unwrap();
    p.proxy
        .add("bw", "bandwidth", "downstream", json!({"rate": 1024}));
    let rec = Recorder::default();
    let e = export(
        &p.proxy.url("g.bin"),
        dir.path(),
        json!({"max_attempts": 3, "parts_in_flight": 2}),
        &rec,
    );
    support::wait_until(&e, "a megabyte", |pr| pr.bytes_done >= 1 << 20);
    p.proxy.set_enabled(false);
    let t = Instant::now();
    let r = wait(&e);
    assert_eq!(r.status, "failed", "{}", r.to_json());
    assert_eq!(r.error.as_ref().unwrap().kind, "network", "{}", r.to_json());
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert!(!dir.path().join("g.bin").exists());
    assert!(dir.path().join("g.bin.hspart").exists());

    p.proxy.set_enabled(true);
    p.proxy.remove("bw");
    p.server.reset_stats();
    let rec = Recorder::default();
    let e = export(&p.proxy.url("g.bin"), dir.path(), json!({}), &rec);
    let r = wait(&e);
    assert_exact(&r, dir.path(), "g.bin", &p.data, &rec);
    assert!(r.bytes_resumed >= 1 << 20, "{}", r.to_json());
    assert!(
        p.server.body_bytes() <= (4 << 20) - r.bytes_resumed + PART,
        "fetched {} of 4 MiB again after {} were kept",
        p.server.body_bytes(),
        r.bytes_resumed
    );
}

/// How long the link to the cloud stays broken after a cancel.
#[cfg(any(feature = "aws", feature = "vsphere"))]
const STORM_AT_CANCEL: f64 = 3.0;

/// A reset storm: every connection, open or new, is reset at once, until `secs` have passed.
/// Both ways: a request swallowed on its way up never reaches the peer (an answer lost on the
/// way down would hide that the call did arrive).
#[cfg(any(feature = "aws", feature = "vsphere"))]
fn reset_storm(proxy: &Proxy, secs: f64) -> std::thread::JoinHandle<()> {
    proxy.add("storm-up", "reset_peer", "upstream", json!({"timeout": 0}));
    proxy.add(
        "storm-down",
        "reset_peer",
        "downstream",
        json!({"timeout": 0}),
    );
    let after = Duration::from_secs_f64(secs);
    let up = proxy.remove_later("storm-up", after);
    let down = proxy.remove_later("storm-down", after);
    std::thread::spawn(move || {
        up.join().unwrap();
        down.join().unwrap();
    })
}

#[cfg(feature = "aws")]
mod aws {
    use super::*;
    use support::moto::moto;

    /// moto behind a fresh proxy, and an AWS client that goes through it for everything.
    fn client_via(proxy_of: &str) -> (Proxy, Client) {
        let m = moto();
        let proxy = toxiproxy().proxy(proxy_of);
        let mut cfg: serde_json::Value = serde_json::from_str(&m.config()).unwrap();
        cfg["endpoint_url"] = json!(format!("http://{}", proxy.listen));
        (proxy, Client::new("aws", &cfg.to_string()).unwrap())
    }

    fn moto_addr() -> String {
        moto()
            .s("endpoint")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string()
    }

    fn put(key: &str, data: &[u8]) {
        moto().put("exports", key, data.to_vec(), false);
    }

    /// S3 through a 1.5 s reset storm that hits the SDK's control calls and the ranged GETs
    /// alike, then every connection cut after 200 kB: the object arrives exact.
    #[test]
    fn s3_object_through_a_reset_storm_and_cut_connections() {
        let data = pattern(4 << 20, 21);
        put("faults/storm.raw", &data);
        let (proxy, client) = client_via(&moto_addr());
        let dir = tempfile::tempdir().unwrap();
        let storm = reset_storm(&proxy, 1.5);
        proxy.add("cut", "limit_data", "downstream", json!({"bytes": 200_000}));
        let rec = Recorder::default();
        let e = client
            .start_export(
                "s3://exports/faults/storm.raw",
                &opts(
                    dir.path(),
                    json!({"retry_base_delay_ms": 300, "part_size": 1 << 20}),
                ),
                Some(rec.callback()),
            )
            .unwrap();
        storm.join().unwrap();
        let r = wait(&e);
        assert_exact(&r, dir.path(), "storm.raw", &data, &rec);
    }

    /// A task that never finishes, cancelled while every connection to EC2 is being reset: the
    /// CancelExportTask still reaches the cloud once the link is back.
    #[test]
    fn ec2_cancel_reaches_the_cloud_through_a_reset_storm() {
        let m = moto();
        let (proxy, client) = client_via(&moto_addr());
        let dir = tempfile::tempdir().unwrap();
        let e = client
            .start_export(
                &m.s("instance_id"),
                &opts(
                    dir.path(),
                    json!({"s3_bucket": "exports", "s3_prefix": "slow/", "poll_interval_ms": 50,
                           "keep_partial": false}),
                ),
                None,
            )
            .unwrap();
        support::wait_until(&e, "the task waiting", |p| {
            p.phase == Phase::WaitingForCloud && p.message.contains("never finishes")
        });
        let storm = reset_storm(&proxy, STORM_AT_CANCEL);
        e.cancel();
        storm.join().unwrap();
        let r = wait(&e);
        assert_eq!(r.status, "cancelled", "{}", r.to_json());
        let task = r.provider["task_id"].as_str().unwrap().to_string();
        let t = m.tasks().into_iter().find(|t| t["id"] == task).unwrap();
        assert_eq!(
            t["state"],
            "cancelled",
            "CancelExportTask never reached moto: {t} {}",
            r.to_json()
        );
        assert_nothing_left(dir.path());
    }
}

#[cfg(feature = "vsphere")]
mod vsphere {
    use super::*;
    use support::vcsim::Peer;

    /// vcsim with its SDK and its NFC disk URLs both behind one proxy.
    fn peer_via_proxy(extra: &[&str]) -> (Proxy, Peer, Client) {
        let proxy = toxiproxy().proxy("127.0.0.1:9");
        let port = proxy.port().to_string();
        let mut args = vec!["-device-port", port.as_str()];
        args.extend_from_slice(extra);
        let peer = Peer::start(&args);
        let url = url::Url::parse(&peer.url()).unwrap();
        proxy.set_upstream(&format!("127.0.0.1:{}", url.port().unwrap()));
        let mut cfg: serde_json::Value = serde_json::from_str(&peer.config()).unwrap();
        cfg["url"] = json!(format!("https://{}/sdk", proxy.listen));
        let client = Client::new("vsphere", &cfg.to_string()).unwrap();
        (proxy, peer, client)
    }

    /// A reset storm mid-download (NFC and SDK calls alike), and every connection sliced into
    /// tiny segments: the disks equal the datastore's and the lease completes.
    #[test]
    fn vsphere_nfc_through_a_reset_storm() {
        let (proxy, peer, client) = peer_via_proxy(&["-nfc-rate", "2000000"]);
        proxy.add(
            "slicer",
            "slicer",
            "downstream",
            json!({"average_size": 1500, "size_variation": 1000, "delay": 0}),
        );
        let dir = tempfile::tempdir().unwrap();
        let e = client
            .start_export(
                "/DC0/vm/DC0_H0_VM0",
                &opts(dir.path(), json!({"retry_base_delay_ms": 300})),
                None,
            )
            .unwrap();
        support::wait_until(&e, "NFC bytes", |p| p.bytes_done > 300_000);
        reset_storm(&proxy, 1.0).join().unwrap();
        let r = wait(&e);
        assert_eq!(r.status, "done", "{}", r.to_json());
        for (f, src) in r.files.iter().zip(peer.disk_files()) {
            assert!(
                std::fs::read(&f.path).unwrap() == std::fs::read(src).unwrap(),
                "{} differs from the datastore",
                f.name
            );
        }
        let st = peer.stats();
        assert_eq!(
            (st["completed"].as_i64(), st["aborted"].as_i64()),
            (Some(1), Some(0)),
            "{st}"
        );
    }

    /// Cancelled while every connection to vCenter is being reset: the lease abort still
    /// arrives once the link is back, and nothing is left.
    #[test]
    fn vsphere_cancel_aborts_the_lease_through_a_reset_storm() {
        let (proxy, peer, client) = peer_via_proxy(&["-nfc-rate", "500000"]);
        let dir = tempfile::tempdir().unwrap();
        let e = client
            .start_export(
                "/DC0/vm/DC0_H0_VM0",
                &opts(dir.path(), json!({"keep_partial": false})),
                None,
            )
            .unwrap();
        support::wait_until(&e, "NFC bytes", |p| p.bytes_done > 200_000);
        let storm = reset_storm(&proxy, STORM_AT_CANCEL);
        e.cancel();
        storm.join().unwrap();
        let r = wait(&e);
        assert_eq!(r.status, "cancelled", "{}", r.to_json());
        let st = peer.stats();
        assert_eq!(
            st["aborted"].as_i64(),
            Some(1),
            "the abort never arrived: {st}"
        );
        assert_nothing_left(dir.path());
    }
}
