//! A bucket in another region than the one configured: S3 answers `301 PermanentRedirect` with
//! the bucket's region in `x-amz-bucket-region` (S3 API reference, HeadBucket and "Making
//! requests"; botocore's S3RegionRedirector follows it). The request is sent again to that
//! region's endpoint (or the configured endpoint), signed for that region, and what follows
//! (the next pages, the downloader's ranged GETs) goes there too.

use std::sync::Arc;

use reqwest::Method;
use url::Url;

use super::api::{Answer, Api, S3Urls};
use super::endpoints;
use crate::error::Result;

impl Api {
    /// The same client for a bucket in `region`.
    pub(crate) fn in_region(&self, region: &str) -> Api {
        Api {
            client: self.client.clone(),
            signer: Arc::new(self.signer.in_region(region)),
            ec2: self.ec2.clone(),
            ebs: self.ebs.clone(),
            s3: S3Urls {
                base: if self.s3.configured {
                    self.s3.base.clone()
                } else {
                    endpoints::default_endpoint("s3", region)
                },
                path_style: self.s3.path_style,
                configured: self.s3.configured,
            },
        }
    }

    /// One S3 call that follows a 301 to the bucket's region once: the answer, and the client
    /// for that region when it moved (use it for what follows).
    pub(crate) async fn s3_followed(
        &self,
        what: &str,
        method: Method,
        url_of: &(dyn Fn(&Api) -> Result<Url> + Sync),
        headers: &[(&str, &str)],
    ) -> Result<(Answer, Option<Api>)> {
        let a = self
            .s3(what, method.clone(), url_of(self)?, headers)
            .await?;
        let Some(region) = bucket_region(&a).filter(|r| r != self.signer.region()) else {
            return Ok((a, None));
        };
        tracing::info!("{what}: the bucket is in {region}, asking there");
        let there = self.in_region(&region);
        let b = there.s3(what, method, url_of(&there)?, headers).await?;
        Ok((b, Some(there)))
    }
}

/// The region a `301` names, if it is a region name (it goes into a host name).
fn bucket_region(a: &Answer) -> Option<String> {
    if a.status.as_u16() != 301 {
        return None;
    }
    let r = a.header("x-amz-bucket-region")?.trim();
    let ok = !r.is_empty()
        && r.len() <= 64
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ok.then(|| r.to_string())
}
