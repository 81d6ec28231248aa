#!/usr/bin/env bash
# The demo: a throwaway profile, the shared Synthea patients imported, a reading
# added, the timeline, a search, and an export. Narrated in plain words. Exits
# non-zero if any step misbehaves, so `make test` runs it as a smoke test.
set -euo pipefail

CARRY=${CARRY_BIN:-target/debug/carry}
SHARED=${SHARED:-../shared}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export CARRY_HOME="$WORK/profile"
export CARRY_PASSPHRASE="demo passphrase, not a real one"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { echo "demo failed: $*" >&2; exit 1; }

say "A patient creates a profile. Its record is encrypted with a key that only their passphrase unlocks."
"$CARRY" init --name "Jene Cummings"

say "They import their records: seven Synthea patients' FHIR bundles from ../shared."
"$CARRY" import "$SHARED"/fixtures/fhir/synthea/*.json

total=$("$CARRY" stats --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["resources"])')
[ "$total" -ge 2000 ] || fail "expected at least 2000 resources, found $total"

say "Importing the same files again adds nothing."
again=$("$CARRY" import --json "$SHARED"/fixtures/fhir/synthea/*.json | python3 -c 'import json,sys; print(json.load(sys.stdin)["imported"])')
[ "$again" -eq 0 ] || fail "re-import added $again resources"
echo "0 new resources."

say "They take their blood pressure and add it, with a note."
"$CARRY" add bp 128/82 --note "after climbing the stairs"

say "A typo in a unit is caught, and nothing is stored."
if "$CARRY" add weight 72.5st 2>&1; then fail "a bad unit was accepted"; fi

say "The timeline shows the newest first; the reading is at the top."
"$CARRY" timeline --limit 8
"$CARRY" timeline --limit 1 --json | grep -q '"entered_by": "self"' || fail "the reading is not first"

say "Only vital signs:"
"$CARRY" timeline --category vital-signs --limit 5

say "Searching for 'diabetes':"
"$CARRY" search diabetes --limit 5

say "What the record holds:"
"$CARRY" stats

say "A wrong passphrase opens nothing and changes nothing."
before=$(sha256sum "$CARRY_HOME/vault.db" | cut -d' ' -f1)
set +e
CARRY_PASSPHRASE="not it" "$CARRY" stats
code=$?
set -e
[ "$code" -eq 3 ] || fail "wrong passphrase gave exit $code, not 3"
[ "$(sha256sum "$CARRY_HOME/vault.db" | cut -d' ' -f1)" = "$before" ] || fail "the vault changed"

say "The vault file on disk holds no readable health data."
if grep -q "Cummings" "$CARRY_HOME"/vault.db*; then fail "plaintext found in the vault"; fi
echo "No trace of the patient's name in $(ls "$CARRY_HOME" | tr '\n' ' ')"

say "They export everything as one FHIR Bundle."
"$CARRY" export --out "$WORK/export.json"
python3 - "$WORK/export.json" "$total" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
n = len(b["entry"])
assert b["type"] == "collection", b["type"]
assert n == int(sys.argv[2]) + 1, (n, sys.argv[2])
print(f"The export is a valid collection Bundle of {n} resources.")
PY

say "Done. The throwaway profile is deleted on exit."
