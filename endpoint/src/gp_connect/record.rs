//! The records served: STU3 response Bundles read from a folder at start-up, their
//! entries merged per patient (one copy of each resource) and indexed by NHS number.
//! The published examples' two known departures from STU3 are mended on the way in,
//! so that what is served is STU3.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The identifier system of NHS numbers.
pub use carry_proto::nhs::NHS_NUMBER_SYSTEM;

/// Why a folder of records could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The folder could not be listed.
    #[error("--gp-connect: cannot read the folder {0}: {1}")]
    Folder(PathBuf, std::io::Error),
    /// A file could not be read.
    #[error("--gp-connect: cannot read {0}: {1}")]
    File(PathBuf, std::io::Error),
    /// A file is not an STU3 Bundle of resources.
    #[error("--gp-connect: {0} is not an STU3 Bundle: {1}")]
    NotABundle(PathBuf, &'static str),
    /// The folder holds no bundles.
    #[error("--gp-connect: the folder {0} holds no *.json bundles")]
    Empty(PathBuf),
}

/// One patient's record: every resource the bundles hold for them, once each, in the
/// order first met.
#[derive(Debug, Default)]
pub struct Record {
    /// The resources.
    pub resources: Vec<Value>,
    seen: HashSet<String>,
}

impl Record {
    /// Add `resource` unless a copy is held: the same type and id; for a List without
    /// an id, the same code and title; for anything else without one, the same
    /// content. The first copy met is kept.
    fn add(&mut self, resource: &Value) {
        let rtype = resource_type(resource);
        let key = match resource.get("id").and_then(Value::as_str) {
            Some(id) => format!("{rtype}/{id}"),
            // GP Connect's Lists carry no id: a List is known by its code and title.
            None if rtype == "List" => format!(
                "List#{}#{}",
                resource.get("code").unwrap_or(&Value::Null),
                resource.get("title").unwrap_or(&Value::Null)
            ),
            None => format!("{rtype}#{resource}"),
        };
        if self.seen.insert(key) {
            self.resources.push(resource.clone());
        }
    }

    /// The Patient.
    pub fn patient(&self) -> Option<&Value> {
        self.resources
            .iter()
            .find(|r| resource_type(r) == "Patient")
    }
}

/// A resource's type, or "" when it names none.
pub fn resource_type(r: &Value) -> &str {
    r.get("resourceType").and_then(Value::as_str).unwrap_or("")
}

/// The NHS number of a Patient, if it carries one.
fn nhs_number_of(patient: &Value) -> Option<&str> {
    patient
        .get("identifier")?
        .as_array()?
        .iter()
        .find(|i| i.get("system").and_then(Value::as_str) == Some(NHS_NUMBER_SYSTEM))?
        .get("value")?
        .as_str()
}

/// Elements STU3 defines as lists that GP Connect's published examples write as a lone
/// object (`Patient.generalPractitioner`, `MedicationStatement.basedOn`, …).
const LIST_ELEMENTS: &[&str] = &["generalPractitioner", "basedOn"];

/// Mend, in place, the two ways the published examples break STU3: a lone object where
/// STU3 has a list, and a Quantity's or Duration's code written as a list of one. How
/// many were mended.
fn mend(resource: &mut Value) -> usize {
    let mut mended = 0;
    if let Some(obj) = resource.as_object_mut() {
        for key in LIST_ELEMENTS {
            if let Some(v) = obj.get_mut(*key).filter(|v| v.is_object()) {
                *v = Value::Array(vec![v.take()]);
                mended += 1;
            }
        }
    }
    let mut stack = vec![resource];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(o) => {
                let quantity = o.contains_key("value") || o.contains_key("unit");
                if let Some(code) = o.get_mut("code").filter(|_| quantity) {
                    let lone = match code.as_array().map(Vec::as_slice) {
                        Some([Value::String(c)]) => Some(c.clone()),
                        _ => None,
                    };
                    if let Some(c) = lone {
                        *code = Value::String(c);
                        mended += 1;
                    }
                }
                stack.extend(o.values_mut());
            }
            Value::Array(a) => stack.extend(a.iter_mut()),
            _ => {}
        }
    }
    mended
}

/// The entries' resources of one STU3 Bundle, checked for what an STU3 Bundle is.
fn bundle_resources(bundle: &Value) -> Result<Vec<&Value>, &'static str> {
    if resource_type(bundle) != "Bundle" {
        return Err("its resourceType is not Bundle");
    }
    let version = bundle
        .pointer("/meta/fhirVersion")
        .or_else(|| bundle.get("fhirVersion"))
        .and_then(Value::as_str);
    if version.is_some_and(|v| !v.starts_with("3.")) {
        return Err("it names a FHIR version other than STU3");
    }
    if bundle.get("type").and_then(Value::as_str).is_none() {
        return Err("it has no type");
    }
    let entries = match bundle.get("entry") {
        None => return Ok(Vec::new()),
        Some(e) => e.as_array().ok_or("its entry is not a list")?,
    };
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let r = e.get("resource").ok_or("an entry has no resource")?;
        if resource_type(r).is_empty() || !r.is_object() {
            return Err("an entry's resource has no resourceType");
        }
        // R4 renamed these; an STU3 bundle holds none of the R4-only types.
        if matches!(
            resource_type(r),
            "MedicationKnowledge" | "ServiceRequest" | "ChargeItemDefinition" | "Invoice"
        ) {
            return Err("it holds R4 resources");
        }
        out.push(r);
    }
    Ok(out)
}

/// Every patient's record in the `*.json` bundles of `dir`, by NHS number. A bundle
/// whose Patient carries no NHS number adds nothing.
pub fn load(dir: &Path) -> Result<HashMap<String, Record>, LoadError> {
    let listing = std::fs::read_dir(dir).map_err(|e| LoadError::Folder(dir.to_path_buf(), e))?;
    let mut files: Vec<PathBuf> = listing
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(LoadError::Empty(dir.to_path_buf()));
    }
    let mut records: HashMap<String, Record> = HashMap::new();
    for path in files {
        let text = std::fs::read(&path).map_err(|e| LoadError::File(path.clone(), e))?;
        let bundle: Value = serde_json::from_slice(&text)
            .map_err(|_| LoadError::NotABundle(path.clone(), "it is not JSON"))?;
        let resources =
            bundle_resources(&bundle).map_err(|why| LoadError::NotABundle(path.clone(), why))?;
        let Some(nhs) = resources
            .iter()
            .find(|r| resource_type(r) == "Patient")
            .and_then(|p| nhs_number_of(p))
        else {
            tracing::warn!(file = %path.display(), "a GP Connect bundle without a patient's NHS number is skipped");
            continue;
        };
        let record = records.entry(nhs.to_string()).or_default();
        let mut mended = 0;
        for r in resources {
            let mut r = r.clone();
            mended += mend(&mut r);
            record.add(&r);
        }
        if mended > 0 {
            tracing::info!(file = %path.display(), mended, "known defects of the published examples mended to STU3");
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bundles_merge_once_per_resource() {
        let dir = tempfile::tempdir().unwrap();
        let patient = json!({"resourceType": "Patient", "id": "p",
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": "9999999999"}]});
        let list = json!({"resourceType": "List", "status": "current", "mode": "snapshot"});
        for (name, extra) in [
            ("a.json", json!({"resourceType": "Flag", "id": "f"})),
            ("b.json", json!({"resourceType": "Flag", "id": "g"})),
        ] {
            let b = json!({"resourceType": "Bundle", "type": "collection", "entry": [
                {"resource": patient}, {"resource": list}, {"resource": extra}]});
            std::fs::write(dir.path().join(name), b.to_string()).unwrap();
        }
        let records = load(dir.path()).unwrap();
        assert_eq!(records["9999999999"].resources.len(), 4);
        std::fs::write(dir.path().join("c.json"), r#"{"resourceType": "Patient"}"#).unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("c.json"), "{e}");
    }

    #[test]
    fn the_published_defects_are_mended() {
        let mut r = json!({"resourceType": "MedicationRequest", "basedOn": {"reference": "x"},
            "dispenseRequest": {"expectedSupplyDuration": {"value": 28, "code": ["d"]}},
            "code": {"coding": [{"code": "1"}]}});
        assert_eq!(mend(&mut r), 2);
        assert_eq!(r["basedOn"], json!([{"reference": "x"}]));
        assert_eq!(r["dispenseRequest"]["expectedSupplyDuration"]["code"], "d");
        assert_eq!(mend(&mut r), 0);
    }
}
