#!/usr/bin/env bash
# Builds toxiproxy (github.com/Shopify/toxiproxy/v2: the server and its CLI) with `go install`
# from the Go module proxy into ~/.cache/hypersdk-tools/toxiproxy-VERSION/ on first use (~20 s)
# and prints the server's path. Used by tests/support/toxiproxy.rs and benches/cloudlike.sh.
set -euo pipefail
VERSION=v2.5.0
tools="${HS_TOOLS_DIR:-$HOME/.cache/hypersdk-tools}"
dir="$tools/toxiproxy-$VERSION"
mkdir -p "$tools"
# Test binaries run in parallel: one builds, the others wait for it.
exec 9>"$tools/.toxiproxy.lock"
flock 9
if [ ! -x "$dir/toxiproxy-server" ] || [ ! -x "$dir/toxiproxy-cli" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  GOBIN="$tmp" GOFLAGS=-mod=mod go install \
    "github.com/Shopify/toxiproxy/v2/cmd/server@$VERSION" \
    "github.com/Shopify/toxiproxy/v2/cmd/cli@$VERSION" >&2
  mkdir -p "$dir"
  mv "$tmp/server" "$dir/toxiproxy-server"
  mv "$tmp/cli" "$dir/toxiproxy-cli"
fi
echo "$dir/toxiproxy-server"
