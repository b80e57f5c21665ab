//! What one Azure export reads: its targets (a disk, a snapshot, a VM's disks; an attached
//! disk through a snapshot made for the export, incremental for Premium SSD v2 and Ultra and
//! read once copied), with the checks that refuse a target before anything is made.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::access::delete_snapshot;
use super::config::{AzureOptions, Source};
use super::flow::AzureFlow;
use crate::error::{Error, Result};
use crate::paths::sanitize_file_name;
use crate::providers::poll::{Backoff, Poll, poll_until};
use crate::seam::{FlowCtx, When};

/// A disk (or snapshot) to grant and download.
pub(super) struct Target {
    pub(super) rg: String,
    pub(super) kind: &'static str,
    pub(super) name: String,
    /// The disk's `securityProfile.securityType` (Trusted Launch, a confidential VM's): its VM
    /// guest state (vTPM, UEFI) is kept apart and exported beside it.
    pub(super) security_type: Option<String>,
    /// `dataAccessAuthMode: AzureActiveDirectory`: its SAS is read with an Entra ID token too.
    pub(super) entra_data_access: bool,
    /// ARM id of what the user named (the disk, when we export a snapshot of it).
    pub(super) source_id: String,
    pub(super) file: String,
}

impl AzureFlow {
    /// `file_format: vhdx` is GrantAccessData's `fileFormat`, which is for VHDX-format
    /// snapshots — disks with 4096-byte logical sectors (Premium SSD v2, Ultra) — not a
    /// conversion: refused, saying why, for any other disk, before anything is made.
    fn check_format(&self, name: &str, resource: &Value) -> Result<()> {
        if self.ext() != "vhdx" {
            return Ok(());
        }
        // Absent, it is the SKU's default: 4096 for Premium SSD v2 and Ultra, else 512.
        let sector = resource["properties"]["creationData"]["logicalSectorSize"]
            .as_u64()
            .unwrap_or(if only_incremental(resource) {
                4096
            } else {
                512
            });
        if sector == 4096 {
            return Ok(());
        }
        Err(Error::InvalidArgument(format!(
            "file_format vhdx applies to disks and snapshots with 4096-byte logical sectors (Premium SSD v2, Ultra); {name} has {sector}-byte sectors and exports as VHD: leave file_format at vhd"
        )))
    }

    /// A disk to export: itself when it can be granted, else (attached to a running VM) a
    /// snapshot of it made for this export.
    async fn disk_target(
        &mut self,
        ctx: &FlowCtx,
        rg: &str,
        name: &str,
        file: String,
    ) -> Result<Target> {
        let disk = self.arm.get(self.arm.url(rg, "disks", name, None)).await?;
        self.check_format(name, &disk)?;
        let id = disk["id"].as_str().unwrap_or_default().to_string();
        let state = disk["properties"]["diskState"].as_str().unwrap_or("");
        // An incremental export, or one that keeps its base, reads an incremental snapshot of
        // the disk even when the disk itself could be granted: that snapshot is the base.
        let for_base = self.opts.keep_base || self.opts.incremental_from.is_some();
        if state != "Attached" && !for_base {
            return Ok(Target {
                security_type: security_type(&disk),
                entra_data_access: entra_data_access(&disk),
                rg: rg.into(),
                kind: "disks",
                name: name.into(),
                source_id: id,
                file,
            });
        }
        if state == "Attached" && !self.opts.snapshot_attached {
            return Err(Error::InvalidState(format!(
                "disk {name} is attached to a running VM and cannot be granted access; set snapshot_attached to export a snapshot of it"
            )));
        }
        let suffix: String = (0..6)
            .map(|_| format!("{:x}", rand::random::<u8>() % 16))
            .collect();
        let base: String = name.chars().take(80 - 10).collect();
        let snap = format!("{base}-hs-{suffix}");
        // Registered before the request: a cancel while it runs still deletes it (and a
        // snapshot that was never made is "not found", which the ledger counts as done). With
        // keep_base a finished export keeps it as the base of the next one.
        self.snapshots.push((rg.to_string(), snap.clone()));
        let (arm, srg, sname) = (self.arm.clone(), rg.to_string(), snap.clone());
        ctx.ledger().add(
            format!("deleting snapshot {snap}"),
            if self.opts.keep_base {
                When::UnlessSuccess
            } else {
                When::Always
            },
            move |pctx| {
                let (arm, rg, name) = (arm.clone(), srg.clone(), sname.clone());
                async move { delete_snapshot(&arm, &pctx, &rg, &name).await }
            },
        );
        ctx.waiting_for_cloud(&if for_base {
            format!("taking an incremental snapshot of disk {name}")
        } else {
            format!("snapshotting disk {name} (attached to a running VM)")
        });
        // Premium SSD v2 and Ultra disks take only incremental snapshots, which are then copied
        // in the background and readable only once that copy is done. Only incremental
        // snapshots of one disk can be compared (Get Page Ranges with a previous snapshot).
        let incremental = only_incremental(&disk) || for_base;
        let mut body = json!({
            "location": disk["location"],
            "properties": {
                "creationData": {"createOption": "Copy", "sourceResourceId": id},
                "incremental": incremental,
            },
        });
        // The snapshot keeps the disk's protection: a disk readable only with Entra ID does
        // not become readable by its SAS alone through the export's snapshot.
        if entra_data_access(&disk) {
            body["properties"]["dataAccessAuthMode"] = json!("AzureActiveDirectory");
        }
        let first = self
            .arm
            .call(
                Method::PUT,
                self.arm.url(rg, "snapshots", &snap, None),
                Some(&body),
            )
            .await?;
        self.arm
            .wait(
                ctx,
                &format!("snapshot of {name}"),
                first,
                self.timeout(),
                self.first_delay(),
            )
            .await?;
        self.snapshot_readable(ctx, rg, &snap).await?;
        Ok(Target {
            security_type: security_type(&disk),
            entra_data_access: entra_data_access(&disk),
            rg: rg.into(),
            kind: "snapshots",
            name: snap,
            source_id: id,
            file,
        })
    }

    /// Waits until a snapshot can be read: an incremental snapshot of a Premium SSD v2 or
    /// Ultra disk is copied in the background first (`snapshotAccessState` `Pending`,
    /// `completionPercent` rising), and a grant before then is refused. A cloud wait, its
    /// percent the progress message.
    async fn snapshot_readable(&self, ctx: &FlowCtx, rg: &str, name: &str) -> Result<()> {
        let url = self.arm.url(rg, "snapshots", name, None);
        let what = format!("copying snapshot {name}");
        poll_until(
            ctx,
            &what,
            self.timeout(),
            Backoff::growing(
                self.first_delay(),
                Duration::from_secs(30).max(self.first_delay()),
            ),
            || {
                let url = url.clone();
                let what = what.clone();
                async move {
                    let s = self.arm.get(url).await?;
                    let p = &s["properties"];
                    Ok(match p["snapshotAccessState"].as_str() {
                        None
                        | Some("Available" | "AvailableWithInstantAccess" | "InstantAccess") => {
                            Poll::Done(())
                        }
                        Some(state) => Poll::pending(match p["completionPercent"].as_f64() {
                            Some(pct) => format!("{what}: {pct:.0}%"),
                            None => format!("{what}: {state}"),
                        }),
                    })
                }
            },
        )
        .await
    }

    pub(super) async fn targets(&mut self, ctx: &FlowCtx) -> Result<Vec<Target>> {
        let ext = self.ext();
        let named = |n: &str, o: &AzureOptions| {
            o.file_name.clone().unwrap_or_else(|| {
                sanitize_file_name(&format!("{n}.{ext}"), &format!("disk.{ext}"))
            })
        };
        match self.source.clone() {
            Source::Disk { rg, name } => {
                let file = named(&name, &self.opts);
                Ok(vec![self.disk_target(ctx, &rg, &name, file).await?])
            }
            Source::Snapshot { rg, name } => {
                let s = self
                    .arm
                    .get(self.arm.url(&rg, "snapshots", &name, None))
                    .await?;
                self.check_format(&name, &s)?;
                // A user's own incremental snapshot may still be copying.
                self.snapshot_readable(ctx, &rg, &name).await?;
                Ok(vec![Target {
                    security_type: security_type(&s),
                    entra_data_access: entra_data_access(&s),
                    file: named(&name, &self.opts),
                    source_id: s["id"].as_str().unwrap_or_default().to_string(),
                    rg,
                    kind: "snapshots",
                    name,
                }])
            }
            Source::Vm { rg, name } => {
                let vm = self
                    .arm
                    .get(self.arm.url(&rg, "virtualMachines", &name, None))
                    .await?;
                let sp = &vm["properties"]["storageProfile"];
                let mut ids = Vec::new();
                let mut disks: Vec<&Value> = vec![&sp["osDisk"]];
                let mut data: Vec<&Value> = sp["dataDisks"]
                    .as_array()
                    .map(|a| a.iter().collect())
                    .unwrap_or_default();
                data.sort_by_key(|d| d["lun"].as_u64().unwrap_or(u64::MAX));
                disks.extend(data);
                for d in disks {
                    if d.is_null() {
                        continue;
                    }
                    let Some(id) = d["managedDisk"]["id"].as_str() else {
                        return Err(Error::Unsupported(format!(
                            "VM {name} has an unmanaged disk ({}); only managed disks are exported",
                            d["name"].as_str().unwrap_or("?")
                        )));
                    };
                    ids.push(id.to_string());
                }
                if ids.is_empty() {
                    return Err(Error::NotFound(format!("VM {name} has no managed disk")));
                }
                let mut out = Vec::new();
                for id in ids {
                    let (drg, dname, _) = self.arm.id_url(&id, None)?;
                    let file =
                        sanitize_file_name(&format!("{dname}.{ext}"), &format!("disk.{ext}"));
                    out.push(self.disk_target(ctx, &drg, &dname, file).await?);
                }
                Ok(out)
            }
            Source::Blob(_) => Ok(Vec::new()),
        }
    }
}

/// Disks whose snapshots must be incremental: Premium SSD v2 and Ultra (a full snapshot of one
/// is refused by DiskRP).
fn only_incremental(disk: &Value) -> bool {
    matches!(
        disk["sku"]["name"].as_str(),
        Some("PremiumV2_LRS" | "UltraSSD_LRS")
    )
}

/// A disk's (or its snapshot's) security type, when it has one whose VM guest state is kept
/// (`ConfidentialVM_NonPersistedTPM` keeps none: there is nothing to ask for).
pub(super) fn security_type(resource: &Value) -> Option<String> {
    resource["properties"]["securityProfile"]["securityType"]
        .as_str()
        .filter(|t| !t.is_empty() && *t != "ConfidentialVM_NonPersistedTPM")
        .map(str::to_string)
}

/// A disk or snapshot with `dataAccessAuthMode: AzureActiveDirectory` (DiskProperties and
/// SnapshotProperties in azure-mgmt-compute; "the system checks if the user has an identity in
/// Azure Active Directory and has necessary permissions to export/upload the data"): its
/// SAS is refused without an Entra ID token for Azure Storage beside it.
pub(super) fn entra_data_access(resource: &Value) -> bool {
    resource["properties"]["dataAccessAuthMode"]
        .as_str()
        .is_some_and(|m| m.eq_ignore_ascii_case("AzureActiveDirectory"))
}
