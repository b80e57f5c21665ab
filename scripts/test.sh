#!/usr/bin/env bash
# Runs every check: formatting, Rust unit and integration tests (real HTTP peer on 127.0.0.1,
# moto, vcsim), the C programs under AddressSanitizer and Valgrind, the header's freshness and
# C/C++ compilation, the `hypersdk` command (driven as a binary), the Go binding (go test -race), the C# binding (Mono), the PowerShell
# module's static checks, the fuzz targets for a bounded time (nightly), and clippy with
# warnings as errors. One debug build serves them all (the fuzz build has its own).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hypersdk-target}"

cargo fmt --all --check
# The library, its examples (the HTTP peer the CLI tests use) and the `hypersdk` command.
cargo build --workspace --lib --bins --examples
# The vSphere tests build tests/peers/vcsim (vcsim + ExportVm + CreateDescriptor) and govc
# with Go on first use; the Go binding's end-to-end test uses the same peer.
cargo test --workspace --no-fail-fast
export HS_VCSIM_PEER="$CARGO_TARGET_DIR/debug/peers/vcsim-peer"
if [ -d bindings/go ] && command -v go >/dev/null; then
  ./scripts/test-go.sh
fi
# The C# binding on Mono (mcs + mono from apt mono-devel), against the same debug build; its
# vSphere and AWS tests use the vcsim peer and the moto venv the Rust tests made.
bindings/csharp/tests/run.sh
# The multi-cloud demo end to end (make demo): every peer, one `hypersdk batch`, every output
# checked against its source, every peer stopped.
demo_out="$(mktemp -d)"
./scripts/demo.py "$demo_out"
rm -rf "$demo_out"
sleep 1
if pgrep -f "hypersdk-demo-" >/dev/null; then
  echo "the demo left peers running:" >&2
  pgrep -af "hypersdk-demo-" >&2
  exit 1
fi
# `hypersdk tui` in a real terminal (tmux): lists vcsim's VMs and HTTP files, exports two, cancels
# a third mid-way and checks its lease was aborted at the peer. SKIPPED without tmux.
./scripts/tui-e2e.py
# Windows (Hyper-V hosts run it): when rustup can install the x86_64-pc-windows-gnu standard
# library and MinGW-w64 is here, the whole workspace (every provider; aws-lc with MinGW's gcc and
# nasm) builds for Windows, debug, with warnings as errors; `make dist-windows`'s zip layout is
# checked on that build; and with Wine (apt wine64; Debian puts its loader outside PATH) the
# Windows build runs tests/windows_wine*.rs against the peers on 127.0.0.1: the C programs, the
# output folder's rules, hypersdk.exe's exit codes, resume after a kill, the Hyper-V local
# transport through a stand-in pwsh.exe. Anything missing is a visible SKIPPED.
win=x86_64-pc-windows-gnu
wine_loader="${HS_WINE:-/usr/lib/wine/wine64}"
if ! command -v x86_64-w64-mingw32-gcc >/dev/null; then
  echo "SKIPPED: the Windows build and its tests under Wine (no x86_64-w64-mingw32-gcc; apt gcc-mingw-w64-x86-64-posix)"
elif rustup target list --installed 2>/dev/null | grep -qx "$win" || timeout 300 rustup target add "$win"; then
  RUSTFLAGS="-D warnings" cargo build --target "$win" --target-dir "$CARGO_TARGET_DIR/windows" \
    --workspace --lib --bins --examples
  windows_build="$CARGO_TARGET_DIR/windows/$win/debug"
  dist_check="$(mktemp -d)"
  make --no-print-directory dist-windows-files WIN_BUILD_DIR="$windows_build" DIST_DIR="$dist_check" \
    ZIPFLAGS=-0 >/dev/null
  python3 - "$dist_check" <<'EOF_PY'
import sys, zipfile, glob
z = glob.glob(sys.argv[1] + "/hypersdk-*-windows-x86_64.zip")[0]
top = z.rsplit("/", 1)[1][:-len(".zip")]
names = set(zipfile.ZipFile(z).namelist())
want = ["bin/hypersdk.dll", "bin/hypersdk.exe", "lib/libhypersdk.dll.a", "lib/libhypersdk.a",
        "include/hypersdk.h", "LICENSE", "README.md", "runtimes/win-x64/native/hypersdk.dll"]
missing = [w for w in want if f"{top}/{w}" not in names]
assert not missing, f"{z} lacks {missing}"
assert glob.glob(sys.argv[1] + "/runtimes/win-x64/native/hypersdk.dll"), "no dist/runtimes/win-x64 for .NET"
EOF_PY
  rm -rf "$dist_check"
  if [ -x "$wine_loader" ]; then
    HS_WINE="$wine_loader" HS_WINDOWS_BUILD="$windows_build" \
      WINEPREFIX="${WINEPREFIX:-$HOME/.cache/hypersdk-wine}" \
      cargo test --test windows_wine --test windows_wine_hyperv --test windows_wine_clouds -- --ignored
  else
    echo "SKIPPED: the Windows tests under Wine (no $wine_loader; apt wine64)"
  fi
else
  echo "SKIPPED: the Windows build and its tests under Wine (rustup could not install the $win standard library)"
fi
# The PowerShell module: parsed with tree-sitter-powershell (no PowerShell runs here).
bindings/powershell/check.sh
# Fuzzing: every parser of outside input for HS_FUZZ_SECONDS (default 20 s) each, when a
# nightly toolchain is here (cargo-fuzz installs itself once); otherwise a visible SKIPPED.
./scripts/fuzz.sh
cargo clippy --workspace --all-targets -- -D warnings
echo "all tests passed"
