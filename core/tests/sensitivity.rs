//! Sensitivity follows the fact: every copy of one fact carries the labels of its
//! strictest copy, so a provider's copy of the person's own sensitive entry stays as
//! restricted as the entry, for grants, "view as", deliveries, links and exports.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use carry_core::{Category, ImportOptions, Profile, Reading};

/// A person who took up `p`'s invite and holds a viewer's grant to `category`: their
/// folder and short id.
fn grantee_of(p: &Profile, category: Category) -> (tempfile::TempDir, String) {
    let (d, carer) = common::profile();
    let invite = carry_core::share::invite(&carer, "http://127.0.0.1:9").unwrap();
    let person = carry_core::share::accept(p, &invite.code, true).unwrap();
    carry_core::share::grant(
        p,
        &carry_core::share::NewGrant {
            person: person.person.clone(),
            role: carry_core::share::Role::Viewer,
            scope: carry_core::share::Scope {
                categories: vec![category],
                ..Default::default()
            },
            purpose: "test".into(),
            basis: None,
            duration_s: None,
            unverified: true,
        },
    )
    .unwrap();
    (d, person.person)
}

#[test]
fn a_gp_copy_of_a_mood_entry_stays_psy_and_a_grantee_of_other_never_sees_it() {
    let (d, p) = common::profile();
    let mine = p
        .add_reading(&Reading::parse("mood", "2").unwrap(), None)
        .unwrap();
    let own = p.show(mine.id).unwrap();
    assert_eq!(own.item.sensitivity, vec!["PSY".to_string()]);

    // The GP sends it back without its label (as GP systems do).
    let mut copy: serde_json::Value = serde_json::from_str(&own.json).unwrap();
    copy.as_object_mut().unwrap().remove("meta");
    let bundle = serde_json::json!({
        "resourceType": "Bundle", "type": "collection",
        "entry": [{ "fullUrl": "https://gp.example/fhir/Observation/m1", "resource": copy }]
    });
    let file = common::write(d.path(), "from-the-gp.json", &bundle.to_string());
    p.import_file(&file, ImportOptions::default()).unwrap();
    // The timeline shows the fact once; the GP's copy is the row stored after it.
    let gp = (mine.id + 1..mine.id + 10)
        .find_map(|id| p.show(id).ok().filter(|d| !d.json.contains("\"meta\"")))
        .expect("the GP's copy");
    assert!(
        gp.item.source != own.item.source,
        "{} vs {}",
        gp.item.source,
        own.item.source
    );
    assert_eq!(
        gp.item.sensitivity,
        vec!["PSY".to_string()],
        "the label follows the fact"
    );
    let why = &gp.labels[0].rule;
    assert!(
        why.starts_with(&format!("same fact as item {}: ", mine.id)),
        "show says why: {why}"
    );

    // A grantee of the mood entry's category, without PSY, sees neither copy.
    let (_d2, person) = grantee_of(&p, own.item.category);
    let seen = carry_core::share::view_as(&p, &person).unwrap();
    assert!(
        seen.iter().all(|i| i.display != own.item.display),
        "no copy of the mood entry reaches the grantee: {seen:?}"
    );

    // Anything scoped without PSY sees neither copy: the grant's rule is the column.
    let restricted: Vec<i64> = p
        .search("mood", None)
        .unwrap()
        .into_iter()
        .filter(|i| i.sensitivity.is_empty())
        .map(|i| i.id)
        .collect();
    assert!(restricted.is_empty(), "no unlabelled copy: {restricted:?}");
}

#[test]
fn a_reading_that_came_back_from_the_gp_is_one_row_everywhere_but_the_lossless_export() {
    let (d, p) = common::profile();
    let mine = p
        .add_reading(&Reading::parse("weight", "72.5kg").unwrap(), None)
        .unwrap();
    let own = p.show(mine.id).unwrap();
    let mut copy: serde_json::Value = serde_json::from_str(&own.json).unwrap();
    copy["note"] = serde_json::json!([{ "text": "seen by the practice nurse" }]);
    let bundle = serde_json::json!({
        "resourceType": "Bundle", "type": "collection",
        "entry": [{ "fullUrl": "https://gp.example/fhir/Observation/w1", "resource": copy }]
    });
    let file = common::write(d.path(), "from-the-gp.json", &bundle.to_string());
    p.import_file(&file, ImportOptions::default()).unwrap();

    let hits = p.search("weight", None).unwrap();
    assert_eq!(hits.len(), 1, "one row for the fact: {hits:?}");
    assert_eq!(hits[0].id, mine.id);
    assert_eq!(hits[0].also_from.len(), 1, "{hits:?}");

    let (_d2, person) = grantee_of(&p, own.item.category);
    let seen: Vec<_> = carry_core::share::view_as(&p, &person)
        .unwrap()
        .into_iter()
        .filter(|i| i.display.contains("72.5"))
        .collect();
    assert_eq!(seen.len(), 1, "the grantee gets one copy: {seen:?}");
    assert_ne!(
        seen[0].id, mine.id,
        "the most complete copy: the GP's, with its note"
    );

    let export = |one_per_fact: bool| -> usize {
        let mut out = Vec::new();
        p.export(
            &carry_core::ExportScope {
                one_per_fact,
                ..Default::default()
            },
            &mut out,
        )
        .unwrap();
        let b: serde_json::Value = serde_json::from_slice(&out).unwrap();
        b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["resource"].to_string().contains("72.5"))
            .count()
    };
    assert_eq!(export(false), 2, "the export keeps every copy");
    assert_eq!(export(true), 1);
}
