#!/usr/bin/env bash
# Start the Medplum FHIR-router test server in the foreground.
# Usage: start.sh PORT   (FHIR base: http://127.0.0.1:PORT/fhir/R4)
set -euo pipefail
port="${1:?usage: start.sh PORT}"
cd "$(dirname "$0")"
# (Re)install the pinned packages when node_modules is missing or older than the lock file.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
  touch node_modules
fi
# Medplum 5.x declares node ^22.18 || >=24.2 and @medplum/core reads the global WebSocket
# when it loads (Node 22 has it built in). On Node 20 it sits behind a flag; nothing else was
# found missing (see README.md).
flags=()
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 22 ]; then flags+=(--experimental-websocket); fi
exec node "${flags[@]}" server.mjs "$port"
