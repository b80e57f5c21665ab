//! The library as C users install it: `make install-files` (what `make install` runs after the
//! release build) and `make dist-files` (what `make dist` runs), fed with the test build, into
//! temp folders. Then programs are built against the result the ways users build them —
//! pkg-config shared and static (Libs.private), CMake's find_package with both imported targets,
//! the tarball unpacked somewhere else (relocatable) — and each one downloads a file through the
//! library it was linked with.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::peer_runtime;
use support::server::{TestServer, pattern};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn build_dir() -> PathBuf {
    // target/<profile>/deps/install-… → target/<profile>
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

const VERSION: &str = env!("CARGO_PKG_VERSION");
const MAJOR: &str = env!("CARGO_PKG_VERSION_MAJOR");

fn make(args: &[String]) {
    let out = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(root())
        .args(args)
        .output()
        .expect("make");
    assert!(
        out.status.success(),
        "make {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn pkg_config(pc_dir: &Path, args: &[&str]) -> Vec<String> {
    let out = sh(Command::new("pkg-config")
        .env("PKG_CONFIG_PATH", pc_dir)
        .env_remove("PKG_CONFIG_LIBDIR")
        .args(args)
        .arg("hypersdk"));
    out.split_whitespace().map(str::to_string).collect()
}

/// Compiles tests/c/installed.c with `flags`, runs it against a served file and checks the
/// download. Returns the program's dynamic section (readelf -d) for the caller's checks.
fn build_and_run(bin: &Path, flags: &[String], url: &str, want: &[u8]) -> String {
    sh(Command::new("gcc")
        .args(["-std=c11", "-Wall", "-Werror", "-o"])
        .arg(bin)
        .arg(root().join("tests/c/installed.c"))
        .args(flags));
    run(bin, url, want)
}

fn run(bin: &Path, url: &str, want: &[u8]) -> String {
    let out = tempfile::tempdir().unwrap();
    let printed = sh(Command::new(bin).arg(url).arg(out.path()));
    assert_eq!(printed.trim(), format!("ok {VERSION}"));
    let got = std::fs::read(out.path().join("data.bin")).unwrap();
    assert!(got == want, "{} downloaded wrong bytes", bin.display());
    sh(Command::new("readelf").arg("-d").arg(bin))
}

fn needs_libhypersdk_so(dynamic: &str) -> bool {
    dynamic.contains(&format!("Shared library: [libhypersdk.so.{MAJOR}]"))
}

#[test]
fn make_install_gives_pkg_config_cmake_and_versioned_libraries_that_programs_build_against() {
    let rt = peer_runtime();
    let server = rt.block_on(TestServer::start());
    let data = pattern(3 << 20, 41);
    server.put("data.bin", data.clone());
    let url = server.url("data.bin");

    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("usr");
    make(&[
        "install-files".into(),
        format!("BUILD_DIR={}", build_dir().display()),
        format!("PREFIX={}", prefix.display()),
    ]);
    let lib = prefix.join("lib");

    // The usual chain of names: .so → .so.MAJOR → .so.MAJOR.MINOR.PATCH (the file).
    let link = |n: &str| std::fs::read_link(lib.join(n)).unwrap();
    assert_eq!(
        link("libhypersdk.so"),
        Path::new(&format!("libhypersdk.so.{MAJOR}"))
    );
    assert_eq!(
        link(&format!("libhypersdk.so.{MAJOR}")),
        Path::new(&format!("libhypersdk.so.{VERSION}"))
    );
    assert!(lib.join(format!("libhypersdk.so.{VERSION}")).is_file());
    assert!(prefix.join("include/hypersdk.h").is_file());

    let pc_dir = lib.join("pkgconfig");
    assert_eq!(
        pkg_config(&pc_dir, &["--modversion"]),
        vec![VERSION.to_string()]
    );

    // pkg-config, shared: records the SONAME, finds the library through the rpath we give.
    let mut flags = pkg_config(&pc_dir, &["--cflags", "--libs"]);
    flags.push(format!("-Wl,-rpath,{}", lib.display()));
    let dynamic = build_and_run(&tmp.path().join("shared"), &flags, &url, &data);
    assert!(needs_libhypersdk_so(&dynamic), "{dynamic}");

    // pkg-config, static: Libs.private is all a C program needs beside the archive; the
    // program then depends on no libhypersdk.so.
    let flags: Vec<String> = pkg_config(&pc_dir, &["--static", "--cflags", "--libs"])
        .into_iter()
        .map(|f| {
            if f == "-lhypersdk" {
                "-l:libhypersdk.a".to_string()
            } else {
                f
            }
        })
        .collect();
    let dynamic = build_and_run(&tmp.path().join("static"), &flags, &url, &data);
    assert!(!needs_libhypersdk_so(&dynamic), "{dynamic}");

    // CMake: find_package with a version, both imported targets.
    let cmake = |build: &Path, prefix_path: &Path, want: &str| {
        Command::new("cmake")
            .arg("-S")
            .arg(root().join("tests/cmake"))
            .arg("-B")
            .arg(build)
            .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix_path.display()))
            .arg(format!("-DHS_WANT_VERSION={want}"))
            .arg(format!(
                "-DHS_SOURCE={}",
                root().join("tests/c/installed.c").display()
            ))
            .output()
            .unwrap()
    };
    let build = tmp.path().join("cmake-build");
    let configured = cmake(&build, &prefix, &format!("{MAJOR}.0"));
    assert!(
        configured.status.success(),
        "{}",
        String::from_utf8_lossy(&configured.stderr)
    );
    sh(Command::new("cmake").arg("--build").arg(&build));
    let dynamic = run(&build.join("installed_shared"), &url, &data);
    assert!(needs_libhypersdk_so(&dynamic), "{dynamic}");
    let dynamic = run(&build.join("installed_static"), &url, &data);
    assert!(!needs_libhypersdk_so(&dynamic), "{dynamic}");
    // A newer major version than the installed one is refused by the version file.
    let next_major: u32 = MAJOR.parse::<u32>().unwrap() + 1;
    let refused = cmake(
        &tmp.path().join("cmake-newer"),
        &prefix,
        &format!("{next_major}.0"),
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("hypersdk"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn make_dist_makes_a_checksummed_relocatable_tarball() {
    let rt = peer_runtime();
    let server = rt.block_on(TestServer::start());
    let data = pattern(1 << 20, 42);
    server.put("data.bin", data.clone());
    let url = server.url("data.bin");

    let tmp = tempfile::tempdir().unwrap();
    let dist = tmp.path().join("dist");
    make(&[
        "dist-files".into(),
        format!("BUILD_DIR={}", build_dir().display()),
        format!("DIST_DIR={}", dist.display()),
    ]);
    let arch = sh(Command::new("uname").arg("-m")).trim().to_string();
    let name = format!("hypersdk-{VERSION}-linux-{arch}");
    let tarball = format!("{name}.tar.gz");
    // The checksum file verifies the tarball (and would not verify a changed one).
    sh(Command::new("sha256sum")
        .current_dir(&dist)
        .args(["-c", &format!("{tarball}.sha256")]));

    let listing = sh(Command::new("tar").arg("-tzf").arg(dist.join(&tarball)));
    let rid = match arch.as_str() {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    };
    for want in [
        format!("{name}/LICENSE"),
        format!("{name}/README.md"),
        format!("{name}/include/hypersdk.h"),
        format!("{name}/lib/libhypersdk.a"),
        format!("{name}/lib/libhypersdk.so"),
        format!("{name}/lib/libhypersdk.so.{MAJOR}"),
        format!("{name}/lib/libhypersdk.so.{VERSION}"),
        format!("{name}/lib/pkgconfig/hypersdk.pc"),
        format!("{name}/lib/cmake/hypersdk/hypersdk-config.cmake"),
        format!("{name}/lib/cmake/hypersdk/hypersdk-config-version.cmake"),
        format!("{name}/runtimes/linux-{rid}/native/libhypersdk.so"),
    ] {
        assert!(
            listing.lines().any(|l| l == want),
            "{want} missing:\n{listing}"
        );
    }

    // Beside the tarball, the folder HyperSdk.csproj packs by default (its Include pattern is
    // <root>/**/native/*hypersdk* with PackagePath runtimes/%(RecursiveDir)).
    assert!(
        dist.join(format!("runtimes/linux-{rid}/native/libhypersdk.so"))
            .is_file()
    );
    let csproj = std::fs::read_to_string(root().join("bindings/csharp/HyperSdk.csproj")).unwrap();
    assert!(csproj.contains("../../dist/runtimes/</HyperSdkNativeRoot>"));
    assert!(csproj.contains("PackagePath=\"runtimes/%(RecursiveDir)\""));

    // Unpacked somewhere else, the .pc still points at its own tree.
    let elsewhere = tmp.path().join("somewhere/else");
    std::fs::create_dir_all(&elsewhere).unwrap();
    sh(Command::new("tar")
        .arg("-xzf")
        .arg(dist.join(&tarball))
        .arg("-C")
        .arg(&elsewhere));
    std::fs::remove_dir_all(dist.join(&name)).unwrap();
    let tree = elsewhere.join(&name);
    let pc_dir = tree.join("lib/pkgconfig");
    let mut flags = pkg_config(&pc_dir, &["--cflags", "--libs"]);
    let include = flags
        .iter()
        .find(|f| f.starts_with("-I"))
        .expect("an -I flag")
        .clone();
    assert!(
        Path::new(&include[2..]).join("hypersdk.h").is_file(),
        "{include}"
    );
    flags.push(format!("-Wl,-rpath,{}", tree.join("lib").display()));
    let dynamic = build_and_run(&tmp.path().join("from-dist"), &flags, &url, &data);
    assert!(needs_libhypersdk_so(&dynamic), "{dynamic}");
}
