//! The International Patient Summary: a FHIR `document` Bundle built from part of the
//! record, for a clinician who has never seen the person before.
//!
//! The Composition (LOINC 60591-5) carries the three required sections (medications
//! 10160-0, allergies 48765-2, problems 11450-4), each with a readable narrative and an
//! `emptyReason` when there is nothing to list, then the recommended ones the scope
//! allows: immunisations 11369-6, results 30954-2, procedures 47519-4, and vital signs
//! 8716-3. Resources are included as held, with their subject pointing at the
//! Bundle's Patient. The emergency card follows the person's choice of contents
//! ([`crate::prefs::EmergencyCardContents`]): a required section left out stays,
//! empty, with `emptyReason` `withheld`.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use serde_json::{json, Value};

use super::references::Targets;
use crate::error::{Error, Result};
use crate::prefs::EmergencyCardContents;
use crate::readings::uuid_v4;
use crate::record::summary;
use crate::record::Category;
use crate::scope::{self, Scope};
use crate::time::{now_unix, rfc3339};

const LOINC: &str = "http://loinc.org";
/// How far back from the newest result the emergency summary lists results: a year.
const RECENT_RESULTS_S: i64 = 365 * 86_400;
pub use crate::record::patient::NHS_NUMBER;

/// What to put in a summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preset {
    /// Allergies, current medicines, current problems, the latest vital signs, the
    /// latest results of each kind from the year before the newest, and emergency
    /// contacts (from the Patient).
    Emergency,
    /// Medicines and allergies.
    MedsAllergies,
    /// Everything except items with a sensitivity label.
    AllButRestricted,
    /// A scope, as for grants.
    Custom(Scope),
}

impl Preset {
    /// Parse `emergency`, `meds-allergies` or `all-but-restricted`.
    pub fn parse(s: &str) -> Result<Preset> {
        match s {
            "emergency" => Ok(Preset::Emergency),
            "meds-allergies" => Ok(Preset::MedsAllergies),
            "all-but-restricted" => Ok(Preset::AllButRestricted),
            _ => Err(Error::invalid(format!(
                "unknown preset '{s}'; use emergency, meds-allergies or all-but-restricted"
            ))),
        }
    }

    /// The preset's id (`custom` for a scope).
    pub fn as_str(&self) -> &'static str {
        match self {
            Preset::Emergency => "emergency",
            Preset::MedsAllergies => "meds-allergies",
            Preset::AllButRestricted => "all-but-restricted",
            Preset::Custom(_) => "custom",
        }
    }

    fn scope(&self) -> Scope {
        let cats = |c: &[Category]| Scope {
            categories: c.to_vec(),
            ..Scope::default()
        };
        match self {
            Preset::Emergency => cats(&[
                Category::Allergies,
                Category::Medications,
                Category::Conditions,
                Category::VitalSigns,
                Category::TestResults,
            ]),
            Preset::MedsAllergies => cats(&[Category::Medications, Category::Allergies]),
            Preset::AllButRestricted => cats(&Category::ALL),
            Preset::Custom(s) => s.clone(),
        }
    }
}

/// One IPS section.
struct SectionDef {
    code: &'static str,
    title: &'static str,
    required: bool,
}

const ALLERGIES: SectionDef = SectionDef {
    code: "48765-2",
    title: "Allergies and intolerances",
    required: true,
};
const MEDICATIONS: SectionDef = SectionDef {
    code: "10160-0",
    title: "Medication summary",
    required: true,
};
const PROBLEMS: SectionDef = SectionDef {
    code: "11450-4",
    title: "Problem list",
    required: true,
};
const PAST_ILLNESS: SectionDef = SectionDef {
    code: "11348-0",
    title: "History of past illness",
    required: false,
};
const IMMUNISATIONS: SectionDef = SectionDef {
    code: "11369-6",
    title: "Immunisations",
    required: false,
};
const RESULTS: SectionDef = SectionDef {
    code: "30954-2",
    title: "Results",
    required: false,
};
const PROCEDURES: SectionDef = SectionDef {
    code: "47519-4",
    title: "History of procedures",
    required: false,
};
const VITALS: SectionDef = SectionDef {
    code: "8716-3",
    title: "Vital signs",
    required: false,
};
/// Documents (letters, scans): no IPS section holds them, so Carry's own section code
/// names theirs (the IPS leaves its sections open to others).
const DOCUMENTS: SectionDef = SectionDef {
    code: "documents",
    title: "Documents",
    required: false,
};
/// The code system of the documents section's code.
const SECTION_CODES: &str = "https://carry.health/fhir/CodeSystem/summary-section";
/// The most attachment content one summary carries inline (base64 characters): newer
/// documents first; the rest go without their file, saying so. A link's file must stay
/// well within what the endpoint takes (8 MB by default).
const DOCUMENT_BUDGET: usize = 4 << 20;
/// In the order the Composition lists them.
const SECTIONS: [&SectionDef; 9] = [
    &ALLERGIES,
    &MEDICATIONS,
    &PROBLEMS,
    &PAST_ILLNESS,
    &IMMUNISATIONS,
    &RESULTS,
    &PROCEDURES,
    &VITALS,
    &DOCUMENTS,
];

/// Every resource type some section holds.
const SECTION_TYPES: [&str; 9] = [
    "AllergyIntolerance",
    "MedicationStatement",
    "MedicationRequest",
    "Condition",
    "Immunization",
    "Procedure",
    "Observation",
    "DiagnosticReport",
    "DocumentReference",
];

/// The section a resource belongs in, if any.
fn section_of(rtype: &str, category: &str) -> Option<&'static SectionDef> {
    match (rtype, category) {
        ("AllergyIntolerance", _) => Some(&ALLERGIES),
        ("MedicationStatement" | "MedicationRequest", _) => Some(&MEDICATIONS),
        ("Condition", _) => Some(&PROBLEMS),
        ("Immunization", _) => Some(&IMMUNISATIONS),
        ("Procedure", _) => Some(&PROCEDURES),
        ("Observation", "vital-signs") => Some(&VITALS),
        ("Observation" | "DiagnosticReport", "test-results") => Some(&RESULTS),
        ("DocumentReference", _) => Some(&DOCUMENTS),
        _ => None,
    }
}

fn is_current(rtype: &str, r: &Value) -> bool {
    let code = |p: &str| {
        r.pointer(p)
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_default()
    };
    match rtype {
        "Condition" => {
            let c = code("/clinicalStatus/coding/0/code");
            c.is_empty() || matches!(c.as_str(), "active" | "recurrence" | "relapse")
        }
        "MedicationRequest" => matches!(code("/status").as_str(), "active" | "on-hold" | ""),
        "MedicationStatement" => matches!(code("/status").as_str(), "active" | "intended" | ""),
        "AllergyIntolerance" => {
            let c = code("/clinicalStatus/coding/0/code");
            c.is_empty() || c == "active"
        }
        _ => true,
    }
}

/// One line of a section, as the narrative and a reader show it: the display, how a
/// medicine is taken, the status word (for a medicine always, otherwise when it is not
/// current), a result's interpretation and reference range, who entered it when that
/// was the patient or a carer (`entered_by` is `self` or `carer`), and the date at the
/// precision it carries.
fn entry_line(rtype: &str, r: &Value, entered_by: &str) -> String {
    let mut d = summary::display(rtype, r);
    if let Some(how) = summary::dosage(r) {
        d = format!("{d}: {how}");
    }
    let mut notes: Vec<String> = summary::status(rtype, r)
        .filter(|s| s != "current" || rtype.starts_with("Medication"))
        .into_iter()
        .collect();
    if rtype == "Observation" {
        notes.extend(summary::interpretation(r));
        if let Some(range) = summary::reference_range(r) {
            notes.push(format!("normal range {range}"));
        }
    }
    match entered_by {
        "self" => notes.push("entered by the patient".into()),
        "carer" => notes.push(match carer_name(r) {
            Some(name) => format!("entered by {name}, a carer"),
            None => "entered by a carer".into(),
        }),
        _ => {}
    }
    if let Some((date, _)) = summary::clinical_date(rtype, r) {
        notes.push(date.get(..10).unwrap_or(&date).to_string());
    }
    if rtype == "DocumentReference" {
        notes.extend(file_note(r));
    }
    if notes.is_empty() {
        d
    } else {
        format!("{d} ({})", notes.join(", "))
    }
}

/// Who entered a received item, as the vault's `entered_by` says it: as its
/// entered-by tag says; else `carer` when its performer is named by a Carry signing
/// key, `self` when its performer is its subject, and `provider` otherwise.
fn entered_by_in(r: &Value) -> &'static str {
    let tagged = r
        .pointer("/meta/tag")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|t| t["system"] == crate::record::ENTERED_BY_SYSTEM)
        .and_then(|t| t["code"].as_str());
    match tagged {
        Some("patient") => return "self",
        Some("carer") => return "carer",
        _ => {}
    }
    let Some(p) = r.pointer("/performer/0") else {
        return "provider";
    };
    if p.pointer("/identifier/system").and_then(Value::as_str) == Some(crate::record::KEY_SYSTEM) {
        return "carer";
    }
    let subject = r.pointer("/subject/reference").and_then(Value::as_str);
    if subject.is_some() && p["reference"].as_str() == subject {
        "self"
    } else {
        "provider"
    }
}

/// The name a carer's entry gives its carer: its performer named by a signing key.
fn carer_name(r: &Value) -> Option<String> {
    r["performer"]
        .as_array()?
        .iter()
        .filter(|p| {
            p.pointer("/identifier/system").and_then(Value::as_str)
                == Some(crate::record::KEY_SYSTEM)
        })
        .filter_map(|p| p["display"].as_str())
        .map(|n| n.trim().to_string())
        .find(|n| !n.is_empty())
}

/// A medicine line whose statement names its drug only by reference
/// (`medicationReference`, as UK Core and GP Connect write them): the referenced
/// Medication's name, found by `lookup`, in place of the bare resource type.
fn named_medicine(
    line: String,
    rtype: &str,
    r: &Value,
    lookup: impl Fn(&str) -> Option<String>,
) -> String {
    if !line.starts_with(rtype) || r.pointer("/medicationReference/display").is_some() {
        return line;
    }
    match r
        .pointer("/medicationReference/reference")
        .and_then(Value::as_str)
        .and_then(lookup)
    {
        Some(name) if name != "Medication" => line.replacen(rtype, &name, 1),
        _ => line,
    }
}

/// A built summary.
#[derive(Debug, Clone)]
pub struct Built {
    /// The document Bundle.
    pub bundle: Value,
    /// How many clinical resources it holds (not counting the Patient, the
    /// Composition and the authoring Device).
    pub resources: usize,
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn narrative(lines: &[String], empty: &str) -> Value {
    let body = if lines.is_empty() {
        format!("<p>{}</p>", xml_escape(empty))
    } else {
        format!(
            "<ul>{}</ul>",
            lines
                .iter()
                .map(|l| format!("<li>{}</li>", xml_escape(l)))
                .collect::<String>()
        )
    };
    json!({
        "status": "generated",
        "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{body}</div>")
    })
}

/// Build the summary of the record `conn` holds, for `preset`.
#[cfg(test)]
pub(crate) fn build(conn: &Connection, preset: &Preset, author_name: &str) -> Result<Built> {
    build_with(conn, preset, author_name, None)
}

/// Build the summary of the record `conn` holds, for `preset`, with the emergency
/// card's `card` contents when given (the emergency card's summary): a required
/// section left out is kept, empty, with `emptyReason` `withheld`; vital signs left
/// out are not listed; contacts left out are taken off the Patient.
pub(crate) fn build_with(
    conn: &Connection,
    preset: &Preset,
    author_name: &str,
    card: Option<&EmergencyCardContents>,
) -> Result<Built> {
    let withheld = |code: &str| -> bool {
        card.is_some_and(|c| {
            [
                (&ALLERGIES, c.allergies),
                (&MEDICATIONS, c.medications),
                (&PROBLEMS, c.problems),
                (&PAST_ILLNESS, c.problems),
                (&VITALS, c.vital_signs),
                (&RESULTS, c.results),
            ]
            .iter()
            .any(|(def, included)| def.code == code && !included)
        })
    };
    let scope = preset.scope();
    let mut scope_all = scope.clone();
    if matches!(preset, Preset::AllButRestricted) {
        scope_all.include_labels.clear();
    }
    // Only the types a section can hold: encounters, claims and the like never
    // reach the summary, so they are not read at all.
    if scope_all.resource_types.is_empty() {
        scope_all.resource_types = SECTION_TYPES.iter().map(|t| t.to_string()).collect();
    } else {
        scope_all
            .resource_types
            .retain(|t| SECTION_TYPES.contains(&t.as_str()));
        if scope_all.resource_types.is_empty() {
            scope_all.resource_types.push("none".into());
        }
    }
    let ids: Vec<i64> = scope::ids(conn, &scope_all)?;
    let list = serde_json::to_string(&ids)?;
    let mut stmt = conn.prepare(
        "SELECT r.id, r.rtype, r.category, s.name, r.json, r.rid, r.full_url, r.entered_by
         FROM resources r
         JOIN sources s ON s.id = r.source_id
         WHERE r.id IN (SELECT value FROM json_each(?1)) ORDER BY r.date_sort DESC, r.id DESC",
    )?;
    type Row = (
        i64,
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        String,
    );
    let rows: Vec<Row> = stmt
        .query_map([list], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut targets = Targets::default();
    let emergency = matches!(preset, Preset::Emergency);
    // With no current allergy, the inactive and resolved ones are shown, marked: a
    // clinician must not read an empty section as "no allergies".
    let any_current_allergy = rows.iter().any(|row| {
        row.1 == "AllergyIntolerance"
            && serde_json::from_str::<Value>(&row.4).is_ok_and(|r| is_current(&row.1, &r))
    });
    let mut allergies_not_current = 0usize;

    let patient_url = format!("urn:uuid:{}", uuid_v4()?);
    let device_url = format!("urn:uuid:{}", uuid_v4()?);
    let mut entries: Vec<Value> = Vec::new();
    let mut per_section: BTreeMap<&'static str, (Vec<String>, Vec<String>)> = BTreeMap::new();
    let mut latest_vital: HashMap<String, ()> = HashMap::new();
    let mut medications: HashMap<String, Value> = HashMap::new();
    let recorded = crate::time::rfc3339(crate::time::now_unix());
    let mut provenance: Vec<Value> = Vec::new();
    let mut newest_result: Option<i64> = None;
    let mut document_room = DOCUMENT_BUDGET;
    for (id, rtype, category, source, text, rid, full_url, entered_by) in &rows {
        let Some(section) = section_of(rtype, category) else {
            continue;
        };
        let mut r: Value = serde_json::from_str(text)
            .map_err(|e| Error::internal(format!("a stored resource: {e}")))?;
        // Resolved and inactive problems go apart, under the history of past illness.
        let section = if section.code == PROBLEMS.code && !is_current(rtype, &r) {
            &PAST_ILLNESS
        } else {
            section
        };
        if withheld(section.code) {
            continue;
        }
        if emergency && section.code == RESULTS.code {
            // Recent results: observations (not whole reports) from the year before
            // the newest one, the latest of each kind.
            let at = summary::clinical_date(rtype, &r).map(|(_, s)| s);
            let newest = *newest_result.get_or_insert(at.unwrap_or(i64::MIN));
            if rtype != "Observation"
                || at.is_none_or(|at| at < newest.saturating_sub(RECENT_RESULTS_S))
            {
                continue;
            }
        }
        if emergency {
            if !is_current(rtype, &r) {
                if rtype != "AllergyIntolerance" || any_current_allergy {
                    continue;
                }
                allergies_not_current += 1;
            }
            if section.code == VITALS.code || section.code == RESULTS.code {
                // The latest reading of each kind only (rows come newest first).
                let kind = format!(
                    "{} {}",
                    section.code,
                    r.pointer("/code/coding/0/code")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                );
                if latest_vital.insert(kind, ()).is_some() {
                    continue;
                }
            }
        }
        // An item the patient or a carer entered says so, for any reader.
        let tag = match entered_by.as_str() {
            "self" => Some(("patient", "Entered by the patient")),
            "carer" => Some(("carer", "Entered by a carer")),
            _ => None,
        };
        if let (Some((code, display)), Some(o)) = (tag, r.as_object_mut()) {
            let meta = o.entry("meta").or_insert_with(|| json!({}));
            if let Some(meta) = meta.as_object_mut() {
                let tags = meta.entry("tag").or_insert_with(|| json!([]));
                if let Some(tags) = tags.as_array_mut() {
                    tags.push(json!({
                        "system": crate::record::ENTERED_BY_SYSTEM,
                        "code": code,
                        "display": display
                    }));
                }
            }
        }
        let field = if matches!(rtype.as_str(), "AllergyIntolerance" | "Immunization") {
            "patient"
        } else {
            "subject"
        };
        if let Some(o) = r.as_object_mut() {
            o.insert(field.into(), json!({ "reference": patient_url }));
        }
        if let Some(reference) = r
            .pointer("/medicationReference/reference")
            .and_then(Value::as_str)
        {
            medications.insert(reference.to_string(), Value::Null);
        }
        if rtype == "DocumentReference" {
            fit_documents(&mut r, &mut document_room);
        }
        let line = named_medicine(entry_line(rtype, &r, entered_by), rtype, &r, |reference| {
            held_medication(conn, reference)
                .ok()
                .flatten()
                .map(|(_, _, m)| summary::display("Medication", &m))
        });
        let url = format!("urn:uuid:{}", uuid_v4()?);
        targets.add(rtype, rid.as_deref(), full_url.as_deref(), &url);
        let slot = per_section.entry(section.code).or_default();
        slot.0.push(line);
        slot.1.push(url.clone());
        entries.push(json!({ "fullUrl": url, "resource": r }));
        // One copy of a fact goes; a Provenance names every source that holds it.
        let others = scope::other_sources(conn, *id, source)?;
        if !others.is_empty() {
            let agents: Vec<Value> = std::iter::once(source)
                .chain(others.iter())
                .map(|name| {
                    json!({
                        "type": { "coding": [{
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "author", "display": "Author"
                        }]},
                        "who": { "display": name }
                    })
                })
                .collect();
            let pid = uuid_v4()?;
            provenance.push(json!({
                "fullUrl": format!("urn:uuid:{pid}"),
                "resource": {
                    "resourceType": "Provenance",
                    "id": pid,
                    "target": [{ "reference": url }],
                    "recorded": recorded,
                    "agent": agents
                }
            }));
        }
    }
    let resources = entries.len();
    // Medications the included statements point at, as entries of their own.
    for (reference, _) in medications {
        if targets.resolve(&reference).is_some() {
            continue;
        }
        if let Some((rid, full_url, m)) = held_medication(conn, &reference)? {
            let url = format!("urn:uuid:{}", uuid_v4()?);
            targets.add("Medication", rid.as_deref(), full_url.as_deref(), &url);
            targets.add("Medication", None, Some(&reference), &url);
            entries.push(json!({ "fullUrl": url, "resource": m }));
        }
    }

    let mut patient = self_patient(conn, author_name)?;
    if card.is_some_and(|c| !c.contacts) {
        if let Some(o) = patient.as_object_mut() {
            o.remove("contact");
        }
    } else {
        // The contacts the person added come first, where a reader looks.
        let mut contacts = crate::contacts::as_patient_contacts(conn)?;
        if !contacts.is_empty() {
            contacts.extend(patient["contact"].as_array().cloned().unwrap_or_default());
            patient["contact"] = Value::Array(contacts);
        }
    }
    // The entries' subject was set to the Patient's entry already: that resolves too.
    targets.add(
        "Patient",
        patient["id"].as_str(),
        Some(&patient_url),
        &patient_url,
    );
    // Every reference inside the document resolves inside it.
    targets.rewrite(&mut patient);
    for e in &mut entries {
        targets.rewrite(&mut e["resource"]);
    }
    let now = rfc3339(now_unix());
    let mut sections = Vec::new();
    for def in SECTIONS {
        let (mut lines, urls) = per_section.remove(def.code).unwrap_or_default();
        if def.code == ALLERGIES.code && allergies_not_current > 0 {
            lines.insert(
                0,
                format!(
                    "No current allergies or intolerances recorded; {allergies_not_current} \
                     no longer current, listed below."
                ),
            );
        }
        if urls.is_empty() && !def.required {
            continue;
        }
        if withheld(def.code) {
            // Required, so kept: empty, saying it was left out on purpose.
            sections.push(json!({
                "title": def.title,
                "code": {"coding": [{"system": def.system(), "code": def.code, "display": def.title}]},
                "text": narrative(&[], &format!(
                    "{} left out of this summary by the patient.", def.title
                )),
                "emptyReason": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/list-empty-reason",
                    "code": "withheld", "display": "Information Withheld"
                }]},
            }));
            continue;
        }
        let mut s = json!({
            "title": def.title,
            "code": {"coding": [{"system": def.system(), "code": def.code, "display": def.title}]},
            "text": narrative(&lines, &format!("No information about {}.", def.title.to_lowercase())),
        });
        if urls.is_empty() {
            // No information, which is not "none known": the record holds nothing.
            s["emptyReason"] = json!({"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/list-empty-reason",
                "code": "unavailable", "display": "Unavailable"
            }], "text": "No information available"});
        } else {
            s["entry"] = urls.iter().map(|u| json!({ "reference": u })).collect();
        }
        sections.push(s);
    }
    let composition = json!({
        "resourceType": "Composition",
        "id": uuid_v4()?,
        "status": "final",
        "type": {"coding": [{"system": LOINC, "code": "60591-5", "display": "Patient summary Document"}]},
        "subject": {"reference": patient_url},
        "date": now,
        "author": [{"reference": device_url, "display": format!("Carry, for {author_name}")}],
        "title": format!("Patient summary: {}", preset_title(preset)),
        "confidentiality": "N",
        "section": sections,
    });
    let device = json!({
        "resourceType": "Device",
        "id": uuid_v4()?,
        "deviceName": [{"name": "Carry", "type": "user-friendly-name"}],
        "owner": {"display": author_name},
    });
    let mut all = vec![
        json!({"fullUrl": format!("urn:uuid:{}", composition["id"].as_str().unwrap_or("")), "resource": composition}),
        json!({"fullUrl": patient_url, "resource": patient}),
        json!({"fullUrl": device_url, "resource": device}),
    ];
    all.extend(entries);
    all.extend(provenance);
    let id = uuid_v4()?;
    let bundle = json!({
        "resourceType": "Bundle",
        "id": id,
        "identifier": {"system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{id}")},
        "type": "document",
        "timestamp": now,
        "entry": all,
    });
    Ok(Built { bundle, resources })
}

impl SectionDef {
    /// The code system of the section's code: LOINC, but for the documents section.
    fn system(&self) -> &'static str {
        if self.code == DOCUMENTS.code {
            SECTION_CODES
        } else {
            LOINC
        }
    }
}

/// What a reader is told of a document's file when it does not come with the
/// document: kept by the provider (at an address), or left out of this summary.
fn file_note(doc: &Value) -> Option<String> {
    let attachments: Vec<&Value> = doc["content"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| &c["attachment"])
        .collect();
    if attachments.iter().any(|a| a.get("data").is_some()) {
        return None;
    }
    if attachments.iter().any(|a| a.get("url").is_some()) {
        return Some("the file is kept by the provider".into());
    }
    attachments
        .iter()
        .any(|a| a.get("size").is_some())
        .then(|| "the file is too large for this summary: ask the patient for it".into())
}

/// Keep the files of `doc` (a DocumentReference) inline while they fit in `room`
/// (what is left of the summary's budget, reduced by what they take); otherwise drop
/// their `data`, keeping type, size, hash and title.
fn fit_documents(doc: &mut Value, room: &mut usize) {
    let size: usize = doc["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["attachment"]["data"].as_str())
        .map(str::len)
        .sum();
    if size <= *room {
        *room -= size;
        return;
    }
    for c in doc["content"].as_array_mut().into_iter().flatten() {
        if let Some(a) = c["attachment"].as_object_mut() {
            a.remove("data");
        }
    }
}

fn preset_title(p: &Preset) -> &'static str {
    match p {
        Preset::Emergency => "emergency",
        Preset::MedsAllergies => "medicines and allergies",
        Preset::AllButRestricted => "everything except restricted",
        Preset::Custom(_) => "chosen by the patient",
    }
}

/// The Patient the record is about, or a minimal one with the profile's name.
/// A resource as held: its id, the full URL it was fetched under, and its JSON.
type Held = (Option<String>, Option<String>, Value);

/// The Medication a `medicationReference` names, as held: by the full URL it was held
/// under, or by its type and id.
fn held_medication(conn: &Connection, reference: &str) -> Result<Option<Held>> {
    let id = reference
        .rsplit_once("Medication/")
        .map(|(_, id)| id.split('/').next().unwrap_or(id));
    let found: Option<(Option<String>, Option<String>, String)> = conn
        .query_row(
            "SELECT rid, full_url, json FROM resources WHERE rtype = 'Medication'
             AND (full_url = ?1 OR rid = ?2) ORDER BY full_url = ?1 DESC, id LIMIT 1",
            rusqlite::params![reference, id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(found.and_then(|(rid, full_url, text)| {
        serde_json::from_str::<Value>(&text)
            .ok()
            .map(|m| (rid, full_url, m))
    }))
}

fn self_patient(conn: &Connection, name: &str) -> Result<Value> {
    let text: Option<String> = conn
        .query_row(
            "SELECT r.json FROM meta m JOIN resources r ON r.id = CAST(m.value AS INTEGER)
             WHERE m.key = 'self_patient'",
            [],
            |r| r.get(0),
        )
        .ok();
    match text.and_then(|t| serde_json::from_str::<Value>(&t).ok()) {
        Some(p) => Ok(p),
        None => Ok(json!({
            "resourceType": "Patient",
            "id": uuid_v4()?,
            "name": [{"text": name}],
        })),
    }
}

/// A summary as a clinician reads it: who, when, and each section's lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The patient's name.
    pub name: Option<String>,
    /// Their date of birth.
    pub birth_date: Option<String>,
    /// Their NHS number, where present.
    pub nhs_number: Option<String>,
    /// Their age in whole years when the summary was made.
    pub age: Option<u32>,
    /// Their preferred language.
    pub language: Option<String>,
    /// Whether the record says an interpreter is needed.
    pub interpreter_needed: bool,
    /// Their GP practice, as the record names it.
    pub gp_practice: Option<String>,
    /// The people to contact: name, relationship, telephone, a line each.
    pub contacts: Vec<String>,
    /// When the summary was made.
    pub made_at: Option<String>,
    /// The sections, in the document's order.
    pub sections: Vec<SummarySection>,
}

/// One section of a [`Summary`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SummarySection {
    /// Its LOINC code.
    pub code: String,
    /// Its title.
    pub title: String,
    /// One line per entry (or none, when empty).
    pub lines: Vec<String>,
    /// Whether the section is empty because the patient left it out (its
    /// `emptyReason` is `withheld`), not because there is nothing to list.
    pub withheld: bool,
}

/// Read an IPS document Bundle (ours or anyone's) into a [`Summary`].
pub fn summarise(bundle: &Value) -> Result<Summary> {
    if bundle["resourceType"] != "Bundle" || bundle["type"] != "document" {
        return Err(Error::invalid("not a FHIR document Bundle"));
    }
    let entries = bundle["entry"]
        .as_array()
        .ok_or_else(|| Error::invalid("the document has no entries"))?;
    let by_url: HashMap<&str, &Value> = entries
        .iter()
        .filter_map(|e| Some((e["fullUrl"].as_str()?, &e["resource"])))
        .collect();
    let composition = entries
        .first()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == "Composition")
        .ok_or_else(|| Error::invalid("a document starts with a Composition"))?;
    let find = |reference: &str| -> Option<&Value> {
        by_url.get(reference).copied().or_else(|| {
            // `Type/id` references resolve against the entries' own ids.
            let (t, id) = reference.rsplit_once('/')?;
            entries
                .iter()
                .map(|e| &e["resource"])
                .find(|r| r["resourceType"] == t.rsplit('/').next().unwrap_or(t) && r["id"] == id)
        })
    };
    let patient = composition["subject"]["reference"]
        .as_str()
        .and_then(find)
        .or_else(|| {
            entries
                .iter()
                .map(|e| &e["resource"])
                .find(|r| r["resourceType"] == "Patient")
        });
    let name = patient.map(|p| summary::display("Patient", p));
    let birth_date = patient.and_then(|p| p["birthDate"].as_str().map(str::to_string));
    let made_on = composition["date"]
        .as_str()
        .and_then(|d| d.get(..10))
        .map_or_else(|| rfc3339(now_unix())[..10].to_string(), str::to_string);
    let header = patient
        .map(|p| crate::record::patient::header(p, &made_on))
        .unwrap_or_default();
    let mut sections = Vec::new();
    for s in composition["section"].as_array().into_iter().flatten() {
        let code = s
            .pointer("/code/coding/0/code")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let title = s["title"].as_str().unwrap_or(&code).to_string();
        let lines = s["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["reference"].as_str().and_then(find))
            .map(|r| {
                let rtype = r["resourceType"].as_str().unwrap_or("");
                named_medicine(
                    entry_line(rtype, r, entered_by_in(r)),
                    rtype,
                    r,
                    |reference| find(reference).map(|m| summary::display("Medication", m)),
                )
            })
            .collect();
        let withheld = s["emptyReason"]["coding"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["code"] == "withheld");
        sections.push(SummarySection {
            code,
            title,
            lines,
            withheld,
        });
    }
    Ok(Summary {
        name,
        birth_date,
        nhs_number: header.nhs_number,
        age: header.age,
        language: header.language,
        interpreter_needed: header.interpreter_needed,
        gp_practice: header.gp_practice,
        contacts: header.contacts,
        made_at: composition["date"].as_str().map(str::to_string),
        sections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::ImportOptions;
    use crate::keys::PassphraseKeyStore;
    use crate::profile::Profile;

    fn shared(p: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/fhir")
            .join(p)
    }

    fn profile_with(dir: &std::path::Path, files: &[&str]) -> Profile {
        let ks = PassphraseKeyStore::new("a test passphrase").unwrap();
        let p = Profile::create(dir, "Jene Cummings", &ks).unwrap();
        for f in files {
            p.import_file(&shared(f), ImportOptions::default()).unwrap();
        }
        p
    }

    fn codes(bundle: &Value) -> Vec<String> {
        bundle["entry"][0]["resource"]["section"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["code"]["coding"][0]["code"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_fact_two_sources_sent_goes_once_with_a_provenance_naming_both() {
        let d = tempfile::tempdir().unwrap();
        let p = profile_with(d.path(), &[]);
        let mine = p
            .add_reading(
                &crate::readings::Reading::parse("bp", "131/84").unwrap(),
                None,
            )
            .unwrap();
        let copy: Value = serde_json::from_str(&p.show(mine.id).unwrap().json).unwrap();
        let bundle = json!({
            "resourceType": "Bundle", "type": "collection",
            "entry": [{ "fullUrl": "https://gp.example/fhir/Observation/b1", "resource": copy }]
        });
        let file = d.path().join("gp.json");
        std::fs::write(&file, bundle.to_string()).unwrap();
        p.import_file(&file, ImportOptions::default()).unwrap();
        let built = p
            .vault()
            .read(|c| build(c, &Preset::AllButRestricted, "Jene"))
            .unwrap();
        let entries = built.bundle["entry"].as_array().unwrap();
        let readings: Vec<&Value> = entries
            .iter()
            .filter(|e| e["resource"]["resourceType"] == "Observation")
            .collect();
        assert_eq!(readings.len(), 1, "one copy of the fact");
        let provenance: Vec<&Value> = entries
            .iter()
            .filter(|e| e["resource"]["resourceType"] == "Provenance")
            .collect();
        assert_eq!(provenance.len(), 1);
        let p0 = &provenance[0]["resource"];
        assert_eq!(p0["target"][0]["reference"], readings[0]["fullUrl"]);
        let names: Vec<&str> = p0["agent"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["who"]["display"].as_str().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(
            names.contains(&"self") && names.contains(&"gp.json"),
            "{names:?}"
        );
    }

    #[test]
    fn the_summary_has_the_required_sections_and_resolving_entries() {
        let d = tempfile::tempdir().unwrap();
        let p = profile_with(
            d.path(),
            &["synthea/sotf-Jene_Cummings_8a2bb726-2f79-4940-a134-a374eef39af7.json"],
        );
        for preset in [
            Preset::Emergency,
            Preset::MedsAllergies,
            Preset::AllButRestricted,
        ] {
            let built = p.vault().read(|c| build(c, &preset, "Jene")).unwrap();
            let b = &built.bundle;
            assert_eq!(b["type"], "document");
            let c = codes(b);
            for required in ["48765-2", "10160-0", "11450-4"] {
                assert!(c.contains(&required.to_string()), "{preset:?}: {required}");
            }
            let urls: std::collections::HashSet<&str> = b["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["fullUrl"].as_str().unwrap())
                .collect();
            for s in b["entry"][0]["resource"]["section"].as_array().unwrap() {
                let entries = s["entry"].as_array().map_or(0, Vec::len);
                assert!((entries > 0) != s.get("emptyReason").is_some(), "{s}");
                assert!(s["text"]["div"].as_str().unwrap().starts_with("<div xmlns"));
                for e in s["entry"].as_array().into_iter().flatten() {
                    assert!(urls.contains(e["reference"].as_str().unwrap()));
                }
            }
            let summary = summarise(b).unwrap();
            assert_eq!(summary.sections.len(), c.len());
            if preset == Preset::MedsAllergies {
                assert_eq!(c, ["48765-2", "10160-0", "11450-4"]);
                assert!(
                    summary.sections[2].lines.is_empty(),
                    "problems are not in this preset"
                );
            }
        }
        // Emergency: the latest reading of each vital sign only.
        let e = p
            .vault()
            .read(|c| build(c, &Preset::Emergency, "Jene"))
            .unwrap();
        let all = p
            .vault()
            .read(|c| build(c, &Preset::AllButRestricted, "Jene"))
            .unwrap();
        let vitals = |b: &Value| {
            summarise(b)
                .unwrap()
                .sections
                .into_iter()
                .find(|s| s.code == "8716-3")
                .map_or(0, |s| s.lines.len())
        };
        assert!(vitals(&e.bundle) > 0 && vitals(&e.bundle) < vitals(&all.bundle));
    }

    #[test]
    fn an_empty_record_gives_explicit_absences_and_narratives_are_escaped() {
        let d = tempfile::tempdir().unwrap();
        let p = profile_with(d.path(), &[]);
        let built = p
            .vault()
            .read(|c| build(c, &Preset::Emergency, "A <b>name</b>"))
            .unwrap();
        let sections = built.bundle["entry"][0]["resource"]["section"]
            .as_array()
            .unwrap();
        assert_eq!(sections.len(), 3);
        for s in sections {
            assert!(s.get("emptyReason").is_some());
            assert!(s["text"]["div"]
                .as_str()
                .unwrap()
                .contains("No information"));
        }
        assert_eq!(built.resources, 0);
        let author = built.bundle["entry"][0]["resource"]["author"][0]["display"]
            .as_str()
            .unwrap();
        assert!(
            author.contains("A <b>name</b>"),
            "a JSON string, not markup"
        );
        assert!(!xml_escape("<script>").contains('<'));
    }

    /// The allergies section of a built summary: its entries and its narrative.
    fn allergies(built: &Built) -> (usize, String, Option<String>) {
        let s = built.bundle["entry"][0]["resource"]["section"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["code"]["coding"][0]["code"] == ALLERGIES.code)
            .unwrap()
            .clone();
        (
            s["entry"].as_array().map_or(0, Vec::len),
            s["text"]["div"].as_str().unwrap().to_string(),
            s["emptyReason"]["text"].as_str().map(str::to_string),
        )
    }

    /// A statement that names its drug only by reference reads as the drug, in the
    /// narrative and to a reader, and the Medication comes with it.
    #[test]
    fn a_medicine_named_by_reference_reads_as_its_drug() {
        let d = tempfile::tempdir().unwrap();
        let p = profile_with(d.path(), &[]);
        let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"fullUrl": "https://gp.example/fhir/Medication/m1", "resource": {
                "resourceType": "Medication", "id": "m1",
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "320000009",
                                     "display": "Atorvastatin 20mg tablets"}]}}},
            {"fullUrl": "https://gp.example/fhir/MedicationRequest/r1", "resource": {
                "resourceType": "MedicationRequest", "id": "r1", "status": "active",
                "intent": "order", "subject": {"reference": "Patient/p"},
                "medicationReference": {"reference": "Medication/m1"},
                "authoredOn": "2026-01-05",
                "dosageInstruction": [{"text": "One at night"}]}}]});
        let file = d.path().join("gp.json");
        std::fs::write(&file, bundle.to_string()).unwrap();
        p.import_file(&file, ImportOptions::default()).unwrap();
        let built = p
            .vault()
            .read(|c| build(c, &Preset::MedsAllergies, "Jene"))
            .unwrap();
        let text = built.bundle.to_string();
        assert!(
            text.contains("Atorvastatin 20mg tablets: One at night (current, 2026-01-05)"),
            "{text}"
        );
        let read = summarise(&built.bundle).unwrap();
        let meds = read
            .sections
            .iter()
            .find(|s| s.code == MEDICATIONS.code)
            .unwrap();
        assert_eq!(
            meds.lines,
            ["Atorvastatin 20mg tablets: One at night (current, 2026-01-05)"]
        );
    }

    #[test]
    fn a_carers_entry_names_its_carer_by_the_vault_and_by_its_tag() {
        let obs = json!({
            "resourceType": "Observation", "status": "final", "code": {"text": "Pulse"},
            "subject": {"reference": "urn:uuid:p"},
            "effectiveDateTime": "2026-11-30",
            "valueQuantity": {"value": 64, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
            "performer": [{"display": "Sam", "identifier": {"system": crate::record::KEY_SYSTEM, "value": "k"}}]
        });
        let line = entry_line("Observation", &obs, "carer");
        assert_eq!(line, "Pulse: 64/min (entered by Sam, a carer, 2026-11-30)");
        assert_eq!(entered_by_in(&obs), "carer");
        // A name alone says nothing; the tag a summary adds does.
        let mut plain = obs.clone();
        plain["performer"] = json!([{"display": "Jene"}]);
        assert_eq!(entered_by_in(&plain), "provider");
        plain["meta"] =
            json!({"tag": [{"system": crate::record::ENTERED_BY_SYSTEM, "code": "patient"}]});
        assert_eq!(entered_by_in(&plain), "self");
        assert_eq!(
            entry_line("Observation", &plain, entered_by_in(&plain)),
            "Pulse: 64/min (entered by the patient, 2026-11-30)"
        );
    }

    #[test]
    fn results_say_their_range_and_reading_who_entered_what_and_past_problems_go_apart() {
        let d = tempfile::tempdir().unwrap();
        let p = profile_with(d.path(), &[]);
        let lab = |id: &str, code: &str, name: &str, value: f64, unit: &str, at: &str| {
            json!({ "fullUrl": format!("https://lab.example/fhir/Observation/{id}"), "resource": {
                "resourceType": "Observation", "id": id, "status": "final",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": name}]},
                "subject": {"reference": "Patient/p1"}, "effectiveDateTime": at,
                "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
                "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "H"}]}],
                "referenceRange": [{"low": {"value": 4.0, "unit": unit}, "high": {"value": 5.9, "unit": unit}}]
            }})
        };
        let condition = |id: &str, name: &str, status: &str| {
            json!({ "fullUrl": format!("https://gp.example/fhir/Condition/{id}"), "resource": {
                "resourceType": "Condition", "id": id,
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": status}]},
                "code": {"text": name}, "subject": {"reference": "Patient/p1"},
                "onsetDateTime": "2010-05-01"
            }})
        };
        let bundle = json!({ "resourceType": "Bundle", "type": "collection", "entry": [
            lab("a1", "4548-4", "Hemoglobin A1c", 6.1, "%", "2024-03-01"),
            lab("a0", "4548-4", "Hemoglobin A1c", 7.0, "%", "2023-09-01"),
            lab("g0", "2339-0", "Glucose", 5.2, "mmol/L", "2022-01-01"),
            condition("c1", "Asthma", "active"),
            condition("c2", "Appendicitis", "resolved"),
        ]});
        let file = d.path().join("gp.json");
        std::fs::write(&file, bundle.to_string()).unwrap();
        p.import_file(&file, ImportOptions::default()).unwrap();
        p.add_reading(
            &crate::readings::Reading::parse("weight", "72.5kg").unwrap(),
            None,
        )
        .unwrap();
        let lines = |preset: &Preset, code: &str| -> Vec<String> {
            let built = p.vault().read(|c| build(c, preset, "Jene")).unwrap();
            summarise(&built.bundle)
                .unwrap()
                .sections
                .into_iter()
                .find(|s| s.code == code)
                .map(|s| s.lines)
                .unwrap_or_default()
        };

        // Every result, with its interpretation and range, in the long summary.
        let all = lines(&Preset::AllButRestricted, "30954-2");
        assert_eq!(all.len(), 3, "{all:?}");
        assert!(
            all[0].contains("6.1%")
                && all[0].contains("high")
                && all[0].contains("normal range 4.0–5.9"),
            "{all:?}"
        );
        // The emergency summary: the latest of each kind, from the year before the newest.
        let recent = lines(&Preset::Emergency, "30954-2");
        assert_eq!(recent.len(), 1, "{recent:?}");
        assert!(recent[0].contains("6.1%"), "{recent:?}");

        // A reading the patient took is marked as theirs, in the narrative too.
        let vitals = lines(&Preset::Emergency, "8716-3");
        assert!(
            vitals.iter().any(|l| l.contains("entered by the patient")),
            "{vitals:?}"
        );
        let built = p
            .vault()
            .read(|c| build(c, &Preset::Emergency, "Jene"))
            .unwrap();
        assert!(built.bundle.to_string().contains("entered by the patient"));

        // Resolved problems are apart, under the history of past illness.
        let problems = lines(&Preset::AllButRestricted, "11450-4");
        let past = lines(&Preset::AllButRestricted, "11348-0");
        assert!(
            problems.iter().any(|l| l.contains("Asthma")),
            "{problems:?}"
        );
        assert!(
            !problems.iter().any(|l| l.contains("Appendicitis")),
            "{problems:?}"
        );
        assert!(
            past.iter()
                .any(|l| l.contains("Appendicitis") && l.contains("resolved")),
            "{past:?}"
        );
        assert!(lines(&Preset::Emergency, "11348-0").is_empty());
    }

    /// The three cases a clinician must tell apart: no information, none known, and
    /// none current (only inactive ones, which are shown, marked).
    #[test]
    fn allergies_say_which_of_no_information_none_known_and_none_current_holds() {
        let emergency = |files: &[&str]| {
            let d = tempfile::tempdir().unwrap();
            let p = profile_with(d.path(), files);
            let built = p
                .vault()
                .read(|c| build(c, &Preset::Emergency, "Jene"))
                .unwrap();
            allergies(&built)
        };
        // No information: no entry, said so.
        let (n, text, reason) = emergency(&[]);
        assert_eq!(n, 0);
        assert!(text.contains("No information"), "{text}");
        assert_eq!(reason.as_deref(), Some("No information available"));
        // None known: the record's own statement is the entry.
        let (n, text, reason) = emergency(&["hl7-examples/allergyintolerance-nkda.json"]);
        assert_eq!((n, reason), (1, None));
        assert!(text.to_lowercase().contains("no known"), "{text}");
        // None current: Jene's only allergy is inactive; it is listed, marked.
        let (n, text, reason) =
            emergency(&["synthea/sotf-Jene_Cummings_8a2bb726-2f79-4940-a134-a374eef39af7.json"]);
        assert_eq!((n, reason), (1, None));
        assert!(text.contains("No current allergies"), "{text}");
        assert!(text.contains("(inactive, 1992-06-25)"), "{text}");
    }

    #[test]
    fn the_emergency_card_contents_withhold_sections_and_contacts() {
        let d = tempfile::tempdir().unwrap();
        let p = profile_with(
            d.path(),
            &[
                // First, so the profile is about this Patient, who has a contact.
                "uk-core/UKCore-Patient-RichardSmith-Example.json",
                "synthea/sotf-Jene_Cummings_8a2bb726-2f79-4940-a134-a374eef39af7.json",
            ],
        );
        let card = |c: &EmergencyCardContents| {
            p.vault()
                .read(|conn| build_with(conn, &Preset::Emergency, "Jene", Some(c)))
                .unwrap()
        };
        // Everything included is exactly today's emergency preset.
        let all = card(&EmergencyCardContents::default());
        let plain = p
            .vault()
            .read(|c| build(c, &Preset::Emergency, "Jene"))
            .unwrap();
        assert_eq!(all.resources, plain.resources);
        assert_eq!(codes(&all.bundle), codes(&plain.bundle));
        let patient = |b: &Value| b["entry"][1]["resource"].clone();
        assert_eq!(patient(&all.bundle), patient(&plain.bundle));
        assert!(patient(&all.bundle).get("contact").is_some());

        let some = card(&EmergencyCardContents {
            medications: false,
            problems: false,
            vital_signs: false,
            results: false,
            contacts: false,
            ..EmergencyCardContents::default()
        });
        // The required sections stay, the withheld ones empty and saying so.
        assert_eq!(codes(&some.bundle), ["48765-2", "10160-0", "11450-4"]);
        let sections = some.bundle["entry"][0]["resource"]["section"]
            .as_array()
            .unwrap();
        for s in &sections[1..] {
            assert!(s.get("entry").is_none(), "{s}");
            assert_eq!(s["emptyReason"]["coding"][0]["code"], "withheld");
        }
        assert!(sections[0].get("emptyReason").is_none() || sections[0].get("entry").is_none());
        assert!(some.resources < all.resources);
        let kept: Vec<&str> = some.bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .skip(3)
            .filter_map(|e| e["resource"]["resourceType"].as_str())
            .collect();
        assert!(
            kept.iter()
                .all(|t| *t == "AllergyIntolerance" || *t == "Medication"),
            "{kept:?}"
        );
        assert!(patient(&some.bundle).get("contact").is_none());
        let summary = summarise(&some.bundle).unwrap();
        assert!(!summary.sections[0].withheld);
        assert!(summary.sections[1].withheld && summary.sections[2].withheld);
    }

    #[test]
    fn the_hl7_ips_examples_summarise() {
        for f in [
            "hl7-examples/ips-Bundle-IPS-examples-Bundle-01.json",
            "hl7-examples/ips-Bundle-bundle-minimal.json",
        ] {
            let v: Value =
                serde_json::from_str(&std::fs::read_to_string(shared(f)).unwrap()).unwrap();
            let s = summarise(&v).unwrap();
            assert!(s.name.is_some(), "{f}");
            assert!(
                s.sections.iter().any(|x| x.code == "48765-2"),
                "{f}: allergies"
            );
        }
    }
}
