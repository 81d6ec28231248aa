#!/usr/bin/env python3
"""Smoke checks against a running Carry HAPI test server (stdlib only).

usage: smoke.py BASE_URL FIXTURE_BUNDLE
Loads a Synthea transaction Bundle (POST entries rewritten to PUT Type/id so
the ids are kept), then exercises the features the conformance suite relies
on. Prints one line per check, observations marked "info:", and a closing
"N passed, N failed" line; exits non-zero on any failure.
"""
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone

BASE = sys.argv[1].rstrip("/")
FIXTURE = sys.argv[2]
PATIENT = None  # set from the fixture
results = {"passed": 0, "failed": 0}


def call(method, path, body=None, base=BASE):
    url = path if path.startswith("http") else f"{base}/{path}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/fhir+json")
    if data is not None:
        req.add_header("Content-Type", "application/fhir+json")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


def check(name, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + (f" -- {detail}" if detail else ""))


def info(msg):
    print(f"info: {msg}")


def link(bundle, rel):
    return next((l["url"] for l in bundle.get("link", []) if l["relation"] == rel), None)


def walk(first):
    """Follow next links; return (pages, entries)."""
    pages, entries, page = 0, [], first
    while True:
        pages += 1
        entries += page.get("entry", [])
        nxt = link(page, "next")
        if not nxt:
            return pages, entries
        status, page = call("GET", nxt)
        assert status == 200, (status, page)


def now_iso():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def main():
    global PATIENT
    bundle = json.load(open(FIXTURE))
    # Keep the fixture's ids: POST Type -> PUT Type/id (fullUrls stay urn:uuid:).
    for e in bundle["entry"]:
        r = e["resource"]
        e["request"] = {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}
        if r["resourceType"] == "Patient":
            PATIENT = r["id"]
    n_obs = sum(e["resource"]["resourceType"] == "Observation" for e in bundle["entry"])

    status, md = call("GET", "metadata")
    check("metadata is an R4 CapabilityStatement",
          status == 200 and md["resourceType"] == "CapabilityStatement" and md["fhirVersion"] == "4.0.1",
          f"{status} {md.get('fhirVersion') if isinstance(md, dict) else md}")

    before = now_iso()
    time.sleep(1.1)
    t0 = time.time()
    status, resp = call("POST", "", bundle)
    codes = [e["response"]["status"] for e in resp.get("entry", [])] if isinstance(resp, dict) else []
    check("transaction Bundle with PUT Type/id + urn:uuid refs",
          status == 200 and len(codes) == len(bundle["entry"]) and all(c.startswith("201") for c in codes),
          f"HTTP {status}, {len(codes)} entries, {time.time() - t0:.1f}s" + ("" if status == 200 else f": {resp}"))
    time.sleep(1.1)
    after = now_iso()

    status, obs = call("GET", f"Observation/{bundle['entry'][-1]['resource']['id']}")
    status, enc = call("GET", f"Encounter?patient={PATIENT}&_count=1")
    ref = enc["entry"][0]["resource"]["subject"]["reference"] if enc.get("entry") else None
    check("urn:uuid references rewritten to Type/id", ref == f"Patient/{PATIENT}", f"{ref}")

    # Search by patient, with _count larger than HAPI's max page size.
    status, page = call("GET", f"Observation?patient={PATIENT}&_count=100")
    check("Observation?patient=&_count=100 is a searchset",
          status == 200 and page.get("type") == "searchset", f"HTTP {status}")
    info(f"_count=100: total={page.get('total')} entries on page 1={len(page.get('entry', []))} "
         f"next={'yes' if link(page, 'next') else 'no'} (fixture has {n_obs} Observations)")
    pages, entries = walk(page)
    check("paging with _count=100 reaches every Observation", len(entries) == n_obs, f"{len(entries)} in {pages} page(s)")

    status, page = call("GET", f"Observation?patient={PATIENT}&_count=10")
    check("_count=10 page has a next link", bool(link(page, "next")), f"next={link(page, 'next')}")
    info(f"_count=10: total on page 1 = {page.get('total')} (HAPI omits it until the search has completed)")
    status, acc = call("GET", f"Observation?patient={PATIENT}&_count=10&_total=accurate")
    check("_total=accurate gives total on page 1", acc.get("total") == n_obs, f"total={acc.get('total')}")
    pages, entries = walk(page)
    ids = {e["resource"]["id"] for e in entries}
    check("following next links yields all Observations once", len(entries) == n_obs == len(ids),
          f"{len(entries)} entries, {len(ids)} distinct, {pages} pages")

    status, page = call("GET", f"Observation?patient=Patient/{PATIENT}&_count=5&_elements=id")
    r0 = page["entry"][0]["resource"] if page.get("entry") else {}
    check("_elements=id accepted", status == 200 and "id" in r0, f"first resource keys: {sorted(r0)}")

    status, page = call("GET", f"Observation?patient={PATIENT}&_count=5&_include=Observation:patient")
    modes = [e.get("search", {}).get("mode") for e in page.get("entry", [])]
    check("_include=Observation:patient adds the Patient", "include" in modes, f"modes={modes}")

    status, page = call("GET", f"Observation?patient={PATIENT}&_lastUpdated=gt{urllib.parse.quote(after)}")
    check("_lastUpdated=gt<after load> gives 0",
          status == 200 and not page.get("entry") and page.get("total") in (0, None),
          f"HTTP {status} total={page.get('total')}")
    status, page = call("GET", f"Observation?patient={PATIENT}&_lastUpdated=gt{urllib.parse.quote(before)}&_count=100")
    _, entries = walk(page)
    check("_lastUpdated=gt<before load> gives all", len(entries) == n_obs, f"{len(entries)}")

    status, page = call("GET", f"Patient/{PATIENT}/$everything")
    pages, entries = walk(page)
    types = sorted({e["resource"]["resourceType"] for e in entries})
    check("Patient/$everything", status == 200 and len(entries) >= len(bundle["entry"]) - 2,
          f"{len(entries)} resources in {pages} page(s), total={page.get('total')}, types={types}")
    status, page = call("GET", f"Patient/{PATIENT}/$everything?_since={urllib.parse.quote(after)}")
    _, entries = walk(page) if status == 200 else (0, [])
    info(f"$everything?_since=<after load>: HTTP {status}, {len(entries)} resources (HAPI 8.8 ignores _since here)")

    status, page = call("GET", f"Patient/{PATIENT}/$everything?_lastUpdated=gt{urllib.parse.quote(after)}")
    _, entries = walk(page) if status == 200 else (0, [])
    info(f"$everything?_lastUpdated=gt<after load>: HTTP {status}, "
         f"{[e['resource']['resourceType'] for e in entries]}")

    status, page = call("GET", f"Observation/_history?_since={urllib.parse.quote(before)}&_count=20")
    info(f"Observation/_history: type={page.get('type')} total={page.get('total')} "
         f"page1={len(page.get('entry', []))} next={'yes' if link(page, 'next') else 'no'}")
    pages, entries = walk(page)
    check("Observation/_history?_since= lists each version", status == 200 and len(entries) == n_obs,
          f"{len(entries)} entries in {pages} page(s)")

    # Base URL follows the Host the client used (127.0.0.1 vs localhost).
    alt = BASE.replace("127.0.0.1", "localhost")
    status, page = call("GET", f"Patient?_id={PATIENT}", base=alt)
    full = page["entry"][0]["fullUrl"] if page.get("entry") else None
    check("fullUrl follows the request Host", full == f"{alt}/Patient/{PATIENT}", f"{full}")

    # Create (server-assigned id), update (new version), client-assigned id, delete.
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "smoke"},
           "subject": {"reference": f"Patient/{PATIENT}"}}
    status, created = call("POST", "Observation", obs)
    check("POST Observation creates", status == 201 and created.get("id"), f"HTTP {status} id={created.get('id')}")
    created["status"] = "amended"
    status, updated = call("PUT", f"Observation/{created['id']}", created)
    check("PUT Observation/{id} updates to version 2", status == 200 and updated["meta"]["versionId"] == "2",
          f"HTTP {status} version={updated.get('meta', {}).get('versionId')}")
    status, org = call("GET", "Organization?_id=" + next(
        e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Organization") + "&_count=1")
    check("Organization?_id=", status == 200 and len(org.get("entry", [])) == 1, f"HTTP {status}")
    status, _ = call("PUT", "Patient/carry-smoke-1", {"resourceType": "Patient", "id": "carry-smoke-1"})
    check("PUT Patient/carry-smoke-1 creates", status == 201, f"HTTP {status}")
    victim = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation")
    status, resp = call("DELETE", f"Observation/{victim['id']}")
    check("DELETE Observation/{id}", status in (200, 204), f"HTTP {status}")
    status, _ = call("GET", f"Observation/{victim['id']}")
    check("deleted Observation reads as 410 Gone", status == 410, f"HTTP {status}")
    status, page = call("GET", f"Observation?patient={PATIENT}&_count=100")
    _, entries = walk(page)
    check("search no longer returns it", len(entries) == n_obs, f"{len(entries)} (= fixture's {n_obs} + 1 created - 1 deleted)")
    status, page = call("GET", f"Observation/{victim['id']}/_history")
    hist = [(e.get("request", {}).get("method"), e.get("response", {}).get("status")) for e in page.get("entry", [])]
    info(f"instance _history after delete: {hist}")

    print(f"{results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
