//! Whether a resource a provider sent belongs to the signed-in patient, after FHIR
//! R4's Patient CompartmentDefinition: the Patient itself, or a resource whose
//! compartment elements (`subject`, `patient`, `beneficiary`…) point at it. Resources
//! shared across patients (practitioners, organisations, locations, medications…) are
//! not in any patient's compartment and are kept as they are.
//!
//! A server that ignores the `patient` search parameter answers with everybody's
//! resources; this is what keeps them out of the record.

use serde_json::Value;

/// Where a resource stands with respect to the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Belongs {
    /// The patient's own, or a shared resource: store it.
    Yes,
    /// In some patient's compartment, but not this one's: never store it.
    Other,
}

/// The top-level elements through which each type joins the Patient compartment
/// (FHIR R4 CompartmentDefinition `patient`), searched for references at any depth.
fn elements(rtype: &str) -> Option<&'static [&'static str]> {
    Some(match rtype {
        "Account"
        | "AdverseEvent"
        | "ChargeItem"
        | "ClinicalImpression"
        | "DeviceUseStatement"
        | "DiagnosticReport"
        | "EnrollmentRequest"
        | "Media"
        | "MedicationRequest"
        | "MedicationStatement"
        | "RiskAssessment"
        | "Specimen"
        | "SupplyRequest"
        | "Encounter"
        | "Flag"
        | "Goal"
        | "ImagingStudy"
        | "MeasureReport"
        | "Condition"
        | "Procedure"
        | "ServiceRequest"
        | "CarePlan"
        | "CareTeam"
        | "DeviceRequest"
        | "Observation"
        | "RequestGroup"
        | "Composition"
        | "DocumentManifest"
        | "DocumentReference"
        | "QuestionnaireResponse"
        | "List"
        | "Communication"
        | "CommunicationRequest"
        | "Invoice"
        | "Basic" => &["subject", "patient"],
        "AllergyIntolerance"
        | "BodyStructure"
        | "ClaimResponse"
        | "Consent"
        | "CoverageEligibilityRequest"
        | "CoverageEligibilityResponse"
        | "DetectedIssue"
        | "EpisodeOfCare"
        | "FamilyMemberHistory"
        | "Immunization"
        | "ImmunizationEvaluation"
        | "ImmunizationRecommendation"
        | "MolecularSequence"
        | "NutritionOrder"
        | "RelatedPerson"
        | "SupplyDelivery"
        | "VisionPrescription"
        | "Claim"
        | "ExplanationOfBenefit" => &["patient"],
        "MedicationAdministration" | "MedicationDispense" => &["subject", "patient"],
        "Coverage" => &["beneficiary", "subscriber", "policyHolder"],
        "Appointment" | "AppointmentResponse" => &["participant", "actor"],
        "Schedule" => &["actor"],
        "ResearchSubject" => &["individual"],
        "Group" => &["member"],
        "Person" => &["link"],
        "Provenance" => &["patient", "target"],
        "AuditEvent" => &["patient", "agent", "entity"],
        _ => return None,
    })
}

/// The logical id a reference names, if it names a Patient: `Patient/x`,
/// `https://…/Patient/x`, with or without `/_history/n`.
fn patient_of(reference: &str) -> Option<&str> {
    let path = reference.split('/').collect::<Vec<_>>();
    let at = path.iter().rposition(|s| *s == "Patient")?;
    let id = path.get(at + 1)?;
    (!id.is_empty()).then_some(*id)
}

/// Every `reference` string under `v`.
fn references<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                match (k.as_str(), x) {
                    ("reference", Value::String(s)) => out.push(s),
                    _ => references(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| references(x, out)),
        _ => {}
    }
}

/// Whether `resource` may be stored in the record of the patient `patient`.
pub(crate) fn belongs(resource: &Value, patient: &str) -> Belongs {
    let rtype = resource["resourceType"].as_str().unwrap_or_default();
    if rtype == "Patient" {
        return match resource["id"].as_str() {
            Some(id) if id == patient => Belongs::Yes,
            _ => Belongs::Other,
        };
    }
    let mut refs = Vec::new();
    match elements(rtype) {
        Some(names) => {
            for n in names {
                references(&resource[*n], &mut refs);
            }
            // In the compartment only through the patient it names; a resource that
            // names none (or only another) is not this patient's.
            if refs.iter().any(|r| patient_of(r) == Some(patient)) {
                Belongs::Yes
            } else {
                Belongs::Other
            }
        }
        None => {
            // Not a compartment type: shared, unless it names another patient anywhere.
            references(resource, &mut refs);
            let others = refs.iter().filter_map(|r| patient_of(r));
            if others.clone().any(|p| p == patient) || others.count() == 0 {
                Belongs::Yes
            } else {
                Belongs::Other
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_patient_their_resources_and_shared_ones_belong() {
        let p = "p1";
        assert_eq!(
            belongs(&json!({"resourceType":"Patient","id":"p1"}), p),
            Belongs::Yes
        );
        assert_eq!(
            belongs(&json!({"resourceType":"Patient","id":"p2"}), p),
            Belongs::Other
        );
        let obs = |s: &str| json!({"resourceType":"Observation","subject":{"reference":s}});
        assert_eq!(belongs(&obs("Patient/p1"), p), Belongs::Yes);
        assert_eq!(
            belongs(&obs("http://x/fhir/Patient/p1/_history/2"), p),
            Belongs::Yes
        );
        assert_eq!(belongs(&obs("Patient/p2"), p), Belongs::Other);
        assert_eq!(belongs(&obs("Group/g"), p), Belongs::Other);
        let appt = json!({"resourceType":"Appointment","participant":[
            {"actor":{"reference":"Practitioner/d"}},{"actor":{"reference":"Patient/p1"}}]});
        assert_eq!(belongs(&appt, p), Belongs::Yes);
        let cov = json!({"resourceType":"Coverage","beneficiary":{"reference":"Patient/p2"}});
        assert_eq!(belongs(&cov, p), Belongs::Other);
        for shared in ["Practitioner", "Organization", "Location", "Medication"] {
            assert_eq!(
                belongs(&json!({"resourceType": shared, "id": "x"}), p),
                Belongs::Yes
            );
        }
        // A performer naming our patient does not make another's Observation ours.
        let tricky = json!({"resourceType":"Observation","subject":{"reference":"Patient/p2"},
            "performer":[{"reference":"Patient/p1"}]});
        assert_eq!(belongs(&tricky, p), Belongs::Other);
    }
}
