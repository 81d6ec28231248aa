"""One adapter per FHIR server: start it on a free loopback port, load Synthea
transaction Bundles, update / create / delete a resource, list what it holds, stop.

Every adapter talks to its server directly (never through the recording proxy), so
what it does is not counted against Carry.
"""
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

HTTP_TIMEOUT = 60
# Loopback only, and never through a proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Skip(Exception):
    """The server cannot be run here (its harness is missing)."""


def http(method, url, body=None, headers=None, timeout=HTTP_TIMEOUT):
    """(status, headers, parsed JSON body or None)."""
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    h = {"Accept": "application/fhir+json"}
    if data is not None:
        h["Content-Type"] = "application/fhir+json"
    h.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with _opener.open(req, timeout=timeout) as r:
            status, hdrs, raw = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, dict(e.headers), e.read()
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = None
    return status, hdrs, doc


def expect(status, doc, ok, what):
    if status not in ok:
        diag = ""
        if isinstance(doc, dict) and doc.get("resourceType") == "OperationOutcome":
            diag = "; ".join(i.get("diagnostics", "") for i in doc.get("issue", []))
        raise RuntimeError(f"{what}: HTTP {status} {diag}".strip())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(cmd, log_path, cwd=None, stdout_pipe=False):
    """Start `cmd` in its own process group (so stop() reaches its children)."""
    log = open(log_path, "ab")
    return subprocess.Popen(
        cmd, cwd=cwd, start_new_session=True, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if stdout_pipe else log, stderr=log)


def kill_group(proc, grace=15):
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass


class Server:
    """The contract every adapter meets."""
    name = "?"
    fhir_path = "/fhir"      # the FHIR base's path, kept when Carry goes through the proxy
    start_timeout = 180
    # No `_lastUpdated` (nor `$everything`): a client cannot ask for what changed.
    no_last_updated = False

    def __init__(self, work, repo, endpoint_bin, public_origin):
        self.work = pathlib.Path(work)
        self.repo = pathlib.Path(repo)
        self.endpoint_bin = endpoint_bin
        # Where clients reach the server (the proxy): next links from servers that
        # write their own address there are followed directly by list().
        self.public_origin = public_origin
        self.proc = None
        self.port = None

    @property
    def origin(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def base(self):
        return self.origin + self.fhir_path

    @property
    def upstream(self):
        return ("127.0.0.1", self.port)

    def log_path(self):
        return self.work / f"{self.name}.log"

    def log_tail(self, n=8):
        try:
            return "\n".join(self.log_path().read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def start(self):
        raise NotImplementedError

    def stop(self):
        kill_group(self.proc)

    def wait_ready(self, url, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}) while starting:\n"
                                   + self.log_tail())
            try:
                status, _, _ = http("GET", url, timeout=10)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(2)
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n" + self.log_tail())

    # --- data ---
    def load(self, bundle_path):
        """POST the Synthea transaction Bundle with every entry a PUT (ids kept)."""
        bundle = json.loads(pathlib.Path(bundle_path).read_text())
        for e in bundle.get("entry", []):
            r = e["resource"]
            e["request"] = {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}
        status, _, doc = http("POST", self.base, bundle, timeout=HTTP_TIMEOUT * 2)
        expect(status, doc, (200,), f"loading {pathlib.Path(bundle_path).name}")

    def read(self, rtype, rid):
        status, _, doc = http("GET", f"{self.base}/{rtype}/{rid}")
        expect(status, doc, (200,), f"reading {rtype}/{rid}")
        return doc

    def update(self, resource):
        key = f"{resource['resourceType']}/{resource['id']}"
        status, _, doc = http("PUT", f"{self.base}/{key}", resource)
        expect(status, doc, (200, 201), f"updating {key}")

    def create(self, resource):
        """Create; returns (type, id) as the server assigned."""
        rtype = resource["resourceType"]
        status, hdrs, doc = http("POST", f"{self.base}/{rtype}", resource,
                                 headers={"Prefer": "return=representation"})
        expect(status, doc, (200, 201), f"creating a {rtype}")
        if isinstance(doc, dict) and doc.get("id"):
            return rtype, doc["id"]
        m = re.search(rf"/{rtype}/([^/]+)", hdrs.get("Location", hdrs.get("location", "")))
        if not m:
            raise RuntimeError(f"creating a {rtype}: no id in the answer")
        return rtype, m.group(1)

    def delete(self, rtype, rid):
        status, _, doc = http("DELETE", f"{self.base}/{rtype}/{rid}")
        expect(status, doc, (200, 202, 204), f"deleting {rtype}/{rid}")

    def _direct(self, url):
        """A next link, pointed at the server itself rather than at the proxy."""
        if self.public_origin:
            for host in ("127.0.0.1", "localhost"):
                o = self.public_origin.replace("127.0.0.1", host)
                if url.startswith(o + "/"):
                    return self.origin + url[len(o):]
        return url

    def list(self, types):
        """Everything the server holds of `types`: {(type, id): resource}. (Only the
        test patients live on these servers, so listing all of it is exact; the
        caller sorts it into patients' compartments by reference.)"""
        out = {}
        for t in sorted(types):
            url = f"{self.base}/{t}?_count=200"
            pages = 0
            while url:
                pages += 1
                if pages > 100:
                    raise RuntimeError(f"listing {t}: more than 100 pages")
                status, _, doc = http("GET", url)
                expect(status, doc, (200,), f"listing {t}")
                for e in doc.get("entry") or []:
                    r = e.get("resource") or {}
                    if (e.get("search") or {}).get("mode", "match") == "match" and \
                            r.get("resourceType") == t:
                        out[(t, r["id"])] = r
                url = next((self._direct(l["url"]) for l in doc.get("link") or []
                            if l.get("relation") == "next"), None)
        return out


class Reference(Server):
    """carry-endpoint over SQLite, tenant `gp`, in one of its modes."""
    fhir_path = "/gp/fhir"
    start_timeout = 60

    def __init__(self, *a, name="reference", flags=()):
        super().__init__(*a)
        self.name = name
        self.flags = list(flags)
        self.no_last_updated = "--plain-search" in self.flags
        self.db = f"sqlite://{self.work / 'ep.db'}"

    def _cli(self, *args):
        p = subprocess.run([self.endpoint_bin, *args], capture_output=True, text=True,
                           timeout=HTTP_TIMEOUT)
        if p.returncode != 0:
            raise RuntimeError(f"carry-endpoint {args[0]}: {p.stderr.strip()[-500:]}")
        return p.stdout

    def start(self):
        if not os.path.exists(self.endpoint_bin):
            raise RuntimeError(f"{self.endpoint_bin} is missing (build it first)")
        # The tenant must exist before requests reach it; seeding adds the data.
        cmd = [self.endpoint_bin, "serve", "--db", self.db, "--listen", "127.0.0.1:0",
               "--auth", "none", *self.flags]
        if self.public_origin:
            # Links and fullUrls name the proxy, as behind any reverse proxy.
            cmd += ["--public-url", self.public_origin]
        self.proc = spawn(cmd, self.log_path(), stdout_pipe=True)
        found = {}

        def read_stdout():
            for line in self.proc.stdout:
                m = re.search(rb"listening on http://([\d.]+):(\d+)", line)
                if m:
                    found["port"] = int(m.group(2))
        threading.Thread(target=read_stdout, daemon=True).start()
        deadline = time.monotonic() + self.start_timeout
        while "port" not in found:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("carry-endpoint did not start:\n" + self.log_tail())
            time.sleep(0.05)
        self.port = found["port"]

    def load(self, bundle_path):
        self._cli("seed", "--db", self.db, "--tenant", "gp", "--from", str(bundle_path))

    def update(self, resource):
        # No PUT here: seeding one resource writes a new version when it changed.
        with tempfile.NamedTemporaryFile("w", suffix=".json", dir=self.work,
                                         delete=False) as f:
            json.dump(resource, f)
        try:
            self._cli("seed", "--db", self.db, "--tenant", "gp", "--from", f.name)
        finally:
            os.unlink(f.name)

    def delete(self, rtype, rid):
        self._cli("delete", "--db", self.db, "--tenant", "gp", f"{rtype}/{rid}")


class Script(Server):
    """A third-party server run by `tests/servers/NAME/start.sh PORT` (foreground)."""

    def __init__(self, *a, name, fhir_path, start_timeout):
        super().__init__(*a)
        self.name = name
        self.fhir_path = fhir_path
        self.start_timeout = start_timeout
        self.script = self.repo / "tests" / "servers" / name / "start.sh"

    def start(self):
        if not self.script.exists():
            raise Skip(f"{self.script.relative_to(self.repo)} is missing")
        self.port = free_port()
        self.proc = spawn(["bash", str(self.script), str(self.port)], self.log_path(),
                          cwd=self.script.parent)
        self.wait_ready(f"{self.base}/metadata", self.start_timeout)


def make(name, work, repo, endpoint_bin, public_origin):
    args = (work, repo, endpoint_bin, public_origin)
    if name == "reference":
        return Reference(*args)
    if name == "reference-plain":
        return Reference(*args, name=name, flags=["--plain-search"])
    if name == "reference-nometa":
        return Reference(*args, name=name, flags=["--no-metadata"])
    if name == "hapi":
        # The first start builds with Maven; HAPI itself then takes a minute or two.
        return Script(*args, name="hapi", fhir_path="/fhir", start_timeout=360)
    if name == "medplum":
        return Script(*args, name="medplum", fhir_path="/fhir/R4", start_timeout=240)
    raise SystemExit(f"unknown server '{name}'")
