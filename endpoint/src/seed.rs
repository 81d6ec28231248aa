//! `carry-endpoint seed`: load FHIR Bundles (such as the shared Synthea patients) into
//! tenants. `urn:uuid:` references become `Type/id`, each resource is placed in its
//! Patient's compartment, and with several tenants and `--split-by-encounter` the
//! patient's encounters alternate between them, each with what belongs to it, while
//! the Patient and everything tied to no encounter go to every tenant: two providers
//! holding overlapping records of one person, as in life.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::store::Store;

/// What a seed did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Seeded {
    /// Resources written per tenant.
    pub per_tenant: Vec<(String, usize)>,
}

fn files(from: &Path) -> std::io::Result<Vec<PathBuf>> {
    if from.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(from)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        v.sort();
        Ok(v)
    } else {
        Ok(vec![from.to_path_buf()])
    }
}

/// Replace every `reference` that names a Bundle entry's fullUrl by `Type/id`.
fn rewrite_references(v: &mut Value, map: &HashMap<String, String>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("reference") {
                if let Some(local) = map.get(r.as_str()) {
                    *r = local.clone();
                }
            }
            for child in o.values_mut() {
                rewrite_references(child, map);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| rewrite_references(c, map)),
        _ => {}
    }
}

fn reference_id<'a>(v: &'a Value, field: &str, rtype: &str) -> Option<&'a str> {
    let r = v.get(field)?;
    let r = r.as_array().and_then(|a| a.first()).unwrap_or(r);
    r.get("reference")?
        .as_str()?
        .strip_prefix(rtype)?
        .strip_prefix('/')
}

/// The Patient whose compartment `r` is in.
pub fn compartment(r: &Value) -> Option<String> {
    if r["resourceType"] == "Patient" {
        return r["id"].as_str().map(str::to_string);
    }
    ["subject", "patient", "beneficiary", "individual"]
        .iter()
        .find_map(|f| reference_id(r, f, "Patient"))
        .map(str::to_string)
}

/// The Encounter a resource belongs to, if any.
fn encounter_of(r: &Value) -> Option<String> {
    if r["resourceType"] == "Encounter" {
        return r["id"].as_str().map(str::to_string);
    }
    if let Some(e) = reference_id(r, "encounter", "Encounter")
        .or_else(|| reference_id(r, "context", "Encounter"))
    {
        return Some(e.to_string());
    }
    // Claims and explanations of benefit name the encounter per item.
    r.get("item")
        .and_then(Value::as_array)
        .and_then(|items| {
            items
                .iter()
                .find_map(|i| reference_id(i, "encounter", "Encounter"))
        })
        .map(str::to_string)
}

/// Load the Bundles at `from` into `tenants`.
pub fn seed(
    store: &dyn Store,
    tenants: &[String],
    from: &Path,
    split_by_encounter: bool,
    now_ms: i64,
) -> Result<Seeded, String> {
    if tenants.is_empty() {
        return Err("name at least one --tenant".into());
    }
    for t in tenants {
        store.ensure_tenant(t).map_err(|e| e.to_string())?;
    }
    let mut counts = vec![0usize; tenants.len()];
    for file in files(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not JSON ({e})", file.display()))?;
        let entries: Vec<(Option<String>, Value)> = if doc["resourceType"] == "Bundle" {
            doc["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    Some((
                        e["fullUrl"].as_str().map(str::to_string),
                        e.get("resource")?.clone(),
                    ))
                })
                .collect()
        } else {
            vec![(None, doc)]
        };
        let map: HashMap<String, String> = entries
            .iter()
            .filter_map(|(full, r)| {
                Some((
                    full.clone()?,
                    format!("{}/{}", r["resourceType"].as_str()?, r["id"].as_str()?),
                ))
            })
            .collect();
        let mut encounter_tenant: HashMap<String, usize> = HashMap::new();
        let mut next = 0usize;
        for (_, mut r) in entries {
            rewrite_references(&mut r, &map);
            let (Some(rtype), Some(id)) = (
                r["resourceType"].as_str().map(str::to_string),
                r["id"].as_str().map(str::to_string),
            ) else {
                continue;
            };
            let targets: Vec<usize> =
                match (split_by_encounter && tenants.len() > 1, encounter_of(&r)) {
                    (true, Some(enc)) => {
                        let t = *encounter_tenant.entry(enc).or_insert_with(|| {
                            let t = next % tenants.len();
                            next += 1;
                            t
                        });
                        vec![t]
                    }
                    _ => (0..tenants.len()).collect(),
                };
            let patient = compartment(&r);
            for t in targets {
                store
                    .put(&tenants[t], &rtype, &id, patient.as_deref(), &r, now_ms)
                    .map_err(|e| e.to_string())?;
                counts[t] += 1;
            }
        }
    }
    Ok(Seeded {
        per_tenant: tenants.iter().cloned().zip(counts).collect(),
    })
}
