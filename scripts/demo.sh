#!/usr/bin/env bash
# The demo: starts a local HTTP server with four 256 MiB files, then a C program downloads all four at once with live progress.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hypersdk-target}"
LIB="$CARGO_TARGET_DIR/debug"

cargo build --lib --example serve
mkdir -p build
cc -std=c11 -O2 -Wall -Iinclude examples/c/demo.c -L"$LIB" -Wl,-rpath,"$LIB" -lhypersdk -o build/demo

OUT="${1:-build/demo-out}"
mkdir -p "$OUT"
. scripts/lib-serve.sh
start_serve 4 $((256 << 20)) $((24 << 20)) 0
base="$SERVE_URL"
./build/demo "$OUT" "$base/file0.bin" "$base/file1.bin" "$base/file2.bin" "$base/file3.bin"
echo "files in $OUT:"
ls -ls "$OUT"
