#!/usr/bin/env bash
# Dependency advisories, offline: cargo-audit against the RustSec snapshot given as $1.
# audit.toml lists advisories we accept for now; each entry needs an id, a reason and
# an `until` date, after which it stops being ignored. Any other advisory fails.
set -euo pipefail
cd "$(dirname "$0")/.."
db=${1:?usage: .ci/audit.sh ADVISORY_DB}
ignores=$(python3 - <<'PY'
import datetime, sys, tomllib
with open("audit.toml", "rb") as f:
    entries = tomllib.load(f).get("ignore", [])
today = datetime.date.today()
for e in entries:
    missing = [k for k in ("id", "reason", "until") if not str(e.get(k, "")).strip()]
    if missing:
        sys.exit(f"audit.toml: an ignore entry lacks {', '.join(missing)}: {e}")
    until = datetime.date.fromisoformat(str(e["until"]))
    if until < today:
        print(f"audit.toml: {e['id']} was ignored until {until}; it counts again", file=sys.stderr)
        continue
    print(f"--ignore {e['id']}")
PY
)
# shellcheck disable=SC2086
cargo audit --db "$db" --no-fetch --stale --deny warnings $ignores
