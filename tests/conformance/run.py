#!/usr/bin/env python3
"""Sync conformance matrix: the real `carry` CLI synced against several FHIR servers,
each behind a recording proxy, checked resource by resource against what the server
holds for the signed-in patient.

  tests/conformance/run.py --carry target/debug/carry --endpoint target/debug/carry-endpoint \
      --shared ../shared [--servers reference,reference-plain,reference-nometa,hapi,medplum] \
      [--out target/conformance.md]

Cases per server, in order on one Carry profile (other-patient and short-page each on
a fresh one): first, other-patient, no-change, update, create, delete, base-change,
short-page. Then, on HAPI only, summaries: the patient summary (`carry summary`) of
every shared Synthea patient and of the HL7 IPS example, both presets, through HAPI's
`Bundle/$validate`, which must find no error and no reference that does not resolve.
Exit 1 if any case fails. The last line is `N passed, N failed`. A server whose
harness is missing is skipped, or fails with CARRY_REQUIRE_SERVERS=1.
Python 3.11 standard library only.
"""
import argparse
import collections
import copy
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import proxy as proxymod  # noqa: E402
import servers  # noqa: E402

SYNTHEA = "fixtures/fhir/synthea"
BUNDLE_A = "sotf-Clemente_Kreiger_1484a42d-0eaf-4654-9cbf-6b050a5cd73b.json"
BUNDLE_B = "sotf-Ned_Hintz_e4b9259d-0f54-48d1-a35d-b526729a4dfe.json"
PATIENT_A = "d78af07c-9cb9-4f31-9b11-c45a28f2eec8"
CASES = ["first", "other-patient", "no-change", "update", "create", "delete", "base-change", "short-page",
         "summaries"]
ALL_SERVERS = "reference,reference-plain,reference-nometa,hapi,medplum"
SOURCE = "prov"
PASSPHRASE = "conformance passphrase, not a secret"
# no-change may use this many requests beyond one per resource type held (the Patient).
NO_CHANGE_SLACK = 1
# The footnote of a no-change that passed by the rule of a server that cannot be
# asked for changes.
STAR = "server offers no _lastUpdated: every sync lists everything"
# short-page: pages this small, so that the patient's record spans several pages.
SHORT_PAGE_COUNT = 20
CARRY_TIMEOUT = 300
# summaries: the files whose summaries HAPI validates, besides every Synthea patient.
IPS_EXAMPLE = "fixtures/fhir/hl7-examples/ips-Bundle-IPS-examples-Bundle-01.json"
SUMMARY_PRESETS = ("emergency", "all-but-restricted")
# What HAPI's validator says of a reference that does not resolve inside the Bundle.
DANGLING = ("Can't find", "not locally contained", "Unable to resolve")
# The test patients' ids (filled from the Bundles).
KNOWN_PATIENTS = {PATIENT_A}


# ---------------------------------------------------------------- FHIR helpers

def warning_kind(text):
    """A validator message with its particulars (codes, numbers, quoted values) taken
    out, so that warnings of one kind count together."""
    text = re.sub(r"'[^']*'", "'…'", text)
    return re.sub(r"\d+", "N", text)[:140]


def key_of(r):
    return (r.get("resourceType"), r.get("id"))


def ref_str(k):
    return f"{k[0]}/{k[1]}"


def references(node):
    """Every `reference` string anywhere in a resource."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                yield v
            else:
                yield from references(v)
    elif isinstance(node, list):
        for v in node:
            yield from references(v)


def owners(r):
    """The Patients a resource belongs to: itself if a Patient, else every Patient it
    references (subject, patient, beneficiary, ... anywhere)."""
    if r.get("resourceType") == "Patient":
        return {r.get("id")}
    out = set()
    for ref in references(r):
        if ref.startswith("urn:uuid:") and ref[9:] in KNOWN_PATIENTS:
            out.add(ref[9:])  # a transaction's reference the server left unresolved
            continue
        parts = ref.split("/")
        if len(parts) >= 2 and parts[-2] == "Patient":
            out.add(parts[-1])
        elif len(parts) >= 4 and parts[-4] == "Patient" and parts[-2] == "_history":
            out.add(parts[-3])
    return out


def version(r, like=None):
    """What identifies this version: meta.versionId, else meta.lastUpdated, else the
    content without meta. `like` (the server's copy) picks which one to compare."""
    meta_of = lambda x: (x or {}).get("meta") or {}
    ref = like if like is not None else r
    if meta_of(ref).get("versionId"):
        return "v" + str(meta_of(r).get("versionId"))
    if meta_of(ref).get("lastUpdated"):
        return "t" + str(meta_of(r).get("lastUpdated"))
    body = {k: v for k, v in r.items() if k != "meta"}
    return "c" + json.dumps(body, sort_keys=True)


def short(keys, n=5):
    keys = sorted(keys)
    s = ", ".join(ref_str(k) for k in keys[:n])
    return s + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


# ---------------------------------------------------------------- the CLI

class Carry:
    def __init__(self, binary, home):
        self.binary, self.home = binary, str(home)
        self.env = {k: v for k, v in os.environ.items()
                    if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
        self.env.update(CARRY_PASSPHRASE=PASSPHRASE, NO_PROXY="127.0.0.1,localhost")

    def run(self, *args, timeout=CARRY_TIMEOUT, check=True):
        p = subprocess.run([self.binary, "--home", self.home, *args], env=self.env,
                           capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise RuntimeError(f"carry {' '.join(args[:2])} exited {p.returncode}: "
                               f"{(p.stderr or p.stdout).strip()[-600:]}")
        return p

    def init(self):
        self.run("init", "--name", "Test Person", timeout=120)

    def add_source(self, base, patient):
        self.run("source", "add", SOURCE, base, "--auth", "none", "--patient", patient,
                 "--kind", "hospital", "--no-push", "--json")

    def sync(self, *flags):
        """The source's report (every field the CLI prints), with `_exit`."""
        p = self.run("sync", SOURCE, "--json", *flags, check=False)
        try:
            doc = json.loads(p.stdout)
            rep = next(s for s in doc.get("sources", []) if s.get("source") == SOURCE)
        except (ValueError, StopIteration):
            raise RuntimeError(f"carry sync exited {p.returncode} without a report: "
                               f"{(p.stderr or p.stdout).strip()[-600:]}")
        rep["_exit"] = p.returncode
        return rep

    def export(self):
        """The stored resources of the source: list of (fullUrl, resource)."""
        p = self.run("export", "--source", SOURCE)
        return [(e.get("fullUrl"), e["resource"]) for e in json.loads(p.stdout)["entry"]]

    def show(self, ref):
        """`carry show Type/id --json`, or None when it is not in the record."""
        p = self.run("show", ref, "--json", check=False)
        return json.loads(p.stdout) if p.returncode == 0 and p.stdout.strip() else None

    def has(self, *words):
        """Whether `carry source --help` lists a subcommand."""
        p = self.run("source", "--help", check=False)
        return all(any(line.split()[:1] == [w] for line in p.stdout.splitlines()) for w in words)


# ---------------------------------------------------------------- results

class Result:
    def __init__(self, server, case):
        self.server, self.case = server, case
        self.status = "FAIL"
        self.star = False  # passed by the rule of a server without _lastUpdated
        self.requests = self.bytes = self.seconds = None
        self.problems, self.notes = [], []

    def fail(self, msg):
        self.problems.append(msg)

    def cell(self):
        if self.status in ("SKIP", "N/A"):
            return self.status
        parts = [self.status + ("*" if self.star and self.status == "PASS" else "")]
        if self.requests is not None:
            parts.append(f"{self.requests}r")
        if self.bytes is not None:
            parts.append(f"{self.bytes / 1024:.0f}kB" if self.bytes >= 1024 else f"{self.bytes}B")
        if self.seconds is not None:
            parts.append(f"{self.seconds:.1f}s")
        return " ".join(parts)


def report_line(rep):
    """The sync report as one line: every field the CLI printed."""
    return "report: " + json.dumps({k: v for k, v in rep.items() if k != "source"},
                                   separators=(",", ":"))


def requests_line(log, n=12):
    """What the proxy saw, compactly: `GET /path?query 200 1234B`, the first n."""
    out = [f"{m} {urllib.parse.unquote(path)} {status} {size}B" for m, path, status, size in log[:n]]
    return "; ".join(out) + (f"; ... ({len(log) - n} more)" if len(log) > n else "")


def partial_reason(rep):
    """Whatever the report offers as the reason a sync is partial."""
    for k, v in rep.items():
        if k != "source" and ("reason" in k or "partial" in k) and isinstance(v, str) and v:
            return v
        if k == "partial" and isinstance(v, dict):
            return json.dumps(v)
    return rep.get("error")


# ---------------------------------------------------------------- the run for one server

class Run:
    def __init__(self, args, name, tmp):
        self.args, self.name, self.tmp = args, name, pathlib.Path(tmp)
        self.proxy = proxymod.Proxy()
        self.server = servers.make(name, self.tmp, args.repo, args.endpoint,
                                   self.proxy.origin())
        shared = pathlib.Path(args.shared) / SYNTHEA
        self.bundle_a, self.bundle_b = shared / BUNDLE_A, shared / BUNDLE_B
        ba = json.loads(self.bundle_a.read_text())
        bb = json.loads(self.bundle_b.read_text())
        self.patient_b = next(e["resource"]["id"] for e in bb["entry"]
                              if e["resource"]["resourceType"] == "Patient")
        KNOWN_PATIENTS.add(self.patient_b)
        self.types = {e["resource"]["resourceType"] for b in (ba, bb) for e in b["entry"]}
        self.carry = None  # the profile of cases first to base-change
        self.updated = self.created = self.deleted = None

    # -- measurement
    def sync(self, res, carry, *flags):
        """One sync, counted into `res` (proxy requests and bytes, wall time)."""
        self.proxy.reset()
        t = time.monotonic()
        try:
            rep = carry.sync(*flags)
        finally:
            res.seconds = (res.seconds or 0) + time.monotonic() - t
            snap = self.proxy.snapshot()
            res.requests = (res.requests or 0) + snap["requests"]
            res.bytes = (res.bytes or 0) + snap["bytes"]
            self.last_proxy = snap
        res.notes.append("".join(f + " " for f in flags) + report_line(rep))
        res.notes.append("requests: " + requests_line(snap["log"]))
        return rep

    def truth(self, stored=()):
        """What the server holds, of the loaded types and of any type Carry stored."""
        return self.server.list(self.types | {k[0] for k in stored})

    def stored(self, carry):
        """{key: resource} of the source, and the keys stored more than once."""
        entries = carry.export()
        counts = collections.Counter(key_of(r) for _, r in entries)
        return {key_of(r): r for _, r in entries}, {k for k, c in counts.items() if c > 1}, entries

    def compare(self, res, stored, truth, dups=(), gone_ok=()):
        """Resource by resource: what Carry stored for the source against what the
        server holds for patient A (plus shared resources, allowed as extras)."""
        a = PATIENT_A
        required = {k for k, r in truth.items() if owners(r) == {a}}
        missing = required - set(stored) - set(gone_ok)
        foreign = {k for k, r in stored.items() if owners(r) - {a}}
        stale = {k for k, r in stored.items()
                 if k not in truth and k not in gone_ok and owners(r) == {a}}
        unknown_shared = {k for k, r in stored.items()
                          if k not in truth and k not in gone_ok and not owners(r)}
        differ = {k for k in set(stored) & set(truth)
                  if version(stored[k], truth[k]) != version(truth[k])}
        if dups:
            res.fail(f"{len(dups)} resources stored more than once: {short(dups)}")
        if missing:
            res.fail(f"{len(missing)} of A's {len(required)} resources not stored: {short(missing)}")
        if foreign:
            res.fail(f"{len(foreign)} resources of another patient stored: {short(foreign)}")
        if stale:
            res.fail(f"{len(stale)} stored resources of A the server no longer holds: {short(stale)}")
        if unknown_shared:
            res.fail(f"{len(unknown_shared)} stored shared resources the server does not hold: "
                     f"{short(unknown_shared)}")
        if differ:
            first = sorted(differ)[0]
            res.fail(f"{len(differ)} stored versions differ from the server's: {short(differ)} "
                     f"(e.g. {ref_str(first)}: stored {version(stored[first], truth[first])[:40]}, "
                     f"server {version(truth[first])[:40]})")
        shared = {k for k, r in stored.items() if not owners(r)}
        referenced = {ref for k in required & set(stored) for ref in references(stored[k])}
        unref = {k for k in shared if not any(x.endswith(ref_str(k)) for x in referenced)}
        res.notes.append(f"stored {len(stored)}: {len(required & set(stored))}/{len(required)} "
                         f"of A's, {len(shared)} shared"
                         + (f" ({len(unref)} not referenced by A: {short(unref, 3)})" if unref else ""))
        return required

    def fresh_profile(self, home):
        carry = Carry(self.args.carry, self.tmp / home)
        carry.init()
        carry.add_source(self.proxy.origin() + self.server.fhir_path, PATIENT_A)
        return carry

    def check_no_b(self, res, stored, truth):
        b_keys = {k for k, r in truth.items() if self.patient_b in owners(r)}
        if b_keys & set(stored):
            res.fail(f"patient B's resources stored: {short(b_keys & set(stored))}")
        if ("Patient", self.patient_b) in stored:
            res.fail("patient B's Patient resource stored")

    # -- the cases
    def case_first(self, res):
        self.carry = carry = self.fresh_profile("home-1")
        rep = self.sync(res, carry)
        if not rep.get("complete"):
            res.fail(f"not complete: state {rep.get('state')}, error {rep.get('error')}")
        stored, dups, _ = self.stored(self.carry)
        truth = self.truth(stored)
        self.compare(res, stored, truth, dups)
        self.check_no_b(res, stored, truth)

    def case_other_patient(self, res):
        carry = self.fresh_profile("home-3")
        self.proxy.drop_patient = True
        try:
            rep = self.sync(res, carry)
        finally:
            self.proxy.drop_patient = False
        unscoped = self.last_proxy["unscoped"]
        res.notes.append(f"proxy removed `patient` from {len(unscoped)} type searches")
        if not unscoped:
            res.status = "N/A"
            res.notes.append("not applicable: no type search by `patient` (e.g. $everything)")
            return
        stored, _, _ = self.stored(carry)
        truth = self.truth(stored)
        self.check_no_b(res, stored, truth)
        foreign = {k for k, r in stored.items() if owners(r) - {PATIENT_A}}
        if foreign:
            res.fail(f"{len(foreign)} resources of another patient stored: {short(foreign)}")
        res.notes.append(f"stored {len(stored)}")
        if not (rep.get("refused") or 0) > 0:
            res.fail(f"refused = {rep.get('refused')} (expected > 0)")
        if rep.get("state") != "partial":
            res.fail(f"state {rep.get('state')} (expected partial)")
        if rep.get("complete") is not False:
            res.fail(f"complete = {rep.get('complete')} (expected false)")
        why = rep.get("partial") or ""
        if "other patient" not in why:
            res.fail(f"partial reason does not mention another patient: {why!r}")

    def case_no_change(self, res):
        before, _, _ = self.stored(self.carry)
        rep = self.sync(res, self.carry)
        stored, dups, _ = self.stored(self.carry)
        ntypes = len({k[0] for k in stored})
        limit = ntypes + NO_CHANGE_SLACK
        reqs = max(res.requests or 0, rep.get("requests") or 0)
        if not rep.get("complete"):
            res.fail(f"not complete: state {rep.get('state')}, error {rep.get('error')}")
        if rep.get("changed"):
            res.fail(f"{rep['changed']} resources reported changed (expected 0)")
        moved = {k for k in set(before) | set(stored) if before.get(k) != stored.get(k)}
        if moved:
            res.fail(f"{len(moved)} stored resources changed: {short(moved)}")
        if self.server.no_last_updated:
            res.star = True  # only the rules above: it must list everything each time
            res.notes.append(f"{STAR}: fetched {rep.get('fetched')}, requests {reqs} "
                             f"(carry says {rep.get('requests')})")
        else:
            if rep.get("fetched"):
                res.fail(f"{rep['fetched']} resources fetched (expected 0)")
            if reqs > limit:
                res.fail(f"{reqs} requests (limit {limit} = {ntypes} types held + "
                         f"{NO_CHANGE_SLACK})")
            res.notes.append(f"requests {reqs} (carry says {rep.get('requests')}, limit {limit})")
        self.compare(res, stored, self.truth(stored), dups)

    def _pick_observation(self, truth):
        obs = sorted(k for k, r in truth.items() if k[0] == "Observation"
                     and owners(r) == {PATIENT_A}
                     and isinstance((r.get("valueQuantity") or {}).get("value"), (int, float)))
        if not obs:
            raise RuntimeError("no Observation of A with a valueQuantity on the server")
        return obs[0]

    def case_update(self, res):
        truth = self.truth()
        k = self._pick_observation(truth)
        before, _, _ = self.stored(self.carry)
        r = copy.deepcopy(self.server.read(*k))
        new_value = round(r["valueQuantity"]["value"] + 1.25, 2)
        r["valueQuantity"]["value"] = new_value
        self.server.update(r)
        truth = self.truth(before)
        if version(truth[k]) == version(before.get(k, {}), truth[k]):
            raise RuntimeError(f"the server did not make a new version of {ref_str(k)}")
        self.updated = k
        rep = self.sync(res, self.carry)
        stored, dups, _ = self.stored(self.carry)
        res.notes.append(f"updated {ref_str(k)} to value {new_value}, "
                         f"server version {version(truth[k])[1:]}")
        if not rep.get("complete"):
            res.fail(f"not complete: state {rep.get('state')}, error {rep.get('error')}")
        got = stored.get(k)
        if got is None:
            res.fail(f"{ref_str(k)} no longer stored")
        elif (got.get("valueQuantity") or {}).get("value") != new_value:
            res.fail(f"{ref_str(k)} stored with value {got.get('valueQuantity', {}).get('value')}, "
                     f"server has {new_value}")
        if rep.get("changed") != 1:
            res.fail(f"{rep.get('changed')} resources reported changed (expected 1)")
        others = {x for x in set(before) & set(stored) if x != k and before[x] != stored[x]}
        if others:
            res.fail(f"{len(others)} other stored resources changed: {short(others)}")
        self.compare(res, stored, truth, dups)

    def case_create(self, res):
        truth = self.truth()
        src = copy.deepcopy(truth[self._pick_observation(truth)])
        for f in ("id", "meta", "identifier", "text"):
            src.pop(f, None)
        src["valueQuantity"]["value"] = 99.5
        k = self.server.create(src)
        self.created = k
        res.notes.append(f"created {ref_str(k)}")
        rep = self.sync(res, self.carry)
        stored, dups, _ = self.stored(self.carry)
        truth = self.truth(stored)
        if not rep.get("complete"):
            res.fail(f"not complete: state {rep.get('state')}, error {rep.get('error')}")
        if k not in stored:
            res.fail(f"the new {ref_str(k)} is not stored")
        if rep.get("changed") != 1:
            res.fail(f"{rep.get('changed')} resources reported changed (expected 1)")
        self.compare(res, stored, truth, dups)

    def case_delete(self, res):
        truth = self.truth()
        referenced = {ref for r in truth.values() for ref in references(r)}
        cands = sorted(k for k, r in truth.items()
                       if k[0] in ("Immunization", "Observation") and owners(r) == {PATIENT_A}
                       and k not in (self.updated, self.created)
                       and not any(x.endswith(ref_str(k)) for x in referenced))
        if not cands:
            raise RuntimeError("no unreferenced Immunization or Observation of A to delete")
        k = sorted(cands, key=lambda x: x[0] != "Immunization")[0]
        before, _, _ = self.stored(self.carry)
        self.server.delete(*k)
        self.deleted = k
        res.notes.append(f"deleted {ref_str(k)} on the server")
        rep = self.sync(res, self.carry, "--deletions")
        stored, dups, _ = self.stored(self.carry)
        truth = self.truth(stored)
        if k in truth:
            raise RuntimeError(f"the server still lists {ref_str(k)} after deleting it")
        if not rep.get("complete"):
            res.fail(f"not complete: state {rep.get('state')}, error {rep.get('error')}")
        if (rep.get("gone") or 0) < 1:
            res.fail(f"gone = {rep.get('gone')} (expected >= 1): the deletion was not noticed")
        shown = self.carry.show(ref_str(k))
        if shown is None:
            res.notes.append(f"{ref_str(k)} is absent from the record")
        elif (shown.get("item") or {}).get("gone_at_source"):
            res.notes.append(f"{ref_str(k)} is kept, marked removed at the source "
                             f"(item.gone_at_source; export still lists it)")
        else:
            res.fail(f"{ref_str(k)} is still stored and not marked gone "
                     f"(carry show: gone_at_source = {(shown.get('item') or {}).get('gone_at_source')})")
        others = {x for x in set(before) & set(stored) if x != k and before[x] != stored[x]}
        if others:
            res.fail(f"{len(others)} other stored resources changed: {short(others)}")
        self.compare(res, stored, truth, dups, gone_ok={k})

    def case_base_change(self, res):
        if not self.carry.has("set-url"):
            res.status = "N/A"
            res.notes.append("not run: `carry source set-url` does not exist yet")
            return
        new = self.proxy.origin("localhost") + self.server.fhir_path
        self.carry.run("source", "set-url", SOURCE, new)
        res.notes.append(f"base now {new}")
        gone_ok = {self.deleted} if self.deleted else set()
        truth = self.truth(self.stored(self.carry)[0])
        for full in (False, True):
            # First as asked; then --full, so every resource is seen again under the
            # new spelling of the base (an incremental sync may fetch nothing at all).
            rep = self.sync(res, self.carry, *(["--full"] if full else []))
            stored, dups, entries = self.stored(self.carry)
            label = "sync --full" if full else "sync"
            if not rep.get("complete"):
                res.fail(f"{label}: not complete: state {rep.get('state')}, error {rep.get('error')}")
            hosts = collections.Counter((u or "").split("/")[2] if (u or "").count("/") >= 2
                                        else "-" for u, _ in entries)
            res.notes.append(f"after {label}: {len(entries)} rows, fullUrl hosts {dict(hosts)}")
            n = len(res.problems)
            self.compare(res, stored, truth, dups, gone_ok=gone_ok)
            res.problems[n:] = [f"{label}: {p}" for p in res.problems[n:]]

    def case_short_page(self, res):
        carry = self.fresh_profile("home-2")
        self.proxy.short_page, self.proxy.count_cap = True, SHORT_PAGE_COUNT
        try:
            rep = self.sync(res, carry)
        finally:
            self.proxy.short_page, self.proxy.count_cap = False, None
        stripped = self.last_proxy["stripped"]
        res.notes.append(f"proxy stripped {len(stripped)} next links (page totals: "
                         f"{[s['total'] for s in stripped][:6]}, entries: "
                         f"{[s['entries'] for s in stripped][:6]})")
        if not stripped:
            res.status = "N/A"
            res.notes.append("not applicable: no page had a next link to strip")
            return
        if all(s["total"] is None for s in stripped):
            res.status = "N/A"
            res.notes.append("not applicable: the server sends no Bundle.total, so a page "
                             "without its next link cannot be told from the last page")
            return
        if rep.get("complete"):
            res.fail(f"reported complete although the pages delivered fewer resources than "
                     f"their total ({stripped[0]['entries']} of {stripped[0]['total']} on "
                     f"{stripped[0]['path'].split('?')[0]})")
        if rep.get("state") == "idle":
            res.fail("state is idle (expected a partial state)")
        why = partial_reason(rep)
        if not why:
            res.fail("no reason given for the partial sync")
        else:
            res.notes.append(f"reason: {why}")

    # -- driver
    def case_summaries(self, res):
        """Every summary validates with HAPI: no error, every reference resolved."""
        if self.name != "hapi":
            res.status = "N/A"
            res.notes.append("validated by HAPI's validator, on the hapi run")
            return
        shared = pathlib.Path(self.args.shared)
        files = sorted((shared / SYNTHEA).glob("*.json")) + [shared / IPS_EXAMPLE]
        warnings = collections.Counter()
        checked = 0
        inherited = collections.Counter()

        def validate(body):
            status, _, doc = servers.http(
                "POST", self.server.base + "/Bundle/$validate", body,
                {"Content-Type": "application/fhir+json"}, timeout=300)
            issues = (doc or {}).get("issue", [])
            if not issues:
                raise RuntimeError(f"HAPI answered {status} without an OperationOutcome")
            return issues

        for f in files:
            home = self.tmp / f"summary-{f.stem[:24]}"
            carry = Carry(self.args.carry, home)
            carry.init()
            carry.run("import", str(f))
            if f == files[0]:
                # What the person adds: a letter (its file inside the summary, under
                # Carry's documents section) and someone to contact (in Patient.contact).
                letter = home / "letter.pdf"
                letter.write_bytes(b"%PDF-1.4\n% a clinic letter\n%%EOF\n")
                carry.run("attach", str(letter), "--title", "Clinic letter")
                carry.run("contacts", "add", "Amy Lee", "--relationship", "daughter",
                          "--phone", "07700 900123")
            # An error the validator finds in the record as the provider sent it (an
            # unknown code, say) is the source's, carried as held: listed, not failed.
            source_errors = {i.get("diagnostics", "") for i in validate(f.read_bytes())
                             if i.get("severity") in ("error", "fatal")}
            for preset in SUMMARY_PRESETS:
                out = home / f"{preset}.json"
                carry.run("summary", "--preset", preset, "--out", str(out))
                issues = validate(out.read_bytes())
                checked += 1
                for i in issues:
                    text = i.get("diagnostics", "")
                    where = f"{f.stem[:30]} {preset}: {text[:160]}"
                    if i.get("severity") in ("error", "fatal") and text in source_errors:
                        inherited[f"{f.stem[:30]}: {text[:140]}"] += 1
                    elif i.get("severity") in ("error", "fatal"):
                        res.fail(where)
                    elif any(d in text for d in DANGLING):
                        res.fail(f"reference not resolved: {where}")
                    elif i.get("severity") == "warning":
                        warnings[warning_kind(text)] += 1
        # The detector itself: a summary given a reference to nothing must be caught,
        # or a validator that stopped reporting them would pass everything.
        broken = json.loads(out.read_bytes())
        victim = next(e["resource"] for e in broken["entry"] if "subject" in e["resource"])
        victim["subject"] = {"reference": "urn:uuid:00000000-0000-4000-8000-000000000000"}
        if not any(any(d in i.get("diagnostics", "") for d in DANGLING)
                   for i in validate(json.dumps(broken).encode())):
            res.fail("HAPI no longer reports a reference that does not resolve: the check cannot see them")
        res.notes.append(f"{checked} summaries validated ({len(files)} records x "
                         f"{len(SUMMARY_PRESETS)} presets)")
        for text, n in inherited.most_common():
            res.notes.append(f"error in the source record, carried as held, x{n}: {text}")
        for kind, n in warnings.most_common():
            res.notes.append(f"warning x{n}: {kind}")

    def run(self):
        results = [Result(self.name, c) for c in CASES]
        try:
            try:
                self.server.start()
            except servers.Skip as e:
                required = os.environ.get("CARRY_REQUIRE_SERVERS") == "1"
                for r in results:
                    r.status = "FAIL" if required else "SKIP"
                    (r.fail if required else r.notes.append)(
                        f"{e}" + (" (CARRY_REQUIRE_SERVERS=1)" if required else ""))
                return results
            self.proxy.upstream = self.server.upstream
            self.server.load(self.bundle_a)
            self.server.load(self.bundle_b)
            for r in results:
                if self.carry is None and r.case not in ("first", "other-patient", "short-page"):
                    r.fail("not run: the first case could not set up a profile")
                    continue
                try:
                    getattr(self, "case_" + r.case.replace("-", "_"))(r)
                except Exception as e:  # one case's crash must not stop the others
                    r.fail(f"{type(e).__name__}: {e}")
                    if self.args.verbose:
                        traceback.print_exc()
                if r.status not in ("N/A", "SKIP"):
                    r.status = "FAIL" if r.problems else "PASS"
                print(f"  {self.name:17} {r.case:12} {r.cell()}", flush=True)
        except Exception as e:
            # Said once, in full, on the first case; the others point there.
            first = True
            for r in results:
                if r.status == "FAIL" and not r.problems:
                    r.fail(f"server setup failed: {e}" if first else "not run: server setup failed")
                    first = False
        finally:
            self.server.stop()
            self.proxy.close()
        return results


# ---------------------------------------------------------------- output

def render(results, servers_order, md, with_passed):
    by = {(r.server, r.case): r for r in results}
    lines = []
    if md:
        lines.append("| server | " + " | ".join(CASES) + " |")
        lines.append("|---" * (len(CASES) + 1) + "|")
        for s in servers_order:
            lines.append(f"| {s} | " + " | ".join(by[(s, c)].cell() for c in CASES) + " |")
    else:
        w = max(len(by[k].cell()) for k in by) + 2
        lines.append(f"{'server':18}" + "".join(f"{c:{w}}" for c in CASES))
        for s in servers_order:
            lines.append(f"{s:18}" + "".join(f"{by[(s, c)].cell():{w}}" for c in CASES))
    lines.append("")
    lines.append("Cells: result, requests through the proxy, response bytes, seconds of sync.")
    if any(r.star and r.status == "PASS" for r in results):
        lines.append(f"PASS*: {STAR}.")
    lines.append("")
    for title, pick in (("Failures", lambda r: r.status == "FAIL"),
                        ("Not run / not applicable", lambda r: r.status in ("N/A", "SKIP")),
                        ("Passed", lambda r: with_passed and r.status == "PASS")):
        rs = [r for r in results if pick(r)]
        if not rs:
            continue
        lines.append(("## " if md else "") + title)
        lines.append("")
        for r in rs:
            lines.append(("### " if md else "") + f"{r.server} / {r.case}: {r.status}")
            for p in r.problems:
                lines.append(f"- {p}")
            for n in r.notes:
                lines.append(f"  - {n}" if md else f"    {n}")
            lines.append("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--carry", default="target/debug/carry")
    ap.add_argument("--endpoint", default="target/debug/carry-endpoint")
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--servers", default=ALL_SERVERS)
    ap.add_argument("--out", default=None, help="also write the matrix as Markdown here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders")
    ap.add_argument("--verbose", action="store_true",
                    help="also print the details of passed cases, and tracebacks")
    args = ap.parse_args()
    args.repo = pathlib.Path(__file__).resolve().parents[2]
    args.carry = os.path.abspath(args.carry)
    args.endpoint = os.path.abspath(args.endpoint)
    if not os.access(args.carry, os.X_OK):
        sys.exit(f"{args.carry} is missing: build it first (cargo build -p carry-cli -p carry-endpoint)")
    if not (pathlib.Path(args.shared) / SYNTHEA / BUNDLE_A).exists():
        sys.exit(f"the shared fixtures are missing: expected {args.shared}/{SYNTHEA}")
    # SIGTERM unwinds like Ctrl-C, so every `finally` stops what it started.
    def on_term(*_):
        raise KeyboardInterrupt("SIGTERM")
    signal.signal(signal.SIGTERM, on_term)
    names = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [n for n in names if n not in ALL_SERVERS.split(",")]
    if unknown:
        sys.exit(f"unknown servers {unknown}: choose from {ALL_SERVERS}")
    results = []
    top = tempfile.mkdtemp(prefix="carry-conformance-")
    try:
        for name in names:
            print(f"== {name}", flush=True)
            work = pathlib.Path(top) / name
            work.mkdir()
            results += Run(args, name, work).run()
    finally:
        if args.keep:
            print(f"kept {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)
    passed = sum(r.status == "PASS" for r in results)
    failed = sum(r.status == "FAIL" for r in results)
    other = len(results) - passed - failed
    print()
    print(render(results, names, md=False, with_passed=args.verbose))
    if args.out:
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(
            "# Sync conformance matrix\n\n" + render(results, names, md=True, with_passed=True)
            + f"\n{passed} passed, {failed} failed, {other} not run\n")
    if other:
        print(f"{other} not run (skipped or not applicable)")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: servers were stopped on the way out
        print(f"interrupted ({e or 'Ctrl-C'})", file=sys.stderr)
        sys.exit(130)
