//! Two profiles exchanging without a relay, for the tests here and in the core:
//! envelopes are taken from the sender's queue and handed to the recipient by hand, in
//! the order a test chooses. Nothing outside tests calls it; it is compiled in every
//! build (hidden from the docs) so that the tests and the binaries share one build of
//! this crate and of everything above it.

#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};

use super::*;
use crate::error::EnvelopeProblem;
use crate::import::ImportOptions;
use crate::keys::PassphraseKeyStore;
use crate::record::Category;

/// The Synthea record the tests import (from `../shared`).
pub fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/fhir/synthea/sotf-Ned_Hintz_e4b9259d-0f54-48d1-a35d-b526729a4dfe.json")
}

/// A new profile called `name` in `dir`, under a test passphrase.
pub fn profile(dir: &Path, name: &str) -> Profile {
    let ks = PassphraseKeyStore::new("a test passphrase").unwrap();
    Profile::create(dir, name, &ks).unwrap()
}

/// A relay address nothing answers at: delivery here is by hand.
pub const RELAY: &str = "http://127.0.0.1:9";

/// Make each profile know the other, as an accepted invite would.
pub fn introduce(a: &Profile, b: &Profile) {
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
pub fn drain(p: &Profile) -> Vec<outbox::Queued> {
    let q = p.vault().read(outbox::pending).unwrap();
    for e in &q {
        p.vault()
            .write(|c| outbox::posted(c, e.id, &e.tag))
            .unwrap();
    }
    q
}

/// Hand one queued envelope to `to`, as its relay exchange would.
pub fn deliver(to: &Profile, e: &outbox::Queued) -> Result<incoming::Applied> {
    let me = to
        .vault()
        .write(|c| crate::vault::identity::get(c))
        .unwrap();
    incoming::process(to, &me, RELAY, &e.mailbox, &e.tag, &e.body)
}

/// Why an envelope was refused; panics if it was not.
pub fn problem(r: Result<incoming::Applied>) -> EnvelopeProblem {
    match r {
        Err(Error::Envelope { problem }) => problem,
        other => panic!("expected a refused envelope, got {other:?}"),
    }
}

/// How many resources the first record shared with `carer` holds.
pub fn shared_count(carer: &Profile) -> u64 {
    let r = received_profiles(carer).unwrap();
    let p = open_received(carer, &r[0].profile).unwrap();
    p.stats().unwrap().resources
}

/// `p`'s handle, as others know it.
pub fn handle_of(p: &Profile) -> String {
    my_identity(p).unwrap().person
}

/// `p`'s public identity.
pub fn identity_of(p: &Profile) -> crate::crypto::identity::PublicIdentity {
    p.vault()
        .write(|c| crate::vault::identity::get(c))
        .unwrap()
        .public()
}

/// A patient with a record, and a carer who holds a contributor's grant to her vital
/// signs, delivered, in `dir`: (patient, carer, grant id).
pub fn patient_with_carer(dir: &Path) -> (Profile, Profile, String) {
    let patient = profile(&dir.join("p"), "Ned Hintz");
    let carer = profile(&dir.join("c"), "Sam Carer");
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
    (patient, carer, g)
}
