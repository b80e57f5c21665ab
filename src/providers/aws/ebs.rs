//! The EBS direct APIs, read the way awslabs/coldsnap reads them (`src/download.rs`):
//! `ListSnapshotBlocks` (pages of up to 10,000 block indexes and tokens) and `GetSnapshotBlock`
//! (one 512 KiB block, its SHA-256 in `x-amz-Checksum`), REST calls signed with SigV4 for the
//! service `ebs` (botocore's `ebs/2019-11-02/service-2.json`). What we add to coldsnap: a block
//! whose SHA-256 does not match is fetched again before it is a verification error, block
//! tokens are listed again when they expire (7 days) or are refused, the number of requests in
//! flight halves on throttling (`RequestThrottledException`, 429, 5xx) and grows back while
//! calls succeed ([`Gate`]), and the blocks go through the downloader's journal, so a run
//! that dies resumes with the blocks it lacks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;
use sha2::Digest as _;
use tokio_util::sync::CancellationToken;

use super::api::{Api, classify_code, encode};
use super::gate::Gate;
use super::sign::Signer;
use crate::BoxFuture;
use crate::error::{Error, ErrorKind, Result};
use crate::providers::kit::api::answer_error;
use crate::providers::kit::paging::Pages;
use crate::providers::kit::{Answer, Call, CodeClass, Dialect};
use crate::sync::lock;
use crate::transfer::body::ByteStream;
use crate::transfer::ranged::RangeFetch;

/// The EBS direct APIs' block size (botocore: "a logical index in units of 512 KiB blocks").
pub(crate) const BLOCK: u64 = 524_288;
/// Blocks per `ListSnapshotBlocks` page: the model's maximum (coldsnap asks the same).
pub(super) const PAGE: &str = "10000";
/// A block token is listed again this long before the expiry the listing stated.
const TOKEN_MARGIN: Duration = Duration::from_secs(600);
/// Tries of one block whose SHA-256 does not match the checksum EBS sent.
const CHECKSUM_TRIES: u32 = 3;

/// How the EBS direct APIs sign and write errors (rest-json: `x-amzn-ErrorType`, a JSON body
/// with `message` and `Reason`). Every error answer the kit looks at passes here, so the gate
/// hears of throttling and 5xx even when the kit's retry then succeeds.
pub(super) struct Ebs<'a> {
    signer: &'a Signer,
    gate: Option<&'a Gate>,
}

impl Dialect for Ebs<'_> {
    fn sign<'a>(&'a self, req: &'a mut reqwest::Request) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.signer.sign_ebs(req))
    }

    fn error_detail(&self, a: &Answer) -> Option<(String, String)> {
        let d = detail(a);
        let throttled = d
            .as_ref()
            .is_some_and(|(c, _)| classify_code(c) == Some(CodeClass::Throttled));
        if let Some(g) = self.gate
            && (throttled || a.status.as_u16() == 429 || a.status.is_server_error())
        {
            g.slow_down();
        }
        d
    }

    fn classify(&self, code: &str) -> Option<CodeClass> {
        classify(code)
    }
}

fn classify(code: &str) -> Option<CodeClass> {
    Some(match code {
        "AccessDeniedException" => CodeClass::Kind(ErrorKind::Auth),
        "ResourceNotFoundException" => CodeClass::Kind(ErrorKind::NotFound),
        "ValidationException" => CodeClass::Kind(ErrorKind::InvalidArgument),
        "ServiceQuotaExceededException" => CodeClass::Kind(ErrorKind::Remote),
        "InternalServerException" => CodeClass::Retry,
        _ => return classify_code(code),
    })
}

/// The code (`x-amzn-ErrorType` up to its `:`, or the body's `__type` after its `#`) and the
/// message with its `Reason`.
fn detail(a: &Answer) -> Option<(String, String)> {
    let body: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
    let code = a
        .header("x-amzn-ErrorType")
        .map(|h| h.split(':').next().unwrap_or("").to_string())
        .or_else(|| {
            body.get("__type")
                .or_else(|| body.get("code"))
                .and_then(|v| v.as_str())
                .map(|t| t.rsplit('#').next().unwrap_or("").to_string())
        })
        .filter(|c| !c.is_empty())?;
    let msg = body
        .get("message")
        .or_else(|| body.get("Message"))
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let msg = match body.get("Reason").and_then(|v| v.as_str()) {
        Some(r) => format!("{msg} ({r})"),
        None => msg.to_string(),
    };
    Some((code, msg))
}

/// One page of `ListSnapshotBlocks` (botocore's `ListSnapshotBlocksResponse`).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListPage {
    #[serde(default)]
    blocks: Vec<ListedBlock>,
    /// Epoch seconds (rest-json's timestamp format).
    expiry_time: Option<f64>,
    volume_size: Option<u64>,
    block_size: Option<u64>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListedBlock {
    block_index: u64,
    block_token: String,
}

/// What a snapshot holds: its size and the token of every block it lists (unlisted blocks are
/// zeros).
pub(crate) struct Listing {
    pub size: u64,
    pub tokens: HashMap<u64, String>,
    pub expiry: Option<SystemTime>,
}

impl Listing {
    /// The listed blocks as sorted, merged byte extents.
    pub fn extents(&self) -> Vec<(u64, u64)> {
        block_extents(self.tokens.keys().copied(), self.size)
    }
}

/// Block indexes as sorted, merged byte extents within `size`.
pub(crate) fn block_extents(idx: impl Iterator<Item = u64>, size: u64) -> Vec<(u64, u64)> {
    let mut idx: Vec<u64> = idx.collect();
    idx.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for i in idx {
        let (a, b) = (i * BLOCK, ((i + 1) * BLOCK).min(size));
        match out.last_mut() {
            Some(last) if last.1 == a => last.1 = b,
            _ => out.push((a, b)),
        }
    }
    out
}

/// A listing's `ExpiryTime` (epoch seconds); a time no clock reaches (1e300) is no expiry we
/// can act on, not a panic.
pub(super) fn expiry_of(t: Option<f64>) -> Option<SystemTime> {
    t.filter(|t| *t > 0.0)
        .and_then(|t| Duration::try_from_secs_f64(t).ok())
        .and_then(|d| SystemTime::UNIX_EPOCH.checked_add(d))
}

/// A listing's `VolumeSize` (GiB) and `BlockSize`, checked, as bytes.
pub(super) fn volume_bytes(what: &str, gib: Option<u64>, block: Option<u64>) -> Result<u64> {
    if let Some(bs) = block
        && bs != BLOCK
    {
        return Err(Error::Unsupported(format!(
            "{what}: blocks of {bs} bytes (the EBS direct APIs use {BLOCK})"
        )));
    }
    let gib = gib.ok_or_else(|| Error::Remote(format!("{what}: the answer has no VolumeSize")))?;
    gib.checked_mul(1 << 30)
        .ok_or_else(|| Error::Remote(format!("{what}: VolumeSize {gib} GiB")))
}

/// Every block of `snapshot`, paged (`NextToken` is valid for 60 minutes: the pages follow each
/// other at once).
pub(crate) async fn list_blocks(
    api: &Api,
    snapshot: &str,
    cancel: &CancellationToken,
) -> Result<Listing> {
    let what = format!("EBS ListSnapshotBlocks {snapshot}");
    let mut pages = Pages::new(what.clone());
    let mut token: Option<String> = None;
    let mut tokens = HashMap::new();
    let mut size;
    let mut expiry = None;
    loop {
        let mut url = api.ebs.clone();
        let mut q = format!("maxResults={PAGE}");
        if let Some(t) = &token {
            q.push_str(&format!("&pageToken={}", encode(t, false)));
        }
        url.set_path(&format!("/snapshots/{}/blocks", encode(snapshot, false)));
        url.set_query(Some(&q));
        let a = call(api, &what, url, None, cancel).await?;
        if !a.status.is_success() {
            return Err(answer_error(&what, &dialect(api, None), &a));
        }
        let page: ListPage = serde_json::from_slice(&a.body)
            .map_err(|e| Error::Remote(format!("{what}: unreadable answer: {e}")))?;
        let bytes = volume_bytes(&what, page.volume_size, page.block_size)?;
        size = bytes;
        if let Some(e) = expiry_of(page.expiry_time) {
            expiry = Some(expiry.map_or(e, |x: SystemTime| x.min(e)));
        }
        pages.page(page.blocks.len(), a.body.len() as u64)?;
        for b in page.blocks {
            if b.block_index.saturating_add(1).saturating_mul(BLOCK) > bytes + BLOCK - 1 {
                return Err(Error::Remote(format!(
                    "{what}: block {} lies outside the {} GiB volume",
                    b.block_index,
                    bytes >> 30
                )));
            }
            tokens.insert(b.block_index, b.block_token);
        }
        match page.next_token.filter(|t| !t.is_empty()) {
            Some(t) => {
                pages.next(&t)?;
                token = Some(t);
            }
            None => break,
        }
    }
    Ok(Listing {
        size,
        tokens,
        expiry,
    })
}

pub(super) fn dialect<'a>(api: &'a Api, gate: Option<&'a Gate>) -> Ebs<'a> {
    Ebs {
        signer: &api.signer,
        gate,
    }
}

/// One GET through the kit's client (its retries, its per-attempt deadline); any status back.
pub(super) async fn call(
    api: &Api,
    what: &str,
    url: url::Url,
    gate: Option<&Gate>,
    cancel: &CancellationToken,
) -> Result<Answer> {
    let c = Call {
        what,
        idempotent: true,
        cancel: Some(cancel),
    };
    let d = dialect(api, gate);
    let build = || api.client.http.get(url.clone());
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(Error::Cancelled),
        r = api.client.send(&c, &d, &build) => r,
    }
}

/// The blocks of one snapshot as a range source for the downloader: a range is read block by
/// block, each block checked against its SHA-256 before any of its bytes is handed on.
pub(crate) struct BlockReader {
    api: Arc<Api>,
    snapshot: String,
    tokens: Mutex<Tokens>,
    /// One listing at a time when tokens are refreshed.
    relist: tokio::sync::Mutex<()>,
    pub gate: Gate,
}

struct Tokens {
    map: HashMap<u64, String>,
    expiry: Option<SystemTime>,
    generation: u64,
}

impl BlockReader {
    pub fn new(api: Arc<Api>, snapshot: String, listing: Listing, ceiling: usize) -> Self {
        BlockReader {
            api,
            snapshot,
            tokens: Mutex::new(Tokens {
                map: listing.tokens,
                expiry: listing.expiry,
                generation: 0,
            }),
            relist: tokio::sync::Mutex::new(()),
            gate: Gate::new(ceiling),
        }
    }

    /// The token of block `i` (`None`: the block is not in the snapshot, it reads as zeros),
    /// listed again first when the tokens are about to expire.
    async fn token(&self, i: u64, cancel: &CancellationToken) -> Result<(Option<String>, u64)> {
        let stale = {
            let t = lock(&self.tokens);
            t.expiry
                .is_some_and(|e| SystemTime::now() + TOKEN_MARGIN >= e)
                .then_some(t.generation)
        };
        if let Some(g) = stale {
            self.refresh(g, cancel).await?;
        }
        let t = lock(&self.tokens);
        Ok((t.map.get(&i).cloned(), t.generation))
    }

    /// Lists the blocks again, unless another request already did since `seen`.
    async fn refresh(&self, seen: u64, cancel: &CancellationToken) -> Result<()> {
        let _one = self.relist.lock().await;
        if lock(&self.tokens).generation != seen {
            return Ok(());
        }
        tracing::debug!(snapshot = %self.snapshot, "listing the snapshot's blocks again for fresh tokens");
        let l = list_blocks(&self.api, &self.snapshot, cancel).await?;
        let mut t = lock(&self.tokens);
        t.map = l.tokens;
        t.expiry = l.expiry;
        t.generation += 1;
        Ok(())
    }

    /// Block `i`, all `BLOCK` bytes of it (a shorter `DataLength` is padded with zeros),
    /// checked against its SHA-256.
    async fn block(&self, i: u64, cancel: &CancellationToken) -> Result<Bytes> {
        let what = format!("EBS GetSnapshotBlock {} block {i}", self.snapshot);
        let mut mismatches = 0;
        let mut refreshed = false;
        loop {
            let (token, generation) = self.token(i, cancel).await?;
            let Some(token) = token else {
                return Ok(Bytes::from(vec![0u8; BLOCK as usize]));
            };
            let mut url = self.api.ebs.clone();
            url.set_path(&format!(
                "/snapshots/{}/blocks/{i}",
                encode(&self.snapshot, false)
            ));
            url.set_query(Some(&format!("blockToken={}", encode(&token, false))));
            let a = {
                let _permit = self.gate.acquire(cancel).await?;
                call(&self.api, &what, url, Some(&self.gate), cancel).await?
            };
            if !a.status.is_success() {
                let d = detail(&a);
                let bad_token = d.as_ref().is_some_and(|(c, m)| {
                    c == "ValidationException" && m.contains("INVALID_BLOCK_TOKEN")
                });
                if bad_token && !refreshed {
                    // Expired (7 days) or otherwise refused: list again, once per block.
                    refreshed = true;
                    self.refresh(generation, cancel).await?;
                    continue;
                }
                return Err(answer_error(&what, &dialect(&self.api, None), &a));
            }
            self.gate.succeeded();
            match check_block(&what, &a) {
                Ok(()) => {
                    let mut data = a.body;
                    data.resize(BLOCK as usize, 0);
                    return Ok(Bytes::from(data));
                }
                Err(e) => {
                    mismatches += 1;
                    tracing::warn!(%what, error = %e, "block failed its check, fetching it again");
                    if mismatches >= CHECKSUM_TRIES {
                        return Err(e);
                    }
                }
            }
        }
    }
}

/// The answer's block against its headers: `x-amz-Checksum-Algorithm` SHA256, `x-amz-Data-Length`
/// the body's length and at most a block, `x-amz-Checksum` the body's SHA-256 (base64).
fn check_block(what: &str, a: &Answer) -> Result<()> {
    let algo = a.header("x-amz-Checksum-Algorithm").unwrap_or("");
    if algo != "SHA256" {
        return Err(Error::Verification(format!(
            "{what}: checksum algorithm {algo:?} (SHA256 expected)"
        )));
    }
    let len = a
        .header("x-amz-Data-Length")
        .and_then(|v| v.parse::<u64>().ok());
    if len != Some(a.body.len() as u64) || a.body.len() as u64 > BLOCK || a.body.is_empty() {
        return Err(Error::Verification(format!(
            "{what}: {} bytes received, DataLength {len:?}",
            a.body.len()
        )));
    }
    let want = a.header("x-amz-Checksum").unwrap_or("");
    let got = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&a.body));
    if got != want {
        return Err(Error::Verification(format!(
            "{what}: SHA-256 {got} does not match the checksum EBS sent ({want})"
        )));
    }
    Ok(())
}

impl RangeFetch for BlockReader {
    fn open<'a>(
        &'a self,
        start: u64,
        end: u64,
        cancel: &'a CancellationToken,
    ) -> BoxFuture<'a, Result<ByteStream>> {
        Box::pin(async move {
            let mut chunks = Vec::new();
            let mut pos = start;
            while pos < end {
                let i = pos / BLOCK;
                let base = i * BLOCK;
                let data = self.block(i, cancel).await?;
                let stop = end.min(base + BLOCK);
                chunks.push(Ok(data.slice((pos - base) as usize..(stop - base) as usize)));
                pos = stop;
            }
            let s: ByteStream = Box::pin(futures_util::stream::iter(chunks));
            Ok(s)
        })
    }

    fn max_part(&self) -> u64 {
        BLOCK
    }

    fn min_part(&self) -> u64 {
        BLOCK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(headers: &[(&str, &str)], body: &[u8]) -> Answer {
        let mut h = reqwest::header::HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Answer {
            status: reqwest::StatusCode::OK,
            headers: h,
            body: body.to_vec(),
        }
    }

    #[test]
    fn a_block_is_checked_against_its_sha256_and_length() {
        let body = vec![7u8; 1000];
        let sum = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&body));
        let ok = [
            ("x-amz-Checksum", sum.as_str()),
            ("x-amz-Checksum-Algorithm", "SHA256"),
            ("x-amz-Data-Length", "1000"),
        ];
        check_block("b", &answer(&ok, &body)).unwrap();
        let mut other = body.clone();
        other[3] = 8;
        let e = check_block("b", &answer(&ok, &other)).unwrap_err();
        assert!(matches!(e, Error::Verification(_)), "{e}");
        let short = [ok[0], ok[1], ("x-amz-Data-Length", "999")];
        assert!(check_block("b", &answer(&short, &body)).is_err());
        let md5 = [ok[0], ("x-amz-Checksum-Algorithm", "MD5"), ok[2]];
        assert!(check_block("b", &answer(&md5, &body)).is_err());
    }

    #[test]
    fn listed_blocks_become_merged_extents() {
        let l = Listing {
            size: 10 * BLOCK,
            tokens: [(3, "c"), (0, "a"), (1, "b"), (9, "d")]
                .into_iter()
                .map(|(i, t)| (i, t.to_string()))
                .collect(),
            expiry: None,
        };
        assert_eq!(
            l.extents(),
            vec![
                (0, 2 * BLOCK),
                (3 * BLOCK, 4 * BLOCK),
                (9 * BLOCK, 10 * BLOCK)
            ]
        );
    }

    #[test]
    fn rest_json_errors_are_read_from_the_header_or_the_body() {
        let mut a = answer(
            &[("x-amzn-ErrorType", "RequestThrottledException:http://x")],
            br#"{"message": "slow down", "Reason": "RESOURCE_LEVEL_THROTTLE"}"#,
        );
        a.status = reqwest::StatusCode::BAD_REQUEST;
        let (c, m) = detail(&a).unwrap();
        assert_eq!(c, "RequestThrottledException");
        assert_eq!(m, "slow down (RESOURCE_LEVEL_THROTTLE)");
        assert_eq!(classify(&c), Some(CodeClass::Throttled));
        let b = answer(
            &[],
            br#"{"__type": "aws#ValidationException", "message": "m"}"#,
        );
        assert_eq!(detail(&b).unwrap().0, "ValidationException");
        assert_eq!(
            classify("AccessDeniedException"),
            Some(CodeClass::Kind(ErrorKind::Auth))
        );
    }
}
