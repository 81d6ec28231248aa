//! Discovery: what a server offers, from its `metadata` and
//! `.well-known/smart-configuration`. When `metadata` is missing or thin, the engine
//! assumes the richest options and falls back by trying (see `pull.rs`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::http::Http;
use crate::error::{Error, Result};

/// The patient-compartment types searched one by one when `$everything` is not
/// offered and `metadata` does not list types. A type the server turns down is skipped.
pub(crate) const DEFAULT_TYPES: &[&str] = &[
    "AllergyIntolerance",
    "Appointment",
    "CarePlan",
    "CareTeam",
    "Claim",
    "Communication",
    "Condition",
    "Coverage",
    "Device",
    "DiagnosticReport",
    "DocumentReference",
    "Encounter",
    "ExplanationOfBenefit",
    "FamilyMemberHistory",
    "Goal",
    "ImagingStudy",
    "Immunization",
    "MedicationAdministration",
    "MedicationRequest",
    "MedicationStatement",
    "Observation",
    "Procedure",
    "QuestionnaireResponse",
    "RelatedPerson",
    "ServiceRequest",
    "Specimen",
];

/// What a server offers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Capabilities {
    /// `Patient/[id]/$everything`.
    pub everything: bool,
    /// `_lastUpdated` on searches.
    pub last_updated: bool,
    /// Types searchable by `patient`, besides Patient.
    pub types: Vec<String>,
    /// Whether `metadata` said little or nothing, so the above are guesses to try.
    pub thin: bool,
    /// SMART endpoints, when offered.
    pub authorize: Option<String>,
    pub token: Option<String>,
}

async fn get_json(http: &Http, url: &str) -> Result<Option<Value>> {
    let resp = http
        .send(|| {
            http.client()
                .get(url)
                .header("accept", "application/fhir+json, application/json")
        })
        .await?;
    if resp.status != 200 {
        return Ok(None);
    }
    Ok(serde_json::from_slice(&resp.body).ok())
}

/// Read `metadata` and the SMART configuration of `base`.
pub(crate) async fn discover(http: &Http, base: &str) -> Result<Capabilities> {
    let mut caps = Capabilities::default();
    let meta = get_json(http, &format!("{base}/metadata"))
        .await?
        .filter(|m| m["resourceType"] == "CapabilityStatement");
    let rest = meta.as_ref().map(|m| &m["rest"][0]);
    let resources = rest
        .and_then(|r| r["resource"].as_array())
        .cloned()
        .unwrap_or_default();
    for r in &resources {
        let Some(t) = r["type"].as_str() else {
            continue;
        };
        let params: Vec<&str> = r["searchParam"]
            .as_array()
            .map(|ps| ps.iter().filter_map(|p| p["name"].as_str()).collect())
            .unwrap_or_default();
        if params.contains(&"_lastUpdated") {
            caps.last_updated = true;
        }
        if t == "Patient" {
            let ops = r["operation"].as_array().cloned().unwrap_or_default();
            if ops
                .iter()
                .any(|o| o["name"] == "everything" || o["name"] == "patient-everything")
            {
                caps.everything = true;
            }
        } else if params.contains(&"patient") {
            caps.types.push(t.to_string());
        }
    }
    if let Some(ops) = rest.and_then(|r| r["operation"].as_array()) {
        if ops.iter().any(|o| o["name"] == "everything") {
            caps.everything = true;
        }
    }
    if caps.types.is_empty() {
        // Missing or thin: assume the most and learn by trying.
        caps.thin = true;
        caps.everything = true;
        caps.last_updated = true;
        caps.types = DEFAULT_TYPES.iter().map(|t| t.to_string()).collect();
    }
    // SMART endpoints: the well-known document first, metadata's extension second.
    if let Some(conf) = get_json(http, &format!("{base}/.well-known/smart-configuration")).await? {
        caps.authorize = conf["authorization_endpoint"].as_str().map(str::to_string);
        caps.token = conf["token_endpoint"].as_str().map(str::to_string);
    }
    if caps.token.is_none() {
        let ext = rest.map(|r| &r["security"]["extension"]);
        if let Some(exts) = ext.and_then(Value::as_array) {
            for e in exts
                .iter()
                .flat_map(|e| e["extension"].as_array().cloned().unwrap_or_default())
            {
                match e["url"].as_str() {
                    Some("authorize") => {
                        caps.authorize = e["valueUri"].as_str().map(str::to_string)
                    }
                    Some("token") => caps.token = e["valueUri"].as_str().map(str::to_string),
                    _ => {}
                }
            }
        }
    }
    // Sign-in happens at these addresses: only over TLS (or on this machine).
    for url in [&caps.authorize, &caps.token].into_iter().flatten() {
        if !super::sources::is_secure_url(url) {
            return Err(Error::invalid(
                "the provider's sign-in addresses must be https; ask the provider to fix its SMART configuration",
            ));
        }
    }
    Ok(caps)
}
