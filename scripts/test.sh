#!/usr/bin/env bash
# Runs every test: Rust unit and integration tests (real HTTP peer on 127.0.0.1), the C programs
# under AddressSanitizer, and the header freshness check. One debug build serves them all.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hypersdk-target}"

cargo build --lib --examples
# The vSphere tests build tests/peers/vcsim (vcsim + ExportVm + CreateDescriptor) and govc
# with Go on first use; the Go binding's end-to-end test uses the same peer.
cargo test --no-fail-fast
export HS_VCSIM_PEER="$CARGO_TARGET_DIR/debug/peers/vcsim-peer"
if [ -d bindings/go ] && command -v go >/dev/null; then
  ./scripts/test-go.sh
fi
echo "all tests passed"
