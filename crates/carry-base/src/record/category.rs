//! The patient-facing category of a resource. The rules, in order:
//!
//! 1. A `category` whose text, coding display or code says "social care" or
//!    "social services" gives `social-care`.
//! 2. Observations go by their `category` (observation-category codes):
//!    `vital-signs` → vital-signs; `laboratory`, `imaging`, `procedure`, `exam`,
//!    `therapy` → test-results; `survey`, `social-history`, `activity` → other.
//!    Without a category, a code from the FHIR vital-signs profile set gives
//!    vital-signs, anything else test-results.
//! 3. Every other resource goes by its type, in the table in [`by_type`].
//!
//! `docs/formats.md` lists the same rules for app developers.

use serde_json::Value;

use super::Category;

/// Whether the resource's `category` names social care. Coding systems for social
/// care differ between services, so the rule reads the words, not one code.
fn says_social_care(v: &Value) -> bool {
    let mentions = |s: &str| {
        let s = s.to_ascii_lowercase();
        s.contains("social care") || s.contains("social-care") || s.contains("social services")
    };
    let cats = match v.get("category") {
        Some(Value::Array(a)) => a.iter().collect::<Vec<_>>(),
        Some(c @ Value::Object(_)) => vec![c],
        _ => Vec::new(),
    };
    cats.iter().any(|c| {
        c.get("text").and_then(Value::as_str).is_some_and(mentions)
            || c.get("coding")
                .and_then(Value::as_array)
                .is_some_and(|codings| {
                    codings.iter().any(|cd| {
                        cd.get("display")
                            .and_then(Value::as_str)
                            .is_some_and(mentions)
                            || cd.get("code").and_then(Value::as_str).is_some_and(mentions)
                    })
                })
    })
}

/// LOINC codes of the FHIR R4 vital-signs profiles.
const VITAL_SIGN_LOINC: &[&str] = &[
    "85353-1", "9279-1", "8867-4", "2708-6", "59408-5", "8310-5", "8302-2", "9843-4", "29463-7",
    "39156-5", "85354-9", "8480-6", "8462-4", "8478-0",
];

fn observation_category(v: &Value) -> Category {
    let codes: Vec<&str> = v
        .get("category")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("coding").and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("code").and_then(Value::as_str))
        .collect();
    for code in &codes {
        match *code {
            "vital-signs" => return Category::VitalSigns,
            "laboratory" | "imaging" | "procedure" | "exam" | "therapy" => {
                return Category::TestResults
            }
            _ => {}
        }
    }
    if codes
        .iter()
        .any(|c| matches!(*c, "survey" | "social-history" | "activity"))
    {
        return Category::Other;
    }
    let is_vital = v
        .pointer("/code/coding")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("system").and_then(Value::as_str) == Some("http://loinc.org")
                    && c.get("code")
                        .and_then(Value::as_str)
                        .is_some_and(|code| VITAL_SIGN_LOINC.contains(&code))
            })
        });
    if is_vital {
        Category::VitalSigns
    } else {
        Category::TestResults
    }
}

/// The resource types that are paperwork about care rather than care.
pub const ADMINISTRATIVE_TYPES: [&str; 17] = [
    "Account",
    "AuditEvent",
    "ChargeItem",
    "Claim",
    "ClaimResponse",
    "Contract",
    "Coverage",
    "CoverageEligibilityRequest",
    "CoverageEligibilityResponse",
    "EnrollmentRequest",
    "EnrollmentResponse",
    "ExplanationOfBenefit",
    "Invoice",
    "PaymentNotice",
    "PaymentReconciliation",
    "Provenance",
    "VerificationResult",
];

/// Put the resources of [`ADMINISTRATIVE_TYPES`] held under another category into
/// [`Category::Administrative`]: vaults from before it existed, and backups made by
/// them.
pub fn recategorise_administrative(conn: &rusqlite::Connection) -> crate::error::Result<()> {
    let list = serde_json::to_string(&ADMINISTRATIVE_TYPES)?;
    conn.execute(
        "UPDATE resources SET category = 'administrative'
         WHERE category = 'other' AND rtype IN (SELECT value FROM json_each(?1))",
        [list],
    )?;
    Ok(())
}

/// The category a resource type falls in when nothing more specific applies.
pub fn by_type(resource_type: &str) -> Category {
    match resource_type {
        "Condition" => Category::Conditions,
        "MedicationRequest"
        | "MedicationStatement"
        | "MedicationAdministration"
        | "MedicationDispense"
        | "Medication" => Category::Medications,
        "AllergyIntolerance" => Category::Allergies,
        "Immunization" | "ImmunizationRecommendation" | "ImmunizationEvaluation" => {
            Category::Immunisations
        }
        "Observation" | "DiagnosticReport" | "ImagingStudy" | "Specimen" | "MolecularSequence" => {
            Category::TestResults
        }
        "Procedure" => Category::Procedures,
        "Encounter" | "EpisodeOfCare" => Category::Encounters,
        "Appointment" | "AppointmentResponse" | "Schedule" | "Slot" => Category::Appointments,
        "DocumentReference" | "Composition" | "Binary" | "Media" | "DocumentManifest" => {
            Category::Documents
        }
        "CarePlan" | "CareTeam" | "Goal" | "ServiceRequest" | "NutritionOrder" | "RequestGroup"
        | "Task" => Category::CarePlans,
        t if ADMINISTRATIVE_TYPES.contains(&t) => Category::Administrative,
        _ => Category::Other,
    }
}

/// The category of `resource` (of type `resource_type`).
pub fn categorise(resource_type: &str, resource: &Value) -> Category {
    if says_social_care(resource) {
        return Category::SocialCare;
    }
    if resource_type == "Observation" {
        return observation_category(resource);
    }
    by_type(resource_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn observations_follow_their_category() {
        let vital = json!({"category":[{"coding":[{"code":"vital-signs"}]}]});
        let lab = json!({"category":[{"coding":[{"code":"laboratory"}]}]});
        let survey = json!({"category":[{"coding":[{"code":"survey"}]}]});
        let bare_hr = json!({"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]}});
        let bare = json!({"code":{"text":"something"}});
        assert_eq!(categorise("Observation", &vital), Category::VitalSigns);
        assert_eq!(categorise("Observation", &lab), Category::TestResults);
        assert_eq!(categorise("Observation", &survey), Category::Other);
        assert_eq!(categorise("Observation", &bare_hr), Category::VitalSigns);
        assert_eq!(categorise("Observation", &bare), Category::TestResults);
    }

    #[test]
    fn types_and_social_care() {
        assert_eq!(
            categorise("MedicationRequest", &json!({})),
            Category::Medications
        );
        assert_eq!(categorise("Claim", &json!({})), Category::Administrative);
        assert_eq!(
            categorise("ExplanationOfBenefit", &json!({})),
            Category::Administrative
        );
        assert_eq!(categorise("Organization", &json!({})), Category::Other);
        let sc = json!({"category":[{"text":"Adult social care"}]});
        assert_eq!(categorise("CarePlan", &sc), Category::SocialCare);
        assert_eq!(categorise("CarePlan", &json!({})), Category::CarePlans);
    }
}
