#!/usr/bin/env bash
# The demo: a local trust endpoint on SQLite with a GP and a hospital that each hold
# part of one Synthea patient's record. The patient creates a profile, signs in to
# both, syncs, adds a blood pressure reading that reaches the GP, and looks at the
# timeline, which says where each entry came from. She invites her son as a carer,
# verifies him and lets him see part of her record and add readings; he adds one,
# which reaches her and her GP. In A&E she shows a doctor her emergency summary
# through a passcode link; the doctor opens it with the CLI and in the web viewer
# (headless Chromium, screenshot in target/demo-viewer.png), and she sees both
# openings. She backs up, loses her phone, and restores on a new one from her
# recovery code alone. There she reviews who can see her record and her audit log,
# and stops sharing with everyone at once; the carer and the doctor are shown locked
# out. Last, Sam keeps the record of his grandmother, who has no smartphone: her GP
# record comes through GP Connect (FHIR STU3, converted to R4 with the original
# kept) after he signs in for her with NHS login (the endpoint's mock issuer; a
# client key made here signs the app's requests). Narrated in plain words. Exits non-zero if any step misbehaves, so
# `make test` runs it as a smoke test.
set -euo pipefail

CARRY=${CARRY_BIN:-target/debug/carry}
ENDPOINT=${ENDPOINT_BIN:-$(dirname "$CARRY")/carry-endpoint}
SHARED=${SHARED:-../shared}
SCREENSHOTS=${SCREENSHOTS:-$(cd "$(dirname "$0")/.." && pwd)/target}
WORK=$(mktemp -d)
SERVER=""
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
export CARRY_HOME="$WORK/profile"
export CARRY_PASSPHRASE="demo passphrase, not a real one"
PATIENT_FILE="$SHARED/fixtures/fhir/synthea/sotf-Jene_Cummings_8a2bb726-2f79-4940-a134-a374eef39af7.json"
PATIENT_ID=b13bd1f1-78c4-4cbe-b611-3bedd3bb796b
# The endpoint's database: SQLite by default; `make demo-postgres` passes a fresh
# PostgreSQL database in DEMO_DB.
DB=${DEMO_DB:-sqlite://$WORK/endpoint.db}
case "$DB" in postgres*) ENGINE=PostgreSQL ;; *) ENGINE=SQLite ;; esac

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { echo "demo failed: $*" >&2; exit 1; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

say "A local trust endpoint starts on $ENGINE. Jene's GP and hospital each hold part of her record, split by encounter; both hold her details."
"$ENDPOINT" seed --db "$DB" --tenant gp --tenant hospital \
  --split-by-encounter --from "$PATIENT_FILE"
# The app's NHS login client key: the private half stays with the app, the public
# half is registered with the (mock) issuer.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/client.key.pem" 2> /dev/null
openssl pkey -in "$WORK/client.key.pem" -pubout -out "$WORK/client.pub.pem"
"$ENDPOINT" serve --db "$DB" --listen 127.0.0.1:0 \
  --nhs-login-client "carry-demo=$WORK/client.pub.pem" \
  --gp-connect "marys-gp=$SHARED/fixtures/fhir/gp-connect-stu3" \
  > "$WORK/endpoint.out" 2> "$WORK/endpoint.log" &
SERVER=$!
for _ in $(seq 50); do grep -q listening "$WORK/endpoint.out" 2>/dev/null && break; sleep 0.1; done
BASE=$(sed -n 's/^listening on //p' "$WORK/endpoint.out")
[ -n "$BASE" ] || fail "the endpoint did not start"
echo "Serving $BASE/gp/fhir and $BASE/hospital/fhir (SMART sign-in, FHIR R4)."

say "Jene creates a profile. Her record is encrypted with a key that only her passphrase unlocks."
"$CARRY" init --name "Jene Cummings"

say "She adds her GP and her hospital, and signs in to each (the sandbox's consent step stands in for the browser)."
"$CARRY" source add gp "$BASE/gp/fhir" --kind gp
"$CARRY" source add hospital "$BASE/hospital/fhir" --kind hospital
"$CARRY" source login gp --sandbox-patient "$PATIENT_ID"
"$CARRY" source login hospital --sandbox-patient "$PATIENT_ID"

say "She syncs. Each page is saved with a checkpoint, so an interrupted sync resumes."
"$CARRY" sync
total=$("$CARRY" stats --json | field 'd["resources"]')
[ "$total" -ge 500 ] || fail "expected at least 500 resources, found $total"

say "Syncing again with nothing new moves no resources."
again=$("$CARRY" sync --json)
echo "$again" | field "'; '.join(f\"{r['source']}: {r['fetched']} fetched in {r['requests']} requests\" for r in d['sources'])"
echo "$again" | field 'sum(r["fetched"] for r in d["sources"])' | grep -qx 0 || fail "a sync with no changes fetched resources"

say "What both providers hold shows once, with both named:"
"$CARRY" timeline --category other --limit 500 --json | field "chr(10).join([i['display'] + '  (from ' + ' + '.join([i['source']] + i['also_from']) + ')' for i in d['items'] if i['also_from']][:6])"
[ "$("$CARRY" timeline --category other --limit 500 --json | field 'sum(1 for i in d["items"] if i["also_from"])')" -ge 1 ] || fail "nothing was grouped"

say "She takes her blood pressure and adds it, with a note."
"$CARRY" add bp 128/82 --note "after climbing the stairs"

say "A typo in a unit is caught, and nothing is stored."
if "$CARRY" add weight 72.5st 2>&1; then fail "a bad unit was accepted"; fi

say "She syncs: the reading goes to her GP (once, however often it is retried), and comes back from it."
"$CARRY" sync
"$CARRY" outbox
"$CARRY" outbox --json | field 'd[0]["state"]' | grep -qx sent || fail "the reading was not sent"
"$CARRY" sync > /dev/null

say "The timeline, newest first, says where each entry came from:"
"$CARRY" timeline --limit 8
"$CARRY" timeline --limit 1 --json | field 'd["items"][0]["also_from"]' | grep -q gp || fail "the reading did not come back from the GP"

say "Searching for 'blood pressure':"
"$CARRY" search blood pressure --limit 5

say "Her blood pressure over the years, newest first, her own reading with the clinic's (one line per reading, whichever sources hold it):"
"$CARRY" trend bp
"$CARRY" trend bp --json | field 'd["points"][0]["source"]' | grep -qx self || fail "her own reading is not the newest value"

say "Her GP books a diabetes review and a blood test; the booking letter comes as a FHIR file. What is coming up, soonest first:"
NEXT_WEEK=$(python3 -c 'import datetime; print(datetime.date.today() + datetime.timedelta(days=7))')
NEXT_MONTH=$(python3 -c 'import datetime; print(datetime.date.today() + datetime.timedelta(days=30))')
cat > "$WORK/appointments.json" <<JSON
{"resourceType": "Bundle", "type": "collection", "entry": [
 {"resource": {"resourceType": "Appointment", "id": "review", "status": "booked", "description": "Diabetes review with the practice nurse", "start": "${NEXT_MONTH}T10:30:00Z", "participant": [{"status": "accepted"}]}},
 {"resource": {"resourceType": "Appointment", "id": "bloods", "status": "booked", "description": "Blood test (HbA1c)", "start": "${NEXT_WEEK}T08:40:00Z", "participant": [{"status": "accepted"}]}}]}
JSON
"$CARRY" import "$WORK/appointments.json" > /dev/null
"$CARRY" appointments
"$CARRY" appointments --json | field 'd["items"][0]["display"]' | grep -q "Blood test" || fail "the soonest appointment is not first"

say "What the record holds:"
"$CARRY" stats
"$CARRY" source list

say "A wrong passphrase opens nothing and changes nothing."
before=$(sha256sum "$CARRY_HOME/vault.db" | cut -d' ' -f1)
set +e
CARRY_PASSPHRASE="not it" "$CARRY" stats
code=$?
set -e
[ "$code" -eq 3 ] || fail "wrong passphrase gave exit $code, not 3"
[ "$(sha256sum "$CARRY_HOME/vault.db" | cut -d' ' -f1)" = "$before" ] || fail "the vault changed"

say "The vault file on disk holds no readable health data, and no sign-in tokens."
if grep -q "Cummings" "$CARRY_HOME"/vault.db*; then fail "plaintext found in the vault"; fi
if grep -q "refresh_token\|Bearer" "$CARRY_HOME"/vault.db*; then fail "a token was readable in the vault"; fi
echo "No trace of the patient's name in $(ls "$CARRY_HOME" | tr '\n' ' ')"

say "She exports everything as one FHIR Bundle."
"$CARRY" export --out "$WORK/export.json"
python3 - "$WORK/export.json" "$("$CARRY" stats --json | field 'd["resources"]')" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
n = len(b["entry"])
assert b["type"] == "collection", b["type"]
assert n == int(sys.argv[2]), (n, sys.argv[2])
print(f"The export is a valid collection Bundle of {n} resources.")
PY

say "Jene's son Sam helps with her care. He has Carry too, with a profile of his own."
sam() { CARRY_HOME="$WORK/carer" CARRY_PASSPHRASE="another demo passphrase" "$CARRY" "$@"; }
sam init --name "Sam Cummings"

say "Jene's profile uses the endpoint's relay to share. She invites Sam; the code holds her public keys and a one-time secret."
"$CARRY" endpoint set "$BASE"
code=$("$CARRY" invite --json | field 'd["code"]')
echo "${code:0:40}… (valid 24 hours, once)"

say "Sam takes up the invite. He has no endpoint of his own yet, so he says he will use the one Jene's invite names (an invite alone never chooses it). His keys reach Jene sealed through the relay, proved by the secret."
sam accept --adopt-endpoint "$code"
"$CARRY" sync > /dev/null
sam_id=$("$CARRY" people --json | field 'd[0]["person"]')
jene_id=$(sam people --json | field 'd[0]["person"]')

say "They compare the safety number on a call. Both screens show the same digits, so Jene marks Sam verified."
"$CARRY" people
[ "$("$CARRY" people --json | field 'd[0]["fingerprint"]')" = "$(sam people --json | field 'd[0]["fingerprint"]')" ] || fail "the safety numbers differ"
"$CARRY" people verify "$sam_id"

say "Jene lets Sam see her conditions, medicines, allergies, vital signs and results for 90 days, and add readings. Mental-health items stay back."
"$CARRY" grant "$sam_id" --role contributor --categories conditions,medications,allergies,vital-signs,test-results \
  --purpose "helping with medicines and appointments" --basis patient-choice
"$CARRY" view-as "$sam_id" | head -n 1
"$CARRY" sync | grep relay

say "Sam syncs: Jene's record arrives sealed to his key, and is kept as a separate profile."
sam sync | grep relay
sam profiles
sam use "$jene_id"
shown=$(sam stats --json | field 'd["resources"]')
expected=$("$CARRY" view-as "$sam_id" --json | field 'len(d)')
[ "$shown" = "$expected" ] || fail "Sam holds $shown items, but view-as shows $expected"
[ "$(sam stats --json | field 'd["sensitive"]')" = 0 ] || fail "restricted items reached Sam"
echo "Sam holds exactly the $shown items Jene chose, none of them restricted."
sam timeline --limit 4

say "Sam takes Jene's blood sugar and adds it to her record."
sam add glucose 6.4mmol/L --note "before lunch"
sam sync | grep relay

say "Jene's device applies it because Sam's grant allows it, records that Sam entered it, and sends it on to her GP like her own."
"$CARRY" sync | grep relay
"$CARRY" timeline --source self --limit 3
"$CARRY" timeline --source self --json | field 'sum(1 for i in d["items"] if i["entered_by"] == "carer" and i["resource_type"] == "Observation")' | grep -qx 1 || fail "the reading is not marked as entered by the carer"
"$CARRY" outbox --json | field 'sum(1 for e in d if e["state"] == "sent")' | grep -qx 2 || fail "Sam's reading did not reach the GP"

say "Jene adds a letter from her GP recording her amoxicillin allergy (a UK Core example file)."
"$CARRY" import "$SHARED/fixtures/fhir/uk-core/UKCore-AllergyIntolerance-Amoxicillin-Example.json"

say "She keeps the hospital's discharge letter (a PDF) in her record, encrypted with the rest, and opens it again."
printf '%%PDF-1.4\n%% Discharge letter for Jene Cummings\n%%%%EOF\n' > "$WORK/discharge-letter.pdf"
letter=$("$CARRY" attach "$WORK/discharge-letter.pdf" --title "Discharge letter" --json | field 'd["id"]')
"$CARRY" open-document "$letter" --out "$WORK/letter-again.pdf"
cmp -s "$WORK/discharge-letter.pdf" "$WORK/letter-again.pdf" || fail "the letter did not open as it was kept"

say "She adds her son Sam as the person to call in an emergency; her GP's record names no one."
"$CARRY" contacts add "Sam Cummings" --relationship son --phone "07700 900456"
"$CARRY" contacts

say "In A&E, Jene shows the doctor her emergency summary: a link with a passcode, for one hour, as a QR code."
share=$("$CARRY" share --preset emergency --passcode 4711 --expires 1h --qr "$WORK/emergency-qr.png" --json)
link=$(echo "$share" | field 'd["link"]')
share_id=$(echo "$share" | field 'd["id"]')
echo "$share" | field '"QR version %d, %d items; the key travels only in the link: " % (d["qr_version"], d["resources"]) + d["link"][:60] + "…"'
[ -s "$WORK/emergency-qr.png" ] || fail "no QR code was written"

say "The doctor scans it. Carry's CLI stands in for the doctor's phone here; the passcode is asked for."
if "$CARRY" open "$link" --recipient "Dr Patel, A&E" > /dev/null 2>&1; then fail "the link opened without its passcode"; fi
"$CARRY" open "$link" --passcode 4711 --recipient "Dr Patel, A&E" | tee "$WORK/opened.txt"
grep -q "Amoxicillin" "$WORK/opened.txt" || fail "the allergy is not in the summary"
grep -q "Sam Cummings (son) 07700 900456" "$WORK/opened.txt" || fail "the contact she added is not on the summary"

say "The doctor opens it in the browser too: the endpoint's viewer, nothing to install. The key stays in the link's fragment, which the browser never sends."
mkdir -p "$SCREENSHOTS"
node "$(dirname "$0")/viewer/screenshot.js" "$link" 4711 "$SCREENSHOTS/demo-viewer.png" Amoxicillin \
  || fail "the web viewer did not show the summary"

say "Jene sees who opened it (as they named themselves), and it is in her audit log."
"$CARRY" shares
[ "$("$CARRY" shares --json | field 'sum(1 for a in d[0]["access_log"] if a["outcome"] == "ok")')" -ge 2 ] \
  || fail "the two openings are not both in the access log"
"$CARRY" audit --limit 5 | grep share || fail "the accesses are not in the audit log"

say "Jene keeps her recovery code on paper and backs up her profile, encrypted on her phone, to the endpoint."
code=$("$CARRY" recovery show --json | field 'd["code"]')
echo "${code:0:14}… (14 groups; the last catches typos)"
"$CARRY" backup

say "Her phone is lost. On a new one she has nothing but her recovery code and the endpoint's address."
rm -rf "$CARRY_HOME"
if CARRY_HOME="$WORK/wrong" "$CARRY" restore --from-endpoint --endpoint "$BASE" \
     --code "0000-0000-0000-0000-0000-0000-0000-0000-0000-0000-0000-0000-0000-0000" 2>&1; then
  fail "a wrong code restored something"
fi
[ ! -e "$WORK/wrong/vault.db" ] || fail "a wrong code left a profile behind"
CARRY_HOME="$WORK/new-phone" "$CARRY" restore --from-endpoint --endpoint "$BASE" --code "$code"
export CARRY_HOME="$WORK/new-phone"
"$CARRY" audit --verify
"$CARRY" grants --active
"$CARRY" people
[ "$("$CARRY" people --json | field 'len(d)')" = 1 ] || fail "Sam is not among her people after the restore"
"$CARRY" source list

say "On her new phone, Jene reviews who can see her record: Sam under his grant, and the doctor's link."
"$CARRY" grants --active
[ "$("$CARRY" grants --active --json | field 'len(d)')" = 1 ] || fail "Sam's grant is not in force after the restore"
"$CARRY" shares
grant_id=$("$CARRY" grants --active --json | field 'd[0]["grant"]')

say "Her audit log came back with her record: every step so far, its hash chain whole."
"$CARRY" audit --limit 8
"$CARRY" audit --verify

say "She stops sharing with everyone at once: every grant revoked, every link ended."
stopped=$("$CARRY" revoke --all --json)
echo "$stopped" | field '"%d grant revoked, %d link ended, revocations sent: %s" % (len(d["grants"]), len(d["links"]), d["sent"])'
echo "$stopped" | field 'len(d["grants"]) == 1 and len(d["links"]) == 1 and not d["links_not_ended"] and d["sent"]' | grep -qx True \
  || fail "revoke --all did not end Sam's grant and the doctor's link"
[ "$("$CARRY" grants --active --json | field 'len(d)')" = 0 ] || fail "a grant is still in force"

say "Last, Sam and the doctor are locked out. Sam's app deletes its copy when it next syncs:"
sam sync | grep relay
sam use self > /dev/null
sam profiles
[ "$(sam profiles --json | field 'len(d)')" = 1 ] || fail "Sam still holds Jene's record"
[ ! -e "$WORK/carer/shared/$grant_id" ] || fail "Sam's copy is still on disk"
echo "Sam's copy is gone. (Anything he already saw cannot be recalled: the docs say so plainly.)"

say "The doctor tries the link again and gets a clear answer."
set +e
"$CARRY" open "$link" --passcode 4711 --recipient "Dr Patel, A&E" 2>&1
code=$?
set -e
[ "$code" -eq 4 ] || fail "a revoked link gave exit $code, not 4"

say "Sam also looks after his grandmother, Mary, who has no smartphone. On his own phone he keeps a record for her, as her own profile, under her lasting power of attorney."
mary=$(sam dependants add --name "Mary Cummings" --born 1938-04-12 --basis lasting-power-of-attorney \
  --evidence "LPA for health and welfare, OPG ref 7000-1234-5678" --json | field 'd["profile"]')
sam dependants
sam audit | grep -q dependant-added || fail "Sam's audit log does not record the dependant"

say "Her GP record comes through GP Connect. Sam signs in for her with NHS login, where her identity was checked in full (P9). The mock issuer stands in for NHS login; the app's own key signs its request, and Carry checks the ID token."
mary_do() { CARRY_CLIENT_KEY="$WORK/client.key.pem" sam --profile "$mary" "$@"; }
mary_do source add gp "$BASE/marys-gp/gpconnect/fhir" --kind gp --api gp-connect \
  --auth nhs-login --issuer "$BASE/nhs-login" --client-id carry-demo
mary_do source login gp --sandbox-user 9999999999

say "He syncs her record. It arrives in FHIR STU3 and is kept as R4, with the original beside it. The GP system says two parts were not sent, and one list in it names another NHS number, which is refused: the sync says so, and is partial rather than complete."
set +e
mary_do sync gp
code=$?
set -e
[ "$code" -eq 1 ] || fail "the GP Connect sync gave exit $code, not 1 (partial)"
mary_do timeline --category allergies,medications --limit 8
[ "$(mary_do stats --json | field 'd["resources"]')" -gt 10 ] || fail "Mary's GP record did not arrive"
item=$(mary_do timeline --category allergies --json | field 'd["items"][0]["id"]')
mary_do show "$item" | grep -q "Converted" || fail "the converted allergy does not say so"
echo "Each item says it was converted from FHIR STU3, and keeps the text it arrived in."
[ "$(sam stats --json | field 'd["resources"]')" = 0 ] || fail "Mary's record leaked into Sam's own"
echo "Sam's own record stays apart from hers. When Mary gets a phone, he hands it over (carry dependants hand-over) and she decides who sees it."

say "The endpoint's log names routes and statuses, never a patient or a token."
if grep -q "$PATIENT_ID\|Cummings\|9999999999" "$WORK/endpoint.log"; then fail "the endpoint logged health data"; fi
if [ "$ENGINE" = SQLite ] && grep -qa "Cummings" "$WORK"/endpoint.db*; then
  # The FHIR tenants hold the sandbox record itself; the relay's tables must not.
  python3 - "$WORK/endpoint.db" <<'PY' || fail "the relay holds readable health data"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
rows = c.execute("SELECT body FROM relay_envelopes").fetchall()
assert not any(b"Cummings" in bytes(r[0]) for r in rows)
PY
fi
tail -n 3 "$WORK/endpoint.log"

say "Done. The endpoint stops and the throwaway profile is deleted on exit."
