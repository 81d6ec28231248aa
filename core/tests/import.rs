//! Import: formats, rejections with positions, atomicity, re-import, cancel, progress.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use carry_core::{Error, FileFormat, ImportOptions, ImportProgress, TimelineQuery};

const PATIENT: &str =
    r#"{"resourceType":"Patient","id":"p1","name":[{"family":"Okafor","given":["Ada"]}]}"#;
const OBS: &str = r#"{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"Pulse"},"valueQuantity":{"value":61.50,"unit":"/min"},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2024-03-01"}"#;

#[test]
fn ndjson_imports_lines_and_rejects_bad_ones_with_their_line() {
    let (dir, p) = common::profile();
    let text = format!("{PATIENT}\n{{not json\n\n{OBS}\n{{\"resourceType\":\"Nonsense\"}}\n");
    let f = common::write(dir.path(), "export.ndjson", &text);
    let r = p.import_file(&f, ImportOptions::default()).unwrap();
    assert_eq!(r.format, Some(FileFormat::Ndjson));
    assert_eq!(r.imported, 2);
    let positions: Vec<&str> = r.rejected.iter().map(|x| x.entry.as_str()).collect();
    assert_eq!(positions, ["line 2", "line 5"]);
    assert!(r.rejected[1].reason.contains("unknown resourceType"));
    // Sniffed without the extension too.
    let g = common::write(dir.path(), "export2.json", &format!("{PATIENT}\n{OBS}\n"));
    assert_eq!(
        p.import_file(&g, ImportOptions::default()).unwrap().format,
        Some(FileFormat::Ndjson)
    );
}

#[test]
fn malformed_json_stores_nothing_and_names_the_position() {
    let (dir, p) = common::profile();
    // The first entries are fine; the file breaks after them.
    let text = format!("{{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[\n{{\"resource\":{PATIENT}}},\n{{\"resource\":{OBS}}},\n{{\"resource\": {{\"resourceType\": }}");
    let f = common::write(dir.path(), "broken.json", &text);
    let r = p.import_file(&f, ImportOptions::default()).unwrap();
    assert!(r.failed());
    assert_eq!(r.imported, 0);
    assert_eq!(r.rejected.len(), 1);
    assert_eq!(r.rejected[0].entry, "file");
    assert!(
        r.rejected[0].reason.contains("line 4"),
        "{}",
        r.rejected[0].reason
    );
    assert_eq!(p.stats().unwrap().resources, 0);
}

#[test]
fn invalid_entries_are_rejected_and_the_rest_kept() {
    let (dir, p) = common::profile();
    let text = format!(
        r#"{{"resourceType":"Bundle","type":"transaction","entry":[
        {{"fullUrl":"urn:uuid:1","resource":{PATIENT}}},
        {{"fullUrl":"urn:uuid:2","resource":{{"id":"no-type"}}}},
        {{"fullUrl":"urn:uuid:3","resource":{{"resourceType":"Observation","id":"bad id!"}}}},
        {{"fullUrl":7,"resource":{OBS}}},
        "not an entry",
        {{"request":{{"method":"DELETE","url":"Patient/9"}}}},
        {{"fullUrl":"urn:uuid:4","resource":{OBS}}}]}}"#
    );
    let f = common::write(dir.path(), "mixed.json", &text);
    let r = p.import_file(&f, ImportOptions::default()).unwrap();
    assert_eq!(r.format, Some(FileFormat::Bundle));
    assert_eq!((r.imported, r.skipped), (2, 1));
    let positions: Vec<&str> = r.rejected.iter().map(|x| x.entry.as_str()).collect();
    assert_eq!(positions, ["entry[1]", "entry[2]", "entry[3]", "entry[4]"]);
    assert!(r.rejected[0].reason.contains("missing resourceType"));
    assert!(r.rejected[1].reason.contains("id"));
}

#[test]
fn bundle_with_entry_before_resource_type_and_single_resources() {
    let (dir, p) = common::profile();
    let late = format!(
        r#"{{"entry":[{{"resource":{PATIENT}}}],"type":"collection","resourceType":"Bundle"}}"#
    );
    let f = common::write(dir.path(), "late.json", &late);
    let r = p.import_file(&f, ImportOptions::default()).unwrap();
    assert_eq!((r.format, r.imported), (Some(FileFormat::Bundle), 1));
    // A List has entries too, but it is one resource.
    let list = r#"{"id":"l1","entry":[{"item":{"reference":"Patient/p1"}}],"resourceType":"List","status":"current","mode":"working"}"#;
    let f = common::write(dir.path(), "list.json", list);
    let r = p.import_file(&f, ImportOptions::default()).unwrap();
    assert_eq!((r.format, r.imported), (Some(FileFormat::Resource), 1));
    let f = common::write(dir.path(), "obs.json", OBS);
    assert_eq!(
        p.import_file(&f, ImportOptions::default()).unwrap().format,
        Some(FileFormat::Resource)
    );
    let f = common::write(dir.path(), "array.json", "[1,2]");
    assert!(p
        .import_file(&f, ImportOptions::default())
        .unwrap()
        .failed());
    let f = common::write(dir.path(), "other.json", r#"{"hello":"world"}"#);
    assert!(p
        .import_file(&f, ImportOptions::default())
        .unwrap()
        .failed());
}

#[test]
fn stored_json_is_lossless_including_decimals() {
    let (dir, p) = common::profile();
    let f = common::write(dir.path(), "obs.json", OBS);
    p.import_file(&f, ImportOptions::default()).unwrap();
    let id = p.find("Observation/o1").unwrap()[0];
    let d = p.show(id).unwrap();
    assert!(d.json.contains("61.50"), "{}", d.json);
    assert_eq!(d.item.display, "Pulse: 61.5/min");
}

#[test]
fn changed_content_updates_in_place() {
    let (dir, p) = common::profile();
    let f = common::write(dir.path(), "obs.json", OBS);
    p.import_file(&f, ImportOptions::default()).unwrap();
    std::fs::write(&f, OBS.replace("61.50", "70")).unwrap();
    let r = p.import_file(&f, ImportOptions::default()).unwrap();
    assert_eq!((r.imported, r.updated), (0, 1));
    assert_eq!(p.stats().unwrap().resources, 1);
    assert_eq!(p.search("pulse", None).unwrap().len(), 1);
    assert!(p
        .show(p.find("Observation/o1").unwrap()[0])
        .unwrap()
        .json
        .contains("70"));
}

#[test]
fn cancel_keeps_nothing_and_progress_reports() {
    let (_d, p) = common::profile();
    let file = common::synthea_large();
    let cancel = AtomicBool::new(true);
    let err = p
        .import_file(
            &file,
            ImportOptions {
                cancel: Some(&cancel),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled));
    assert_eq!(p.stats().unwrap().resources, 0);

    let calls = AtomicU64::new(0);
    let last = AtomicU64::new(0);
    let progress = |pr: ImportProgress| {
        calls.fetch_add(1, Ordering::Relaxed);
        assert!(pr.bytes_read <= pr.bytes_total);
        last.store(pr.resources, Ordering::Relaxed);
    };
    let r = p
        .import_file(
            &file,
            ImportOptions {
                progress: Some(&progress),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(calls.load(Ordering::Relaxed) >= 2);
    assert_eq!(last.load(Ordering::Relaxed), r.imported);
}

#[test]
fn missing_file_is_not_found() {
    let (dir, p) = common::profile();
    let err = p
        .import_file(&dir.path().join("nope.json"), ImportOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
    assert!(p
        .timeline(&TimelineQuery::default())
        .unwrap()
        .items
        .is_empty());
}
