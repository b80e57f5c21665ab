//! A service principal's certificate as an Entra ID client assertion: the JWT that Microsoft's
//! libraries sign (header `alg` RS256, `x5t` the certificate's SHA-1 thumbprint, optionally
//! `x5c` the chain; claims `aud` the token endpoint, `iss` = `sub` the client id, `jti`, `nbf`,
//! `exp`; see "Microsoft identity platform certificate credentials", assertion format), handed
//! to azure_identity's `ClientAssertionCredential`, which makes the token request. The
//! signature is rustls' aws-lc RSA key: azure_identity's own `ClientCertificateCredential`
//! needs OpenSSL, which this library does not link.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use azure_core::http::ClientMethodOptions;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::SigningKey;
use sha1::Digest as _;

use crate::error::{Error, Result};

/// How long one assertion is valid (MSAL's default: 10 minutes).
const LIFETIME_SECS: u64 = 600;

pub(super) struct CertificateAssertion {
    key: Arc<dyn SigningKey>,
    /// base64url of the leaf certificate's SHA-1.
    x5t: String,
    /// The chain, leaf first, standard base64 of each DER, when it is sent.
    x5c: Option<Vec<String>>,
    /// `https://{authority}/{tenant}/oauth2/v2.0/token`: the assertion's audience.
    audience: String,
    client_id: String,
}

impl std::fmt::Debug for CertificateAssertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("CertificateAssertion")
            .field("x5t", &self.x5t)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl CertificateAssertion {
    /// Reads `path` (PEM: the certificate, then any chain, and the RSA private key, PKCS#8 or
    /// PKCS#1, unencrypted). Errors name the file and what is missing, never key material.
    pub(super) fn load(
        path: &std::path::Path,
        authority: &url::Url,
        tenant: &str,
        client_id: &str,
        send_chain: bool,
    ) -> Result<CertificateAssertion> {
        let bad = |m: &str| {
            Error::InvalidArgument(format!(
                "azure client_certificate_path {}: {m}",
                path.display()
            ))
        };
        let pem = std::fs::read(path).map_err(|e| bad(&e.to_string()))?;
        if pem.windows(9).any(|w| w == b"ENCRYPTED") {
            return Err(bad(
                "the private key is encrypted; give a PEM with an unencrypted key (openssl pkey -in key.pem -out plain.pem)",
            ));
        }
        if !pem.starts_with(b"-----") && !pem.windows(11).any(|w| w == b"-----BEGIN ") {
            return Err(bad(
                "not PEM (a .pfx/.p12 converts with: openssl pkcs12 -in cert.pfx -out cert.pem -nodes)",
            ));
        }
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| bad(&format!("unreadable certificate: {e}")))?;
        let leaf = certs.first().ok_or_else(|| bad("holds no certificate"))?;
        let key_der = PrivateKeyDer::from_pem_slice(&pem)
            .map_err(|_| bad("holds no private key (PKCS#8 or PKCS#1 RSA)"))?;
        let key = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key_der)
            .map_err(|e| bad(&format!("the private key cannot sign: {e}")))?;
        if key.algorithm() != rustls::SignatureAlgorithm::RSA {
            return Err(bad("Entra ID certificate credentials take an RSA key"));
        }
        let audience = authority
            .join(&format!("/{tenant}/oauth2/v2.0/token"))
            .map_err(|e| bad(&format!("token endpoint: {e}")))?
            .to_string();
        Ok(CertificateAssertion {
            key,
            x5t: URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(leaf.as_ref())),
            x5c: send_chain.then(|| certs.iter().map(|c| STANDARD.encode(c.as_ref())).collect()),
            audience,
            client_id: client_id.to_string(),
        })
    }

    /// A fresh signed assertion.
    fn sign(&self, now: u64) -> Result<String> {
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t": self.x5t});
        if let Some(chain) = &self.x5c {
            header["x5c"] = chain.clone().into();
        }
        let claims = serde_json::json!({
            "aud": self.audience,
            "iss": self.client_id,
            "sub": self.client_id,
            "jti": hex::encode(rand::random::<[u8; 16]>()),
            "nbf": now,
            "exp": now + LIFETIME_SECS,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signer = self
            .key
            .choose_scheme(&[rustls::SignatureScheme::RSA_PKCS1_SHA256])
            .ok_or_else(|| Error::InvalidArgument("azure certificate: no RS256 signer".into()))?;
        let sig = signer
            .sign(input.as_bytes())
            .map_err(|e| Error::Internal(format!("azure certificate: signing failed: {e}")))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

#[async_trait::async_trait]
impl azure_identity::ClientAssertion for CertificateAssertion {
    async fn secret(
        &self,
        _options: Option<ClientMethodOptions<'_>>,
    ) -> azure_core::Result<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.sign(now).map_err(|e| {
            azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, e.to_string())
        })
    }
}
