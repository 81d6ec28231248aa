"""A recording HTTP proxy between Carry and a FHIR server (stdlib only).

It listens on 127.0.0.1:0 and forwards every request to one upstream host:port,
passing the Host header through exactly as the client sent it. It counts requests
and response bytes (reset per case) and can inject two misbehaviours:

- `short_page`: on searchset Bundles it removes the `next` link and leaves everything
  else, `total` included, byte for byte as the server sent it. So that a patient's
  record spans several pages at all, it may also lower `_count` in the query of GET
  requests (`count_cap`): servers are free to cap page sizes, and the next links they
  send back then carry the capped value themselves.
- `drop_patient`: it removes the `patient` parameter from type searches
  (`GET [base]/{Type}?patient=...`), so the server answers with every patient's
  resources, as a server that ignores the parameter does.
"""
import http.client
import http.server
import json
import re
import threading
import urllib.parse

# Hop-by-hop headers (RFC 9110 7.6.1) are not forwarded; everything else is.
HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
       "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"}


def _top_level_member(text, name):
    """(start, end, value) of member `name` of the top-level JSON object in `text`,
    or None. Walks the object with raw_decode so the rest is never re-serialised."""
    dec = json.JSONDecoder()
    ws = " \t\r\n"
    i = 0
    n = len(text)

    def skip(i):
        while i < n and text[i] in ws:
            i += 1
        return i

    i = skip(i)
    if i >= n or text[i] != "{":
        return None
    i += 1
    while True:
        i = skip(i)
        if i >= n or text[i] == "}":
            return None
        key, i = dec.raw_decode(text, i)
        i = skip(i)
        if i >= n or text[i] != ":":
            return None
        start = skip(i + 1)
        value, end = dec.raw_decode(text, start)
        if key == name:
            return start, end, value
        i = skip(end)
        if i < n and text[i] == ",":
            i += 1


def strip_next(body):
    """The body without its Bundle's `next` link, or None if there was none to strip.
    Returns (new_body, info) with info = {total, entries}."""
    try:
        text = body.decode("utf-8")
        doc = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle" \
            or doc.get("type") != "searchset":
        return None
    found = _top_level_member(text, "link")
    if not found or not isinstance(found[2], list):
        return None
    start, end, links = found
    kept = [l for l in links if not (isinstance(l, dict) and l.get("relation") == "next")]
    if len(kept) == len(links):
        return None
    new = text[:start] + json.dumps(kept, separators=(",", ":")) + text[end:]
    info = {"total": doc.get("total"), "entries": len(doc.get("entry") or [])}
    return new.encode("utf-8"), info


def cap_count(path, cap):
    """`path` with its `_count` query parameter, if any, lowered to at most `cap`.
    Other parameters are left as they are, in order."""
    parts = urllib.parse.urlsplit(path)
    pairs = parts.query.split("&") if parts.query else []
    out, seen = [], False
    for p in pairs:
        k, _, v = p.partition("=")
        if k == "_count":
            seen = True
            try:
                v = str(min(int(v), cap))
            except ValueError:
                v = str(cap)
            p = f"{k}={v}"
        out.append(p)
    if not seen:
        return path
    return urllib.parse.urlunsplit(("", "", parts.path, "&".join(out), parts.fragment))


def drop_patient(path):
    """`path` without its `patient` query parameter if it is a type search
    (`[base]/{Type}?...patient=...`), else None."""
    parts = urllib.parse.urlsplit(path)
    if not re.fullmatch(r"[A-Z][A-Za-z]+", parts.path.rsplit("/", 1)[-1]):
        return None
    pairs = parts.query.split("&") if parts.query else []
    kept = [p for p in pairs if p.partition("=")[0] != "patient"]
    if len(kept) == len(pairs):
        return None
    return urllib.parse.urlunsplit(("", "", parts.path, "&".join(kept), parts.fragment))


class Proxy:
    def __init__(self):
        self.upstream = None  # (host, port), set once the server is up
        self.short_page = False
        self.count_cap = None
        self.drop_patient = False
        self.lock = threading.Lock()
        self.reset()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _forward(self):
                proxy._forward(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _forward

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def origin(self, host="127.0.0.1"):
        return f"http://{host}:{self.port}"

    def reset(self):
        """Zero the counters; returns what they held."""
        with self.lock:
            old = getattr(self, "stats", None)
            self.stats = {"requests": 0, "bytes": 0, "log": [], "stripped": [],
                          "unscoped": []}
        return old

    def snapshot(self):
        with self.lock:
            return {k: (list(v) if isinstance(v, list) else v) for k, v in self.stats.items()}

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def _read_body(self, h):
        if "chunked" in (h.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(h.rfile.read(size))
                h.rfile.readline()
        length = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(length) if length else None

    def _forward(self, h):
        body = self._read_body(h)
        path = h.path
        if self.short_page and self.count_cap and h.command == "GET" \
                and "/metadata" not in path and ".well-known" not in path:
            path = cap_count(path, self.count_cap)
        unscoped = self.drop_patient and h.command == "GET" and drop_patient(path)
        if unscoped:
            path, unscoped = unscoped, path
        status, headers, data = 502, [], b"proxy: no upstream"
        try:
            if not self.upstream:
                raise OSError("no upstream yet")
            conn = http.client.HTTPConnection(*self.upstream, timeout=60)
            try:
                conn.putrequest(h.command, path, skip_host=True, skip_accept_encoding=True)
                for k, v in h.headers.items():
                    if k.lower() not in HOP and k.lower() != "content-length":
                        conn.putheader(k, v)  # Host passes through as sent
                if body is not None:
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
                headers = [(k, v) for k, v in resp.getheaders()
                           if k.lower() not in HOP and k.lower() != "content-length"]
            finally:
                conn.close()
        except (OSError, http.client.HTTPException) as e:
            data = f"proxy: upstream failed: {e}".encode()
        stripped = None
        if self.short_page and h.command == "GET" and status == 200:
            out = strip_next(data)
            if out:
                data, stripped = out
        with self.lock:
            self.stats["requests"] += 1
            self.stats["bytes"] += len(data)
            self.stats["log"].append((h.command, path, status, len(data)))
            if stripped:
                self.stats["stripped"].append(dict(stripped, path=path))
            if unscoped:
                self.stats["unscoped"].append(unscoped)
        h.send_response_only(status)  # the server's own Date/Server headers follow
        for k, v in headers:
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)
