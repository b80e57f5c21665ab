#!/usr/bin/env bash
# Builds fake-gcs-server (Go module github.com/fsouza/fake-gcs-server, from the module proxy)
# into ~/.cache/hypersdk-tools/gcp/bin, once, and a venv with google-api-python-client (whose
# discovery documents are the contract gcp_standin.py validates requests against; the stand-in
# runs itself under that venv's python); prints fake-gcs-server's path.
set -euo pipefail
tools="${HS_TOOLS_DIR:-$HOME/.cache/hypersdk-tools}/gcp"
here="$(cd "$(dirname "$0")" && pwd)"
bin="$tools/bin/fake-gcs-server"
version=v1.56.1
mkdir -p "$tools"
exec 9>"$tools/.lock"
flock 9
if [ ! -x "$bin" ] || [ "$(cat "$tools/version" 2>/dev/null)" != "$version" ]; then
  GOBIN="$tools/bin" GOFLAGS=-mod=mod go install "github.com/fsouza/fake-gcs-server@$version" >&2
  echo "$version" > "$tools/version"
fi
venv="$tools/venv"
if ! cmp -s "$here/requirements.txt" "$venv/requirements.txt" 2>/dev/null \
   || ! "$venv/bin/python" -c "import googleapiclient" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$here/requirements.txt" >&2
  cp "$here/requirements.txt" "$venv/requirements.txt"
fi
echo "$bin"
