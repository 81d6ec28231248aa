//! Who may do what on the FHIR API: the server's auth mode, SMART v2 scopes, and the
//! access a request carries. Tokens are looked up by their SHA-256
//! ([`crate::http::tokens`]), never stored or logged in clear.

use std::sync::Arc;

use axum::http::HeaderMap;

use crate::fhir::store::is_shared_type;
use crate::fhir::{App, FhirError};
use crate::http::tokens::{bearer, same_secret, token_hash};

/// How a server checks requests to its FHIR APIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// SMART App Launch: a bearer token from this server's token endpoint.
    Smart,
    /// One static bearer token for everything, as some test servers use.
    Bearer(String),
    /// No authorization at all, as open test servers run.
    Open,
}

impl AuthMode {
    /// Parse `smart`, `none` or `bearer:TOKEN`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "smart" => Ok(AuthMode::Smart),
            "none" => Ok(AuthMode::Open),
            _ => match s.strip_prefix("bearer:") {
                Some(t) if t.len() >= 16 => Ok(AuthMode::Bearer(t.to_string())),
                Some(_) => Err("a static bearer token must be at least 16 characters".into()),
                None => Err(format!(
                    "unknown auth mode '{s}': use smart, none or bearer:TOKEN"
                )),
            },
        }
    }
}

/// One SMART v2 scope such as `patient/Observation.crs`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scope {
    /// A resource type, or `*`.
    rtype: String,
    /// Permitted interactions out of `cruds`.
    perms: String,
}

/// Parse the `patient/…` clinical scopes of a scope string; others (`launch/patient`,
/// `offline_access`, `openid`…) are not clinical and are skipped here.
fn clinical_scopes(scope: &str) -> Vec<Scope> {
    scope
        .split_whitespace()
        .filter_map(|s| {
            let rest = s.strip_prefix("patient/")?;
            let (rtype, perms) = rest.split_once('.')?;
            // v2 permissions are a subsequence of "cruds"; v1 `read`/`write` map onto it.
            let perms = match perms {
                "read" => "rs".to_string(),
                "write" => "cud".to_string(),
                "*" => "cruds".to_string(),
                p if !p.is_empty() && is_subsequence(p, "cruds") => p.to_string(),
                _ => return None,
            };
            let type_ok = rtype == "*"
                || (rtype.starts_with(|c: char| c.is_ascii_uppercase())
                    && rtype.chars().all(|c| c.is_ascii_alphabetic()));
            type_ok.then(|| Scope {
                rtype: rtype.to_string(),
                perms,
            })
        })
        .collect()
}

fn is_subsequence(p: &str, of: &str) -> bool {
    let mut it = of.chars();
    p.chars().all(|c| it.any(|o| o == c))
}

/// The scopes this server grants out of those requested: clinical scopes it
/// understands, plus `offline_access`, `online_access`, `launch/patient`, `openid` and
/// `fhirUser`. Unknown scopes are dropped, as SMART allows.
pub fn granted_scope(requested: &str) -> String {
    requested
        .split_whitespace()
        .filter(|s| {
            matches!(
                *s,
                "offline_access" | "online_access" | "launch/patient" | "openid" | "fhirUser"
            ) || !clinical_scopes(s).is_empty()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a request may do.
#[derive(Debug, Clone)]
pub struct Access {
    /// The Patient the token speaks for; `None` when the server is open or uses a
    /// static token, which reach every record.
    pub patient: Option<String>,
    scopes: Option<Vec<Scope>>,
}

impl Access {
    /// Unrestricted access (open servers and static tokens).
    fn everything() -> Self {
        Access {
            patient: None,
            scopes: None,
        }
    }

    /// Whether `perm` (one of `c r u d s`) is granted on `rtype` (`*`: every type).
    pub fn may(&self, rtype: &str, perm: char) -> bool {
        match &self.scopes {
            None => true,
            Some(scopes) => scopes
                .iter()
                .any(|s| (s.rtype == "*" || s.rtype == rtype) && s.perms.contains(perm)),
        }
    }

    /// Whether a resource of `rtype` in `patient`'s compartment is within reach. One
    /// in no compartment (`None`) is within a patient's reach only if its type is
    /// shared across patients (an Organization, say: [`is_shared_type`]); any other
    /// is refused, even if a database holds one (fail closed).
    pub fn reaches(&self, rtype: &str, patient: Option<&str>) -> bool {
        match (&self.patient, patient) {
            (None, _) => true,
            (Some(_), None) => is_shared_type(rtype),
            (Some(own), Some(p)) => own == p,
        }
    }
}

impl App {
    /// Check a request's credentials for `tenant` and say what it may do.
    pub async fn access(
        self: &Arc<Self>,
        tenant: &str,
        headers: &HeaderMap,
    ) -> Result<Access, FhirError> {
        let token = bearer(headers);
        match &self.auth {
            AuthMode::Open => Ok(Access::everything()),
            AuthMode::Bearer(expected) => match token {
                Some(t) if same_secret(t.as_bytes(), expected.as_bytes()) => {
                    Ok(Access::everything())
                }
                _ => Err(FhirError::Unauthorized {
                    error: "invalid_token",
                    text: "a valid bearer token is required",
                }),
            },
            AuthMode::Smart => {
                if token.is_none() {
                    return Err(FhirError::Unauthorized {
                        error: "invalid_request",
                        text: "a bearer token is required",
                    });
                }
                let (hash, now) = (
                    token.map(token_hash).unwrap_or_default(),
                    crate::time::now_ms(),
                );
                let grant = self.store(move |s| s.get_grant(&hash, now)).await?;
                match grant {
                    Some(g) if g.kind == "access" && g.tenant == tenant => Ok(Access {
                        patient: Some(g.patient),
                        scopes: Some(clinical_scopes(&g.scope)),
                    }),
                    _ => Err(FhirError::Unauthorized {
                        error: "invalid_token",
                        text: "the access token is unknown or expired",
                    }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_v2_and_v1() {
        let s = clinical_scopes("patient/*.rs patient/Observation.c openid patient/Bad.xyz");
        assert_eq!(s.len(), 2);
        let a = Access {
            patient: Some("p".into()),
            scopes: Some(s),
        };
        assert!(a.may("Condition", 'r') && a.may("Condition", 's'));
        assert!(a.may("Observation", 'c'));
        assert!(!a.may("Condition", 'c'));
        assert!(!a.may("Condition", 'd'));
        let v1 = clinical_scopes("patient/Observation.read");
        assert_eq!(v1[0].perms, "rs");
        assert!(
            clinical_scopes("patient/*.sr").is_empty(),
            "order matters in v2"
        );
        assert_eq!(
            granted_scope("patient/*.rs offline_access launch/patient made-up"),
            "patient/*.rs offline_access launch/patient"
        );
    }

    #[test]
    fn a_patient_reaches_unplaced_resources_of_shared_types_only() {
        let a = Access {
            patient: Some("p".into()),
            scopes: Some(clinical_scopes("patient/*.rs")),
        };
        assert!(a.reaches("Observation", Some("p")));
        assert!(!a.reaches("Observation", Some("q")));
        assert!(a.reaches("Organization", None));
        assert!(a.reaches("Medication", None));
        for t in [
            "Appointment",
            "Composition",
            "AuditEvent",
            "Provenance",
            "Bundle",
        ] {
            assert!(!a.reaches(t, None), "{t}");
        }
        assert!(Access::everything().reaches("Composition", None));
    }

    #[test]
    fn auth_modes_parse() {
        assert_eq!(AuthMode::parse("smart"), Ok(AuthMode::Smart));
        assert_eq!(AuthMode::parse("none"), Ok(AuthMode::Open));
        assert!(AuthMode::parse("bearer:short").is_err());
        assert!(AuthMode::parse("basic").is_err());
    }
}
