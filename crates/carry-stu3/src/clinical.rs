//! Clinical entries: AllergyIntolerance, Condition (problems, GP Connect's
//! ProblemHeader among them), Observation (pathology panels too), DiagnosticReport,
//! Specimen and Immunization.

use serde_json::{json, Map, Value};

use crate::codes::{self, Statuses};
use crate::draft::Draft;
use crate::error::{json_type, Result};
use crate::extensions;
use crate::shape::{number, repair_quantity_in};

/// Observation statuses (the same in STU3 and R4).
const OBSERVATION_STATUSES: &[&str] = &[
    "registered",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "cancelled",
    "entered-in-error",
    "unknown",
];

/// DiagnosticReport statuses (the same in STU3 and R4).
const REPORT_STATUSES: &[&str] = &[
    "registered",
    "partial",
    "preliminary",
    "final",
    "amended",
    "corrected",
    "appended",
    "cancelled",
    "entered-in-error",
    "unknown",
];

/// Specimen statuses (the same in STU3 and R4).
const SPECIMEN_STATUSES: &[&str] = &[
    "available",
    "unavailable",
    "unsatisfactory",
    "entered-in-error",
];

/// STU3's Immunization statuses.
const IMMUNIZATION_STATUSES: &[&str] = &["completed", "entered-in-error"];

/// Status code element `name` (an STU3 code) becomes an R4 CodeableConcept of
/// `statuses`; the code's own extensions (`_name`) go on the concept. Returns the code.
fn status_concept(draft: &mut Draft, name: &str, statuses: &Statuses) -> Result<Option<String>> {
    let Some(code) = draft.text(name)? else {
        draft.drop(name, "extensions on an absent code; not carried over");
        return Ok(None);
    };
    let Some(mut concept) = statuses.concept(&code) else {
        return Err(draft.invalid(format!("{name}: a code STU3 does not define here")));
    };
    if let Some(Value::Object(element)) = draft.primitive_extensions(name) {
        for key in ["id", "extension"] {
            if let Some(v) = element.get(key) {
                concept[key] = v.clone();
            }
        }
    }
    draft.put(name, concept);
    Ok(Some(code))
}

/// R4 allows no clinical status on an entry made in error (AllergyIntolerance's
/// ait-2, Condition's con-5): drops it, with a note.
fn no_clinical_status_in_error(
    draft: &mut Draft,
    clinical: Option<&str>,
    verification: Option<&str>,
) {
    if verification == Some("entered-in-error") {
        if let Some(clinical) = clinical {
            draft.elements.remove("clinicalStatus");
            let why = format!(
                "'{clinical}' dropped: R4 allows no clinical status on an entry made in error"
            );
            draft.note("clinicalStatus", why);
        }
    }
}

/// AllergyIntolerance: `assertedDate` is `recordedDate` (without which an STU3 allergy
/// reads as undated), `clinicalStatus` and `verificationStatus` become CodeableConcepts
/// of R4's code systems, and the allergy's end moves to UK Core's extension (see
/// [`extensions::allergy_end`]). `onset[x]`, `reaction`, `asserter`, `recorder` and
/// `lastOccurrence` are the same in R4.
pub(crate) fn allergy(draft: &mut Draft) -> Result<()> {
    draft.rename("assertedDate", "recordedDate");
    let clinical = status_concept(draft, "clinicalStatus", &codes::ALLERGY_CLINICAL)?;
    let verification = status_concept(draft, "verificationStatus", &codes::ALLERGY_VERIFICATION)?;
    no_clinical_status_in_error(draft, clinical.as_deref(), verification.as_deref());
    extensions::allergy_end(draft);
    extensions::allergy_encounter(draft);
    Ok(())
}

/// Condition: `assertedDate` is `recordedDate`, `context` is `encounter`, the statuses
/// become CodeableConcepts, `stage` a list. STU3's verification status `unknown` has
/// no R4 code, and `abatementBoolean: true` no R4 element: both are noted.
pub(crate) fn condition(draft: &mut Draft) -> Result<()> {
    draft.rename("assertedDate", "recordedDate");
    draft.context_to_encounter()?;
    let clinical = status_concept(draft, "clinicalStatus", &codes::CONDITION_CLINICAL)?;
    if draft
        .elements
        .get("verificationStatus")
        .and_then(Value::as_str)
        == Some("unknown")
    {
        draft.drop(
            "verificationStatus",
            "'unknown' has no R4 code (R4's verification status is optional); not carried over",
        );
    }
    let verification = status_concept(draft, "verificationStatus", &codes::CONDITION_VERIFICATION)?;
    no_clinical_status_in_error(draft, clinical.as_deref(), verification.as_deref());
    // `false` (not abated) says no more than R4's absent abatement; `true` is lost.
    if draft.flag("abatementBoolean")? == Some(true) {
        draft.note(
            "abatementBoolean",
            "true (the condition has abated) has no R4 element; not carried over",
        );
    }
    draft.primitive_extensions("abatementBoolean");
    Ok(())
}

/// Observation: `context` is `encounter`, `comment` a `note`, `interpretation` a list
/// (in components too), and `related` links of type `has-member` and `derived-from`
/// are `hasMember` and `derivedFrom` (a pathology panel's results). R4 has no element
/// for the other link types or for `valueAttachment`: they are noted.
pub(crate) fn observation(draft: &mut Draft) -> Result<()> {
    draft.check_code("status", OBSERVATION_STATUSES)?;
    draft.context_to_encounter()?;
    if let Some(comment) = draft.text("comment")? {
        let mut note = json!({"text": comment});
        if let Some(extensions) = draft.primitive_extensions("comment") {
            note["_text"] = extensions;
        }
        draft.append("note", vec![note])?;
    }
    draft.drop(
        "valueAttachment",
        "R4 has no attachment value; not carried over",
    );
    for related in draft.objects("related")? {
        let kind = match related.get("type") {
            None => "has-member-or-unstated",
            Some(Value::String(kind)) => kind.as_str(),
            Some(other) => return Err(draft.mistyped("related.type", "a code (a string)", other)),
        };
        let target = match related.get("target") {
            Some(Value::Object(target)) => target.clone(),
            Some(other) => return Err(draft.mistyped("related.target", "an object", other)),
            None => return Err(draft.invalid("related: a link without a target")),
        };
        match kind {
            "has-member" => draft.append("hasMember", vec![Value::Object(target)])?,
            "derived-from" => draft.append("derivedFrom", vec![Value::Object(target)])?,
            other => {
                let to = target
                    .get("reference")
                    .and_then(Value::as_str)
                    .unwrap_or("a resource");
                let other = if other == "has-member-or-unstated" {
                    "an untyped"
                } else {
                    other
                };
                let why = format!("a '{other}' link to {to} has no R4 element; not carried over");
                draft.note("related", why);
            }
        }
    }
    repair_quantity_in(&mut draft.elements, "valueQuantity");
    if draft.has("component") {
        let mut components = draft.objects("component")?;
        for (i, component) in components.iter_mut().enumerate() {
            listify(component, "interpretation");
            repair_quantity_in(component, "valueQuantity");
            if component.remove("valueAttachment").is_some() {
                draft.note(
                    &format!("component[{i}].valueAttachment"),
                    "R4 has no attachment value; not carried over",
                );
            }
        }
        draft.put(
            "component",
            Value::Array(components.into_iter().map(Value::Object).collect()),
        );
    }
    Ok(())
}

/// A lone value of `name` in `object` becomes a list of one (STU3's 0..1 is R4's 0..*).
fn listify(object: &mut Map<String, Value>, name: &str) {
    if let Some(value) = object.remove(name) {
        let list = if value.is_array() {
            value
        } else {
            Value::Array(vec![value])
        };
        object.insert(name.into(), list);
    }
}

/// DiagnosticReport: `codedDiagnosis` is `conclusionCode`, `context` the `encounter`,
/// `image` the `media`, `category` a list, and each `performer {role, actor}` just the
/// actor's Reference: a role has no place on it and is noted.
pub(crate) fn diagnostic_report(draft: &mut Draft) -> Result<()> {
    draft.check_code("status", REPORT_STATUSES)?;
    draft.context_to_encounter()?;
    draft.rename("codedDiagnosis", "conclusionCode");
    draft.rename("image", "media");
    if draft.has("performer") {
        let mut actors = Vec::new();
        for mut performer in draft.objects("performer")? {
            match performer.remove("actor") {
                Some(Value::Object(actor)) => actors.push(Value::Object(actor)),
                Some(other) => return Err(draft.mistyped("performer.actor", "an object", &other)),
                // Already a Reference (R4's shape).
                None if ["reference", "identifier", "display"]
                    .iter()
                    .any(|k| performer.contains_key(*k)) =>
                {
                    actors.push(Value::Object(performer));
                    continue;
                }
                None => {
                    draft.note(
                        "performer",
                        "a performer with no actor has no place in R4; not carried over",
                    );
                    continue;
                }
            }
            if performer.contains_key("role") {
                draft.note(
                    "performer.role",
                    "R4's performer is a plain reference; the role was not carried over",
                );
            }
        }
        draft.put("performer", Value::Array(actors));
    }
    Ok(())
}

/// Specimen: the same in R4 (its `request`, to a ProcedureRequest, now refers to a
/// ServiceRequest, which the reference rewrite sees to).
pub(crate) fn specimen(draft: &mut Draft) -> Result<()> {
    draft.check_code("status", SPECIMEN_STATUSES)
}

/// Immunization: `notGiven: true` is status `not-done`, `date` is `occurrenceDateTime`,
/// `practitioner {role, actor}` is `performer {function, actor}`, `explanation.reason`
/// is `reasonCode` and `explanation.reasonNotGiven` the `statusReason`,
/// `vaccinationProtocol` is `protocolApplied`, and CareConnect's date recorded is
/// `recorded`; `primarySource` stays. R4 requires a date and a dose number: without
/// them the date is `occurrenceString: "unknown"` and the dose number
/// `doseNumberString: "unknown"`. What R4 lacks (a protocol's description and dose
/// status, further reasons not given) is noted.
pub(crate) fn immunization(draft: &mut Draft) -> Result<()> {
    draft.check_code("status", IMMUNIZATION_STATUSES)?;
    if draft.flag("notGiven")? == Some(true) {
        draft.primitive_extensions("notGiven");
        if draft.elements.get("status").and_then(Value::as_str) == Some("entered-in-error") {
            draft.note(
                "notGiven",
                "the entry was made in error, so its status stays; not carried over",
            );
        } else {
            draft.put("status", Value::String("not-done".into()));
        }
    } else {
        draft.primitive_extensions("notGiven");
    }
    draft.rename("date", "occurrenceDateTime");
    if !draft.has("occurrenceDateTime") && !draft.has("occurrenceString") {
        draft.put("occurrenceString", Value::String("unknown".into()));
    }
    extensions::date_recorded(draft);
    if draft.has("practitioner") {
        let mut performers = Vec::new();
        for mut practitioner in draft.objects("practitioner")? {
            if let Some(role) = practitioner.remove("role") {
                practitioner.insert("function".into(), role);
            }
            performers.push(Value::Object(practitioner));
        }
        draft.append("performer", performers)?;
    }
    if let Some(mut explanation) = draft.object("explanation")? {
        let reasons = list_of_objects(draft, &mut explanation, "explanation.reason", "reason")?;
        draft.append("reasonCode", reasons)?;
        let mut not_given = list_of_objects(
            draft,
            &mut explanation,
            "explanation.reasonNotGiven",
            "reasonNotGiven",
        )?;
        if !not_given.is_empty() {
            let first = not_given.remove(0);
            if draft.has("statusReason") {
                draft.note(
                    "explanation.reasonNotGiven",
                    "the input also has R4's statusReason, which was kept instead",
                );
            } else {
                draft.put("statusReason", first);
            }
            if !not_given.is_empty() {
                let why = format!(
                    "R4 has one reason not given; {} more not carried over",
                    not_given.len()
                );
                draft.note("explanation.reasonNotGiven", why);
            }
        }
    }
    if draft.has("vaccinationProtocol") {
        let mut applied = Vec::new();
        for (i, protocol) in draft
            .objects("vaccinationProtocol")?
            .into_iter()
            .enumerate()
        {
            applied.push(protocol_applied(draft, i, protocol)?);
        }
        draft.append("protocolApplied", applied)?;
    }
    Ok(())
}

/// Removes element `name` of `parent` (at `path` in the resource), a list of objects.
fn list_of_objects(
    draft: &Draft,
    parent: &mut Map<String, Value>,
    path: &str,
    name: &str,
) -> Result<Vec<Value>> {
    match parent.remove(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            if let Some(bad) = items.iter().find(|i| !i.is_object()) {
                return Err(draft.mistyped(path, "a list of objects", bad));
            }
            Ok(items)
        }
        Some(lone @ Value::Object(_)) => Ok(vec![lone]),
        Some(other) => Err(draft.mistyped(path, "a list of objects", &other)),
    }
}

/// `value`, or the number it spells if it is a string that spells one.
fn numeric(value: Value) -> Value {
    match value {
        Value::String(s) => number(&s).unwrap_or(Value::String(s)),
        other => other,
    }
}

/// One STU3 `vaccinationProtocol` as an R4 `protocolApplied`.
fn protocol_applied(
    draft: &mut Draft,
    i: usize,
    mut protocol: Map<String, Value>,
) -> Result<Value> {
    let path = format!("vaccinationProtocol[{i}]");
    let mut applied = Map::new();
    for name in ["id", "extension", "authority", "series", "targetDisease"] {
        if let Some(v) = protocol.remove(name) {
            applied.insert(name.into(), v);
        }
    }
    match protocol.remove("doseSequence").map(numeric) {
        Some(n @ Value::Number(_)) => {
            applied.insert("doseNumberPositiveInt".into(), n);
        }
        None => {
            applied.insert("doseNumberString".into(), Value::String("unknown".into()));
        }
        Some(other) => {
            return Err(draft.mistyped(&format!("{path}.doseSequence"), "a number", &other))
        }
    }
    match protocol.remove("seriesDoses").map(numeric) {
        Some(n @ Value::Number(_)) => {
            applied.insert("seriesDosesPositiveInt".into(), n);
        }
        None => {}
        Some(other) => {
            return Err(draft.mistyped(&format!("{path}.seriesDoses"), "a number", &other))
        }
    }
    if let Some(description) = protocol.remove("description") {
        if !description.is_string() {
            return Err(draft.invalid(format!(
                "{path}.description: expected a string, found {}",
                json_type(&description)
            )));
        }
        draft.note(
            &format!("{path}.description"),
            "R4 has no element for a protocol's description; not carried over",
        );
    }
    if let Some(status) = protocol.remove("doseStatus") {
        let code = status
            .get("coding")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
            .and_then(|c| c.get("code"))
            .and_then(Value::as_str)
            .or_else(|| status.get("text").and_then(Value::as_str))
            .unwrap_or("stated");
        let why = format!("whether the dose counts ('{code}') has no R4 element; not carried over");
        draft.note(&format!("{path}.doseStatus"), why);
    }
    if protocol.remove("doseStatusReason").is_some() {
        draft.note(
            &format!("{path}.doseStatusReason"),
            "R4 has no element for it; not carried over",
        );
    }
    for leftover in protocol.keys() {
        draft.note(
            &format!("{path}.{leftover}"),
            "not an element of R4's protocolApplied; not carried over",
        );
    }
    Ok(Value::Object(applied))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::draft::testing::draft;
    use serde_json::json;

    #[test]
    fn allergy_dates_and_statuses() {
        let mut d = draft(
            "AllergyIntolerance",
            json!({"assertedDate": "2016-01-08T11:57:34+00:00", "clinicalStatus": "active",
                   "verificationStatus": "unconfirmed", "_clinicalStatus": {"extension": [{"url": "x", "valueString": "y"}]}}),
        );
        allergy(&mut d).unwrap();
        let e = &d.elements;
        assert_eq!(e["recordedDate"], "2016-01-08T11:57:34+00:00");
        assert!(!e.contains_key("assertedDate"));
        assert_eq!(
            e["clinicalStatus"]["coding"][0]["system"],
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
        );
        assert_eq!(e["clinicalStatus"]["coding"][0]["code"], "active");
        assert_eq!(e["clinicalStatus"]["extension"][0]["url"], "x");
        assert!(!e.contains_key("_clinicalStatus"));
        assert_eq!(
            e["verificationStatus"]["coding"][0]["system"],
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
        );
        assert!(d.notes.is_empty());
    }

    #[test]
    fn allergy_in_error_loses_its_clinical_status() {
        let mut d = draft(
            "AllergyIntolerance",
            json!({"clinicalStatus": "active", "verificationStatus": "entered-in-error"}),
        );
        allergy(&mut d).unwrap();
        assert!(!d.has("clinicalStatus"));
        assert_eq!(
            d.elements["verificationStatus"]["coding"][0]["code"],
            "entered-in-error"
        );
        assert_eq!(d.notes.len(), 1);
    }

    #[test]
    fn allergy_refuses_bad_statuses() {
        for bad in [
            json!({"clinicalStatus": "recurrence"}),
            json!({"clinicalStatus": {"coding": []}}),
            json!({"verificationStatus": 1}),
            json!({"assertedDate": 2016}),
        ] {
            let mut d = draft("AllergyIntolerance", bad.clone());
            let result = allergy(&mut d).and_then(|()| crate::shape::fit(&mut d));
            assert!(result.is_err(), "{bad}");
        }
    }

    #[test]
    fn condition_mappings() {
        let mut d = draft(
            "Condition",
            json!({"clinicalStatus": "resolved", "verificationStatus": "unknown",
                   "assertedDate": "2019", "context": {"reference": "Encounter/1"},
                   "abatementBoolean": true}),
        );
        condition(&mut d).unwrap();
        let e = &d.elements;
        assert_eq!(e["recordedDate"], "2019");
        assert_eq!(e["encounter"], json!({"reference": "Encounter/1"}));
        assert_eq!(
            e["clinicalStatus"]["coding"][0]["system"],
            "http://terminology.hl7.org/CodeSystem/condition-clinical"
        );
        assert!(!e.contains_key("verificationStatus") && !e.contains_key("abatementBoolean"));
        assert_eq!(d.notes.len(), 2, "{:?}", d.notes);

        let mut confirmed = draft("Condition", json!({"verificationStatus": "confirmed"}));
        condition(&mut confirmed).unwrap();
        assert_eq!(
            confirmed.elements["verificationStatus"]["coding"][0]["system"],
            "http://terminology.hl7.org/CodeSystem/condition-ver-status"
        );
        let mut ongoing = draft("Condition", json!({"abatementBoolean": false}));
        condition(&mut ongoing).unwrap();
        assert!(ongoing.elements.is_empty() && ongoing.notes.is_empty());
        let mut bad = draft("Condition", json!({"abatementBoolean": "yes"}));
        assert!(condition(&mut bad).is_err());
    }

    #[test]
    fn observation_related_comment_interpretation() {
        let mut d = draft(
            "Observation",
            json!({"status": "final", "comment": "haemolysed",
                   "related": [{"type": "has-member", "target": {"reference": "Observation/a"}},
                               {"type": "derived-from", "target": {"reference": "Observation/b"}},
                               {"type": "sequel-to", "target": {"reference": "Observation/c"}}],
                   "component": [{"code": {"text": "x"}, "interpretation": {"text": "H"}, "valueQuantity": {"value": "5"}}],
                   "context": {"reference": "Encounter/1"}}),
        );
        observation(&mut d).unwrap();
        let e = &d.elements;
        assert_eq!(e["hasMember"], json!([{"reference": "Observation/a"}]));
        assert_eq!(e["derivedFrom"], json!([{"reference": "Observation/b"}]));
        assert_eq!(e["note"], json!([{"text": "haemolysed"}]));
        assert_eq!(e["component"][0]["interpretation"], json!([{"text": "H"}]));
        assert_eq!(e["component"][0]["valueQuantity"]["value"], 5);
        assert_eq!(e["encounter"], json!({"reference": "Encounter/1"}));
        assert!(
            !e.contains_key("related") && !e.contains_key("comment") && !e.contains_key("context")
        );
        assert_eq!(d.notes.len(), 1);
        assert!(d.notes[0].contains("sequel-to"));
    }

    #[test]
    fn observation_refuses_bad_input() {
        for bad in [
            json!({"status": "done"}),
            json!({"related": [{"type": "has-member"}]}),
            json!({"related": [{"type": 1, "target": {}}]}),
            json!({"related": "Observation/1"}),
            json!({"comment": ["x"]}),
        ] {
            let mut d = draft("Observation", bad.clone());
            assert!(observation(&mut d).is_err(), "{bad}");
        }
    }

    #[test]
    fn diagnostic_report_mappings() {
        let mut d = draft(
            "DiagnosticReport",
            json!({"status": "final", "codedDiagnosis": [{"text": "normal"}], "context": {"reference": "Encounter/1"},
                   "performer": [{"role": {"text": "lab"}, "actor": {"reference": "Organization/1"}}],
                   "image": [{"link": {"reference": "Media/1"}}]}),
        );
        diagnostic_report(&mut d).unwrap();
        let e = &d.elements;
        assert_eq!(e["conclusionCode"], json!([{"text": "normal"}]));
        assert_eq!(e["encounter"], json!({"reference": "Encounter/1"}));
        assert_eq!(e["performer"], json!([{"reference": "Organization/1"}]));
        assert_eq!(e["media"], json!([{"link": {"reference": "Media/1"}}]));
        assert!(
            !e.contains_key("codedDiagnosis")
                && !e.contains_key("context")
                && !e.contains_key("image")
        );
        assert_eq!(d.notes.len(), 1);
        let mut roleless = draft(
            "DiagnosticReport",
            json!({"performer": [{"role": {"text": "lab"}}, {"reference": "Practitioner/1"}]}),
        );
        diagnostic_report(&mut roleless).unwrap();
        assert_eq!(
            roleless.elements["performer"],
            json!([{"reference": "Practitioner/1"}])
        );
        assert_eq!(roleless.notes.len(), 1);
        let mut bad = draft(
            "DiagnosticReport",
            json!({"performer": [{"actor": "Organization/1"}]}),
        );
        assert!(diagnostic_report(&mut bad).is_err());
    }

    #[test]
    fn specimen_status_is_checked() {
        assert!(specimen(&mut draft("Specimen", json!({"status": "available"}))).is_ok());
        assert!(specimen(&mut draft("Specimen", json!({"status": "lost"}))).is_err());
    }

    #[test]
    fn immunization_not_given_date_practitioner_explanation() {
        let mut d = draft(
            "Immunization",
            json!({"status": "completed", "notGiven": true, "date": "2019-10-01", "primarySource": true,
                   "practitioner": [{"role": {"text": "AP"}, "actor": {"reference": "Practitioner/1"}}],
                   "explanation": {"reason": [{"text": "travel"}], "reasonNotGiven": [{"text": "refused"}, {"text": "unwell"}]}}),
        );
        immunization(&mut d).unwrap();
        let e = &d.elements;
        assert_eq!(e["status"], "not-done");
        assert_eq!(e["occurrenceDateTime"], "2019-10-01");
        assert_eq!(e["primarySource"], true);
        assert_eq!(
            e["performer"],
            json!([{"function": {"text": "AP"}, "actor": {"reference": "Practitioner/1"}}])
        );
        assert_eq!(e["reasonCode"], json!([{"text": "travel"}]));
        assert_eq!(e["statusReason"], json!({"text": "refused"}));
        for gone in ["notGiven", "date", "practitioner", "explanation"] {
            assert!(!e.contains_key(gone), "{gone}");
        }
        assert_eq!(d.notes.len(), 1, "{:?}", d.notes);
    }

    #[test]
    fn immunization_protocol_and_missing_date() {
        let mut d = draft(
            "Immunization",
            json!({"status": "completed", "notGiven": false,
                   "vaccinationProtocol": [{"doseSequence": 2, "seriesDoses": 3, "series": "primary",
                                            "targetDisease": [{"text": "flu"}], "description": "d",
                                            "doseStatus": {"coding": [{"code": "count"}]}}]}),
        );
        immunization(&mut d).unwrap();
        let e = &d.elements;
        assert_eq!(e["status"], "completed");
        assert_eq!(e["occurrenceString"], "unknown");
        assert_eq!(
            e["protocolApplied"],
            json!([{"doseNumberPositiveInt": 2, "seriesDosesPositiveInt": 3, "series": "primary",
                    "targetDisease": [{"text": "flu"}]}])
        );
        assert_eq!(d.notes.len(), 2, "{:?}", d.notes);

        let mut no_dose = draft(
            "Immunization",
            json!({"vaccinationProtocol": [{"series": "x"}]}),
        );
        immunization(&mut no_dose).unwrap();
        assert_eq!(
            no_dose.elements["protocolApplied"][0]["doseNumberString"],
            "unknown"
        );
    }

    #[test]
    fn immunization_refuses_bad_input() {
        for bad in [
            json!({"notGiven": "no"}),
            json!({"status": "not-done"}),
            json!({"explanation": {"reason": "travel"}}),
            json!({"vaccinationProtocol": [{"doseSequence": "two"}]}),
            json!({"practitioner": 5}),
        ] {
            let mut d = draft("Immunization", bad.clone());
            assert!(immunization(&mut d).is_err(), "{bad}");
        }
    }

    #[test]
    fn immunization_in_error_keeps_its_status() {
        let mut d = draft(
            "Immunization",
            json!({"status": "entered-in-error", "notGiven": true, "date": "2019"}),
        );
        immunization(&mut d).unwrap();
        assert_eq!(d.elements["status"], "entered-in-error");
        assert_eq!(d.notes.len(), 1);
    }
}
