#!/usr/bin/env bash
# gofmt, go vet + go test -race for the Go binding and the Go example, against the debug build of the
# library (scripts/test.sh builds it first).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hypersdk-target}"
LIB="$CARGO_TARGET_DIR/debug"
export CGO_ENABLED=1
# The binding finds the library with `#cgo pkg-config: hypersdk`, as it does once `make install`
# has put hypersdk.pc in place; here a .pc for the build tree stands in for the installed one.
mkdir -p "$LIB/pkgconfig"
sed -e "s|@PREFIX@|$PWD|" -e "s|@VERSION@|$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)|" \
  -e "s|@LIBS_PRIVATE@||" -e "s|^libdir=.*|libdir=$LIB|" hypersdk.pc.in >"$LIB/pkgconfig/hypersdk.pc"
export PKG_CONFIG_PATH="$LIB/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
# Only the run-time search path is ours: the tests run against the build tree.
export CGO_LDFLAGS="-Wl,-rpath,$LIB"
export GOFLAGS="${GOFLAGS:--count=1}"
unformatted=$(gofmt -l bindings/go examples/go)
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
(cd bindings/go && go vet ./... && go test -race ./...)
(cd examples/go && go vet ./... && go build -o /dev/null .)
# Export waves on Temporal (bindings/go/temporal): its own module, so the binding itself does not
# pull in the Temporal SDK. The wave tests run a dev server from the Temporal CLI, built once into
# the tools folder.
HS_TEMPORAL_BIN="$(tests/peers/temporal/install.sh)"
export HS_TEMPORAL_BIN HS_REQUIRE_TEMPORAL=1
(cd bindings/go/temporal && go vet ./... && go test -timeout 15m ./...)
