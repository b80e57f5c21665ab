//! Link settings of the shared library (Linux, ELF): it exports exactly the `hs_*` functions
//! (`--exclude-libs,ALL` hides the C symbols dependencies export, such as crc-fast's
//! `crc_fast_*`) and carries the SONAME `libhypersdk.so.<major>`, the name programs record and
//! the loader looks for. Only the cdylib is affected; the rlib and staticlib are not.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
        println!("cargo:rustc-cdylib-link-arg=-Wl,--exclude-libs,ALL");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libhypersdk.so.{major}");
        #[cfg(unix)]
        // Programs linked against the build tree record the SONAME; give it a name there too
        // (`make install` makes the same links under PREFIX/lib). OUT_DIR is
        // <target>/<profile>/build/hypersdk-<hash>/out.
        if let Some(profile_dir) = std::env::var_os("OUT_DIR")
            .map(std::path::PathBuf::from)
            .and_then(|o| o.ancestors().nth(3).map(|p| p.to_path_buf()))
        {
            let link = profile_dir.join(format!("libhypersdk.so.{major}"));
            if std::fs::symlink_metadata(&link).is_err() {
                let _ = std::os::unix::fs::symlink("libhypersdk.so", &link);
            }
        }
    }
}
