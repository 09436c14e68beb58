#!/usr/bin/env bash
# One API and N workers as separate processes against PostgreSQL and a Temporal dev server.
# Usage: deploy/local-scaleout.sh [WORKERS]   (needs HOOKLINE_DATABASE_URL, defaults to local PostgreSQL)
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS=${1:-2}
BIN=.venv/bin
DATA=${HOOKLINE_DATA_DIR:-.hookline-scaleout}
mkdir -p "$DATA"
export HOOKLINE_DATA_DIR=$DATA
export HOOKLINE_DATABASE_URL=${HOOKLINE_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/hookline}
export HOOKLINE_TEMPORAL_ADDRESS=${HOOKLINE_TEMPORAL_ADDRESS:-127.0.0.1:7233}
if [ -z "${HOOKLINE_MASTER_KEYS:-}" ]; then
  [ -f "$DATA/master.keys" ] || "$BIN/python" -c "from service.crypto import SecretBox; print(SecretBox.generate_spec('k1'))" > "$DATA/master.keys"
  HOOKLINE_MASTER_KEYS=$(cat "$DATA/master.keys"); export HOOKLINE_MASTER_KEYS
fi
pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
"$BIN/temporal" server start-dev --headless --log-level warn --db-filename "$DATA/temporal.db" \
  --port "${HOOKLINE_TEMPORAL_ADDRESS##*:}" \
  $("$BIN/python" -c "from workflows.search_attributes import dev_server_flags; print(' '.join(dev_server_flags()))") &
pids+=($!)
"$BIN/hookline" migrate
"$BIN/hookline" serve &
pids+=($!)
for _ in $(seq 1 "$WORKERS"); do "$BIN/hookline" worker & pids+=($!); done
wait
