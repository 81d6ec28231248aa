#!/usr/bin/env bash
# Save the databases a released build makes, for the upgrade tests: the endpoint's
# (SQLite and PostgreSQL) and a profile's vault. Run once per release, after it lands:
#
#   git worktree add /tmp/release <commit>
#   (cd /tmp/release && cargo build -p carry-cli -p carry-endpoint)
#   bash tests/release-fixtures.sh /tmp/release YYYY-MM-DD
#
# The release's own demo runs to its end, on each engine, with its working directory
# kept. What it leaves is saved as made, but thinned to keep the repository small:
# the FHIR resources down to 20 per tenant (Patients kept), and the backup blob
# (opaque ciphertext to the endpoint) cut to its first 4 KiB, its size column with
# it. The vault saved is the carer's (a whole profile: people, a grant received, the
# record shared with him), opened with the demo's passphrase.
set -euo pipefail

RELEASE=$(cd "${1:?the work tree of the release}" && pwd)
NAME=${2:?a name for the release, such as its date}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared}
SHARED=$(cd "$SHARED" && pwd)
BIN=${RELEASE_BIN:-$RELEASE/target/debug}
ENDPOINT_OUT=$ROOT/endpoint/tests/fixtures/$NAME
CORE_OUT=$ROOT/core/tests/fixtures/$NAME
TMP=$(mktemp -d)
trap 'rm -rf "$TMP" "$RELEASE/tests/.kept-demo.sh"; bash "$ROOT/.ci/postgres.sh" stop >/dev/null 2>&1 || true' EXIT
mkdir -p "$ENDPOINT_OUT" "$CORE_OUT"

# The release's demo, keeping its working directory (it sits beside the original,
# which finds its helpers next to itself).
sed 's|rm -rf "\$WORK"|:|' "$RELEASE/tests/demo.sh" > "$RELEASE/tests/.kept-demo.sh"
demo() { # $1: where its working directory goes; then the environment for it
  local into=$1
  shift
  mkdir -p "$into"
  (cd "$RELEASE" && env TMPDIR="$into" SHARED="$SHARED" CARRY_BIN="$BIN/carry" "$@" \
    bash tests/.kept-demo.sh > "$into.log" 2>&1) || { tail -20 "$into.log" >&2; exit 1; }
  ls -d "$into"/*/
}

THIN_SQL="
DELETE FROM resources WHERE rtype <> 'Patient' AND (tenant, rtype, id) NOT IN (
  SELECT tenant, rtype, id FROM (
    SELECT tenant, rtype, id,
           row_number() OVER (PARTITION BY tenant ORDER BY rtype, id) AS n
    FROM resources WHERE rtype <> 'Patient') AS ranked
  WHERE n <= 20);
UPDATE backup_versions SET data = substr(data, 1, 4096);
UPDATE backup_versions SET bytes = length(data);
"

echo "the release's demo on SQLite"
work=$(demo "$TMP/sqlite")
python3 - "$work/endpoint.db" "$THIN_SQL" <<'EOF'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.executescript(sys.argv[2])
c.commit()
c.execute("VACUUM")
c.close()
EOF
cp "$work/endpoint.db" "$ENDPOINT_OUT/endpoint.sqlite"
rm -rf "$CORE_OUT/carer"
mkdir -p "$CORE_OUT/carer"
cp "$work/carer/vault.db" "$work/carer/vault.key" "$CORE_OUT/carer/"

echo "the release's demo on PostgreSQL"
url=$(bash "$ROOT/.ci/postgres.sh" fresh carry_release)
demo "$TMP/postgres" DEMO_DB="$url" > /dev/null
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
"$bin/psql" -q -v ON_ERROR_STOP=1 "$url" -c "$THIN_SQL"
"$bin/pg_dump" --inserts --no-owner --no-privileges --no-comments "$url" \
  | grep -v '^--\|^$\|^SET \|^SELECT pg_catalog.set_config\|^\\' \
  > "$ENDPOINT_OUT/endpoint.postgres.sql"
echo "saved under $ENDPOINT_OUT and $CORE_OUT"
