#!/usr/bin/env bash
# Installs the Azure peer's tools under ~/.cache/hypersdk-tools (reused across runs):
# Azurite 3.35.0 from npm (on the machine's Node) and a venv with the Python storage SDK the
# ARM stand-in uses to manage Azurite, and azure-mgmt-compute, whose definitions it holds to. Prints nothing on success when already installed.
set -euo pipefail
tools="${HS_TOOLS_DIR:-$HOME/.cache/hypersdk-tools}"
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -x "$tools/azurite/node_modules/.bin/azurite-blob" ]; then
  mkdir -p "$tools/azurite"
  (cd "$tools/azurite" && npm install --no-audit --no-fund --silent azurite@3.35.0 >/dev/null)
fi
venv="$tools/azure-venv"
if ! "$venv/bin/python" -c "import azure.storage.blob, azure.mgmt.compute" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$here/requirements.txt"
fi
