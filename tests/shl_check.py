"""Checks Carry's share links with implementations that are not ours.

Starts the real carry-endpoint on a free loopback port, makes a profile with a
Synthea patient and a UK Core patient (for an NHS number), and runs `carry share`
for each preset. Then, with no Carry code:
- parses the `shlink:/` payload (base64url JSON) and checks its fields and flags;
- POSTs the manifest and fetches the file with the standard library;
- decrypts the JWE with jwcrypto (alg dir, enc A256GCM, zip DEF);
- validates the IPS document Bundle with fhir.resources (R4B models) and checks the
  Composition's type and its three required sections, each with a narrative.
Then it records both research opt-outs with `carry prefs` and validates the FHIR
Consents `carry prefs --consent` prints (R4B models, whose Consent is R4's), and
leaves medications out of the emergency card: the card's direct link still carries a
valid IPS whose medication section is empty with emptyReason `withheld`.

Usage: shl_check.py CARRY_BINARY ENDPOINT_BINARY SHARED_DIR
"""
import base64
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import urllib.request

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent
from jwcrypto import jwe, jwk

carry, endpoint, shared = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
SYNTHEA = shared / "fixtures/fhir/synthea/sotf-Jene_Cummings_8a2bb726-2f79-4940-a134-a374eef39af7.json"
ALLERGY = shared / "fixtures/fhir/uk-core/UKCore-AllergyIntolerance-Amoxicillin-Example.json"
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {what}")


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def validate(model, doc):
    return model.model_validate(doc) if hasattr(model, "model_validate") else model.parse_obj(doc)


work = pathlib.Path(tempfile.mkdtemp())
server = subprocess.Popen(
    [endpoint, "serve", "--db", f"sqlite://{work}/ep.db", "--listen", "127.0.0.1:0"],
    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
)
try:
    base = server.stdout.readline().strip().removeprefix("listening on ")
    env = dict(os.environ, CARRY_HOME=str(work / "p"), CARRY_PASSPHRASE="independent check")

    def run(*args):
        out = subprocess.run([carry, *args], env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"carry {args}: {out.stderr}")
        return out.stdout

    run("init", "--name", "Jene Cummings")
    run("import", str(SYNTHEA), str(ALLERGY))
    run("endpoint", "set", base)
    for preset, passcode in (("emergency", "4711"), ("meds-allergies", None), ("all-but-restricted", None)):
        args = ["share", "--preset", preset, "--expires", "1h", "--json"]
        if passcode:
            args += ["--passcode", passcode]
        made = json.loads(run(*args))
        link = made["link"]
        check(link.startswith(f"{base}/view#shlink:/"), f"{preset}: the link is behind the viewer")
        payload = json.loads(b64d(link.split("#shlink:/", 1)[1]))
        check(len(payload["url"]) <= 128, f"{preset}: url at most 128 characters")
        check(len(payload["key"]) == 43 and len(b64d(payload["key"])) == 32, f"{preset}: a 32-byte key")
        check(isinstance(payload.get("exp"), int), f"{preset}: exp is a number")
        flag = payload.get("flag", "")
        check(flag == "".join(sorted(flag)) and not ("U" in flag and "P" in flag), f"{preset}: flags")
        check(("P" in flag) == bool(passcode), f"{preset}: P flag iff a passcode")
        body = {"recipient": "independent check"}
        if passcode:
            body["passcode"] = passcode
        req = urllib.request.Request(
            payload["url"], data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
        manifest = json.load(urllib.request.urlopen(req))
        f = manifest["files"][0]
        check(f["contentType"] == "application/fhir+json", f"{preset}: content type")
        token = f.get("embedded") or urllib.request.urlopen(f["location"]).read().decode()
        header = json.loads(b64d(token.split(".")[0]))
        check(header.get("alg") == "dir" and header.get("enc") == "A256GCM", f"{preset}: alg and enc")
        check(header.get("zip") == "DEF" and header.get("cty") == "application/fhir+json", f"{preset}: zip and cty")
        check(len(b64d(token.split(".")[2])) == 12, f"{preset}: a 96-bit IV")
        key = jwk.JWK(kty="oct", k=payload["key"])
        message = jwe.JWE()
        message.deserialize(token, key=key)
        doc = json.loads(message.payload)
        bundle = validate(Bundle, doc)
        check(bundle.type == "document", f"{preset}: a document Bundle")
        comp = doc["entry"][0]["resource"]
        check(comp["resourceType"] == "Composition", f"{preset}: starts with a Composition")
        check(comp["type"]["coding"][0]["code"] == "60591-5", f"{preset}: LOINC 60591-5")
        check(bool(comp.get("author")) and bool(comp.get("date")), f"{preset}: author and date")
        codes = {s["code"]["coding"][0]["code"]: s for s in comp["section"]}
        for required in ("10160-0", "48765-2", "11450-4"):
            s = codes.get(required)
            check(s is not None, f"{preset}: section {required}")
            if s is not None:
                check("<div" in s["text"]["div"], f"{preset}: {required} has a narrative")
                check(bool(s.get("entry")) != bool(s.get("emptyReason")), f"{preset}: {required} has entries or an emptyReason")
        urls = {e["fullUrl"] for e in doc["entry"]}
        for s in comp["section"]:
            for e in s.get("entry", []):
                check(e["reference"] in urls, f"{preset}: section entry {e['reference']} resolves")
        if preset == "emergency":
            check(codes["48765-2"].get("entry"), "emergency: the allergy is in")

    # The research opt-outs as FHIR Consents.
    check(json.loads(run("prefs", "--consent")) == [], "prefs: no Consent before an opt-out")
    run("prefs", "--national-opt-out", "on", "--type1-opt-out", "on")
    consents = json.loads(run("prefs", "--consent"))
    check(len(consents) == 2, "prefs: one Consent per opt-out")
    for c in consents:
        consent = validate(Consent, c)
        check(consent.status == "active", f"{c['id']}: active")
        check(consent.scope.coding[0].system == "http://terminology.hl7.org/CodeSystem/consentscope"
              and consent.scope.coding[0].code == "research", f"{c['id']}: scope research")
        check(consent.provision.type == "deny", f"{c['id']}: a deny provision")
        purposes = {(p.system, p.code) for p in consent.provision.purpose}
        reason = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
        check({(reason, "HRESCH"), (reason, "HOPERAT")} <= purposes, f"{c['id']}: research and planning")
        check(consent.patient is not None and consent.patient.reference.startswith("Patient/"),
              f"{c['id']}: the person's Patient")
        check(bool(consent.policy) or consent.policyRule is not None, f"{c['id']}: a policy or policy rule (ppc-1)")
        check(str(consent.dateTime).startswith("20"), f"{c['id']}: dated")
    check(consents[0]["policy"][0]["uri"] == "https://www.nhs.uk/your-nhs-data-matters/",
          "prefs: the national data opt-out's policy")

    # The emergency card without medications: the section stays, withheld.
    run("prefs", "--emergency-card", "allergies,problems,vital-signs,contacts")
    card = json.loads(run("emergency-card", "--json"))
    payload = json.loads(b64d(card["link"].split("#shlink:/", 1)[1]))
    check("U" in payload.get("flag", ""), "card: a direct (U) link")
    token = urllib.request.urlopen(payload["url"] + "?recipient=independent%20check").read().decode()
    message = jwe.JWE()
    message.deserialize(token, key=jwk.JWK(kty="oct", k=payload["key"]))
    doc = json.loads(message.payload)
    validate(Bundle, doc)
    meds = [s for s in doc["entry"][0]["resource"]["section"] if s["code"]["coding"][0]["code"] == "10160-0"]
    check(len(meds) == 1, "card: the medication section is kept")
    if meds:
        reason = meds[0].get("emptyReason", {}).get("coding", [{}])[0]
        check(reason.get("system") == "http://terminology.hl7.org/CodeSystem/list-empty-reason"
              and reason.get("code") == "withheld", "card: medications withheld")
        check(not meds[0].get("entry"), "card: no medication entries")
finally:
    server.terminate()
    server.wait()

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
