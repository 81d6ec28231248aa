//! Which FHIR release a resource was written in, where it shows. Carry reads R4; a
//! resource that carries an unmistakable mark of STU3 or DSTU2 is refused rather than
//! read as if it were R4, where its fields would be silently misread (an STU3
//! allergy's `assertedDate` is no R4 field, so it would show as undated).

use serde_json::Value;

/// Types that exist only before R4, with the last release that had them.
const GONE_IN_R4: &[(&str, &str)] = &[
    ("ProcedureRequest", "STU3"),
    ("ReferralRequest", "STU3"),
    ("DeviceComponent", "STU3"),
    ("EligibilityRequest", "STU3"),
    ("EligibilityResponse", "STU3"),
    ("ProcessRequest", "STU3"),
    ("ProcessResponse", "STU3"),
    ("ImagingManifest", "STU3"),
    ("BodySite", "STU3"),
    ("Sequence", "STU3"),
    ("DataElement", "STU3"),
    ("MedicationOrder", "DSTU2"),
    ("DiagnosticOrder", "DSTU2"),
    ("DeviceUseRequest", "DSTU2"),
    ("Order", "DSTU2"),
    ("OrderResponse", "DSTU2"),
];

/// Elements that mark a release before R4, by resource type.
const MARKS: &[(&str, &str, &str)] = &[
    ("AllergyIntolerance", "assertedDate", "STU3"),
    ("MedicationStatement", "taken", "STU3"),
    ("MedicationStatement", "wasNotTaken", "DSTU2"),
    ("Condition", "dateRecorded", "DSTU2"),
    ("Observation", "comments", "DSTU2"),
];

/// The release before R4 that `resource` was written in, if it shows: `STU3` or
/// `DSTU2`. `None` for R4 and for anything that does not say.
pub fn pre_r4(resource: &Value) -> Option<&'static str> {
    let rtype = resource["resourceType"].as_str()?;
    if let Some((_, r)) = GONE_IN_R4.iter().find(|(t, _)| *t == rtype) {
        return Some(r);
    }
    for (t, field, release) in MARKS {
        if *t == rtype && resource.get(*field).is_some() {
            return Some(release);
        }
    }
    // STU3 profiles say so in their address (CareConnect, GP Connect, HL7 UK).
    let profiles = resource["meta"]["profile"].as_array();
    if profiles.is_some_and(|ps| {
        ps.iter()
            .filter_map(Value::as_str)
            .any(|p| p.contains("/STU3/") || p.contains("/DSTU2/"))
    }) {
        return Some("STU3");
    }
    // In R4 these statuses are CodeableConcepts; a plain code is STU3's.
    if matches!(rtype, "AllergyIntolerance" | "Condition")
        && (resource["clinicalStatus"].is_string() || resource["verificationStatus"].is_string())
    {
        return Some("STU3");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::pre_r4;
    use serde_json::json;

    #[test]
    fn stu3_and_dstu2_marks_are_found_and_r4_passes() {
        let stu3 = json!({"resourceType":"AllergyIntolerance","assertedDate":"2016-01-01"});
        assert_eq!(pre_r4(&stu3), Some("STU3"));
        let taken = json!({"resourceType":"MedicationStatement","taken":"y"});
        assert_eq!(pre_r4(&taken), Some("STU3"));
        let profiled = json!({"resourceType":"Patient","meta":{"profile":[
            "https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-Patient-1"]}});
        assert_eq!(pre_r4(&profiled), Some("STU3"));
        assert_eq!(
            pre_r4(&json!({"resourceType":"MedicationOrder"})),
            Some("DSTU2")
        );
        assert_eq!(
            pre_r4(&json!({"resourceType":"Condition","clinicalStatus":"active"})),
            Some("STU3")
        );
        let r4 = json!({"resourceType":"AllergyIntolerance","recordedDate":"2016-01-01",
            "clinicalStatus":{"coding":[{"code":"active"}]},
            "meta":{"profile":["https://fhir.hl7.org.uk/StructureDefinition/UKCore-AllergyIntolerance"]}});
        assert_eq!(pre_r4(&r4), None);
    }
}
