//! The Hyper-V jobs this export started: `export.ps1` calls Hyper-V's WMI methods itself
//! (ExportSystemDefinition, ConvertVirtualHardDisk) and reports the job each returned in its
//! out parameter `Job`, and nothing else; those are the only jobs cleanup ever stops. No job is
//! ever taken for ours because of when it appeared, what it affects or its `ElementName`.

use std::sync::Mutex;

use serde_json::{Value, json};

use super::export::ExportState;
use crate::error::{Error, Result};
use crate::sync::lock;

/// The methods whose returned jobs a `job` line may name.
const METHODS: [&str; 2] = ["ExportSystemDefinition", "ConvertVirtualHardDisk"];

/// Records the job of a `job` line: the job a Hyper-V method called by this export returned.
/// A line that does not say so (another step, another method) is refused, not guessed at.
pub(super) fn note_job(shared: &Mutex<ExportState>, line: &Value) -> Result<()> {
    let method = line["method"].as_str().unwrap_or("");
    if !matches!(line["step"].as_str(), Some("export" | "convert")) || !METHODS.contains(&method) {
        return Err(Error::Remote(format!(
            "Hyper-V (export): a job line that names no job of this export's calls: {line}"
        )));
    }
    let ids = job_ids(&json!([line["id"]]))?;
    let mut s = lock(shared);
    for id in ids {
        if !s.job_ids.contains(&id) && s.job_ids.len() < MAX_JOBS {
            s.job_ids.push(id);
        }
    }
    Ok(())
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
    fn only_jobs_returned_by_the_exports_calls_are_recorded() {
        let shared = Mutex::new(ExportState::default());
        let line = |step: &str, method: &str, id: &str| json!({"event": "job", "step": step, "method": method, "id": id});
        note_job(&shared, &line("export", "ExportSystemDefinition", "A")).unwrap();
        note_job(&shared, &line("convert", "ConvertVirtualHardDisk", "B")).unwrap();
        note_job(&shared, &line("convert", "ConvertVirtualHardDisk", "B")).unwrap();
        for bad in [
            line("other", "ExportSystemDefinition", "C"),
            line("export", "MergeVirtualHardDisk", "C"),
            json!({"event": "job", "step": "export", "id": "C", "class": "Msvm_StorageJob"}),
            line("export", "ExportSystemDefinition", ""),
        ] {
            assert!(note_job(&shared, &bad).is_err(), "{bad}");
        }
        assert_eq!(lock(&shared).job_ids, ["A", "B"]);
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
