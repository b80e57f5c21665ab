//! Certificate thumbprints: the vCenter pinned by the `thumbprint` config key, and each ESXi
//! host trusted by the `sslThumbprint` its export lease gives for its device URLs.
//!
//! As govmomi does (vim25/soap/client.go `SetThumbprint`, `dialTLSContext`; nfc/lease.go sets the
//! lease's thumbprint for each device URL's host): a device host's certificate is first verified
//! as usual (the platform's roots and the configured CA bundle), and only when that fails for
//! lack of trust is its leaf certificate's fingerprint compared with the lease's, whatever signed
//! it. A pinned vCenter is stricter than govc's known-hosts file: its fingerprint must match,
//! CA or not, and a mismatch is an error that shows the server's own fingerprints (as
//! `govc about.cert -thumbprint` would), never a fallback.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sha1::Digest as _;
use url::Url;

use crate::error::{Error, Result};
use crate::providers::kit::config::NetConfig;
use crate::providers::kit::net::{Redirects, builder, ca_pems};

/// A certificate fingerprint: SHA-1 (what leases and most vSphere tools give) or SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Thumbprint {
    Sha1([u8; 20]),
    Sha256([u8; 32]),
}

impl Thumbprint {
    /// govc's format (`AB:CD:…`, soap.ThumbprintSHA1/SHA256), in any case; the colons may be
    /// left out.
    pub fn parse(s: &str) -> Option<Thumbprint> {
        let hex: String = s.trim().chars().filter(|c| *c != ':').collect();
        let bytes = hex::decode(hex).ok()?;
        match bytes.len() {
            20 => Some(Thumbprint::Sha1(bytes.try_into().ok()?)),
            32 => Some(Thumbprint::Sha256(bytes.try_into().ok()?)),
            _ => None,
        }
    }

    fn matches(&self, cert: &[u8]) -> bool {
        match self {
            Thumbprint::Sha1(t) => sha1::Sha1::digest(cert).as_slice() == t,
            Thumbprint::Sha256(t) => sha2::Sha256::digest(cert).as_slice() == t,
        }
    }
}

/// `AB:CD:…` (govmomi's format).
fn colon_hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A certificate's two fingerprints, for an error message.
fn fingerprints(cert: &[u8]) -> String {
    format!(
        "SHA-1 {}, SHA-256 {}",
        colon_hex(&sha1::Sha1::digest(cert)),
        colon_hex(&sha2::Sha256::digest(cert))
    )
}

/// The host name a certificate is checked for, as a URL and a TLS server name both give it.
fn url_host(url: &Url) -> Option<String> {
    Some(match url.host()? {
        url::Host::Domain(d) => d.to_ascii_lowercase(),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => ip.to_string(),
    })
}

fn name_host(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(d) => d.as_ref().to_ascii_lowercase(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

/// The thumbprints a client trusts: the vCenter's pin and the hosts' from export leases.
#[derive(Debug, Default)]
pub(super) struct Pins {
    vcenter: Option<(String, Thumbprint)>,
    hosts: Mutex<HashMap<String, Thumbprint>>,
}

impl Pins {
    /// Trust `url`'s host by this lease thumbprint (the last lease's wins, as in govmomi). A
    /// thumbprint that cannot be read pins nothing: the host is then verified as usual.
    pub fn set_lease(&self, url: &Url, thumbprint: &str) {
        let (Some(host), Some(t)) = (url_host(url), Thumbprint::parse(thumbprint)) else {
            if !thumbprint.trim().is_empty() {
                tracing::warn!("the export lease gave an unreadable sslThumbprint; ignored");
            }
            return;
        };
        crate::sync::lock(&self.hosts).insert(host, t);
    }
}

#[derive(Debug)]
struct PinningVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    pins: Arc<Pins>,
}

/// Why a pinned certificate was refused (shown in the error, after rustls's own words).
#[derive(Debug)]
struct Mismatch(String);

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Mismatch {}

fn mismatch(msg: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        Mismatch(msg),
    ))))
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let host = name_host(server_name);
        let lease = crate::sync::lock(&self.pins.hosts).get(&host).cloned();
        if let Some((vc, pin)) = &self.pins.vcenter
            && *vc == host
        {
            if pin.matches(end_entity) || lease.is_some_and(|t| t.matches(end_entity)) {
                return Ok(ServerCertVerified::assertion());
            }
            return Err(mismatch(format!(
                "the certificate of {host} does not match the configured thumbprint; the server's is {} (check it out of band before pinning it)",
                fingerprints(end_entity)
            )));
        }
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(e)) => match lease {
                Some(t) if t.matches(end_entity) => Ok(ServerCertVerified::assertion()),
                Some(_) => Err(mismatch(format!(
                    "the certificate of ESXi host {host} matches neither a trusted CA nor the export lease's sslThumbprint; the host presented {}",
                    fingerprints(end_entity)
                ))),
                None => Err(rustls::Error::InvalidCertificate(e)),
            },
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The provider's HTTP client (SOAP and NFC) and the pins it trusts. With
/// `insecure_skip_verify` (and no thumbprint) it is the kit's client, which accepts anything.
pub(super) fn client(
    net: &NetConfig,
    vcenter: &Url,
    thumbprint: Option<&str>,
) -> Result<(reqwest::Client, Arc<Pins>)> {
    let pin = match thumbprint.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => Some(Thumbprint::parse(t).ok_or_else(|| {
            Error::InvalidArgument(
                "vsphere config: thumbprint must be a SHA-1 or SHA-256 fingerprint in hex, as govc prints it (AB:CD:…)".into(),
            )
        })?),
        None => None,
    };
    if net.insecure_skip_verify {
        if pin.is_some() {
            return Err(Error::InvalidArgument(
                "vsphere config: thumbprint and insecure_skip_verify exclude each other (a pinned vCenter is verified)".into(),
            ));
        }
        return Ok((net.client(Redirects::Never)?, Arc::default()));
    }
    let pins = Arc::new(Pins {
        vcenter: pin.map(|p| (url_host(vcenter).unwrap_or_default(), p)),
        hosts: Mutex::default(),
    });
    let mut roots = Vec::new();
    for pem in ca_pems(net.ca_bundle_pem.as_deref(), net.ca_bundle_path.as_deref())? {
        use rustls::pki_types::pem::PemObject as _;
        let before = roots.len();
        for c in CertificateDer::pem_slice_iter(&pem) {
            roots.push(
                c.map_err(|e| Error::InvalidArgument(format!("CA bundle is not valid PEM: {e}")))?,
            );
        }
        if roots.len() == before {
            return Err(Error::InvalidArgument(
                "CA bundle holds no certificate".into(),
            ));
        }
    }
    let b = builder(net.connect_timeout(), Redirects::Never);
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .ok_or_else(|| Error::Internal("no TLS crypto provider installed".into()))?;
    // The verification every other client does (reqwest's default with extra roots).
    let inner = rustls_platform_verifier::Verifier::new_with_extra_roots(roots, provider.clone())
        .map_err(|e| Error::InvalidArgument(format!("TLS roots: {e}")))?;
    let verifier = PinningVerifier {
        inner: Arc::new(inner),
        pins: pins.clone(),
    };
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let client = b
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| Error::InvalidArgument(format!("HTTP client: {e}")))?;
    Ok((client, pins))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_in_govcs_format() {
        let cert = b"not really a certificate";
        let s1 = colon_hex(&sha1::Sha1::digest(cert));
        let s256 = colon_hex(&sha2::Sha256::digest(cert));
        for s in [
            s1.clone(),
            s1.to_lowercase(),
            s1.replace(':', ""),
            s256.clone(),
            s256.to_lowercase(),
        ] {
            assert!(Thumbprint::parse(&s).unwrap().matches(cert), "{s}");
        }
        assert!(!Thumbprint::parse(&s1).unwrap().matches(b"other"));
        for bad in ["", "AB:CD", "ZZ", &s1[3..]] {
            assert!(Thumbprint::parse(bad).is_none(), "{bad}");
        }
    }
}
