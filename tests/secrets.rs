//! Every provider's failure paths, run with recognisable secrets (headers, a signed URL's
//! query, an AWS secret key and session token, a vSphere password): none may appear in an
//! error, a result JSON, a progress message, or anything the library (or a dependency) writes
//! to `tracing` at any level.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hypersdk::{Client, Progress, ProgressCallback};
use serde_json::json;
use support::server::{Faults, TestServer, pattern};
use support::{opts, peer_runtime};

/// Everything written to tracing, at TRACE level, by every crate.
fn log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = buf.clone();
        let make = move || Sink(w.clone());
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(make)
            .with_ansi(false)
            .init();
        buf
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What a run let out: errors, result JSON, progress messages.
#[derive(Default, Clone)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }
    fn callback(&self) -> ProgressCallback {
        let s = self.clone();
        Box::new(move |p: &Progress| s.push(format!("{} {}", p.file_name, p.message)))
    }
    fn export(&self, client: &Client, source: &str, options: &str) {
        match client.start_export(source, options, Some(self.callback())) {
            Err(e) => self.push(format!("{e} {e:?}")),
            Ok(e) => {
                let r = e
                    .wait(Some(Duration::from_secs(120)))
                    .unwrap()
                    .expect("the export ended");
                assert_ne!(
                    r.status,
                    "done",
                    "this run was meant to fail: {}",
                    r.to_json()
                );
                self.push(r.to_json());
                if let Some(err) = r.error() {
                    self.push(format!("{err} {err:?}"));
                }
            }
        }
    }
}

fn assert_hidden(seen: &Seen, secrets: &[&str]) {
    let mut all = seen.0.lock().unwrap().join("\n");
    let traced = String::from_utf8_lossy(&log().lock().unwrap()).into_owned();
    assert!(
        traced.len() > 1000,
        "tracing captured almost nothing: {traced}"
    );
    all.push_str(&traced);
    for s in secrets {
        assert!(!all.contains(s), "{s:?} leaked:\n{all}");
    }
}

#[test]
fn http_headers_and_signed_urls_stay_hidden() {
    log();
    let rt = peer_runtime();
    let server = rt.block_on(TestServer::start());
    server.put("d.vmdk", pattern(100_000, 1));
    server.set_faults(Faults {
        require_auth: Some("Bearer the-right-one".into()),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let seen = Seen::default();
    let client = Client::new(
        "http",
        r#"{"headers": {"Authorization": "Bearer SECRET-HTTP-AUTH"}}"#,
    )
    .unwrap();
    let o = opts(
        dir.path(),
        json!({"headers": {"x-api-key": "SECRET-HTTP-KEY"}, "max_attempts": 2}),
    );
    // Refused (401), with a signature in the URL.
    seen.export(
        &client,
        &format!("{}?X-Amz-Signature=SECRET-HTTP-SIG", server.url("d.vmdk")),
        &o,
    );
    // A URL that does not parse, and one whose host does not answer.
    seen.export(&client, "https://h:99999/d.vmdk?sig=SECRET-HTTP-PORT", &o);
    seen.export(
        &client,
        "http://127.0.0.1:9/d.vmdk?sig=SECRET-HTTP-CONN",
        &o,
    );
    // A header value of the wrong type in the client config.
    if let Err(e) = Client::new("http", r#"{"headers": {"Authorization": 71234987}}"#) {
        seen.push(e.to_string());
    }
    assert_hidden(
        &seen,
        &[
            "SECRET-HTTP-AUTH",
            "SECRET-HTTP-KEY",
            "SECRET-HTTP-SIG",
            "SECRET-HTTP-PORT",
            "SECRET-HTTP-CONN",
            "71234987",
        ],
    );
}

#[cfg(feature = "aws")]
#[test]
fn aws_keys_stay_hidden() {
    log();
    let m = support::moto::moto();
    let dir = tempfile::tempdir().unwrap();
    let seen = Seen::default();
    let cfg = json!({"region": "us-east-1", "endpoint_url": m.s("endpoint"),
                     "access_key_id": m.s("access_key_id"),
                     "secret_access_key": "SECRET-AWS-KEY", "session_token": "SECRET-AWS-TOKEN"});
    let c = Client::new("aws", &cfg.to_string()).unwrap();
    seen.export(
        &c,
        &m.s("instance_id"),
        &opts(dir.path(), json!({"s3_bucket": "exports"})),
    );
    seen.export(
        &c,
        "s3://exports/plain/disk.raw",
        &opts(dir.path(), json!({})),
    );
    let bad = json!({"region": "us-east-1", "access_key_id": "AK", "secret_access_key": 99887766});
    if let Err(e) = Client::new("aws", &bad.to_string()) {
        seen.push(e.to_string());
    }
    assert_hidden(
        &seen,
        &[
            "SECRET-AWS-KEY",
            "SECRET-AWS-TOKEN",
            "99887766",
            &m.s("secret_access_key"),
        ],
    );
}

#[cfg(feature = "vsphere")]
#[test]
fn vsphere_passwords_stay_hidden() {
    log();
    let peer = support::vcsim::Peer::start(&[]);
    let seen = Seen::default();
    let cfg = json!({"url": peer.url(), "username": "admin", "password": "SECRET-VS-PASS",
                     "ca_bundle_path": peer.ca_file()});
    match Client::new("vsphere", &cfg.to_string()) {
        Err(e) => seen.push(format!("{e} {e:?}")),
        Ok(_) => panic!("a wrong password logged in"),
    }
    let cfg = json!({"url": peer.url(), "username": "admin", "password": 55443322});
    if let Err(e) = Client::new("vsphere", &cfg.to_string()) {
        seen.push(e.to_string());
    }
    assert_hidden(&seen, &["SECRET-VS-PASS", "55443322"]);
}
