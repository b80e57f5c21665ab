//! Azure credentials against the Entra ID stand-in: a service principal's certificate (PEM),
//! signed into a client assertion that the stand-in checks as Entra ID does (registered
//! thumbprint, RS256 signature, audience, issuer, lifetime).
#![cfg(feature = "azure")]

mod support;

use std::path::Path;
use std::process::Command;

use hypersdk::{Client, ErrorKind};
use serde_json::json;
use support::azure::azure;

/// A self-signed certificate and its key, `openssl req` as `az ad sp create-for-rbac
/// --create-cert` makes them; returns (certificate PEM, certificate + key PEM path).
fn certificate(dir: &Path, name: &str, extra: &[&str]) -> (String, std::path::PathBuf) {
    let (key, crt) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.crt")),
    );
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-days",
            "2",
            "-subj",
            "/CN=hypersdk-test",
        ])
        .args(extra)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl")
        .status
        .success();
    assert!(ok, "openssl req failed");
    let crt_pem = std::fs::read_to_string(&crt).unwrap();
    let both = dir.join(format!("{name}.pem"));
    std::fs::write(
        &both,
        format!("{crt_pem}{}", std::fs::read_to_string(&key).unwrap()),
    )
    .unwrap();
    (crt_pem, both)
}

fn config(path: &Path) -> String {
    let mut c: serde_json::Value = serde_json::from_str(&azure().config()).unwrap();
    let m = c.as_object_mut().unwrap();
    m.remove("client_secret");
    m.insert(
        "client_certificate_path".into(),
        path.to_str().unwrap().into(),
    );
    c.to_string()
}

/// The registered certificate gets a token and lists disks; another certificate (not
/// registered: a wrong thumbprint) and a stale file are authentication errors that carry no
/// key material; an encrypted key and a file with no key are named before any request.
#[test]
fn a_client_certificate_signs_the_assertion_entra_id_checks() {
    let az = azure();
    let dir = tempfile::tempdir().unwrap();
    let (trusted, pem) = certificate(dir.path(), "app", &["-nodes"]);
    az.trust_certificate(&trusted);
    let before = az.stats()["certificate_tokens_issued"]
        .as_u64()
        .unwrap_or(0);
    let listed = Client::new("azure", &config(&pem))
        .unwrap()
        .list_sources(&json!({"kind": "disk"}).to_string());
    assert!(listed.is_ok(), "{listed:?}");
    assert!(az.stats()["certificate_tokens_issued"].as_u64().unwrap() > before);

    let (_, other) = certificate(dir.path(), "other", &["-nodes"]);
    let e = Client::new("azure", &config(&other))
        .unwrap()
        .list_sources("")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    let text = e.to_string();
    assert!(text.contains("AADSTS700027"), "{text}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");

    // Also chosen by name, with the chain sent (x5c) for subject-name/issuer trust.
    let mut c: serde_json::Value = serde_json::from_str(&config(&pem)).unwrap();
    c["credential"] = "client_certificate".into();
    c["send_certificate_chain"] = true.into();
    assert!(
        Client::new("azure", &c.to_string())
            .unwrap()
            .list_sources("")
            .is_ok()
    );

    let (_, locked) = certificate(dir.path(), "locked", &["-passout", "pass:pw"]);
    let e = Client::new("azure", &config(&locked))
        .err()
        .expect("an encrypted key");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("encrypted"), "{e}");
    let cert_only = dir.path().join("cert-only.pem");
    std::fs::write(&cert_only, &trusted).unwrap();
    let e = Client::new("azure", &config(&cert_only))
        .err()
        .expect("no key");
    assert!(e.to_string().contains("no private key"), "{e}");
    let e = Client::new("azure", &config(&dir.path().join("missing.pem")))
        .err()
        .expect("no file");
    assert!(e.to_string().contains("missing.pem"), "{e}");
}
