//! Helpers the unit tests of several modules share.

use crate::export::ExportScope;
use crate::profile::Profile;

/// The profile's record as exported: each Bundle entry as JSON text, sorted, so two
/// profiles holding the same record compare equal.
pub(crate) fn exported_entries(p: &Profile) -> Vec<String> {
    let mut out = Vec::new();
    p.export(&ExportScope::default(), &mut out).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let mut e: Vec<String> = v["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.to_string())
        .collect();
    e.sort();
    e
}
