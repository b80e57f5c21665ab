//! Drives the C programs in tests/c/: each is compiled against include/hypersdk.h and the
//! freshly built libhypersdk.so, run against a real HTTP peer, and must exit 0 with no report:
//! once with AddressSanitizer + UBSan, once (without them) under Valgrind's memcheck, which also
//! sees what happens inside the Rust library (uninitialised reads, invalid frees, leaks).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::peer_runtime;
use support::server::{Faults, TestServer, pattern};

fn lib_dir() -> PathBuf {
    // target/<profile>/deps/c_abi-… → target/<profile>
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

#[derive(Clone, Copy, PartialEq)]
enum Check {
    Sanitizers,
    Valgrind,
}

fn compile(name: &str, out: &Path, check: Check) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = lib_dir();
    assert!(
        lib.join("libhypersdk.so").exists(),
        "libhypersdk.so not built in {}",
        lib.display()
    );
    let bin = out.join(name);
    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "gcc".into()));
    cc.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-O1"]);
    if check == Check::Sanitizers {
        cc.args([
            "-fsanitize=address,undefined",
            "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=all",
        ]);
    }
    let status = cc
        .arg(format!("-I{}", root.join("include").display()))
        .arg(root.join("tests/c").join(format!("{name}.c")))
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lhypersdk", "-lpthread", "-o"])
        .arg(&bin)
        .status()
        .expect("run gcc");
    assert!(status.success(), "compiling tests/c/{name}.c failed");
    bin
}

fn run(bin: &Path, args: &[&str], check: Check) {
    let mut cmd = match check {
        Check::Sanitizers => Command::new(bin),
        Check::Valgrind => {
            let mut c = Command::new("valgrind");
            // Definite leaks and memory errors fail the run; the library's runtime lives as
            // long as the process by design ("still reachable").
            c.args([
                "--error-exitcode=97",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite",
                "--show-leak-kinds=definite",
                "--quiet",
            ])
            .arg(bin)
            .env("HS_TEST_UNDER_VALGRIND", "1");
            c
        }
    };
    let out = cmd
        .args(args)
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:abort_on_error=0:halt_on_error=1",
        )
        .env("UBSAN_OPTIONS", "print_stacktrace=1")
        .output()
        .expect("run C test");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        bin.display(),
        out.status
    );
    assert!(
        !stderr.contains("Sanitizer") && !stderr.contains("== ERROR SUMMARY"),
        "sanitizer report from {}:\n{stderr}",
        bin.display()
    );
}

#[test]
fn c_programs_under_address_sanitizer() {
    c_programs(Check::Sanitizers);
}

#[test]
fn c_programs_under_valgrind() {
    c_programs(Check::Valgrind);
}

fn c_programs(check: Check) {
    let rt = peer_runtime();
    let fast = rt.block_on(TestServer::start());
    let slow = rt.block_on(TestServer::start());
    let n = 6;
    let sizes: Vec<usize> = (0..n).map(|i| 1_500_000 + i * 77_777).collect();
    for (i, s) in sizes.iter().enumerate() {
        fast.put(&format!("file{i}.bin"), pattern(*s, 100 + i as u64));
    }
    slow.put("slow.bin", pattern(8 << 20, 7));
    slow.set_faults(Faults {
        bytes_per_sec: 256 * 1024,
        ..Default::default()
    });

    let build = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let outs = out.path().to_str().unwrap();

    let bin = compile("concurrent", build.path(), check);
    run(
        &bin,
        &[&format!("http://{}", fast.addr), &n.to_string(), outs],
        check,
    );
    for (i, s) in sizes.iter().enumerate() {
        let got = std::fs::read(out.path().join(format!("file{i}.bin"))).unwrap();
        assert!(
            got == pattern(*s, 100 + i as u64),
            "file{i}.bin differs from the source"
        );
    }

    let cancel_dir = tempfile::tempdir().unwrap();
    let bin = compile("cancel_in_callback", build.path(), check);
    run(
        &bin,
        &[&slow.url("slow.bin"), cancel_dir.path().to_str().unwrap()],
        check,
    );
    assert!(
        !cancel_dir.path().join("slow.bin").exists(),
        "a cancelled export left a final file"
    );

    let priority_dir = tempfile::tempdir().unwrap();
    let bin = compile("priority", build.path(), check);
    run(
        &bin,
        &[&slow.url("slow.bin"), priority_dir.path().to_str().unwrap()],
        check,
    );

    let misuse_dir = tempfile::tempdir().unwrap();
    let bin = compile("misuse", build.path(), check);
    run(
        &bin,
        &[&slow.url("slow.bin"), misuse_dir.path().to_str().unwrap()],
        check,
    );
    assert!(
        !misuse_dir.path().join("slow.bin").exists(),
        "a freed export left a final file"
    );
}

/// What a compiled program depends on (hs_progress's size and offsets, the enum values, the size
/// macros), as a C compiler reads the header, equals the committed table: changing any of it
/// breaks programs built against an older header, so it must be a deliberate edit of
/// tests/abi/layout.txt (and a major version). The crate's own unit test checks the Rust side
/// against the same table.
#[test]
fn the_header_abi_matches_the_committed_layout_table() {
    let build = tempfile::tempdir().unwrap();
    let bin = compile("abi_layout", build.path(), Check::Sanitizers);
    let out = Command::new(&bin).output().unwrap();
    assert!(out.status.success());
    let got = String::from_utf8(out.stdout).unwrap();
    let table =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/abi/layout.txt"))
            .unwrap();
    let want: Vec<&str> = table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    let got: Vec<&str> = got.lines().collect();
    assert_eq!(
        got, want,
        "the header's ABI differs from tests/abi/layout.txt (left: the header now)"
    );
}

/// The shared library exports the `hs_*` functions and nothing else (a dependency's C symbols,
/// such as crc-fast's `crc_fast_*`, stayed visible before the link flags of build.rs), and
/// carries the SONAME programs record.
#[test]
fn the_shared_library_exports_only_hs_functions_and_has_a_soname() {
    let so = lib_dir().join("libhypersdk.so");
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&so)
        .output()
        .expect("nm (binutils)");
    assert!(out.status.success());
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    let foreign: Vec<&String> = names.iter().filter(|n| !n.starts_with("hs_")).collect();
    assert!(foreign.is_empty(), "exported but not ours: {foreign:?}");
    // Every function of the header is there.
    let header =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/hypersdk.h"))
            .unwrap();
    for n in header
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("hs_"))
    {
        let is_fn = header.contains(&format!("{n}("));
        if is_fn {
            assert!(
                names.iter().any(|x| x == n),
                "{n} is in the header but not exported"
            );
        }
    }
    let dyn_section = Command::new("readelf")
        .args(["-d"])
        .arg(&so)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&dyn_section.stdout);
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    assert!(
        text.contains(&format!("Library soname: [libhypersdk.so.{major}]")),
        "{text}"
    );
    assert!(lib_dir().join(format!("libhypersdk.so.{major}")).exists());
}

/// The README's C example compiles and links as written (with warnings as errors): a key or a
/// function it names that the header does not have, or a placeholder that is not C, fails here.
#[test]
fn the_readmes_c_example_compiles_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let example = readme
        .split("```c\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.contains("int main(") && b.contains("hs_export_start("))
        .expect("README.md has a ```c block with main() calling hs_export_start");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("readme_example.c"), example).unwrap();
    let lib = lib_dir();
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "gcc".into()))
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .arg(format!("-I{}", root.join("include").display()))
        .arg(dir.path().join("readme_example.c"))
        .arg(format!("-L{}", lib.display()))
        .args(["-lhypersdk", "-o"])
        .arg(dir.path().join("readme_example"))
        .status()
        .expect("run gcc");
    assert!(status.success(), "the README's C example does not compile");
}
