//! The grant document: who may see which part of the record, in what role, why, on
//! what basis and until when. JSON, signed with the grantor's Ed25519 key, described
//! by `schemas/grant.schema.json`.
//!
//! The signature covers the document's canonical form: the JSON without its
//! `signature` member, object keys sorted by code point, no insignificant whitespace.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crypto::identity::{Identity, PublicIdentity, PublicKeys};
use crate::error::{Error, Result};
pub use crate::scope::Scope;

/// The `format` member of every grant document.
pub const GRANT_FORMAT: &str = "carry-grant";
/// Longest purpose and evidence note, in characters.
pub const TEXT_MAX: usize = 500;
/// Longest a grant may run, in days.
pub const MAX_DAYS: i64 = crate::prefs::MAX_GRANT_DAYS as i64;
/// The default length of a grant, in days.
pub const DEFAULT_DAYS: i64 = crate::prefs::DEFAULT_GRANT_DAYS as i64;

/// What a grantee may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees the scoped record.
    Viewer,
    /// Sees it, and may add patient-entered readings on the person's behalf.
    Contributor,
    /// A contributor who also manages grants (a Lasting Power of Attorney).
    Manager,
}

impl Role {
    /// `viewer`, `contributor` or `manager`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Contributor => "contributor",
            Role::Manager => "manager",
        }
    }

    /// Parse a role id.
    pub fn parse(s: &str) -> Result<Role> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "contributor" => Ok(Role::Contributor),
            "manager" => Ok(Role::Manager),
            _ => Err(Error::invalid(format!(
                "unknown role '{s}'; use viewer, contributor or manager"
            ))),
        }
    }

    /// Whether this role may add entries to the record.
    pub fn may_contribute(self) -> bool {
        matches!(self, Role::Contributor | Role::Manager)
    }
}

/// Why a proxy may act for the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BasisKind {
    /// The person chose it.
    PatientChoice,
    /// A parent of a child.
    ParentalResponsibility,
    /// A registered Lasting Power of Attorney for health and welfare.
    LastingPowerOfAttorney,
    /// A deputy appointed by the Court of Protection.
    CourtDeputy,
    /// A best-interests decision under the Mental Capacity Act.
    BestInterests,
}

impl BasisKind {
    /// Parse a basis id.
    pub fn parse(s: &str) -> Result<BasisKind> {
        serde_json::from_value(Value::String(s.to_string())).map_err(|_| {
            Error::invalid(format!(
                "unknown basis '{s}'; use patient-choice, parental-responsibility, \
                 lasting-power-of-attorney, court-deputy or best-interests"
            ))
        })
    }
}

/// The basis of a proxy's access, with a note of the evidence seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Basis {
    /// The kind of basis.
    pub kind: BasisKind,
    /// What evidence was seen (an LPA reference, a court order number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// Who decided that the proxy may have access (DAPB3051 4.5 asks that it be
    /// recorded). Absent in grants made before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<super::proxy::Decider>,
}

/// One side of a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    /// The name the person goes by.
    pub name: String,
    /// Their public keys.
    pub keys: PublicKeys,
}

/// A grant document. Build one with [`GrantDoc::sign`]; check a received one with
/// [`GrantDoc::parse_and_verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantDoc {
    /// Always `carry-grant`.
    pub format: String,
    /// The format version, 1.
    pub version: u32,
    /// The grant's id (`g-` and 22 base64url characters).
    pub id: String,
    /// Counts up each time the grant changes.
    pub revision: u32,
    /// Whose record it is.
    pub grantor: Party,
    /// Who may see it.
    pub grantee: Party,
    /// What the grantee may do.
    pub role: Role,
    /// Which part of the record.
    pub scope: Scope,
    /// Why, in the person's words.
    pub purpose: String,
    /// For a proxy: the basis, with evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<Basis>,
    /// For a child's record: the dates (ages 11, 13 and 16) by which access must be
    /// reviewed. The grant ends at the first of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub review_dates: Vec<String>,
    /// When it was signed (RFC 3339, UTC).
    pub issued_at: String,
    /// When it ends (RFC 3339, UTC). Required: every grant ends.
    pub expires_at: String,
    /// Ed25519 over the canonical form, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// JSON with object keys sorted and no whitespace: what the signature covers.
pub fn canonical(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

fn signing_bytes(doc: &GrantDoc) -> Result<Vec<u8>> {
    let mut v = serde_json::to_value(doc)?;
    if let Value::Object(m) = &mut v {
        m.remove("signature");
    }
    Ok(canonical(&v).into_bytes())
}

/// Unix seconds from an RFC 3339 timestamp.
pub fn parse_time(text: &str, what: &str) -> Result<i64> {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(text, &Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| Error::invalid(format!("the {what} '{text}' is not an RFC 3339 time")))
}

impl GrantDoc {
    /// Check the fields, then sign with `identity`, which must be the grantor's.
    pub fn sign(mut self, identity: &Identity) -> Result<GrantDoc> {
        self.signature = None;
        self.check()?;
        if PublicIdentity::from_keys(&self.grantor.keys)? != identity.public() {
            return Err(Error::internal("a grant is signed by its grantor"));
        }
        let sig = identity.sign(&signing_bytes(&self)?);
        self.signature = Some(B64.encode(sig));
        Ok(self)
    }

    /// Parse a document and check its fields and its signature by the grantor.
    pub fn parse_and_verify(text: &str) -> Result<GrantDoc> {
        let doc: GrantDoc = serde_json::from_str(text)
            .map_err(|e| Error::invalid(format!("not a grant document: {e}")))?;
        doc.check()?;
        let sig = doc
            .signature
            .as_deref()
            .and_then(|s| B64.decode(s).ok())
            .ok_or_else(|| Error::invalid("the grant document is not signed"))?;
        PublicIdentity::from_keys(&doc.grantor.keys)?.verify(&signing_bytes(&doc)?, &sig)?;
        Ok(doc)
    }

    /// The document as JSON text.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::internal(e.to_string()))
    }

    /// When it ends, in Unix seconds.
    pub fn expires_unix(&self) -> Result<i64> {
        parse_time(&self.expires_at, "expiry")
    }

    /// The grantor's keys.
    pub fn grantor_identity(&self) -> Result<PublicIdentity> {
        PublicIdentity::from_keys(&self.grantor.keys)
    }

    /// The grantee's keys.
    pub fn grantee_identity(&self) -> Result<PublicIdentity> {
        PublicIdentity::from_keys(&self.grantee.keys)
    }

    fn check(&self) -> Result<()> {
        let bad = |why: String| Err(Error::invalid(format!("grant document: {why}")));
        if self.format != GRANT_FORMAT || self.version != 1 {
            return bad("unknown format or version".into());
        }
        if !valid_grant_id(&self.id) {
            return bad("the id is not g- and 22 base64url characters".into());
        }
        if self.revision == 0 {
            return bad("the revision counts from 1".into());
        }
        if self.scope.categories.is_empty() {
            return bad("the scope names no category".into());
        }
        for t in &self.scope.resource_types {
            if t.is_empty() || t.len() > 64 || !t.chars().all(|c| c.is_ascii_alphabetic()) {
                return bad(format!("'{t}' is not a FHIR resource type"));
            }
        }
        for (d, what) in [
            (&self.scope.data_from, "data_from"),
            (&self.scope.data_until, "data_until"),
        ] {
            if let Some(d) = d {
                if crate::record::summary::parse_fhir_date(d).is_none() {
                    return bad(format!("{what} is not a FHIR date"));
                }
            }
        }
        for l in &self.scope.include_labels {
            if l.is_empty() || l.len() > 16 || !l.chars().all(|c| c.is_ascii_uppercase()) {
                return bad(format!("'{l}' is not an HL7 v3 sensitivity code"));
            }
        }
        if self.purpose.chars().count() > TEXT_MAX {
            return bad(format!("the purpose is longer than {TEXT_MAX} characters"));
        }
        if let Some(b) = &self.basis {
            if b.evidence
                .as_ref()
                .is_some_and(|e| e.chars().count() > TEXT_MAX)
            {
                return bad(format!(
                    "the evidence note is longer than {TEXT_MAX} characters"
                ));
            }
        }
        for p in [&self.grantor, &self.grantee] {
            if p.name.trim().is_empty() || p.name.chars().count() > 100 {
                return bad("a party's name must be 1 to 100 characters".into());
            }
            PublicIdentity::from_keys(&p.keys)?;
        }
        if self.grantor.keys == self.grantee.keys {
            return bad("a grant is to someone else".into());
        }
        for d in &self.review_dates {
            if crate::record::summary::parse_fhir_date(d).is_none() {
                return bad("a review date is not a FHIR date".into());
            }
        }
        let issued = parse_time(&self.issued_at, "issue time")?;
        let expires = parse_time(&self.expires_at, "expiry")?;
        if expires <= issued {
            return bad("it expires before it was issued".into());
        }
        if expires - issued > MAX_DAYS * 86_400 {
            return bad(format!("a grant runs at most {MAX_DAYS} days")).map(|_: ()| ());
        }
        Ok(())
    }
}

/// Whether `id` is a grant id: `g-` and 22 base64url characters.
pub fn valid_grant_id(id: &str) -> bool {
    id.strip_prefix("g-").is_some_and(|rest| {
        rest.len() == 22
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::record::Category;

    pub(crate) fn sample(grantor: &Identity, grantee: &PublicIdentity) -> GrantDoc {
        GrantDoc {
            format: GRANT_FORMAT.into(),
            version: 1,
            id: "g-AAAAAAAAAAAAAAAAAAAAAA".into(),
            revision: 1,
            grantor: Party {
                name: "Jene".into(),
                keys: grantor.public().to_keys(),
            },
            grantee: Party {
                name: "Sam".into(),
                keys: grantee.to_keys(),
            },
            role: Role::Contributor,
            scope: Scope {
                categories: vec![Category::Medications, Category::VitalSigns],
                ..Scope::default()
            },
            purpose: "helping with medicines".into(),
            basis: Some(Basis {
                kind: BasisKind::PatientChoice,
                evidence: None,
                decided_by: None,
            }),
            review_dates: vec![],
            issued_at: "2026-01-01T00:00:00Z".into(),
            expires_at: "2026-04-01T00:00:00Z".into(),
            signature: None,
        }
    }

    #[test]
    fn signed_grant_verifies_and_any_change_breaks_it() {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap().public();
        let doc = sample(&a, &b).sign(&a).unwrap();
        let text = doc.to_json().unwrap();
        assert_eq!(GrantDoc::parse_and_verify(&text).unwrap(), doc);
        // Key order does not matter; content does.
        let v: Value = serde_json::from_str(&text).unwrap();
        let reordered = canonical(&v);
        assert_eq!(GrantDoc::parse_and_verify(&reordered).unwrap(), doc);
        let widened = text.replace("\"contributor\"", "\"manager\"");
        assert!(matches!(
            GrantDoc::parse_and_verify(&widened),
            Err(Error::Denied { .. })
        ));
        let unsigned = sample(&a, &b).to_json().unwrap();
        assert!(GrantDoc::parse_and_verify(&unsigned).is_err());
        // Signed by someone other than the grantor named in it.
        let c = Identity::generate().unwrap();
        assert!(sample(&a, &b).sign(&c).is_err());
    }

    #[test]
    fn the_schema_examples_are_what_the_code_signs_and_refuses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/examples");
        let valid = std::fs::read_to_string(dir.join("grant.valid.json")).unwrap();
        let doc = GrantDoc::parse_and_verify(&valid).unwrap();
        assert_eq!(doc.role, Role::Contributor);
        let invalid = std::fs::read_to_string(dir.join("grant.invalid.json")).unwrap();
        assert!(GrantDoc::parse_and_verify(&invalid).is_err());
    }

    #[test]
    fn fields_are_checked() {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap().public();
        let mut d = sample(&a, &b);
        d.scope.categories.clear();
        assert!(d.sign(&a).is_err());
        let mut d = sample(&a, &b);
        d.expires_at = "2030-01-01T00:00:00Z".into();
        assert!(d.sign(&a).is_err());
        let mut d = sample(&a, &b);
        d.id = "g-short".into();
        assert!(d.sign(&a).is_err());
        let mut d = sample(&a, &b);
        d.grantee.keys = a.public().to_keys();
        assert!(d.sign(&a).is_err());
    }
}
