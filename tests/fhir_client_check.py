"""Drives carry-endpoint with an independent FHIR client (fhirpy, not ours).

Seeds a Synthea patient split across a GP and a hospital tenant, starts the real
server on a free loopback port, signs in through its SMART standalone launch (PKCE
S256, the sandbox consent, the token endpoint) with the standard library, then with
fhirpy reads the Patient and pages a search through the server's `next` links, and
checks the result against one large page fetched with the standard library.

Usage: fhir_client_check.py ENDPOINT_BINARY SHARED_DIR
"""
import base64
import hashlib
import json
import pathlib
import secrets
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
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


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def smart_login(fhir_base, tenant_base):
    """The standalone launch as any SMART client does it; returns the access token."""
    conf = json.load(urllib.request.urlopen(f"{fhir_base}/.well-known/smart-configuration"))
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect = "http://127.0.0.1:9/cb"
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": "fhirpy-check", "redirect_uri": redirect,
        "scope": "patient/*.rs", "state": "xyz", "aud": fhir_base,
        "code_challenge": challenge, "code_challenge_method": "S256", "sandbox_patient": PATIENT,
    })
    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(f"{conf['authorization_endpoint']}?{query}")
        raise SystemExit("the authorize endpoint did not redirect")
    except urllib.error.HTTPError as e:
        location = e.headers["Location"]
    params = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)
    check(params["state"] == ["xyz"], "state comes back")
    form = urllib.parse.urlencode({
        "grant_type": "authorization_code", "code": params["code"][0], "redirect_uri": redirect,
        "client_id": "fhirpy-check", "code_verifier": verifier,
    }).encode()
    token = json.load(urllib.request.urlopen(conf["token_endpoint"], data=form))
    check(token["patient"] == PATIENT, "the token names the patient")
    return token["access_token"]


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
            token = smart_login(url, base)
            client = SyncFHIRClient(url, authorization=f"Bearer {token}")
            patient = client.reference("Patient", PATIENT).to_resource()
            check(patient["id"] == PATIENT, f"{tenant}: read Patient")
            check(patient["name"][0]["family"] == "Kreiger", f"{tenant}: Patient name")
            paged = client.resources("Observation").search(patient=PATIENT).limit(7).fetch_all()
            whole_req = urllib.request.Request(
                f"{url}/Observation?patient={PATIENT}&_count=500",
                headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(whole_req) as r:
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
