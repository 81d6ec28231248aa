"""Checks the endpoint's GP Connect mock with implementations that are not ours.

Starts the real carry-endpoint on a free loopback port serving tenant `gp` from GP
Connect's published example responses (SHARED/fixtures/fhir/gp-connect-stu3), with an
NHS login client whose RSA key jwcrypto made here. Then, with the standard library for
HTTP, jwcrypto for the client assertion and fhir.resources' STU3 models for FHIR:
- signs a person in through the mock NHS login (PKCE S256, an RS512 assertion) and
  takes the access token;
- reads the STU3 CapabilityStatement and validates it;
- calls $gpc.getstructuredrecord for the whole record, and for allergies with and
  without resolved ones, and validates each answered Bundle and every resource in it
  (contained ones too) as STU3, with no repair; checks the Bundle's type and profile,
  the Patient's NHS number, one copy of each resource, and that resolved allergies
  come only when asked for;
- checks refusals, each an STU3 OperationOutcome with its Spine code and status: no
  token, a person proven only to P5, another person's record, a bad NHS number, an
  unknown parameter, a body that is not a Parameters, an NHS number with no record.

Usage: gp_connect_check.py ENDPOINT_BINARY [SHARED]
"""
import hashlib
import json
import os
import pathlib
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.parse

from fhir.resources.STU3 import get_fhir_model_class as stu3_model
from jwcrypto import jwk, jwt

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from http_check import Tally, b64, request  # noqa: E402

endpoint = sys.argv[1]
ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else os.environ.get("SHARED", ROOT / "../shared"))
EXAMPLES = SHARED / "fixtures/fhir/gp-connect-stu3"
CLIENT = "carry-check"
REDIRECT = "http://127.0.0.1:53682/callback"
PATIENT = "9999999999"
SOMEONE_ELSE = "9434765919"
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
SPINE = "https://fhir.nhs.uk/STU3/CodeSystem/Spine-ErrorOrWarningCode-1"
BUNDLE_PROFILE = "https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-StructuredRecord-Bundle-1"
BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
AREAS = ["includeMedication", "includeConsultations", "includeProblems", "includeImmunisations",
         "includeUncategorisedData", "includeInvestigations", "includeReferrals", "includeDiaryEntries"]
TALLY = Tally()
check = TALLY.check

def stu3_valid(resource, what):
    """Whether fhir.resources' STU3 model takes the resource as it is."""
    try:
        stu3_model(resource["resourceType"]).model_validate(resource)
        return True
    except Exception as e:  # pydantic.ValidationError, or an unknown type
        print(f"  {what}: {str(e)[:400]}")
        return False


def contained_and_self(resource):
    yield resource
    yield from resource.get("contained", [])


work = pathlib.Path(tempfile.mkdtemp())
client_key = jwk.JWK.generate(kty="RSA", size=2048)
(work / "client.pem").write_bytes(client_key.export_to_pem())  # the public half

server = subprocess.Popen(
    [endpoint, "serve", "--db", f"sqlite://{work}/ep.db", "--listen", "127.0.0.1:0",
     "--nhs-login-client", f"{CLIENT}={work / 'client.pem'}", "--gp-connect", f"gp={EXAMPLES}"],
    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
)
try:
    base = server.stdout.readline().strip().removeprefix("listening on ")
    iss = f"{base}/nhs-login"
    operation = f"{base}/gp/gpconnect/fhir/Patient/$gpc.getstructuredrecord"

    def sign_in(nhs_number, **extra):
        """An access token of the mock NHS login for the sandbox user nhs_number."""
        verifier = secrets.token_urlsafe(32)
        challenge = b64(hashlib.sha256(verifier.encode()).digest())
        params = {"response_type": "code", "client_id": CLIENT, "redirect_uri": REDIRECT,
                  "scope": "openid profile", "state": "st", "nonce": secrets.token_urlsafe(8),
                  "code_challenge": challenge, "code_challenge_method": "S256",
                  "sandbox_user": nhs_number}
        params.update(extra)
        _, headers, _ = request("GET", f"{iss}/authorize?{urllib.parse.urlencode(params)}")
        back = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(headers.get("Location", "")).query))
        now = int(time.time())
        claims = {"iss": CLIENT, "sub": CLIENT, "aud": f"{iss}/token",
                  "jti": secrets.token_urlsafe(16), "iat": now, "exp": now + 120}
        assertion = jwt.JWT(header={"alg": "RS512", "typ": "JWT"}, claims=claims)
        assertion.make_signed_token(client_key)
        form = {"grant_type": "authorization_code", "code": back.get("code", ""), "redirect_uri": REDIRECT,
                "code_verifier": verifier, "client_assertion_type": BEARER,
                "client_assertion": assertion.serialize()}
        status, _, data = request("POST", f"{iss}/token", body=urllib.parse.urlencode(form),
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        check(status == 200, f"signed in through the mock NHS login ({data[:200]!r})")
        return json.loads(data).get("access_token", "")

    def ask(token, body, content_type="application/fhir+json"):
        headers = {"Content-Type": content_type, "Accept": "application/fhir+json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        status, headers, data = request("POST", operation, body=json.dumps(body), headers=headers)
        check(headers.get("Content-Type", "").startswith("application/fhir+json"), "answered as application/fhir+json")
        return status, json.loads(data) if data else None

    def parameters(*params):
        return {"resourceType": "Parameters", "parameter": list(params)}

    def nhs(value):
        return {"name": "patientNHSNumber", "valueIdentifier": {"system": NHS_SYSTEM, "value": value}}

    def allergies(resolved):
        return {"name": "includeAllergies", "part": [{"name": "includeResolvedAllergies", "valueBoolean": resolved}]}

    def valid_record(status, bundle, what):
        """The resources of an answered Bundle, every one validated as STU3."""
        check(status == 200, f"{what}: 200 ({json.dumps(bundle)[:300]})")
        if status != 200:
            return []
        check(bundle.get("resourceType") == "Bundle" and bundle.get("type") == "collection",
              f"{what}: a Bundle of type collection")
        check(BUNDLE_PROFILE in bundle.get("meta", {}).get("profile", []), f"{what}: the structured record profile")
        check(stu3_valid(bundle, "Bundle"), f"{what}: the Bundle is valid STU3")
        resources = [e["resource"] for e in bundle.get("entry", [])]
        for r in resources:
            for x in contained_and_self(r):
                check(stu3_valid(x, f"{x['resourceType']}/{x.get('id')}"),
                      f"{what}: {x['resourceType']}/{x.get('id')} is valid STU3")
        ids = [f"{r['resourceType']}/{r['id']}" for r in resources if "id" in r]
        check(len(ids) == len(set(ids)), f"{what}: one copy of each resource")
        patients = [r for r in resources if r["resourceType"] == "Patient"]
        check(len(patients) == 1 and any(i.get("system") == NHS_SYSTEM and i.get("value") == PATIENT
                                         for i in patients[0].get("identifier", [])),
              f"{what}: the Patient with the NHS number asked for")
        for t in ("Organization", "Practitioner", "PractitionerRole"):
            check(any(r["resourceType"] == t for r in resources), f"{what}: a {t}")
        return resources

    def resolved_allergies(resources):
        return [x for r in resources for x in contained_and_self(r)
                if x["resourceType"] == "AllergyIntolerance" and x.get("clinicalStatus") == "resolved"]

    def refused(status, outcome, want_status, want_code, what):
        check(status == want_status, f"{what}: {want_status} (got {status})")
        check(outcome is not None and outcome.get("resourceType") == "OperationOutcome"
              and stu3_valid(outcome, "OperationOutcome"), f"{what}: a valid STU3 OperationOutcome")
        codes = [c.get("code") for i in (outcome or {}).get("issue", [])
                 for c in i.get("details", {}).get("coding", []) if c.get("system") == SPINE]
        check(codes == [want_code], f"{what}: {want_code} (got {codes})")

    token = sign_in(PATIENT)

    status, _, data = request("GET", f"{base}/gp/gpconnect/fhir/metadata")
    capability = json.loads(data)
    check(status == 200 and stu3_valid(capability, "CapabilityStatement"), "metadata: a valid STU3 CapabilityStatement")
    check(capability.get("fhirVersion", "").startswith("3."), "metadata: FHIR 3")
    check(any(o.get("name") == "gpc.getstructuredrecord" for o in capability["rest"][0].get("operation", [])),
          "metadata: names gpc.getstructuredrecord")

    everything = parameters(nhs(PATIENT), allergies(True), *({"name": a} for a in AREAS))
    whole = valid_record(*ask(token, everything), "the whole record")
    types = {r["resourceType"] for r in whole}
    for t in ("AllergyIntolerance", "MedicationStatement", "MedicationRequest", "Medication", "List"):
        check(t in types, f"the whole record: {t}")
    check(resolved_allergies(whole), "the whole record: the resolved allergy, asked for")
    check(any(r["resourceType"] == "List" and "emptyReason" in r for r in whole),
          "the whole record: an empty List for an area holding nothing")

    only = valid_record(*ask(token, parameters(nhs(PATIENT), allergies(False))), "allergies only")
    check({r["resourceType"] for r in only} <= {"Patient", "Organization", "Practitioner", "PractitionerRole",
                                                "AllergyIntolerance", "List"}, "allergies only: nothing else")
    check(not resolved_allergies(only), "allergies only: resolved allergies left out")
    check(any(r["resourceType"] == "AllergyIntolerance" for r in only), "allergies only: the active allergies")
    with_resolved = valid_record(*ask(token, parameters(nhs(PATIENT), allergies(True))), "with resolved allergies")
    check(resolved_allergies(with_resolved), "with resolved allergies: included")
    as_json = valid_record(*ask(token, parameters(nhs(PATIENT)), "application/json"), "sent as application/json")

    mine = parameters(nhs(PATIENT), allergies(False))
    refused(*ask(None, mine), 401, "ACCESS_DENIED", "no token")
    p5 = sign_in(PATIENT, sandbox_proofing="P5", vtr='["P5.Cp.Cd","P9.Cp.Cd"]')
    refused(*ask(p5, mine), 403, "ACCESS_DENIED", "a P5 token")
    other = sign_in(SOMEONE_ELSE)
    refused(*ask(other, mine), 403, "ACCESS_DENIED", "another person's record")
    refused(*ask(token, parameters(nhs("9999999998"))), 400, "INVALID_NHS_NUMBER", "a bad NHS number")
    refused(*ask(token, parameters(nhs(PATIENT), {"name": "includeEverything"})), 422, "INVALID_PARAMETER",
            "an unknown parameter")
    refused(*ask(token, {"resourceType": "Patient", "id": "x"}), 422, "INVALID_RESOURCE", "not a Parameters")
    refused(*ask(other, parameters(nhs(SOMEONE_ELSE))), 404, "PATIENT_NOT_FOUND", "an NHS number with no record")
finally:
    server.terminate()
    server.wait()

print(f"gp-connect-check: {TALLY.passed} passed, {TALLY.failed} failed")
sys.exit(1 if TALLY.failed else 0)
