//! The resume journal beside a temp file: which ranges are in place and which version of the
//! source they came from. Written atomically (temp + rename) and only after the data it
//! describes has been synced, so after a crash it never claims bytes that are not on disk.
//! It holds no URL (URLs can carry credentials).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::range_set::RangeSet;
use crate::error::{Error, Result};

const VERSION: u32 = 1;

/// What identifies one version of a remote object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Validator {
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validator {
    /// Whether resuming against this validator is safe: some identity beyond the size.
    pub fn is_usable(&self) -> bool {
        self.etag.is_some() || self.last_modified.is_some()
    }

    /// The value for an `If-Range` header: a strong ETag, else Last-Modified.
    pub fn if_range(&self) -> Option<&str> {
        match &self.etag {
            Some(e) if !e.starts_with("W/") => Some(e),
            _ => self.last_modified.as_deref(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub version: u32,
    pub validator: Validator,
    pub done: RangeSet,
}

impl Journal {
    pub fn new(validator: Validator) -> Self {
        Journal {
            version: VERSION,
            validator,
            done: RangeSet::new(),
        }
    }

    pub fn path_for(temp: &Path) -> PathBuf {
        let mut s = temp.as_os_str().to_owned();
        s.push(".journal");
        PathBuf::from(s)
    }

    /// Reads a journal; a missing, unreadable or inconsistent one is `None` (start over).
    pub fn load(path: &Path) -> Option<Journal> {
        let text = std::fs::read(path).ok()?;
        let j: Journal = serde_json::from_slice(&text).ok()?;
        (j.version == VERSION && j.done.is_valid_for(j.validator.size)).then_some(j)
    }

    pub fn store(&self, path: &Path) -> Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let data = serde_json::to_vec(self).map_err(|e| Error::Internal(e.to_string()))?;
        std::fs::write(&tmp, data).map_err(|e| Error::io(&tmp, "cannot write journal", e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, "cannot write journal", e))
    }
}
