"""Checks carry-stu3's STU3 -> R4 conversion with an implementation that is not ours.

For each GP Connect Access Record response given (default: the three published
examples in the shared fixtures), with no Carry code beyond running the converter:
- validates every input entry with fhir.resources' STU3 models, to show the input is
  STU3. GP Connect's published examples break STU3 in two known ways (a lone object
  where STU3 has a list, as `basedOn` and `generalPractitioner`; a code written as a
  list of one, as `expectedSupplyDuration.code`): those are reported and repaired in a
  copy before validation; any other failure fails the check. Every input entry is also
  tried as R4B, to count how many would be misread as R4 as they stand;
- runs carry-stu3's `convert` example on the file, which prints the converted R4
  Bundle on stdout and reports unconvertible entries on stderr;
- validates the R4 Bundle and every converted resource with fhir.resources' R4B
  models (R4B is R4 for these resource types);
- checks, on the JSON alone: every entry is either converted or, for an
  OperationOutcome only, reported as unsupported; ids are kept; every resource carries
  the converted tag and no STU3 profile; every AllergyIntolerance (contained ones too)
  has a recordedDate; no STU3-only element is left; no reference names a
  ProcedureRequest or ReferralRequest; and every CareConnect / GP Connect extension of
  the input is still there (or moved to the R4 element or address that replaces it).
Then it does the same for STU3 samples of its own, written here, that cover the
families the published examples lack (problems, consultations, pathology, specimens,
immunisations, referrals and procedure requests, locations): each must validate as
STU3 with no repair at all.

With CARRY_BIN set to the carry CLI, it also imports the bundles into a new profile
and checks what `carry export` gives back the same way (tag, R4B validity, count).

Usage: stu3_check.py [BUNDLE.json ...]   (run from the repository's root)
Exits non-zero, naming each failure, if any check fails.
"""
import collections
import copy
import json
import os
import pathlib
import subprocess
import sys
import tempfile

from fhir.resources.R4B import get_fhir_model_class as r4b_model
from fhir.resources.STU3 import get_fhir_model_class as stu3_model

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = pathlib.Path(os.environ.get("SHARED", ROOT / "../shared"))
FIXTURES = SHARED / "fixtures/fhir/gp-connect-stu3"
DEFAULT = sorted(FIXTURES.glob("*.json"))
TAG = ("https://carry.health/fhir/CodeSystem/origin", "converted-from-stu3")
RENAMED = {"ProcedureRequest": "ServiceRequest", "ReferralRequest": "ServiceRequest"}
# Elements only STU3 has, by type (context only where R4 renamed it).
STU3_ONLY = {
    "AllergyIntolerance": {"assertedDate"},
    "Condition": {"assertedDate", "context", "abatementBoolean"},
    "MedicationStatement": {"taken", "reasonNotTaken"},
    "MedicationRequest": {"context", "definition"},
    "Immunization": {"notGiven", "date", "practitioner", "explanation", "vaccinationProtocol"},
    "Observation": {"context", "related", "comment"},
    "DiagnosticReport": {"context", "codedDiagnosis", "image"},
    "Encounter": {"incomingReferral", "reason"},
    "ServiceRequest": {"context", "specialty", "recipient", "serviceRequested", "groupIdentifier", "description"},
    "Medication": {"isBrand", "isOverTheCounter", "package"},
}
# Extensions the converter moves, and where to.
MOVED_EXTENSIONS = {
    "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-AllergyIntoleranceEnd-1":
        "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-AllergyIntoleranceEnd",
    "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-DateRecorded-1": "recorded",
    "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-PrescriptionType-1": "courseOfTherapyType",
}
failures = []


def fail(what):
    failures.append(what)
    print(f"FAIL {what}")


def resources_in(bundle):
    return [e["resource"] for e in bundle.get("entry", []) if "resource" in e]


def walk(value):
    """Every JSON object below value, value included."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            yield v
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def at(doc, loc):
    parent = doc
    for key in loc[:-1]:
        parent = parent[key]
    return parent, loc[-1]


def validate_stu3(resource, name, allow_repairs):
    """Validates resource as STU3; returns the known publisher defects repaired."""
    model = stu3_model(resource["resourceType"])
    doc, repaired = copy.deepcopy(resource), []
    for _ in range(20):
        try:
            model.model_validate(doc)
            return repaired
        except Exception as e:  # pydantic.ValidationError
            errors = e.errors() if hasattr(e, "errors") else []
            known = []
            for err in errors:
                loc = [k for k in err["loc"] if k != resource["resourceType"]]
                if not loc:
                    continue
                parent, key = at(doc, loc)
                value = parent[key]
                if err["type"] == "list_type" and isinstance(value, dict):
                    known.append((parent, key, [value], f"{'.'.join(map(str, loc))}: a lone object where STU3 has a list"))
                elif err["type"] == "string_type" and isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
                    known.append((parent, key, value[0], f"{'.'.join(map(str, loc))}: a code written as a list of one"))
            if not allow_repairs or not known or len(known) != len(errors):
                fail(f"{name}: not valid STU3: {e}")
                return repaired
            for parent, key, fixed, what in known:
                parent[key] = fixed
                repaired.append(what)
    fail(f"{name}: not valid STU3 after repairs")
    return repaired


def valid_r4(resource):
    try:
        r4b_model(resource["resourceType"]).model_validate(resource)
        return True
    except Exception:
        return False


def extension_urls(resource):
    return {e["url"] for e in resource.get("extension", []) if isinstance(e, dict) and "url" in e}


def check_file(path, label, allow_repairs):
    bundle = json.loads(pathlib.Path(path).read_text())
    inputs = resources_in(bundle)
    defects, misread = [], 0
    for r in inputs:
        name = f"{label}: {r['resourceType']}/{r.get('id', '(no id)')}"
        defects += validate_stu3(r, name, allow_repairs)
        misread += 0 if valid_r4(r) else 1

    run = subprocess.run(
        ["cargo", "run", "--quiet", "-p", "carry-stu3", "--example", "convert", "--", str(path)],
        cwd=ROOT, capture_output=True, text=True,
    )
    if run.returncode != 0:
        fail(f"{label}: the converter failed: {run.stderr.strip()}")
        return None
    out = json.loads(run.stdout)
    lines = run.stderr.splitlines()
    unsupported = [l for l in lines if l.startswith("unsupported: ")]
    invalid = [l for l in lines if l.startswith("invalid: ")]
    notes = [l for l in lines if l.startswith("note: ")]
    for line in invalid:
        fail(f"{label}: {line}")
    for line in unsupported:
        if not line.startswith("unsupported: OperationOutcome/"):
            fail(f"{label}: only OperationOutcome may be unsupported: {line}")
    try:
        r4b_model("Bundle").model_validate(out)
    except Exception as e:
        fail(f"{label}: the R4 Bundle is not valid R4: {e}")
    outputs = resources_in(out)
    expected = [r for r in inputs if r["resourceType"] != "OperationOutcome"]
    if len(outputs) != len(expected) or len(unsupported) != len(inputs) - len(expected):
        fail(f"{label}: {len(inputs)} entries in, {len(outputs)} converted and {len(unsupported)} unsupported")
    for before, after in zip(expected, outputs):
        name = f"{label}: {before['resourceType']}/{before.get('id', '(no id)')}"
        kind = RENAMED.get(before["resourceType"], before["resourceType"])
        if after.get("resourceType") != kind or after.get("id") != before.get("id"):
            fail(f"{name}: came out as {after.get('resourceType')}/{after.get('id')}")
            continue
        try:
            r4b_model(kind).model_validate(after)
        except Exception as e:
            fail(f"{name}: not valid R4: {e}")
        meta = after.get("meta", {})
        if not any((t.get("system"), t.get("code")) == TAG for t in meta.get("tag", [])):
            fail(f"{name}: no converted tag")
        if any("/STU3/" in p for p in meta.get("profile", [])):
            fail(f"{name}: an STU3 profile is left")
        for r in [after] + after.get("contained", []):
            left = STU3_ONLY.get(r["resourceType"], set()) & set(r)
            if left:
                fail(f"{name}: STU3-only elements left: {sorted(left)}")
            if r["resourceType"] == "AllergyIntolerance" and "recordedDate" not in r:
                fail(f"{name}: an AllergyIntolerance without a recordedDate")
        for obj in walk(after):
            ref = obj.get("reference")
            if isinstance(ref, str) and any(f"{t}/" in ref or f"{t}?" in ref for t in RENAMED):
                fail(f"{name}: a reference to a renamed type is left: {ref}")
        for before_r, after_r in zip([before] + before.get("contained", []), [after] + after.get("contained", [])):
            for url in extension_urls(before_r):
                moved = MOVED_EXTENSIONS.get(url)
                if moved is None and url not in extension_urls(after_r):
                    fail(f"{name}: extension {url} was lost")
                elif moved is not None and moved not in extension_urls(after_r) and moved not in after_r:
                    fail(f"{name}: extension {url} did not reach {moved}")
    return {
        "inputs": len(inputs), "converted": len(outputs), "unsupported": len(unsupported),
        "notes": len(notes), "defects": defects, "misread": misread,
    }


# STU3 samples of the families the published examples lack, written for this check in
# the shape GP Connect 1.5/1.6 uses (consultations, problems, test results,
# immunisations, referrals). Each must be valid STU3 as it stands.
P = {"reference": "Patient/p1"}
SNOMED = "http://snomed.info/sct"


def concept(code, display):
    return {"coding": [{"system": SNOMED, "code": code, "display": display}]}


def stu3(kind, id_, profile, **elements):
    return {"resourceType": kind, "id": id_,
            "meta": {"profile": [f"https://fhir.nhs.uk/STU3/StructureDefinition/{profile}"]}, **elements}


SAMPLES = [
    stu3("Encounter", "e1", "CareConnect-GPC-Encounter-1", status="finished",
         type=[concept("185317003", "Telephone encounter")], subject=P,
         period={"start": "2019-03-01T10:00:00+00:00", "end": "2019-03-01T10:10:00+00:00"},
         participant=[{"type": [{"coding": [{"system": "http://hl7.org/fhir/v3/ParticipationType", "code": "PPRF"}]}],
                       "individual": {"reference": "Practitioner/pr1"}}],
         incomingReferral=[{"reference": "ReferralRequest/rr1"}], reason=[concept("49727002", "Cough")],
         diagnosis=[{"condition": {"reference": "Condition/c1"},
                     "role": {"coding": [{"system": "http://hl7.org/fhir/diagnosis-role", "code": "CC"}]}}],
         location=[{"location": {"reference": "Location/l1"}}], serviceProvider={"reference": "Organization/o1"}),
    stu3("List", "list1", "CareConnect-GPC-List-1", status="current", mode="snapshot", title="Consultation",
         code=concept("325851000000107", "Consultation encounter type"), subject=P, encounter={"reference": "Encounter/e1"},
         date="2019-03-01T10:10:00+00:00",
         orderedBy={"coding": [{"system": "http://hl7.org/fhir/list-order", "code": "event-date"}]},
         extension=[{"url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-ListWarningCode-1",
                     "valueCode": "confidential-items"}],
         entry=[{"item": {"reference": "Condition/c1"}}, {"item": {"reference": "Observation/o-panel"}}]),
    stu3("List", "list2", "CareConnect-GPC-List-1", status="current", mode="snapshot", title="Immunisations",
         code=concept("1102181000000102", "Immunisations"), subject=P,
         emptyReason={"coding": [{"system": "http://hl7.org/fhir/list-empty-reason", "code": "nilknown"}]}),
    stu3("Condition", "c1", "CareConnect-GPC-ProblemHeader-Condition-1", clinicalStatus="active",
         category=[{"coding": [{"system": "http://hl7.org/fhir/condition-category", "code": "problem-list-item"}]}],
         code=concept("38341003", "Hypertension"), subject=P, context={"reference": "Encounter/e1"},
         onsetDateTime="2019-03-01", assertedDate="2019-03-01T10:10:00+00:00", asserter={"reference": "Practitioner/pr1"},
         extension=[
             {"url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-ProblemSignificance-1", "valueCode": "major"},
             {"url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-ActualProblem-1",
              "valueReference": {"reference": "Observation/o-bp"}},
             {"url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-RelatedClinicalContent-1",
              "valueReference": {"reference": "ReferralRequest/rr1"}}]),
    stu3("Condition", "c2", "CareConnect-GPC-ProblemHeader-Condition-1", clinicalStatus="resolved",
         verificationStatus="unknown", code=concept("195967001", "Asthma"), subject=P, abatementBoolean=True,
         assertedDate="2010-01-01"),
    stu3("Observation", "o-panel", "CareConnect-GPC-Observation-1", status="final",
         category=[{"coding": [{"system": "http://hl7.org/fhir/observation-category", "code": "laboratory"}]}],
         code=concept("26604007", "Full blood count"), subject=P, context={"reference": "Encounter/e1"},
         issued="2019-03-02T09:00:00+00:00", performer=[{"reference": "Organization/o1"}],
         related=[{"type": "has-member", "target": {"reference": "Observation/o-hb"}},
                  {"type": "has-member", "target": {"reference": "Observation/o-bp"}}]),
    stu3("Observation", "o-hb", "CareConnect-GPC-Observation-1", status="final", code=concept("271026005", "Haemoglobin"),
         subject=P, effectiveDateTime="2019-03-01", valueQuantity={"value": 131, "unit": "g/L", "system": "http://unitsofmeasure.org", "code": "g/L"},
         interpretation={"coding": [{"system": "http://hl7.org/fhir/v2/0078", "code": "N"}]},
         referenceRange=[{"low": {"value": 115, "unit": "g/L"}, "high": {"value": 165, "unit": "g/L"}}],
         comment="Sample slightly haemolysed", specimen={"reference": "Specimen/s1"}),
    stu3("Observation", "o-bp", "CareConnect-GPC-Observation-1", status="final", code=concept("75367002", "Blood pressure"),
         subject=P, effectiveDateTime="2019-03-01",
         component=[{"code": concept("271649006", "Systolic"), "valueQuantity": {"value": 150, "unit": "mm[Hg]"},
                     "interpretation": {"coding": [{"system": "http://hl7.org/fhir/v2/0078", "code": "H"}]}}],
         related=[{"type": "derived-from", "target": {"reference": "Observation/o-hb"}},
                  {"type": "sequel-to", "target": {"reference": "Observation/o-panel"}}]),
    stu3("DiagnosticReport", "dr1", "CareConnect-GPC-DiagnosticReport-1", status="final",
         category={"coding": [{"system": "http://hl7.org/fhir/v2/0074", "code": "HM"}]}, code=concept("721981007", "Diagnostic studies report"),
         subject=P, context={"reference": "Encounter/e1"}, issued="2019-03-02T09:00:00+00:00",
         basedOn=[{"reference": "ProcedureRequest/pq1"}],
         performer=[{"role": concept("159001", "Biochemist"), "actor": {"reference": "Organization/o1"}}],
         specimen=[{"reference": "Specimen/s1"}], result=[{"reference": "Observation/o-panel"}],
         codedDiagnosis=[concept("17621005", "Normal")], conclusion="Normal"),
    stu3("Specimen", "s1", "CareConnect-GPC-Specimen-1", status="available", type=concept("119297000", "Blood specimen"),
         subject=P, receivedTime="2019-03-01T12:00:00+00:00", request=[{"reference": "ProcedureRequest/pq1"}],
         collection={"collectedDateTime": "2019-03-01T10:05:00+00:00", "bodySite": concept("368208006", "Left arm")}),
    stu3("ProcedureRequest", "pq1", "CareConnect-GPC-ProcedureRequest-1", status="suspended", intent="order",
         code=concept("26604007", "Full blood count"), subject=P, context={"reference": "Encounter/e1"},
         authoredOn="2019-03-01", requester={"agent": {"reference": "Practitioner/pr1"}, "onBehalfOf": {"reference": "Organization/o1"}},
         performer={"reference": "Organization/o1"}, reasonCode=[concept("38341003", "Hypertension")]),
    stu3("ReferralRequest", "rr1", "CareConnect-GPC-ReferralRequest-1", status="active", intent="order", priority="routine",
         serviceRequested=[concept("183519002", "Referral to cardiology service")], specialty=concept("394579002", "Cardiology"),
         subject=P, context={"reference": "Encounter/e1"}, authoredOn="2019-03-01",
         requester={"agent": {"reference": "Practitioner/pr1"}}, recipient=[{"reference": "Organization/o1"}],
         reasonCode=[concept("38341003", "Hypertension")], description="Raised blood pressure despite treatment",
         supportingInfo=[{"reference": "Observation/o-bp"}]),
    stu3("Immunization", "i1", "CareConnect-GPC-Immunization-1", status="completed", notGiven=False,
         vaccineCode=concept("871751000000104", "Influenza vaccine"), patient=P, date="2019-10-01", primarySource=True,
         practitioner=[{"role": {"coding": [{"system": "http://hl7.org/fhir/v2/0443", "code": "AP"}]}, "actor": {"reference": "Practitioner/pr1"}}],
         explanation={"reason": [concept("46233009", "Seasonal flu")]},
         vaccinationProtocol=[{"doseSequence": 1, "targetDisease": [concept("6142004", "Influenza")],
                               "doseStatus": {"coding": [{"system": "http://hl7.org/fhir/vaccination-protocol-dose-status", "code": "count"}]}}],
         extension=[{"url": "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-DateRecorded-1", "valueDateTime": "2019-10-02"},
                    {"url": "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-VaccinationProcedure-1",
                     "valueCodeableConcept": concept("822851000000102", "Seasonal influenza vaccination")}]),
    stu3("Immunization", "i2", "CareConnect-GPC-Immunization-1", status="completed", notGiven=True,
         vaccineCode=concept("871751000000104", "Influenza vaccine"), patient=P, primarySource=True,
         explanation={"reasonNotGiven": [concept("591000119102", "Vaccine refused by patient")]}),
    stu3("MedicationStatement", "ms1", "CareConnect-GPC-MedicationStatement-1", status="stopped", taken="n",
         reasonNotTaken=[concept("62014003", "Adverse reaction")], medicationReference={"reference": "Medication/m1"},
         effectivePeriod={"start": "2018-01-01", "end": "2018-02-01"}, subject=P, dateAsserted="2018-02-01",
         dosage=[{"text": "One daily", "doseQuantity": {"value": 1, "unit": "tablet"}}]),
    stu3("MedicationRequest", "mr1", "CareConnect-GPC-MedicationRequest-1", status="stopped", intent="plan",
         medicationReference={"reference": "Medication/m1"}, subject=P, context={"reference": "Encounter/e1"},
         authoredOn="2018-01-01", requester={"agent": {"reference": "Practitioner/pr1"}},
         dosageInstruction=[{"text": "One daily", "doseQuantity": {"value": 1, "unit": "tablet"}}],
         substitution={"allowed": False},
         extension=[{"url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-MedicationStatusReason-1",
                     "extension": [{"url": "statusChangeDate", "valueDateTime": "2018-02-01"},
                                   {"url": "statusReason", "valueCodeableConcept": {"text": "Adverse reaction"}}]},
                    {"url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-MedicationRepeatInformation-1",
                     "extension": [{"url": "numberOfRepeatPrescriptionsAllowed", "valuePositiveInt": 6}]},
                    {"url": "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-PrescriptionType-1",
                     "valueCodeableConcept": {"coding": [{"system": "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-PrescriptionType-1", "code": "repeat"}]}}]),
    stu3("Medication", "m1", "CareConnect-GPC-Medication-1", code=concept("318420003", "Atenolol 25mg tablets"),
         isBrand=False, package={"batch": [{"lotNumber": "A1", "expirationDate": "2020-01-01"}]}),
    stu3("Location", "l1", "CareConnect-GPC-Location-1", name="The Trevelyan Practice", status="active",
         type=concept("394761003", "GP practice site"), managingOrganization={"reference": "Organization/o1"}),
]


CATEGORIES = ("conditions,medications,allergies,immunisations,test-results,vital-signs,procedures,"
              "encounters,appointments,documents,care-plans,social-care,administrative,other")


def check_vault(fixtures, carry, expected):
    """What Carry itself stores: `carry import` of each bundle into a new profile, then
    `carry export` of every category. Every exported resource must carry the converted
    tag and be valid R4B; as many as the converter converted."""
    env = dict(os.environ, CARRY_PASSPHRASE="stu3 check passphrase, not a secret")
    with tempfile.TemporaryDirectory() as work:
        home = pathlib.Path(work) / "p"
        def carry_run(*args):
            return subprocess.run([carry, "--home", str(home), *args], env=env,
                                  capture_output=True, text=True)
        run = carry_run("init", "--name", "STU3 Check")
        if run.returncode != 0:
            fail(f"carry init failed: {run.stderr.strip()}")
            return 0
        for path in fixtures:
            run = carry_run("import", str(path), "--json")
            if run.returncode not in (0, 2):
                fail(f"carry import {path.name} failed: {run.stderr.strip()}")
        out = pathlib.Path(work) / "export.json"
        run = carry_run("export", "--category", CATEGORIES, "--out", str(out))
        if run.returncode != 0:
            fail(f"carry export failed: {run.stderr.strip()}")
            return 0
        exported = [e["resource"] for e in json.loads(out.read_text()).get("entry", [])]
        for r in exported:
            name = f"exported {r.get('resourceType')}/{r.get('id')}"
            tags = {(t.get("system"), t.get("code")) for t in r.get("meta", {}).get("tag", [])}
            if TAG not in tags:
                fail(f"{name}: no converted tag")
            if not valid_r4(r):
                fail(f"{name}: not valid R4 as Carry stored it")
        if len(exported) != expected:
            fail(f"carry export gave {len(exported)} resources, the converter {expected}")
        return len(exported)


def main(paths):
    fixtures = [pathlib.Path(p) for p in paths] or DEFAULT
    if not fixtures:
        raise SystemExit(f"stu3-check: no GP Connect bundles found in {FIXTURES}")
    totals = {"inputs": 0, "converted": 0, "unsupported": 0, "notes": 0, "misread": 0}
    defects = []
    for path in fixtures:
        result = check_file(path, path.name, allow_repairs=True)
        if result:
            for k in totals:
                totals[k] += result[k]
            defects += result["defects"]
    samples = None
    with tempfile.TemporaryDirectory() as work:
        bundle = pathlib.Path(work) / "samples.json"
        bundle.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                      "entry": [{"resource": r} for r in SAMPLES]}))
        samples = check_file(bundle, "samples", allow_repairs=False)
    kinds = collections.Counter(defects)
    print(f"stu3-check: the published examples are STU3, once {len(defects)} known defects are repaired: "
          + "; ".join(f"{what} (x{n})" for what, n in sorted(kinds.items())))
    print(f"stu3-check: {totals['misread']} of {totals['inputs']} input entries are not valid R4 as they stand; "
          f"the converter left {totals['notes']} notes on what did not carry over")
    if samples:
        print(f"stu3-check: {samples['converted']} resources converted from the check's own STU3 samples "
              f"(every family), all valid R4; {samples['notes']} notes")
    carry = os.environ.get("CARRY_BIN")
    if carry:
        stored = check_vault(fixtures, carry, totals["converted"])
        print(f"stu3-check: carry import then carry export gave {stored} resources, "
              f"each tagged as converted and valid R4 (fhir.resources R4B)")
    if failures:
        raise SystemExit(f"stu3-check: {len(failures)} failures")
    print(f"stu3-check: {totals['converted']} resources converted from {len(fixtures)} GP Connect bundles, "
          f"all valid R4 (fhir.resources R4B); {totals['unsupported']} OperationOutcome reported as unsupported")


if __name__ == "__main__":
    main(sys.argv[1:])
