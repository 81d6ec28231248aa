#!/usr/bin/env bash
# Installs what the viewer tests need on a fresh Debian machine, if missing: Chromium
# and Node.js with npm (Debian packages), then the pinned npm packages from
# package-lock.json (puppeteer-core, which drives the system Chromium and downloads
# no browser of its own).
set -euo pipefail
cd "$(dirname "$0")"
say() { echo "viewer/setup.sh: $*" >&2; }

need=()
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  say "installing: ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
  say "Node.js 18 or later is needed (node:test, fetch, WebCrypto); found $(node --version)"
  exit 1
fi

# npm ci again only when the lock file changed since the last install.
stamp=node_modules/.carry-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi
