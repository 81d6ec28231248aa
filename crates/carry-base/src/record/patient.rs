//! What a clinician needs first about a person, from their Patient resource: age, NHS
//! number, preferred language and whether an interpreter is needed, GP practice, and
//! the people to contact.

use serde::Serialize;
use serde_json::Value;

/// The identifier system of NHS numbers.
pub const NHS_NUMBER: &str = "https://fhir.nhs.uk/Id/nhs-number";
/// FHIR's extension saying whether an interpreter is needed.
const INTERPRETER: &str = "http://hl7.org/fhir/StructureDefinition/patient-interpreterRequired";
/// UK Core's communication extension, with `language`, `preferred` and
/// `interpreterRequired` inside.
const UK_COMMUNICATION: &str =
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSCommunication";

/// The facts a summary's header shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Header {
    /// Age in whole years at the date asked for, when the date of birth is known.
    pub age: Option<u32>,
    /// The NHS number, else the first identifier with a value.
    pub nhs_number: Option<String>,
    /// The preferred language (the one marked preferred, else the first listed).
    pub language: Option<String>,
    /// Whether the record says an interpreter is needed.
    pub interpreter_needed: bool,
    /// The GP practice (or GP), as the record names it.
    pub gp_practice: Option<String>,
    /// The people to contact, one line each: name, relationship, telephone.
    pub contacts: Vec<String>,
}

/// The header facts of `patient`, with the age as at `today` (`YYYY-MM-DD`).
pub fn header(patient: &Value, today: &str) -> Header {
    Header {
        age: patient["birthDate"].as_str().and_then(|b| age_at(b, today)),
        nhs_number: patient["identifier"].as_array().and_then(|ids| {
            ids.iter()
                .find(|i| i["system"] == NHS_NUMBER)
                .and_then(|i| i["value"].as_str())
                .map(str::to_string)
        }),
        language: language(patient),
        interpreter_needed: interpreter_needed(patient),
        gp_practice: patient["generalPractitioner"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|g| g["display"].as_str())
            .map(str::to_string),
        contacts: patient["contact"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(contact_line)
            .collect(),
    }
}

/// Whole years from `birth` to `today`, both `YYYY-MM-DD` (a birth year or month
/// alone counts from its start).
fn age_at(birth: &str, today: &str) -> Option<u32> {
    let parts = |d: &str| -> Option<(i32, u32, u32)> {
        let mut it = d.get(..10).unwrap_or(d).split('-');
        let y = it.next()?.parse().ok()?;
        let m = it.next().map_or(Some(1), |m| m.parse().ok())?;
        let day = it.next().map_or(Some(1), |x| x.parse().ok())?;
        Some((y, m, day))
    };
    let (by, bm, bd) = parts(birth)?;
    let (ty, tm, td) = parts(today)?;
    let mut years = ty - by;
    if (tm, td) < (bm, bd) {
        years -= 1;
    }
    u32::try_from(years).ok()
}

fn concept_text(c: &Value) -> Option<String> {
    c["text"].as_str().map(str::to_string).or_else(|| {
        c["coding"]
            .as_array()?
            .iter()
            .find_map(|cd| cd["display"].as_str().or_else(|| cd["code"].as_str()))
            .map(str::to_string)
    })
}

fn language(p: &Value) -> Option<String> {
    let comms = p["communication"].as_array();
    let chosen = comms
        .into_iter()
        .flatten()
        .find(|c| c["preferred"] == true)
        .or_else(|| comms.and_then(|c| c.first()));
    if let Some(text) = chosen.and_then(|c| concept_text(&c["language"])) {
        return Some(text);
    }
    uk_communication(p).find_map(|parts| {
        parts
            .iter()
            .find(|e| e["url"] == "language")
            .and_then(|e| concept_text(&e["valueCodeableConcept"]))
    })
}

/// The sub-extensions of each UK Core communication extension on `p`.
fn uk_communication(p: &Value) -> impl Iterator<Item = &Vec<Value>> {
    p["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["url"] == UK_COMMUNICATION)
        .filter_map(|e| e["extension"].as_array())
}

fn interpreter_needed(p: &Value) -> bool {
    let base = p["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            p["communication"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| c["extension"].as_array().into_iter().flatten()),
        )
        .any(|e| e["url"] == INTERPRETER && e["valueBoolean"] == true);
    base || uk_communication(p).any(|parts| {
        parts
            .iter()
            .any(|e| e["url"] == "interpreterRequired" && e["valueBoolean"] == true)
    })
}

/// One of `Patient.contact` (or a `RelatedPerson`) in parts: name, relationship,
/// telephone and email, each where the record gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactParts {
    /// The name, from `text` or the given and family names.
    pub name: Option<String>,
    /// The relationship, in the record's words.
    pub relationship: Option<String>,
    /// The first telephone number.
    pub phone: Option<String>,
    /// The first email address.
    pub email: Option<String>,
}

impl ContactParts {
    /// The parts of `c`, a `Patient.contact` (one `name`) or a `RelatedPerson` (a
    /// list of names, the first used).
    pub fn of(c: &Value) -> ContactParts {
        let name = if c["name"].is_array() {
            &c["name"][0]
        } else {
            &c["name"]
        };
        let name = name["text"].as_str().map(str::to_string).or_else(|| {
            let all: Vec<&str> = name["given"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .chain(name["family"].as_str())
                .collect();
            (!all.is_empty()).then(|| all.join(" "))
        });
        let telecom = |system: &str| {
            c["telecom"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["system"] == system)
                .and_then(|t| t["value"].as_str())
                .map(str::to_string)
        };
        ContactParts {
            name,
            relationship: c["relationship"]
                .as_array()
                .into_iter()
                .flatten()
                .find_map(concept_text),
            phone: telecom("phone"),
            email: telecom("email"),
        }
    }

    /// One line: name, relationship in brackets, telephone (else email).
    pub fn line(&self) -> Option<String> {
        let parts: Vec<String> = self
            .name
            .iter()
            .cloned()
            .chain(
                self.relationship
                    .as_ref()
                    .map(|r| format!("({})", r.to_lowercase())),
            )
            .chain(self.phone.clone().or_else(|| self.email.clone()))
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

fn contact_line(c: &Value) -> Option<String> {
    ContactParts::of(c).line()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ages_count_whole_years() {
        assert_eq!(age_at("1990-06-15", "2026-06-14"), Some(35));
        assert_eq!(age_at("1990-06-15", "2026-06-15"), Some(36));
        assert_eq!(age_at("1990", "2026-01-01"), Some(36));
        assert_eq!(age_at("2030-01-01", "2026-01-01"), None);
        assert_eq!(age_at("soon", "2026-01-01"), None);
    }

    #[test]
    fn the_header_reads_base_and_uk_core_patients() {
        let p = json!({
            "birthDate": "1961-03-02",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"}],
            "communication": [
                {"language": {"coding": [{"code": "en", "display": "English"}]}},
                {"language": {"text": "Chinese"}, "preferred": true,
                 "extension": [{"url": INTERPRETER, "valueBoolean": true}]}
            ],
            "generalPractitioner": [{"display": "Beech Tree Surgery"}],
            "contact": [{"relationship": [{"text": "Daughter"}],
                         "name": {"given": ["Amy"], "family": "Lee"},
                         "telecom": [{"system": "phone", "value": "07700 900123"}]}]
        });
        let h = header(&p, "2026-12-07");
        assert_eq!(h.age, Some(65));
        assert_eq!(h.nhs_number.as_deref(), Some("9000000009"));
        assert_eq!(h.language.as_deref(), Some("Chinese"));
        assert!(h.interpreter_needed);
        assert_eq!(h.gp_practice.as_deref(), Some("Beech Tree Surgery"));
        assert_eq!(h.contacts, ["Amy Lee (daughter) 07700 900123"]);
        let uk = json!({"extension": [{"url": UK_COMMUNICATION, "extension": [
            {"url": "language", "valueCodeableConcept": {"coding": [{"code": "pl", "display": "Polish"}]}},
            {"url": "interpreterRequired", "valueBoolean": true}]}]});
        let h = header(&uk, "2026-12-07");
        assert_eq!(
            (h.language.as_deref(), h.interpreter_needed),
            (Some("Polish"), true)
        );
        assert_eq!(header(&json!({}), "2026-12-07"), Header::default());
    }
}
