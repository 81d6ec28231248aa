//! The vault's promises: a wrong key changes nothing, a damaged file is reported and
//! kept, nothing is readable on disk, and a locked profile refuses work.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test may fail loudly
mod common;

use carry_core::{Error, ImportOptions, PassphraseKeyStore, Profile, TimelineQuery};
use ring::digest::{digest, SHA256};

fn file_hash(p: &std::path::Path) -> Vec<u8> {
    digest(&SHA256, &std::fs::read(p).unwrap())
        .as_ref()
        .to_vec()
}

#[test]
fn wrong_passphrase_is_typed_and_leaves_files_identical() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("p");
    let right = PassphraseKeyStore::new("correct horse battery").unwrap();
    let profile = Profile::create(&home, "Ann", &right).unwrap();
    profile
        .import_file(&common::synthea_large(), ImportOptions::default())
        .unwrap();
    drop(profile);
    let db = home.join("vault.db");
    let key = home.join("vault.key");
    let (db_before, key_before) = (file_hash(&db), file_hash(&key));
    let wrong = PassphraseKeyStore::new("wrong horse battery").unwrap();
    let err = Profile::open(&home, &wrong).unwrap_err();
    assert!(matches!(err, Error::WrongKey), "{err}");
    assert_eq!(file_hash(&db), db_before);
    assert_eq!(file_hash(&key), key_before);
    // And the right passphrase still opens it.
    let p = Profile::open(&home, &right).unwrap();
    assert!(p.stats().unwrap().resources > 500);
}

#[test]
fn a_key_from_another_vault_is_a_wrong_key() {
    let (_a, pa) = common::profile();
    let (_b, pb) = common::profile();
    let (da, db) = (
        pa.vault().dir().to_path_buf(),
        pb.vault().dir().to_path_buf(),
    );
    drop((pa, pb));
    std::fs::copy(db.join("vault.key"), da.join("vault.key")).unwrap();
    let before = file_hash(&da.join("vault.db"));
    let err = Profile::open(&da, &common::PlainKeyStore).unwrap_err();
    // The key file now belongs with the other vault: its check value matches its own
    // key, so the vault is what does not decrypt.
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert_eq!(file_hash(&da.join("vault.db")), before);
}

#[test]
fn damaged_vault_is_reported_and_never_deleted() {
    let (_d, p) = common::profile();
    p.import_file(&common::synthea_large(), ImportOptions::default())
        .unwrap();
    let home = p.vault().dir().to_path_buf();
    drop(p);
    let db = home.join("vault.db");
    let mut bytes = std::fs::read(&db).unwrap();
    for b in &mut bytes[16..4096] {
        *b ^= 0x5a;
    }
    std::fs::write(&db, &bytes).unwrap();
    let err = Profile::open(&home, &common::PlainKeyStore).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        bytes,
        "the damaged file must stay as it was"
    );

    std::fs::write(&db, b"").unwrap();
    let err = Profile::open(&home, &common::PlainKeyStore).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(db.exists());
}

#[test]
fn damage_past_the_first_page_is_reported_corrupt_naming_the_file() {
    let (_d, p) = common::profile();
    p.import_file(&common::synthea_large(), ImportOptions::default())
        .unwrap();
    let home = p.vault().dir().to_path_buf();
    drop(p);
    let db = home.join("vault.db");
    let whole = std::fs::read(&db).unwrap();
    let mut flipped = whole.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    let truncated = whole[..whole.len() / 2].to_vec();
    for damaged in [flipped, truncated] {
        std::fs::write(&db, &damaged).unwrap();
        // The first page is sound: opening may or may not meet the damage, the
        // check does. Either way it is reported as damage, naming the vault file,
        // never as a storage error.
        let err = match Profile::open(&home, &common::PlainKeyStore) {
            Err(e) => e,
            Ok(p) => p.integrity_check().unwrap_err(),
        };
        match &err {
            Error::Corrupt { path, .. } => assert_eq!(path, &db),
            other => panic!("{other:?}"),
        }
        assert!(!err.to_string().contains('\n'), "one line: {err}");
        assert_eq!(
            std::fs::read(&db).unwrap(),
            damaged,
            "the file stays as it was"
        );
    }
}

#[test]
fn no_plaintext_on_disk() {
    let (_d, p) = common::profile();
    let file = common::synthea_large();
    p.import_file(&file, ImportOptions::default()).unwrap();
    let home = p.vault().dir().to_path_buf();
    // The patient's family name and a code display from the file.
    let name = "Cummings";
    assert!(std::fs::read_to_string(&file).unwrap().contains(name));
    let needles: [&[u8]; 3] = [name.as_bytes(), b"resourceType", b"Encounter"];
    let check = |stage: &str| {
        for entry in std::fs::read_dir(&home).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            for n in needles {
                assert!(
                    !bytes.windows(n.len()).any(|w| w == n),
                    "{stage}: {} holds plaintext {:?}",
                    path.display(),
                    String::from_utf8_lossy(n)
                );
            }
        }
    };
    check("while open (with the WAL)");
    p.lock();
    check("after lock");
}

#[test]
fn lock_refuses_work_until_unlock() {
    let (_d, p) = common::profile();
    p.lock();
    assert!(p.is_locked());
    assert!(matches!(
        p.timeline(&TimelineQuery::default()),
        Err(Error::Locked)
    ));
    assert!(matches!(p.stats(), Err(Error::Locked)));
    p.unlock(&common::PlainKeyStore).unwrap();
    assert!(!p.is_locked());
    assert_eq!(p.stats().unwrap().resources, 0);
}

#[test]
fn creating_over_an_existing_profile_is_refused() {
    let (_d, p) = common::profile();
    let home = p.vault().dir().to_path_buf();
    let err = Profile::create(&home, "Again", &common::PlainKeyStore).unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(p.info().unwrap().name, "Test Person");
}

#[test]
fn rewrap_changes_the_passphrase_without_touching_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("p");
    let old = PassphraseKeyStore::new("old passphrase").unwrap();
    let new = PassphraseKeyStore::new("new passphrase").unwrap();
    let p = Profile::create(&home, "Ann", &old).unwrap();
    p.add_reading(&carry_core::Reading::HeartRate { bpm: 60 }, None)
        .unwrap();
    p.rewrap(&new).unwrap();
    drop(p);
    assert!(matches!(Profile::open(&home, &old), Err(Error::WrongKey)));
    assert_eq!(
        Profile::open(&home, &new)
            .unwrap()
            .stats()
            .unwrap()
            .resources,
        1
    );
}
