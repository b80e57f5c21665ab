#!/usr/bin/env bash
# Static checks of the PowerShell module with tree-sitter-powershell (PyPI), in a venv under
# ~/.cache/hypersdk-tools: parse without errors, exports defined, approved verbs, help. First the
# checker's self-test (it must catch planted defects), then the module.
set -euo pipefail
cd "$(dirname "$0")"
venv="${HS_TOOLS_DIR:-$HOME/.cache/hypersdk-tools}/ps-venv"
if ! "$venv/bin/python" -c "import tree_sitter, tree_sitter_powershell" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q tree-sitter==0.26.1 tree-sitter-powershell==0.26.4
fi
"$venv/bin/python" check.py --self-test
"$venv/bin/python" check.py
