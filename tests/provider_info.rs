//! hs_provider_info's schema, and the bindings, the command's help and the PowerShell module
//! checked against it: a provider or key added in Rust and missing there fails here.

use serde_json::Value;

fn schema() -> Value {
    serde_json::from_str(&hypersdk::provider_info_json()).unwrap()
}

#[test]
fn every_known_provider_is_described_with_its_keys() {
    let s = schema();
    let providers = s["providers"].as_array().unwrap();
    let names: Vec<&str> = providers
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["aws", "azure", "gcp", "http", "hyperv", "vsphere"]);
    for p in providers {
        assert_eq!(p["built_in"], true, "{p}");
        assert!(!p["sources"].as_array().unwrap().is_empty(), "{p}");
        assert!(!p["option_keys"].as_array().unwrap().is_empty(), "{p}");
    }
    let aws = &providers[0];
    let cfg: Vec<&str> = aws["config_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert!(
        cfg.contains(&"region") && cfg.contains(&"ca_bundle_pem"),
        "{cfg:?}"
    );
}
