//! The fuzz targets' way in (cargo feature `fuzzing`, off by default): Azure's parsers of
//! outside input — the client config, the export options and source id (ARM ids, blob URLs),
//! and the page-range XML of a page blob as the official SDK's model reads it.

use super::config::{self, AzureConfig, AzureOptions};
use crate::providers::kit::config::parse_with_net;
use crate::seam::options::parse_provider_options;

pub(crate) fn config(json: &str) {
    if let Ok((cfg, _net)) = parse_with_net::<AzureConfig>("azure", json) {
        let _ = cfg.check();
    }
}

pub(crate) fn options(source: &str, rest: serde_json::Map<String, serde_json::Value>) {
    let Ok(o) = parse_provider_options::<AzureOptions>(rest) else {
        return;
    };
    if o.check().is_ok() {
        let rg = o.resource_group.as_deref().or(Some("rg"));
        let _ = config::parse_source(source, "00000000-0000-0000-0000-000000000000", rg);
    }
}

/// A `Get Page Ranges` answer: its ranges as `(start, end]` pairs, the way the export reads
/// them (negative or reversed ranges are the caller's to refuse).
pub(crate) fn page_list(xml: &[u8]) -> Option<Vec<(Option<i64>, Option<i64>)>> {
    let list: azure_storage_blob::models::PageList = azure_core::xml::from_xml(xml).ok()?;
    Some(list.page_ranges.iter().map(|r| (r.start, r.end)).collect())
}
