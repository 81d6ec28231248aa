//! The people to contact: the ones a provider's record names, the ones the person
//! adds (kept as RelatedPerson), checking, removing, and their place in summaries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use carry_core::contacts::NewContact;
use carry_core::links::{self, Preset};
use carry_core::{Error, ImportOptions, TimelineQuery};

fn amy() -> NewContact {
    NewContact {
        name: "Amy Lee".into(),
        relationship: Some("daughter".into()),
        phone: Some("07700 900123".into()),
        email: Some("amy@example.org".into()),
    }
}

#[test]
fn contacts_added_here_come_first_and_providers_ones_follow_once() {
    let (_d, p) = common::profile();
    p.import_file(
        &common::shared("fixtures/fhir/uk-core/UKCore-Patient-RichardSmith-Example.json"),
        ImportOptions::default(),
    )
    .unwrap();
    let from_gp = p.contacts().unwrap();
    assert_eq!(from_gp.len(), 1, "{from_gp:?}");
    assert_eq!(from_gp[0].item, None);
    assert_eq!(from_gp[0].name.as_deref(), Some("JACKSON Jane (Miss)"));
    assert_eq!(from_gp[0].phone.as_deref(), Some("07777123123"));

    let added = p.add_contact(&amy()).unwrap();
    assert!(added.item.is_some());
    assert_eq!(added.source, "self");
    assert_eq!(added.line(), "Amy Lee (daughter) 07700 900123");
    // The same person as the GP's record names (same name, same number written
    // otherwise) is listed once: the one the person added.
    let jane = p
        .add_contact(&NewContact {
            name: "Jackson Jane (miss)".into(),
            relationship: Some("Friend".into()),
            phone: Some("07777 123 123".into()),
            email: None,
        })
        .unwrap();
    let all = p.contacts().unwrap();
    assert_eq!(
        all.iter().map(|c| c.item).collect::<Vec<_>>(),
        [added.item, jane.item],
        "{all:?}"
    );
    assert_eq!(all[1].relationship.as_deref(), Some("Friend"));
}

#[test]
fn a_contact_that_is_not_one_is_refused_and_nothing_is_stored() {
    let (_d, p) = common::profile();
    let before = p.stats().unwrap().resources;
    for bad in [
        NewContact {
            name: " ".into(),
            ..amy()
        },
        NewContact {
            phone: Some("ring me".into()),
            ..amy()
        },
        NewContact {
            email: Some("amy@localhost".into()),
            ..amy()
        },
    ] {
        let e = p.add_contact(&bad).unwrap_err();
        assert!(matches!(e, Error::InvalidInput { .. }), "{bad:?}: {e}");
    }
    assert_eq!(p.stats().unwrap().resources, before);
    assert!(p.contacts().unwrap().is_empty());
}

#[test]
fn only_contacts_added_here_can_be_removed() {
    let (_d, p) = common::profile();
    p.import_file(
        &common::shared("fixtures/fhir/uk-core/UKCore-Patient-RichardSmith-Example.json"),
        ImportOptions::default(),
    )
    .unwrap();
    let patient = p
        .find("Patient/UKCore-Patient-RichardSmith-Example")
        .unwrap()[0];
    let e = p.remove_contact(patient).unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    assert!(matches!(
        p.remove_contact(999_999).unwrap_err(),
        Error::NotFound { .. }
    ));
    let added = p.add_contact(&amy()).unwrap();
    assert_eq!(p.contacts().unwrap().len(), 2);
    p.remove_contact(added.item.unwrap()).unwrap();
    let left = p.contacts().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].item, None);
    // Gone from the record too, not only from the list.
    let page = p.timeline(&TimelineQuery::default()).unwrap();
    assert!(page
        .items
        .iter()
        .all(|i| i.resource_type != "RelatedPerson"));
}

#[test]
fn summaries_name_the_contacts_the_person_added_first() {
    let (_d, p) = common::profile();
    p.import_file(
        &common::shared("fixtures/fhir/uk-core/UKCore-Patient-RichardSmith-Example.json"),
        ImportOptions::default(),
    )
    .unwrap();
    p.add_contact(&amy()).unwrap();
    let doc = links::summary_document(&p, &Preset::Emergency).unwrap();
    let summary = links::ips::summarise(&doc).unwrap();
    assert_eq!(
        summary.contacts,
        [
            "Amy Lee (daughter) 07700 900123",
            "JACKSON Jane (Miss) (personal relationship with the patient) 07777123123"
        ]
    );
    // As Patient.contact, where FHIR and the IPS read them; never a RelatedPerson
    // entry whose reference would have to resolve.
    let entries = doc["entry"].as_array().unwrap();
    let patient = entries
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Patient")
        .unwrap();
    assert_eq!(
        patient["resource"]["contact"][0]["telecom"][1]["value"],
        "amy@example.org"
    );
    assert!(entries
        .iter()
        .all(|e| e["resource"]["resourceType"] != "RelatedPerson"));
}

#[test]
fn a_record_with_no_patient_yet_still_keeps_a_contact() {
    let (_d, p) = common::profile();
    let c = p.add_contact(&amy()).unwrap();
    let shown = p.show(c.item.unwrap()).unwrap();
    let r: serde_json::Value = serde_json::from_str(&shown.json).unwrap();
    assert_eq!(r["resourceType"], "RelatedPerson");
    assert_eq!(r["patient"]["display"], "Test Person");
    assert_eq!(r["relationship"][0]["coding"][0]["code"], "DAU");
}
