#!/usr/bin/env bash
# Builds fake-gcs-server (Go module github.com/fsouza/fake-gcs-server, from the module proxy)
# into ~/.cache/hypersdk-tools/gcp/bin, once; prints its path. The Compute + Cloud Build
# stand-in (gcp_standin.py) needs only Python's standard library and qemu-img.
set -euo pipefail
tools="${HS_TOOLS_DIR:-$HOME/.cache/hypersdk-tools}/gcp"
bin="$tools/bin/fake-gcs-server"
version=v1.56.1
if [ ! -x "$bin" ] || [ "$(cat "$tools/version" 2>/dev/null)" != "$version" ]; then
  mkdir -p "$tools"
  exec 9>"$tools/.lock"
  flock 9
  if [ ! -x "$bin" ] || [ "$(cat "$tools/version" 2>/dev/null)" != "$version" ]; then
    GOBIN="$tools/bin" GOFLAGS=-mod=mod go install "github.com/fsouza/fake-gcs-server@$version" >&2
    echo "$version" > "$tools/version"
  fi
fi
echo "$bin"
