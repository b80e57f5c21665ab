//! S3: where an object lives (its URL, encoded for SigV4), what it is (HeadObject: size and the
//! full-object checksum), and the source the downloader fetches with signed ranged GETs.

use std::sync::Arc;

use url::Url;

use super::sdk_error::{sdk_error, status_of};
use super::sign::S3Signer;
use crate::error::{Error, Result};
use crate::paths::sanitize_file_name;
use crate::transfer::{Checksum, FileSource, HttpSource};

/// Checks a bucket name against S3's rules before it goes into a URL or a host name: 3–63
/// characters of lowercase letters, digits, dots and hyphens, starting and ending with a letter
/// or digit, no `..`, not an IP address.
pub(crate) fn validate_bucket(name: &str) -> Result<()> {
    let ok = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !name.contains("..")
        && !name.contains(".-")
        && !name.contains("-.")
        && name.parse::<std::net::Ipv4Addr>().is_err();
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{name:?} is not a valid S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)"
        )))
    }
}

/// Builds object URLs: the base endpoint and whether buckets are addressed by path.
#[derive(Clone)]
pub(crate) struct S3Urls {
    pub base: Url,
    pub path_style: bool,
}

impl S3Urls {
    /// The URL of an object, its key encoded the way SigV4 for S3 expects (RFC 3986 unreserved
    /// characters and `/` kept, every other byte %-encoded).
    pub fn object_url(&self, bucket: &str, key: &str) -> Result<Url> {
        let mut enc = String::new();
        for b in key.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
                enc.push(b as char);
            } else {
                enc.push_str(&format!("%{b:02X}"));
            }
        }
        // A bucket name with dots cannot be a TLS-valid host label: address it by path.
        let text = if self.path_style || bucket.contains('.') {
            format!(
                "{}/{bucket}/{enc}",
                self.base.as_str().trim_end_matches('/')
            )
        } else {
            let host = self.base.host_str().unwrap_or("s3.amazonaws.com");
            let port = self
                .base
                .port()
                .map(|p| format!(":{p}"))
                .unwrap_or_default();
            format!("{}://{bucket}.{host}{port}/{enc}", self.base.scheme())
        };
        Url::parse(&text).map_err(|e| Error::InvalidArgument(format!("S3 object URL: {e}")))
    }
}

/// A clear error for a bucket that is missing or closed to us, before a task writes into it.
pub(crate) async fn check_bucket(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<()> {
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e) => match status_of(&e) {
            Some(404) => Err(Error::NotFound(format!(
                "S3 bucket {bucket:?} does not exist"
            ))),
            Some(403) => Err(Error::Auth(format!("S3 bucket {bucket:?}: access denied"))),
            _ => Err(sdk_error(&format!("S3 HeadBucket {bucket}"), e)),
        },
    }
}

/// What the downloader needs to fetch `s3://bucket/key`: its URL, signer, size and checksum.
pub(crate) struct ObjectSource<'a> {
    pub s3: &'a aws_sdk_s3::Client,
    pub http: &'a reqwest::Client,
    pub urls: &'a S3Urls,
    pub signer: &'a Arc<S3Signer>,
}

impl ObjectSource<'_> {
    pub async fn file_source(
        &self,
        bucket: &str,
        key: &str,
        file_name: Option<&str>,
    ) -> Result<FileSource> {
        let head = self
            .s3
            .head_object()
            .bucket(bucket)
            .key(key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| {
                if status_of(&e) == Some(404) {
                    Error::NotFound(format!("s3://{bucket}/{key} does not exist"))
                } else {
                    sdk_error(&format!("S3 HeadObject s3://{bucket}/{key}"), e)
                }
            })?;
        // A full-object checksum is verified; composite (multipart "-N") ones are not
        // whole-file digests.
        let full = head
            .checksum_type()
            .is_none_or(|t| t.as_str() == "FULL_OBJECT");
        let checksum = if !full {
            None
        } else if let Some(s) = head.checksum_sha256().filter(|s| !s.contains('-')) {
            Some(Checksum::parse("sha256", s)?)
        } else if let Some(c) = head.checksum_crc32_c().filter(|s| !s.contains('-')) {
            Some(Checksum::parse("crc32c", c)?)
        } else {
            None
        };
        let name = match file_name {
            Some(n) => n.to_string(),
            None => sanitize_file_name(key.rsplit('/').next().unwrap_or(key), "export.img"),
        };
        let mut src = FileSource::http(
            name,
            HttpSource {
                client: self.http.clone(),
                url: self.urls.object_url(bucket, key)?,
                headers: Default::default(),
                signer: Some(self.signer.clone()),
                range_md5: false,
            },
        );
        src.size_hint = head.content_length().and_then(|l| u64::try_from(l).ok());
        src.expected_size = src.size_hint;
        src.checksum = checksum;
        Ok(src)
    }
}

pub(crate) async fn delete_object(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<()> {
    s3.delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| sdk_error(&format!("S3 DeleteObject s3://{bucket}/{key}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for good in ["exports", "my.exports-2", "a1b"] {
            validate_bucket(good).unwrap();
        }
        for bad in [
            "ab",
            "Exports",
            "under_score",
            "evil.com/x?y",
            "a..b",
            "-start",
            "end.",
            "192.168.1.1",
            "host:443",
            &"a".repeat(64),
        ] {
            assert!(validate_bucket(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn object_urls_are_encoded_for_sigv4() {
        let u = S3Urls {
            base: Url::parse("http://127.0.0.1:9000").unwrap(),
            path_style: true,
        };
        assert_eq!(
            u.object_url("b", "vms/export-i-1 x+y.vmdk")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9000/b/vms/export-i-1%20x%2By.vmdk"
        );
        let u = S3Urls {
            base: Url::parse("https://s3.eu-west-1.amazonaws.com").unwrap(),
            path_style: false,
        };
        assert_eq!(
            u.object_url("bk", "a/b.vmdk").unwrap().as_str(),
            "https://bk.s3.eu-west-1.amazonaws.com/a/b.vmdk"
        );
        assert_eq!(
            u.object_url("b.k", "x").unwrap().as_str(),
            "https://s3.eu-west-1.amazonaws.com/b.k/x"
        );
    }
}
