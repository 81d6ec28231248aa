#!/usr/bin/env bash
# Smoke test for the Medplum test server: start it, load two Synthea patients, probe the
# behaviours the conformance suite relies on, print what Medplum answered, stop the server.
# Usage: smoke.sh PORT
# Exit status is non-zero only when the plumbing fails (no start, load refused, paging broken);
# Medplum's own quirks are printed as "info", not judged.
set -euo pipefail
port="${1:?usage: smoke.sh PORT}"
here="$(cd "$(dirname "$0")" && pwd)"
fixtures="${FIXTURES:-/work/shared/fixtures/fhir/synthea}"
base="http://127.0.0.1:$port/fhir/R4"
pid_id="d78af07c-9cb9-4f31-9b11-c45a28f2eec8"   # Clemente Kreiger's Patient.id
work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

# --- start -------------------------------------------------------------------------------
# Install first (if needed) so the start-up time below is the server's own.
if [ ! -d "$here/node_modules" ] || [ "$here/package-lock.json" -nt "$here/node_modules" ]; then
  t0=$(date +%s.%N); (cd "$here" && npm ci --no-audit --no-fund --loglevel=error && touch node_modules)
  echo "npm ci: $(echo "$(date +%s.%N) - $t0" | bc) s"
fi
t0=$(date +%s.%N)
"$here/start.sh" "$port" >"$work/server.log" 2>&1 &
server_pid=$!
until grep -q "medplum: listening on $base" "$work/server.log"; do
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; fail "server exited"; }
  [ "$(echo "$(date +%s.%N) - $t0 > 120" | bc)" = 1 ] && fail "server did not start in 120 s"
  sleep 0.1
done
echo "start-up: $(printf '%.2f' "$(echo "$(date +%s.%N) - $t0" | bc)") s to '$(cat "$work/server.log")'"
rss() { awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' "/proc/$server_pid/status"; }
echo "memory after start-up: RSS $(rss)"

# req METHOD PATH [BODYFILE] [HOST]: status to stdout, body to $work/body
req() {
  local args=(-s -o "$work/body" -w '%{http_code}' -X "$1" "$base/$2")
  [ -n "${3:-}" ] && args+=(-H 'Content-Type: application/fhir+json' --data-binary "@$3")
  [ -n "${4:-}" ] && args+=(-H "Host: $4")
  curl "${args[@]}"
}
# summarize: one line about the JSON in $work/body
summarize() {
  python3 - "$work/body" <<'EOF'
import json, sys
b = json.load(open(sys.argv[1]))
rt = b.get("resourceType")
if rt == "Bundle":
    e = b.get("entry", [])
    links = {l["relation"]: l["url"] for l in b.get("link", [])}
    full = next((x.get("fullUrl") for x in e if x.get("fullUrl")), None)
    print(f"Bundle type={b.get('type')} total={b.get('total')} entries={len(e)} "
          f"next={links.get('next')} self={links.get('self')} first fullUrl={full}")
elif rt == "OperationOutcome":
    i = b.get("issue", [{}])[0]
    print(f"OperationOutcome id={b.get('id')} code={i.get('code')} text={i.get('details', {}).get('text')!r}")
else:
    print(f"{rt}/{b.get('id')} versionId={b.get('meta', {}).get('versionId')}")
EOF
}
jget() { python3 -c "import json,sys; b=json.load(open('$work/body')); print($1)"; }

# --- load: Synthea transaction (POST + urn:uuid) rewritten to PUT Type/id to keep ids ---------
for f in sotf-Clemente_Kreiger_1484a42d-0eaf-4654-9cbf-6b050a5cd73b.json \
         sotf-Ned_Hintz_e4b9259d-0f54-48d1-a35d-b526729a4dfe.json; do
  python3 - "$fixtures/$f" "$work/load.json" <<'EOF'
import json, sys
b = json.load(open(sys.argv[1]))
for e in b["entry"]:
    r = e["resource"]
    e["request"] = {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}  # fullUrl urn:uuid kept
json.dump(b, open(sys.argv[2], "w"))
EOF
  t0=$(date +%s.%N)
  code=$(req POST "" "$work/load.json")
  secs=$(printf '%.2f' "$(echo "$(date +%s.%N) - $t0" | bc)")
  statuses=$(jget '" ".join(f"{k}x{v}" for k, v in __import__("collections").Counter(e["response"]["status"] for e in b["entry"]).items())')
  echo "load $f: HTTP $code in ${secs}s, entry statuses: $statuses"
  [ "$code" = 200 ] || { summarize; fail "load refused"; }
done
echo "memory after loading both patients: RSS $(rss)"

echo
echo "== PUT Patient/carry-smoke-1 (client-assigned id, resource does not exist yet)"
echo '{"resourceType":"Patient","id":"carry-smoke-1","name":[{"family":"Smoke"}]}' >"$work/p.json"
code=$(req PUT "Patient/carry-smoke-1" "$work/p.json"); echo "HTTP $code: $(summarize)"
code=$(req PUT "Patient/carry-smoke-1" "$work/p.json"); echo "again: HTTP $code: $(summarize)"

echo
echo "== Observation?patient=Patient/$pid_id&_count=100"
code=$(req GET "Observation?patient=Patient/$pid_id&_count=100"); echo "HTTP $code: $(summarize)"
ref_total=$(jget 'b.get("total")')
[ "$code" = 200 ] && [ "${ref_total:-0}" -gt 0 ] || fail "patient=Patient/<id> search found nothing"

echo
echo "== Observation?patient=$pid_id&_count=100   (bare id)"
code=$(req GET "Observation?patient=$pid_id&_count=100"); echo "HTTP $code: $(summarize)"
echo "info: bare-id total $(jget 'b.get("total")') vs Patient/<id> total $ref_total"

echo "== Observation?subject=$pid_id&_count=100   (bare id on a multi-target reference parameter)"
code=$(req GET "Observation?subject=$pid_id&_count=100"); echo "HTTP $code: $(summarize)"
echo "== Observation?subject=Patient/$pid_id&_count=100"
code=$(req GET "Observation?subject=Patient/$pid_id&_count=100"); echo "HTTP $code: $(summarize)"
echo "== Observation?no-such-param=x   (unknown search parameter)"
code=$(req GET "Observation?no-such-param=x"); echo "HTTP $code: $(summarize)"
echo "== Observation   (no _count: how many entries come back in one page?)"
code=$(req GET "Observation"); echo "HTTP $code: $(summarize)"

echo
echo "== Observation?patient=Patient/$pid_id&_count=20, following next links"
python3 - "$base" "$pid_id" "$ref_total" <<'EOF' || fail "paging"
import json, sys, urllib.request
base, pid, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
url, ids, pages = f"{base}/Observation?patient=Patient/{pid}&_count=20", [], 0
while url:
    b = json.load(urllib.request.urlopen(url))
    pages += 1
    ids += [e["resource"]["id"] for e in b.get("entry", [])]
    url = next((l["url"] for l in b.get("link", []) if l["relation"] == "next"), None)
    if url: print("  next:", url)
print(f"  pages={pages} collected={len(ids)} unique={len(set(ids))} expected={want}")
sys.exit(0 if len(set(ids)) == want == len(ids) else 1)
EOF

echo
echo "== same search reached as localhost:$port (Host header decides the base of links and fullUrls)"
code=$(req GET "Observation?patient=Patient/$pid_id&_count=20" "" "localhost:$port"); echo "HTTP $code: $(summarize)"
jget 'b["link"][0]["url"]' | grep -q "^http://localhost:$port/fhir/R4/" || fail "links not built from Host"

echo
now=$(date -u +%Y-%m-%dT%H:%M:%SZ); sleep 1
echo "== Observation?_lastUpdated=gt$now (after loading)"
code=$(req GET "Observation?_lastUpdated=gt$now"); echo "HTTP $code: $(summarize)"
echo "== Observation?_lastUpdated=lt$now&_count=1"
code=$(req GET "Observation?_lastUpdated=lt$now&_count=1"); echo "HTTP $code: $(summarize)"
echo "== Observation?_lastUpdated=gt2000-01-01&_lastUpdated=lt2000-01-02 (repeated parameter, must AND to 0)"
code=$(req GET "Observation?_lastUpdated=gt2000-01-01&_lastUpdated=lt2000-01-02"); echo "HTTP $code: $(summarize)"
[ "$(jget 'b.get("total")')" = 0 ] || fail "repeated parameters not both applied"

echo
echo "== Patient/$pid_id/\$everything"
code=$(req GET "Patient/$pid_id/\$everything"); echo "HTTP $code: $(summarize)"

echo
echo "== Observation/_history (type-level history)"
code=$(req GET "Observation/_history"); echo "HTTP $code: $(summarize)"
echo "== _history (system-level history)"
code=$(req GET "_history"); echo "HTTP $code: $(summarize)"
echo "== Patient/carry-smoke-1/_history (instance history, written twice above)"
code=$(req GET "Patient/carry-smoke-1/_history"); echo "HTTP $code: $(summarize)"

echo
obs=$(curl -s "$base/Observation?patient=Patient/$pid_id&_count=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["entry"][0]["resource"]["id"])')
echo "== DELETE Observation/$obs"
code=$(req DELETE "Observation/$obs"); echo "HTTP $code: $(summarize)"
code=$(req GET "Observation/$obs"); echo "read after delete: HTTP $code: $(summarize)"
code=$(req GET "Observation?patient=Patient/$pid_id&_count=100"); echo "search after delete: HTTP $code: $(summarize)"
code=$(req GET "Observation/$obs/_history"); echo "history after delete: HTTP $code: $(summarize)"
code=$(req DELETE "Observation/$obs"); echo "delete again: HTTP $code: $(summarize)"

echo
echo "== GET metadata"
code=$(req GET "metadata"); echo "HTTP $code: $(summarize)"
echo "   body: $(head -c 300 "$work/body")"

echo
echo "memory at end: RSS $(rss)"
if [ -s "$work/server.log" ] && [ "$(wc -l <"$work/server.log")" -gt 1 ]; then
  echo "server log:"; sed 's/^/  /' "$work/server.log"
fi
echo "smoke: ok"
