//! The answer to `$gpc.getstructuredrecord`: a Bundle of type `collection` holding the
//! patient, their practice and its clinicians, and for each area asked for its
//! resources and Lists — or an empty List saying nothing is recorded.

use serde_json::{json, Value};

use super::record::{resource_type, Record};
use super::request::{parameter_of, Area, StructuredRequest};

/// The profile of the structured record Bundle.
pub const BUNDLE_PROFILE: &str =
    "https://fhir.nhs.uk/STU3/StructureDefinition/GPConnect-StructuredRecord-Bundle-1";
/// The profile of GP Connect's List.
const LIST_PROFILE: &str = "https://fhir.nhs.uk/STU3/StructureDefinition/CareConnect-GPC-List-1";
const SNOMED: &str = "http://snomed.info/sct";
/// The SNOMED CT code of the resolved (ended) allergies List.
const ENDED_ALLERGIES: &str = "1103671000000101";
/// The extension CareConnect marks an ended allergy with.
const ALLERGY_END: &str =
    "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-CareConnect-GPC-AllergyIntoleranceEnd-1";

/// An area's Lists: the SNOMED CT code and title of its primary List, the codes its
/// Lists may carry, and title words that mark a List of the area.
struct AreaLists {
    area: Area,
    code: &'static str,
    title: &'static str,
    codes: &'static [&'static str],
    words: &'static [&'static str],
}

/// Each area: the SNOMED CT code and title of its primary List, the codes its Lists
/// may carry, and title words that mark a List of the area when it carries no code
/// this table knows.
const LISTS: &[AreaLists] = &[
    AreaLists {
        area: Area::Allergies,
        code: "886921000000105",
        title: "Allergies and adverse reactions",
        codes: &["886921000000105", ENDED_ALLERGIES],
        words: &["allerg"],
    },
    AreaLists {
        area: Area::Medication,
        code: "933361000000108",
        title: "Medications and medical devices",
        codes: &["933361000000108"],
        words: &["medication"],
    },
    AreaLists {
        area: Area::Consultations,
        code: "1149501000000101",
        title: "List of consultations",
        codes: &[
            "1149501000000101",
            "325851000000107",
            "25851000000105",
            "24781000000107",
        ],
        words: &["consultation"],
    },
    AreaLists {
        area: Area::Problems,
        code: "717711000000103",
        title: "Problems",
        codes: &["717711000000103"],
        words: &["problem"],
    },
    AreaLists {
        area: Area::Immunisations,
        code: "1102181000000102",
        title: "Immunisations",
        codes: &["1102181000000102"],
        words: &["immunis", "immuniz"],
    },
    AreaLists {
        area: Area::Uncategorised,
        code: "826501000000100",
        title: "Miscellaneous record",
        codes: &["826501000000100"],
        words: &["uncategorised", "miscellaneous"],
    },
    AreaLists {
        area: Area::Investigations,
        code: "887191000000108",
        title: "Investigations and results",
        codes: &["887191000000108"],
        words: &["investigation"],
    },
    AreaLists {
        area: Area::Referrals,
        code: "792931000000107",
        title: "Outbound referral",
        codes: &["792931000000107"],
        words: &["referral"],
    },
    AreaLists {
        area: Area::DiaryEntries,
        code: "714311000000108",
        title: "Patient recall administration",
        codes: &["714311000000108"],
        words: &["diary", "recall"],
    },
];

/// The SNOMED CT codes of a List.
fn list_codes(list: &Value) -> Vec<&str> {
    list.pointer("/code/coding")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .filter_map(|c| c.get("code").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

/// The area a List belongs to, by its code or else its title.
fn area_of_list(list: &Value) -> Option<Area> {
    let codes = list_codes(list);
    if let Some(l) = LISTS
        .iter()
        .find(|l| codes.iter().any(|c| l.codes.contains(c)))
    {
        return Some(l.area);
    }
    let title = list
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_lowercase();
    LISTS
        .iter()
        .find(|l| l.words.iter().any(|w| title.contains(w)))
        .map(|l| l.area)
}

/// Whether a List holds resolved (ended) allergies.
fn is_resolved_allergy_list(list: &Value) -> bool {
    let title = list
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_lowercase();
    list_codes(list).contains(&ENDED_ALLERGIES)
        || title.starts_with("resolved")
        || title.starts_with("ended")
}

/// Whether an AllergyIntolerance is resolved: its clinical status says so, or it
/// carries CareConnect's allergy-end extension.
fn is_resolved_allergy(a: &Value) -> bool {
    let status = a.get("clinicalStatus").and_then(Value::as_str);
    let ended = a
        .get("extension")
        .and_then(Value::as_array)
        .is_some_and(|x| {
            x.iter()
                .any(|e| e.get("url").and_then(Value::as_str) == Some(ALLERGY_END))
        });
    matches!(status, Some("resolved" | "inactive")) || ended
}

/// What the DiagnosticReports name, as `Type/id`: their results (Observations) and
/// the requests they answer (ProcedureRequests), which belong to investigations.
fn report_parts(record: &Record) -> Vec<String> {
    record
        .resources
        .iter()
        .filter(|r| resource_type(r) == "DiagnosticReport")
        .flat_map(|r| ["result", "basedOn"].map(|k| r.get(k).and_then(Value::as_array)))
        .flatten()
        .flatten()
        .filter_map(|x| x.get("reference").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// The area a resource other than a List belongs to.
fn area_of(r: &Value, report_parts: &[String]) -> Option<Area> {
    let id = r.get("id").and_then(Value::as_str).unwrap_or("");
    let rtype = resource_type(r);
    let of_report = report_parts.iter().any(|x| *x == format!("{rtype}/{id}"));
    Some(match rtype {
        "AllergyIntolerance" => Area::Allergies,
        "MedicationStatement" | "MedicationRequest" | "Medication" => Area::Medication,
        "Encounter" => Area::Consultations,
        "Condition" => Area::Problems,
        "Immunization" => Area::Immunisations,
        "DiagnosticReport" | "Specimen" => Area::Investigations,
        "Observation" | "ProcedureRequest" if of_report => Area::Investigations,
        "Observation" => Area::Uncategorised,
        "ProcedureRequest" => Area::DiaryEntries,
        "ReferralRequest" => Area::Referrals,
        _ => return None,
    })
}

/// Whether the request keeps `r`, a resource of `area`.
fn keeps(r: &Value, area: Area, request: &StructuredRequest) -> bool {
    match (area, resource_type(r)) {
        (Area::Allergies, "AllergyIntolerance") => {
            request.include_resolved_allergies || !is_resolved_allergy(r)
        }
        (Area::Allergies, "List") => {
            request.include_resolved_allergies || !is_resolved_allergy_list(r)
        }
        (Area::Medication, "MedicationRequest") => {
            request.include_prescription_issues
                || r.get("intent").and_then(Value::as_str) != Some("order")
        }
        _ => true,
    }
}

/// An empty List for an area that holds nothing: GP Connect's way of saying so.
fn empty_list(area: Area, patient_ref: &Value) -> Value {
    let (code, title) = LISTS
        .iter()
        .find(|l| l.area == area)
        .map_or(("", ""), |l| (l.code, l.title));
    // A stable id per area: the same answer twice is the same record twice.
    let mut list = json!({
        "resourceType": "List",
        "id": format!("empty-{code}"),
        "meta": { "profile": [LIST_PROFILE] },
        "status": "current",
        "mode": "snapshot",
        "title": title,
        "code": { "coding": [{ "system": SNOMED, "code": code, "display": title }] },
        "emptyReason": { "coding": [{
            "system": "http://hl7.org/fhir/list-empty-reason",
            "code": "no-content-recorded",
            "display": "No Content Recorded",
        }]},
        "note": [{ "text": "Information not available" }],
    });
    if !patient_ref.is_null() {
        list["subject"] = patient_ref.clone();
    }
    list
}

/// The warnings the record carries about parameters the practice does not support,
/// kept for the parameters asked for; and which areas they cover.
fn warnings(record: &Record, request: &StructuredRequest) -> (Option<Value>, Vec<Area>) {
    let asked: Vec<(&str, Area)> = request
        .areas
        .iter()
        .map(|a| (parameter_of(*a), *a))
        .collect();
    let mut covered = Vec::new();
    let mut outcome: Option<Value> = None;
    for oo in record
        .resources
        .iter()
        .filter(|r| resource_type(r) == "OperationOutcome")
    {
        let issues: Vec<Value> = oo
            .get("issue")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|i| i.get("severity").and_then(Value::as_str) != Some("error"))
            .filter(|i| {
                let named = i.get("diagnostics").and_then(Value::as_str).unwrap_or("");
                match asked.iter().find(|(p, _)| *p == named) {
                    Some((_, area)) => {
                        covered.push(*area);
                        true
                    }
                    None => false,
                }
            })
            .cloned()
            .collect();
        if issues.is_empty() {
            continue;
        }
        match outcome
            .as_mut()
            .and_then(|o| o.get_mut("issue"))
            .and_then(Value::as_array_mut)
        {
            Some(all) => all.extend(issues),
            None => {
                let mut kept = oo.clone();
                kept["issue"] = Value::Array(issues);
                outcome = Some(kept);
            }
        }
    }
    (outcome, covered)
}

/// The Bundle answering `request` from `record`.
pub fn bundle(record: &Record, request: &StructuredRequest) -> Value {
    let results = report_parts(record);
    let mut entries: Vec<Value> = Vec::new();
    for r in &record.resources {
        if matches!(
            resource_type(r),
            "Patient" | "Organization" | "Practitioner" | "PractitionerRole"
        ) {
            entries.push(r.clone());
        }
    }
    let (outcome, warned) = warnings(record, request);
    let patient_ref = record
        .patient()
        .and_then(|p| p.get("id"))
        .and_then(Value::as_str)
        .map_or(
            Value::Null,
            |id| json!({ "reference": format!("Patient/{id}") }),
        );
    for area in &request.areas {
        let mut found = false;
        for r in &record.resources {
            let of = if resource_type(r) == "List" {
                area_of_list(r)
            } else {
                area_of(r, &results)
            };
            if of == Some(*area) {
                found = true;
                if keeps(r, *area, request) {
                    entries.push(r.clone());
                }
            }
        }
        if !found && !warned.contains(area) {
            entries.push(empty_list(*area, &patient_ref));
        }
    }
    entries.extend(outcome);
    json!({
        "resourceType": "Bundle",
        "meta": { "profile": [BUNDLE_PROFILE] },
        "type": "collection",
        "entry": entries.into_iter().map(|r| json!({ "resource": r })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_fall_into_their_areas() {
        let report = json!({"resourceType": "DiagnosticReport", "id": "r",
            "result": [{"reference": "Observation/o1"}], "basedOn": [{"reference": "ProcedureRequest/p1"}]});
        let parts = vec![
            "Observation/o1".to_string(),
            "ProcedureRequest/p1".to_string(),
        ];
        let of = |t: &str, id: &str| area_of(&json!({"resourceType": t, "id": id}), &parts);
        assert_eq!(area_of(&report, &parts), Some(Area::Investigations));
        assert_eq!(of("Observation", "o1"), Some(Area::Investigations));
        assert_eq!(of("Observation", "o2"), Some(Area::Uncategorised));
        assert_eq!(of("ProcedureRequest", "p1"), Some(Area::Investigations));
        assert_eq!(of("ProcedureRequest", "p2"), Some(Area::DiaryEntries));
        assert_eq!(of("Patient", "x"), None);
        let list = |code: &str, title: &str| json!({"resourceType": "List", "title": title, "code": {"coding": [{"code": code}]}});
        assert_eq!(
            area_of_list(&list("1103671000000101", "Ended allergies")),
            Some(Area::Allergies)
        );
        assert!(is_resolved_allergy_list(&list(
            "1103671000000101",
            "Ended allergies"
        )));
        assert!(is_resolved_allergy_list(&list("TBD", "Resolved Allergies")));
        assert_eq!(
            area_of_list(&list("TBD", "Resolved Allergies")),
            Some(Area::Allergies)
        );
        assert_eq!(
            area_of_list(&list("714311000000108", "x")),
            Some(Area::DiaryEntries)
        );
        assert!(is_resolved_allergy(&json!({"clinicalStatus": "resolved"})));
        assert!(is_resolved_allergy(
            &json!({"extension": [{"url": ALLERGY_END}]})
        ));
        assert!(!is_resolved_allergy(&json!({"clinicalStatus": "active"})));
    }
}
