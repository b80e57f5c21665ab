#!/usr/bin/env bash
# Runs every test: Rust unit and integration tests (real HTTP peer on 127.0.0.1), the C programs
# under AddressSanitizer, and the header freshness check. One debug build serves them all.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hypersdk-target}"

cargo build --lib --examples
cargo test --no-fail-fast
if [ -d bindings/go ] && command -v go >/dev/null; then
  ./scripts/test-go.sh
fi
echo "all tests passed"
