//! EC2's snapshot calls for the snapshot method (botocore `ec2/2016-11-15`): the volumes of an
//! instance (`DescribeInstances`, boot volume first), `CreateSnapshots` with an instance
//! specification (one crash-consistent set) or `CreateSnapshot` for one volume, both tagged
//! with the export, `DescribeSnapshots` (by id, or by our resume tag) and `DeleteSnapshot`.

use super::api::{Api, list_param};
use crate::error::{Error, Result};
use crate::providers::xml::Node;

/// The tag every snapshot the export makes carries (value: the source).
pub(crate) const TAG_EXPORT: &str = "hypersdk:export";
/// The tag that lets a later run of the same export (same source, same output folder) find a
/// snapshot a killed run left, and resume from it.
pub(crate) const TAG_RESUME: &str = "hypersdk:resume";

/// One EBS volume of an instance.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Volume {
    pub id: String,
    pub device: String,
}

/// What the export task's rules need to know of an instance.
#[derive(Debug, Default)]
pub(crate) struct InstanceFacts {
    /// Boot volume first, then the others in the order EC2 lists them.
    pub volumes: Vec<Volume>,
    pub windows: bool,
    /// Marketplace (or other) product codes.
    pub product_codes: bool,
}

/// A snapshot as `DescribeSnapshots` / `CreateSnapshot(s)` report it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snap {
    pub id: String,
    pub volume: String,
    pub state: String,
    pub progress: String,
    pub message: String,
    pub encrypted: bool,
}

fn pairs<'a>(v: &'a [(String, &'a str)]) -> Vec<(&'a str, &'a str)> {
    v.iter().map(|(k, v)| (k.as_str(), *v)).collect()
}

fn text(n: &Node, name: &str) -> String {
    n.child_text(name).unwrap_or("").trim().to_string()
}

/// `DescribeInstances` of one instance: its `instancesSet` item, or NotFound.
pub(crate) async fn describe_instance(api: &Api, id: &str) -> Result<Node> {
    let r = api
        .ec2(
            "DescribeInstances",
            id,
            &pairs(&list_param("InstanceId", &[id])),
        )
        .await?;
    r.children_named("reservationSet")
        .flat_map(|s| s.children_named("item"))
        .flat_map(|r| r.children_named("instancesSet"))
        .flat_map(|s| s.children_named("item"))
        .find(|i| i.child_text("instanceId").map(str::trim) == Some(id))
        .cloned()
        .ok_or_else(|| Error::NotFound(format!("instance {id} does not exist")))
}

/// The EBS volumes of an instance, boot volume first.
pub(crate) async fn instance(api: &Api, id: &str) -> Result<InstanceFacts> {
    let node = describe_instance(api, id).await?;
    let i = &node;
    let root = text(i, "rootDeviceName");
    let mut volumes: Vec<Volume> = i
        .children_named("blockDeviceMapping")
        .flat_map(|s| s.children_named("item"))
        .filter_map(|m| {
            let v = m.child("ebs")?.child_text("volumeId")?.trim().to_string();
            Some(Volume {
                id: v,
                device: text(m, "deviceName"),
            })
        })
        .collect();
    // Boot first; the others keep EC2's order.
    volumes.sort_by_key(|v| v.device != root);
    Ok(InstanceFacts {
        volumes,
        windows: text(i, "platform").eq_ignore_ascii_case("windows"),
        product_codes: i
            .children_named("productCodes")
            .flat_map(|s| s.children_named("item"))
            .next()
            .is_some(),
    })
}

/// Sizes (GiB) and encryption of volumes (`DescribeVolumes`).
pub(crate) async fn volumes(api: &Api, ids: &[&str]) -> Result<Vec<(String, u64, bool)>> {
    let r = api
        .ec2("DescribeVolumes", "", &pairs(&list_param("VolumeId", ids)))
        .await?;
    Ok(r.children_named("volumeSet")
        .flat_map(|s| s.children_named("item"))
        .map(|v| {
            (
                text(v, "volumeId"),
                text(v, "size").parse().unwrap_or(0),
                text(v, "encrypted") == "true",
            )
        })
        .collect())
}

fn snap(n: &Node) -> Snap {
    let state = text(n, "status");
    Snap {
        id: text(n, "snapshotId"),
        volume: text(n, "volumeId"),
        state: if state.is_empty() {
            text(n, "state")
        } else {
            state
        },
        progress: text(n, "progress"),
        message: text(n, "statusMessage"),
        encrypted: text(n, "encrypted") == "true",
    }
}

fn tag_params(source: &str, resume: &str) -> Vec<(&'static str, String)> {
    vec![
        ("TagSpecification.1.ResourceType", "snapshot".into()),
        ("TagSpecification.1.Tag.1.Key", TAG_EXPORT.into()),
        ("TagSpecification.1.Tag.1.Value", source.into()),
        ("TagSpecification.1.Tag.2.Key", TAG_RESUME.into()),
        ("TagSpecification.1.Tag.2.Value", resume.into()),
    ]
}

/// `CreateSnapshots` of every EBS volume of an instance: one crash-consistent set.
pub(crate) async fn create_for_instance(
    api: &Api,
    instance: &str,
    resume: &str,
) -> Result<Vec<Snap>> {
    let mut p = tag_params(instance, resume);
    p.push(("InstanceSpecification.InstanceId", instance.into()));
    p.push(("Description", format!("hypersdk-export-{instance}")));
    let params: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = api.ec2("CreateSnapshots", instance, &params).await?;
    Ok(r.children_named("snapshotSet")
        .flat_map(|s| s.children_named("item"))
        .map(snap)
        .filter(|s| !s.id.is_empty())
        .collect())
}

/// `CreateSnapshot` of one volume.
pub(crate) async fn create_for_volume(api: &Api, volume: &str, resume: &str) -> Result<Snap> {
    let mut p = tag_params(volume, resume);
    p.push(("VolumeId", volume.into()));
    p.push(("Description", format!("hypersdk-export-{volume}")));
    let params: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = api.ec2("CreateSnapshot", volume, &params).await?;
    let s = snap(&r);
    if s.id.is_empty() {
        return Err(Error::Remote(format!(
            "EC2 CreateSnapshot {volume}: the answer names no snapshot"
        )));
    }
    Ok(s)
}

/// The snapshots with these ids.
pub(crate) async fn describe(api: &Api, ids: &[&str]) -> Result<Vec<Snap>> {
    let r = api
        .ec2(
            "DescribeSnapshots",
            &ids.join(","),
            &pairs(&list_param("SnapshotId", ids)),
        )
        .await?;
    Ok(r.children_named("snapshotSet")
        .flat_map(|s| s.children_named("item"))
        .map(snap)
        .collect())
}

/// Our own snapshots carrying `resume` as their resume tag, not failed.
pub(crate) async fn find_resumable(api: &Api, resume: &str) -> Result<Vec<Snap>> {
    let tag = format!("tag:{TAG_RESUME}");
    let r = api
        .ec2(
            "DescribeSnapshots",
            "",
            &[
                ("Owner.1", "self"),
                ("Filter.1.Name", &tag),
                ("Filter.1.Value.1", resume),
            ],
        )
        .await?;
    Ok(r.children_named("snapshotSet")
        .flat_map(|s| s.children_named("item"))
        .map(snap)
        .filter(|s| s.state == "pending" || s.state == "completed")
        .collect())
}

/// `DeleteSnapshot` (a snapshot already gone counts as deleted: the ledger treats NotFound so).
pub(crate) async fn delete(api: &Api, id: &str) -> Result<()> {
    api.ec2("DeleteSnapshot", id, &[("SnapshotId", id)])
        .await
        .map(|_| ())
}

/// `DeleteTags` of the resume tag: a snapshot kept after a run that finished is the user's, not
/// a killed run's to resume from (or to delete as a leftover).
pub(crate) async fn untag(api: &Api, id: &str) -> Result<()> {
    api.ec2(
        "DeleteTags",
        id,
        &[("ResourceId.1", id), ("Tag.1.Key", TAG_RESUME)],
    )
    .await
    .map(|_| ())
}

/// Why EC2's export task would refuse an instance (AWS's VM Import/Export limits: one volume,
/// no Windows or Marketplace instance, no encrypted volume, none over 1 TiB), if it would.
pub(crate) async fn task_refuses(api: &Api, id: &str) -> Result<Option<String>> {
    let facts = instance(api, id).await?;
    if facts.volumes.len() > 1 {
        return Ok(Some(format!("{} volumes", facts.volumes.len())));
    }
    if facts.windows {
        return Ok(Some("a Windows instance".into()));
    }
    if facts.product_codes {
        return Ok(Some("an instance with product codes (Marketplace)".into()));
    }
    let ids: Vec<&str> = facts.volumes.iter().map(|v| v.id.as_str()).collect();
    if ids.is_empty() {
        return Ok(None);
    }
    for (v, gib, encrypted) in volumes(api, &ids).await? {
        if encrypted {
            return Ok(Some(format!("volume {v} is encrypted")));
        }
        if gib > 1024 {
            return Ok(Some(format!("volume {v} is {gib} GiB, over 1 TiB")));
        }
    }
    Ok(None)
}
