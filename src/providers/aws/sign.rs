//! SigV4 for every request the provider sends: EC2 Query calls (the form body is signed) and S3
//! calls, including the downloader's ranged GETs (S3's rules: unsigned payload, path signed as
//! sent). Credentials come from aws-config's provider chain, cached until shortly before they
//! expire.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials as _, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::error::{Error, Result};
use crate::sync::lock;
use crate::transfer::RequestSigner;

pub(crate) struct Signer {
    provider: SharedCredentialsProvider,
    region: String,
    cached: Mutex<Option<Credentials>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub(crate) fn new(provider: SharedCredentialsProvider, region: String) -> Self {
        Signer {
            provider,
            region,
            cached: Mutex::new(None),
        }
    }

    /// The region requests are signed for.
    pub(crate) fn region(&self) -> &str {
        &self.region
    }

    /// A signer of the same credentials for another region (a bucket elsewhere).
    pub(crate) fn in_region(&self, region: &str) -> Signer {
        Signer::new(self.provider.clone(), region.to_string())
    }

    async fn credentials(&self) -> Result<Credentials> {
        if let Some(c) = lock(&self.cached).clone() {
            let fresh = c
                .expiry()
                .is_none_or(|e| e > SystemTime::now() + Duration::from_secs(300));
            if fresh {
                return Ok(c);
            }
        }
        let c = self
            .provider
            .provide_credentials()
            .await
            .map_err(|e| Error::Auth(format!("no AWS credentials: {e}")))?;
        *lock(&self.cached) = Some(c.clone());
        Ok(c)
    }

    /// Signs an EC2 Query request: its form body is part of the signature.
    pub(crate) async fn sign_ec2(&self, req: &mut reqwest::Request) -> Result<()> {
        let body = req
            .body()
            .and_then(|b| b.as_bytes())
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        self.sign(
            req,
            "ec2",
            SigningSettings::default(),
            SignableBody::Bytes(&body),
        )
        .await
    }

    /// Signs an S3 request the way S3 wants it: the path signed as sent (encoded once, not
    /// normalized), the payload unsigned and its hash header present.
    pub(crate) async fn sign_s3(&self, req: &mut reqwest::Request) -> Result<()> {
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        self.sign(req, "s3", settings, SignableBody::UnsignedPayload)
            .await
    }

    /// Signs an EBS direct API request (REST, `GET` with an empty body; service `ebs`).
    pub(crate) async fn sign_ebs(&self, req: &mut reqwest::Request) -> Result<()> {
        self.sign(
            req,
            "ebs",
            SigningSettings::default(),
            SignableBody::Bytes(&[]),
        )
        .await
    }

    async fn sign(
        &self,
        req: &mut reqwest::Request,
        service: &str,
        settings: SigningSettings,
        body: SignableBody<'_>,
    ) -> Result<()> {
        let identity: Identity = self.credentials().await?.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| Error::Internal(format!("SigV4 parameters: {e}")))?
            .into();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                v.to_str()
                    .ok()
                    .map(|v| (k.as_str().to_string(), v.to_string()))
            })
            .collect();
        let url = req.url().to_string();
        let signable = SignableRequest::new(
            req.method().as_str(),
            &url,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            body,
        )
        .map_err(|e| Error::Internal(format!("SigV4 request: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| Error::Internal(format!("SigV4 signing: {e}")))?
            .into_parts();
        let (new_headers, _) = instructions.into_parts();
        for h in new_headers {
            let mut v = reqwest::header::HeaderValue::from_str(h.value())
                .map_err(|_| Error::Internal("SigV4 produced a header that is not valid".into()))?;
            v.set_sensitive(h.sensitive());
            let name =
                reqwest::header::HeaderName::from_bytes(h.name().as_bytes()).map_err(|_| {
                    Error::Internal("SigV4 produced a header name that is not valid".into())
                })?;
            req.headers_mut().insert(name, v);
        }
        Ok(())
    }
}

/// The downloader fetches only S3 objects with this signer.
impl RequestSigner for Signer {
    fn sign<'a>(&'a self, req: &'a mut reqwest::Request) -> crate::BoxFuture<'a, Result<()>> {
        Box::pin(self.sign_s3(req))
    }
}
