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
export LD_LIBRARY_PATH="$CARGO_TARGET_DIR/debug${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export HS_REPO_ROOT="$(cd ../.. && pwd)"
# The tests' folders (Path.GetTempPath follows TMPDIR) go when the run ends, passed or not.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
TMPDIR="$tmp" mono --debug "$out/HyperSdk.Tests.exe" "$@"
