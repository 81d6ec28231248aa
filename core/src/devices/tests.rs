//! Two devices of one person, changing things offline and then exchanging.

use std::path::Path;

use super::{registry, transport};
use crate::crypto::identity::Identity;
use crate::share::{self, NewGrant, Role, Scope};
use crate::{Category, ImportOptions, PassphraseKeyStore, Profile, Reading};

const FILE: &str = "sotf-Ned_Hintz_e4b9259d-0f54-48d1-a35d-b526729a4dfe.json";

fn ks() -> PassphraseKeyStore {
    PassphraseKeyStore::new("a test passphrase").unwrap()
}

fn grant_to(p: &Profile, categories: Vec<Category>) -> String {
    share::grant(
        p,
        &NewGrant {
            person: "Sam Carer".into(),
            role: Role::Contributor,
            scope: Scope {
                categories,
                ..Scope::default()
            },
            purpose: "help".into(),
            basis: None,
            duration_s: None,
            unverified: true,
        },
    )
    .unwrap()
    .grant
}

/// A phone with a record, a person and a grant, and a tablet joined to it.
fn phone_and_tablet(dir: &Path) -> (Profile, Profile, String) {
    let phone = Profile::create(&dir.join("phone"), "Ned Hintz", &ks()).unwrap();
    let f = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/fhir/synthea")
        .join(FILE);
    phone.import_file(&f, ImportOptions::default()).unwrap();
    let other = Identity::generate().unwrap().public();
    phone
        .vault()
        .write(|c| {
            let tx = c.transaction()?;
            share::people::upsert_person(&tx, "Sam Carer", &other, "http://127.0.0.1:9")?;
            tx.commit()?;
            Ok(())
        })
        .unwrap();
    let g = grant_to(&phone, vec![Category::VitalSigns]);
    let tablet = join(&phone, dir, "tablet");
    (phone, tablet, g)
}

/// Another device, `name`, joined to `phone`'s profile (listed on the phone before the
/// profile is sent, as pairing does).
fn join(phone: &Profile, dir: &Path, name: &str) -> Profile {
    let keys = Identity::generate().unwrap();
    let id = keys.public().handle();
    let card = registry::card_of(&id, name, &keys);
    phone
        .vault()
        .write(|c| {
            let tx = c.transaction()?;
            registry::register(&tx, "phone", &card)?;
            tx.commit()?;
            Ok(())
        })
        .unwrap();
    let code = crate::backup::recovery_code(phone).unwrap();
    let file = dir.join(format!("staged-{name}.carry"));
    crate::backup::backup_to_file(phone, &file).unwrap();
    crate::backup::restore_file_joining(&dir.join(name), &file, &code, &ks(), &move |c| {
        super::store_self(c, &id, &keys)
    })
    .unwrap()
}

/// Send what `from` has queued for the other device to `to`. Returns batches moved.
fn deliver(from: &Profile, to: &Profile) -> usize {
    transport::queue(from).unwrap();
    let device = to
        .vault()
        .read(|c| Ok(registry::this_device(c)?.0))
        .unwrap();
    let bodies: Vec<(i64, Vec<u8>)> = from
        .vault()
        .read(|c| {
            Ok(
                c.prepare("SELECT id, body FROM device_outbox WHERE device = ?1 ORDER BY id")?
                    .query_map([&device], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?,
            )
        })
        .unwrap();
    for (id, body) in &bodies {
        transport::take(to, body).unwrap();
        from.vault()
            .write(|c| {
                c.execute("DELETE FROM device_outbox WHERE id = ?1", [id])?;
                Ok(())
            })
            .unwrap();
    }
    bodies.len()
}

type GrantView = (String, String, String, u32, i64, String, String);

fn grants(p: &Profile) -> Vec<GrantView> {
    let mut g: Vec<GrantView> = share::grants(p)
        .unwrap()
        .into_iter()
        .map(|g| {
            (
                g.grant,
                g.person,
                g.role.as_str().to_string(),
                g.revision,
                g.expires_at,
                g.state,
                serde_json::to_string(&g.scope).unwrap(),
            )
        })
        .collect();
    g.sort();
    g
}

/// The audit entries as (event, party, detail without the device it came from).
fn audit(p: &Profile) -> Vec<(String, Option<String>, String)> {
    let mut a: Vec<_> = share::audit_log(p, 100_000)
        .unwrap()
        .into_iter()
        .map(|e| {
            let detail = match e.detail.rfind(" (on ") {
                Some(i) if e.detail.ends_with(')') => e.detail[..i].to_string(),
                _ => e.detail.clone(),
            };
            (e.event, e.party, detail)
        })
        .collect();
    a.sort();
    a
}

fn relay_queued(p: &Profile) -> i64 {
    p.vault()
        .read(|c| Ok(c.query_row("SELECT count(*) FROM relay_outbox", [], |r| r.get(0))?))
        .unwrap()
}

/// Envelopes queued for the relay under another tag than the grant's own: the
/// revocation travels under a tag of its own.
fn revocations_queued(p: &Profile, grant: &str) -> i64 {
    p.vault()
        .read(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM relay_outbox
                 WHERE tag <> (SELECT tag FROM grants WHERE id = ?1)",
                [grant],
                |r| r.get(0),
            )?)
        })
        .unwrap()
}

#[test]
fn two_devices_changing_offline_converge_and_a_revocation_beats_a_concurrent_change() {
    let d = tempfile::tempdir().unwrap();
    let (phone, tablet, g) = phone_and_tablet(d.path());
    assert_eq!(
        crate::test_support::exported_entries(&phone),
        crate::test_support::exported_entries(&tablet)
    );
    let listed = super::list(&tablet).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed
        .iter()
        .any(|x| x.this_device && !x.primary && x.name == "tablet"));
    assert!(phone.vault().read(registry::is_primary).unwrap());
    assert!(!tablet.vault().read(registry::is_primary).unwrap());

    // Offline on both: a reading each; the phone widens the grant while the tablet
    // revokes it; the tablet verifies the person.
    phone
        .add_reading(&Reading::parse("weight", "70kg").unwrap(), None)
        .unwrap();
    tablet
        .add_reading(&Reading::parse("bp", "120/80").unwrap(), Some("tablet"))
        .unwrap();
    grant_to(&phone, vec![Category::VitalSigns, Category::Medications]);
    share::revoke(&tablet, &g).unwrap();
    share::verify_person(&tablet, "Sam Carer").unwrap();
    // Preferences on both, one of them on both at once.
    let change = |days: Option<u32>, lock: Option<u32>| crate::PrefsChange {
        default_grant_days: days,
        lock_timeout_s: lock,
        ..Default::default()
    };
    crate::prefs::set(&phone, &change(Some(30), Some(120))).unwrap();
    crate::prefs::set(&tablet, &change(None, Some(60))).unwrap();
    assert_eq!(revocations_queued(&phone, &g), 0);

    // Exchange, in either order, until nothing more moves.
    for _ in 0..3 {
        deliver(&phone, &tablet);
        deliver(&tablet, &phone);
    }
    assert_eq!(deliver(&phone, &tablet), 0, "quiet once converged");

    assert_eq!(
        crate::test_support::exported_entries(&phone),
        crate::test_support::exported_entries(&tablet)
    );
    assert!(crate::test_support::exported_entries(&phone)
        .iter()
        .any(|e| e.contains("120")));
    assert!(crate::test_support::exported_entries(&tablet)
        .iter()
        .any(|e| e.contains("70")));
    let gp = grants(&phone);
    assert_eq!(gp, grants(&tablet));
    assert_eq!(
        gp[0].5, "revoked",
        "the revocation wins over the concurrent change"
    );
    assert_eq!(
        share::people(&phone).unwrap()[0].verified,
        share::people(&tablet).unwrap()[0].verified
    );
    assert!(share::people(&phone).unwrap()[0].verified);
    assert_eq!(audit(&phone), audit(&tablet), "the audit chains merged");
    let prefs = crate::prefs::get(&phone).unwrap();
    assert_eq!(prefs, crate::prefs::get(&tablet).unwrap());
    assert_eq!(prefs.default_grant_days, 30);
    assert!(share::verify_audit(&phone).unwrap().ok());
    assert!(share::verify_audit(&tablet).unwrap().ok());
    // The phone (the primary) tells the carer; the tablet posts nothing itself.
    assert_eq!(revocations_queued(&phone, &g), 1);
    assert_eq!(relay_queued(&tablet), 0);
}

#[test]
fn a_removed_device_gets_nothing_more_and_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let (phone, tablet, _) = phone_and_tablet(d.path());
    let tablet_id = this_device_id(&tablet);
    assert!(super::remove(&phone, "nobody").is_err());
    super::remove(&phone, &tablet_id).unwrap();
    assert!(
        super::remove(&phone, &tablet_id).is_err(),
        "already removed"
    );
    let tablet_before = crate::test_support::exported_entries(&tablet);
    phone
        .add_reading(&Reading::parse("weight", "70kg").unwrap(), None)
        .unwrap();
    assert_eq!(deliver(&phone, &tablet), 0, "nothing is sent to it");
    assert_eq!(
        crate::test_support::exported_entries(&tablet),
        tablet_before
    );
    // What it sends is refused, and changes nothing.
    tablet
        .add_reading(&Reading::parse("bp", "120/80").unwrap(), None)
        .unwrap();
    transport::queue(&tablet).unwrap();
    let body: Vec<u8> = tablet
        .vault()
        .read(|c| Ok(c.query_row("SELECT body FROM device_outbox", [], |r| r.get(0))?))
        .unwrap();
    let before = crate::test_support::exported_entries(&phone);
    assert!(matches!(
        transport::take(&phone, &body),
        Err(crate::Error::Envelope {
            problem: crate::error::EnvelopeProblem::UnknownSender
        })
    ));
    assert_eq!(crate::test_support::exported_entries(&phone), before);
}

/// The id of the device `p` is.
fn this_device_id(p: &Profile) -> String {
    super::list(p)
        .unwrap()
        .into_iter()
        .find(|x| x.this_device)
        .unwrap()
        .id
}

/// The profile's identity as it stands on `p`.
fn identity(p: &Profile) -> crate::crypto::identity::PublicIdentity {
    p.vault()
        .write(|c| crate::vault::identity::get(c))
        .unwrap()
        .public()
}

#[test]
fn removing_a_device_replaces_the_keys_and_the_remaining_devices_take_them() {
    let d = tempfile::tempdir().unwrap();
    let (phone, tablet, g) = phone_and_tablet(d.path());
    let laptop = join(&phone, d.path(), "laptop");
    // Everyone in step first (the laptop's listing reaches the tablet).
    deliver(&phone, &tablet);
    deliver(&phone, &laptop);
    let before = identity(&phone);
    assert_eq!(identity(&tablet), before);
    assert_eq!(identity(&laptop), before);
    let old_code = crate::backup::recovery_code(&phone).unwrap();

    // The laptop removes the tablet: new keys and code, and it becomes the primary.
    let tablet_id = this_device_id(&tablet);
    let new_code = super::remove(&laptop, &tablet_id).unwrap();
    assert_ne!(*new_code, *old_code);
    assert_eq!(crate::backup::recovery_code(&laptop).unwrap(), new_code);
    let after = identity(&laptop);
    assert_ne!(after, before);
    assert!(super::list(&laptop)
        .unwrap()
        .iter()
        .any(|x| x.this_device && x.primary));
    let retired = crate::share::rotation::pending(&laptop).unwrap();
    assert_eq!(retired.len(), 1, "the old keys wait to be retired");
    assert_eq!(retired[0].old.public(), before);
    assert_eq!(retired[0].successor, after.sign);
    // The grant in force is re-issued, signed by the new keys, to go out after the
    // announcement to Sam.
    let doc = laptop
        .vault()
        .read(|c| crate::share::grants::doc(c, &g))
        .unwrap();
    assert_eq!(
        crate::crypto::identity::PublicIdentity::from_keys(&doc.grantor.keys).unwrap(),
        after
    );
    assert_eq!(doc.revision, 2);
    let queued: Vec<String> = laptop
        .vault()
        .read(|c| {
            Ok(c.prepare("SELECT tag FROM relay_outbox ORDER BY id")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?)
        })
        .unwrap();
    assert!(
        queued.len() >= 2,
        "the announcement, then the grant: {queued:?}"
    );

    // The phone takes the new keys and code from the laptop; the tablet gets nothing.
    assert!(deliver(&laptop, &phone) >= 1);
    assert_eq!(identity(&phone), after);
    assert_eq!(crate::backup::recovery_code(&phone).unwrap(), new_code);
    assert_eq!(
        identity(&tablet),
        before,
        "the removed tablet keeps only the old keys"
    );
    assert_eq!(crate::backup::recovery_code(&tablet).unwrap(), old_code);
    assert_eq!(deliver(&laptop, &tablet), 0, "nothing is sent to it");
    // An older identity from a device that has not heard yet changes nothing.
    assert_eq!(identity(&laptop), after);
    for p in [&phone, &laptop] {
        assert!(p.vault().read(crate::audit::verify).unwrap().ok());
    }
}

#[test]
fn replays_and_tampering_are_refused_and_a_gap_asks_for_everything() {
    let d = tempfile::tempdir().unwrap();
    let (phone, tablet, _) = phone_and_tablet(d.path());
    let batch = |p: &Profile| -> Vec<u8> {
        transport::queue(p).unwrap();
        p.vault()
            .write(|c| {
                let (id, body): (i64, Vec<u8>) = c.query_row(
                    "SELECT id, body FROM device_outbox ORDER BY id LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                c.execute("DELETE FROM device_outbox WHERE id = ?1", [id])?;
                Ok(body)
            })
            .unwrap()
    };
    phone
        .add_reading(&Reading::parse("weight", "70kg").unwrap(), None)
        .unwrap();
    let first = batch(&phone);
    let mut bad = first.clone();
    let n = bad.len();
    bad[n - 5] ^= 1;
    assert!(transport::take(&tablet, &bad).is_err());
    transport::take(&tablet, &first).unwrap();
    assert!(matches!(
        transport::take(&tablet, &first),
        Err(crate::Error::Envelope {
            problem: crate::error::EnvelopeProblem::Replayed
        })
    ));
    // A lost batch: the next one is taken, and the tablet asks for everything.
    phone
        .add_reading(&Reading::parse("weight", "71kg").unwrap(), None)
        .unwrap();
    let _lost = batch(&phone);
    phone
        .add_reading(&Reading::parse("weight", "72kg").unwrap(), None)
        .unwrap();
    let third = batch(&phone);
    assert!(transport::take(&tablet, &third).unwrap().gap);
    for _ in 0..2 {
        deliver(&tablet, &phone);
        deliver(&phone, &tablet);
    }
    assert_eq!(
        crate::test_support::exported_entries(&phone),
        crate::test_support::exported_entries(&tablet)
    );
}
