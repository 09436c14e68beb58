#!/usr/bin/env bash
# Every check CI runs: lint, types, API rules, generated code, migrations and the test suite.
# Needs PostgreSQL on 127.0.0.1:5432 (trust auth) for the PostgreSQL half of the store tests.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
step() { printf '\n== %s\n' "$*"; }
step "ruff"
"$BIN/ruff" check .
"$BIN/ruff" format --check .
step "mypy --strict"
"$BIN/mypy" .
step "buf lint, format, breaking"
"$BIN/buf" lint
"$BIN/buf" format --diff --exit-code
"$BIN/buf" breaking --against tools/api-baseline.binpb
step "generated code is fresh"
"$BIN/python" tools/gen_protos.py --check
step "pytest"
"$BIN/python" -m pytest "$@"
