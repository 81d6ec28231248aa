//! Grants and carers across the other features: a restore gets the shared records
//! back, a device's new keys are vouched for, and what a carer sends never reaches
//! the sync outbox unless it is allowed and approved.

use carry_share::share::testing::*;

use crate::error::{EnvelopeProblem, Error};
use crate::import::ImportOptions;
use crate::keys::PassphraseKeyStore;
use crate::profile::Profile;
use crate::readings::Reading;
use crate::record::Category;
use crate::share::{
    approve_contribution, audit_log, contribute, envelope, grant, incoming, outbox,
    pending_contributions, people, reject_contribution, rotation, view_as, NewGrant, Role, Scope,
};

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

#[test]
fn new_keys_are_taken_only_when_the_old_ones_vouch_for_them_and_grants_follow() {
    let d = tempfile::tempdir().unwrap();
    let (patient, carer, g) = patient_with_carer(d.path());
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
    let d = tempfile::tempdir().unwrap();
    let (patient, carer, g) = patient_with_carer(d.path());
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
fn carers_entries_wait_for_approval_when_the_person_asks() {
    let d = tempfile::tempdir().unwrap();
    let (patient, carer, _) = patient_with_carer(d.path());
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
