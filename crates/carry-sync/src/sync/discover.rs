//! Discovery: what a server offers, from its `metadata` and
//! `.well-known/smart-configuration`. When `metadata` is missing or thin, the engine
//! assumes the richest options and falls back by trying (see `pull.rs`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::net::http::Http;

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
#[serde(default)]
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
    /// The FHIR version `metadata` named, if any.
    pub fhir_version: Option<String>,
    /// Learned by trying: `$everything` answers with resources older than `_since`,
    /// so it cannot be asked for changes; search type by type instead.
    pub since_ignored: bool,
    /// Whether `$everything` has been asked for changes since a first run, to find
    /// out early whether it honours `_since`.
    pub since_probed: bool,
    /// Learned by trying: searches refuse `_id`, so shared resources are read one by one.
    pub no_id_search: bool,
}

/// The FHIR versions Carry reads: R4 (4.0.x).
fn readable(version: &str) -> bool {
    version.starts_with("4.0.")
}

/// The release name of a FHIR version, for messages.
pub(crate) fn release_name(version: &str) -> &'static str {
    match version.get(..3).unwrap_or(version) {
        "1.0" => "DSTU2",
        "3.0" => "STU3",
        "4.0" => "R4",
        "4.3" => "R4B",
        "5.0" => "R5",
        _ => "an unknown release",
    }
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

/// Read `metadata` and, for a SMART source, the SMART configuration of `base`. A
/// missing or broken `metadata` leaves the guesses to be corrected by trying; a
/// server that says it speaks another FHIR version than R4 is refused.
pub(crate) async fn discover(http: &Http, base: &str, smart: bool) -> Result<Capabilities> {
    let mut caps = Capabilities::default();
    let meta = match get_json(http, &format!("{base}/metadata")).await {
        Ok(m) => m.filter(|m| m["resourceType"] == "CapabilityStatement"),
        // A server error on metadata alone is no reason to stop: learn by trying.
        Err(Error::Network { reason, .. }) if !smart => {
            tracing::info!(%reason, "metadata unavailable; guessing what the server offers");
            None
        }
        Err(e) => return Err(e),
    };
    if let Some(v) = meta.as_ref().and_then(|m| m["fhirVersion"].as_str()) {
        if !readable(v) {
            return Err(Error::invalid(format!(
                "this provider speaks FHIR {v} ({}); Carry reads FHIR R4 (4.0.x) and cannot sync it yet",
                release_name(v)
            )));
        }
        caps.fhir_version = Some(v.to_string());
    }
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
    if !smart {
        // Without SMART sign-in its configuration is not needed: not even asked for.
        return Ok(caps);
    }
    // SMART endpoints: the well-known document first, metadata's extension second.
    let conf = get_json(http, &format!("{base}/.well-known/smart-configuration"))
        .await
        .map_err(|e| match e {
            Error::Network {
                reason,
                retry_after_s,
            } => Error::Network {
                reason: format!(
                    "SMART discovery (.well-known/smart-configuration) failed: {reason}"
                ),
                retry_after_s,
            },
            other => other,
        })?;
    if let Some(conf) = conf {
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
