//! Incremental exports on AWS (issue 35): the changed blocks between the base's snapshot and
//! the new one, from the EBS direct APIs' `ListChangedBlocks`
//! (`GET /snapshots/{second}/changedblocks?firstSnapshotId=…&maxResults=10000&pageToken=…`,
//! botocore `ebs/2019-11-02/service-2.json`: `ChangedBlocks[{BlockIndex, FirstBlockToken,
//! SecondBlockToken}]`, `ExpiryTime`, `VolumeSize`, `BlockSize`, `NextToken`). A block with a
//! `SecondBlockToken` is read from the second snapshot with `GetSnapshotBlock` (its token
//! listed here); one without it is not in the second snapshot (reads as zeros) and becomes a
//! hole. coldsnap has no incremental mode (its issue #183); the paging and token handling are
//! those of `ListSnapshotBlocks` in ebs.rs.
//!
//! Before that call, everything that would make the clone of the previous image wrong sends
//! the file back to a full export, with the reason in the result: no base for the volume, the
//! base snapshot not kept or gone, the previous image changed or missing, a resized volume,
//! snapshots AWS calls unrelated.

use std::collections::HashMap;
use std::time::SystemTime;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::api::{Api, encode};
use super::ebs::{PAGE, block_extents, call, dialect, expiry_of, volume_bytes};
use super::snapshot::{self, Snap};
use crate::error::{Error, ErrorKind, Result};
use crate::providers::kit::api::answer_error;
use crate::providers::kit::paging::Pages;
use crate::transfer::incremental::{Base, BaseImage, Output, check_local, delta};

/// One page of `ListChangedBlocks` (botocore's `ListChangedBlocksResponse`).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ChangedPage {
    #[serde(default)]
    changed_blocks: Vec<ChangedBlock>,
    expiry_time: Option<f64>,
    volume_size: Option<u64>,
    block_size: Option<u64>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ChangedBlock {
    block_index: u64,
    second_block_token: Option<String>,
}

/// The blocks that differ between two snapshots of one volume.
pub(crate) struct Changed {
    /// The second snapshot's volume, in bytes.
    pub size: u64,
    /// Changed blocks the second snapshot holds, with their tokens for `GetSnapshotBlock`.
    pub tokens: HashMap<u64, String>,
    /// Changed blocks the second snapshot does not hold: zeros now.
    pub zeroed: Vec<u64>,
    pub expiry: Option<SystemTime>,
}

/// `ListChangedBlocks` from `first` to `second`, every page.
pub(crate) async fn list_changed(
    api: &Api,
    first: &str,
    second: &str,
    cancel: &CancellationToken,
) -> Result<Changed> {
    let what = format!("EBS ListChangedBlocks {first} → {second}");
    let mut pages = Pages::new(what.clone());
    let mut token: Option<String> = None;
    let mut out = Changed {
        size: 0,
        tokens: HashMap::new(),
        zeroed: Vec::new(),
        expiry: None,
    };
    loop {
        let mut url = api.ebs.clone();
        let mut q = format!("firstSnapshotId={}&maxResults={PAGE}", encode(first, false));
        if let Some(t) = &token {
            q.push_str(&format!("&pageToken={}", encode(t, false)));
        }
        url.set_path(&format!(
            "/snapshots/{}/changedblocks",
            encode(second, false)
        ));
        url.set_query(Some(&q));
        let a = call(api, &what, url, None, cancel).await?;
        if !a.status.is_success() {
            return Err(answer_error(&what, &dialect(api, None), &a));
        }
        let page: ChangedPage = serde_json::from_slice(&a.body)
            .map_err(|e| Error::Remote(format!("{what}: unreadable answer: {e}")))?;
        out.size = volume_bytes(&what, page.volume_size, page.block_size)?;
        if let Some(e) = expiry_of(page.expiry_time) {
            out.expiry = Some(out.expiry.map_or(e, |x: SystemTime| x.min(e)));
        }
        pages.page(page.changed_blocks.len(), a.body.len() as u64)?;
        for b in page.changed_blocks {
            if b.block_index.saturating_mul(super::ebs::BLOCK) >= out.size {
                return Err(Error::Remote(format!(
                    "{what}: block {} lies outside the {} GiB volume",
                    b.block_index,
                    out.size >> 30
                )));
            }
            match b.second_block_token {
                Some(t) => {
                    out.tokens.insert(b.block_index, t);
                }
                None => out.zeroed.push(b.block_index),
            }
        }
        match page.next_token.filter(|t| !t.is_empty()) {
            Some(t) => {
                pages.next(&t)?;
                token = Some(t);
            }
            None => break,
        }
    }
    Ok(out)
}

/// How one volume's file is made.
pub(crate) enum Plan {
    /// In full, and why not incrementally.
    Full(String),
    Incremental {
        base: BaseImage,
        base_snapshot: String,
        changed: Changed,
    },
}

/// Whether `snap` can be exported as the changes since `base`'s snapshot of its volume, as
/// `output` says (a delta does not read the previous image).
pub(crate) async fn plan(
    api: &Api,
    base: &Base,
    snap: &Snap,
    output: Output,
    cancel: &CancellationToken,
) -> Result<Plan> {
    let Some(f) = base
        .files
        .iter()
        .find(|f| f.cloud.get("volume_id").and_then(|v| v.as_str()) == Some(&snap.volume))
    else {
        return Ok(Plan::Full(format!(
            "the base has no snapshot of volume {}",
            snap.volume
        )));
    };
    let base_snap = f
        .cloud
        .get("snapshot_id")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    if base_snap.is_empty() {
        return Ok(Plan::Full(format!(
            "the base of {} names no snapshot",
            f.name
        )));
    }
    if f.cloud.get("kept").and_then(|v| v.as_bool()) == Some(false) {
        return Ok(Plan::Full(format!(
            "the base snapshot {base_snap} was deleted after its export (keep_base was off)"
        )));
    }
    if let Some(why) = delta::refuses(f, output) {
        return Ok(Plan::Full(why));
    }
    if output == Output::Image
        && let Err(why) = check_local(f)
    {
        return Ok(Plan::Full(why));
    }
    match snapshot::describe(api, &[&base_snap]).await {
        Ok(found)
            if found
                .iter()
                .any(|s| s.id == base_snap && s.state == "completed") => {}
        Ok(_) => {
            return Ok(Plan::Full(format!(
                "the base snapshot {base_snap} no longer exists"
            )));
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Ok(Plan::Full(format!(
                "the base snapshot {base_snap} no longer exists"
            )));
        }
        Err(e) => return Err(e),
    }
    let changed = match list_changed(api, &base_snap, &snap.id, cancel).await {
        Ok(c) => c,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidArgument) => {
            return Ok(Plan::Full(format!(
                "AWS would not compare the snapshots: {e}"
            )));
        }
        Err(e) => return Err(e),
    };
    if changed.size != f.size {
        return Ok(Plan::Full(format!(
            "volume {} was resized ({} GiB, the base has {} bytes)",
            snap.volume,
            changed.size >> 30,
            f.size
        )));
    }
    let zeroed = block_extents(changed.zeroed.iter().copied(), changed.size);
    Ok(Plan::Incremental {
        base: BaseImage {
            path: f.path.clone(),
            zeroed,
            id: base_snap.clone(),
            stamp: (f.size, f.modified_ns),
        },
        base_snapshot: base_snap,
        changed,
    })
}
