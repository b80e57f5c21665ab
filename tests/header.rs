//! The committed header must be what cbindgen makes of the code today.

#[test]
fn header_is_fresh() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let config =
        cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).expect("cbindgen.toml");
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not parse the crate")
        .write(&mut out);
    let path = format!("{dir}/include/hypersdk.h");
    if std::env::var_os("HS_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &out).unwrap();
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == out,
        "include/hypersdk.h is stale: run `HS_UPDATE_HEADER=1 cargo test --test header` and commit it"
    );
}
