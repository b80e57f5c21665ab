//! The history view's state: the records of `hypersdk history` (newest first), printable.

use serde_json::Value;

use crate::shown;

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Record {
    pub id: u64,
    pub when: String,
    pub provider: String,
    pub status: String,
    pub bytes: u64,
    pub source: String,
    /// The error, or the files written.
    pub detail: String,
}

impl Record {
    pub(crate) fn of(v: &Value) -> Option<Record> {
        let t = |k: &str| shown::text(v[k].as_str().unwrap_or("")).into_owned();
        let files: Vec<String> = v["files"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| shown::text(f["path"].as_str().unwrap_or("")).into_owned())
            .collect();
        Some(Record {
            id: v["id"].as_u64()?,
            when: crate::history_cmd::utc(v["time"].as_u64().unwrap_or(0)),
            provider: t("provider"),
            status: t("status"),
            bytes: v["bytes_total"].as_u64().unwrap_or(0),
            // Records written before sources were redacted may hold a secret.
            source: shown::source(v["source"].as_str().unwrap_or("")),
            detail: if files.is_empty() {
                shown::error(v["error"]["message"].as_str().unwrap_or(""))
            } else {
                files.join(", ")
            },
        })
    }
}

#[derive(Default)]
pub(crate) struct History {
    pub records: Vec<Record>,
    pub selected: usize,
    pub error: Option<String>,
    pub loaded: bool,
}

impl History {
    pub(crate) fn loaded(&mut self, result: Result<Vec<Value>, String>) {
        self.loaded = true;
        match result {
            Ok(all) => {
                self.records = all.iter().rev().filter_map(Record::of).collect();
                self.error = None;
            }
            Err(e) => self.error = Some(shown::text(&e).into_owned()),
        }
        self.move_by(0);
    }

    pub(crate) fn move_by(&mut self, delta: isize) {
        self.selected = super::render::moved(self.selected, delta, self.records.len());
    }

    pub(crate) fn selected_record(&self) -> Option<&Record> {
        self.records.get(self.selected)
    }
}
