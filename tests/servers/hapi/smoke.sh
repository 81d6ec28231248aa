#!/usr/bin/env bash
# Start the HAPI test server on PORT, wait for GET /fhir/metadata, load one
# Synthea patient and run the checks in smoke.py; stop the server after.
#   usage: tests/servers/hapi/smoke.sh [PORT]     (default 18080)
# The fixture may be overridden with HAPI_SMOKE_FIXTURE=path.json.
set -euo pipefail

PORT=${1:-18080}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
NAME=sotf-Clemente_Kreiger_1484a42d-0eaf-4654-9cbf-6b050a5cd73b.json
FIXTURE=${HAPI_SMOKE_FIXTURE:-$REPO/../shared/fixtures/fhir/synthea/$NAME}
BASE=http://127.0.0.1:$PORT/fhir
LOG=${TMPDIR:-/tmp}/carry-hapi-$PORT.log

[ -f "$FIXTURE" ] || { echo "smoke: fixture not found: $FIXTURE" >&2; exit 2; }

t=$(date +%s)
"$HERE/start.sh" "$PORT" >"$LOG" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true' EXIT

# start.sh builds the jar first when needed (under a lock), so allow for that.
until curl -fsS -o /dev/null "$BASE/metadata" 2>/dev/null; do
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "smoke: server exited; log follows" >&2; tail -50 "$LOG" >&2; exit 1
  fi
  if [ $(( $(date +%s) - t )) -gt 600 ]; then
    echo "smoke: server not up after 600s" >&2; tail -50 "$LOG" >&2; exit 1
  fi
  sleep 1
done
echo "smoke: metadata answered $(( $(date +%s) - t ))s after start.sh (including any build)"
for _ in 1 2 3 4 5 6 7 8 9 10; do grep -m1 'hapi: listening' "$LOG" && break; sleep 1; done

python3 "$HERE/smoke.py" "$BASE" "$FIXTURE"
