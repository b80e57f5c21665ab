//! SigV4 for the downloader's ranged S3 GETs: each request is signed as it leaves, with
//! credentials from the SDK's provider chain (cached until shortly before they expire).

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

pub(crate) struct S3Signer {
    provider: SharedCredentialsProvider,
    region: String,
    cached: Mutex<Option<Credentials>>,
}

impl std::fmt::Debug for S3Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Signer")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl S3Signer {
    pub(crate) fn new(provider: SharedCredentialsProvider, region: String) -> Self {
        S3Signer {
            provider,
            region,
            cached: Mutex::new(None),
        }
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
}

impl RequestSigner for S3Signer {
    fn sign<'a>(&'a self, req: &'a mut reqwest::Request) -> crate::BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let identity: Identity = self.credentials().await?.into();
            let mut settings = SigningSettings::default();
            // S3's rules: the path is signed as sent, once encoded, not normalized, and the
            // payload hash travels in x-amz-content-sha256.
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            let params = v4::SigningParams::builder()
                .identity(&identity)
                .region(&self.region)
                .name("s3")
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
                SignableBody::UnsignedPayload,
            )
            .map_err(|e| Error::Internal(format!("SigV4 request: {e}")))?;
            let (instructions, _) = sign(signable, &params)
                .map_err(|e| Error::Internal(format!("SigV4 signing: {e}")))?
                .into_parts();
            let (new_headers, _) = instructions.into_parts();
            for h in new_headers {
                let mut v = reqwest::header::HeaderValue::from_str(h.value()).map_err(|_| {
                    Error::Internal("SigV4 produced a header that is not valid".into())
                })?;
                v.set_sensitive(h.sensitive());
                let name =
                    reqwest::header::HeaderName::from_bytes(h.name().as_bytes()).map_err(|_| {
                        Error::Internal("SigV4 produced a header name that is not valid".into())
                    })?;
                req.headers_mut().insert(name, v);
            }
            Ok(())
        })
    }
}
