//! The Windows build (x86_64-pc-windows-gnu, MinGW-w64) run under Wine, for tests/windows_wine.rs.
//! scripts/test.sh builds it and sets `HS_WINE` (the `wine64` loader, which Debian's package puts
//! outside PATH) and `HS_WINDOWS_BUILD` (the folder with hypersdk.dll, hypersdk.exe and the
//! examples). The Wine prefix (`WINEPREFIX`, default `~/.cache/hypersdk-wine`, outside the clone
//! so CI reuses it) is made on first use, and gets the test-only `bcryptprimitives.dll`
//! (tests/c/win/bcryptprimitives.c: Wine 8.0 lacks the `ProcessPrng` Rust's std imports).
//! Windows programs see this machine's `/` as drive `Z:`.
#![allow(dead_code)]

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Wine {
    pub loader: PathBuf,
    pub prefix: PathBuf,
    /// hypersdk.dll, libhypersdk.dll.a, hypersdk.exe, examples/.
    pub build: PathBuf,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `cmd`, which must succeed; its output otherwise in the panic.
fn must(cmd: &mut Command, what: &str) -> Output {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        o.status.success(),
        "{what} failed ({}):\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The set-up Wine, once per test process.
pub fn wine() -> &'static Wine {
    static W: OnceLock<Wine> = OnceLock::new();
    W.get_or_init(|| {
        let loader = PathBuf::from(
            std::env::var_os("HS_WINE")
                .expect("HS_WINE (the wine64 loader; scripts/test.sh sets it)"),
        );
        let build = PathBuf::from(std::env::var_os("HS_WINDOWS_BUILD").expect(
            "HS_WINDOWS_BUILD (the Windows debug build's folder; scripts/test.sh sets it)",
        ));
        assert!(
            build.join("hypersdk.dll").exists(),
            "no hypersdk.dll in {}",
            build.display()
        );
        let prefix = std::env::var_os("WINEPREFIX")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/hypersdk-wine")
            });
        let w = Wine {
            loader,
            prefix,
            build,
        };
        let system32 = w.prefix.join("drive_c/windows/system32");
        if !system32.join("kernel32.dll").exists() {
            must(
                w.command(Path::new("wineboot")).arg("-u"),
                "wineboot -u (making the Wine prefix)",
            );
        }
        // The shim, rebuilt when its source changed (the prefix outlives the clone).
        let dll = system32.join("bcryptprimitives.dll");
        let src = root().join("tests/c/win/bcryptprimitives.c");
        let stale = match (dll.metadata(), src.metadata()) {
            (Ok(d), Ok(s)) => d.modified().unwrap() < s.modified().unwrap(),
            _ => true,
        };
        if stale {
            let tmp = system32.join("bcryptprimitives.dll.tmp");
            must(
                Command::new("x86_64-w64-mingw32-gcc")
                    .args(["-shared", "-O2", "-Wall", "-Werror", "-o"])
                    .arg(&tmp)
                    .arg(&src)
                    .arg(root().join("tests/c/win/bcryptprimitives.def"))
                    .arg("-ladvapi32"),
                "building tests/c/win/bcryptprimitives.c",
            );
            std::fs::rename(&tmp, &dll).unwrap();
        }
        w
    })
}

impl Wine {
    /// `exe` (a Windows program, or a builtin such as `wineboot`) under this Wine and prefix.
    pub fn command(&self, exe: &Path) -> Command {
        let mut c = Command::new(&self.loader);
        c.arg(exe)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            // No desktop integration or Mono/Gecko installers on a fresh prefix.
            .env("WINEDLLOVERRIDES", "mscoree,mshtml,winemenubuilder.exe=d")
            .env_remove("RUST_LOG");
        c
    }

    /// A program of the Windows build (`hypersdk.exe`, `examples/fetch.exe`).
    pub fn exe(&self, rel: &str) -> PathBuf {
        let p = self.build.join(rel);
        assert!(p.exists(), "{} not built", p.display());
        p
    }

    /// Compiles tests/c/`name`.c with MinGW-w64 against include/hypersdk.h and the Windows
    /// build's import library, into `dir` with hypersdk.dll beside it (where Windows looks
    /// first).
    pub fn compile_c(&self, name: &str, dir: &Path) -> PathBuf {
        let exe = dir.join(format!("{name}.exe"));
        must(
            Command::new("x86_64-w64-mingw32-gcc")
                .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-O1"])
                .arg(format!("-I{}", root().join("include").display()))
                .arg(root().join("tests/c").join(format!("{name}.c")))
                .arg(format!("-L{}", self.build.display()))
                .args(["-lhypersdk", "-o"])
                .arg(&exe),
            &format!("compiling tests/c/{name}.c for Windows"),
        );
        let dll = dir.join("hypersdk.dll");
        if !dll.exists() {
            std::fs::copy(self.build.join("hypersdk.dll"), dll).unwrap();
        }
        exe
    }

    /// Compiles a test-only Windows program of tests/c/win (`name`.c, linked with `libs`) to
    /// `exe`.
    pub fn compile_tool(&self, name: &str, exe: &Path, libs: &[&str]) {
        must(
            Command::new("x86_64-w64-mingw32-gcc")
                .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-o"])
                .arg(exe)
                .arg(root().join("tests/c/win").join(format!("{name}.c")))
                .args(libs),
            &format!("compiling tests/c/win/{name}.c"),
        );
    }

    /// Runs `cmd` to its end and returns its output, or kills it after five minutes and
    /// panics: a program hung under Wine fails its test instead of holding CI.
    pub fn output(&self, cmd: &mut Command) -> Output {
        let limit = Duration::from_secs(300);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let reader = |mut r: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = r.read_to_end(&mut v);
                v
            })
        };
        let out = reader(Box::new(child.stdout.take().unwrap()));
        let err = reader(Box::new(child.stderr.take().unwrap()));
        let t = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if t.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{cmd:?} did not end within {} s under Wine (killed); stderr:\n{}",
                    limit.as_secs(),
                    String::from_utf8_lossy(&err.join().unwrap())
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Output {
            status,
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
        }
    }

    /// Runs `exe` with `args` to its end; panics unless it exits 0, showing its output.
    pub fn run_ok(&self, exe: &Path, args: &[&str]) -> String {
        let o = self.output(self.command(exe).args(args));
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "{} under Wine failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
            exe.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        stdout
    }
}

/// `p` as a Windows program names it, with `/` (for JSON and command lines): `Z:/tmp/x`.
pub fn z(p: &Path) -> String {
    format!("Z:{}", p.display())
}

/// `p` as Windows writes it: `Z:\tmp\x`.
pub fn native(p: &Path) -> String {
    format!("Z:{}", p.display()).replace('/', "\\")
}
