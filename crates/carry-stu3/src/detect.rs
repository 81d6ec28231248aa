//! Which release a resource or Bundle is written in, as far as its content shows.
//! STU3 shows in three ways: a profile address with `/STU3/` in it (CareConnect,
//! GP Connect and HL7 UK's STU3 profiles all have one), a resource type R4 no longer
//! has, or an element R4 no longer has (or writes with another JSON type). Anything
//! else reads as R4.

use serde_json::Value;

use crate::Release;

/// Resource types STU3 has and R4 does not.
const STU3_ONLY_TYPES: &[&str] = &[
    "BodySite",
    "DataElement",
    "DeviceComponent",
    "EligibilityRequest",
    "EligibilityResponse",
    "ExpansionProfile",
    "ImagingManifest",
    "ProcedureRequest",
    "ProcessRequest",
    "ProcessResponse",
    "ReferralRequest",
    "Sequence",
    "ServiceDefinition",
];

/// Elements STU3 has and R4 does not, by resource type. (`context` is on the list only
/// for types where R4 renamed it: R4's MedicationStatement still has one.)
const STU3_ONLY_ELEMENTS: &[(&str, &str)] = &[
    ("AllergyIntolerance", "assertedDate"),
    ("Condition", "assertedDate"),
    ("Condition", "abatementBoolean"),
    ("Condition", "context"),
    ("DiagnosticReport", "codedDiagnosis"),
    ("DiagnosticReport", "context"),
    ("DiagnosticReport", "image"),
    ("Encounter", "incomingReferral"),
    ("Encounter", "reason"),
    ("Immunization", "notGiven"),
    ("Immunization", "date"),
    ("Immunization", "practitioner"),
    ("Immunization", "explanation"),
    ("Immunization", "vaccinationProtocol"),
    ("Medication", "isBrand"),
    ("Medication", "isOverTheCounter"),
    ("Medication", "package"),
    ("MedicationRequest", "context"),
    ("MedicationRequest", "definition"),
    ("MedicationStatement", "taken"),
    ("MedicationStatement", "reasonNotTaken"),
    ("Observation", "comment"),
    ("Observation", "context"),
    ("Observation", "related"),
    ("Patient", "animal"),
    ("Procedure", "notDone"),
    ("Procedure", "notDoneReason"),
];

/// Whether profile address `url` is an STU3 profile's (it has `/STU3/` in its path).
pub(crate) fn is_stu3_profile(url: &str) -> bool {
    url.to_ascii_lowercase().contains("/stu3/")
}

/// The release `value` (a resource, or a Bundle of them) is written in.
pub(crate) fn release_of(value: &Value) -> Release {
    if shows_stu3(value, 0) {
        Release::Stu3
    } else {
        Release::R4
    }
}

/// How deep Bundles in Bundles are looked into.
const DEPTH: usize = 4;

/// Whether `resource`, its contained resources or (for a Bundle) its entries show STU3.
fn shows_stu3(resource: &Value, depth: usize) -> bool {
    if depth > DEPTH {
        return false;
    }
    if is_stu3(resource) {
        return true;
    }
    let contained = resource
        .get("contained")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let entries = resource
        .get("entry")
        .filter(|_| resource.get("resourceType").and_then(Value::as_str) == Some("Bundle"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("resource"));
    contained.chain(entries).any(|r| shows_stu3(r, depth + 1))
}

/// Whether `resource` itself shows STU3.
fn is_stu3(resource: &Value) -> bool {
    let Some(kind) = resource.get("resourceType").and_then(Value::as_str) else {
        return false;
    };
    let profiled = match resource.get("meta").and_then(|m| m.get("profile")) {
        Some(Value::Array(profiles)) => profiles
            .iter()
            .filter_map(Value::as_str)
            .any(is_stu3_profile),
        // A lone profile, where FHIR has a list of them.
        Some(Value::String(profile)) => is_stu3_profile(profile),
        _ => false,
    };
    if profiled || STU3_ONLY_TYPES.contains(&kind) {
        return true;
    }
    if STU3_ONLY_ELEMENTS
        .iter()
        .any(|(t, e)| *t == kind && resource.get(*e).is_some())
    {
        return true;
    }
    // R4 writes these statuses as CodeableConcepts; a plain code is STU3's.
    if matches!(kind, "AllergyIntolerance" | "Condition")
        && ["clinicalStatus", "verificationStatus"]
            .iter()
            .any(|e| resource.get(*e).is_some_and(Value::is_string))
    {
        return true;
    }
    // STU3's requests name their requester as `{agent, onBehalfOf}`; R4's is a Reference.
    resource
        .get("requester")
        .and_then(|r| r.get("agent"))
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::release_of;
    use crate::Release;
    use serde_json::json;

    #[test]
    fn stu3_profiles_types_and_elements_show() {
        for stu3 in [
            json!({"resourceType": "Patient", "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-Patient-1"]}}),
            json!({"resourceType": "Patient", "meta": {"profile": ["https://fhir.hl7.org.uk/STU3/StructureDefinition/CareConnect-Patient-1"]}}),
            json!({"resourceType": "ProcedureRequest"}),
            json!({"resourceType": "ReferralRequest"}),
            json!({"resourceType": "AllergyIntolerance", "assertedDate": "2016"}),
            json!({"resourceType": "MedicationStatement", "taken": "unk"}),
            json!({"resourceType": "Immunization", "notGiven": false}),
            json!({"resourceType": "DiagnosticReport", "codedDiagnosis": []}),
            json!({"resourceType": "Condition", "clinicalStatus": "active"}),
            json!({"resourceType": "MedicationRequest", "requester": {"agent": {"reference": "Practitioner/1"}}}),
            json!({"resourceType": "Patient", "meta": {"profile": "https://fhir.nhs.uk/STU3/x"}}),
        ] {
            assert_eq!(release_of(&stu3), Release::Stu3, "{stu3}");
        }
    }

    #[test]
    fn bundles_and_contained_resources_are_looked_into() {
        let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Patient"}},
            {"resource": {"resourceType": "List", "contained": [{"resourceType": "AllergyIntolerance", "assertedDate": "2011"}]}}]});
        assert_eq!(release_of(&bundle), Release::Stu3);
    }

    #[test]
    fn r4_and_anything_else_reads_as_r4() {
        for r4 in [
            json!({"resourceType": "AllergyIntolerance", "recordedDate": "2016",
                   "clinicalStatus": {"coding": [{"code": "active"}]},
                   "meta": {"profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-AllergyIntolerance"]}}),
            json!({"resourceType": "MedicationStatement", "context": {"reference": "Encounter/1"}}),
            json!({"resourceType": "ServiceRequest", "requester": {"reference": "Practitioner/1"}}),
            json!({"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient"}}]}),
            json!([1, 2, 3]),
            json!("STU3"),
            json!({"resourceType": 3, "assertedDate": "x"}),
        ] {
            assert_eq!(release_of(&r4), Release::R4, "{r4}");
        }
    }
}
