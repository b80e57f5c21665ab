//! Get Page Ranges on the kit's client: which pages of a page blob were ever written, so only
//! those are downloaded (the rest reads as zeros and stays a hole).
//!
//! Why not `azure_storage_blob`'s pager: it follows `NextMarker` for ever when the service
//! repeats it, and reads each answer whole through azure_core with no size cap (a 512 MiB
//! answer took 1–2 GiB of memory). Here every page goes through [`ApiClient`] (the kit's retry
//! rule, a deadline per attempt, answers capped at [`MAX_ANSWER`]) and the listing through
//! [`Pages`] (a repeated marker, too many pages, ranges or bytes, or the overall deadline end
//! it with an error naming the blob).
//!
//! The contract (Get Page Ranges, Blob service REST API, version 2020-10-02 and later):
//! `GET {blob}?comp=pagelist[&marker=M]` with `x-ms-range: bytes=S-E` answers
//! `<PageList><PageRange><Start>S</Start><End>E</End></PageRange>…<NextMarker>M</NextMarker>
//! </PageList>`; `End` is inclusive, ranges are 512-byte aligned, and an empty or absent
//! `NextMarker` ends the listing. Bytes outside every `PageRange` are clear pages, which read as
//! zeros by definition.

use std::time::Duration;

use quick_xml::events::Event;
use url::Url;

use super::blob::BlobAuth;
use crate::BoxFuture;
use crate::error::{Error, Result};
use crate::providers::kit::paging::{Limits, Pages};
use crate::providers::kit::{Answer, ApiClient, Call, CodeClass, Dialect};
use crate::transfer::{RequestSigner, redact_url};

/// Largest answer read for one page of ranges. Azure ends a page well before this (a few
/// thousand ranges, ~60 bytes each); a larger answer is refused, not read.
pub(crate) const MAX_ANSWER: usize = 16 << 20;

/// Written ranges closer than this are fetched in one request, the clear bytes between them
/// with them: a request costs a round trip (tens of milliseconds to a cloud), 1 MiB at a
/// cloud connection's rate costs about as much, and a fragmented disk (a filesystem's metadata
/// every few hundred KiB) otherwise makes one small request per range. The clear bytes are
/// zeros by the service's definition, so the file's content is the same; the writer leaves
/// every aligned 64 KiB block of zeros a hole (`transfer::sparse`), so on disk a merged gap
/// costs at most the partial blocks at its two edges.
pub(crate) const MERGE_GAP: u64 = 1 << 20;

/// The written ranges of the page blob at `url` (`size` bytes), `[start, end)`, sorted, joined
/// and with small gaps merged (see [`MERGE_GAP`]); asked `segment` bytes at a time, each
/// segment paged by the service. `name` is the file, for errors.
pub(crate) async fn page_ranges(
    http: &reqwest::Client,
    url: &Url,
    auth: &BlobAuth,
    deadline: Duration,
    size: u64,
    segment: u64,
) -> Result<Vec<(u64, u64)>> {
    let (out, _) = listing(http, url, auth, deadline, size, segment, None).await?;
    Ok(coalesce(out, MERGE_GAP))
}

/// The pages of the snapshot at `url` that differ from the older snapshot `prev` of the same
/// managed disk (its SAS URL, sent as `x-ms-previous-snapshot-url`, version 2019-07-07 and
/// later, managed disks only): `(changed, cleared)`, `[start, end)`, sorted and joined (not
/// merged across gaps: the bytes between are unchanged, fetching them is waste).
pub(crate) async fn page_diff(
    http: &reqwest::Client,
    url: &Url,
    auth: &BlobAuth,
    deadline: Duration,
    size: u64,
    segment: u64,
    prev: &Url,
) -> Result<(Vec<(u64, u64)>, Vec<(u64, u64)>)> {
    let (changed, cleared) = listing(http, url, auth, deadline, size, segment, Some(prev)).await?;
    Ok((coalesce(changed, 0), coalesce(cleared, 0)))
}

/// Every page of a listing, segment by segment: the `PageRange`s and the `ClearRange`s.
async fn listing(
    http: &reqwest::Client,
    url: &Url,
    auth: &BlobAuth,
    deadline: Duration,
    size: u64,
    segment: u64,
    prev: Option<&Url>,
) -> Result<(Vec<(u64, u64)>, Vec<(u64, u64)>)> {
    let what = format!(
        "listing the page ranges of {}{}",
        redact_url(url),
        if prev.is_some() {
            " changed since the base snapshot"
        } else {
            ""
        }
    );
    let prev_header = match prev {
        Some(p) => {
            let mut v = reqwest::header::HeaderValue::from_str(p.as_str()).map_err(|_| {
                Error::Internal("the base snapshot's SAS URL is not a header value".into())
            })?;
            // A SAS: never logged.
            v.set_sensitive(true);
            Some(v)
        }
        None => None,
    };
    let client = ApiClient::new(http.clone(), deadline, MAX_ANSWER);
    let dialect = PageList(auth);
    let mut pages = Pages::with_limits(what.clone(), Limits::default());
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut clears: Vec<(u64, u64)> = Vec::new();
    let mut start = 0u64;
    while start < size {
        let len = segment.min(size - start);
        let range = format!("bytes={start}-{}", start + len - 1);
        let mut marker: Option<String> = None;
        loop {
            let mut u = url.clone();
            u.set_query(None);
            {
                let mut q = u.query_pairs_mut();
                q.append_pair("comp", "pagelist");
                if let Some(m) = &marker {
                    q.append_pair("marker", m);
                }
            }
            let a = tokio::time::timeout(
                pages.remaining(),
                client.call(&Call::read(&what), &dialect, &|| {
                    let r = http.get(u.clone()).header("x-ms-range", &range);
                    match &prev_header {
                        Some(p) => r.header("x-ms-previous-snapshot-url", p.clone()),
                        None => r,
                    }
                }),
            )
            .await
            .map_err(|_| Error::Timeout(format!("{what}: still paging at its deadline")))??;
            let page = parse(&a.body, &what)?;
            if prev.is_none() && !page.clears.is_empty() {
                return Err(Error::Remote(format!(
                    "{what}: the service listed cleared ranges, which only a diff has"
                )));
            }
            pages.page(page.ranges.len() + page.clears.len(), a.body.len() as u64)?;
            out.extend(within(page.ranges, size, &what)?);
            clears.extend(within(page.clears, size, &what)?);
            match page.next {
                Some(m) => {
                    // A marker is the listing's position: the same one twice (within this
                    // segment's listing) would never end.
                    pages.next(&format!("{start}:{m}"))?;
                    marker = Some(m);
                }
                None => break,
            }
        }
        start += len;
    }
    Ok((out, clears))
}

/// A page's ranges (`End` inclusive) as `[start, end)`, each inside the blob's `size` bytes: a
/// range past the blob is the service's error, named as such.
pub(super) fn within(ranges: Vec<(u64, u64)>, size: u64, what: &str) -> Result<Vec<(u64, u64)>> {
    ranges
        .into_iter()
        .map(|(a, b)| {
            if a > b || b >= size {
                Err(Error::Remote(format!(
                    "{what}: the service listed bytes {a}-{b}, outside the blob's {size} bytes"
                )))
            } else {
                Ok((a, b + 1))
            }
        })
        .collect()
}

/// Sorts `ranges`, joins those that overlap or touch, and merges those less than `gap` apart.
pub(crate) fn coalesce(mut ranges: Vec<(u64, u64)>, gap: u64) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(gap.saturating_sub(1)) => {
                last.1 = last.1.max(b)
            }
            _ => merged.push((a, b)),
        }
    }
    merged
}

/// One page of a Get Page Ranges answer: the written ranges (`End` inclusive) and the marker
/// of the next page.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Page {
    pub ranges: Vec<(u64, u64)>,
    /// `ClearRange`s: pages cleared since the previous snapshot (a diff's answer only).
    pub clears: Vec<(u64, u64)>,
    pub next: Option<String>,
}

/// Reads a `PageList` as it streams (no tree: a page may hold many thousand ranges).
pub(super) fn parse(body: &[u8], what: &str) -> Result<Page> {
    let bad = |why: String| Error::Remote(format!("{what}: the answer is not a page list ({why})"));
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut buf = Vec::new();
    let mut page = Page::default();
    // The element whose text is being read, and the range being built.
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut text = String::new();
    let (mut start, mut end): (Option<u64>, Option<u64>) = (None, None);
    let mut saw_root = false;
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| bad(e.to_string()))?;
        match ev {
            Event::Start(e) => {
                if path.len() >= 8 {
                    return Err(bad("nested too deep".into()));
                }
                let name = e.local_name().as_ref().to_vec();
                if path.is_empty() {
                    if name != b"PageList" {
                        return Err(bad("no PageList".into()));
                    }
                    saw_root = true;
                }
                path.push(name);
                text.clear();
            }
            Event::Empty(e) if path.is_empty() && e.local_name().as_ref() == b"PageList" => {
                saw_root = true;
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| bad(e.to_string()))?),
            Event::GeneralRef(r) => match r.resolve_char_ref().map_err(|e| bad(e.to_string()))? {
                Some(c) => text.push(c),
                None => {
                    let s = match r.decode().map_err(|e| bad(e.to_string()))?.as_ref() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        other => return Err(bad(format!("unknown entity &{other};"))),
                    };
                    text.push(s);
                }
            },
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                let parent = path.last().map(Vec::as_slice);
                let num = || {
                    text.trim()
                        .parse::<u64>()
                        .map_err(|_| bad(format!("{:?} is not an offset", text.trim())))
                };
                match (parent, name.as_slice()) {
                    (Some(b"PageRange"), b"Start") => start = Some(num()?),
                    (Some(b"PageRange"), b"End") => end = Some(num()?),
                    (Some(b"PageList"), b"PageRange") => match (start.take(), end.take()) {
                        (Some(a), Some(b)) => page.ranges.push((a, b)),
                        _ => return Err(bad("a PageRange without Start or End".into())),
                    },
                    (Some(b"ClearRange"), b"Start") => start = Some(num()?),
                    (Some(b"ClearRange"), b"End") => end = Some(num()?),
                    (Some(b"PageList"), b"ClearRange") => match (start.take(), end.take()) {
                        (Some(a), Some(b)) => page.clears.push((a, b)),
                        _ => return Err(bad("a ClearRange without Start or End".into())),
                    },
                    (Some(b"PageList"), b"NextMarker") => {
                        let m = text.trim();
                        page.next = (!m.is_empty()).then(|| m.to_string());
                    }
                    _ => {}
                }
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !saw_root || !path.is_empty() {
        return Err(bad("incomplete document".into()));
    }
    Ok(page)
}

/// The blob's own signing and errors, with the listing's query kept: a SAS replaces a
/// request's whole query (it is all a download has), so here it is appended after ours.
struct PageList<'a>(&'a BlobAuth);

impl Dialect for PageList<'_> {
    fn sign<'a>(&'a self, req: &'a mut reqwest::Request) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let own = req.url().query().unwrap_or("").to_string();
            RequestSigner::sign(self.0, req).await?;
            if let BlobAuth::Sas(_) | BlobAuth::SasAndToken(..) = self.0 {
                let sas = req.url().query().unwrap_or("").to_string();
                req.url_mut().set_query(Some(&format!("{own}&{sas}")));
            }
            Ok(())
        })
    }

    fn error_detail(&self, a: &Answer) -> Option<(String, String)> {
        self.0.error_detail(a)
    }

    fn classify(&self, code: &str) -> Option<CodeClass> {
        self.0.classify(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_page_list_is_read_with_its_marker() {
        let xml = br#"<?xml version="1.0" encoding="utf-8"?><PageList><PageRange><Start>0</Start><End>511</End></PageRange><ClearRange><Start>512</Start><End>1023</End></ClearRange><PageRange><Start>1024</Start><End>4095</End></PageRange><NextMarker>2!a&amp;b</NextMarker></PageList>"#;
        let p = parse(xml, "t").unwrap();
        assert_eq!(p.ranges, vec![(0, 511), (1024, 4095)]);
        assert_eq!(p.clears, vec![(512, 1023)]);
        assert_eq!(p.next.as_deref(), Some("2!a&b"));
        let p = parse(b"<PageList><NextMarker/></PageList>", "t").unwrap();
        assert_eq!(p, Page::default());
        assert_eq!(parse(b"<PageList/>", "t").unwrap(), Page::default());
        for bad in [
            &b"<Other/>"[..],
            b"<PageList><PageRange><Start>x</Start><End>1</End></PageRange></PageList>",
            b"<PageList><PageRange><End>1</End></PageRange></PageList>",
            b"<PageList><PageRange>",
            b"",
        ] {
            let e = parse(bad, "listing b").unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Remote, "{e}");
            assert!(e.to_string().contains("listing b"), "{e}");
        }
    }

    #[test]
    fn close_ranges_are_merged_far_ones_are_not() {
        let r = vec![
            (4096, 8192),
            (0, 512),
            (512, 1024),
            (8192 + 100, 9000),
            (1 << 30, (1 << 30) + 512),
        ];
        assert_eq!(
            coalesce(r.clone(), 0),
            vec![
                (0, 1024),
                (4096, 8192),
                (8292, 9000),
                (1 << 30, (1 << 30) + 512)
            ]
        );
        assert_eq!(
            coalesce(r, 1 << 20),
            vec![(0, 9000), (1 << 30, (1 << 30) + 512)]
        );
        // A gap of exactly the limit stays a gap.
        assert_eq!(coalesce(vec![(0, 1), (11, 12)], 10), vec![(0, 1), (11, 12)]);
        assert_eq!(coalesce(vec![(0, 1), (10, 12)], 10), vec![(0, 12)]);
    }

    /// A blob service that accepts the connection and never answers: listing page ranges ends
    /// with a timeout instead of hanging the export.
    #[tokio::test]
    async fn a_silent_blob_service_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _held = tokio::spawn(async move {
            let mut socks = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                socks.push(s);
            }
        });
        let url = Url::parse(&format!("http://{addr}/account/container/blob")).unwrap();
        let auth = BlobAuth::Sas(Arc::new(std::sync::Mutex::new("sig=x".into())));
        crate::runtime::handle(); // installs the TLS provider the client needs
        let e = page_ranges(
            &reqwest::Client::new(),
            &url,
            &auth,
            Duration::from_millis(300),
            1 << 20,
            1 << 20,
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Timeout, "{e}");
        assert!(!e.to_string().contains("sig=x"), "{e}");
    }
}
