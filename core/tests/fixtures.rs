//! Every shared FHIR fixture imports completely, and exports JSON-equal, resource by
//! resource, with its original fullUrls.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use std::path::PathBuf;

use carry_core::{ExportScope, ImportOptions};
use serde_json::Value;

/// The (fullUrl, resource) pairs a file holds, as the import should see them.
fn expected(file: &PathBuf) -> Vec<(Option<String>, Value)> {
    let v: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    if v["resourceType"] == "Bundle" {
        v["entry"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|e| e.get("resource").is_some())
            .map(|e| {
                (
                    e["fullUrl"].as_str().map(str::to_string),
                    e["resource"].clone(),
                )
            })
            .collect()
    } else {
        vec![(None, v)]
    }
}

#[test]
fn every_shared_fhir_fixture_round_trips() {
    let mut files: Vec<PathBuf> = Vec::new();
    for sub in ["synthea", "hl7-examples", "uk-core"] {
        for e in std::fs::read_dir(common::shared(&format!("fixtures/fhir/{sub}"))).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 80, "fixtures missing: found {}", files.len());
    let mut total = 0;
    for file in &files {
        let want = expected(file);
        let (_dir, profile) = common::profile();
        let report = profile.import_file(file, ImportOptions::default()).unwrap();
        assert!(
            report.rejected.is_empty(),
            "{}: {:?}",
            file.display(),
            report.rejected
        );
        assert_eq!(report.imported as usize, want.len(), "{}", file.display());
        assert_eq!(profile.stats().unwrap().resources as usize, want.len());

        let mut out = Vec::new();
        let n = profile.export(&ExportScope::default(), &mut out).unwrap();
        assert_eq!(n as usize, want.len());
        let bundle: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(bundle["type"], "collection");
        let got: Vec<(Option<String>, Value)> = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["fullUrl"].as_str().map(str::to_string),
                    e["resource"].clone(),
                )
            })
            .collect();
        assert_eq!(got, want, "{} does not export JSON-equal", file.display());

        // Importing the same file again changes nothing.
        let again = profile.import_file(file, ImportOptions::default()).unwrap();
        assert_eq!(
            (again.imported, again.updated),
            (0, 0),
            "{}",
            file.display()
        );
        assert_eq!(again.unchanged as usize, want.len());
        total += want.len();
    }
    assert!(total > 2000, "only {total} resources in the fixtures");
}
