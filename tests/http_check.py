"""What the Python checks of the reference endpoint share: a pass/fail tally, and one
plain HTTP request that never follows a redirect (the NHS login checks read the
redirects themselves)."""

import base64
import http.client
import urllib.parse


class Tally:
    """Counts checks that held and checks that failed, printing each failure."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {what}")


def b64(data):
    """base64url without padding, as JOSE writes it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def request(method, url, body=None, headers=None):
    """Status, headers and body of one request; redirects are not followed."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    path = u.path + (f"?{u.query}" if u.query else "")
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, resp.headers, data
