//! S3: buckets (GetBucketLocation, ListObjectsV2), what an object is (HeadObject: size and the
//! full-object checksum), the source the downloader fetches with signed ranged GETs, and
//! DeleteObject.

use reqwest::{Method, StatusCode};

use super::api::{Api, api_error};
use crate::error::{Error, Result};
use crate::paths::sanitize_file_name;
use crate::providers::kit::paging::Pages;
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

/// A clear error for a bucket that is missing or closed to us, before a task writes into it.
/// `GetBucketLocation` (`GET /?location`), not `HeadBucket`: HeadBucket needs `s3:ListBucket`,
/// which AWS's documented VM Import/Export user policy does not grant, while
/// `s3:GetBucketLocation` is in it. Its error has a body, so the code says what is wrong.
pub(crate) async fn check_bucket(api: &Api, bucket: &str) -> Result<()> {
    let what = format!("S3 GetBucketLocation {bucket}");
    let (a, _) = api
        .s3_followed(
            &what,
            Method::GET,
            &|api| api.s3.url(bucket, None, &[("location", "")]),
            &[],
        )
        .await?;
    match a.status.as_u16() {
        200..=299 => Ok(()),
        404 => Err(Error::NotFound(format!(
            "S3 bucket {bucket:?} does not exist"
        ))),
        _ => Err(api_error(&what, &a)),
    }
}

/// The error of a HEAD that failed without a body: asked again as a GET of (at most) one
/// byte, whose error body carries S3's code (`InvalidToken`, `ExpiredToken`,
/// `AccessDenied`, …), so a credential problem is `Auth` and not a bare "HTTP 400".
async fn explain_head(
    api: &Api,
    what: &str,
    head: &super::api::Answer,
    get: url::Url,
    headers: &[(&str, &str)],
) -> Error {
    if !head.body.is_empty() || !head.status.is_client_error() {
        return api_error(what, head);
    }
    match api.s3(what, Method::GET, get, headers).await {
        Ok(a) if !a.status.is_success() && !a.body.is_empty() => api_error(what, &a),
        _ => api_error(what, head),
    }
}

/// One object of a listing.
pub(crate) struct Listed {
    pub key: String,
    pub size: Option<u64>,
}

/// Every object under `prefix` (ListObjectsV2, page after page). Keys are asked for
/// URL-encoded (`encoding-type=url`, as botocore always asks): XML 1.0 cannot carry every
/// character a key may hold, and a reader normalizes a carriage return to a line feed.
pub(crate) async fn list_objects(api: &Api, bucket: &str, prefix: &str) -> Result<Vec<Listed>> {
    let what = format!("S3 ListObjectsV2 {bucket}");
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = Pages::new(what.clone());
    // The bucket's region once S3 named another one.
    let mut moved: Option<Api> = None;
    loop {
        let mut query = vec![
            ("list-type", "2"),
            ("prefix", prefix),
            ("encoding-type", "url"),
        ];
        if let Some(t) = &token {
            query.push(("continuation-token", t));
        }
        let here = moved.as_ref().unwrap_or(api);
        let url_of = |api: &Api| api.s3.url(bucket, None, &query);
        let call = here.s3_followed(&what, Method::GET, &url_of, &[]);
        let (a, there) = tokio::time::timeout(pages.remaining(), call)
            .await
            .map_err(|_| Error::Timeout(format!("{what}: still paging at its deadline")))??;
        if there.is_some() {
            moved = there;
        }
        if !a.status.is_success() {
            return Err(api_error(&what, &a));
        }
        let text = std::str::from_utf8(&a.body)
            .map_err(|_| Error::Remote(format!("{what}: the answer is not UTF-8")))?;
        let root = crate::providers::xml::parse(text)?;
        pages.page(root.children_named("Contents").count(), a.body.len() as u64)?;
        for c in root.children_named("Contents") {
            let Some(key) = c.child_text("Key") else {
                continue;
            };
            let encoded = root.child_text("EncodingType").map(str::trim) == Some("url");
            out.push(Listed {
                key: if encoded {
                    url_decode(key)
                } else {
                    key.to_string()
                },
                size: c.child_text("Size").and_then(|s| s.trim().parse().ok()),
            });
        }
        let truncated = root.child_text("IsTruncated").map(str::trim) == Some("true");
        let next = root
            .child_text("NextContinuationToken")
            .map(str::trim)
            .filter(|t| !t.is_empty());
        match next {
            Some(t) if truncated => {
                pages.next(t)?;
                token = Some(t.to_string());
            }
            _ => return Ok(out),
        }
    }
}

/// A key of a listing asked with `encoding-type=url`: percent-decoded, `+` a space (S3's
/// encoding; botocore decodes it with `unquote_plus`).
fn url_decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

/// What the downloader needs to fetch `s3://bucket/key`: its URL, signer, size and checksum.
pub(crate) async fn file_source(
    api: &Api,
    bucket: &str,
    key: &str,
    file_name: Option<&str>,
) -> Result<FileSource> {
    let what = format!("S3 HeadObject s3://{bucket}/{key}");
    let (first, moved) = api
        .s3_followed(
            &what,
            Method::HEAD,
            &|api| api.s3.object_url(bucket, key),
            &[("x-amz-checksum-mode", "ENABLED")],
        )
        .await?;
    // The bucket's region from here on (the downloader's GETs too) if S3 named another one.
    let api = moved.as_ref().unwrap_or(api);
    let url = api.s3.object_url(bucket, key)?;
    let head = |checksum_mode: bool| {
        let headers: &[(&str, &str)] = if checksum_mode {
            &[("x-amz-checksum-mode", "ENABLED")]
        } else {
            &[]
        };
        api.s3(&what, Method::HEAD, url.clone(), headers)
    };
    let mut head_answer = first;
    if head_answer.status == StatusCode::FORBIDDEN {
        // Checksum mode on an SSE-KMS object needs kms:Decrypt on its key (HeadObject's
        // ChecksumMode, botocore s3 service-2.json), which a user allowed to read the object
        // may lack: ask again without it and verify what is left (the size).
        let plain = head(false).await?;
        if plain.status.is_success() {
            tracing::info!(
                "{what}: no checksum (checksum mode needs kms:Decrypt on the object's key); only the size is verified"
            );
            head_answer = plain;
        }
    }
    let head = head_answer;
    if head.status == StatusCode::NOT_FOUND {
        return Err(Error::NotFound(format!(
            "s3://{bucket}/{key} does not exist"
        )));
    }
    if !head.status.is_success() {
        return Err(explain_head(api, &what, &head, url.clone(), &[("range", "bytes=0-0")]).await);
    }
    let checksum = full_object_checksum(&head)?;
    let name = match file_name {
        Some(n) => n.to_string(),
        None => sanitize_file_name(key.rsplit('/').next().unwrap_or(key), "export.img"),
    };
    let mut src = FileSource::http(
        name,
        HttpSource {
            client: api.client.http.clone(),
            url,
            headers: Default::default(),
            signer: Some(api.signer.clone()),
            hooks: Default::default(),
        },
    );
    // HEAD has no body: the size is the header's, not the (empty) body's.
    src.size_hint = head
        .header("content-length")
        .and_then(|l| l.trim().parse().ok());
    src.expected_size = src.size_hint;
    src.checksum = checksum;
    Ok(src)
}

/// The object's stored full-object checksum, strongest first: SHA-256, CRC-64/NVME (what S3
/// adds to new objects by default), CRC-32C. Composite (multipart `-N`) ones are not
/// whole-file digests and are skipped.
fn full_object_checksum(head: &super::api::Answer) -> Result<Option<Checksum>> {
    let full = head
        .header("x-amz-checksum-type")
        .is_none_or(|t| t == "FULL_OBJECT");
    if !full {
        return Ok(None);
    }
    for (header, algorithm) in [
        ("x-amz-checksum-sha256", "sha256"),
        ("x-amz-checksum-crc64nvme", "crc64nvme"),
        ("x-amz-checksum-crc32c", "crc32c"),
    ] {
        if let Some(v) = head.header(header).filter(|s| !s.contains('-')) {
            return Checksum::parse(algorithm, v).map(Some);
        }
    }
    Ok(None)
}

pub(crate) async fn delete_object(api: &Api, bucket: &str, key: &str) -> Result<()> {
    let what = format!("S3 DeleteObject s3://{bucket}/{key}");
    let (a, _) = api
        .s3_followed(
            &what,
            Method::DELETE,
            &|api| api.s3.object_url(bucket, key),
            &[],
        )
        .await?;
    if a.status.is_success() {
        Ok(())
    } else {
        Err(api_error(&what, &a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_keys_are_url_decoded() {
        assert_eq!(url_decode("a+b%2Bc%0D%01%2F%20"), "a b+c\r\u{1}/ ");
    }

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
}
