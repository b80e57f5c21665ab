//! The network keys every cloud provider takes (the kit's NetConfig), through an HTTPS peer
//! whose certificate only a private CA vouches for: AWS's S3 calls, GCP's Cloud Storage calls
//! (metadata and the download) and its Compute calls reach it with `ca_bundle_pem` and are
//! refused without it.
//! Before the kit, neither provider had a CA setting at all, so a corporate TLS proxy stopped
//! them.

mod support;

use hypersdk::{Client, ErrorKind};
use serde_json::json;
use support::server::{TestCert, TestServer};
use support::{opts, peer_runtime, wait_export};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Exports `source` with a client that trusts `cert`'s CA (it must arrive whole, as `want`),
/// then with one that does not (it must fail at once, saying what to do, leaving nothing).
fn trusts_the_ca_and_only_it(
    provider: &str,
    cfg: impl Fn(Option<&str>) -> String,
    cert: &TestCert,
    source: &str,
    file: &str,
    want: &[u8],
) {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(provider, &cfg(Some(&cert.cert_pem))).unwrap();
    let r = wait_export(
        &client
            .start_export(source, &opts(dir.path(), json!({})), None)
            .unwrap(),
    );
    assert_eq!(r.status, "done", "{}", r.to_json());
    assert_eq!(std::fs::read(dir.path().join(file)).unwrap(), want);

    // Without the CA the same endpoint is refused: the certificate is checked, not ignored.
    let other = tempfile::tempdir().unwrap();
    let client = Client::new(provider, &cfg(None)).unwrap();
    let r = wait_export(
        &client
            .start_export(source, &opts(other.path(), json!({})), None)
            .unwrap(),
    );
    let e = r.error().expect("an unknown issuer must fail");
    // Said at once (not retried as if it could pass), with what to do.
    assert_eq!(e.kind, ErrorKind::Remote, "{}", e.message);
    assert!(e.message.contains("ca_bundle_pem"), "{}", e.message);
    assert!(
        e.message.to_lowercase().contains("certificate"),
        "{}",
        e.message
    );
    assert!(
        r.elapsed_ms < 5_000,
        "a certificate error was retried: {} ms",
        r.elapsed_ms
    );
    assert!(!other.path().join(file).exists());
}

/// `base` with the CA added when given.
fn with_ca(mut base: serde_json::Value, ca: Option<&str>) -> String {
    if let Some(ca) = ca {
        base["ca_bundle_pem"] = ca.into();
    }
    base.to_string()
}

#[test]
fn aws_s3_calls_trust_the_configured_ca_and_only_it() {
    let rt = peer_runtime();
    let cert = TestCert::new();
    let server = rt.block_on(TestServer::start_tls(&cert));
    let data = pattern(300_000);
    server.put("bkt/disks/d.raw", data.clone());
    let cfg = |ca: Option<&str>| {
        let base = json!({
            "region": "us-east-1",
            "endpoint_url": server.url(""),
            "force_path_style": true,
            "access_key_id": "AKIDEXAMPLE",
            "secret_access_key": "not-a-real-secret",
            "api_timeout_ms": 5000,
        });
        with_ca(base, ca)
    };
    trusts_the_ca_and_only_it("aws", cfg, &cert, "s3://bkt/disks/d.raw", "d.raw", &data);
}

#[test]
fn gcp_storage_calls_trust_the_configured_ca_and_only_it() {
    let rt = peer_runtime();
    let cert = TestCert::new();
    let server = rt.block_on(TestServer::start_tls(&cert));
    // The test server ignores the query, so the object's metadata and its media are the same
    // bytes: a JSON document that states its own length as the object's size.
    let doc = |size: usize| {
        format!(
            "{{\"name\":\"d.raw\",\"bucket\":\"bkt\",\"generation\":\"7\",\"size\":\"{size:06}\"}}"
        )
    };
    let body = doc(doc(0).len());
    assert_eq!(body.len(), doc(0).len());
    server.put("storage/v1/b/bkt/o/d.raw", body.clone().into_bytes());
    let cfg = |ca: Option<&str>| {
        let base = json!({
            "anonymous": true,
            "storage_endpoint": server.url(""),
            "api_timeout_ms": 5000,
        });
        with_ca(base, ca)
    };
    trusts_the_ca_and_only_it(
        "gcp",
        cfg,
        &cert,
        "gs://bkt/d.raw",
        "d.raw",
        body.as_bytes(),
    );
}

/// Compute (and Cloud Build, on the same client) reach an endpoint only the configured CA
/// vouches for, and are refused without it. Through Google's SDK crates they took no CA at all.
#[test]
fn gcp_compute_calls_trust_the_configured_ca_and_only_it() {
    let rt = peer_runtime();
    let cert = TestCert::new();
    let server = rt.block_on(TestServer::start_tls(&cert));
    let base = "compute/v1/projects/hs-proj/";
    server.put(&format!("{base}zones/us-z1-a/instances"), b"{}".to_vec());
    let disks = r#"{"items":[{"name":"d1","sizeGb":"2","status":"READY"}]}"#;
    server.put(&format!("{base}zones/us-z1-a/disks"), disks.into());
    // The zone's region's regional disks (regionDisks.list): none.
    server.put(&format!("{base}regions/us-z1/disks"), b"{}".to_vec());
    server.put(&format!("{base}global/images"), b"{}".to_vec());
    let cfg = |ca: Option<&str>| {
        let base = json!({
            "anonymous": true,
            "compute_endpoint": server.url(""),
            "api_timeout_ms": 5000,
        });
        with_ca(base, ca)
    };
    let scope = json!({"project": "hs-proj", "zone": "us-z1-a"}).to_string();
    let listed = Client::new("gcp", &cfg(Some(&cert.cert_pem)))
        .unwrap()
        .list_sources(&scope)
        .unwrap();
    assert!(
        listed
            .iter()
            .any(|s| s.id == "projects/hs-proj/zones/us-z1-a/disks/d1"
                && s.size_bytes == Some(2 << 30)),
        "{listed:?}"
    );
    let t = std::time::Instant::now();
    let e = Client::new("gcp", &cfg(None))
        .unwrap()
        .list_sources(&scope)
        .expect_err("an unknown issuer must fail");
    assert_eq!(e.kind(), ErrorKind::Remote, "{e}");
    assert!(e.to_string().contains("ca_bundle_pem"), "{e}");
    assert!(
        t.elapsed().as_millis() < 5_000,
        "a certificate error was retried"
    );
}

#[test]
fn every_cloud_provider_takes_the_same_network_keys() {
    // A bad value of each key is refused by name for every provider that talks HTTP: the keys
    // are one struct, not six copies that drift.
    let configs = [
        ("aws", json!({"region": "us-east-1"})),
        (
            "azure",
            json!({"subscription_id": "00000000-0000-0000-0000-000000000000", "tenant_id": "11111111-1111-1111-1111-111111111111", "client_id": "22222222-2222-2222-2222-222222222222", "client_secret": "not-a-real-secret"}),
        ),
        ("gcp", json!({"anonymous": true})),
        ("http", json!({})),
        (
            "vsphere",
            json!({"url": "https://127.0.0.1:1/sdk", "username": "u", "password": "p"}),
        ),
    ];
    for (name, base) in configs {
        for (key, bad) in [
            ("api_timeout_ms", json!(1)),
            ("connect_timeout_ms", json!(99_999_999)),
            ("ca_bundle_pem", json!("not a certificate")),
            ("insecure_skip_verify", json!("yes")),
        ] {
            let mut c = base.clone();
            c[key] = bad;
            let e = Client::new(name, &c.to_string())
                .err()
                .unwrap_or_else(|| panic!("{name} took a bad {key}"));
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{name} {key}: {e}");
            let msg = e.to_string();
            assert!(
                msg.contains(key) || msg.contains("CA bundle") || msg.contains("invalid type"),
                "{name} {key}: {msg}"
            );
            // Refused for its value, not as a key the provider does not know.
            assert!(!msg.contains("unknown field"), "{name} {key}: {msg}");
        }
        // And every key with a good value is taken. (vSphere logs in at once, so a client is
        // not made offline; vsphere_export's peers take ca_bundle_path and api_timeout_ms.)
        if name == "vsphere" {
            continue;
        }
        let mut c = base.clone();
        for (key, good) in [
            ("api_timeout_ms", json!(3000)),
            ("connect_timeout_ms", json!(2000)),
            ("ca_bundle_pem", json!(TestCert::new().cert_pem)),
            ("insecure_skip_verify", json!(false)),
        ] {
            c[key] = good;
        }
        if let Err(e) = Client::new(name, &c.to_string()) {
            panic!("{name} refused good network keys: {e}");
        }
    }
}
