//! Backups across the other features: a restore brings back the people, grants and
//! audit log a profile shares with, and an increment after a revocation restores it.

use std::path::Path;

use crate::backup::code::RecoverySecret;
use crate::backup::*;
use crate::error::Error;
use crate::profile::Profile;
use crate::share::{self, NewGrant, Role, Scope};
use crate::{Category, ImportOptions, PassphraseKeyStore, Reading};

const FILE: &str = "sotf-Ned_Hintz_e4b9259d-0f54-48d1-a35d-b526729a4dfe.json";

fn ks() -> PassphraseKeyStore {
    PassphraseKeyStore::new("a test passphrase").unwrap()
}

fn original(dir: &Path) -> Profile {
    let p = Profile::create(dir, "Ned Hintz", &ks()).unwrap();
    crate::prefs::set(
        &p,
        &crate::PrefsChange {
            national_opt_out: Some(true),
            default_grant_days: Some(45),
            ..Default::default()
        },
    )
    .unwrap();
    let f = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/fhir/synthea")
        .join(FILE);
    p.import_file(&f, ImportOptions::default()).unwrap();
    p.add_reading(&Reading::parse("weight", "71kg").unwrap(), Some("morning"))
        .unwrap();
    // A person and a grant to them.
    let other = crate::crypto::identity::Identity::generate()
        .unwrap()
        .public();
    p.vault()
        .write(|c| {
            let tx = c.transaction()?;
            share::people::upsert_person(&tx, "Sam Carer", &other, "http://127.0.0.1:9")?;
            tx.commit()?;
            Ok(())
        })
        .unwrap();
    share::grant(
        &p,
        &NewGrant {
            person: "Sam Carer".into(),
            role: Role::Contributor,
            scope: Scope {
                categories: vec![Category::VitalSigns],
                ..Scope::default()
            },
            purpose: "help".into(),
            basis: None,
            duration_s: None,
            unverified: true,
        },
    )
    .unwrap();
    p
}

#[test]
fn a_restore_equals_the_original_and_a_wrong_code_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let p = original(&d.path().join("p"));
    assert!(status(&p).unwrap().overdue);
    let code = recovery_code(&p).unwrap();
    // Each showing of the code is in the audit log.
    let shown = &share::audit_log(&p, 1).unwrap()[0];
    assert_eq!(
        (shown.event.as_str(), shown.detail.as_str()),
        ("recovery-code-shown", "as text")
    );
    let file = d.path().join("backup.carry");
    let r = backup_to_file(&p, &file).unwrap();
    assert!(r.resources > 50);
    let st = status(&p).unwrap();
    assert!(!st.overdue && st.last_backup_bytes == Some(r.bytes as i64));

    // Nothing readable in the blob.
    let blob = std::fs::read(&file).unwrap();
    for word in ["Hintz", "Sam Carer", "Body Weight", "resourceType"] {
        assert!(
            !blob.windows(word.len()).any(|w| w == word.as_bytes()),
            "{word}"
        );
    }

    // A wrong code, a typo, a damaged file: each fails and leaves nothing.
    let target = d.path().join("restored");
    let other = RecoverySecret::generate().unwrap().code();
    assert!(matches!(
        restore_from_file(&target, &file, &other, &ks()),
        Err(Error::WrongRecoveryCode)
    ));
    let mut typo = code.to_string();
    typo.replace_range(0..1, if typo.starts_with('A') { "B" } else { "A" });
    assert!(matches!(
        restore_from_file(&target, &file, &typo, &ks()),
        Err(Error::InvalidInput { .. })
    ));
    let mut damaged = blob.clone();
    let n = damaged.len();
    damaged[n - 40] ^= 1;
    let bad = d.path().join("damaged.carry");
    std::fs::write(&bad, &damaged).unwrap();
    assert!(restore_from_file(&target, &bad, &code, &ks()).is_err());
    assert!(!target.exists() && !target.with_extension("restoring").exists());

    // The right code: the same record, people, grants, audit chain and identity.
    let q = restore_from_file(&target, &file, &code, &ks()).unwrap();
    assert_eq!(
        crate::test_support::exported_entries(&q),
        crate::test_support::exported_entries(&p)
    );
    assert_eq!(share::people(&q).unwrap(), share::people(&p).unwrap());
    assert_eq!(share::grants(&q).unwrap(), share::grants(&p).unwrap());
    let log = |x: &Profile| share::audit_log(x, 10_000).unwrap();
    assert_eq!(
        log(&q)[1..],
        log(&p)[1..],
        "everything up to the backup itself"
    );
    let restored = &log(&q)[0];
    assert_eq!(
        (restored.event.as_str(), restored.detail.as_str()),
        ("restored", "from a backup file")
    );
    assert!(share::verify_audit(&q).unwrap().ok());
    // The change tracking set aside while loading is back.
    let triggers = |x: &Profile| {
        x.vault()
            .read(|c| {
                Ok(c.query_row(
                    "SELECT group_concat(name) FROM
                       (SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name)",
                    [],
                    |r| r.get::<_, String>(0),
                )?)
            })
            .unwrap()
    };
    assert_eq!(triggers(&q), triggers(&p));
    assert!(triggers(&q).contains("backup_resources_in"));
    assert_eq!(
        crate::prefs::get(&q).unwrap(),
        crate::prefs::get(&p).unwrap()
    );
    assert_eq!(crate::prefs::get(&q).unwrap().default_grant_days, 45);
    assert_eq!(
        share::my_identity(&q).unwrap().keys,
        share::my_identity(&p).unwrap().keys
    );
    assert_eq!(recovery_code(&q).unwrap(), code);
    assert_eq!(
        q.search("weight", None).unwrap().len(),
        p.search("weight", None).unwrap().len()
    );
    // Not over an existing profile.
    assert!(matches!(
        restore_from_file(&target, &file, &code, &ks()),
        Err(Error::Conflict { .. })
    ));
}

#[test]
fn a_new_code_retires_the_old_one_and_confirmation_checks_groups() {
    let d = tempfile::tempdir().unwrap();
    let p = Profile::create(&d.path().join("p"), "Ned", &ks()).unwrap();
    let old = recovery_code(&p).unwrap();
    let new = regenerate_recovery_code(&p).unwrap();
    assert_ne!(old, new);
    let file = d.path().join("b.carry");
    backup_to_file(&p, &file).unwrap();
    assert!(matches!(
        restore_from_file(&d.path().join("x"), &file, &old, &ks()),
        Err(Error::WrongRecoveryCode)
    ));
    let [a, b] = confirmation_positions().unwrap();
    assert!(a < b && b <= code::GROUPS);
    let groups: Vec<&str> = new.split('-').collect();
    assert!(confirm_recovery_code(&p, &[(a, "0000".into()), (b, groups[b - 1].into())]).is_err());
    assert!(!status(&p).unwrap().code_confirmed);
    confirm_recovery_code(
        &p,
        &[(a, groups[a - 1].to_lowercase()), (b, groups[b - 1].into())],
    )
    .unwrap();
    assert!(status(&p).unwrap().code_confirmed);
}

#[test]
fn increments_restore_to_the_same_profile_and_a_broken_chain_restores_nothing() {
    let d = tempfile::tempdir().unwrap();
    let p = original(&d.path().join("p"));
    let secret = p.vault().write(|c| Ok(state(c)?.0)).unwrap();
    let next = |p: &Profile| p.vault().read(chain).unwrap().and_then(|ch| ch.next());
    assert!(next(&p).is_none(), "no chain yet: the first is whole");
    // Nothing is tracked before the first backup to the endpoint: it is whole.
    let tracked = |p: &Profile| {
        p.vault()
            .read(|c| {
                Ok(c.query_row("SELECT count(*) FROM backup_changes", [], |r| {
                    r.get::<_, i64>(0)
                })?)
            })
            .unwrap()
    };
    assert_eq!(tracked(&p), 0);
    // The import set the tracking triggers aside (nothing was tracking) and put them
    // back before it committed.
    let triggers = |p: &Profile| {
        p.vault()
            .read(|c| {
                Ok(c.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'
                     AND (name LIKE 'backup%' OR name LIKE 'device%')",
                    [],
                    |r| r.get::<_, i64>(0),
                )?)
            })
            .unwrap()
    };
    let all_triggers = triggers(&p);
    assert!(all_triggers >= 20, "{all_triggers} triggers");
    let (r1, b1, u1) = write_backup(&p, Vec::new(), None, None, true).unwrap();
    assert_eq!(r1.kind, "full");
    assert_eq!(r1.bytes, b1.len() as u64);
    extend_chain(&p, &r1, 1, u1).unwrap();

    // Changes of every kind: a new reading, a resource gone, a grant revoked.
    p.add_reading(&Reading::parse("weight", "72kg").unwrap(), None)
        .unwrap();
    assert!(tracked(&p) > 0, "tracked once a chain has begun");
    // An import while a chain is extended is tracked: its triggers stay in place.
    let file = d.path().join("one-more.json");
    std::fs::write(
        &file,
        r#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":
           {"resourceType":"Observation","id":"after-the-chain","status":"final",
            "code":{"text":"Pulse"},"effectiveDateTime":"2026-12-01",
            "valueQuantity":{"value":61,"unit":"/min"}}}]}"#,
    )
    .unwrap();
    let before = tracked(&p);
    p.import_file(&file, ImportOptions::default()).unwrap();
    assert!(tracked(&p) > before, "the import was tracked");
    assert_eq!(triggers(&p), all_triggers);
    p.vault()
        .write(|c| {
            let tx = c.transaction()?;
            let id: i64 = tx.query_row(
                "SELECT id FROM resources WHERE rtype = 'Observation' ORDER BY id LIMIT 1",
                [],
                |r| r.get(0),
            )?;
            crate::store::remove(&tx, id)?;
            tx.commit()?;
            Ok(())
        })
        .unwrap();
    let g = share::grants(&p).unwrap().remove(0);
    share::revoke(&p, &g.grant).unwrap();
    let link = next(&p).unwrap();
    let (r2, b2, u2) = write_backup(&p, Vec::new(), Some(&link), None, true).unwrap();
    assert_eq!(
        (r2.kind.as_str(), r2.bytes),
        ("incremental", b2.len() as u64)
    );
    assert!(r2.resources <= 4, "{} resources", r2.resources);
    assert!(r2.bytes * 10 < r1.bytes, "{} of {}", r2.bytes, r1.bytes);
    extend_chain(&p, &r2, 2, u2).unwrap();

    // Nothing changed: an increment with no resources at all.
    let (r3, b3, u3) = write_backup(&p, Vec::new(), next(&p).as_ref(), None, true).unwrap();
    assert_eq!((r3.kind.as_str(), r3.resources), ("incremental", 0));
    extend_chain(&p, &r3, 3, u3).unwrap();
    p.add_reading(&Reading::parse("weight", "73kg").unwrap(), None)
        .unwrap();
    let (r4, b4, _) = write_backup(&p, Vec::new(), next(&p).as_ref(), None, true).unwrap();
    assert_eq!((r4.kind.as_str(), r4.resources), ("incremental", 1));

    let cur = |b: &Vec<u8>| std::io::Cursor::new(b.clone());
    let target = d.path().join("restored");
    // A gap, a wrong order, an increment alone: refused, nothing left behind.
    for broken in [
        vec![cur(&b1), cur(&b2), cur(&b4)],
        vec![cur(&b1), cur(&b3), cur(&b2), cur(&b4)],
        vec![cur(&b2), cur(&b3)],
    ] {
        assert!(matches!(
            restore::restore(&target, broken, &secret, &ks(), None),
            Err(Error::InvalidInput { .. })
        ));
        assert!(!target.exists() && !target.with_extension("restoring").exists());
    }
    let q = restore::restore(
        &target,
        vec![cur(&b1), cur(&b2), cur(&b3), cur(&b4)],
        &secret,
        &ks(),
        None,
    )
    .unwrap();
    assert_eq!(
        crate::test_support::exported_entries(&q),
        crate::test_support::exported_entries(&p)
    );
    assert_eq!(share::people(&q).unwrap(), share::people(&p).unwrap());
    assert_eq!(share::grants(&q).unwrap(), share::grants(&p).unwrap());
    let log = |x: &Profile| share::audit_log(x, 10_000).unwrap();
    assert_eq!(log(&q), log(&p));
    assert!(share::verify_audit(&q).unwrap().ok());
    assert_eq!(
        q.search("weight", None).unwrap().len(),
        p.search("weight", None).unwrap().len()
    );
    // The restored profile starts a new chain with a whole backup.
    assert!(next(&q).is_none());
}

#[test]
fn a_large_import_sets_tracking_aside_only_while_nothing_tracks() {
    let d = tempfile::tempdir().unwrap();
    let p = Profile::create(&d.path().join("p"), "Ned Hintz", &ks()).unwrap();
    let query = |sql: &str| {
        p.vault()
            .read(|c| Ok(c.query_row(sql, [], |r| r.get::<_, i64>(0))?))
            .unwrap()
    };
    let schema = || query("PRAGMA schema_version");
    let triggers = || {
        query(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'
             AND (name LIKE 'backup%' OR name LIKE 'device%')",
        )
    };
    let all = triggers();
    let synthea = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/fhir/synthea");
    let file = |name: &str| synthea.join(name);
    // A large file with nothing tracking: the triggers were dropped and made again.
    let before = schema();
    p.import_file(&file(FILE), ImportOptions::default())
        .unwrap();
    assert!(
        schema() > before,
        "the schema changed: set aside and put back"
    );
    assert_eq!(triggers(), all);
    // A small file: left in place.
    let small = d.path().join("small.json");
    std::fs::write(
        &small,
        r#"{"resourceType":"Observation","id":"small","status":"final","code":{"text":"Pulse"}}"#,
    )
    .unwrap();
    let before = schema();
    p.import_file(&small, ImportOptions::default()).unwrap();
    assert_eq!(schema(), before);
    // Once a backup chain is extended, a large import keeps them and is tracked.
    let (r, _, upto) = write_backup(&p, Vec::new(), None, None, true).unwrap();
    extend_chain(&p, &r, 1, upto).unwrap();
    let before = schema();
    p.import_file(
        &file("sotf-Alfreda_Wyman_3287b938-4670-47eb-91e5-e0ce3df71405.json"),
        ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(schema(), before, "left in place while tracking");
    assert!(query("SELECT count(*) FROM backup_changes") > 100);
    assert_eq!(triggers(), all);
}
