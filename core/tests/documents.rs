//! Documents: a PDF kept in the record and opened byte for byte, through a backup and
//! a restore too; providers' documents whose content is inline, in a held Binary, kept
//! elsewhere, or damaged on the way.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use carry_core::{backup, restore, Category, Error, ImportOptions, TimelineQuery};
use serde_json::json;

/// A PDF of `len` bytes that does not compress.
fn pdf(len: usize) -> Vec<u8> {
    let mut b = b"%PDF-1.4\n".to_vec();
    let mut x: u64 = 0x2545_4446_2D31_2E34;
    while b.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.extend_from_slice(&x.to_le_bytes());
    }
    b.truncate(len);
    b
}

fn import(p: &carry_core::Profile, dir: &std::path::Path, name: &str, v: &serde_json::Value) {
    let f = common::write(dir, name, &v.to_string());
    let r = p.import_file(&f, ImportOptions::default()).unwrap();
    assert!(r.rejected.is_empty(), "{:?}", r.rejected);
}

#[test]
fn a_pdf_is_kept_in_the_record_and_survives_a_backup_and_a_restore() {
    let (d, p) = common::profile();
    let letter = pdf(5 << 20);
    let item = p
        .attach_document(&letter, "Discharge letter", None)
        .unwrap();
    assert_eq!(item.category, Category::Documents);
    assert!(
        item.display.contains("Discharge letter"),
        "{}",
        item.display
    );
    let file = p.document_file(item.id).unwrap();
    assert_eq!(file.bytes, letter);
    assert_eq!(file.file_name(), "Discharge-letter.pdf");
    // Found by its title.
    assert!(p
        .search("discharge", None)
        .unwrap()
        .iter()
        .any(|i| i.id == item.id));

    let code = backup::recovery_code(&p).unwrap();
    let out = d.path().join("backup.carry");
    backup::backup_to_file(&p, &out).unwrap();
    let back = restore::from_file(
        &d.path().join("restored"),
        &out,
        &code,
        &common::PlainKeyStore,
    )
    .unwrap();
    let docs = back
        .timeline(&TimelineQuery {
            categories: vec![Category::Documents],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(docs.items.len(), 1);
    assert_eq!(back.document_file(docs.items[0].id).unwrap().bytes, letter);
}

#[test]
fn files_that_are_not_documents_are_refused_and_nothing_is_stored() {
    let (_d, p) = common::profile();
    for (bytes, title, kind) in [
        (b"<html>hello</html>".to_vec(), "A page", None),
        (pdf(1000), "Letter", Some("image/jpeg")),
        (pdf(1000), "", None),
        (Vec::new(), "Empty", None),
        (
            pdf(carry_core::documents::MAX_DOCUMENT_BYTES + 1),
            "Huge",
            None,
        ),
    ] {
        let e = p.attach_document(&bytes, title, kind).unwrap_err();
        assert!(matches!(e, Error::InvalidInput { .. }), "{title}: {e}");
    }
    assert_eq!(p.stats().unwrap().resources, 0);
}

#[test]
fn providers_documents_open_from_inline_content_or_a_held_binary_and_say_why_not() {
    let (d, p) = common::profile();
    let b64 = |b: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(b)
    };
    let note = b"Seen in clinic. Plan: review in six weeks.";
    let scan = pdf(3000);
    import(
        &p,
        d.path(),
        "letters.json",
        &json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"fullUrl": "https://gp.example/fhir/DocumentReference/note",
             "resource": {"resourceType": "DocumentReference", "id": "note", "status": "current",
                "description": "Clinic note",
                "content": [{"attachment": {"contentType": "text/plain", "data": b64(note)}}]}},
            {"fullUrl": "https://gp.example/fhir/DocumentReference/scan",
             "resource": {"resourceType": "DocumentReference", "id": "scan", "status": "current",
                "content": [{"attachment": {"contentType": "application/pdf", "title": "Referral scan",
                   "url": "https://gp.example/fhir/Binary/b1", "size": scan.len()}}]}},
            {"fullUrl": "https://gp.example/fhir/Binary/b1",
             "resource": {"resourceType": "Binary", "id": "b1", "contentType": "application/pdf",
                "data": b64(&scan)}}
        ]}),
    );
    let one = |t: &str| p.find(t).unwrap()[0];
    let n = p.document_file(one("DocumentReference/note")).unwrap();
    assert_eq!(
        (n.bytes.as_slice(), n.content_type.as_str()),
        (&note[..], "text/plain")
    );
    assert_eq!(n.title, "Clinic note");
    let s = p.document_file(one("DocumentReference/scan")).unwrap();
    assert_eq!(s.bytes, scan);
    assert_eq!(s.title, "Referral scan");

    // HL7's example keeps its content elsewhere: the message says where.
    p.import_file(
        &common::shared("fixtures/fhir/hl7-examples/documentreference-example.json"),
        ImportOptions::default(),
    )
    .unwrap();
    let e = p
        .document_file(one("DocumentReference/example"))
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidInput { reason } if reason.contains("http://example.org/xds/mhd/Binary/")),
        "{e}"
    );
    // UK Core's care plan report: a PDF at the trust's address.
    p.import_file(
        &common::shared(
            "fixtures/fhir/uk-core/UKCore-DocumentReference-CarePlanReportPDF-Example.json",
        ),
        ImportOptions::default(),
    )
    .unwrap();
    let e = p
        .document_file(one(
            "DocumentReference/UKCore-DocumentReference-CarePlanReportPDF-Example",
        ))
        .unwrap_err();
    assert!(
        e.to_string().contains("CarePlanReport_44301kfgd.pdf"),
        "{e}"
    );

    // Content that does not match the hash it was sent with is refused, not shown.
    import(
        &p,
        d.path(),
        "damaged.json",
        &json!({"resourceType": "DocumentReference", "id": "damaged", "status": "current",
            "content": [{"attachment": {"contentType": "text/plain", "data": b64(b"changed"),
               "hash": "2jmj7l5rSw0yVb/vlWAYkK/YBwk="}}]}),
    );
    let e = p
        .document_file(one("DocumentReference/damaged"))
        .unwrap_err();
    assert!(e.to_string().contains("damaged"), "{e}");
    // Not a document at all.
    let e = p.document_file(one("Binary/b1")).unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    assert!(matches!(
        p.document_file(987_654).unwrap_err(),
        Error::NotFound { .. }
    ));
}

#[test]
fn summaries_that_hold_documents_carry_their_files_within_a_budget() {
    use carry_core::links::{self, Preset};
    let (_d, p) = common::profile();
    p.import_file(
        &common::shared(
            "fixtures/fhir/synthea/sotf-Jene_Cummings_8a2bb726-2f79-4940-a134-a374eef39af7.json",
        ),
        ImportOptions::default(),
    )
    .unwrap();
    let small = pdf(200_000);
    let big = pdf(3_500_000);
    p.attach_document(&big, "Hospital scan", None).unwrap();
    p.attach_document(&small, "Clinic letter", None).unwrap();
    let doc = links::summary_document(&p, &Preset::AllButRestricted).unwrap();
    let summary = links::ips::summarise(&doc).unwrap();
    let section = summary
        .sections
        .iter()
        .find(|s| s.code == "documents")
        .expect("a documents section");
    assert_eq!(section.title, "Documents");
    assert_eq!(section.lines.len(), 2, "{:?}", section.lines);
    // Newest first: the letter fits and travels; the scan would pass the budget.
    assert!(
        section.lines[0].contains("Clinic letter"),
        "{:?}",
        section.lines
    );
    assert!(
        section.lines[1].contains("Hospital scan") && section.lines[1].contains("too large"),
        "{:?}",
        section.lines
    );
    let docs: Vec<&serde_json::Value> = doc["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == "DocumentReference")
        .collect();
    let attachment = |title: &str| {
        docs.iter()
            .find(|r| r["description"] == title)
            .map(|r| r["content"][0]["attachment"].clone())
            .unwrap()
    };
    use base64::Engine;
    let carried = base64::engine::general_purpose::STANDARD
        .decode(attachment("Clinic letter")["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(carried, small);
    let scan = attachment("Hospital scan");
    assert!(scan.get("data").is_none());
    assert_eq!(scan["size"], big.len());
    // The section's code is Carry's own: the IPS has none for documents.
    let composition = &doc["entry"][0]["resource"];
    let coded = composition["section"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["title"] == "Documents")
        .unwrap();
    assert_eq!(
        coded["code"]["coding"][0]["system"],
        "https://carry.health/fhir/CodeSystem/summary-section"
    );
    // An emergency summary holds no documents.
    let emergency = links::summary_document(&p, &Preset::Emergency).unwrap();
    assert!(!emergency.to_string().contains("DocumentReference"));
}
