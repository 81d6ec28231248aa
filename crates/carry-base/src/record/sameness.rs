//! When two sources hold "the same fact": the keys that group a GP's and a hospital's
//! copies of one medicine, one allergy or one blood test, so the record shows it once
//! with both provenances instead of twice, and never drops either.
//!
//! Two resources of the same type are the same fact when
//! 1. they share a business identifier (`identifier.system` + `value`, both present);
//!    this decides first, because identifiers are assigned to exactly that fact; or
//!    An identifier that several resources of one source share (a constant
//!    "claim group" number, say) names no single fact and groups nothing; nor does
//!    any key that more than 32 resources share; or
//! 2. neither settles it by identifier and they agree on the clinical-equivalence key
//!    (only for clinical facts: conditions, allergies, medications, immunisations,
//!    observations, reports and procedures):
//!    the primary code (system and code), the clinical date, and for an Observation
//!    its value. Observations compare the date to the second and the value exactly,
//!    so two readings on one day stay apart; other types compare the day, because
//!    providers record the same diagnosis or prescription at different times of day.
//!
//! A resource without a code or a date has no equivalence key, and only an identifier
//! can group it. Keys only ever group resources from different sources: within one
//! source, two resources are two facts.

use serde_json::Value;

use super::Analysis;

/// The grouping keys of one resource: identifier keys first, then at most one
/// equivalence key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    /// `id|Type|system|value` for every identifier with both parts.
    pub identifiers: Vec<String>,
    /// `eq|Type|system|code|date[|value]`, when the resource has a code and a date.
    pub equivalence: Option<String>,
}

/// Work out the keys of `resource`.
pub fn keys(resource: &Value, a: &Analysis) -> Keys {
    let t = &a.resource_type;
    let mut identifiers: Vec<String> = resource
        .get("identifier")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(|i| {
                    let system = i.get("system")?.as_str()?.trim();
                    let value = i.get("value")?.as_str()?.trim();
                    (!system.is_empty() && !value.is_empty())
                        .then(|| format!("id|{t}|{system}|{value}"))
                })
                .collect()
        })
        .unwrap_or_default();
    identifiers.sort();
    identifiers.dedup();
    Keys {
        identifiers,
        equivalence: equivalence(resource, a),
    }
}

/// The clinical facts an equivalence key may group.
const EQUIVALENCE_TYPES: &[&str] = &[
    "AllergyIntolerance",
    "Condition",
    "DiagnosticReport",
    "Immunization",
    "MedicationRequest",
    "MedicationStatement",
    "Observation",
    "Procedure",
];

fn equivalence(resource: &Value, a: &Analysis) -> Option<String> {
    if !EQUIVALENCE_TYPES.contains(&a.resource_type.as_str()) {
        // People, directory entries, encounters, documents and billing are the same
        // only by identifier: two claims on one day are two claims.
        return None;
    }
    let code = a
        .codes
        .iter()
        .find(|c| c.system.is_some() && c.code.is_some())?;
    let (date, _) = a.date.as_ref()?;
    let date = if a.resource_type == "Observation" {
        normalise_instant(date)
    } else {
        date.get(..10)?.to_string()
    };
    let mut key = format!(
        "eq|{}|{}|{}|{date}",
        a.resource_type,
        code.system.as_deref().unwrap_or_default(),
        code.code.as_deref().unwrap_or_default()
    );
    if a.resource_type == "Observation" {
        key.push('|');
        key.push_str(&observation_value(resource));
    }
    Some(key)
}

/// A dateTime down to the second, without the fraction: `2024-03-01T09:30:00+00:00`
/// and `2024-03-01T09:30:00.000+00:00` are one instant as providers write it.
fn normalise_instant(d: &str) -> String {
    match d.find('.') {
        Some(dot) if d.len() > 19 => {
            let rest = &d[dot..];
            let zone = rest.find(['Z', '+', '-']).map_or("", |z| &rest[z..]);
            format!("{}{zone}", &d[..dot])
        }
        _ => d.to_string(),
    }
}

/// The value of an Observation as text, or of its components.
fn observation_value(o: &Value) -> String {
    fn one(v: &Value) -> Option<String> {
        if let Some(q) = v.get("valueQuantity") {
            let value = q.get("value")?;
            let unit = q
                .get("code")
                .or_else(|| q.get("unit"))
                .and_then(Value::as_str)
                .unwrap_or("");
            return Some(format!("{value}{unit}"));
        }
        if let Some(c) = v.get("valueCodeableConcept") {
            let coding = c.get("coding")?.as_array()?.first()?;
            return Some(format!(
                "{}#{}",
                coding.get("system")?.as_str()?,
                coding.get("code")?.as_str()?
            ));
        }
        [
            "valueString",
            "valueBoolean",
            "valueInteger",
            "valueDateTime",
        ]
        .iter()
        .find_map(|k| v.get(*k).map(Value::to_string))
    }
    let mut parts: Vec<String> = one(o).into_iter().collect();
    if let Some(components) = o.get("component").and_then(Value::as_array) {
        for c in components {
            let code = c["code"]["coding"][0]["code"].as_str().unwrap_or("");
            parts.push(format!("{code}={}", one(c).unwrap_or_default()));
        }
    }
    parts.join(";")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::analyse;
    use serde_json::json;

    fn k(v: Value) -> Keys {
        keys(&v, &analyse(&v).unwrap())
    }

    fn bp(at: &str, sys: i64) -> Value {
        json!({"resourceType":"Observation","status":"final",
            "code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
            "effectiveDateTime": at,
            "component":[
                {"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":sys,"code":"mm[Hg]"}},
                {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"code":"mm[Hg]"}}]})
    }

    #[test]
    fn identifiers_come_first_and_need_both_parts() {
        let keys = k(json!({"resourceType":"Patient","identifier":[
            {"system":"http://hl7.org/fhir/sid/us-ssn","value":"999-12-3456"},
            {"value":"no-system"},
            {"system":"http://example.org/mrn","value":" "}]}));
        assert_eq!(
            keys.identifiers,
            vec!["id|Patient|http://hl7.org/fhir/sid/us-ssn|999-12-3456"]
        );
        assert_eq!(keys.equivalence, None, "people match by identifier only");
    }

    #[test]
    fn observations_match_to_the_second_and_by_value() {
        let a = k(bp("2024-03-01T09:30:00+00:00", 120));
        assert_eq!(a, k(bp("2024-03-01T09:30:00.000+00:00", 120)));
        assert_ne!(
            a.equivalence,
            k(bp("2024-03-01T18:00:00+00:00", 120)).equivalence
        );
        assert_ne!(
            a.equivalence,
            k(bp("2024-03-01T09:30:00+00:00", 135)).equivalence
        );
    }

    #[test]
    fn conditions_match_by_code_and_day() {
        let c = |onset: &str, code: &str| {
            k(json!({"resourceType":"Condition",
                "code":{"coding":[{"system":"http://snomed.info/sct","code":code}]},
                "onsetDateTime": onset}))
            .equivalence
        };
        assert_eq!(
            c("2020-05-01T08:00:00Z", "44054006"),
            c("2020-05-01T17:45:00Z", "44054006")
        );
        assert_ne!(
            c("2020-05-01T08:00:00Z", "44054006"),
            c("2020-05-02T08:00:00Z", "44054006")
        );
        assert_ne!(
            c("2020-05-01T08:00:00Z", "44054006"),
            c("2020-05-01T08:00:00Z", "38341003")
        );
        let undated = k(json!({"resourceType":"Condition",
            "code":{"coding":[{"system":"http://snomed.info/sct","code":"44054006"}]}}));
        assert_eq!(undated.equivalence, None);
    }
}
