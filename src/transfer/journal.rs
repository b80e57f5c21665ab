//! The resume journal beside a temp file: which ranges are in place and which version of the
//! source they came from. Written atomically (temp + rename) and only after the data it
//! describes has been synced, so after a crash it never claims bytes that are not on disk.
//! It holds no URL (URLs can carry credentials).

use std::io::{Read as _, Write as _};

use serde::{Deserialize, Serialize};

use super::outdir::{JOURNAL_SUFFIX, OutDir};
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
    /// Whether bytes kept from an earlier run may be trusted against this validator: only a
    /// strong ETag (or a provider's own identity: S3 ETag, GCS generation, Azure ETag, a local
    /// file's inode and mtime) says the object is byte for byte the same. A weak ETag or a
    /// Last-Modified date does not, so without a strong one a resume starts over.
    pub fn is_usable(&self) -> bool {
        self.strong_etag().is_some()
    }

    pub fn strong_etag(&self) -> Option<&str> {
        self.etag.as_deref().filter(|e| !e.starts_with("W/"))
    }

    /// The value for an `If-Range` header: a strong ETag, else Last-Modified when it is an
    /// HTTP date (anything else there would be read as an entity tag, perhaps a weak one, which
    /// If-Range must never carry).
    pub fn if_range(&self) -> Option<&str> {
        match &self.etag {
            Some(e) if !e.starts_with("W/") => Some(e),
            _ => self
                .last_modified
                .as_deref()
                .filter(|d| httpdate::parse_http_date(d).is_ok()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub version: u32,
    pub validator: Validator,
    pub done: RangeSet,
    /// CRC32C of what each part received so far: part start → (end, crc of `[start, end)`).
    /// On resume, bytes kept from an earlier run are read back and checked against these
    /// (when no whole-file checksum will check them anyway).
    #[serde(default)]
    pub crcs: std::collections::BTreeMap<u64, (u64, u32)>,
}

impl Journal {
    pub fn new(validator: Validator) -> Self {
        Journal {
            version: VERSION,
            validator,
            done: RangeSet::new(),
            crcs: Default::default(),
        }
    }

    /// The journal's name beside destination `name`.
    pub fn name_for(name: &str) -> String {
        format!("{name}{JOURNAL_SUFFIX}")
    }

    /// Reads a journal; a missing, unreadable, inconsistent or foreign one (a symlink, a file
    /// of another user) is `None`: start over.
    pub fn load(dir: &OutDir, name: &str) -> Option<Journal> {
        let mut f = dir.open_own(name).ok()??;
        let mut text = Vec::new();
        f.read_to_end(&mut text).ok()?;
        Self::from_bytes(&text)
    }

    /// A journal's bytes as [`Journal::load`] reads them: `None` unless consistent.
    pub fn from_bytes(text: &[u8]) -> Option<Journal> {
        let j: Journal = serde_json::from_slice(text).ok()?;
        (j.version == VERSION && j.done.is_valid_for(j.validator.size)).then_some(j)
    }

    /// Writes the journal atomically: a temp file of ours, then a rename over the old one.
    pub fn store(&self, dir: &OutDir, name: &str) -> Result<()> {
        let tmp = format!("{name}.tmp");
        let data = serde_json::to_vec(self).map_err(|e| Error::Internal(e.to_string()))?;
        let mut f = dir.create_replacing_own(&tmp)?;
        f.write_all(&data)
            .map_err(|e| Error::io(&dir.join(&tmp), "cannot write journal", e))?;
        drop(f);
        dir.rename(&tmp, name, true)
    }
}
