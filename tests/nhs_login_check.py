"""Checks the endpoint's mock NHS login with a JOSE implementation that is not ours.

Starts the real carry-endpoint on a free loopback port with a client whose RSA key
jwcrypto made here (registered with --nhs-login-client as a PEM public key). Then,
with the standard library for HTTP and jwcrypto for every JWT:
- reads the discovery document and the JWK Set;
- signs a sandbox user in at the authorize endpoint (PKCE S256, a nonce, the default
  vectors of trust) and follows the redirect's code;
- authenticates to the token endpoint with an RS512 client assertion
  (private_key_jwt) jwcrypto signed, and verifies the ID token against the published
  JWK Set: alg RS512, iss, aud, exp, nonce, vot P9..., vtm, the NHS number;
- reads UserInfo with the access token, and refreshes it;
- checks refusals: an assertion for another audience, an RS256 one, a replayed jti, a
  code used twice, a wrong code_verifier, a P5 user where P9 is required, a bad NHS
  number, and UserInfo with a made-up token.

Usage: nhs_login_check.py ENDPOINT_BINARY
"""
import hashlib
import json
import pathlib
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from jwcrypto import jwk, jwt

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from http_check import Tally, b64, request  # noqa: E402

endpoint = sys.argv[1]
CLIENT = "carry-check"
REDIRECT = "http://127.0.0.1:53682/callback"
NHS_NUMBER = "9912003888"
BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TALLY = Tally()
check = TALLY.check

def get_json(url, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, _, data = request("GET", url, headers=headers)
    return status, json.loads(data) if data else None


def pkce():
    verifier = secrets.token_urlsafe(32)
    return verifier, b64(hashlib.sha256(verifier.encode()).digest())


work = pathlib.Path(tempfile.mkdtemp())
client_key = jwk.JWK.generate(kty="RSA", size=2048)
(work / "client.pem").write_bytes(client_key.export_to_pem())  # the public half
other_key = jwk.JWK.generate(kty="RSA", size=2048)

server = subprocess.Popen(
    [endpoint, "serve", "--db", f"sqlite://{work}/ep.db", "--listen", "127.0.0.1:0",
     "--nhs-login-client", f"{CLIENT}={work / 'client.pem'}"],
    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
)
try:
    base = server.stdout.readline().strip().removeprefix("listening on ")
    iss = f"{base}/nhs-login"

    status, disco = get_json(f"{iss}/.well-known/openid-configuration")
    check(status == 200, "discovery answers")
    check(disco["issuer"] == iss, "discovery: issuer")
    for k, v in [("authorization_endpoint", "/authorize"), ("token_endpoint", "/token"),
                 ("userinfo_endpoint", "/userinfo"), ("jwks_uri", "/.well-known/jwks.json")]:
        check(disco.get(k) == iss + v, f"discovery: {k}")
    check(disco["id_token_signing_alg_values_supported"] == ["RS512"], "discovery: RS512 ID tokens")
    check(disco["token_endpoint_auth_methods_supported"] == ["private_key_jwt"], "discovery: private_key_jwt")
    check(disco["code_challenge_methods_supported"] == ["S256"], "discovery: S256")
    check("P9.Cp.Cd" in disco.get("vot_values_supported", []), "discovery: vectors of trust")

    _, jwks_doc = get_json(disco["jwks_uri"])
    keys = jwk.JWKSet.from_json(json.dumps(jwks_doc))
    published = jwks_doc["keys"][0]
    check(published["kty"] == "RSA" and published["alg"] == "RS512" and published["use"] == "sig",
          "JWKS: an RS512 signing key")
    check(jwk.JWK(**published).thumbprint() == published["kid"], "JWKS: the kid is the RFC 7638 thumbprint")

    def assertion(aud=None, alg="RS512", key=client_key, jti=None, lifetime=120):
        now = int(time.time())
        claims = {"iss": CLIENT, "sub": CLIENT, "aud": aud or disco["token_endpoint"],
                  "jti": jti or secrets.token_urlsafe(16), "iat": now, "exp": now + lifetime}
        token = jwt.JWT(header={"alg": alg, "typ": "JWT"}, claims=claims)
        token.make_signed_token(key)
        return token.serialize()

    def authorize(challenge, nonce, **extra):
        params = {"response_type": "code", "client_id": CLIENT, "redirect_uri": REDIRECT,
                  "scope": "openid profile profile_extended", "state": "st-1", "nonce": nonce,
                  "code_challenge": challenge, "code_challenge_method": "S256",
                  "sandbox_user": NHS_NUMBER}
        params.update(extra)
        status, headers, _ = request("GET", f"{disco['authorization_endpoint']}?{urllib.parse.urlencode(params)}")
        location = headers.get("Location", "")
        back = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
        return status, location, back

    def token(**form):
        status, _, data = request("POST", disco["token_endpoint"], body=urllib.parse.urlencode(form),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
        return status, json.loads(data)

    def exchange(code, verifier, client_assertion):
        return token(grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                     code_verifier=verifier, client_assertion_type=BEARER,
                     client_assertion=client_assertion)

    # The whole flow.
    verifier, challenge = pkce()
    nonce = secrets.token_urlsafe(16)
    status, location, back = authorize(challenge, nonce)
    check(status == 302 and location.startswith(REDIRECT), "authorize: redirected to the client")
    check(back.get("state") == "st-1" and "code" in back, "authorize: a code and the state")
    code = back["code"]

    status, tokens = exchange(code, verifier, assertion())
    check(status == 200, f"token: the code is exchanged ({tokens})")
    check(tokens.get("token_type") == "Bearer", "token: a Bearer token")
    id_token = jwt.JWT(jwt=tokens["id_token"], key=keys, algs=["RS512"],
                       check_claims={"iss": iss, "aud": CLIENT, "exp": None, "nonce": nonce})
    header = json.loads(id_token.header)
    claims = json.loads(id_token.claims)
    check(header["alg"] == "RS512" and header.get("kid") == published["kid"], "ID token: RS512 with the kid")
    check(claims["vot"].startswith("P9."), f"ID token: vot P9 ({claims['vot']})")
    check(claims["vtm"].startswith(f"{iss}/trustmark/"), "ID token: vtm")
    check(claims.get("identity_proofing_level") == "P9", "ID token: identity_proofing_level")
    check(claims.get("nhs_number") == NHS_NUMBER, "ID token: nhs_number")
    check(len(claims["sub"]) == 64 and NHS_NUMBER not in claims["sub"], "ID token: sub is not the NHS number")

    status, info = get_json(disco["userinfo_endpoint"], tokens["access_token"])
    check(status == 200 and info["sub"] == claims["sub"], "UserInfo: the same sub")
    check(info.get("nhs_number") == NHS_NUMBER and info.get("identity_proofing_level") == "P9",
          "UserInfo: nhs_number and identity_proofing_level")
    check(all(k in info for k in ("given_name", "family_name", "birthdate")), "UserInfo: demographics")

    status, refreshed = token(grant_type="refresh_token", refresh_token=tokens["refresh_token"],
                              client_assertion_type=BEARER, client_assertion=assertion())
    check(status == 200 and refreshed["refresh_token"] != tokens["refresh_token"],
          "refresh: a new refresh token")
    status, _ = get_json(disco["userinfo_endpoint"], refreshed["access_token"])
    check(status == 200, "refresh: the new access token works")

    # Refusals.
    status, body = exchange(code, verifier, assertion())
    check(status == 400 and body["error"] == "invalid_grant", "a code used twice is invalid_grant")

    verifier, challenge = pkce()
    _, _, back = authorize(challenge, "n2")
    code = back["code"]
    for what, bad in [("another audience", assertion(aud=f"{base}/elsewhere")),
                      ("RS256", assertion(alg="RS256")),
                      ("another key", assertion(key=other_key)),
                      ("a 10-minute lifetime", assertion(lifetime=600))]:
        status, body = exchange(code, verifier, bad)
        check(status == 401 and body["error"] == "invalid_client", f"an assertion with {what} is invalid_client")
    once = assertion()
    status, body = exchange(code, pkce()[0], once)
    check(status == 400 and body["error"] == "invalid_grant", "a wrong code_verifier is invalid_grant")
    status, body = exchange(code, verifier, once)
    check(status == 401 and body["error"] == "invalid_client", "a replayed jti is invalid_client")
    status, body = exchange(code, verifier, assertion())
    check(status == 200, "the code survived the refusals")

    _, _, back = authorize(pkce()[1], "n3", sandbox_proofing="P5")
    check(back.get("error") == "access_denied" and back.get("state") == "st-1",
          "a P5 user where P9 is required: access_denied")
    _, _, back = authorize(pkce()[1], "n4", sandbox_user="9912003889")
    check(back.get("error") == "invalid_request", "a bad NHS number: invalid_request")
    status, body = get_json(disco["userinfo_endpoint"], "made-up")
    check(status == 401 and body["error"] == "invalid_token", "UserInfo with a made-up token: 401")
finally:
    server.terminate()
    server.wait()

print(f"{TALLY.passed} passed, {TALLY.failed} failed")
sys.exit(1 if TALLY.failed else 0)
