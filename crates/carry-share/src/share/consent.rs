//! A grant as a FHIR R4 `Consent` (scope `patient-privacy`), for systems that speak
//! FHIR rather than Carry's grant format.

use rusqlite::Connection;
use serde_json::{json, Value};

use super::document::{GrantDoc, Role};
use crate::error::Result;

/// The code system for Carry's patient-facing categories.
pub const CATEGORY_SYSTEM: &str = "https://carry.health/fhir/CodeSystem/category";
pub use crate::record::KEY_SYSTEM;

fn role_code(role: Role) -> (&'static str, &'static str) {
    match role {
        Role::Viewer => ("CAREGIVER", "caregiver"),
        Role::Contributor => ("CAREGIVER", "caregiver"),
        Role::Manager => ("POWATT", "power of attorney"),
    }
}

/// The `Consent` for `doc`, `active` or `inactive` as `state` says.
pub fn consent(conn: &Connection, doc: &GrantDoc, state: &str) -> Result<Value> {
    let (role, role_display) = role_code(doc.role);
    let mut actions = vec![json!({"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/consentaction",
        "code": "access"
    }]})];
    if doc.role.may_contribute() {
        actions.push(json!({"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/consentaction",
            "code": "correct"
        }]}));
    }
    let mut provision = json!({
        "type": "permit",
        "period": {"start": doc.issued_at, "end": doc.expires_at},
        "actor": [{
            "role": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                "code": role, "display": role_display
            }]},
            "reference": {
                "display": doc.grantee.name,
                "identifier": {"system": KEY_SYSTEM, "value": doc.grantee.keys.sign}
            }
        }],
        "action": actions,
        "code": doc.scope.categories.iter().map(|c| json!({"coding": [{
            "system": CATEGORY_SYSTEM, "code": c.as_str()
        }]})).collect::<Vec<_>>(),
    });
    if !doc.scope.resource_types.is_empty() {
        provision["class"] = doc
            .scope
            .resource_types
            .iter()
            .map(|t| json!({"system": "http://hl7.org/fhir/resource-types", "code": t}))
            .collect();
    }
    if doc.scope.data_from.is_some() || doc.scope.data_until.is_some() {
        let mut p = json!({});
        if let Some(f) = &doc.scope.data_from {
            p["start"] = json!(f);
        }
        if let Some(u) = &doc.scope.data_until {
            p["end"] = json!(u);
        }
        provision["dataPeriod"] = p;
    }
    if !doc.scope.include_labels.is_empty() {
        provision["securityLabel"] = doc
            .scope
            .include_labels
            .iter()
            .map(|l| json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": l}))
            .collect();
    }
    // Hidden items: a nested deny naming each resource.
    let mut hidden = Vec::new();
    for id in &doc.scope.hidden {
        let found: Option<(String, Option<String>)> = conn
            .query_row(
                "SELECT rtype, rid FROM resources WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok();
        if let Some((t, Some(rid))) = found {
            hidden.push(
                json!({"meaning": "instance", "reference": {"reference": format!("{t}/{rid}")}}),
            );
        }
    }
    if !hidden.is_empty() {
        provision["provision"] = json!([{ "type": "deny", "data": hidden }]);
    }
    let mut consent = json!({
        "resourceType": "Consent",
        "id": doc.id,
        "status": if state == "active" { "active" } else { "inactive" },
        "scope": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
            "code": "patient-privacy"
        }]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}]}],
        "patient": {"display": doc.grantor.name,
                    "identifier": {"system": KEY_SYSTEM, "value": doc.grantor.keys.sign}},
        "dateTime": doc.issued_at,
        "performer": [{"display": doc.grantor.name}],
        "policyRule": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"
        }]},
        "provision": provision,
    });
    if !doc.purpose.is_empty() {
        consent["provision"]["purpose"] = json!([{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
            "code": "CAREMGT",
            "display": doc.purpose
        }]);
    }
    if let Some(b) = &doc.basis {
        let kind = serde_json::to_value(b.kind).unwrap_or(Value::Null);
        let mut text = format!("basis: {}", kind.as_str().unwrap_or(""));
        if let Some(e) = &b.evidence {
            text.push_str(&format!("; evidence: {e}"));
        }
        if let Some(d) = b.decided_by {
            text.push_str(&format!("; decided by: {}", d.as_str()));
        }
        consent["sourceReference"] = json!({ "display": text });
    }
    Ok(consent)
}
