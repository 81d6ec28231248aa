//! Delivery between two profiles without a relay: envelopes are taken from the
//! sender's queue and handed to the recipient in chosen orders, to prove that a
//! tampered, replayed, out-of-order or unknown envelope is refused with a typed
//! error and changes nothing already stored.

use std::path::{Path, PathBuf};

use super::*;
use crate::error::EnvelopeProblem;
use crate::record::Category;
use crate::{ImportOptions, PassphraseKeyStore};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/fhir/synthea/sotf-Ned_Hintz_e4b9259d-0f54-48d1-a35d-b526729a4dfe.json")
}

fn profile(dir: &Path, name: &str) -> Profile {
    let ks = PassphraseKeyStore::new("a test passphrase").unwrap();
    Profile::create(dir, name, &ks).unwrap()
}

const RELAY: &str = "http://127.0.0.1:9";

/// Make each profile know the other, as an accepted invite would.
fn introduce(a: &Profile, b: &Profile) {
    let ida = a
        .vault()
        .write(|c| crate::vault::identity::get(c))
        .unwrap()
        .public();
    let idb = b
        .vault()
        .write(|c| crate::vault::identity::get(c))
        .unwrap()
        .public();
    let an = a.info().unwrap().name;
    let bn = b.info().unwrap().name;
    a.vault()
        .write(|c| {
            let tx = c.transaction()?;
            people::upsert_person(&tx, &bn, &idb, RELAY)?;
            tx.commit()?;
            Ok(())
        })
        .unwrap();
    b.vault()
        .write(|c| {
            let tx = c.transaction()?;
            people::upsert_person(&tx, &an, &ida, RELAY)?;
            tx.commit()?;
            Ok(())
        })
        .unwrap();
}

/// Take everything queued in `p`'s relay outbox, as the relay would carry it.
fn drain(p: &Profile) -> Vec<outbox::Queued> {
    let q = p.vault().read(outbox::pending).unwrap();
    for e in &q {
        p.vault()
            .write(|c| outbox::posted(c, e.id, &e.tag))
            .unwrap();
    }
    q
}

fn deliver(to: &Profile, e: &outbox::Queued) -> Result<incoming::Applied> {
    let me = to
        .vault()
        .write(|c| crate::vault::identity::get(c))
        .unwrap();
    incoming::process(to, &me, RELAY, &e.mailbox, &e.tag, &e.body)
}

fn problem(r: Result<incoming::Applied>) -> EnvelopeProblem {
    match r {
        Err(Error::Envelope { problem }) => problem,
        other => panic!("expected a refused envelope, got {other:?}"),
    }
}

fn shared_count(carer: &Profile) -> u64 {
    let r = received_profiles(carer).unwrap();
    let p = open_received(carer, &r[0].profile).unwrap();
    p.stats().unwrap().resources
}

fn handle_of(p: &Profile) -> String {
    my_identity(p).unwrap().person
}

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
fn restored_profiles_get_their_shared_records_back_and_never_reuse_a_sequence_number() {
    let d = tempfile::tempdir().unwrap();
    let patient = profile(&d.path().join("p"), "Ned Hintz");
    let carer = profile(&d.path().join("c"), "Sam Carer");
    patient
        .import_file(&fixture(), ImportOptions::default())
        .unwrap();
    introduce(&patient, &carer);
    grant(
        &patient,
        &NewGrant {
            person: handle_of(&carer),
            role: Role::Contributor,
            scope: Scope {
                categories: vec![Category::VitalSigns, Category::Conditions],
                ..Scope::default()
            },
            purpose: String::new(),
            basis: None,
            duration_s: None,
            unverified: true,
        },
    )
    .unwrap();
    patient.vault().write(outbox::prepare_deliveries).unwrap();
    for e in drain(&patient) {
        deliver(&carer, &e).unwrap();
    }
    let n = shared_count(&carer);
    let ks = PassphraseKeyStore::new("a test passphrase").unwrap();

    // The carer's phone is lost after a backup; the restore asks for the record again.
    let carer_code = crate::backup::recovery_code(&carer).unwrap();
    let carer_file = d.path().join("carer.carry");
    crate::backup::backup_to_file(&carer, &carer_file).unwrap();
    let carer2 =
        crate::restore::from_file(&d.path().join("c2"), &carer_file, &carer_code, &ks).unwrap();
    let resync = drain(&carer2);
    assert_eq!(resync.len(), 1);
    deliver(&patient, &resync[0]).unwrap();
    patient.vault().write(outbox::prepare_deliveries).unwrap();
    for e in drain(&patient) {
        deliver(&carer2, &e).unwrap();
    }
    assert_eq!(shared_count(&carer2), n);

    // The patient's phone is lost after a backup, and changes went out after it: the
    // restored profile's numbers move on, and the next delivery is a whole record.
    let code = crate::backup::recovery_code(&patient).unwrap();
    let file = d.path().join("patient.carry");
    crate::backup::backup_to_file(&patient, &file).unwrap();
    patient
        .add_reading(&Reading::parse("pulse", "61").unwrap(), None)
        .unwrap();
    patient.vault().write(outbox::prepare_deliveries).unwrap();
    for e in drain(&patient) {
        deliver(&carer2, &e).unwrap();
    }
    assert_eq!(shared_count(&carer2), n + 1);
    let patient2 = crate::restore::from_file(&d.path().join("p2"), &file, &code, &ks).unwrap();
    patient2
        .add_reading(&Reading::parse("pulse", "62").unwrap(), None)
        .unwrap();
    patient2.vault().write(outbox::prepare_deliveries).unwrap();
    for e in drain(&patient2) {
        deliver(&carer2, &e).unwrap();
    }
    // What the restored patient holds now, exactly: the pulse taken on the lost
    // phone after the backup is gone from the patient, and so from the carer.
    assert_eq!(
        shared_count(&carer2),
        view_as(&patient2, &handle_of(&carer)).unwrap().len() as u64
    );
    assert_eq!(shared_count(&carer2), n + 1);
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
        &crate::PrefsChange {
            default_grant_days: Some(14),
            ..crate::PrefsChange::default()
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

/// A patient with a record, and a carer who holds a contributor's grant to her vital
/// signs, delivered: (folder, patient, carer, grant id).
fn patient_with_carer() -> (tempfile::TempDir, Profile, Profile, String) {
    let d = tempfile::tempdir().unwrap();
    let patient = profile(&d.path().join("p"), "Ned Hintz");
    let carer = profile(&d.path().join("c"), "Sam Carer");
    patient
        .import_file(&fixture(), ImportOptions::default())
        .unwrap();
    introduce(&patient, &carer);
    let g = grant(
        &patient,
        &NewGrant {
            person: handle_of(&carer),
            role: Role::Contributor,
            scope: Scope {
                categories: vec![Category::VitalSigns],
                ..Scope::default()
            },
            purpose: "test".into(),
            basis: None,
            duration_s: None,
            unverified: true,
        },
    )
    .unwrap()
    .grant;
    patient.vault().write(outbox::prepare_deliveries).unwrap();
    for e in drain(&patient) {
        deliver(&carer, &e).unwrap();
    }
    (d, patient, carer, g)
}

/// Replace `p`'s identity as removing a device does.
fn rotate(p: &Profile) {
    p.vault()
        .write(|c| {
            let tx = c.transaction()?;
            crate::devices::rotation::rotate(&tx)?;
            tx.commit()?;
            Ok(())
        })
        .unwrap();
}

fn identity_of(p: &Profile) -> crate::crypto::identity::PublicIdentity {
    p.vault()
        .write(|c| crate::vault::identity::get(c))
        .unwrap()
        .public()
}

#[test]
fn new_keys_are_taken_only_when_the_old_ones_vouch_for_them_and_grants_follow() {
    let (_d, patient, carer, g) = patient_with_carer();
    let held = shared_count(&carer);
    let old = identity_of(&patient);
    // The carer asks for something before hearing of the change: sealed to the old
    // keys, for the old mailbox.
    incoming::request_resync(&carer, &g).unwrap();

    rotate(&patient);
    let new = identity_of(&patient);
    assert_ne!(new, old);
    let queued = drain(&patient);
    assert_eq!(
        queued.len(),
        2,
        "the announcement, then the re-issued grant"
    );
    assert!(queued
        .iter()
        .all(|e| e.mailbox == identity_of(&carer).mailbox()));

    // A forged announcement: sealed from the old keys (which a removed device holds),
    // but the vouch is not theirs over these keys.
    let retired = rotation::pending(&patient).unwrap().remove(0).old;
    let evil = crate::crypto::identity::Identity::generate().unwrap();
    let forged_body = envelope::Body::Keys {
        keys: evil.public().to_keys(),
        vouch: base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            evil.vouch_for(&evil.public()),
        ),
    };
    let forged = outbox::Queued {
        id: 0,
        mailbox: identity_of(&carer).mailbox(),
        tag: "forged".into(),
        body: envelope::seal(
            &retired,
            &identity_of(&carer).enc,
            &identity_of(&carer).mailbox(),
            "forged",
            &envelope::Message {
                v: 1,
                grant: String::new(),
                seq: 0,
                at: 0,
                body: forged_body,
            },
        )
        .unwrap(),
    };
    assert_eq!(problem(deliver(&carer, &forged)), EnvelopeProblem::Tampered);
    // The re-issued grant before the announcement: from keys the carer does not know.
    assert_eq!(
        problem(deliver(&carer, &queued[1])),
        EnvelopeProblem::UnknownSender
    );
    let known = |p: &Profile| {
        p.vault()
            .read(|c| Ok(people::list(c)?.into_iter().next().unwrap()))
            .unwrap()
    };
    let before = known(&carer);

    // The announcement, then the grant.
    assert_eq!(
        deliver(&carer, &queued[0]).unwrap(),
        incoming::Applied::KeysChanged(before.person.clone())
    );
    let after = known(&carer);
    assert_eq!(after.person, before.person, "the same person to the carer");
    let (_, _, keys) = carer
        .vault()
        .read(|c| people::find(c, &after.person))
        .unwrap();
    assert_eq!(keys, new);
    assert!(matches!(
        deliver(&carer, &queued[1]).unwrap(),
        incoming::Applied::Grant { new: false, .. }
    ));
    // A replay of the announcement finds no one with the old keys.
    assert_eq!(
        problem(deliver(&carer, &queued[0])),
        EnvelopeProblem::UnknownSender
    );
    assert_eq!(shared_count(&carer), held, "the shared copy is kept");

    // What the carer had queued for the old mailbox goes to the new one, and the
    // patient opens it with the keys it replaced.
    let moved = drain(&carer);
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].mailbox, new.mailbox());
    assert_eq!(
        deliver(&patient, &moved[0]).unwrap(),
        incoming::Applied::Resync
    );

    // What the carer sends from now on is sealed to the new keys: the old ones (all a
    // removed device holds) open none of it.
    incoming::request_resync(&carer, &g).unwrap();
    let fresh = drain(&carer);
    assert_eq!(fresh.len(), 1);
    assert!(envelope::open(&retired, &fresh[0].mailbox, &fresh[0].tag, &fresh[0].body).is_err());
    assert!(envelope::open(&retired, &old.mailbox(), &fresh[0].tag, &fresh[0].body).is_err());
    deliver(&patient, &fresh[0]).unwrap();

    // New deliveries are sealed from the new keys, and the carer takes them.
    patient
        .add_reading(&crate::Reading::parse("weight", "71kg").unwrap(), None)
        .unwrap();
    patient.vault().write(outbox::prepare_deliveries).unwrap();
    let next = drain(&patient);
    assert!(!next.is_empty());
    for e in &next {
        deliver(&carer, e).unwrap();
    }
    assert!(shared_count(&carer) > held);
    let audit = audit_log(&carer, 100).unwrap();
    assert!(audit.iter().any(|e| e.event == "person-keys-changed"));
}

#[test]
fn a_carer_writes_only_inside_the_grant_and_both_sides_record_a_refusal() {
    let (_d, patient, carer, g) = patient_with_carer();
    let who = handle_of(&patient);
    let events = |p: &Profile, event: &str| {
        audit_log(p, 500)
            .unwrap()
            .into_iter()
            .filter(|e| e.event == event)
            .count()
    };

    // The carer's device refuses a mood entry outright: nothing is sent.
    let mood = crate::Reading::parse("mood", "2").unwrap();
    match contribute(&carer, &who, &mood, None) {
        Err(Error::Denied { reason }) => assert!(reason.contains("outside"), "{reason}"),
        other => panic!("expected Denied, got {other:?}"),
    }
    assert!(drain(&carer).is_empty());
    assert_eq!(events(&carer, "contribution-rejected"), 1);

    // One sent anyway (an older app, a hostile one) is refused by the person's device:
    // nothing reaches the record or the outbox to the GP, both audit logs say so, and
    // the carer's device hears why.
    let obs = crate::readings::observation(
        &mood,
        None,
        &crate::readings::Subject {
            reference: None,
            display: "Ned Hintz".into(),
        },
        crate::time::now_unix(),
    )
    .unwrap();
    carer
        .vault()
        .write(|c| {
            let tx = c.transaction()?;
            let me = crate::vault::identity::get(&tx)?;
            let mut row = outbox::grant_row(&tx, &g)?;
            outbox::send_on_grant(
                &tx,
                &me,
                &mut row,
                envelope::Body::Contribution {
                    resources: vec![obs.to_string()],
                },
            )?;
            tx.commit()?;
            Ok(())
        })
        .unwrap();
    let before = patient.stats().unwrap().resources;
    let sent = drain(&carer);
    assert_eq!(
        problem(deliver(&patient, &sent[0])),
        EnvelopeProblem::NotAllowed
    );
    assert_eq!(patient.stats().unwrap().resources, before);
    assert!(crate::sync::outbox(&patient).unwrap().is_empty());
    assert_eq!(events(&patient, "contribution-rejected"), 1);
    let told = drain(&patient);
    assert_eq!(told.len(), 1);
    match deliver(&carer, &told[0]).unwrap() {
        incoming::Applied::ContributionRefused(why) => {
            assert!(why.contains("outside the grant"), "{why}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(events(&carer, "contribution-rejected"), 2);

    // Inside the grant, it is applied.
    contribute(
        &carer,
        &who,
        &crate::Reading::parse("pulse", "64").unwrap(),
        None,
    )
    .unwrap();
    for e in drain(&carer) {
        assert_eq!(
            deliver(&patient, &e).unwrap(),
            incoming::Applied::Contribution(1)
        );
    }
    assert_eq!(
        patient.stats().unwrap().resources,
        before + 2,
        "the entry and its provenance"
    );
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
fn carers_entries_wait_for_approval_when_the_person_asks() {
    let (_d, patient, carer, _) = patient_with_carer();
    crate::prefs::set(
        &patient,
        &crate::prefs::PrefsChange {
            approve_contributions: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
    let who = handle_of(&patient);
    let before = patient.stats().unwrap().resources;

    contribute(
        &carer,
        &who,
        &crate::Reading::parse("pulse", "72").unwrap(),
        None,
    )
    .unwrap();
    let sent = drain(&carer);
    assert_eq!(
        deliver(&patient, &sent[0]).unwrap(),
        incoming::Applied::ContributionWaiting(1)
    );
    assert_eq!(
        patient.stats().unwrap().resources,
        before,
        "nothing applied yet"
    );
    assert!(
        crate::sync::outbox(&patient).unwrap().is_empty(),
        "nor sent on"
    );
    let waiting = pending_contributions(&patient).unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].name, "Sam Carer");
    assert!(waiting[0].entries[0].contains("72"), "{waiting:?}");
    assert_eq!(approve_contribution(&patient, waiting[0].id).unwrap(), 1);
    assert_eq!(
        patient.stats().unwrap().resources,
        before + 2,
        "the entry and its provenance"
    );
    assert!(pending_contributions(&patient).unwrap().is_empty());
    assert!(matches!(
        approve_contribution(&patient, waiting[0].id),
        Err(Error::NotFound { .. })
    ));

    // Declined: nothing applied, and the carer's device is told.
    contribute(
        &carer,
        &who,
        &crate::Reading::parse("pulse", "180").unwrap(),
        None,
    )
    .unwrap();
    for e in drain(&carer) {
        deliver(&patient, &e).unwrap();
    }
    let id = pending_contributions(&patient).unwrap()[0].id;
    reject_contribution(&patient, id).unwrap();
    assert_eq!(patient.stats().unwrap().resources, before + 2);
    let told = drain(&patient);
    assert_eq!(told.len(), 1);
    assert_eq!(
        deliver(&carer, &told[0]).unwrap(),
        incoming::Applied::ContributionRefused("the person declined these entries".into())
    );
}

#[test]
fn one_copy_of_a_fact_travels_and_names_the_other_sources() {
    let (d, patient, carer, _) = patient_with_carer();
    let mine = patient
        .add_reading(&crate::Reading::parse("weight", "72.5kg").unwrap(), None)
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
    let (_d, patient, carer, _) = patient_with_carer();
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
                    .timeline(&crate::TimelineQuery {
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
    let (_d, _patient, carer, _) = patient_with_carer();
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
