//! CareConnect and GP Connect extensions. Most carry meaning R4 has no element for
//! (registration details, NHS number verification, prescribing agency, repeat
//! information, last issue date, the warnings on a List or an Encounter): they are
//! carried over as they are, since an extension's address is valid in any release.
//! Where R4 has a native element for what an extension says, it goes there:
//!
//! | extension | R4 |
//! |---|---|
//! | CareConnect `DateRecorded` (Immunization) | `Immunization.recorded` |
//! | HL7 `encounter-associatedEncounter` (AllergyIntolerance, in CareConnect) | `AllergyIntolerance.encounter` |
//! | GP Connect `PrescriptionType` (MedicationRequest) | `MedicationRequest.courseOfTherapyType` |
//! | GP Connect `MedicationStatusReason` | its `statusReason` also fills `statusReason`; the extension stays, for its `statusChangeDate` |
//! | CareConnect / GP Connect `AllergyIntoleranceEnd` | UK Core's R4 `Extension-UKCore-AllergyIntoleranceEnd` (see [`allergy_end`]) |

use serde_json::{Map, Value};

use crate::draft::Draft;
use crate::error::Result;

/// GP Connect's allergy end (`endDate`, `reasonEnded`).
pub(crate) const GPC_ALLERGY_END: &str =
    "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-AllergyIntoleranceEnd-1";
/// CareConnect's allergy end, the same shape as GP Connect's.
pub(crate) const CARECONNECT_ALLERGY_END: &str =
    "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-AllergyIntoleranceEnd-1";
/// UK Core's R4 allergy end: the same sub-extensions (`endDate` dateTime,
/// `reasonEnded` string), on the AllergyIntolerance.
pub(crate) const UKCORE_ALLERGY_END: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-AllergyIntoleranceEnd";
/// CareConnect's date an entry was recorded.
pub(crate) const DATE_RECORDED: &str =
    "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-DateRecorded-1";
/// HL7's associated encounter, which CareConnect's AllergyIntolerance used.
pub(crate) const ASSOCIATED_ENCOUNTER: &str =
    "http://hl7.org/fhir/StructureDefinition/encounter-associatedEncounter";
/// GP Connect's prescription type (acute, repeat, …).
pub(crate) const PRESCRIPTION_TYPE: &str =
    "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-PrescriptionType-1";
/// GP Connect's reason for a medication's status, with the date it changed.
pub(crate) const MEDICATION_STATUS_REASON: &str =
    "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-MedicationStatusReason-1";

/// Checks the resource's `extension` and `modifierExtension`: lists of objects, each
/// with a `url`. A lone extension object is taken as a list of one.
pub(crate) fn check(draft: &mut Draft) -> Result<()> {
    for name in ["extension", "modifierExtension"] {
        if !draft.has(name) {
            continue;
        }
        let extensions = draft.objects(name)?;
        if extensions
            .iter()
            .any(|e| !e.get("url").is_some_and(Value::is_string))
        {
            return Err(draft.invalid(format!("{name}: an extension without a url")));
        }
        draft.put(
            name,
            Value::Array(extensions.into_iter().map(Value::Object).collect()),
        );
    }
    Ok(())
}

/// Removes and returns the resource's extensions with address `url`.
fn take(draft: &mut Draft, url: &str) -> Vec<Map<String, Value>> {
    let Some(Value::Array(all)) = draft.elements.get_mut("extension") else {
        return Vec::new();
    };
    let mut taken = Vec::new();
    all.retain(|e| {
        if e.get("url").and_then(Value::as_str) == Some(url) {
            if let Value::Object(m) = e {
                taken.push(m.clone());
            }
            false
        } else {
            true
        }
    });
    if all.is_empty() {
        draft.elements.remove("extension");
    }
    taken
}

/// The extensions at address `url`, left in place.
fn find<'a>(draft: &'a Draft, url: &'a str) -> impl Iterator<Item = &'a Map<String, Value>> + 'a {
    draft
        .elements
        .get("extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .filter(move |e| e.get("url").and_then(Value::as_str) == Some(url))
}

/// The value of sub-extension `name` of `extension` (its `value[x]`, whichever type).
fn sub_value<'a>(extension: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    extension
        .get("extension")?
        .as_array()?
        .iter()
        .filter_map(Value::as_object)
        .find(|e| e.get("url").and_then(Value::as_str) == Some(name))?
        .iter()
        .find(|(k, _)| k.starts_with("value"))
        .map(|(_, v)| v)
}

/// The value of extension `extension` (its `value[x]`) when it is of type `kind`
/// (`valueDateTime`, `valueReference`, …).
fn value_of<'a>(extension: &'a Map<String, Value>, kind: &str) -> Option<&'a Value> {
    extension.get(kind)
}

/// The allergy's end (the date it was no longer valid, and why). R4 has no element
/// for it: `lastOccurrence` is the date of the last known reaction, not the date the
/// allergy ended, so mapping `endDate` there would misstate the record. UK Core, the
/// R4 successor of CareConnect, defines an extension of the same shape
/// (`endDate` dateTime, `reasonEnded` string) for exactly this; the GP Connect or
/// CareConnect extension is carried over under UK Core's address, its sub-extensions
/// unchanged, on the AllergyIntolerance (UK Core 2.1's context of use; NHS England's
/// GP Connect to UK Core transform puts it there too). Nothing is lost, so there is
/// no note.
pub(crate) fn allergy_end(draft: &mut Draft) {
    let Some(Value::Array(all)) = draft.elements.get_mut("extension") else {
        return;
    };
    for extension in all.iter_mut().filter_map(Value::as_object_mut) {
        let url = extension.get("url").and_then(Value::as_str);
        if url == Some(GPC_ALLERGY_END) || url == Some(CARECONNECT_ALLERGY_END) {
            extension.insert("url".into(), Value::String(UKCORE_ALLERGY_END.into()));
        }
    }
}

/// CareConnect's associated encounter on an AllergyIntolerance becomes R4's native
/// `AllergyIntolerance.encounter`.
pub(crate) fn allergy_encounter(draft: &mut Draft) {
    if draft.has("encounter") {
        return;
    }
    let mut found = take(draft, ASSOCIATED_ENCOUNTER);
    let reference = found
        .first()
        .and_then(|e| value_of(e, "valueReference"))
        .cloned();
    if let Some(reference @ Value::Object(_)) = reference {
        found.remove(0);
        draft.put("encounter", reference);
    }
    // Anything not moved (a second one, or one without a reference) stays.
    if !found.is_empty() {
        put_back(draft, found);
    }
}

/// CareConnect's date recorded on an Immunization becomes R4's `Immunization.recorded`.
pub(crate) fn date_recorded(draft: &mut Draft) {
    if draft.has("recorded") {
        return;
    }
    let mut found = take(draft, DATE_RECORDED);
    let date = found
        .first()
        .and_then(|e| value_of(e, "valueDateTime").or_else(|| value_of(e, "valueDate")))
        .cloned();
    if let Some(date @ Value::String(_)) = date {
        found.remove(0);
        draft.put("recorded", date);
    }
    if !found.is_empty() {
        put_back(draft, found);
    }
}

/// GP Connect's prescription type becomes R4's `MedicationRequest.courseOfTherapyType`
/// (an element with an example binding, so GP Connect's codes are at home there).
pub(crate) fn prescription_type(draft: &mut Draft) {
    if draft.has("courseOfTherapyType") {
        return;
    }
    let mut found = take(draft, PRESCRIPTION_TYPE);
    let concept = found
        .first()
        .and_then(|e| value_of(e, "valueCodeableConcept"))
        .cloned();
    if let Some(concept @ Value::Object(_)) = concept {
        found.remove(0);
        draft.put("courseOfTherapyType", concept);
    }
    if !found.is_empty() {
        put_back(draft, found);
    }
}

/// GP Connect's medication status reason: its `statusReason` also fills R4's
/// `statusReason` (a single concept on MedicationRequest, a list on
/// MedicationStatement). The extension stays, since R4 has no element for its
/// `statusChangeDate`.
pub(crate) fn medication_status_reason(draft: &mut Draft, list: bool) {
    if draft.has("statusReason") {
        return;
    }
    let reason = find(draft, MEDICATION_STATUS_REASON)
        .find_map(|e| sub_value(e, "statusReason"))
        .filter(|v| v.is_object())
        .cloned();
    if let Some(reason) = reason {
        draft.put(
            "statusReason",
            if list {
                Value::Array(vec![reason])
            } else {
                reason
            },
        );
    }
}

/// Returns extensions to the resource's list.
fn put_back(draft: &mut Draft, extensions: Vec<Map<String, Value>>) {
    let mut all = match draft.elements.remove("extension") {
        Some(Value::Array(all)) => all,
        _ => Vec::new(),
    };
    all.extend(extensions.into_iter().map(Value::Object));
    draft.put("extension", Value::Array(all));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draft::testing::draft;
    use serde_json::json;

    #[test]
    fn extensions_need_urls_and_a_lone_one_is_a_list() {
        let mut d = draft(
            "Patient",
            json!({"extension": {"url": "u", "valueString": "x"}}),
        );
        check(&mut d).unwrap();
        assert_eq!(
            d.elements["extension"],
            json!([{"url": "u", "valueString": "x"}])
        );
        let mut bad = draft("Patient", json!({"extension": [{"valueString": "x"}]}));
        assert!(check(&mut bad).is_err());
        let mut worse = draft("Patient", json!({"modifierExtension": "x"}));
        assert!(check(&mut worse).is_err());
    }

    #[test]
    fn allergy_end_moves_to_uk_core_with_its_sub_extensions() {
        let end = json!([{"url": "endDate", "valueDateTime": "2018-03-01"},
                         {"url": "reasonEnded", "valueString": "No recurrence"}]);
        let mut d = draft(
            "AllergyIntolerance",
            json!({"extension": [{"url": GPC_ALLERGY_END, "extension": end.clone()},
                                 {"url": "https://example.org/other", "valueString": "kept"}]}),
        );
        allergy_end(&mut d);
        assert_eq!(
            d.elements["extension"][0],
            json!({"url": UKCORE_ALLERGY_END, "extension": end})
        );
        assert_eq!(d.elements["extension"][1]["valueString"], "kept");
    }

    #[test]
    fn date_recorded_becomes_recorded() {
        let mut d = draft(
            "Immunization",
            json!({"extension": [{"url": DATE_RECORDED, "valueDateTime": "2020-01-02"}]}),
        );
        date_recorded(&mut d);
        assert_eq!(d.elements["recorded"], "2020-01-02");
        assert!(!d.has("extension"));
    }

    #[test]
    fn associated_encounter_becomes_encounter() {
        let mut d = draft(
            "AllergyIntolerance",
            json!({"extension": [{"url": ASSOCIATED_ENCOUNTER, "valueReference": {"reference": "Encounter/1"}},
                                 {"url": "x", "valueString": "y"}]}),
        );
        allergy_encounter(&mut d);
        assert_eq!(d.elements["encounter"], json!({"reference": "Encounter/1"}));
        assert_eq!(
            d.elements["extension"],
            json!([{"url": "x", "valueString": "y"}])
        );
    }

    #[test]
    fn prescription_type_becomes_course_of_therapy() {
        let concept = json!({"coding": [{"system": "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-PrescriptionType-1", "code": "repeat"}]});
        let mut d = draft(
            "MedicationRequest",
            json!({"extension": [{"url": PRESCRIPTION_TYPE, "valueCodeableConcept": concept.clone()}]}),
        );
        prescription_type(&mut d);
        assert_eq!(d.elements["courseOfTherapyType"], concept);
        assert!(!d.has("extension"));
    }

    #[test]
    fn status_reason_is_copied_and_the_extension_kept() {
        let reason = json!({"text": "Allergy"});
        let ext = json!({"url": MEDICATION_STATUS_REASON, "extension": [
            {"url": "statusChangeDate", "valueDateTime": "2019-01-01"},
            {"url": "statusReason", "valueCodeableConcept": reason.clone()}]});
        let mut request = draft("MedicationRequest", json!({"extension": [ext.clone()]}));
        medication_status_reason(&mut request, false);
        assert_eq!(request.elements["statusReason"], reason);
        assert_eq!(request.elements["extension"], json!([ext.clone()]));
        let mut statement = draft("MedicationStatement", json!({"extension": [ext]}));
        medication_status_reason(&mut statement, true);
        assert_eq!(statement.elements["statusReason"], json!([reason]));
    }
}
