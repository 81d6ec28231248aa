//! The people, places and groupings around a record: Patient, Practitioner,
//! PractitionerRole, Organization, Location, Encounter and List. Apart from Patient's
//! `animal` and a few Encounter elements these are the same in STU3 and R4; the
//! cardinality changes (Location's `type`, Encounter's `appointment` now lists) are
//! the shape table's to make.

use serde_json::{json, Value};

use crate::draft::Draft;
use crate::error::Result;

/// Encounter statuses (the same in STU3 and R4).
const ENCOUNTER_STATUSES: &[&str] = &[
    "planned",
    "arrived",
    "triaged",
    "in-progress",
    "onleave",
    "finished",
    "cancelled",
    "entered-in-error",
    "unknown",
];

/// Patient: STU3's `animal` becomes HL7's `patient-animal` extension, as the HL7 map
/// has it; everything else, CareConnect's extensions included, carries over as it is.
pub(crate) fn patient(draft: &mut Draft) -> Result<()> {
    let Some(animal) = draft.object("animal")? else {
        return Ok(());
    };
    let mut parts = Vec::new();
    for part in ["species", "breed", "genderStatus"] {
        if let Some(concept) = animal.get(part) {
            parts.push(json!({"url": part, "valueCodeableConcept": concept}));
        }
    }
    let extension = json!({
        "url": "http://hl7.org/fhir/StructureDefinition/patient-animal",
        "extension": parts,
    });
    let mut extensions: Vec<Value> = draft
        .objects("extension")?
        .into_iter()
        .map(Value::Object)
        .collect();
    extensions.push(extension);
    draft.put("extension", Value::Array(extensions));
    Ok(())
}

/// Encounter: `incomingReferral` is `basedOn` (its references now to ServiceRequests),
/// `reason` is `reasonCode`, and each diagnosis's `role` is its `use`. R4 requires a
/// `class`; an encounter without one gets the v3 null flavour `UNK` (unknown), the
/// usual way to say it was not recorded.
pub(crate) fn encounter(draft: &mut Draft) -> Result<()> {
    draft.check_code("status", ENCOUNTER_STATUSES)?;
    draft.rename("incomingReferral", "basedOn");
    draft.rename("reason", "reasonCode");
    if draft.has("diagnosis") {
        let mut diagnoses = draft.objects("diagnosis")?;
        for diagnosis in &mut diagnoses {
            if let Some(role) = diagnosis.remove("role") {
                diagnosis.insert("use".into(), role);
            }
        }
        draft.put(
            "diagnosis",
            Value::Array(diagnoses.into_iter().map(Value::Object).collect()),
        );
    }
    if !draft.has("class") {
        draft.put(
            "class",
            json!({
                "system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor",
                "code": "UNK",
                "display": "unknown",
            }),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{encounter, patient};
    use crate::draft::testing::draft;
    use serde_json::json;

    #[test]
    fn patient_animal_becomes_an_extension() {
        let mut d = draft(
            "Patient",
            json!({"animal": {"species": {"text": "Dog"}}, "extension": [{"url": "x", "valueString": "y"}]}),
        );
        patient(&mut d).unwrap();
        assert!(!d.has("animal"));
        assert_eq!(
            d.elements["extension"][1],
            json!({"url": "http://hl7.org/fhir/StructureDefinition/patient-animal",
                   "extension": [{"url": "species", "valueCodeableConcept": {"text": "Dog"}}]})
        );
        let mut bad = draft("Patient", json!({"animal": "dog"}));
        assert!(patient(&mut bad).is_err());
    }

    #[test]
    fn encounter_elements_are_renamed() {
        let mut d = draft(
            "Encounter",
            json!({"status": "finished", "class": {"code": "AMB"},
                   "incomingReferral": [{"reference": "ReferralRequest/1"}],
                   "reason": [{"text": "Cough"}],
                   "diagnosis": [{"condition": {"reference": "Condition/1"}, "role": {"text": "AD"}}]}),
        );
        encounter(&mut d).unwrap();
        let e = &d.elements;
        assert_eq!(e["basedOn"], json!([{"reference": "ReferralRequest/1"}]));
        assert_eq!(e["reasonCode"], json!([{"text": "Cough"}]));
        assert_eq!(e["diagnosis"][0]["use"], json!({"text": "AD"}));
        assert!(!e.contains_key("incomingReferral") && !e.contains_key("reason"));
        assert_eq!(e["class"], json!({"code": "AMB"}));
    }

    #[test]
    fn encounter_without_class_gets_unknown_and_bad_status_fails() {
        let mut d = draft("Encounter", json!({"status": "finished"}));
        encounter(&mut d).unwrap();
        assert_eq!(d.elements["class"]["code"], "UNK");
        let mut bad = draft("Encounter", json!({"status": "done"}));
        assert!(encounter(&mut bad).is_err());
        let mut worse = draft("Encounter", json!({"status": "finished", "diagnosis": 3}));
        assert!(encounter(&mut worse).is_err());
    }
}
