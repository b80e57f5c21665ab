//! The fuzz targets' way in (cargo feature `fuzzing`, off by default): Azure's parsers of
//! outside input — the client config, the export options and source id (ARM ids, blob URLs),
//! and the page-range XML of a page blob as the export reads it.

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

/// A `Get Page Ranges` answer read as the export reads it (our streaming parser, the check that
/// every range lies inside the blob's `size` bytes, the merge of close ranges), with the merge's
/// property checked: every listed range lies inside one merged range, and merged ranges are
/// sorted and apart.
pub(crate) fn page_list(xml: &[u8], size: u64) -> Option<Vec<(u64, u64)>> {
    let page = super::pages::parse(xml, "fuzz").ok()?;
    let _ = page.next;
    let listed = super::pages::within(page.ranges, size, "fuzz").ok()?;
    let merged = super::pages::coalesce(listed.clone(), super::pages::MERGE_GAP);
    for (a, b) in &listed {
        assert!(
            merged.iter().any(|(x, y)| x <= a && b <= y),
            "{a}-{b} lost by the merge"
        );
    }
    assert!(merged.windows(2).all(|w| w[0].1 < w[1].0), "{merged:?}");
    Some(merged)
}
