#!/usr/bin/env bash
# Creates .venv and installs Hookline with its development tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"
echo "installed: $(.venv/bin/hookline --help >/dev/null && echo hookline) into .venv"
