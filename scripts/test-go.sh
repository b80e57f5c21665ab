#!/usr/bin/env bash
# gofmt, go vet + go test -race for the Go binding and the Go example, against the debug build of the
# library (scripts/test.sh builds it first).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hypersdk-target}"
LIB="$CARGO_TARGET_DIR/debug"
export CGO_ENABLED=1
export CGO_CFLAGS="-I$PWD/include"
export CGO_LDFLAGS="-L$LIB -Wl,-rpath,$LIB"
export GOFLAGS="${GOFLAGS:--count=1}"
unformatted=$(gofmt -l bindings/go examples/go)
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi
(cd bindings/go && go vet ./... && go test -race ./...)
(cd examples/go && go vet ./... && go build -o /dev/null .)
