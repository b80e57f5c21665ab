//! Which Hyper-V jobs are this export's: `export.ps1` reports every job that appeared while a
//! step started its cmdlets; the ones chosen here are the only jobs cleanup ever stops.

use std::sync::Mutex;

use serde_json::{Value, json};

use super::export::ExportState;
use crate::error::{Error, Result};
use crate::sync::lock;

/// `Msvm_StorageJob.JobType` Conversion (Microsoft's Msvm_StorageJob reference).
const JOB_TYPE_CONVERSION: u64 = 6;

/// Whether a job `export.ps1` saw appear while one of its steps started its cmdlets is one this
/// export started. `export` steps (Export-VM, Export-VMSnapshot) start a virtual system job
/// that affects this VM; `convert` steps (Convert-VHD) start storage jobs of JobType Conversion,
/// which affect no VM. Never ours: a job that affects another VM, a storage job of any other
/// type (another party's image job; a merge, which Remove-VMSnapshot starts), a job of no VM
/// in an export step. Never decided by `ElementName`: Hyper-V localizes it.
pub(super) fn is_ours(vm_id: &str, line: &Value) -> bool {
    let class = line["class"].as_str().unwrap_or("");
    let vms: Vec<&str> = line["vms"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if vms.iter().any(|v| !v.eq_ignore_ascii_case(vm_id)) {
        return false;
    }
    let storage = class.eq_ignore_ascii_case("Msvm_StorageJob");
    match line["step"].as_str() {
        Some("export") => !storage && !vms.is_empty(),
        Some("convert") => storage && line["job_type"].as_u64() == Some(JOB_TYPE_CONVERSION),
        _ => false,
    }
}

/// Records a `job` line's job as this export's when [`is_ours`] says so.
pub(super) fn note_job(shared: &Mutex<ExportState>, vm_id: &str, line: &Value) -> Result<bool> {
    let ids = job_ids(&json!([line["id"]]))?;
    let mut s = lock(shared);
    if !is_ours(vm_id, line) {
        s.others_seen += 1;
        return Ok(false);
    }
    for id in ids {
        if !s.job_ids.contains(&id) && s.job_ids.len() < MAX_JOBS {
            s.job_ids.push(id);
        }
    }
    Ok(true)
}

/// Most jobs one export starts (one per disk, or one export).
const MAX_JOBS: usize = 256;

/// The `job_ids` of a `started` line: strings of a sane length, a bounded number of them.
pub(super) fn job_ids(v: &Value) -> Result<Vec<String>> {
    let bad = || {
        Error::Remote(format!(
            "Hyper-V (export): job ids {v} are not a list of ids"
        ))
    };
    let Some(list) = v.as_array() else {
        return if v.is_null() {
            Ok(Vec::new())
        } else {
            Err(bad())
        };
    };
    if list.len() > MAX_JOBS {
        return Err(bad());
    }
    list.iter()
        .map(|id| match id.as_str() {
            Some(s) if !s.is_empty() && s.len() <= 512 => Ok(s.to_string()),
            _ => Err(bad()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_exports_jobs_are_taken() {
        let vm = "6f1c2a3b-0d4e-4f5a-8b9c-0d1e2f3a4b5c";
        let up = vm.to_uppercase();
        let job = |step: &str, class: &str, t: u64, vms: Value| json!({"event": "job", "step": step, "id": "J", "class": class, "job_type": t, "vms": vms});
        assert!(is_ours(
            vm,
            &job("export", "Msvm_ConcreteJob", 0, json!([up]))
        ));
        assert!(is_ours(
            vm,
            &job("convert", "Msvm_StorageJob", 6, json!([]))
        ));
        for other in [
            // Another party's image job, in either step.
            job("export", "Msvm_StorageJob", 3, json!([])),
            job("convert", "Msvm_StorageJob", 3, json!([])),
            // This VM's merge (Remove-VMSnapshot), in either step.
            job("export", "Msvm_StorageJob", 5, json!([up])),
            job("convert", "Msvm_StorageJob", 5, json!([up])),
            // A job of no VM while exporting; another VM's export.
            job("export", "Msvm_ConcreteJob", 0, json!([])),
            job(
                "export",
                "Msvm_ConcreteJob",
                0,
                json!(["00000000-0000-4000-8000-000000000009"]),
            ),
            job(
                "convert",
                "Msvm_StorageJob",
                6,
                json!(["00000000-0000-4000-8000-000000000009"]),
            ),
            job("other", "Msvm_ConcreteJob", 0, json!([up])),
        ] {
            assert!(!is_ours(vm, &other), "{other}");
        }
    }

    #[test]
    fn job_ids_from_the_host_are_bounded_strings() {
        assert_eq!(job_ids(&Value::Null).unwrap(), Vec::<String>::new());
        assert_eq!(job_ids(&json!(["A-1", "B-2"])).unwrap(), ["A-1", "B-2"]);
        for bad in [
            json!("A-1"),
            json!([1]),
            json!([""]),
            json!(["x".repeat(513)]),
            json!(vec!["id"; MAX_JOBS + 1]),
        ] {
            assert!(job_ids(&bad).is_err(), "{bad}");
        }
    }
}
