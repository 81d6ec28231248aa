"""Drives carry-endpoint with an independent FHIR client (fhirpy, not ours).

Seeds a Synthea patient split across a GP and a hospital tenant, starts the real
server on a free loopback port, then with fhirpy reads the Patient and pages a search
through the server's `next` links, and checks the result against one large page
fetched with the standard library.

Usage: fhir_client_check.py ENDPOINT_BINARY SHARED_DIR
"""
import json
import pathlib
import subprocess
import sys
import tempfile
import urllib.request

from fhirpy import SyncFHIRClient

PATIENT = "d78af07c-9cb9-4f31-9b11-c45a28f2eec8"
BUNDLE = "fixtures/fhir/synthea/sotf-Clemente_Kreiger_1484a42d-0eaf-4654-9cbf-6b050a5cd73b.json"

binary, shared = sys.argv[1], pathlib.Path(sys.argv[2])
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {what}")


with tempfile.TemporaryDirectory() as tmp:
    db = f"sqlite://{tmp}/ep.db"
    subprocess.run(
        [binary, "seed", "--db", db, "--tenant", "gp", "--tenant", "hospital",
         "--split-by-encounter", "--from", str(shared / BUNDLE)],
        check=True, stdout=subprocess.DEVNULL,
    )
    server = subprocess.Popen(
        [binary, "serve", "--db", db, "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        base = server.stdout.readline().strip().removeprefix("listening on ")
        for tenant in ("gp", "hospital"):
            url = f"{base}/{tenant}/fhir"
            client = SyncFHIRClient(url)
            patient = client.reference("Patient", PATIENT).to_resource()
            check(patient["id"] == PATIENT, f"{tenant}: read Patient")
            check(patient["name"][0]["family"] == "Kreiger", f"{tenant}: Patient name")
            paged = client.resources("Observation").search(patient=PATIENT).limit(7).fetch_all()
            with urllib.request.urlopen(f"{url}/Observation?patient={PATIENT}&_count=500") as r:
                whole = json.load(r)
            want = sorted(e["resource"]["id"] for e in whole.get("entry", []))
            got = sorted(o["id"] for o in paged)
            check(len(want) > 7, f"{tenant}: more than one page of Observations")
            check(got == want, f"{tenant}: paging by next links gives every Observation once")
    finally:
        server.terminate()
        server.wait(timeout=10)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
