//! A table of bad requests for every route of the endpoint: each gets its 4xx status
//! with a body that says what was wrong (JSON `{"error": …}`, an OAuth error, or a
//! FHIR OperationOutcome), never a 500, and the server never panics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use common::{raw, shared, sign_in, start};

/// How a refusal's body must read.
#[derive(Clone, Copy, Debug)]
enum Says {
    /// `{"error": "…"}` (the relay, share links, backups, OAuth).
    Error,
    /// A FHIR OperationOutcome.
    Outcome,
    /// Any body: the route does not exist, so only the status counts.
    Status,
}

struct Bad {
    what: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    says: Says,
}

fn bad(
    what: &'static str,
    method: &'static str,
    path: impl Into<String>,
    status: u16,
    says: Says,
) -> Bad {
    Bad {
        what,
        method,
        path: path.into(),
        headers: Vec::new(),
        content_type: None,
        body: Vec::new(),
        status,
        says,
    }
}

impl Bad {
    fn json(mut self, body: &str) -> Self {
        self.content_type = Some("application/json");
        self.body = body.as_bytes().to_vec();
        self
    }
    fn body(mut self, content_type: &'static str, body: &[u8]) -> Self {
        self.content_type = Some(content_type);
        self.body = body.to_vec();
        self
    }
    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }
    fn token(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }
}

#[test]
fn every_route_refuses_bad_requests_with_a_clear_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--auth", "none"]);
    let b = server.base.as_str();
    seed(dir.path());
    let t = sign_in(b);
    let made = raw(
        b,
        "POST",
        "/shl/v1/links",
        &[("authorization", &format!("Bearer {t}"))],
        Some("application/json"),
        br#"{"file":"a.b.c.d.e","flags":"L"}"#,
    );
    assert_eq!(made.status, 201, "{}", made.text);
    let mine = made.json()["id"].as_str().unwrap().to_string();
    let locator = "A".repeat(43);
    let link = "B".repeat(43);
    let huge = "x".repeat(70 * 1024);

    use Says::*;
    let table = vec![
        // FHIR: unknown tenants and types, bad ids and search parameters, bad bodies.
        bad(
            "unknown tenant",
            "GET",
            "/nobody/fhir/Patient",
            404,
            Outcome,
        ),
        bad(
            "not a resource type",
            "GET",
            "/gp/fhir/spaceship",
            400,
            Outcome,
        ),
        bad(
            "path not UTF-8",
            "GET",
            "/gp/fhir/Patient/%FF",
            400,
            Outcome,
        ),
        bad(
            "query not UTF-8",
            "GET",
            "/gp/fhir/Observation?patient=%FF",
            400,
            Outcome,
        ),
        bad(
            "$everything: _count not a number",
            "GET",
            "/gp/fhir/Patient/d78af07c-9cb9-4f31-9b11-c45a28f2eec8/$everything?_count=many",
            400,
            Outcome,
        ),
        bad(
            "tenant with capitals",
            "GET",
            "/GP/fhir/Patient",
            404,
            Outcome,
        ),
        bad(
            "id with a quote",
            "GET",
            "/gp/fhir/Patient/%22x",
            400,
            Outcome,
        ),
        bad(
            "unknown resource",
            "GET",
            "/gp/fhir/Patient/no-such-id",
            404,
            Outcome,
        ),
        bad(
            "unknown operation",
            "GET",
            "/gp/fhir/Patient/x/$explode",
            404,
            Outcome,
        ),
        bad(
            "_count not a number",
            "GET",
            "/gp/fhir/Observation?_count=many",
            400,
            Outcome,
        ),
        bad(
            "_lastUpdated not a date",
            "GET",
            "/gp/fhir/Observation?_lastUpdated=gt-yesterday",
            400,
            Outcome,
        ),
        bad(
            "date not a date",
            "GET",
            "/gp/fhir/Observation?date=ge2020-13-45",
            400,
            Outcome,
        ),
        bad(
            "query that does not decode",
            "GET",
            "/gp/fhir/Observation?_count=%ZZ",
            400,
            Outcome,
        ),
        bad(
            "create: not JSON",
            "POST",
            "/gp/fhir/Observation",
            400,
            Outcome,
        )
        .body("application/fhir+json", b"{not json"),
        bad(
            "create: wrong type in body",
            "POST",
            "/gp/fhir/Observation",
            400,
            Outcome,
        )
        .json(r#"{"resourceType":"Patient"}"#),
        bad(
            "create: an array",
            "POST",
            "/gp/fhir/Observation",
            400,
            Outcome,
        )
        .json("[1,2,3]"),
        // The relay: sign-in, the directory, mailboxes.
        bad(
            "challenge: not JSON",
            "POST",
            "/relay/v1/challenge",
            400,
            Error,
        )
        .json("{"),
        bad(
            "challenge: key not base64url",
            "POST",
            "/relay/v1/challenge",
            400,
            Error,
        )
        .json(r#"{"key":"!!"}"#),
        bad(
            "challenge: key too short",
            "POST",
            "/relay/v1/challenge",
            400,
            Error,
        )
        .json(r#"{"key":"AAAA"}"#),
        bad(
            "challenge: key a number",
            "POST",
            "/relay/v1/challenge",
            400,
            Error,
        )
        .json(r#"{"key":7}"#),
        bad(
            "session: unknown challenge",
            "POST",
            "/relay/v1/session",
            401,
            Error,
        )
        .json(&format!(
            r#"{{"key":"{locator}","challenge":"{locator}","signature":"{}"}}"#,
            "A".repeat(86)
        )),
        bad(
            "session: fields missing",
            "POST",
            "/relay/v1/session",
            400,
            Error,
        )
        .json("{}"),
        bad(
            "directory: no session",
            "PUT",
            "/relay/v1/directory",
            401,
            Error,
        )
        .json("{}"),
        bad(
            "directory: made-up session",
            "PUT",
            "/relay/v1/directory",
            401,
            Error,
        )
        .token("made-up")
        .json("{}"),
        bad(
            "directory: binding not a signature",
            "PUT",
            "/relay/v1/directory",
            400,
            Error,
        )
        .token(&t)
        .json(&format!(r#"{{"enc":"{locator}","binding":"AAAA"}}"#)),
        bad(
            "directory: binding by another key",
            "PUT",
            "/relay/v1/directory",
            400,
            Error,
        )
        .token(&t)
        .json(&format!(
            r#"{{"enc":"{locator}","binding":"{}"}}"#,
            "A".repeat(86)
        )),
        bad(
            "lookup: not a mailbox id",
            "GET",
            "/relay/v1/directory/x%2Fy",
            400,
            Error,
        )
        .token(&t),
        bad(
            "lookup: nobody published",
            "GET",
            "/relay/v1/directory/AAAAAAAAAAAAAAAAAAAAAA",
            404,
            Error,
        )
        .token(&t),
        bad(
            "deliver: no session",
            "POST",
            "/relay/v1/mailboxes/AAAAAAAAAAAAAAAAAAAAAA",
            401,
            Error,
        )
        .json("{}"),
        bad(
            "deliver: not JSON",
            "POST",
            "/relay/v1/mailboxes/AAAAAAAAAAAAAAAAAAAAAA",
            400,
            Error,
        )
        .token(&t)
        .json("tag=x"),
        bad(
            "deliver: bad tag",
            "POST",
            "/relay/v1/mailboxes/AAAAAAAAAAAAAAAAAAAAAA",
            400,
            Error,
        )
        .token(&t)
        .json(r#"{"tag":"a/b","body":"AAAA"}"#),
        bad(
            "deliver: body not base64url",
            "POST",
            "/relay/v1/mailboxes/AAAAAAAAAAAAAAAAAAAAAA",
            400,
            Error,
        )
        .token(&t)
        .json(r#"{"tag":"t","body":"@@@@"}"#),
        bad(
            "deliver: nobody's mailbox",
            "POST",
            "/relay/v1/mailboxes/AAAAAAAAAAAAAAAAAAAAAA",
            404,
            Error,
        )
        .token(&t)
        .json(r#"{"tag":"t","body":"AAAA"}"#),
        bad("fetch: no session", "GET", "/relay/v1/mailbox", 401, Error),
        bad(
            "fetch: after not a number",
            "GET",
            "/relay/v1/mailbox?after=x",
            400,
            Error,
        )
        .token(&t),
        bad(
            "fetch: limit negative",
            "GET",
            "/relay/v1/mailbox?limit=-1",
            400,
            Error,
        )
        .token(&t),
        bad(
            "fetch: query that does not decode",
            "GET",
            "/relay/v1/mailbox?after=%ZZ",
            400,
            Error,
        )
        .token(&t),
        bad(
            "ack: ids not numbers",
            "POST",
            "/relay/v1/mailbox/ack",
            400,
            Error,
        )
        .token(&t)
        .json(r#"{"ids":["a"]}"#),
        bad(
            "ack: too many ids",
            "POST",
            "/relay/v1/mailbox/ack",
            400,
            Error,
        )
        .token(&t)
        .json(&format!(r#"{{"ids":[{}]}}"#, vec!["1"; 1001].join(","))),
        bad(
            "withdraw: bad tag",
            "DELETE",
            "/relay/v1/tags/a%20b",
            400,
            Error,
        )
        .token(&t),
        bad(
            "withdraw: no session",
            "DELETE",
            "/relay/v1/tags/t",
            401,
            Error,
        ),
        // Share links: the owner API and the public protocol.
        bad("create: no session", "POST", "/shl/v1/links", 401, Error).json("{}"),
        bad("create: not JSON", "POST", "/shl/v1/links", 400, Error)
            .token(&t)
            .json("]"),
        bad(
            "create: file not a JWE",
            "POST",
            "/shl/v1/links",
            400,
            Error,
        )
        .token(&t)
        .json(r#"{"file":"hello","flags":"L"}"#),
        bad("create: unknown flag", "POST", "/shl/v1/links", 400, Error)
            .token(&t)
            .json(r#"{"file":"a.b.c.d.e","flags":"Z"}"#),
        bad(
            "create: P without a passcode",
            "POST",
            "/shl/v1/links",
            400,
            Error,
        )
        .token(&t)
        .json(r#"{"file":"a.b.c.d.e","flags":"P"}"#),
        bad(
            "create: expiry in the past",
            "POST",
            "/shl/v1/links",
            400,
            Error,
        )
        .token(&t)
        .json(r#"{"file":"a.b.c.d.e","flags":"","expires_at":1}"#),
        bad(
            "revoke: not a link id",
            "DELETE",
            "/shl/v1/links/short",
            404,
            Error,
        )
        .token(&t),
        bad(
            "revoke: nobody's link",
            "DELETE",
            format!("/shl/v1/links/{link}"),
            404,
            Error,
        )
        .token(&t),
        bad(
            "replace file: not a JWE",
            "PUT",
            format!("/shl/v1/links/{mine}/file"),
            400,
            Error,
        )
        .token(&t)
        .json(r#"{"file":"x"}"#),
        bad(
            "accesses: after not a number",
            "GET",
            format!("/shl/v1/links/{mine}/accesses?after=x"),
            400,
            Error,
        )
        .token(&t),
        bad(
            "manifest: not JSON",
            "POST",
            format!("/shl/m/{link}"),
            400,
            Error,
        )
        .json("recipient"),
        bad(
            "manifest: no recipient",
            "POST",
            format!("/shl/m/{link}"),
            400,
            Error,
        )
        .json("{}"),
        bad(
            "manifest: recipient too long",
            "POST",
            format!("/shl/m/{mine}"),
            400,
            Error,
        )
        .json(&format!(r#"{{"recipient":"{}"}}"#, "r".repeat(201))),
        bad(
            "manifest: body over the limit",
            "POST",
            format!("/shl/m/{mine}"),
            413,
            Error,
        )
        .json(&format!(r#"{{"recipient":"{huge}"}}"#)),
        bad("manifest: not a link id", "POST", "/shl/m/x", 404, Error)
            .json(r#"{"recipient":"Dr A"}"#),
        bad(
            "manifest: unknown link",
            "POST",
            format!("/shl/m/{link}"),
            404,
            Error,
        )
        .json(r#"{"recipient":"Dr A"}"#),
        bad(
            "manifest: embedded length negative",
            "POST",
            format!("/shl/m/{link}"),
            400,
            Error,
        )
        .json(r#"{"recipient":"Dr A","embeddedLengthMax":-5}"#),
        bad(
            "direct: no recipient",
            "GET",
            format!("/shl/m/{link}"),
            400,
            Error,
        ),
        bad("file: unknown token", "GET", "/shl/f/unknown", 404, Error),
        // Backups.
        bad(
            "backup fetch: no secret",
            "GET",
            format!("/backup/v1/blobs/{locator}"),
            400,
            Error,
        ),
        bad(
            "backup fetch: bad locator",
            "GET",
            "/backup/v1/blobs/short",
            400,
            Error,
        )
        .header("x-carry-fetch", &locator),
        bad(
            "backup fetch: unknown locator",
            "GET",
            format!("/backup/v1/blobs/{locator}"),
            404,
            Error,
        )
        .header("x-carry-fetch", &locator),
        bad(
            "backup upload: no session",
            "PUT",
            format!("/backup/v1/blobs/{locator}"),
            401,
            Error,
        )
        .body("application/octet-stream", b"blob"),
        bad(
            "backup upload: no fetch hash",
            "PUT",
            format!("/backup/v1/blobs/{locator}"),
            400,
            Error,
        )
        .token(&t)
        .body("application/octet-stream", b"blob"),
        bad(
            "backup upload: not octet-stream",
            "PUT",
            format!("/backup/v1/blobs/{locator}"),
            415,
            Error,
        )
        .token(&t)
        .header("x-carry-fetch-hash", &locator)
        .json("{}"),
        bad(
            "backup upload: base not a number",
            "PUT",
            format!("/backup/v1/blobs/{locator}"),
            400,
            Error,
        )
        .token(&t)
        .header("x-carry-fetch-hash", &locator)
        .header("x-carry-base", "latest")
        .body("application/octet-stream", b"blob"),
        bad(
            "backup versions: no session",
            "GET",
            format!("/backup/v1/blobs/{locator}/versions"),
            401,
            Error,
        ),
        bad(
            "backup version: not a number",
            "GET",
            format!("/backup/v1/blobs/{locator}/versions/x"),
            400,
            Error,
        )
        .header("x-carry-fetch", &locator),
        bad(
            "backup delete: no session",
            "DELETE",
            format!("/backup/v1/blobs/{locator}"),
            401,
            Error,
        ),
        bad(
            "discovery of an unknown tenant",
            "GET",
            "/nobody/fhir/.well-known/smart-configuration",
            404,
            Outcome,
        ),
        // Routes that do not exist.
        bad("no such route", "GET", "/nothing/here", 404, Status),
        bad("wrong method", "DELETE", "/relay/v1/challenge", 405, Status),
    ];

    // SMART's authorization server, on a second endpoint that uses it.
    let smart_dir = tempfile::tempdir().unwrap();
    let smart_server = start(smart_dir.path(), &[]);
    seed(smart_dir.path());
    let smart_table = vec![
        bad("authorize without parameters", "GET", "/gp/auth/authorize", 400, Error),
        bad("token: not a form", "POST", "/gp/auth/token", 400, Error).json("{}"),
        bad("token: no grant type", "POST", "/gp/auth/token", 400, Error).body("application/x-www-form-urlencoded", b"client_id=c&code=x"),
        bad("token: unknown grant type", "POST", "/gp/auth/token", 400, Error).body("application/x-www-form-urlencoded", b"client_id=c&grant_type=password&username=a"),
        bad("token: made-up code", "POST", "/gp/auth/token", 400, Error).body("application/x-www-form-urlencoded", b"grant_type=authorization_code&code=x&redirect_uri=http://a&client_id=c&code_verifier=v"),
        bad("token: made-up refresh token", "POST", "/gp/auth/token", 400, Error).body("application/x-www-form-urlencoded", b"client_id=c&grant_type=refresh_token&refresh_token=x"),
        bad("authorize: query not UTF-8", "GET", "/gp/auth/authorize?%FF=1", 400, Error),
        bad("consent: not a form", "POST", "/gp/auth/authorize", 400, Error).json("{}"),
    ];

    let mut wrong = check(b, &table);
    wrong.extend(check(&smart_server.base, &smart_table));
    for log in [server.log(), smart_server.log()] {
        assert!(!log.contains("panicked"), "the server panicked:\n{log}");
    }
    let cases = table.len() + smart_table.len();
    assert!(
        wrong.is_empty(),
        "{} of {cases} cases:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// Load one patient into the tenant `gp` of the endpoint serving from `dir`.
fn seed(dir: &std::path::Path) {
    let seeded = std::process::Command::new(env!("CARGO_BIN_EXE_carry-endpoint"))
        .args(["seed", "--db"])
        .arg(format!("sqlite://{}", dir.join("endpoint.db").display()))
        .args(["--tenant", "gp", "--from"])
        .arg(shared(
            "fixtures/fhir/synthea/sotf-Clemente_Kreiger_1484a42d-0eaf-4654-9cbf-6b050a5cd73b.json",
        ))
        .output()
        .unwrap();
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
}

/// Every case of `table` against `base`: what went other than expected.
fn check(b: &str, table: &[Bad]) -> Vec<String> {
    let mut wrong = Vec::new();
    for case in table {
        let headers: Vec<(&str, &str)> =
            case.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let a = raw(
            b,
            case.method,
            &case.path,
            &headers,
            case.content_type,
            &case.body,
        );
        let body = a.json();
        let says = match case.says {
            Says::Error => body["error"].as_str().is_some_and(|e| !e.is_empty()),
            Says::Outcome => {
                body["resourceType"] == "OperationOutcome"
                    && body["issue"][0]["diagnostics"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty())
            }
            Says::Status => true,
        };
        if a.status != case.status || !says {
            wrong.push(format!(
                "{} ({} {}): {} {}, expected {} {:?}",
                case.what, case.method, case.path, a.status, a.text, case.status, case.says
            ));
        }
    }
    wrong
}
