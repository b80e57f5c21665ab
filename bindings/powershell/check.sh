#!/usr/bin/env bash
# Static checks of the PowerShell module with tree-sitter-powershell (PyPI), in a venv under
# ~/.cache/hypersdk-tools: parse without errors, exports defined, approved verbs, help. First the
# checker's self-test (it must catch planted defects), then the module.
set -euo pipefail
cd "$(dirname "$0")"
py="$(../../tests/peers/hyperv/install.sh)"
"$py" check.py --self-test
"$py" check.py
