//! Reading the record: timeline paging and filters, search, show with resolved
//! references, stats, sensitivity, readings, and scoped export.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use std::collections::HashSet;

use carry_core::{Category, EnteredBy, Error, ExportScope, ImportOptions, Reading, TimelineQuery};

fn loaded() -> (tempfile::TempDir, carry_core::Profile) {
    let (d, p) = common::profile();
    for f in [
        "fixtures/fhir/synthea",
        "fixtures/fhir/hl7-examples/bundle-references.json",
    ] {
        let path = common::shared(f);
        let files: Vec<_> = if path.is_dir() {
            std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect()
        } else {
            vec![path]
        };
        for file in files {
            p.import_file(&file, ImportOptions::default()).unwrap();
        }
    }
    (d, p)
}

#[test]
fn timeline_pages_to_the_end_newest_first() {
    let (_d, p) = loaded();
    let total = p.stats().unwrap().resources as usize;
    let mut seen = HashSet::new();
    let mut cursor = None;
    let mut last_date: Option<String> = None;
    let mut undated_started = false;
    let mut grouped = 0;
    loop {
        let page = p
            .timeline(&TimelineQuery {
                // Every category, claims and other paperwork too.
                categories: Category::ALL.to_vec(),
                limit: Some(97),
                cursor: cursor.clone(),
                ..Default::default()
            })
            .unwrap();
        for item in &page.items {
            assert!(seen.insert(item.id), "item {} twice", item.id);
            grouped += item.also_from.len();
            match &item.date {
                Some(d) => {
                    assert!(!undated_started, "dated item after undated ones");
                    if let Some(prev) = &last_date {
                        // Dates are compared on their day: offsets make finer checks noisy.
                        assert!(
                            d.get(..10) <= prev.get(..10).map(|s| s.max("")),
                            "{d} after {prev}"
                        );
                    }
                    last_date = Some(d.clone());
                }
                None => undated_started = true,
            }
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    // Every resource shows once: as a line, or grouped under the line of the same
    // fact from another file (the same Organization in several Synthea files).
    assert!(grouped > 0);
    assert_eq!(seen.len() + grouped, total);
}

#[test]
fn timeline_filters() {
    let (_d, p) = loaded();
    let vitals = p
        .timeline(&TimelineQuery {
            categories: vec![Category::VitalSigns],
            limit: Some(500),
            ..Default::default()
        })
        .unwrap();
    assert!(!vitals.items.is_empty());
    assert!(vitals
        .items
        .iter()
        .all(|i| i.category == Category::VitalSigns));
    let since = p
        .timeline(&TimelineQuery {
            since: Some("2015-01-01".into()),
            limit: Some(500),
            ..Default::default()
        })
        .unwrap();
    assert!(since
        .items
        .iter()
        .all(|i| i.date.as_deref().is_some_and(|d| d >= "2015")));
    let src = p
        .timeline(&TimelineQuery {
            source: Some("bundle-references.json".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(src.items.len(), 11);
    // Claims and other paperwork stay out of the timeline unless asked for.
    let everything = |categories: Vec<Category>| {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = p
                .timeline(&TimelineQuery {
                    categories: categories.clone(),
                    limit: Some(500),
                    cursor,
                    ..Default::default()
                })
                .unwrap();
            seen.extend(page.items);
            cursor = page.next_cursor;
            if cursor.is_none() {
                return seen;
            }
        }
    };
    let shown = everything(Vec::new());
    assert!(!shown.is_empty());
    assert!(shown.iter().all(|i| i.category != Category::Administrative));
    let paperwork = everything(vec![Category::Administrative]);
    assert!(paperwork
        .iter()
        .any(|i| i.resource_type == "ExplanationOfBenefit"));
    assert!(paperwork
        .iter()
        .all(|i| i.category == Category::Administrative));
    // Several categories at once: exactly their union.
    let two = everything(vec![Category::VitalSigns, Category::Immunisations]);
    let count = |c: Category| shown.iter().filter(|i| i.category == c).count();
    assert_eq!(
        two.len(),
        count(Category::VitalSigns) + count(Category::Immunisations)
    );
    assert!(two.len() > count(Category::VitalSigns));
    for bad in [
        TimelineQuery {
            since: Some("last tuesday".into()),
            ..Default::default()
        },
        TimelineQuery {
            cursor: Some("garbage".into()),
            ..Default::default()
        },
        TimelineQuery {
            limit: Some(0),
            ..Default::default()
        },
        TimelineQuery {
            limit: Some(10_000),
            ..Default::default()
        },
    ] {
        assert!(matches!(p.timeline(&bad), Err(Error::InvalidInput { .. })));
    }
}

#[test]
fn search_and_show_with_resolved_references() {
    let (_d, p) = loaded();
    let hits = p.search("hypertens", Some(20)).unwrap();
    assert!(!hits.is_empty());
    assert!(hits
        .iter()
        .any(|h| h.display.to_lowercase().contains("hypertension")));
    // The best matches, newest first (undated ones last).
    let dates: Vec<&str> = hits
        .iter()
        .map(|h| h.date.as_deref().unwrap_or(""))
        .collect();
    let mut sorted = dates.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert!(hits.len() >= 2 && dates == sorted, "{dates:?}");
    assert!(matches!(
        p.search("  ", None),
        Err(Error::InvalidInput { .. })
    ));
    assert!(p.search("\"OR NEAR(", None).unwrap().is_empty());

    // bundle-references.json: every way a Bundle can refer to an entry.
    let show = |full_url: &str| {
        let page = p
            .timeline(&TimelineQuery {
                source: Some("bundle-references.json".into()),
                ..Default::default()
            })
            .unwrap();
        let id = page
            .items
            .iter()
            .map(|i| p.show(i.id).unwrap())
            .find(|d| d.full_url.as_deref() == Some(full_url))
            .unwrap();
        id
    };
    let target_url = |d: &carry_core::Detail| {
        d.references[0]
            .target
            .map(|t| p.show(t).unwrap().full_url.unwrap())
    };
    let relative = show("http://example.org/fhir/Observation/123");
    assert_eq!(
        target_url(&relative).as_deref(),
        Some("http://example.org/fhir/Patient/23")
    );
    let absolute = show("http://example.org/fhir/Observation/124");
    assert_eq!(
        target_url(&absolute).as_deref(),
        Some("http://example.org/fhir/Patient/23")
    );
    let urn = show("http://example.org/fhir/Observation/12");
    assert_eq!(
        target_url(&urn).as_deref(),
        Some("urn:uuid:04121321-4af5-424c-a0e1-ed3aab1c349d")
    );
    let other_server = show("http://example.org/fhir-2/Observation/14");
    assert_eq!(
        target_url(&other_server),
        None,
        "Patient/23 on fhir-2 is not in the bundle"
    );
    let versioned = show("http://example.org/fhir/Observation/47");
    let t = p.show(versioned.references[0].target.unwrap()).unwrap();
    assert!(t.json.contains("\"versionId\":\"2\""), "{}", t.json);
    assert!(matches!(p.show(999_999), Err(Error::NotFound { .. })));
}

#[test]
fn readings_enter_the_record_as_the_patient() {
    let (_d, p) = loaded();
    let before = p.stats().unwrap().resources;
    for (kind, value) in [
        ("weight", "72.5kg"),
        ("bp", "120/80"),
        ("pulse", "64"),
        ("glucose", "5.6mmol/L"),
        ("mood", "3"),
    ] {
        let item = p
            .add_reading(&Reading::parse(kind, value).unwrap(), Some("morning"))
            .unwrap();
        assert_eq!(item.entered_by, EnteredBy::Patient);
        assert_eq!(item.source, "self");
    }
    assert_eq!(p.stats().unwrap().resources, before + 5);
    let mine = p
        .timeline(&TimelineQuery {
            source: Some("self".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(mine.items.len(), 5);
    let mood = mine
        .items
        .iter()
        .find(|i| i.display.starts_with("Mood"))
        .unwrap();
    assert_eq!(mood.sensitivity, ["PSY"]);
    let bp = mine
        .items
        .iter()
        .find(|i| i.display.starts_with("Blood pressure"))
        .unwrap();
    assert_eq!(bp.display, "Blood pressure: 120/80 mmHg");
    assert_eq!(bp.category, Category::VitalSigns);
    let detail = p.show(bp.id).unwrap();
    // The subject is the profile's own Patient, found at the first import.
    assert!(
        detail.references.iter().all(|r| r.target.is_some()),
        "{:?}",
        detail.references
    );
}

#[test]
fn scoped_export_and_stats() {
    let (_d, p) = loaded();
    let stats = p.stats().unwrap();
    assert_eq!(stats.by_type.values().sum::<u64>(), stats.resources);
    assert_eq!(stats.by_category.values().sum::<u64>(), stats.resources);
    let mut out = Vec::new();
    let scope = ExportScope {
        categories: vec![Category::Immunisations],
        ..Default::default()
    };
    let n = p.export(&scope, &mut out).unwrap();
    assert_eq!(n, stats.by_category["immunisations"]);
    let bundle: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["resource"]["resourceType"] == "Immunization"));
}

#[test]
fn export_to_file_appears_whole_and_refuses_a_folder() {
    let (d, p) = loaded();
    let path = d.path().join("out.json");
    let n = p.export_to_file(&ExportScope::default(), &path).unwrap();
    let bundle: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(bundle["entry"].as_array().unwrap().len() as u64, n);
    assert!(!d.path().join("out.carry-tmp").exists());
    let err = p
        .export_to_file(&ExportScope::default(), d.path())
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }));
    // A bad scope fails before anything is moved into place.
    let bad = ExportScope {
        since: Some("soon".into()),
        ..Default::default()
    };
    let other = d.path().join("other.json");
    assert!(p.export_to_file(&bad, &other).is_err());
    assert!(!other.exists() && !d.path().join("other.carry-tmp").exists());
}

/// Results over time: one value per fact, newest first, each with its source; a
/// reading entered at home joins the clinic's; search understands the concepts.
#[test]
fn trends_follow_a_concept_newest_first_and_search_knows_their_names() {
    let (d, p) = common::profile();
    let jene = common::shared(
        "fixtures/fhir/synthea/sotf-Jene_Cummings_8a2bb726-2f79-4940-a134-a374eef39af7.json",
    );
    p.import_file(&jene, ImportOptions::default()).unwrap();
    let bp = p.trend("blood pressure").unwrap();
    assert_eq!((bp.concept.as_str(), bp.points.len()), ("bp", 11));
    let dates: Vec<&str> = bp.points.iter().map(|x| x.date.as_str()).collect();
    let mut sorted = dates.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(dates, sorted, "newest first");
    assert!(bp.points.iter().all(|x| x.second.is_some() && x.comparable));
    assert!(
        bp.points[0].written.ends_with("mmHg"),
        "{}",
        bp.points[0].written
    );
    // A reading the person adds is the newest value, from `self`.
    p.add_reading(&Reading::parse("bp", "131/84").unwrap(), None)
        .unwrap();
    let bp = p.trend("bp").unwrap();
    assert_eq!(bp.points.len(), 12);
    assert_eq!(
        (bp.points[0].value, bp.points[0].second),
        (131.0, Some(84.0))
    );
    assert_eq!(bp.points[0].source, "self");
    // The same values come back from search, newest first.
    let found = p.search("bp", Some(50)).unwrap();
    assert_eq!(found.len(), 12);
    assert_eq!(found[0].id, bp.points[0].item_id);
    // A LOINC code is followed on its own; a word that names nothing is refused.
    assert_eq!(
        p.trend("29463-7").unwrap().points.len(),
        p.trend("weight").unwrap().points.len()
    );
    assert!(matches!(
        p.trend("happiness"),
        Err(Error::InvalidInput { .. })
    ));
    drop(d);
}

/// Appointments to come, soonest first; the past, cancelled and missed ones not.
#[test]
fn upcoming_appointments_come_soonest_first() {
    let (d, p) = common::profile();
    let day = |offset: i64| {
        let d = (time::OffsetDateTime::now_utc() + time::Duration::days(offset)).date();
        format!("{d}T09:30:00Z")
    };
    let appt = |id: &str, when: String, status: &str, what: &str| {
        serde_json::json!({"resource": {"resourceType": "Appointment", "id": id, "status": status,
            "description": what, "start": when,
            "participant": [{"actor": {"display": "Jene"}, "status": "accepted"}]}})
    };
    let bundle = serde_json::json!({"resourceType": "Bundle", "type": "collection", "entry": [
        appt("a1", day(30), "booked", "Diabetes review"),
        appt("a2", day(3), "booked", "Blood test"),
        appt("a3", day(10), "cancelled", "Dentist"),
        appt("a4", day(-10), "booked", "Past check-up"),
        appt("a5", day(5), "noshow", "Missed physio"),
    ]});
    let f = common::write(d.path(), "appts.json", &bundle.to_string());
    p.import_file(&f, ImportOptions::default()).unwrap();
    let upcoming: Vec<String> = p
        .appointments()
        .unwrap()
        .into_iter()
        .map(|i| i.display)
        .collect();
    assert_eq!(upcoming, ["Blood test", "Diabetes review"]);
}
