//! `incremental_output: "delta"`: an incremental export that writes only what changed, for
//! tools that keep chains of deltas (backup catalogues, a restore that applies them in order)
//! instead of a complete new image.
//!
//! Per file, two files land beside each other in the output folder:
//! - `<file>.delta`: a sparse file of the disk's length; the changed ranges hold the new bytes,
//!   everything else is a hole (which says nothing: unchanged or zeroed, the map tells);
//! - `<file>.delta.json`: its map (`format: "hypersdk-delta/1"`), naming the base point and
//!   the new one, with `changed` (ranges whose bytes are in the delta) and `zeroed` (ranges
//!   that are zeros now); every other byte equals the base's.
//!
//! Applying one: copy the base image, write each `changed` range from the delta over it, write
//! zeros (or punch holes) over each `zeroed` range. The previous image is never read, so it
//! need not exist on this machine; a file whose base cannot serve goes in full under its
//! usual name (a complete image: the chain restarts there), with the reason in the result.
//! The new point is recorded as the base as always, with `output: "delta"`: a later delta can
//! start from it, a later complete image cannot (there is no complete image to clone) and
//! goes in full saying so.

use std::io::Write as _;

use serde::Deserialize;
use serde_json::{Value, json};

use super::BaseFile;
use crate::error::{Error, Result};
use crate::transfer::OutDir;

/// What an incremental export writes (`incremental_output`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// A complete new image: the previous one cloned, the changes written over it.
    #[default]
    Image,
    /// Only the changes, with a map.
    Delta,
}

/// The map's `format`.
pub(crate) const FORMAT: &str = "hypersdk-delta/1";

/// `incremental_output` makes sense only with `incremental_from`.
pub(crate) fn check(output: Output, incremental_from: Option<&Value>) -> Result<()> {
    if output == Output::Delta && incremental_from.is_none() {
        return Err(Error::InvalidArgument(
            "incremental_output \"delta\" writes the changes since a base: set incremental_from \
             too (a first export is always a complete image)"
                .into(),
        ));
    }
    Ok(())
}

/// The delta file's name for a file that would be named `name`.
pub(crate) fn file_name(name: &str) -> String {
    format!("{name}.delta")
}

/// The map's name beside the delta file `delta_name`.
pub(crate) fn map_name(delta_name: &str) -> String {
    format!("{delta_name}.json")
}

/// Whether a base file is a delta (no complete image to clone).
pub(crate) fn is_delta(f: &BaseFile) -> bool {
    f.cloud.get("output").and_then(Value::as_str) == Some("delta")
}

/// Why an incremental file cannot start from `f` with `output`, if it cannot.
pub(crate) fn refuses(f: &BaseFile, output: Output) -> Option<String> {
    (output == Output::Image && is_delta(f)).then(|| {
        format!(
            "the base's {} is a delta (incremental_output \"delta\"), not a complete image to \
             start from; use incremental_output \"delta\" again, or a base written as an image",
            f.name
        )
    })
}

/// What a dry run says an incremental export writes, `unit` being what the cloud compares
/// ("blocks", "pages").
pub(crate) fn planned(output: Output, unit: &str) -> String {
    match output {
        Output::Delta => format!(
            "instead of each image, where its base serves: <file>.delta (only the {unit} changed \
             since its base snapshot, sparse) and its map <file>.delta.json; a file whose base \
             cannot serve comes in full under its usual name (the result says why)"
        ),
        Output::Image => format!(
            "each made from the earlier image (cloned) with only the {unit} changed since its \
             base snapshot fetched, or in full when that base cannot serve (the result says why)"
        ),
    }
}

/// One delta file's map.
#[derive(Debug, Clone)]
pub(crate) struct Map {
    /// The delta file's name in the output folder.
    pub name: String,
    /// The disk's length.
    pub size: u64,
    /// The cloud's names of the base point and of the new one (snapshot ids).
    pub base: String,
    pub point: String,
    /// Sorted, disjoint ranges `[start, end)`.
    pub changed: Vec<(u64, u64)>,
    pub zeroed: Vec<(u64, u64)>,
}

impl Map {
    pub fn to_value(&self) -> Value {
        let ranges = |r: &[(u64, u64)]| r.iter().map(|(a, b)| json!([a, b])).collect::<Vec<_>>();
        json!({
            "format": FORMAT,
            "file": self.name,
            "size": self.size,
            "base": self.base,
            "point": self.point,
            "changed": ranges(&self.changed),
            "zeroed": ranges(&self.zeroed),
        })
    }

    /// Writes the map as a temp file of `dir` (synced); returns (temp name, final name) for
    /// the engine to rename with the downloads.
    pub fn write(&self, dir: &OutDir) -> Result<(String, String)> {
        let name = map_name(&self.name);
        let temp = format!("{name}.hspart");
        let path = dir.join(&temp);
        let mut f = dir.create_replacing_own(&temp)?;
        let text = serde_json::to_vec_pretty(&self.to_value())
            .map_err(|e| Error::Internal(e.to_string()))?;
        f.write_all(&text)
            .map_err(|e| Error::io(&path, "cannot write", e))?;
        f.sync_all()
            .map_err(|e| Error::io(&path, "cannot sync", e))?;
        Ok((temp, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_needs_a_base_and_an_image_cannot_start_from_a_delta() {
        assert!(check(Output::Delta, None).is_err());
        assert!(check(Output::Delta, Some(&json!("r.json"))).is_ok());
        assert!(check(Output::Image, None).is_ok());
        let mut f = BaseFile {
            name: "v.img.delta".into(),
            path: "/x/v.img.delta".into(),
            size: 1,
            modified_ns: 1,
            cloud: serde_json::Map::new(),
        };
        assert_eq!(refuses(&f, Output::Image), None);
        f.cloud.insert("output".into(), json!("delta"));
        assert!(refuses(&f, Output::Image).unwrap().contains("is a delta"));
        assert_eq!(refuses(&f, Output::Delta), None);
    }

    #[test]
    fn the_map_lists_its_ranges() {
        let m = Map {
            name: "v.img.delta".into(),
            size: 1 << 20,
            base: "snap-a".into(),
            point: "snap-b".into(),
            changed: vec![(0, 4096), (65536, 131072)],
            zeroed: vec![(8192, 12288)],
        };
        let v = m.to_value();
        assert_eq!(v["format"], FORMAT);
        assert_eq!(v["changed"], json!([[0, 4096], [65536, 131072]]));
        assert_eq!(v["zeroed"], json!([[8192, 12288]]));
        assert_eq!(map_name(&m.name), "v.img.delta.json");
    }
}
