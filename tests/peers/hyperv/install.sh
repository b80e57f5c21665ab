#!/usr/bin/env bash
# Installs what the PowerShell stand-in and the script checks need: a venv with
# tree-sitter-powershell (PyPI) under ~/.cache/hypersdk-tools/ps-venv (reused across runs).
# Prints the venv's python. Shared with bindings/powershell/check.sh.
set -euo pipefail
venv="${HS_TOOLS_DIR:-$HOME/.cache/hypersdk-tools}/ps-venv"
if ! "$venv/bin/python" -c "import tree_sitter, tree_sitter_powershell" 2>/dev/null; then
  mkdir -p "$(dirname "$venv")"
  # Two test processes may arrive at once: one installs, the other waits for it.
  exec 9>"$venv.lock"
  flock 9
  if ! "$venv/bin/python" -c "import tree_sitter, tree_sitter_powershell" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q tree-sitter==0.26.1 tree-sitter-powershell==0.26.4
  fi
fi
echo "$venv/bin/python"
