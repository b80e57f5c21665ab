//! Running VMs: vCenter refuses `ExportVm` on a VM that is not powered off
//! (`InvalidPowerState`), so such a VM is exported through a snapshot made for the export:
//! `CreateSnapshot_Task` (no memory, quiesce on request), `ExportSnapshot`, the snapshot passed
//! to `CreateDescriptor`, and `RemoveSnapshot_Task` (removeChildren false, consolidate true) on
//! every outcome through the cleanup ledger. Element order as govmomi's vim25
//! `CreateSnapshotRequestType` and `RemoveSnapshotRequestType` (vim25/types/types.go).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::soap::{Moref, Vim};
use super::xml::{self, esc};
use crate::error::{Error, Result};
use crate::providers::poll::{Backoff, Poll, poll_until};
use crate::seam::{FlowCtx, When};
use crate::sync::lock;

/// Longest wait for a snapshot task (create or remove) to end.
const TASK_TIMEOUT: Duration = Duration::from_secs(3600);

/// `runtime.powerState` of the VM: `poweredOn`, `poweredOff` or `suspended`.
pub(super) async fn power_state(vim: &Vim, vm: &Moref) -> Result<String> {
    let props = vim.properties(vm, &["runtime.powerState"]).await?;
    Ok(props
        .into_iter()
        .find(|(n, _)| n == "runtime.powerState")
        .map(|(_, v)| v.text.trim().to_string())
        .unwrap_or_default())
}

/// A task's end: `Ok(result)` on success, `Err(message)` when the task failed.
type TaskEnd = std::result::Result<Option<xml::Node>, String>;

/// Waits for `task` to end (`Err` only when its state cannot be read).
pub(super) async fn wait_task(
    ctx: &FlowCtx,
    vim: &Vim,
    task: &Moref,
    what: &str,
) -> Result<TaskEnd> {
    poll_until(
        ctx,
        what,
        TASK_TIMEOUT,
        Backoff::growing(Duration::from_millis(100), Duration::from_secs(3)),
        || async {
            let props = vim.properties(task, &["info"]).await?;
            let info = props
                .into_iter()
                .find(|(n, _)| n == "info")
                .map(|(_, v)| v)
                .ok_or_else(|| Error::Remote(format!("{what}: the task has no info")))?;
            Ok(match info.child_text("state").map(str::trim) {
                Some("success") => Poll::Done(Ok(info.child("result").cloned())),
                Some("error") => Poll::Done(Err(info
                    .child("error")
                    .and_then(|e| e.child_text("localizedMessage"))
                    .unwrap_or("no reason given")
                    .to_string())),
                other => Poll::pending(format!("{what} ({})", other.unwrap_or("queued"))),
            })
        },
    )
    .await
}

/// The snapshot a successful CreateSnapshot_Task made.
fn snapshot_of(result: Option<&xml::Node>) -> Option<Moref> {
    let r = result?;
    let is_snapshot = r
        .attrs
        .iter()
        .any(|(k, v)| k == "type" && v == "VirtualMachineSnapshot");
    (is_snapshot && !r.text.trim().is_empty())
        .then(|| Moref::new("VirtualMachineSnapshot", r.text.trim()))
}

/// Makes the export's snapshot of `vm` and returns it. Its removal is registered in the
/// ledger as soon as CreateSnapshot_Task returns, so a cancel or failure from then on (even
/// while the task runs) removes it.
pub(super) async fn create_for_export(
    ctx: &FlowCtx,
    vim: &Arc<Vim>,
    vm: &Moref,
    quiesce: bool,
) -> Result<Moref> {
    let body = format!(
        "{}<name>{}</name><description>{}</description><memory>false</memory><quiesce>{quiesce}</quiesce>",
        vm.xml("_this"),
        esc(&format!("hypersdk-export-{}", vm.value)),
        "Made by hypersdk for an export of the running VM; removed when the export ends."
    );
    ctx.waiting_for_cloud("making a snapshot of the running VM for the export");
    let r = vim.call("CreateSnapshot_Task", &body).await?;
    let task = r
        .child("returnval")
        .and_then(|n| n.attr("type").map(|t| Moref::new(t, n.text.trim())))
        .ok_or_else(|| Error::Remote("CreateSnapshot_Task returned no task".into()))?;
    // The snapshot, once known: vCenter forgets finished tasks after a while, and the removal
    // after a long download must not depend on the task still being there.
    let made: Arc<Mutex<Option<Moref>>> = Arc::default();
    let (v, t, m) = (vim.clone(), task.clone(), made.clone());
    ctx.ledger().add(
        "removing the export's snapshot",
        When::Always,
        move |uctx| {
            let (v, t, known) = (v.clone(), t.clone(), lock(&m).clone());
            async move { remove(&uctx, &v, &t, known).await }
        },
    );
    match wait_task(ctx, vim, &task, "the export's snapshot").await? {
        Ok(result) => {
            let snap = snapshot_of(result.as_ref()).ok_or_else(|| {
                Error::Remote("CreateSnapshot_Task ended without a snapshot".into())
            })?;
            *lock(&made) = Some(snap.clone());
            Ok(snap)
        }
        Err(msg) => Err(Error::Remote(format!(
            "making a snapshot of the running VM failed: {msg}"
        ))),
    }
}

/// A snapshot made and removed at once: the stun/unstun cycle after which a running VM's
/// changed block tracking, just turned on, takes effect (VMware KB 1020128, as the issue
/// cites it). Its removal is in the ledger too, should the removal here not happen (a cancel
/// between the two).
pub(super) async fn cycle(ctx: &FlowCtx, vim: &Arc<Vim>, vm: &Moref) -> Result<()> {
    ctx.waiting_for_cloud("a snapshot made and removed so that changed block tracking starts");
    let snap = create_for_export(ctx, vim, vm, false).await?;
    let body = format!(
        "{}<removeChildren>false</removeChildren><consolidate>true</consolidate>",
        snap.xml("_this")
    );
    let r = vim.call("RemoveSnapshot_Task", &body).await?;
    let task = r
        .child("returnval")
        .and_then(|n| n.attr("type").map(|t| Moref::new(t, n.text.trim())))
        .ok_or_else(|| Error::Remote("RemoveSnapshot_Task returned no task".into()))?;
    match wait_task(ctx, vim, &task, "removing the CBT cycle's snapshot").await? {
        Ok(_) => Ok(()),
        Err(msg) => Err(Error::Remote(format!(
            "removing the snapshot {} (made so that CBT starts) failed: {msg}",
            snap.value
        ))),
    }
}

/// The undo step: waits for the creating task, then removes what it made (nothing if it
/// failed) and waits for the removal.
async fn remove(ctx: &FlowCtx, vim: &Vim, create_task: &Moref, known: Option<Moref>) -> Result<()> {
    let snap = match known {
        Some(s) => s,
        None => match wait_task(ctx, vim, create_task, "the export's snapshot").await? {
            Ok(result) => match snapshot_of(result.as_ref()) {
                Some(s) => s,
                None => return Ok(()),
            },
            Err(_) => return Ok(()),
        },
    };
    let body = format!(
        "{}<removeChildren>false</removeChildren><consolidate>true</consolidate>",
        snap.xml("_this")
    );
    let r = match vim.call("RemoveSnapshot_Task", &body).await {
        // Already gone (a snapshot `cycle` removed at once).
        Err(e) if e.kind() == crate::error::ErrorKind::NotFound => return Ok(()),
        r => r?,
    };
    let task = r
        .child("returnval")
        .and_then(|n| n.attr("type").map(|t| Moref::new(t, n.text.trim())))
        .ok_or_else(|| Error::Remote("RemoveSnapshot_Task returned no task".into()))?;
    match wait_task(ctx, vim, &task, "removing the export's snapshot").await? {
        Ok(_) => Ok(()),
        Err(msg) => Err(Error::Remote(format!(
            "removing the export's snapshot {} failed: {msg}",
            snap.value
        ))),
    }
}
