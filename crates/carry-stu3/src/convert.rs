//! One STU3 resource to R4: the steps every resource goes through, in order. Its
//! `meta` loses its STU3 profiles and gains the converted tag; its extensions are
//! checked; its contained resources are converted the same way; the rules of its
//! family rename, move and drop its elements; the shape table holds the result to
//! R4's; and every Coding's system and every Reference to a renamed type is moved to
//! its R4 address.

use serde_json::{json, Map, Value};

use crate::draft::Draft;
use crate::error::{json_type, Result, Stu3Error};
use crate::{admin, clinical, codes, detect, extensions, medication, references, request, shape};
use crate::{Converted, CONVERTED_CODE, CONVERTED_SYSTEM};

/// The rules of one resource type's conversion.
type Rule = fn(&mut Draft) -> Result<()>;

/// The STU3 resource types converted here, with their R4 types and their rules.
const TYPES: &[(&str, &str, Rule)] = &[
    (
        "AllergyIntolerance",
        "AllergyIntolerance",
        clinical::allergy,
    ),
    ("Condition", "Condition", clinical::condition),
    (
        "DiagnosticReport",
        "DiagnosticReport",
        clinical::diagnostic_report,
    ),
    ("Encounter", "Encounter", admin::encounter),
    ("Immunization", "Immunization", clinical::immunization),
    ("List", "List", same),
    ("Location", "Location", same),
    ("Medication", "Medication", medication::medication),
    (
        "MedicationRequest",
        "MedicationRequest",
        medication::medication_request,
    ),
    (
        "MedicationStatement",
        "MedicationStatement",
        medication::medication_statement,
    ),
    ("Observation", "Observation", clinical::observation),
    ("Organization", "Organization", same),
    ("Patient", "Patient", admin::patient),
    ("Practitioner", "Practitioner", same),
    ("PractitionerRole", "PractitionerRole", same),
    (
        "ProcedureRequest",
        "ServiceRequest",
        request::procedure_request,
    ),
    (
        "ReferralRequest",
        "ServiceRequest",
        request::referral_request,
    ),
    ("Specimen", "Specimen", clinical::specimen),
];

/// The rule of a type that STU3 and R4 define alike (the shape table still holds it
/// to R4's).
fn same(_: &mut Draft) -> Result<()> {
    Ok(())
}

/// Where a resource sits: on its own, or contained in another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// A resource on its own, which carries the converted tag.
    Own,
    /// A contained resource (its container carries the tag).
    Contained,
}

/// Converts one STU3 resource to R4 (see [`crate::to_r4`]).
pub(crate) fn to_r4(resource: &Value) -> Result<Converted> {
    let (elements, notes) = convert(resource, Place::Own)?;
    let kind = elements
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    tracing::debug!(
        resource_type = kind,
        notes = notes.len(),
        "converted an STU3 resource to R4"
    );
    Ok(Converted {
        resource: Value::Object(elements),
        notes,
    })
}

/// The R4 elements of STU3 `resource`, and the notes on what did not carry over.
fn convert(resource: &Value, place: Place) -> Result<(Map<String, Value>, Vec<String>)> {
    let Value::Object(elements) = resource else {
        return Err(Stu3Error::Invalid {
            resource_type: "resource".into(),
            reason: format!("expected a JSON object, found {}", json_type(resource)),
        });
    };
    let kind = match elements.get("resourceType") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(other) => {
            return Err(Stu3Error::Invalid {
                resource_type: "resource".into(),
                reason: format!(
                    "resourceType: expected a string, found {}",
                    json_type(other)
                ),
            })
        }
        None => {
            return Err(Stu3Error::Invalid {
                resource_type: "resource".into(),
                reason: "it has no resourceType".into(),
            })
        }
    };
    let Some((_, target, rule)) = TYPES.iter().find(|(t, _, _)| *t == kind) else {
        return Err(Stu3Error::Unsupported {
            resource_type: kind.to_string(),
        });
    };
    let mut draft = Draft::new(kind, target, elements.clone());
    draft.put("resourceType", Value::String(target.to_string()));
    meta(&mut draft, place)?;
    extensions::check(&mut draft)?;
    contained(&mut draft)?;
    rule(&mut draft)?;
    shape::fit(&mut draft)?;
    let (mut elements, notes) = draft.finish();
    for value in elements.values_mut() {
        tidy(value);
    }
    Ok((elements, notes))
}

/// `meta` keeps its version, dates, security labels and tags; its STU3 profiles are
/// dropped (they describe the STU3 form, and do not apply to R4: the converted tag
/// says where the resource came from instead), and a resource on its own gains that
/// tag.
fn meta(draft: &mut Draft, place: Place) -> Result<()> {
    let mut meta = draft.object("meta")?.unwrap_or_default();
    if let Some(profiles) = meta.remove("profile") {
        let profiles = match profiles {
            Value::Array(profiles) => profiles,
            Value::Null => Vec::new(),
            lone @ Value::String(_) => vec![lone],
            other => return Err(draft.mistyped("meta.profile", "a list of strings", &other)),
        };
        let mut kept = Vec::new();
        for profile in profiles {
            match profile {
                Value::String(url) if detect::is_stu3_profile(&url) => {}
                Value::String(url) => kept.push(Value::String(url)),
                other => return Err(draft.mistyped("meta.profile", "a list of strings", &other)),
            }
        }
        if !kept.is_empty() {
            meta.insert("profile".into(), Value::Array(kept));
        }
    }
    let mut tags = match meta.remove("tag") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(tags)) => tags,
        Some(lone @ Value::Object(_)) => vec![lone],
        Some(other) => return Err(draft.mistyped("meta.tag", "a list of objects", &other)),
    };
    if let Some(bad) = tags.iter().find(|t| !t.is_object()) {
        return Err(draft.mistyped("meta.tag", "a list of objects", bad));
    }
    let tagged = tags
        .iter()
        .any(|t| t["system"] == CONVERTED_SYSTEM && t["code"] == CONVERTED_CODE);
    if place == Place::Own && !tagged {
        tags.push(json!({
            "system": CONVERTED_SYSTEM,
            "code": CONVERTED_CODE,
            "display": "Converted from FHIR STU3",
        }));
    }
    if !tags.is_empty() {
        meta.insert("tag".into(), Value::Array(tags));
    }
    if !meta.is_empty() {
        draft.put("meta", Value::Object(meta));
    }
    Ok(())
}

/// Converts the contained resources. A contained resource of a type with no
/// conversion, or one that is invalid, makes its container fail: dropping it would
/// leave the `#id` references to it dangling.
fn contained(draft: &mut Draft) -> Result<()> {
    if !draft.has("contained") {
        return Ok(());
    }
    let mut converted = Vec::new();
    for item in draft.objects("contained")? {
        let id = item
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("(no id)")
            .to_string();
        if item.contains_key("contained") {
            return Err(draft.invalid(format!(
                "contained #{id}: a contained resource cannot contain others"
            )));
        }
        match convert(&Value::Object(item), Place::Contained) {
            Ok((elements, notes)) => {
                converted.push(Value::Object(elements));
                draft
                    .notes
                    .extend(notes.into_iter().map(|n| format!("contained #{id}: {n}")));
            }
            Err(Stu3Error::Unsupported { resource_type }) => {
                return Err(draft.invalid(format!(
                    "contained #{id} is a {resource_type}, which has no conversion to R4 here"
                )))
            }
            Err(Stu3Error::Invalid {
                resource_type,
                reason,
            }) => return Err(draft.invalid(format!("contained {resource_type} #{id}: {reason}"))),
        }
    }
    draft.put("contained", Value::Array(converted));
    Ok(())
}

/// Moves every Coding's system and retargets every Reference below `value`, walking
/// it with a stack of its own rather than by recursion.
fn tidy(value: &mut Value) {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(object) => {
                codes::move_system(object);
                references::retarget(object);
                stack.extend(object.values_mut());
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::to_r4;
    use crate::{Stu3Error, CONVERTED_CODE, CONVERTED_SYSTEM};
    use serde_json::json;

    #[test]
    fn not_a_resource_is_a_typed_error() {
        for (input, reason) in [
            (json!([1, 2]), "expected a JSON object, found an array"),
            (json!("Patient"), "expected a JSON object, found a string"),
            (json!(null), "expected a JSON object, found null"),
            (json!({"id": "1"}), "it has no resourceType"),
            (
                json!({"resourceType": 7}),
                "resourceType: expected a string, found a number",
            ),
        ] {
            assert_eq!(
                to_r4(&input).unwrap_err(),
                Stu3Error::Invalid {
                    resource_type: "resource".into(),
                    reason: reason.into()
                }
            );
        }
    }

    #[test]
    fn other_types_are_unsupported() {
        for kind in ["OperationOutcome", "Bundle", "Procedure", "ServiceRequest"] {
            assert_eq!(
                to_r4(&json!({"resourceType": kind})).unwrap_err(),
                Stu3Error::Unsupported {
                    resource_type: kind.into()
                }
            );
        }
    }

    #[test]
    fn meta_loses_stu3_profiles_keeps_the_rest_and_gains_the_tag() {
        let input = json!({"resourceType": "Organization", "id": "o",
            "meta": {"versionId": "3", "lastUpdated": "2016-07-25T12:00:00+00:00",
                     "security": [{"system": "s", "code": "c"}], "tag": [{"system": "t", "code": "u"}],
                     "profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-Organization-1",
                                 "https://fhir.hl7.org.uk/STU3/StructureDefinition/CareConnect-Organization-1",
                                 "http://example.org/fhir/StructureDefinition/other"]}});
        let out = to_r4(&input).unwrap();
        assert_eq!(out.resource["id"], "o");
        assert_eq!(
            out.resource["meta"],
            json!({"versionId": "3", "lastUpdated": "2016-07-25T12:00:00+00:00",
                   "security": [{"system": "s", "code": "c"}],
                   "profile": ["http://example.org/fhir/StructureDefinition/other"],
                   "tag": [{"system": "t", "code": "u"},
                           {"system": CONVERTED_SYSTEM, "code": CONVERTED_CODE, "display": "Converted from FHIR STU3"}]})
        );
        assert!(out.notes.is_empty());
        // Converting again adds no second tag.
        let again = to_r4(&out.resource).unwrap();
        assert_eq!(again.resource["meta"]["tag"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn bad_meta_is_a_typed_error() {
        for meta in [
            json!("x"),
            json!({"profile": [1]}),
            json!({"profile": 1}),
            json!({"tag": ["x"]}),
        ] {
            let input = json!({"resourceType": "Organization", "meta": meta});
            assert!(
                matches!(to_r4(&input), Err(Stu3Error::Invalid { .. })),
                "{input}"
            );
        }
    }

    #[test]
    fn the_input_is_not_changed() {
        let input = json!({"resourceType": "AllergyIntolerance", "assertedDate": "2016",
                           "patient": {"reference": "Patient/1"}, "verificationStatus": "confirmed"});
        let before = input.clone();
        let out = to_r4(&input).unwrap();
        assert_eq!(input, before);
        assert_eq!(out.resource["recordedDate"], "2016");
    }

    #[test]
    fn contained_resources_are_converted_without_a_tag() {
        let input = json!({"resourceType": "List", "status": "current", "mode": "snapshot",
            "contained": [{"resourceType": "AllergyIntolerance", "id": "a", "assertedDate": "2011",
                           "clinicalStatus": "resolved", "verificationStatus": "unconfirmed",
                           "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-AllergyIntolerance-1"]},
                           "patient": {"reference": "Patient/1"}, "foo": 1}],
            "entry": [{"item": {"reference": "#a"}}]});
        let out = to_r4(&input).unwrap();
        let allergy = &out.resource["contained"][0];
        assert_eq!(allergy["recordedDate"], "2011");
        assert_eq!(allergy["clinicalStatus"]["coding"][0]["code"], "resolved");
        assert!(allergy.get("meta").is_none());
        assert_eq!(out.notes, vec!["contained #a: AllergyIntolerance.foo: not an element of R4 AllergyIntolerance; not carried over"]);
    }

    #[test]
    fn bad_contained_resources_fail_their_container() {
        for contained in [
            json!([{"resourceType": "OperationOutcome", "id": "x"}]),
            json!([{"resourceType": "AllergyIntolerance", "id": "x", "assertedDate": 1}]),
            json!([{"resourceType": "List", "id": "x", "contained": []}]),
            json!(["x"]),
        ] {
            let input = json!({"resourceType": "List", "contained": contained});
            assert!(
                matches!(to_r4(&input), Err(Stu3Error::Invalid { .. })),
                "{input}"
            );
        }
    }

    #[test]
    fn systems_and_references_move_everywhere() {
        let input = json!({"resourceType": "Encounter", "status": "finished",
            "class": {"system": "http://hl7.org/fhir/v3/ActCode", "code": "AMB"},
            "incomingReferral": [{"reference": "ReferralRequest/r1"}],
            "extension": [{"url": "https://example.org/x", "valueReference": {"reference": "ProcedureRequest/p1"}}]});
        let out = to_r4(&input).unwrap();
        assert_eq!(
            out.resource["class"]["system"],
            "http://terminology.hl7.org/CodeSystem/v3-ActCode"
        );
        assert_eq!(
            out.resource["basedOn"],
            json!([{"reference": "ServiceRequest/r1"}])
        );
        assert_eq!(
            out.resource["extension"][0]["valueReference"]["reference"],
            "ServiceRequest/p1"
        );
    }

    #[test]
    fn renamed_types_take_their_r4_name() {
        let input = json!({"resourceType": "ReferralRequest", "id": "r1", "status": "active", "intent": "order",
                           "subject": {"reference": "Patient/1"}});
        let out = to_r4(&input).unwrap();
        assert_eq!(out.resource["resourceType"], "ServiceRequest");
        assert_eq!(out.resource["id"], "r1");
    }

    #[test]
    fn every_type_converts_a_minimal_resource() {
        for (kind, _, _) in super::TYPES {
            let out = to_r4(&json!({"resourceType": kind, "id": "x"}));
            assert!(out.is_ok(), "{kind}: {out:?}");
        }
    }
}
