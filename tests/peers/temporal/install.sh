#!/usr/bin/env bash
# Builds the Temporal CLI (github.com/temporalio/cli; its `server start-dev` is the dev server the
# wave tests run: one process, SQLite, offline) with `go install` from the Go module proxy into
# ~/.cache/hypersdk-tools/temporal-VERSION/ on first use (~2-4 minutes on 2 cores) and prints its
# path. Used by scripts/test-go.sh for bindings/go/temporal.
set -euo pipefail
VERSION=v1.5.1
tools="${HS_TOOLS_DIR:-$HOME/.cache/hypersdk-tools}"
dir="$tools/temporal-$VERSION"
mkdir -p "$tools"
exec 9>"$tools/.temporal.lock"
flock 9
if [ ! -x "$dir/temporal" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  GOBIN="$tmp" GOFLAGS=-mod=mod CGO_ENABLED=0 go install "github.com/temporalio/cli/cmd/temporal@$VERSION" >&2
  mkdir -p "$dir"
  mv "$tmp/temporal" "$dir/temporal"
fi
echo "$dir/temporal"
