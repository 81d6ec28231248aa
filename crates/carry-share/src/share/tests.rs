//! Delivery between two profiles without a relay: envelopes are taken from the
//! sender's queue and handed to the recipient in chosen orders, to prove that a
//! tampered, replayed, out-of-order or unknown envelope is refused with a typed
//! error and changes nothing already stored. (The exchanges that involve a backup,
//! a sync outbox or a device's new keys are the core's tests.)

use super::testing::*;
use super::*;
use crate::error::EnvelopeProblem;
use crate::import::ImportOptions;
use crate::readings::Reading;
use crate::record::Category;

#[test]
fn envelopes_are_checked_and_refusals_change_nothing() {
    let d = tempfile::tempdir().unwrap();
    let patient = profile(&d.path().join("p"), "Ned Hintz");
    let carer = profile(&d.path().join("c"), "Sam Carer");
    patient
        .import_file(&fixture(), ImportOptions::default())
        .unwrap();
    introduce(&patient, &carer);
    let scope = Scope {
        categories: vec![Category::VitalSigns, Category::Medications],
        ..Scope::default()
    };
    let g = grant(
        &patient,
        &NewGrant {
            person: handle_of(&carer),
            role: Role::Contributor,
            scope,
            purpose: "test".into(),
            basis: None,
            duration_s: None,
            unverified: true,
        },
    )
    .unwrap();
    assert!(g.new_access);
    patient.vault().write(outbox::prepare_deliveries).unwrap();
    let first = drain(&patient);
    assert!(first.len() >= 2, "a grant and at least one delivery");

    // A tampered envelope is refused before anything is written.
    let mut tampered = first[0].body.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let t = outbox::Queued {
        id: 0,
        mailbox: first[0].mailbox.clone(),
        tag: first[0].tag.clone(),
        body: tampered,
    };
    assert_eq!(problem(deliver(&carer, &t)), EnvelopeProblem::Tampered);
    assert!(received_profiles(&carer).unwrap().is_empty());

    // Records before their grant: nobody holds that grant yet.
    assert_eq!(
        problem(deliver(&carer, &first[1])),
        EnvelopeProblem::UnknownSender
    );
    for e in &first {
        deliver(&carer, e).unwrap();
    }
    let n = shared_count(&carer);
    assert_eq!(
        n,
        view_as(&patient, &handle_of(&carer)).unwrap().len() as u64
    );
    assert!(n > 10);

    // Replays of the grant and of a delivery.
    assert_eq!(
        problem(deliver(&carer, &first[0])),
        EnvelopeProblem::Replayed
    );
    assert_eq!(
        problem(deliver(&carer, first.last().unwrap())),
        EnvelopeProblem::Replayed
    );
    assert_eq!(shared_count(&carer), n);

    // Moved to another mailbox or tag: does not open.
    let moved = outbox::Queued {
        id: 0,
        mailbox: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        tag: first[1].tag.clone(),
        body: first[1].body.clone(),
    };
    assert_eq!(problem(deliver(&carer, &moved)), EnvelopeProblem::Tampered);

    // Two changes, delivered out of order: the later one is refused and the carer
    // asks for the whole record again.
    let r = Reading::parse("weight", "80kg").unwrap();
    patient.add_reading(&r, None).unwrap();
    patient.vault().write(outbox::prepare_deliveries).unwrap();
    let second = drain(&patient);
    patient.add_reading(&r, None).unwrap();
    patient.vault().write(outbox::prepare_deliveries).unwrap();
    let third = drain(&patient);
    assert_eq!((second.len(), third.len()), (1, 1));
    assert_eq!(
        problem(deliver(&carer, &third[0])),
        EnvelopeProblem::OutOfOrder
    );
    assert_eq!(shared_count(&carer), n);
    let resync = drain(&carer);
    assert_eq!(resync.len(), 1);
    deliver(&patient, &resync[0]).unwrap();
    // In order, both apply.
    deliver(&carer, &second[0]).unwrap();
    deliver(&carer, &third[0]).unwrap();
    assert_eq!(shared_count(&carer), n + 2);
    // The resync request makes the next delivery a whole record, which may jump
    // the sequence forward.
    patient.vault().write(outbox::prepare_deliveries).unwrap();
    let reset = drain(&patient);
    assert!(!reset.is_empty());
    for e in &reset {
        deliver(&carer, e).unwrap();
    }
    assert_eq!(shared_count(&carer), n + 2);

    // Someone the carer does not know.
    let stranger = profile(&d.path().join("s"), "Stranger");
    introduce(&stranger, &carer);
    let sealed_by_stranger = {
        let me = stranger
            .vault()
            .write(|c| crate::vault::identity::get(c))
            .unwrap();
        let to = carer
            .vault()
            .write(|c| crate::vault::identity::get(c))
            .unwrap()
            .public();
        let m = envelope::Message {
            v: 1,
            grant: g.grant.clone(),
            seq: 99,
            at: 0,
            body: envelope::Body::Revoke,
        };
        outbox::Queued {
            id: 0,
            mailbox: to.mailbox(),
            tag: "t".into(),
            body: envelope::seal(&me, &to.enc, &to.mailbox(), "t", &m).unwrap(),
        }
    };
    assert_eq!(
        problem(deliver(&carer, &sealed_by_stranger)),
        EnvelopeProblem::UnknownSender
    );
    assert_eq!(shared_count(&carer), n + 2);

    // A contribution made while the carer was a contributor arrives after the grant
    // became a viewer's: refused and audited.
    contribute(
        &carer,
        &handle_of(&patient),
        &Reading::parse("pulse", "61").unwrap(),
        None,
    )
    .unwrap();
    let contribution = drain(&carer);
    let mut viewer = g.clone();
    viewer.role = Role::Viewer;
    grant(
        &patient,
        &NewGrant {
            person: handle_of(&carer),
            role: Role::Viewer,
            scope: viewer.scope.clone(),
            purpose: "test".into(),
            basis: None,
            duration_s: None,
            unverified: true,
        },
    )
    .unwrap();
    let before = patient.stats().unwrap().resources;
    assert_eq!(
        problem(deliver(&patient, &contribution[0])),
        EnvelopeProblem::NotAllowed
    );
    assert_eq!(patient.stats().unwrap().resources, before);
    let log = audit_log(&patient, 10).unwrap();
    assert!(log.iter().any(|e| e.event == "contribution-rejected"));
    assert!(verify_audit(&patient).unwrap().ok());

    // The changed grant reaches the carer, who can no longer add.
    for e in drain(&patient) {
        deliver(&carer, &e).unwrap();
    }
    let err = contribute(&carer, &handle_of(&patient), &r, None).unwrap_err();
    assert!(matches!(err, Error::Denied { .. }), "{err:?}");
}

#[test]
fn restricted_items_need_verification_and_hidden_items_stay_back() {
    let d = tempfile::tempdir().unwrap();
    let patient = profile(&d.path().join("p"), "Ned Hintz");
    let carer = profile(&d.path().join("c"), "Sam Carer");
    patient
        .import_file(&fixture(), ImportOptions::default())
        .unwrap();
    introduce(&patient, &carer);
    let who = handle_of(&carer);
    let all = Scope {
        categories: Category::ALL.to_vec(),
        include_labels: vec!["PSY".into()],
        ..Scope::default()
    };
    let new = |scope: Scope| NewGrant {
        person: who.clone(),
        role: Role::Viewer,
        scope,
        purpose: String::new(),
        basis: None,
        duration_s: Some(3600),
        unverified: true,
    };
    assert!(matches!(
        grant(&patient, &new(all.clone())),
        Err(Error::Denied { .. })
    ));
    let plain = Scope {
        include_labels: vec![],
        ..all.clone()
    };
    grant(&patient, &new(plain.clone())).unwrap();
    let shown = view_as(&patient, &who).unwrap();
    assert!(shown.iter().all(|i| i.sensitivity.is_empty()));
    let hidden = shown[0].id;
    grant(
        &patient,
        &new(Scope {
            hidden: vec![hidden],
            ..plain
        }),
    )
    .unwrap();
    let shown2 = view_as(&patient, &who).unwrap();
    assert_eq!(shown2.len(), shown.len() - 1);
    assert!(shown2.iter().all(|i| i.id != hidden));
    verify_person(&patient, &who).unwrap();
    grant(&patient, &new(all)).unwrap();
    let consent = consent(&patient, &grants(&patient).unwrap()[0].grant).unwrap();
    assert_eq!(consent["resourceType"], "Consent");
    assert_eq!(consent["provision"]["type"], "permit");
    assert_eq!(consent["provision"]["securityLabel"][0]["code"], "PSY");
}

#[test]
fn a_grant_without_a_length_lasts_the_persons_default() {
    let d = tempfile::tempdir().unwrap();
    let patient = profile(&d.path().join("p"), "Ned Hintz");
    let carer = profile(&d.path().join("c"), "Sam Carer");
    introduce(&patient, &carer);
    let new = NewGrant {
        person: handle_of(&carer),
        role: Role::Viewer,
        scope: Scope {
            categories: vec![Category::Medications],
            ..Scope::default()
        },
        purpose: String::new(),
        basis: None,
        duration_s: None,
        unverified: true,
    };
    let days = |g: &GrantInfo| (g.expires_at - crate::time::now_unix() + 60) / 86_400;
    assert_eq!(days(&grant(&patient, &new).unwrap()), 90);
    crate::prefs::set(
        &patient,
        &crate::prefs::PrefsChange {
            default_grant_days: Some(14),
            ..crate::prefs::PrefsChange::default()
        },
    )
    .unwrap();
    // A change to the grant (a new revision) takes the new default too.
    assert_eq!(days(&grant(&patient, &new).unwrap()), 14);
    // A length given explicitly wins.
    let explicit = NewGrant {
        duration_s: Some(3 * 86_400),
        ..new
    };
    assert_eq!(days(&grant(&patient, &explicit).unwrap()), 3);
}

#[test]
fn people_are_found_by_id_name_or_a_prefix_only_one_has() {
    let d = tempfile::tempdir().unwrap();
    let me = profile(&d.path().join("p"), "Ned Hintz");
    let add = |name: &str| {
        let id = crate::crypto::identity::Identity::generate()
            .unwrap()
            .public();
        me.vault()
            .write(|c| {
                let tx = c.transaction()?;
                people::upsert_person(&tx, name, &id, RELAY)?;
                tx.commit()?;
                Ok(())
            })
            .unwrap();
        id.handle()
    };
    let sam = add("Sam Carer");
    let other = add("Samira Khan");
    let find = |who: &str| me.vault().read(|c| Ok(people::find(c, who)?.1.person));
    assert_eq!(find(&sam).unwrap(), sam);
    assert_eq!(find("sam carer").unwrap(), sam, "a whole name, any case");
    assert_eq!(find("samI").unwrap(), other, "a prefix only one name has");
    assert_eq!(find(&other[..5]).unwrap(), other, "a prefix of the id");
    match find("Sam") {
        Err(Error::InvalidInput { reason }) => {
            assert!(
                reason.contains("Sam Carer") && reason.contains("Samira Khan"),
                "{reason}"
            );
            assert!(reason.contains(&sam) && reason.contains(&other), "{reason}");
        }
        other => panic!("expected an ambiguity, got {other:?}"),
    }
    assert!(matches!(find("Bob"), Err(Error::NotFound { .. })));
    assert!(matches!(find("  "), Err(Error::InvalidInput { .. })));
}

#[test]
fn one_copy_of_a_fact_travels_and_names_the_other_sources() {
    let d = tempfile::tempdir().unwrap();
    let (patient, carer, _) = patient_with_carer(d.path());
    let mine = patient
        .add_reading(
            &crate::readings::Reading::parse("weight", "72.5kg").unwrap(),
            None,
        )
        .unwrap();
    let mut copy: serde_json::Value =
        serde_json::from_str(&patient.show(mine.id).unwrap().json).unwrap();
    copy["note"] = serde_json::json!([{ "text": "seen by the practice nurse" }]);
    let bundle = serde_json::json!({
        "resourceType": "Bundle", "type": "collection",
        "entry": [{ "fullUrl": "https://gp.example/fhir/Observation/w1", "resource": copy }]
    });
    let file = d.path().join("from-the-gp.json");
    std::fs::write(&file, bundle.to_string()).unwrap();
    patient
        .import_file(&file, ImportOptions::default())
        .unwrap();
    patient.vault().write(outbox::prepare_deliveries).unwrap();
    for e in drain(&patient) {
        deliver(&carer, &e).unwrap();
    }
    let r = received_profiles(&carer).unwrap();
    let copy = open_received(&carer, &r[0].profile).unwrap();
    let weights: Vec<_> = copy
        .timeline(&Default::default())
        .unwrap()
        .items
        .into_iter()
        .filter(|i| i.display.contains("72.5"))
        .collect();
    assert_eq!(weights.len(), 1, "one copy: {weights:?}");
    assert_eq!(
        weights[0].source, "from-the-gp.json",
        "the most complete one"
    );
    assert_eq!(
        weights[0].also_from,
        vec!["self".to_string()],
        "{weights:?}"
    );
}

/// A PDF of `len` bytes (a header, then bytes that do not compress).
fn pdf(len: usize) -> Vec<u8> {
    let mut b = b"%PDF-1.7\n".to_vec();
    let mut x: u32 = 0x2545_4620;
    while b.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b.extend_from_slice(&x.to_le_bytes());
    }
    b.truncate(len);
    b
}

#[test]
fn a_document_larger_than_an_envelope_travels_in_parts_and_opens_whole() {
    let d = tempfile::tempdir().unwrap();
    let (patient, carer, _) = patient_with_carer(d.path());
    let letter = pdf(5 << 20);
    let item = patient
        .attach_document(&letter, "Discharge letter", Some("application/pdf"))
        .unwrap();
    // A grant that holds documents.
    grant(
        &patient,
        &NewGrant {
            person: handle_of(&carer),
            role: Role::Viewer,
            scope: Scope {
                categories: vec![Category::Documents],
                ..Scope::default()
            },
            purpose: "letters".into(),
            basis: None,
            duration_s: None,
            unverified: true,
        },
    )
    .unwrap();
    patient.vault().write(outbox::prepare_deliveries).unwrap();
    let envelopes = drain(&patient);
    assert!(envelopes.len() >= 12, "{} envelopes", envelopes.len());
    assert!(envelopes
        .iter()
        .all(|e| e.body.len() <= super::envelope::PLAINTEXT_MAX + 1024));
    // Every envelope but the last leaves the document unseen; the last makes it whole.
    let (last, first) = envelopes.split_last().unwrap();
    for e in first {
        deliver(&carer, e).unwrap();
    }
    let held = |carer: &Profile| {
        received_profiles(carer)
            .unwrap()
            .into_iter()
            .map(|r| open_received(carer, &r.profile).unwrap())
            .find_map(|p| {
                let page = p
                    .timeline(&crate::query::TimelineQuery {
                        categories: vec![Category::Documents],
                        ..Default::default()
                    })
                    .unwrap();
                page.items
                    .iter()
                    .find(|i| i.display.contains("Discharge letter"))
                    .map(|i| (p.document_file(i.id).unwrap(), i.display.clone()))
            })
    };
    assert!(held(&carer).is_none(), "a part-made document was stored");
    deliver(&carer, last).unwrap();
    let (file, display) = held(&carer).expect("the document arrived");
    assert_eq!(file.bytes, letter, "the document opens byte for byte");
    assert_eq!(file.content_type, "application/pdf");
    assert_eq!(file.title, "Discharge letter");
    assert!(display.contains("Discharge letter"), "{display}");
    // The patient's own copy opens the same.
    assert_eq!(patient.document_file(item.id).unwrap().bytes, letter);
}

#[test]
fn parts_that_do_not_add_up_are_refused_and_a_resent_item_starts_afresh() {
    use super::envelope::{Part, Shared};
    let d = tempfile::tempdir().unwrap();
    let (_patient, carer, _) = patient_with_carer(d.path());
    let r = received_profiles(&carer).unwrap();
    let p = open_received(&carer, &r[0].profile).unwrap();
    let before = p.stats().unwrap().resources;
    let seq = p
        .vault()
        .read(|c| crate::vault::meta::get(c, "shared_seq"))
        .unwrap()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap();
    let doc =
        serde_json::json!({"resourceType": "Basic", "id": "x", "code": {"text": "t"}}).to_string();
    let (a, b) = doc.split_at(10);
    let part = |json: &str, i: u32, n: u32| Shared {
        k: "r999999".into(),
        src: "gp".into(),
        sk: "provider".into(),
        by: "provider".into(),
        json: json.into(),
        url: None,
        also: vec![],
        part: Some(Part { i, n }),
    };
    for bad in [part(a, 2, 2), part(a, 0, 0), part(a, 0, 1000)] {
        let e = received::apply_records(&p, seq + 1, false, &[bad], &[]).unwrap_err();
        assert!(matches!(
            e,
            Error::Envelope {
                problem: EnvelopeProblem::Malformed
            }
        ));
    }
    // The first part of a resend, then the whole of it: one item, from the resend.
    received::apply_records(&p, seq + 1, false, &[part("garbage", 0, 3)], &[]).unwrap();
    received::apply_records(&p, seq + 2, false, &[part(a, 0, 2)], &[]).unwrap();
    assert_eq!(p.stats().unwrap().resources, before);
    received::apply_records(&p, seq + 3, false, &[part(b, 1, 2)], &[]).unwrap();
    assert_eq!(p.stats().unwrap().resources, before + 1);
    let left: i64 = p
        .vault()
        .read(|c| Ok(c.query_row("SELECT count(*) FROM shared_parts", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(left, 0, "parts are dropped once joined");
}

#[test]
fn a_parents_grant_to_a_childs_record_shows_its_terms_and_the_notices_ahead() {
    use super::proxy::{Decider, NoticeKind, Recipient, Standing};
    let d = tempfile::tempdir().unwrap();
    let child = profile(&d.path().join("p"), "Ava Jones");
    let parent = profile(&d.path().join("c"), "Sam Jones");
    // Eleven in 20 days: the grant ends at the review, with a week's notice ahead.
    let today = time::OffsetDateTime::now_utc().date();
    let mut eleventh = today + time::Duration::days(20);
    if eleventh.month() == time::Month::February && eleventh.day() == 29 {
        eleventh += time::Duration::days(1);
    }
    let born = eleventh.replace_year(eleventh.year() - 11).unwrap();
    let text = format!(
        r#"{{"resourceType":"Patient","id":"ava","name":[{{"family":"Jones","given":["Ava"]}}],"birthDate":"{born}"}}"#
    );
    let file = d.path().join("ava.json");
    std::fs::write(&file, text).unwrap();
    child.import_file(&file, ImportOptions::default()).unwrap();
    introduce(&child, &parent);
    let g = grant(
        &child,
        &NewGrant {
            person: handle_of(&parent),
            role: Role::Manager,
            scope: Scope {
                categories: vec![Category::Immunisations],
                ..Scope::default()
            },
            purpose: "school forms".into(),
            basis: Some(Basis {
                kind: BasisKind::ParentalResponsibility,
                evidence: Some("birth certificate seen".into()),
                decided_by: Some(Decider::Practice),
            }),
            duration_s: None,
            unverified: true,
        },
    )
    .unwrap();
    let eleventh = proxy::midnight(proxy::birthday(born, 11).unwrap());
    assert_eq!(
        g.expires_at, eleventh,
        "a child's grant ends at the next review"
    );
    assert_eq!(g.standing, Some(Standing::Active));
    let kinds: Vec<_> = g.notices.iter().map(|n| (n.kind, n.to)).collect();
    assert_eq!(
        kinds,
        [
            (NoticeKind::End { days_before: 7 }, Recipient::Keeper),
            (NoticeKind::Ended, Recipient::Both)
        ],
        "the 30-day notice is already past; the end is the last"
    );
    assert_eq!(g.notices[1].at, eleventh);

    // The Consent export records the basis, the evidence and who decided.
    let doc = child.vault().read(|c| grants::doc(c, &g.grant)).unwrap();
    let consent = child
        .vault()
        .read(|c| consent::consent(c, &doc, "active"))
        .unwrap();
    assert_eq!(
        consent["sourceReference"]["display"],
        "basis: parental-responsibility; evidence: birth certificate seen; decided by: practice"
    );

    // An ordinary grant has no proxy terms.
    let other = profile(&d.path().join("o"), "Kim Friend");
    introduce(&child, &other);
    let plain = grant(
        &child,
        &NewGrant {
            person: handle_of(&other),
            role: Role::Viewer,
            scope: Scope {
                categories: vec![Category::Immunisations],
                ..Scope::default()
            },
            purpose: String::new(),
            basis: None,
            duration_s: Some(3600),
            unverified: true,
        },
    )
    .unwrap();
    // Under 16, every grant from a child's record is a parent's unless said otherwise.
    assert_eq!(
        plain.basis.map(|b| b.kind),
        Some(BasisKind::ParentalResponsibility)
    );
    assert_eq!(plain.standing, Some(Standing::Active));
}

mod keeping {
    use super::super::dependants::{self, NewDependant, Purpose};
    use super::super::proxy::{Decider, NoticeKind, Standing};
    use super::*;
    use crate::time::now_unix;

    const YEAR: i64 = 365 * 86_400;

    fn lpa(name: &str) -> NewDependant {
        NewDependant {
            name: name.into(),
            born: Some("1941-03-02".into()),
            basis: Basis {
                kind: BasisKind::LastingPowerOfAttorney,
                evidence: Some("LPA registered, OPG ref 7000-1234-5678".into()),
                decided_by: Some(Decider::Person),
            },
            ends_at: None,
        }
    }

    fn events(p: &Profile) -> Vec<(String, String)> {
        p.vault()
            .read(|c| crate::audit::list(c, 100))
            .unwrap()
            .into_iter()
            .map(|e| (e.event, e.detail))
            .collect()
    }

    #[test]
    fn a_keeper_holds_a_record_for_someone_with_no_phone() {
        let d = tempfile::tempdir().unwrap();
        let keeper = profile(&d.path().join("k"), "Tom Jene");
        let gran = dependants::add(&keeper, &lpa("Mary Jene")).unwrap();
        assert!(gran.profile.starts_with("d-"));
        assert_eq!(gran.standing, Standing::Active);
        assert_eq!(gran.terms.keeper, "Tom Jene");
        // No end date: only the removal after five years unused lies ahead.
        assert_eq!(gran.notices.len(), 1);
        assert_eq!(gran.notices[0].kind, NoticeKind::Removed);

        // The record is the person's own profile, opened by id or name.
        let rec = dependants::open(&keeper, "mary jene", Purpose::Use).unwrap();
        assert_eq!(rec.info().unwrap().name, "Mary Jene");
        rec.import_file(&fixture(), ImportOptions::default())
            .unwrap();
        assert!(rec.stats().unwrap().resources > 0);
        drop(rec);
        let listed = dependants::list(&keeper).unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].last_used_at.is_some(), "opening it counts as use");

        // Keeper and dependant know each other, verified, both ways: once she has
        // her own phone she can grant him access back.
        let rec = dependants::open(&keeper, &gran.profile, Purpose::Use).unwrap();
        let known = rec.vault().read(people::list).unwrap();
        assert_eq!(known.len(), 1);
        assert!(known[0].verified);
        assert_eq!(known[0].name, "Tom Jene");
        let mine = keeper.vault().read(people::list).unwrap();
        assert!(mine.iter().any(|p| p.name == "Mary Jene" && p.verified));

        // Both audit logs record the basis and who decided.
        let kept = events(&rec);
        assert!(kept.iter().any(|(e, t)| e == "keeper-recorded"
            && t.contains("Tom Jene")
            && t.contains("lasting-power-of-attorney")
            && t.contains("decided by person")));
        assert!(events(&keeper)
            .iter()
            .any(|(e, t)| e == "dependant-added" && t.contains(&gran.profile)));

        // Its key is wrapped for dependants only: the received-record wrapping does
        // not open it.
        drop(rec);
        let dir = dependants::dir_of(keeper.vault().dir(), &gran.profile);
        let wrong = keeper
            .vault()
            .read(|c| {
                super::super::received::ReceivedKeyStore::new(c, b"carry/vault-key/received/v1")
            })
            .unwrap();
        assert!(matches!(Profile::open(&dir, &wrong), Err(Error::WrongKey)));

        // Handing over: marked in the record, deleted from the keeper's device.
        let rec = dependants::open(&keeper, &gran.profile, Purpose::HandOver).unwrap();
        dependants::mark_handed_over(&rec).unwrap();
        assert!(rec
            .vault()
            .read(dependants::handed_over_at)
            .unwrap()
            .is_some());
        drop(rec);
        assert_eq!(
            dependants::remove(&keeper, &gran.profile, true).unwrap(),
            "Mary Jene"
        );
        assert!(!dir.exists());
        assert!(dependants::list(&keeper).unwrap().is_empty());
        assert!(events(&keeper).iter().any(|(e, _)| e == "handed-over"));
        assert!(matches!(
            dependants::open(&keeper, &gran.profile, Purpose::Use),
            Err(Error::NotFound { .. })
        ));
    }

    #[test]
    fn a_childs_record_is_reviewed_at_11_and_13_and_suspended_at_16() {
        let d = tempfile::tempdir().unwrap();
        let parent = profile(&d.path().join("k"), "Sam Jones");
        let new = NewDependant {
            name: "Ava Jones".into(),
            born: Some("2014-06-15".into()),
            basis: Basis {
                kind: BasisKind::ParentalResponsibility,
                evidence: None,
                decided_by: None,
            },
            ends_at: None,
        };
        let ava = dependants::add(&parent, &new).unwrap();
        // Twelve: the review at 13, the suspension at 16, and removal if the
        // record goes five years unused.
        let ahead: Vec<_> = ava.notices.iter().map(|n| n.kind).collect();
        assert_eq!(
            ahead,
            [
                NoticeKind::Review { age: 13 },
                NoticeKind::Suspension { days_before: 30 },
                NoticeKind::Suspension { days_before: 7 },
                NoticeKind::Suspended,
                NoticeKind::Removed,
            ]
        );
        // Nothing is due yet, however often asked.
        assert!(dependants::notices_due(&parent).unwrap().is_empty());

        // Sixteen years pass (the stored terms moved back, as a clock moving on).
        let rec = dependants::open(&parent, "Ava Jones", Purpose::Use).unwrap();
        rec.vault()
            .write(|c| {
                let mut t = dependants::terms_of(c)?;
                t.born = Some("2009-01-10".into());
                t.since -= 16 * YEAR;
                crate::vault::meta::set(c, "keeper_terms", &serde_json::to_string(&t)?)?;
                crate::vault::meta::set(c, "keeper_used_at", &now_unix().to_string())?;
                crate::vault::meta::set(c, "keeper_told_until", &t.since.to_string())
            })
            .unwrap();
        drop(rec);
        // Every notice that fell due meanwhile, once, in order.
        let due: Vec<_> = dependants::notices_due(&parent)
            .unwrap()
            .into_iter()
            .map(|n| n.notice.kind)
            .collect();
        assert_eq!(
            due,
            [
                NoticeKind::Review { age: 11 },
                NoticeKind::Review { age: 13 },
                NoticeKind::Suspension { days_before: 30 },
                NoticeKind::Suspension { days_before: 7 },
                NoticeKind::Suspended,
            ]
        );
        assert!(dependants::notices_due(&parent).unwrap().is_empty());
        // The parent may no longer use it; only hand it over (or delete it).
        let listed = dependants::list(&parent).unwrap();
        assert!(matches!(listed[0].standing, Standing::Suspended { .. }));
        match dependants::open(&parent, &ava.profile, Purpose::Use) {
            Err(Error::Denied { reason }) => {
                assert!(reason.contains("turned 16"), "{reason}");
                assert!(reason.contains("hand-over"), "{reason}");
            }
            other => panic!("expected Denied, got {:?}", other.map(|_| ())),
        }
        assert!(dependants::open(&parent, &ava.profile, Purpose::HandOver).is_ok());
        dependants::remove(&parent, &ava.profile, false).unwrap();
        assert!(events(&parent)
            .iter()
            .any(|(e, _)| e == "dependant-removed"));
    }

    #[test]
    fn an_end_date_gives_notice_and_bad_terms_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let keeper = profile(&d.path().join("k"), "Tom Jene");
        let now = now_unix();
        let mut new = lpa("Mary Jene");
        new.basis.kind = BasisKind::CourtDeputy;
        new.basis.decided_by = Some(Decider::Court);
        new.ends_at = Some(now + 10 * 86_400);
        let m = dependants::add(&keeper, &new).unwrap();
        let ahead: Vec<_> = m.notices.iter().map(|n| n.kind).collect();
        assert_eq!(
            ahead,
            [NoticeKind::End { days_before: 7 }, NoticeKind::Ended],
            "the 30-day notice fell before the keeping began"
        );

        let refused = |n: NewDependant| dependants::add(&keeper, &n).unwrap_err();
        let mut n = lpa("  ");
        assert!(matches!(refused(n.clone()), Error::InvalidInput { .. }));
        n = lpa("Mary");
        n.born = Some("next tuesday".into());
        assert!(matches!(refused(n.clone()), Error::InvalidInput { .. }));
        n.born = Some("2999-01-01".into());
        assert!(matches!(refused(n.clone()), Error::InvalidInput { .. }));
        n.born = None;
        n.basis.kind = BasisKind::ParentalResponsibility;
        assert!(matches!(refused(n.clone()), Error::InvalidInput { .. }));
        n.born = Some("2001-01-01".into());
        assert!(matches!(refused(n.clone()), Error::Denied { .. }));
        n = lpa("Mary");
        n.ends_at = Some(now - 1);
        assert!(matches!(refused(n.clone()), Error::InvalidInput { .. }));
        n = lpa("Mary");
        n.basis.evidence = Some("x".repeat(dependants::TEXT_MAX + 1));
        assert!(matches!(refused(n), Error::InvalidInput { .. }));
        // Refusals made nothing.
        assert_eq!(dependants::list(&keeper).unwrap().len(), 1);
        assert!(matches!(
            dependants::open(&keeper, "nobody", Purpose::Use),
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            dependants::open(&keeper, "../k", Purpose::Use),
            Err(Error::NotFound { .. })
        ));
    }
}
