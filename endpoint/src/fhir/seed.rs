//! `carry-endpoint seed`: load FHIR Bundles (such as the shared Synthea patients) into
//! tenants. `urn:uuid:` references become `Type/id`, each resource is placed in its
//! Patient's compartment, and with several tenants and `--split-by-encounter` the
//! patient's encounters alternate between them, each with what belongs to it, while
//! the Patient and everything tied to no encounter go to every tenant: two providers
//! holding overlapping records of one person, as in life.
//!
//! Seeding fails closed: a resource that cannot be placed in a Patient's compartment
//! is written only if its type is one every patient may share
//! ([`SHARED_TYPES`](crate::fhir::store::SHARED_TYPES): Organization, Practitioner…). Any
//! other is refused and counted, so that another person's Appointment or a discharge
//! letter naming nobody is never served to every patient's token.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::fhir::store::{is_shared_type, FhirStore};

/// What a seed did at one tenant. Displayed as the line `seed` prints, e.g.
/// `gp: 107 resources, 14 refused: not placed with a patient (Appointment 2, …)`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TenantSeeded {
    /// The tenant.
    pub tenant: String,
    /// Resources written.
    pub written: usize,
    /// Resources refused, by type: in no Patient's compartment and not of a type
    /// shared across patients.
    pub refused: BTreeMap<String, usize>,
}

impl TenantSeeded {
    /// How many resources were refused.
    pub fn refused_count(&self) -> usize {
        self.refused.values().sum()
    }
}

impl std::fmt::Display for TenantSeeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} resources", self.tenant, self.written)?;
        if !self.refused.is_empty() {
            let by_type: Vec<String> = self
                .refused
                .iter()
                .map(|(t, n)| format!("{t} {n}"))
                .collect();
            write!(
                f,
                ", {} refused: not placed with a patient ({})",
                self.refused_count(),
                by_type.join(", ")
            )?;
        }
        Ok(())
    }
}

/// What a seed did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Seeded {
    /// What each tenant took, in the order the tenants were named.
    pub per_tenant: Vec<TenantSeeded>,
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

/// The id in `field`'s reference to an `rtype` (`rtype/id`, or a version of it,
/// `rtype/id/_history/n`); `None` for anything else, such as an absolute URL or a
/// fullUrl that no entry of the Bundle had.
fn reference_id<'a>(v: &'a Value, field: &str, rtype: &str) -> Option<&'a str> {
    let r = v.get(field)?;
    let r = r.as_array().and_then(|a| a.first()).unwrap_or(r);
    let rest = r
        .get("reference")?
        .as_str()?
        .strip_prefix(rtype)?
        .strip_prefix('/')?;
    let id = match rest.split_once("/_history/") {
        Some((id, _)) => id,
        None => rest,
    };
    let valid = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then_some(id)
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
    store: &dyn FhirStore,
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
    let mut done: Vec<TenantSeeded> = tenants
        .iter()
        .map(|t| TenantSeeded {
            tenant: t.clone(),
            ..TenantSeeded::default()
        })
        .collect();
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
            if patient.is_none() && !is_shared_type(&rtype) {
                for t in targets {
                    *done[t].refused.entry(rtype.clone()).or_insert(0) += 1;
                }
                continue;
            }
            for t in targets {
                store
                    .put(&tenants[t], &rtype, &id, patient.as_deref(), &r, now_ms)
                    .map_err(|e| e.to_string())?;
                done[t].written += 1;
            }
        }
    }
    for t in done.iter().filter(|t| !t.refused.is_empty()) {
        tracing::warn!(
            tenant = t.tenant,
            refused = t.refused_count(),
            "seed refused resources that are in no patient's compartment and not of a shared type"
        );
    }
    Ok(Seeded { per_tenant: done })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compartments_come_from_plain_and_versioned_references_only() {
        let at = |subject: &str| {
            compartment(&json!({"resourceType": "Observation", "subject": {"reference": subject}}))
        };
        assert_eq!(at("Patient/p1").as_deref(), Some("p1"));
        assert_eq!(at("Patient/45/_history/2").as_deref(), Some("45"));
        assert_eq!(at("https://elsewhere.example/fhir/Patient/p1"), None);
        assert_eq!(at("urn:uuid:4c9e8c7e-0000-0000-0000-000000000000"), None);
        assert_eq!(at("Patient/a/b"), None);
        assert_eq!(at("Group/g1"), None);
    }

    #[test]
    fn the_seed_line_names_what_was_refused() {
        let mut t = TenantSeeded {
            tenant: "gp".into(),
            written: 120,
            ..TenantSeeded::default()
        };
        assert_eq!(t.to_string(), "gp: 120 resources");
        t.refused.insert("Composition".into(), 2);
        t.refused.insert("Appointment".into(), 3);
        assert_eq!(
            t.to_string(),
            "gp: 120 resources, 5 refused: not placed with a patient (Appointment 3, Composition 2)"
        );
    }
}
