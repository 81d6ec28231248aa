//! What lists and search need from a resource: its clinically relevant date, a one-line
//! display, and its codes. Pure functions over the parsed JSON.

use serde_json::Value;
use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};

use super::Code;

/// Sort key of a resource with no usable date: it sorts after every dated one.
pub const UNDATED: i64 = i64::MIN;
/// Longest display line kept, in characters.
const DISPLAY_MAX: usize = 200;

/// Fields holding the clinically relevant date, per resource type, in order of
/// preference. A field may hold a date, a dateTime, an instant or a Period.
fn date_fields(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        "Observation" => &[
            "effectiveDateTime",
            "effectivePeriod",
            "effectiveInstant",
            "issued",
        ],
        "Condition" => &[
            "onsetDateTime",
            "onsetPeriod",
            "recordedDate",
            "abatementDateTime",
        ],
        "Procedure" => &["performedDateTime", "performedPeriod"],
        "Encounter" | "EpisodeOfCare" | "CarePlan" | "CareTeam" | "Flag" => &["period"],
        "Immunization" => &["occurrenceDateTime", "recorded"],
        "MedicationRequest" => &["authoredOn"],
        "MedicationStatement" => &["effectiveDateTime", "effectivePeriod", "dateAsserted"],
        "MedicationAdministration" => &["effectiveDateTime", "effectivePeriod"],
        "MedicationDispense" => &["whenHandedOver", "whenPrepared"],
        "AllergyIntolerance" => &["onsetDateTime", "recordedDate", "lastOccurrence"],
        "DiagnosticReport" => &["effectiveDateTime", "effectivePeriod", "issued"],
        "Claim" | "ExplanationOfBenefit" => &["billablePeriod", "created"],
        "Appointment" => &["start"],
        "DocumentReference" => &["date", "context"],
        "Composition" | "FamilyMemberHistory" | "List" => &["date"],
        "Consent" => &["dateTime"],
        "AuditEvent" | "Provenance" => &["recorded"],
        "Goal" => &["startDate", "statusDate"],
        "ServiceRequest" => &["occurrenceDateTime", "authoredOn"],
        "Bundle" => &["timestamp"],
        _ => &["date", "effectiveDateTime", "issued"],
    }
}

/// The clinically relevant date as written, and its start in Unix seconds (UTC).
pub fn clinical_date(resource_type: &str, resource: &Value) -> Option<(String, i64)> {
    for field in date_fields(resource_type) {
        let text = match resource.get(*field) {
            Some(Value::String(s)) => Some(s.as_str()),
            Some(Value::Object(o)) => o
                .get("start")
                .or_else(|| o.get("period").and_then(|p| p.get("start")))
                .and_then(Value::as_str),
            _ => None,
        };
        if let Some(text) = text {
            if let Some(secs) = parse_fhir_date(text) {
                return Some((text.to_string(), secs));
            }
        }
    }
    None
}

/// Parse a FHIR date, dateTime or instant to the Unix second it starts at (UTC).
/// Partial dates (`2019`, `2019-05`) start at their first day.
pub fn parse_fhir_date(s: &str) -> Option<i64> {
    let (date_part, time_part) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut it = date_part.split('-');
    let year: i32 = it.next()?.parse().ok()?;
    let month: u8 = it.next().map_or(Some(1), |m| m.parse().ok())?;
    let day: u8 = it.next().map_or(Some(1), |d| d.parse().ok())?;
    if it.next().is_some() || !(1..=9999).contains(&year) {
        return None;
    }
    let date = Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()?;
    let Some(t) = time_part else {
        return Some(
            PrimitiveDateTime::new(date, Time::MIDNIGHT)
                .assume_utc()
                .unix_timestamp(),
        );
    };
    // Split the zone off: Z, +hh:mm or -hh:mm.
    let (clock, offset) = if let Some(c) = t.strip_suffix('Z') {
        (c, UtcOffset::UTC)
    } else if let Some(i) = t.rfind(['+', '-']) {
        let (c, z) = t.split_at(i);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let (h, m) = z[1..].split_once(':')?;
        let h: i8 = h.parse().ok()?;
        let m: i8 = m.parse().ok()?;
        (c, UtcOffset::from_hms(sign * h, sign * m, 0).ok()?)
    } else {
        (t, UtcOffset::UTC)
    };
    let mut parts = clock.split(':');
    let hour: u8 = parts.next()?.parse().ok()?;
    let minute: u8 = parts.next()?.parse().ok()?;
    let second: u8 = match parts.next() {
        Some(sec) => sec.split('.').next()?.parse().ok()?,
        None => 0,
    };
    let time = Time::from_hms(hour, minute, second).ok()?;
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_offset(offset)
            .unix_timestamp(),
    )
}

/// Fields holding the CodeableConcepts that say what a resource is about.
const CONCEPT_FIELDS: &[&str] = &[
    "code",
    "vaccineCode",
    "medicationCodeableConcept",
    "valueCodeableConcept",
    "type",
    "reasonCode",
    "category",
];

fn push_concept(out: &mut Vec<Code>, concept: &Value) {
    match concept {
        Value::Array(items) => items.iter().for_each(|c| push_concept(out, c)),
        Value::Object(o) => {
            if let Some(codings) = o.get("coding").and_then(Value::as_array) {
                for c in codings {
                    let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
                    let code = Code {
                        system: s("system"),
                        code: s("code"),
                        display: s("display"),
                    };
                    if (code.code.is_some() || code.display.is_some()) && !out.contains(&code) {
                        out.push(code);
                    }
                }
            }
            if let Some(text) = o.get("text").and_then(Value::as_str) {
                let code = Code {
                    system: None,
                    code: None,
                    display: Some(text.to_string()),
                };
                if !out.contains(&code) {
                    out.push(code);
                }
            }
        }
        _ => {}
    }
}

/// The codes of a resource, from its main concept fields and its components.
pub fn codes(resource: &Value) -> Vec<Code> {
    let mut out = Vec::new();
    for field in CONCEPT_FIELDS {
        if let Some(v) = resource.get(*field) {
            push_concept(&mut out, v);
        }
    }
    if let Some(components) = resource.get("component").and_then(Value::as_array) {
        for c in components {
            if let Some(code) = c.get("code") {
                push_concept(&mut out, code);
            }
        }
    }
    out
}

/// The readable label of a CodeableConcept: its text, else its first display.
fn concept_label(concept: Option<&Value>) -> Option<String> {
    let c = match concept? {
        Value::Array(a) => a.first()?,
        other => other,
    };
    if let Some(t) = c.get("text").and_then(Value::as_str) {
        return Some(t.to_string());
    }
    c.get("coding")
        .and_then(Value::as_array)?
        .iter()
        .find_map(|cd| cd.get("display").and_then(Value::as_str))
        .map(str::to_string)
}

fn human_name(resource: &Value) -> Option<String> {
    let names = resource.get("name")?;
    let name = match names {
        Value::Array(a) => a.first()?,
        Value::String(s) => return Some(s.clone()),
        other => other,
    };
    if let Some(t) = name.get("text").and_then(Value::as_str) {
        return Some(t.to_string());
    }
    let mut parts: Vec<&str> = name
        .get("prefix")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            name.get("given")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
        .filter_map(Value::as_str)
        .collect();
    if let Some(f) = name.get("family").and_then(Value::as_str) {
        parts.push(f);
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// A number as a person reads it. A value written with more than two decimals (generated
/// data often carries fifteen) is given three significant figures, at most four
/// decimals, trailing zeros dropped: 82.80592677079234 reads 82.8, 1.3394 reads 1.34,
/// 0.0123456 reads 0.0123. A value written with two decimals or fewer is shown as
/// written. The stored JSON keeps every digit.
pub fn number(v: &Value) -> Option<String> {
    let Value::Number(n) = v else {
        return None;
    };
    let text = n.to_string();
    let decimals = text.split_once('.').map_or(0, |(_, f)| f.len());
    match n.as_f64() {
        Some(f) if decimals > 2 && f != 0.0 && !text.contains(['e', 'E']) => {
            let magnitude = f.abs().log10().floor() as i32 + 1;
            let places = (3 - magnitude).clamp(0, 4) as usize;
            let rounded = format!("{f:.places$}");
            let rounded = if rounded.contains('.') {
                rounded.trim_end_matches('0').trim_end_matches('.')
            } else {
                &rounded
            };
            Some(rounded.to_string())
        }
        _ => Some(text),
    }
}

/// A unit as a person reads it: the UCUM codes records carry in `unit` written the
/// way clinicians write them (`mm[Hg]` as mmHg, `kg/m2` as kg/m², `Cel` as °C), and
/// UCUM's annotations in braces dropped (`{score}`). Other units are kept as written.
pub fn readable_unit(unit: &str) -> String {
    let known = match unit {
        "mm[Hg]" => "mmHg",
        "kg/m2" => "kg/m²",
        "Cel" => "°C",
        "[degF]" => "°F",
        "[lb_av]" => "lb",
        "[in_i]" => "in",
        "umol/L" => "µmol/L",
        "ug/L" => "µg/L",
        "ug/dL" => "µg/dL",
        "uL" => "µL",
        "10*3/uL" => "×10³/µL",
        "10*6/uL" => "×10⁶/µL",
        "10*9/L" => "×10⁹/L",
        "10*12/L" => "×10¹²/L",
        "/min" | "{beats}/min" => "/min",
        "{breaths}/min" => "breaths/min",
        "mL/min/{1.73_m2}" => "mL/min/1.73 m²",
        "m2" => "m²",
        "[iU]/L" => "IU/L",
        "1" | "{score}" => "",
        _ => "",
    };
    if !known.is_empty() || matches!(unit, "1" | "{score}") {
        return known.to_string();
    }
    // UCUM annotations are for machines: `%{HemoglobinA1C}` reads %.
    let mut out = String::with_capacity(unit.len());
    let mut depth = 0u32;
    for ch in unit.chars() {
        match ch {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(ch),
            _ => {}
        }
    }
    out.trim().to_string()
}

/// A Quantity as a person reads it: comparator, value ([`number`]) and readable unit.
pub fn quantity(q: &Value) -> Option<String> {
    let value = number(q.get("value")?)?;
    let comparator = q.get("comparator").and_then(Value::as_str).unwrap_or("");
    let unit = q
        .get("unit")
        .or_else(|| q.get("code"))
        .and_then(Value::as_str)
        .map(readable_unit)
        .unwrap_or_default();
    // 6.1% and 60/min are written closed up; other units after a space.
    let gap = if unit.starts_with('/') || unit == "%" {
        ""
    } else {
        " "
    };
    Some(
        format!("{comparator}{value}{gap}{unit}")
            .trim_end()
            .to_string(),
    )
}

/// The value part of an Observation (or a component).
fn observation_value(o: &Value) -> Option<String> {
    if let Some(q) = o.get("valueQuantity") {
        return quantity(q);
    }
    if let Some(c) = o.get("valueCodeableConcept") {
        return concept_label(Some(c));
    }
    if let Some(s) = o.get("valueString").and_then(Value::as_str) {
        return Some(s.to_string());
    }
    if let Some(b) = o.get("valueBoolean").and_then(Value::as_bool) {
        return Some(if b { "yes" } else { "no" }.to_string());
    }
    o.get("valueInteger").and_then(number)
}

fn observation_display(o: &Value) -> String {
    let label = concept_label(o.get("code")).unwrap_or_else(|| "Observation".into());
    if let Some(v) = observation_value(o) {
        return format!("{label}: {v}");
    }
    let comps: Vec<&Value> = o
        .get("component")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let values: Vec<(String, String)> = comps
        .iter()
        .filter_map(|c| Some((concept_label(c.get("code"))?, observation_value(c)?)))
        .collect();
    let code_of = |c: &Value, code: &str| {
        c.pointer("/code/coding")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|cd| cd.get("code").and_then(Value::as_str) == Some(code))
            })
    };
    // Blood pressure reads as systolic/diastolic.
    let sys = comps.iter().find(|c| code_of(c, "8480-6"));
    let dia = comps.iter().find(|c| code_of(c, "8462-4"));
    if let (Some(s), Some(d)) = (sys, dia) {
        let sv = s.pointer("/valueQuantity/value").and_then(number);
        let dv = d.pointer("/valueQuantity/value").and_then(number);
        if let (Some(sv), Some(dv)) = (sv, dv) {
            let unit = s
                .pointer("/valueQuantity/unit")
                .and_then(Value::as_str)
                .map_or_else(|| "mmHg".to_string(), readable_unit);
            return format!("{label}: {sv}/{dv} {unit}");
        }
    }
    if values.is_empty() {
        label
    } else {
        let parts: Vec<String> = values.iter().map(|(k, v)| format!("{k} {v}")).collect();
        format!("{label}: {}", parts.join(", "))
    }
}

fn medication_label(r: &Value) -> Option<String> {
    concept_label(r.get("medicationCodeableConcept"))
        .or_else(|| {
            r.pointer("/medicationReference/display")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .map(|name| drug_name(&name))
}

/// The reference range as written: `low–high unit`, or one side of it.
pub fn reference_range(r: &Value) -> Option<String> {
    let rr = r.pointer("/referenceRange/0")?;
    if let Some(t) = rr["text"].as_str() {
        return Some(t.to_string());
    }
    let side = |k: &str| number(&rr[k]["value"]);
    let unit = rr["low"]["unit"]
        .as_str()
        .or_else(|| rr["high"]["unit"].as_str())
        .map(readable_unit)
        .unwrap_or_default();
    let text = match (side("low"), side("high")) {
        (Some(l), Some(h)) => format!("{l}–{h}"),
        (Some(l), None) => format!("≥{l}"),
        (None, Some(h)) => format!("≤{h}"),
        (None, None) => return None,
    };
    Some(format!("{text} {unit}").trim_end().to_string())
}

/// What an Observation's interpretation says, in words (`high`, `low`, `critically
/// high`, `abnormal`…), or its text; `None` when it has none, or says normal.
pub fn interpretation(r: &Value) -> Option<String> {
    let i = r.pointer("/interpretation/0")?;
    let code = i.pointer("/coding/0/code").and_then(Value::as_str);
    let word = match code {
        Some("N") => return None,
        Some("H") => "high",
        Some("L") => "low",
        Some("HH" | "HU") => "critically high",
        Some("LL" | "LU") => "critically low",
        Some("A") => "abnormal",
        Some("AA") => "critically abnormal",
        Some("POS") => "positive",
        Some("NEG") => "negative",
        Some("R") => "resistant",
        Some("S") => "susceptible",
        _ => {
            return i["text"]
                .as_str()
                .or_else(|| i.pointer("/coding/0/display").and_then(Value::as_str))
                .filter(|t| !t.trim().is_empty() && !t.eq_ignore_ascii_case("normal"))
                .map(|t| t.trim().to_lowercase());
        }
    };
    Some(word.to_string())
}

/// A drug's name without the catalogue numbers some names carry (RxNorm's branded
/// names begin `NDA020800 …`, `ANDA…` or `BLA…`: application numbers, not names).
pub fn drug_name(name: &str) -> String {
    let catalogue = |w: &str| {
        ["NDA", "ANDA", "BLA"].iter().any(|p| {
            w.strip_prefix(p)
                .is_some_and(|d| d.len() >= 6 && d.bytes().all(|b| b.is_ascii_digit()))
        })
    };
    let kept: Vec<&str> = name.split_whitespace().filter(|w| !catalogue(w)).collect();
    if kept.is_empty() {
        name.to_string()
    } else {
        kept.join(" ")
    }
}

fn text_field(r: &Value, field: &str) -> Option<String> {
    r.get(field).and_then(Value::as_str).map(str::to_string)
}

/// The status word a clinician needs beside a problem, an allergy or a medicine:
/// `current`, `stopped`, `completed`, `resolved`, `inactive`, `in remission`…, from
/// the clinical status or the status the resource carries. `None` when it says none.
pub fn status(resource_type: &str, r: &Value) -> Option<String> {
    let code = |p: &str| r.pointer(p).and_then(Value::as_str);
    let word = match resource_type {
        "Condition" | "AllergyIntolerance" => {
            match code("/verificationStatus/coding/0/code") {
                Some("refuted") => return Some("refuted".into()),
                Some("entered-in-error") => return Some("entered in error".into()),
                _ => {}
            }
            match code("/clinicalStatus/coding/0/code")? {
                "active" | "recurrence" | "relapse" => "current",
                "remission" => "in remission",
                other => other,
            }
        }
        "MedicationRequest" | "MedicationStatement" => match code("/status")? {
            "active" => "current",
            "on-hold" => "on hold",
            "not-taken" => "not taken",
            "entered-in-error" => "entered in error",
            other => other,
        },
        _ => return None,
    };
    Some(word.to_string())
}

/// How a medicine is taken, as written on it (its first dosage's text), and "as
/// needed" when it says so: `1 tablet twice a day; as needed for pain`.
pub fn dosage(r: &Value) -> Option<String> {
    let d = r
        .pointer("/dosageInstruction/0")
        .or_else(|| r.pointer("/dosage/0"))?;
    let text = d.get("text").and_then(Value::as_str).map(str::to_string);
    let as_needed = match (
        d.get("asNeededBoolean").and_then(Value::as_bool),
        concept_label(d.get("asNeededCodeableConcept")),
    ) {
        (_, Some(why)) => Some(format!("as needed for {}", why.to_lowercase())),
        (Some(true), None) => Some("as needed".to_string()),
        _ => None,
    };
    let parts: Vec<String> = text.into_iter().chain(as_needed).collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// SNOMED CT's statements that no allergy is known, and how a clinician reads them
/// (records abbreviate them: "NKDA").
const NO_KNOWN_ALLERGY: &[(&str, &str)] = &[
    ("716186003", "No known allergies"),
    ("409137002", "No known drug allergies"),
    ("429625007", "No known food allergies"),
    ("428607008", "No known environmental allergies"),
];

/// The plain statement an AllergyIntolerance makes when its code says no allergy is
/// known.
fn no_known_allergy(r: &Value) -> Option<String> {
    r.pointer("/code/coding")?
        .as_array()?
        .iter()
        .filter(|c| c.get("system").and_then(Value::as_str) == Some("http://snomed.info/sct"))
        .find_map(|c| {
            let code = c.get("code").and_then(Value::as_str)?;
            NO_KNOWN_ALLERGY
                .iter()
                .find(|(k, _)| *k == code)
                .map(|(_, said)| said.to_string())
        })
}

/// A one-line, patient-readable description of a resource.
pub fn display(resource_type: &str, r: &Value) -> String {
    let line = match resource_type {
        "AllergyIntolerance" if no_known_allergy(r).is_some() => no_known_allergy(r),
        "Observation" => Some(observation_display(r)),
        "Patient" | "Practitioner" | "RelatedPerson" | "Person" => human_name(r),
        "Organization" | "Location" | "HealthcareService" | "Group" => text_field(r, "name"),
        "Condition"
        | "AllergyIntolerance"
        | "Procedure"
        | "DiagnosticReport"
        | "ServiceRequest"
        | "FamilyMemberHistory"
        | "Flag" => concept_label(r.get("code")).map(|c| match resource_type {
            "FamilyMemberHistory" => {
                let rel = concept_label(r.get("relationship"));
                let cond = r
                    .get("condition")
                    .and_then(Value::as_array)
                    .and_then(|a| a.first())
                    .and_then(|c| concept_label(c.get("code")));
                match (rel, cond) {
                    (Some(rel), Some(cond)) => format!("{rel}: {cond}"),
                    _ => c,
                }
            }
            _ => c,
        }),
        "Immunization" => concept_label(r.get("vaccineCode")),
        "MedicationRequest"
        | "MedicationStatement"
        | "MedicationAdministration"
        | "MedicationDispense" => medication_label(r),
        "Medication" => concept_label(r.get("code")),
        "Encounter" => concept_label(r.get("type"))
            .or_else(|| {
                r.pointer("/class/display")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .map(|t| format!("Encounter: {t}")),
        "Claim" | "ExplanationOfBenefit" => {
            let kind = if resource_type == "Claim" {
                "Claim"
            } else {
                "Explanation of benefit"
            };
            Some(match concept_label(r.get("type")) {
                Some(t) => format!("{kind}: {t}"),
                None => kind.to_string(),
            })
        }
        "CarePlan" | "Composition" | "List" | "Questionnaire" => text_field(r, "title")
            .or_else(|| concept_label(r.get("category")))
            .or_else(|| concept_label(r.get("code"))),
        "Goal" => concept_label(r.get("description")),
        "Appointment" => text_field(r, "description")
            .or_else(|| concept_label(r.get("serviceType")))
            .or_else(|| concept_label(r.get("appointmentType"))),
        "DocumentReference" => {
            text_field(r, "description").or_else(|| concept_label(r.get("type")))
        }
        "CareTeam" => text_field(r, "name"),
        "Consent" => concept_label(r.get("scope")).map(|s| format!("Consent: {s}")),
        "Bundle" => text_field(r, "type").map(|t| format!("Bundle ({t})")),
        "Provenance" => {
            let enterer = r
                .pointer("/agent/0/type/coding/0/code")
                .and_then(Value::as_str)
                == Some("enterer");
            r.pointer("/agent/0/who/display")
                .and_then(Value::as_str)
                .filter(|_| enterer)
                .map(|who| format!("Entered by {who}"))
        }
        _ => concept_label(r.get("code")),
    };
    let line = line
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| resource_type.to_string());
    if line.chars().count() > DISPLAY_MAX {
        let mut cut: String = line.chars().take(DISPLAY_MAX - 1).collect();
        cut.push('…');
        cut
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_partial_dates_and_offsets() {
        assert_eq!(parse_fhir_date("1970-01-01"), Some(0));
        assert_eq!(parse_fhir_date("1970"), Some(0));
        assert_eq!(parse_fhir_date("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_fhir_date("1970-01-01T00:00:10.5Z"), Some(10));
        assert_eq!(parse_fhir_date("2019-13-01"), None);
        assert_eq!(parse_fhir_date("soon"), None);
    }

    #[test]
    fn blood_pressure_reads_as_a_pair() {
        let bp = json!({"code":{"text":"Blood pressure"},"component":[
            {"code":{"coding":[{"code":"8480-6","display":"Systolic"}]},"valueQuantity":{"value":120,"unit":"mmHg"}},
            {"code":{"coding":[{"code":"8462-4","display":"Diastolic"}]},"valueQuantity":{"value":80,"unit":"mmHg"}}]});
        assert_eq!(display("Observation", &bp), "Blood pressure: 120/80 mmHg");
        let long = json!({"code":{"text":"BMI"},"valueQuantity":{"value":27.990475293558145,"unit":"kg/m2"}});
        assert_eq!(display("Observation", &long), "BMI: 28 kg/m²");
        let small = json!({"code":{"text":"x"},"valueQuantity":{"value":0.0123456,"unit":"g"}});
        assert_eq!(display("Observation", &small), "x: 0.0123 g");
    }

    #[test]
    fn quantities_read_as_a_clinician_writes_them() {
        let q = |v: Value, unit: &str| {
            let o = json!({"code": {"text": "x"}, "valueQuantity": {"value": v, "unit": unit}});
            display("Observation", &o)
        };
        for (value, unit, shown) in [
            (json!(82.80592677079234), "mm[Hg]", "x: 82.8 mmHg"),
            (json!(24.464880963248874), "kg/m2", "x: 24.5 kg/m²"),
            (json!(1.3394), "{score}", "x: 1.34"),
            (json!(128.4444), "mg/dL", "x: 128 mg/dL"),
            (json!(1234.5678), "mL", "x: 1235 mL"),
            (json!(0.0123456), "g", "x: 0.0123 g"),
            (json!(6.1), "%{HemoglobinA1C}", "x: 6.1%"),
            (json!(5.43), "mmol/L", "x: 5.43 mmol/L"),
            (json!(37.25), "Cel", "x: 37.25 °C"),
            (json!(72), "mL/min/{1.73_m2}", "x: 72 mL/min/1.73 m²"),
            (json!(98.0), "umol/L", "x: 98.0 µmol/L"),
            (json!(7.2), "10*9/L", "x: 7.2 ×10⁹/L"),
            (json!(60), "/min", "x: 60/min"),
            (json!(3), "1", "x: 3"),
        ] {
            assert_eq!(q(value, unit), shown);
        }
    }

    #[test]
    fn drug_names_lose_catalogue_numbers() {
        assert_eq!(
            drug_name("NDA020800 100 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"),
            "100 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"
        );
        assert_eq!(drug_name("Amoxicillin 500 MG"), "Amoxicillin 500 MG");
        assert_eq!(drug_name("NDA020800"), "NDA020800");
        let m = json!({"medicationCodeableConcept":{"text":"ANDA123456 Simvastatin 20 MG"}});
        assert_eq!(display("MedicationRequest", &m), "Simvastatin 20 MG");
    }

    #[test]
    fn status_words_and_dosage() {
        let c = |status: &str| json!({"clinicalStatus": {"coding": [{"code": status}]}});
        assert_eq!(
            status("Condition", &c("active")).as_deref(),
            Some("current")
        );
        assert_eq!(
            status("Condition", &c("resolved")).as_deref(),
            Some("resolved")
        );
        assert_eq!(
            status("AllergyIntolerance", &c("inactive")).as_deref(),
            Some("inactive")
        );
        let refuted = json!({"clinicalStatus": {"coding": [{"code": "active"}]},
            "verificationStatus": {"coding": [{"code": "refuted"}]}});
        assert_eq!(
            status("AllergyIntolerance", &refuted).as_deref(),
            Some("refuted")
        );
        assert_eq!(
            status("MedicationRequest", &json!({"status": "stopped"})).as_deref(),
            Some("stopped")
        );
        assert_eq!(
            status("MedicationRequest", &json!({"status": "active"})).as_deref(),
            Some("current")
        );
        assert_eq!(status("Observation", &json!({"status": "final"})), None);
        let m = json!({"dosageInstruction": [{"text": "1 puff", "asNeededCodeableConcept": {"text": "Wheeze"}}]});
        assert_eq!(dosage(&m).as_deref(), Some("1 puff; as needed for wheeze"));
        let m = json!({"dosage": [{"asNeededBoolean": true}]});
        assert_eq!(dosage(&m).as_deref(), Some("as needed"));
        assert_eq!(dosage(&json!({})), None);
    }

    #[test]
    fn names_medicines_and_fallbacks() {
        let p = json!({"name":[{"given":["Ada","M"],"family":"Lovelace"}]});
        assert_eq!(display("Patient", &p), "Ada M Lovelace");
        let m = json!({"medicationCodeableConcept":{"coding":[{"display":"Amoxicillin 500mg"}]}});
        assert_eq!(display("MedicationRequest", &m), "Amoxicillin 500mg");
        assert_eq!(display("Basic", &json!({})), "Basic");
        let o = json!({"effectivePeriod":{"start":"2020-02-03"}});
        assert_eq!(clinical_date("Observation", &o).unwrap().0, "2020-02-03");
    }
}
