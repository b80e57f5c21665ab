#!/usr/bin/env bash
# Builds the C# binding and its tests with Mono's compiler and runs them against the debug build
# of the library (scripts/test.sh builds it first, and the vcsim peer and moto venv on the way).
# The last line is "N passed, N failed"; the exit status is non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hypersdk-target}"
out="$CARGO_TARGET_DIR/csharp"
mkdir -p "$out"
# -warnaserror: the binding compiles clean; C# 7 is what both mcs and the SDK project use.
mcs -nologo -langversion:7 -warnaserror -nowarn:1591 -target:library -doc:"$out/HyperSdk.xml" \
  -out:"$out/HyperSdk.dll" src/*.cs
mcs -nologo -langversion:7 -target:exe -r:"$out/HyperSdk.dll" -r:System.Net.Http.dll \
  -out:"$out/HyperSdk.Tests.exe" tests/Tests.cs
# The example program, against the public API only (it runs in the README's place, not here).
mcs -nologo -langversion:7 -warnaserror -target:exe -r:"$out/HyperSdk.dll" \
  -out:"$out/ExportFile.exe" examples/ExportFile/Program.cs
export LD_LIBRARY_PATH="$CARGO_TARGET_DIR/debug${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export HS_REPO_ROOT="$(cd ../.. && pwd)"
# The tests' folders (Path.GetTempPath follows TMPDIR) go when the run ends, passed or not.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# Main returns after the summary line; the process must then end by itself. Mono waits at exit
# for every native thread it adopted, so this fails if a thread that ran a progress callback
# outlived its export (the library runs each export's callback on a thread that ends with it).
log="$tmp/tests.log"
TMPDIR="$tmp" mono --debug "$out/HyperSdk.Tests.exe" "$@" > >(tee "$log") 2>&1 &
pid=$!
summary_at=""
while kill -0 "$pid" 2>/dev/null; do
  if [ -z "$summary_at" ] && grep -qE '^[0-9]+ passed, [0-9]+ failed$' "$log"; then
    summary_at=$(date +%s)
  fi
  if [ -n "$summary_at" ] && [ $(( $(date +%s) - summary_at )) -gt 30 ]; then
    kill -9 "$pid" 2>/dev/null || true
    echo "FAIL: the test program was still running 30 s after Main returned (Mono waits for" \
      "native threads it adopted: a thread that ran a progress callback outlived its export)" >&2
    exit 1
  fi
  sleep 1
done
wait "$pid"
