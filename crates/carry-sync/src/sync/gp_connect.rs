//! Reading a GP record through GP Connect Access Record: Structured, the route an
//! English GP record takes to a patient's app: one `POST
//! [base]/Patient/$gpc.getstructuredrecord` with a FHIR STU3 `Parameters` naming the
//! person's NHS number and every clinical area, answered with an STU3 `Bundle`
//! (CareConnect profiles) holding the whole record.
//!
//! Each resource is converted to R4 as a file import converts it (the original STU3
//! text kept beside it, the resource tagged as converted) and stored under the same
//! rules as an R4 sync:
//! - **one patient**: the answer's Patient must carry the NHS number NHS login gave,
//!   and anything about another patient is refused and counted, never stored;
//! - **honest completeness**: an `OperationOutcome` in the answer (an area the GP
//!   system could not send) or a resource that cannot be converted makes the run
//!   partial, saying why;
//! - **deletions**: the answer is the whole record, so after a complete answer what
//!   this source holds and the answer lacks is marked gone at the source (kept, as
//!   an R4 sync keeps it). A partial answer marks nothing gone.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rusqlite::{params, TransactionBehavior};
use serde_json::{json, Value};

use super::compartment::{self, Belongs};
use super::login::Authorizer;
use super::pull::{authorized, refused, PullOutcome};
use super::sources::Source;
use super::Counters;
use crate::error::{Error, Result};
use crate::net::http::Http;
use crate::profile::{db, Profile};
use crate::record::EnteredBy;
use crate::store::{self, Prepared, PutOutcome, Writer};
use crate::time::now_unix;

pub use carry_proto::nhs::NHS_NUMBER_SYSTEM;
/// The largest answer read, in bytes (a whole GP record with its history).
const MAX_ANSWER: usize = 64 << 20;

/// The request: the person's NHS number and every clinical area, with resolved
/// allergies and prescription issues.
pub fn request(nhs_number: &str) -> Value {
    let flag = |name: &str, value: bool| json!({"name": name, "valueBoolean": value});
    json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "patientNHSNumber",
             "valueIdentifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs_number}},
            {"name": "includeAllergies", "part": [flag("includeResolvedAllergies", true)]},
            {"name": "includeMedication", "part": [flag("includePrescriptionIssues", true)]},
            {"name": "includeConsultations"},
            {"name": "includeProblems"},
            {"name": "includeImmunisations"},
            {"name": "includeUncategorisedData"},
            {"name": "includeInvestigations"},
            {"name": "includeReferrals"},
        ]
    })
}

/// Whether `patient` carries `nhs_number` as its NHS number.
fn has_nhs_number(patient: &Value, nhs_number: &str) -> bool {
    patient["identifier"].as_array().is_some_and(|ids| {
        ids.iter().any(|i| {
            i["system"].as_str() == Some(NHS_NUMBER_SYSTEM)
                && i["value"].as_str().map(str::trim) == Some(nhs_number)
        })
    })
}

/// The name of each Medication in the answer, by id: its code's text, else its first
/// coding's display.
fn medication_names(entries: &[Value]) -> HashMap<String, String> {
    entries
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == "Medication")
        .filter_map(|r| {
            let id = r["id"].as_str()?;
            let name = r["code"]["text"]
                .as_str()
                .or_else(|| r["code"]["coding"][0]["display"].as_str())?;
            Some((id.to_string(), name.to_string()))
        })
        .collect()
}

/// GP Connect names a prescription's drug only in the Medication it refers to: give
/// the reference that name, as R4 allows, so the record can say what was prescribed.
/// A reference that names something already is left as it is.
fn name_medication(r4: &mut Value, names: &HashMap<String, String>) {
    let Some(reference) = r4.get_mut("medicationReference") else {
        return;
    };
    if reference.get("display").is_some() {
        return;
    }
    let name = reference["reference"]
        .as_str()
        .and_then(|r| r.strip_prefix("Medication/"))
        .and_then(|id| names.get(id));
    if let (Some(name), Some(obj)) = (name, reference.as_object_mut()) {
        obj.insert("display".into(), Value::String(name.clone()));
    }
}

/// What the answer's `OperationOutcome` says, in one line per issue.
fn outcome_lines(outcome: &Value) -> Vec<String> {
    outcome["issue"]
        .as_array()
        .map(|issues| {
            issues
                .iter()
                .map(|i| {
                    let code = i["details"]["coding"][0]["code"]
                        .as_str()
                        .or_else(|| i["code"].as_str())
                        .unwrap_or("an issue");
                    let text = i["diagnostics"]
                        .as_str()
                        .or_else(|| i["details"]["text"].as_str())
                        .unwrap_or("");
                    format!("the GP system said {code}: {text}")
                        .trim_end_matches(": ")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Ask for the whole record and store it. Counts what changed and what went, and
/// says why the run is partial, if it is.
pub(crate) async fn pull(
    profile: &Arc<Profile>,
    http: &Http,
    auth: &mut Authorizer,
    source: &Source,
    counters: &Counters,
) -> Result<PullOutcome> {
    let nhs_number = auth
        .patient_id()
        .or_else(|| source.info.patient_id.clone())
        .ok_or_else(|| Error::Auth {
            reason: "not signed in with NHS login yet, so the NHS number is unknown".into(),
        })?;
    let url = format!("{}/Patient/$gpc.getstructuredrecord", source.info.base_url);
    let body = request(&nhs_number).to_string();
    let resp = authorized(http, auth, || {
        http.client()
            .post(&url)
            .header("accept", "application/fhir+json")
            .header("content-type", "application/fhir+json")
            .body(body.clone())
    })
    .await?;
    if resp.status != 200 {
        return Err(refused(resp.status));
    }
    if resp.body.len() > MAX_ANSWER {
        return Err(Error::invalid(
            "the GP record answered is larger than 64 MiB",
        ));
    }
    let bundle: Value = serde_json::from_slice(&resp.body)
        .map_err(|_| Error::invalid("the GP Connect answer is not JSON"))?;
    if bundle["resourceType"] != "Bundle" {
        return Err(Error::invalid("the GP Connect answer is not a Bundle"));
    }
    let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
    counters
        .fetched
        .fetch_add(entries.len() as u64, Ordering::Relaxed);

    // The person: the answer's Patient carrying the NHS number NHS login gave.
    let patients: Vec<&Value> = entries
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == "Patient")
        .collect();
    let me = patients
        .iter()
        .find(|p| has_nhs_number(p, &nhs_number))
        .and_then(|p| p["id"].as_str())
        .map(str::to_string)
        .ok_or_else(|| Error::Denied {
            reason: "the GP Connect answer holds no Patient with this person's NHS number; nothing was stored".into(),
        })?;

    let names = medication_names(&entries);
    let (sid, base, nhs) = (source.id, source.info.base_url.clone(), nhs_number.clone());
    let outcome = db(profile, move |p| {
        p.vault().write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = now_unix();
            let mut w = Writer::new(&tx, sid, None, EnteredBy::Provider, now).by_logical_id();
            let mut out = PullOutcome::default();
            let mut held = BTreeSet::new();
            let mut changed = 0u64;
            for entry in &entries {
                let resource = &entry["resource"];
                let rtype = resource["resourceType"].as_str().unwrap_or_default();
                if rtype == "OperationOutcome" {
                    out.short.extend(outcome_lines(resource));
                    continue;
                }
                if rtype == "Patient" && !has_nhs_number(resource, &nhs) {
                    out.refused += 1;
                    continue;
                }
                let raw = serde_json::to_string(resource)?;
                let id = resource["id"].as_str().filter(|i| !i.is_empty());
                // An entry without an id has no address either: it is known by its
                // content, never by a made-up address several entries would share.
                let full_url = entry["fullUrl"]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| id.map(|id| format!("{base}/{rtype}/{id}")));
                let (prepared, r4): (Prepared, Value) =
                    match Prepared::from_stu3_with(&raw, resource, full_url.as_deref(), |r4| {
                        name_medication(r4, &names)
                    }) {
                        Ok(p) => p,
                        Err(Error::InvalidInput { reason }) => {
                            out.short.push(format!("a {rtype} was not kept ({reason})"));
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                if compartment::belongs(&r4, &me) == Belongs::Other {
                    tracing::debug!(rtype, "refused a resource about another patient");
                    out.refused += 1;
                    continue;
                }
                match w.put_prepared(prepared) {
                    Ok(PutOutcome::Inserted(row) | PutOutcome::Updated(row)) => {
                        held.insert(row);
                        changed += 1;
                    }
                    Ok(PutOutcome::Unchanged(row)) => {
                        held.insert(row);
                    }
                    Err(Error::InvalidInput { reason }) => {
                        out.short.push(format!("a {rtype} was not kept ({reason})"));
                    }
                    Err(e) => return Err(e),
                }
            }
            w.finish()?;
            store::adopt_self_patient(&tx)?;
            // A whole answer is the whole record: what it lacks is gone there. Rows are
            // known by what this answer stored, so an entry without an id counts too.
            let whole = out.short.is_empty() && out.refused == 0;
            let gone = if whole {
                let held = serde_json::to_string(&held)?;
                tx.execute(
                    "UPDATE resources SET gone_at = ?2 WHERE source_id = ?1 AND gone_at IS NULL
                       AND id NOT IN (SELECT value FROM json_each(?3))",
                    params![sid, now, held],
                )? as u64
            } else {
                0
            };
            tx.execute(
                "UPDATE provider_sources SET last_synced_at = ?2,
                   full_synced_at = CASE WHEN ?3 THEN ?2 ELSE full_synced_at END,
                   deletions_at = CASE WHEN ?3 THEN ?2 ELSE deletions_at END
                 WHERE source_id = ?1",
                params![sid, now, whole],
            )?;
            tx.commit()?;
            Ok((out, changed, gone))
        })
    })
    .await?;
    let (out, changed, gone) = outcome;
    counters.changed.fetch_add(changed, Ordering::Relaxed);
    counters.gone.fetch_add(gone, Ordering::Relaxed);
    if gone > 0 {
        tracing::info!(gone, "resources no longer in the GP record were marked");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_the_person_and_every_area() {
        let r = request("9999999999");
        let names: Vec<&str> = r["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names[0], "patientNHSNumber");
        assert_eq!(names.len(), 9);
        assert_eq!(r["parameter"][0]["valueIdentifier"]["value"], "9999999999");
    }

    #[test]
    fn a_prescription_takes_its_medications_name_from_the_answer() {
        let entries = vec![
            json!({"resource": {"resourceType": "Medication", "id": "m1",
            "code": {"coding": [{"display": "Amoxicillin 250mg capsules"}]}}}),
        ];
        let names = medication_names(&entries);
        let mut rx = json!({"resourceType": "MedicationRequest",
            "medicationReference": {"reference": "Medication/m1"}});
        name_medication(&mut rx, &names);
        assert_eq!(
            rx["medicationReference"]["display"],
            "Amoxicillin 250mg capsules"
        );
        let mut named = json!({"resourceType": "MedicationRequest",
            "medicationReference": {"reference": "Medication/m1", "display": "as sent"}});
        name_medication(&mut named, &names);
        assert_eq!(named["medicationReference"]["display"], "as sent");
        let mut unknown = json!({"resourceType": "MedicationRequest",
            "medicationReference": {"reference": "Medication/m2"}});
        name_medication(&mut unknown, &names);
        assert!(unknown["medicationReference"].get("display").is_none());
    }

    #[test]
    fn a_patient_is_matched_by_nhs_number_and_outcomes_are_read() {
        let p = json!({"resourceType": "Patient", "identifier": [
            {"system": NHS_NUMBER_SYSTEM, "value": "9999999999"}]});
        assert!(has_nhs_number(&p, "9999999999"));
        assert!(!has_nhs_number(&p, "9434765919"));
        let oo = json!({"resourceType": "OperationOutcome", "issue": [{
            "severity": "warning", "code": "not-supported",
            "details": {"coding": [{"code": "NOT_IMPLEMENTED"}]},
            "diagnostics": "Immunisations are not supported"}]});
        assert_eq!(
            outcome_lines(&oo),
            ["the GP system said NOT_IMPLEMENTED: Immunisations are not supported"]
        );
    }
}
