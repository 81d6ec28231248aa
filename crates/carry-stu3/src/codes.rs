//! Codes: the STU3 status codes that became CodeableConcepts in R4, and the code
//! systems HL7 moved to `terminology.hl7.org` for R4 (the v2 tables, the v3 code
//! systems and the FHIR-defined ones the resources here use), so an R4 reader matching
//! on a system finds them.

use serde_json::{json, Map, Value};

/// A code system of status codes that R4 writes as CodeableConcepts.
#[derive(Debug)]
pub(crate) struct Statuses {
    /// The R4 code system.
    pub(crate) system: &'static str,
    /// Its codes that STU3 also has, with their displays.
    pub(crate) codes: &'static [(&'static str, &'static str)],
}

/// AllergyIntolerance.clinicalStatus.
pub(crate) const ALLERGY_CLINICAL: Statuses = Statuses {
    system: "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
    codes: &[
        ("active", "Active"),
        ("inactive", "Inactive"),
        ("resolved", "Resolved"),
    ],
};

/// AllergyIntolerance.verificationStatus.
pub(crate) const ALLERGY_VERIFICATION: Statuses = Statuses {
    system: "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
    codes: &[
        ("unconfirmed", "Unconfirmed"),
        ("confirmed", "Confirmed"),
        ("refuted", "Refuted"),
        ("entered-in-error", "Entered in Error"),
    ],
};

/// Condition.clinicalStatus.
pub(crate) const CONDITION_CLINICAL: Statuses = Statuses {
    system: "http://terminology.hl7.org/CodeSystem/condition-clinical",
    codes: &[
        ("active", "Active"),
        ("recurrence", "Recurrence"),
        ("inactive", "Inactive"),
        ("remission", "Remission"),
        ("resolved", "Resolved"),
    ],
};

/// Condition.verificationStatus (STU3's `unknown` has no R4 code; the caller notes it).
pub(crate) const CONDITION_VERIFICATION: Statuses = Statuses {
    system: "http://terminology.hl7.org/CodeSystem/condition-ver-status",
    codes: &[
        ("provisional", "Provisional"),
        ("differential", "Differential"),
        ("confirmed", "Confirmed"),
        ("refuted", "Refuted"),
        ("entered-in-error", "Entered in Error"),
    ],
};

impl Statuses {
    /// The R4 CodeableConcept for STU3 `code`, if the code is one of these.
    pub(crate) fn concept(&self, code: &str) -> Option<Value> {
        let (code, display) = self.codes.iter().find(|(c, _)| *c == code)?;
        Some(json!({"coding": [{"system": self.system, "code": code, "display": display}]}))
    }
}

/// Code systems whose address changed from STU3 to R4, besides the v2 and v3 ones
/// (which follow a pattern, see [`moved`]). Each has the same codes in both.
const MOVED: &[(&str, &str)] = &[
    (
        "http://hl7.org/fhir/observation-category",
        "http://terminology.hl7.org/CodeSystem/observation-category",
    ),
    (
        "http://hl7.org/fhir/condition-category",
        "http://terminology.hl7.org/CodeSystem/condition-category",
    ),
    (
        "http://hl7.org/fhir/condition-clinical",
        "http://terminology.hl7.org/CodeSystem/condition-clinical",
    ),
    (
        "http://hl7.org/fhir/condition-ver-status",
        "http://terminology.hl7.org/CodeSystem/condition-ver-status",
    ),
    (
        "http://hl7.org/fhir/allergy-clinical-status",
        "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
    ),
    (
        "http://hl7.org/fhir/allergy-verification-status",
        "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
    ),
    (
        "http://hl7.org/fhir/list-order",
        "http://terminology.hl7.org/CodeSystem/list-order",
    ),
    (
        "http://hl7.org/fhir/list-empty-reason",
        "http://terminology.hl7.org/CodeSystem/list-empty-reason",
    ),
    (
        "http://hl7.org/fhir/diagnosis-role",
        "http://terminology.hl7.org/CodeSystem/diagnosis-role",
    ),
    (
        "http://hl7.org/fhir/medication-statement-category",
        "http://terminology.hl7.org/CodeSystem/medication-statement-category",
    ),
    (
        "http://hl7.org/fhir/medication-request-category",
        "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
    ),
    (
        "http://hl7.org/fhir/referencerange-meaning",
        "http://terminology.hl7.org/CodeSystem/referencerange-meaning",
    ),
    (
        "http://hl7.org/fhir/immunization-origin",
        "http://terminology.hl7.org/CodeSystem/immunization-origin",
    ),
];

/// The R4 address of STU3 code system `system`, if R4 moved it: `http://hl7.org/fhir/v2/0203`
/// becomes `http://terminology.hl7.org/CodeSystem/v2-0203`, `http://hl7.org/fhir/v3/ActCode`
/// becomes `http://terminology.hl7.org/CodeSystem/v3-ActCode`, and those in [`MOVED`].
pub(crate) fn moved(system: &str) -> Option<String> {
    for family in ["v2", "v3"] {
        let prefix = format!("http://hl7.org/fhir/{family}/");
        if let Some(name) = system.strip_prefix(&prefix) {
            // A v2 or v3 code system is one path segment (a v2 table may carry its
            // version after it, as `v2/0203/2.5`, which R4 has no address for).
            let well_formed = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            return well_formed
                .then(|| format!("http://terminology.hl7.org/CodeSystem/{family}-{name}"));
        }
    }
    MOVED
        .iter()
        .find(|(from, _)| *from == system)
        .map(|(_, to)| to.to_string())
}

/// Moves the system of `object` if it is a Coding (or anything with a `system` and a
/// `code`: a Quantity's UCUM system is not in the table and stays). Identifiers have a
/// `system` but no `code`, so they are left alone.
pub(crate) fn move_system(object: &mut Map<String, Value>) {
    if !object.contains_key("code") {
        return;
    }
    let Some(Value::String(system)) = object.get("system") else {
        return;
    };
    if let Some(to) = moved(system) {
        object.insert("system".into(), Value::String(to));
    }
}

#[cfg(test)]
mod tests {
    use super::{move_system, moved, ALLERGY_CLINICAL, CONDITION_VERIFICATION};
    use serde_json::{json, Value};

    #[test]
    fn statuses_become_concepts_with_r4_systems() {
        assert_eq!(
            ALLERGY_CLINICAL.concept("resolved").unwrap(),
            json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                                "code": "resolved", "display": "Resolved"}]})
        );
        assert_eq!(CONDITION_VERIFICATION.concept("unknown"), None);
        assert_eq!(ALLERGY_CLINICAL.concept("recurrence"), None);
    }

    #[test]
    fn v2_v3_and_fhir_systems_move() {
        assert_eq!(
            moved("http://hl7.org/fhir/v3/ActCode").as_deref(),
            Some("http://terminology.hl7.org/CodeSystem/v3-ActCode")
        );
        assert_eq!(
            moved("http://hl7.org/fhir/v2/0074").as_deref(),
            Some("http://terminology.hl7.org/CodeSystem/v2-0074")
        );
        assert_eq!(
            moved("http://hl7.org/fhir/list-order").as_deref(),
            Some("http://terminology.hl7.org/CodeSystem/list-order")
        );
        assert_eq!(moved("http://hl7.org/fhir/v2/0203/2.5"), None);
        assert_eq!(moved("http://snomed.info/sct"), None);
        assert_eq!(
            moved("https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-PrescriptionType-1"),
            None
        );
    }

    #[test]
    fn only_codings_move() {
        let Value::Object(mut coding) =
            json!({"system": "http://hl7.org/fhir/v3/ActCode", "code": "AMB"})
        else {
            panic!()
        };
        move_system(&mut coding);
        assert_eq!(
            coding["system"],
            "http://terminology.hl7.org/CodeSystem/v3-ActCode"
        );
        let Value::Object(mut identifier) =
            json!({"system": "http://hl7.org/fhir/v2/0203", "value": "1"})
        else {
            panic!()
        };
        move_system(&mut identifier);
        assert_eq!(identifier["system"], "http://hl7.org/fhir/v2/0203");
    }
}
