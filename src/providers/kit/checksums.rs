//! The whole-object checksums clouds volunteer in their answers' headers, read for the
//! downloader through a source's hooks (`transfer::SourceHooks`): the downloader knows no
//! cloud's header names, the provider that made the source does.

use reqwest::header::HeaderMap;

use crate::transfer::Checksum;

/// Cloud Storage's `x-goog-hash: crc32c=…,md5=…` (the CRC32C, which every object has).
pub(crate) fn goog_hash(h: &HeaderMap) -> Option<Checksum> {
    for v in h.get_all("x-goog-hash") {
        for part in v.to_str().ok()?.split(',') {
            if let Some(c) = part.trim().strip_prefix("crc32c=") {
                return Checksum::parse("crc32c", c).ok();
            }
        }
    }
    None
}

/// Azure Blob's stored MD5 (`x-ms-blob-content-md5`, set on upload; absent for most disks).
pub(crate) fn ms_blob_md5(h: &HeaderMap) -> Option<Checksum> {
    let md5 = h.get("x-ms-blob-content-md5")?.to_str().ok()?;
    Checksum::parse("md5", md5).ok()
}

/// Any of the above: for a plain URL (a pre-signed GCS link, a blob SAS) whose cloud the
/// `http` provider cannot know. A page blob's stored MD5 is skipped: Put Page never updates it,
/// so on a disk in use it is stale.
pub(crate) fn any_cloud(h: &HeaderMap) -> Option<Checksum> {
    let page_blob = h
        .get("x-ms-blob-type")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"PageBlob"));
    goog_hash(h).or_else(|| if page_blob { None } else { ms_blob_md5(h) })
}

/// Azure Blob's header that asks for each range's `Content-MD5`.
pub(crate) const MS_RANGE_MD5: &str = "x-ms-range-get-content-md5";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_clouds_header() {
        let mut h = HeaderMap::new();
        h.append(
            "x-goog-hash",
            "md5=XrY7u+Ae7tCTyyK7j1rNww==".parse().unwrap(),
        );
        h.append("x-goog-hash", "crc32c=n03x6A==".parse().unwrap());
        assert_eq!(goog_hash(&h).unwrap().algorithm(), "crc32c");
        assert!(ms_blob_md5(&h).is_none());
        let mut m = HeaderMap::new();
        m.insert(
            "x-ms-blob-content-md5",
            "XrY7u+Ae7tCTyyK7j1rNww==".parse().unwrap(),
        );
        assert_eq!(ms_blob_md5(&m).unwrap().algorithm(), "md5");
        assert_eq!(any_cloud(&m).unwrap().algorithm(), "md5");
        assert!(any_cloud(&HeaderMap::new()).is_none());
        m.insert("x-ms-blob-type", "PageBlob".parse().unwrap());
        assert!(any_cloud(&m).is_none(), "a page blob's stale MD5 was read");
    }
}
