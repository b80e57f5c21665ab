//! Export options common to every provider. The options JSON is one flat object: the keys listed
//! in [`CommonOptions::FIELDS`] are read here, every other key goes to the provider, which rejects
//! what it does not know. So an unknown key is always an error that names it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::transfer::TransferOptions;

/// Options every export understands. Defaults are documented on each field. Unknown keys never
/// reach this struct (see [`CommonOptions::parse`]), so it needs no `deny_unknown_fields`, which
/// serde cannot combine with the flattened downloader options.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct CommonOptions {
    /// Folder the files are written into; must exist. Default: the current directory.
    pub output_dir: PathBuf,
    /// Replace an existing file of the same name. Default false: an existing file is an error.
    pub overwrite: bool,
    /// Keep the temp file and journal on failure or cancel so the next run resumes. Default true.
    pub keep_partial: bool,
    /// Files downloaded at the same time within one export. Default 2.
    pub parallel_files: usize,
    /// Least time between two progress callbacks, ms. Default 100 (≤ 10 per second).
    pub progress_interval_ms: u64,
    /// Place in the queue for a slot (`max_concurrent_exports`): higher first, arrival order
    /// within a priority. Default 0.
    pub priority: i32,
    /// Permissions of the files the export creates, octal text. Default "0600": disk images
    /// hold whole machines.
    pub file_mode: String,
    /// How each file is fetched (part size, parallel parts, retries, stall timeout, rate).
    #[serde(flatten)]
    pub transfer: TransferOptions,
}

impl Default for CommonOptions {
    fn default() -> Self {
        CommonOptions {
            output_dir: PathBuf::from("."),
            overwrite: false,
            keep_partial: true,
            parallel_files: 2,
            progress_interval_ms: 100,
            priority: 0,
            file_mode: "0600".into(),
            transfer: TransferOptions::default(),
        }
    }
}

impl CommonOptions {
    pub const FIELDS: &'static [&'static str] = &[
        "output_dir",
        "overwrite",
        "keep_partial",
        "part_size",
        "max_part_size",
        "parts_in_flight",
        "max_parts_in_flight",
        "parallel_files",
        "max_bytes_per_second",
        "progress_interval_ms",
        "priority",
        "max_attempts",
        "stall_timeout_ms",
        "file_mode",
        "retry_base_delay_ms",
        "poll_file_interval_ms",
        "verify_resumed",
    ];

    /// Splits options JSON into the common part and the provider's part.
    pub fn parse(
        json: &str,
    ) -> Result<(CommonOptions, serde_json::Map<String, serde_json::Value>)> {
        let json = if json.trim().is_empty() { "{}" } else { json };
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| Error::InvalidArgument(format!("options JSON: {e}")))?;
        let serde_json::Value::Object(mut all) = value else {
            return Err(Error::InvalidArgument(
                "options JSON must be an object".into(),
            ));
        };
        let mut common = serde_json::Map::new();
        for key in Self::FIELDS {
            if let Some(v) = all.remove(*key) {
                common.insert((*key).to_string(), v);
            }
        }
        let mut opts: CommonOptions = serde_json::from_value(serde_json::Value::Object(common))
            .map_err(|e| Error::InvalidArgument(format!("options: {e}")))?;
        opts.output_dir = crate::paths::native_dir(&opts.output_dir);
        opts.validate()?;
        Ok((opts, all))
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidArgument(m.to_string()));
        if !(1..=16).contains(&self.parallel_files) {
            return bad("parallel_files must be between 1 and 16");
        }
        if self.progress_interval_ms == 0 {
            return bad("progress_interval_ms must be at least 1");
        }
        self.file_mode()?;
        self.transfer.validate()
    }

    /// `file_mode` as permission bits.
    pub fn file_mode(&self) -> Result<u32> {
        u32::from_str_radix(self.file_mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777 && *m & 0o600 == 0o600)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "file_mode {:?} must be octal permissions such as \"0600\" or \"0640\", readable and writable by the owner",
                    self.file_mode
                ))
            })
    }

    /// Checks the output folder exists and is a folder, before anything is written.
    pub fn check_output_dir(&self) -> Result<()> {
        match std::fs::metadata(&self.output_dir) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(Error::InvalidArgument(format!(
                "output_dir {} is not a directory",
                self.output_dir.display()
            ))),
            Err(e) => Err(Error::InvalidArgument(format!(
                "output_dir {} cannot be used: {e}",
                self.output_dir.display()
            ))),
        }
    }
}

/// Parses a provider's own options from what [`CommonOptions::parse`] left over. An unknown
/// key is named with the closest known one, and the error lists the common options too (the
/// provider's struct alone knows only its own).
pub(crate) fn parse_provider_options<T: serde::de::DeserializeOwned>(
    rest: serde_json::Map<String, serde_json::Value>,
) -> Result<T> {
    serde_json::from_value(serde_json::Value::Object(rest)).map_err(|e| {
        let msg = e.to_string();
        let unknown = msg
            .strip_prefix("unknown field `")
            .and_then(|r| r.split_once('`'))
            .map(|(k, _)| k.to_string());
        let Some(unknown) = unknown else {
            return Error::InvalidArgument(format!("options: {msg}"));
        };
        // serde's message goes on "expected one of `a`, `b`" (or "there are no fields").
        let own: Vec<String> = msg
            .split_once("expected ")
            .map(|(_, names)| {
                names
                    .split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Error::InvalidArgument(unknown_option(&unknown, &own))
    })
}

/// "unknown option `x` (did you mean `y`?); this provider's: …; every provider's: …".
fn unknown_option(key: &str, own: &[String]) -> String {
    let common = CommonOptions::FIELDS.iter().map(|s| s.to_string());
    let best = own
        .iter()
        .cloned()
        .chain(common)
        .map(|k| (strsim::jaro_winkler(key, &k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default();
    let own = if own.is_empty() {
        "none".to_string()
    } else {
        own.join(", ")
    };
    format!(
        "options: unknown option `{key}`{best}; this provider's options: {own}; every provider's: {}",
        CommonOptions::FIELDS.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_option_is_named_with_the_closest_and_every_common_one() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Own {
            s3_bucket: Option<String>,
        }
        let mut rest = serde_json::Map::new();
        rest.insert("max_bytes_per_secnd".into(), 5.into());
        let e = parse_provider_options::<Own>(rest).unwrap_err().to_string();
        assert!(e.contains("did you mean `max_bytes_per_second`?"), "{e}");
        assert!(e.contains("s3_bucket") && e.contains("overwrite"), "{e}");
        let mut rest = serde_json::Map::new();
        rest.insert("s3_buckit".into(), "b".into());
        let e = parse_provider_options::<Own>(rest).unwrap_err().to_string();
        assert!(e.contains("did you mean `s3_bucket`?"), "{e}");
        let mut rest = serde_json::Map::new();
        rest.insert("zzz".into(), 1.into());
        let e = parse_provider_options::<Own>(rest).unwrap_err().to_string();
        assert!(!e.contains("did you mean"), "{e}");
    }

    #[test]
    fn fields_match_struct() {
        let v = serde_json::to_value(CommonOptions::default()).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        let mut fields: Vec<_> = CommonOptions::FIELDS
            .iter()
            .map(|s| s.to_string())
            .collect();
        keys.sort();
        fields.sort();
        assert_eq!(keys, fields);
    }

    #[test]
    fn splits_and_rejects() {
        let (c, rest) = CommonOptions::parse(r#"{"part_size":131072,"files":[]}"#).unwrap();
        assert_eq!(c.transfer.part_size, 131072);
        assert!(rest.contains_key("files"));
        let e = CommonOptions::parse(r#"{"part_size":1000}"#).unwrap_err();
        assert!(e.to_string().contains("part_size"));
        let e = CommonOptions::parse(r#"{"overwrite":"yes"}"#).unwrap_err();
        assert!(e.to_string().contains("invalid type"), "{e}");
        let e = CommonOptions::parse("[1]").unwrap_err();
        assert!(e.to_string().contains("object"));
    }
}
