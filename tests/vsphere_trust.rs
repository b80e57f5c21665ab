//! vSphere against vcsim (tests/peers/vcsim): certificates trusted by thumbprint (an ESXi host's
//! device URLs by the lease's `sslThumbprint`, the vCenter by the `thumbprint` config key).
#![cfg(feature = "vsphere")]

mod support;

use hypersdk::{Client, ErrorKind};
use serde_json::json;
use support::vcsim::{Peer, export_vm};

/// Device URLs on a host whose certificate no CA vouches for (a self-signed ESXi host, the
/// usual case) are trusted by the lease's sslThumbprint, as govc does, and only by it.
#[test]
fn device_urls_with_a_self_signed_certificate_are_trusted_by_the_leases_thumbprint() {
    let peer = Peer::start(&["-device-tls"]);
    let (r, _out) = export_vm(&peer.config());
    assert_eq!(r.status, "done", "{}", r.to_json());
    for (f, src) in r.files.iter().zip(peer.disk_files()) {
        assert_eq!(
            std::fs::read(&f.path).unwrap(),
            std::fs::read(src).unwrap(),
            "{}",
            f.name
        );
    }
    let st = peer.stats();
    assert!(
        st["device_tls_requests"].as_i64().unwrap() >= 2,
        "the disks came from the device host: {st}"
    );
    assert_eq!(st["completed"].as_i64(), Some(1), "{st}");
}

/// A device host whose certificate matches neither a CA nor the lease's thumbprint is refused
/// (no fallback), the error shows what it presented, and the lease is aborted.
#[test]
fn a_device_certificate_that_is_not_the_leases_thumbprint_is_refused() {
    let wrong = ["AB"; 20].join(":");
    let peer = Peer::start(&["-device-tls", "-device-thumbprint", &wrong]);
    let (r, _out) = export_vm(&peer.config());
    let err = r.error().unwrap_or_else(|| panic!("{}", r.to_json()));
    assert_eq!(err.kind, ErrorKind::Remote, "{}", err.message);
    let actual = peer.info["device_thumbprint_sha1"].as_str().unwrap();
    assert!(
        err.message.contains("sslThumbprint") && err.message.contains(actual),
        "{}",
        err.message
    );
    let st = peer.stats();
    assert_eq!(st["device_tls_requests"].as_i64(), Some(0), "{st}");
    assert_eq!(
        (st["completed"].as_i64(), st["aborted"].as_i64()),
        (Some(0), Some(1)),
        "{st}"
    );
}

/// `thumbprint` pins the vCenter: SHA-1 or SHA-256 in govc's format (any case) is trusted
/// without a CA; a wrong one is refused even when a CA vouches for the server, showing the
/// server's fingerprints; a malformed one, or one with `insecure_skip_verify`, is refused up
/// front.
#[test]
fn a_pinned_vcenter_is_trusted_by_its_thumbprint_only() {
    let peer = Peer::start(&[]);
    let sha1 = peer.info["thumbprint_sha1"].as_str().unwrap().to_string();
    let sha256 = peer.info["thumbprint_sha256"].as_str().unwrap().to_string();
    let base = json!({"url": peer.url(), "username": "admin", "password": "s3cret-pass"});
    let with = |extra: serde_json::Value| {
        let mut c = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c.to_string()
    };
    // Without a CA or a pin the certificate is not trusted (what the pin changes).
    let e = Client::new("vsphere", &base.to_string()).err().unwrap();
    assert!(e.to_string().contains("not trusted"), "{e}");

    for tp in [sha1.clone(), sha256.to_lowercase()] {
        let (r, _out) = export_vm(&with(json!({ "thumbprint": tp })));
        assert_eq!(r.status, "done", "{tp}: {}", r.to_json());
    }

    let wrong = ["0F"; 32].join(":");
    let e = Client::new(
        "vsphere",
        &with(json!({"thumbprint": wrong, "ca_bundle_path": peer.ca_file()})),
    )
    .err()
    .unwrap();
    assert_eq!(e.kind(), ErrorKind::Remote, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("does not match the configured thumbprint")
            && msg.contains(&sha1)
            && msg.contains(&sha256),
        "{msg}"
    );

    for bad in [
        json!({"thumbprint": "AB:CD"}),
        json!({"thumbprint": sha1, "insecure_skip_verify": true}),
    ] {
        let e = Client::new("vsphere", &with(bad.clone())).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}: {e}");
        assert!(e.to_string().contains("thumbprint"), "{bad}: {e}");
    }
}
