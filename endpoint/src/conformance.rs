//! The storage conformance suite: every backend must pass it. Each check takes a
//! fresh, empty store.

use serde_json::json;

use crate::relay_store::{DirectoryEntry, NewEnvelope, Page, Posted, Session};
use crate::store::{After, Grant, Query, Store};

/// Run every check against `store` (which must be empty).
pub fn run(store: &dyn Store) {
    tenants(store);
    put_get_and_versions(store);
    search_order_paging_and_filters(store);
    delete_removes(store);
    conditional_create_is_unique(store);
    grants_are_single_use(store);
    relay_challenges_are_single_use_and_expire(store);
    relay_sessions_expire(store);
    relay_directory_entries_are_replaced(store);
    relay_envelopes_post_fetch_and_page_in_order(store);
    relay_acks_reach_only_their_own_mailbox(store);
    relay_tag_deletes_reach_only_their_own_sender(store);
    relay_quota_holds_under_concurrent_posts(store);
    relay_prune_removes_what_has_expired(store);
}

fn tenants(store: &dyn Store) {
    assert!(!store.has_tenant("gp").unwrap());
    store.ensure_tenant("gp").unwrap();
    store.ensure_tenant("gp").unwrap();
    assert!(store.has_tenant("gp").unwrap());
    assert!(!store.has_tenant("hospital").unwrap());
}

fn put_get_and_versions(store: &dyn Store) {
    store.ensure_tenant("v").unwrap();
    let r = json!({"resourceType":"Patient","id":"p1","name":[{"family":"Okafor"}]});
    let a = store
        .put("v", "Patient", "p1", Some("p1"), &r, 1_000)
        .unwrap();
    assert_eq!((a.version, a.last_updated_ms), (1, 1_000));
    assert_eq!(a.resource()["meta"]["versionId"], "1");
    // The same content again: no new version.
    let b = store
        .put("v", "Patient", "p1", Some("p1"), &a.resource(), 5_000)
        .unwrap();
    assert_eq!(b, a);
    // New content: version 2, a later change time.
    let changed = json!({"resourceType":"Patient","id":"p1","name":[{"family":"Okafor-Smith"}]});
    let c = store
        .put("v", "Patient", "p1", Some("p1"), &changed, 2_000)
        .unwrap();
    assert_eq!(c.version, 2);
    assert!(c.last_updated_ms > a.last_updated_ms);
    assert_eq!(store.get("v", "Patient", "p1").unwrap().unwrap(), c);
    assert!(store.get("v", "Patient", "nope").unwrap().is_none());
    assert!(
        store.get("other", "Patient", "p1").unwrap().is_none(),
        "tenants are apart"
    );
}

fn search_order_paging_and_filters(store: &dyn Store) {
    store.ensure_tenant("s").unwrap();
    // Twenty resources written at the same millisecond still page exactly.
    for i in 0..20 {
        let (t, patient) = if i % 2 == 0 {
            ("Observation", "p1")
        } else {
            ("Condition", "p2")
        };
        let r = json!({"resourceType": t, "id": format!("r{i:02}")});
        store
            .put("s", t, &format!("r{i:02}"), Some(patient), &r, 10_000)
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut q = Query {
        limit: 7,
        ..Query::default()
    };
    loop {
        let page = store.search("s", &q).unwrap();
        seen.extend(page.iter().map(|s| s.id.clone()));
        match page.last() {
            Some(last) if page.len() == q.limit => {
                q.after = Some(After {
                    last_updated_ms: last.last_updated_ms,
                    rtype: last.rtype.clone(),
                    id: last.id.clone(),
                })
            }
            _ => break,
        }
    }
    assert_eq!(seen.len(), 20);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 20, "no resource twice across pages");

    let obs = store
        .search(
            "s",
            &Query {
                rtype: Some("Observation".into()),
                limit: 100,
                ..Query::default()
            },
        )
        .unwrap();
    assert_eq!(obs.len(), 10);
    let p2 = store
        .search(
            "s",
            &Query {
                patient: Some("p2".into()),
                limit: 100,
                ..Query::default()
            },
        )
        .unwrap();
    assert!(p2.iter().all(|s| s.rtype == "Condition") && p2.len() == 10);
    // Shared resources (in no compartment) join a patient's results only when asked.
    let org = json!({"resourceType": "Organization", "id": "org1"});
    store
        .put("s", "Organization", "org1", None, &org, 20_000)
        .unwrap();
    let with_shared = |include_shared| {
        store
            .search(
                "s",
                &Query {
                    patient: Some("p2".into()),
                    include_shared,
                    limit: 100,
                    ..Query::default()
                },
            )
            .unwrap()
            .len()
    };
    assert_eq!((with_shared(false), with_shared(true)), (10, 11));
    let cut = obs[4].last_updated_ms;
    let after = store
        .search(
            "s",
            &Query {
                updated_after_ms: Some(cut),
                limit: 100,
                ..Query::default()
            },
        )
        .unwrap();
    assert!(after.iter().all(|s| s.last_updated_ms > cut));
    let since = store
        .search(
            "s",
            &Query {
                updated_since_ms: Some(cut),
                limit: 100,
                ..Query::default()
            },
        )
        .unwrap();
    assert_eq!(since.len(), after.len() + 1);
    assert_eq!(
        store.types("s").unwrap(),
        vec![
            "Condition".to_string(),
            "Observation".to_string(),
            "Organization".to_string()
        ]
    );
}

fn delete_removes(store: &dyn Store) {
    store.ensure_tenant("d").unwrap();
    let r = json!({"resourceType":"Condition","id":"c1"});
    store
        .put("d", "Condition", "c1", Some("p1"), &r, 1)
        .unwrap();
    assert!(store.delete("d", "Condition", "c1").unwrap());
    assert!(!store.delete("d", "Condition", "c1").unwrap());
    assert!(store.get("d", "Condition", "c1").unwrap().is_none());
    let all = store
        .search(
            "d",
            &Query {
                limit: 10,
                ..Query::default()
            },
        )
        .unwrap();
    assert!(all.is_empty());
}

fn conditional_create_is_unique(store: &dyn Store) {
    store.ensure_tenant("w").unwrap();
    let key = "urn:carry:reading|abc";
    let r = json!({"resourceType":"Observation","status":"final"});
    // Eight writers race with the same identifier: exactly one creates.
    let created: Vec<(String, bool)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let r = r.clone();
                s.spawn(move || {
                    let (st, c) = store
                        .create_unique("w", "Observation", &format!("o{i}"), "p1", key, &r, 100)
                        .unwrap();
                    (st.id, c)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(created.iter().filter(|(_, c)| *c).count(), 1);
    let winner = &created.iter().find(|(_, c)| *c).unwrap().0;
    assert!(
        created.iter().all(|(id, _)| id == winner),
        "every caller sees the one resource"
    );
    let all = store
        .search(
            "w",
            &Query {
                limit: 100,
                ..Query::default()
            },
        )
        .unwrap();
    assert_eq!(all.len(), 1);
    // The same identifier for another patient, or another type, is another resource.
    let (_, c) = store
        .create_unique("w", "Observation", "q1", "p2", key, &r, 100)
        .unwrap();
    assert!(c);
    let (_, c) = store
        .create_unique("w", "Condition", "q2", "p1", key, &r, 100)
        .unwrap();
    assert!(c);
}

fn grant(kind: &str, expires_ms: i64) -> Grant {
    Grant {
        tenant: "g".into(),
        kind: kind.into(),
        patient: "p1".into(),
        scope: "patient/*.rs".into(),
        client_id: "app".into(),
        expires_ms,
        data: "{}".into(),
    }
}

fn grants_are_single_use(store: &dyn Store) {
    store
        .put_grant("h-access", &grant("access", 1_000))
        .unwrap();
    assert_eq!(
        store.get_grant("h-access", 999).unwrap(),
        Some(grant("access", 1_000))
    );
    assert_eq!(store.get_grant("h-access", 1_000).unwrap(), None, "expired");
    assert_eq!(store.get_grant("nope", 0).unwrap(), None);
    // Taking is atomic: of many concurrent takers exactly one wins.
    store.put_grant("h-code", &grant("code", 5_000)).unwrap();
    let wins = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| store.take_grant("h-code", 10).unwrap().is_some()))
            .collect();
        handles
            .into_iter()
            .filter(|_| true)
            .map(|h| h.join().unwrap())
            .filter(|w| *w)
            .count()
    });
    assert_eq!(wins, 1);
    assert_eq!(store.take_grant("h-code", 10).unwrap(), None);
    // An expired grant is not handed out.
    store.put_grant("h-old", &grant("refresh", 5)).unwrap();
    assert_eq!(store.take_grant("h-old", 10).unwrap(), None);
    // Revoking a family removes all of it and nothing else.
    store.put_grant("h-r1", &grant("refresh", 9_000)).unwrap();
    let mut other = grant("refresh", 9_000);
    other.client_id = "other-app".into();
    store.put_grant("h-r2", &other).unwrap();
    assert_eq!(store.revoke_grants("g", "p1", "app").unwrap(), 2);
    assert!(store.get_grant("h-r1", 10).unwrap().is_none());
    assert!(store.get_grant("h-r2", 10).unwrap().is_some());
}

fn relay_challenges_are_single_use_and_expire(store: &dyn Store) {
    let (a, b) = ([1u8; 32], [2u8; 32]);
    store.put_challenge("c-1", &a, 1_000).unwrap();
    assert!(
        !store.take_challenge("c-1", &b, 10).unwrap(),
        "issued to another key"
    );
    assert!(
        store.take_challenge("c-1", &a, 10).unwrap(),
        "another key's try leaves it alone"
    );
    assert!(!store.take_challenge("c-1", &a, 10).unwrap(), "single use");
    assert!(!store.take_challenge("c-unknown", &a, 10).unwrap());
    // Taking is atomic: of many concurrent takers exactly one wins.
    store.put_challenge("c-race", &a, 1_000).unwrap();
    let wins = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| store.take_challenge("c-race", &a, 10).unwrap()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|w| *w)
            .count()
    });
    assert_eq!(wins, 1);
    // An expired challenge does not count, and is spent all the same.
    store.put_challenge("c-old", &a, 100).unwrap();
    assert!(!store.take_challenge("c-old", &a, 100).unwrap(), "expired");
    assert!(!store.take_challenge("c-old", &a, 50).unwrap(), "and gone");
}

fn relay_sessions_expire(store: &dyn Store) {
    let session = Session {
        key: vec![3u8; 32],
        expires_ms: 1_000,
    };
    store.put_session("s-1", &session).unwrap();
    assert_eq!(store.get_session("s-1", 999).unwrap(), Some(session));
    assert_eq!(store.get_session("s-1", 1_000).unwrap(), None, "expired");
    assert_eq!(store.get_session("s-unknown", 0).unwrap(), None);
}

fn entry(mailbox: &str, enc: u8) -> DirectoryEntry {
    DirectoryEntry {
        mailbox: mailbox.into(),
        sign: vec![4u8; 32],
        enc: vec![enc; 32],
        binding: vec![5u8; 64],
        updated_s: i64::from(enc),
    }
}

fn relay_directory_entries_are_replaced(store: &dyn Store) {
    assert_eq!(store.get_directory("mb-dir").unwrap(), None);
    store.put_directory(&entry("mb-dir", 1)).unwrap();
    assert_eq!(
        store.get_directory("mb-dir").unwrap(),
        Some(entry("mb-dir", 1))
    );
    store.put_directory(&entry("mb-dir", 2)).unwrap();
    assert_eq!(
        store.get_directory("mb-dir").unwrap(),
        Some(entry("mb-dir", 2))
    );
    assert_eq!(store.get_directory("mb-other").unwrap(), None);
}

fn envelope(mailbox: &str, tag: &str, sender: &str, body: &[u8], created_s: i64) -> NewEnvelope {
    NewEnvelope {
        mailbox: mailbox.into(),
        tag: tag.into(),
        sender: sender.into(),
        body: body.to_vec(),
        created_s,
    }
}

/// Post and return the id, which must be new.
fn post(store: &dyn Store, e: &NewEnvelope) -> i64 {
    match store.post_envelope(e, 1_000).unwrap() {
        Posted::Stored(id) => id,
        other => panic!("post: {other:?}"),
    }
}

/// Every envelope of `mailbox`, paged `limit` at a time.
fn fetch_all(
    store: &dyn Store,
    mailbox: &str,
    limit: usize,
) -> (Vec<(i64, String, Vec<u8>)>, usize) {
    let (mut all, mut pages, mut after) = (Vec::new(), 0, 0);
    loop {
        let Page { envelopes, more } = store
            .fetch_envelopes(mailbox, after, limit, 1 << 20)
            .unwrap();
        pages += 1;
        assert!(envelopes.len() <= limit);
        if let Some(last) = envelopes.last() {
            after = last.id;
        }
        all.extend(envelopes.into_iter().map(|e| (e.id, e.tag, e.body)));
        if !more {
            return (all, pages);
        }
    }
}

fn relay_envelopes_post_fetch_and_page_in_order(store: &dyn Store) {
    let to_nobody = envelope("mb-none", "t", "mb-s1", b"x", 1);
    assert_eq!(
        store.post_envelope(&to_nobody, 10).unwrap(),
        Posted::NoMailbox
    );
    store.put_directory(&entry("mb-a", 1)).unwrap();
    store.put_directory(&entry("mb-b", 1)).unwrap();
    let ids: Vec<i64> = (0..5u8)
        .map(|i| {
            post(
                store,
                &envelope("mb-a", &format!("t{i}"), "mb-s1", &[i; 10], 1),
            )
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    post(store, &envelope("mb-b", "t0", "mb-s1", b"for b", 1));
    let (all, pages) = fetch_all(store, "mb-a", 2);
    assert_eq!(pages, 3);
    assert_eq!(all.iter().map(|e| e.0).collect::<Vec<_>>(), ids);
    assert_eq!(
        (all[3].1.as_str(), all[3].2.as_slice()),
        ("t3", &[3u8; 10][..])
    );
    // The byte cap ends a page early, but a page always holds one envelope.
    let capped = store.fetch_envelopes("mb-a", 0, 10, 25).unwrap();
    assert_eq!((capped.envelopes.len(), capped.more), (2, true));
    let one = store.fetch_envelopes("mb-a", 0, 10, 5).unwrap();
    assert_eq!((one.envelopes.len(), one.more), (1, true));
    let rest = store.fetch_envelopes("mb-a", ids[3], 10, 1 << 20).unwrap();
    assert_eq!(rest.envelopes.len(), 1);
    assert!(!rest.more);
    assert_eq!(
        store.fetch_envelopes("mb-a", ids[4], 10, 1 << 20).unwrap(),
        Page::default()
    );
    let (b, _) = fetch_all(store, "mb-b", 10);
    assert_eq!(b.len(), 1, "mailboxes are apart");
    assert_eq!(b[0].2, b"for b");
}

fn relay_acks_reach_only_their_own_mailbox(store: &dyn Store) {
    let (a, _) = fetch_all(store, "mb-a", 100);
    let ids: Vec<i64> = a.iter().map(|e| e.0).collect();
    assert_eq!(store.ack_envelopes("mb-b", &ids).unwrap(), 0, "not b's");
    assert_eq!(
        store
            .ack_envelopes("mb-a", &[ids[0], ids[1], 999_999])
            .unwrap(),
        2
    );
    assert_eq!(store.ack_envelopes("mb-a", &[ids[0]]).unwrap(), 0, "gone");
    assert_eq!(store.ack_envelopes("mb-a", &[]).unwrap(), 0);
    let (left, _) = fetch_all(store, "mb-a", 100);
    assert_eq!(left.iter().map(|e| e.0).collect::<Vec<_>>(), ids[2..]);
    // Many ids at once (past SQLite's bound on parameters in one statement).
    let many: Vec<i64> = (0..1_500).chain(ids[2..].iter().copied()).collect();
    assert_eq!(store.ack_envelopes("mb-a", &many).unwrap(), 3);
    assert!(fetch_all(store, "mb-a", 100).0.is_empty());
}

fn relay_tag_deletes_reach_only_their_own_sender(store: &dyn Store) {
    store.put_directory(&entry("mb-t1", 1)).unwrap();
    store.put_directory(&entry("mb-t2", 1)).unwrap();
    post(store, &envelope("mb-t1", "share", "mb-s1", b"1", 1));
    post(store, &envelope("mb-t2", "share", "mb-s1", b"2", 1));
    post(store, &envelope("mb-t1", "share", "mb-s2", b"3", 1));
    post(store, &envelope("mb-t1", "other", "mb-s1", b"4", 1));
    assert_eq!(store.delete_tagged("mb-s3", "share").unwrap(), 0);
    assert_eq!(
        store.delete_tagged("mb-s1", "share").unwrap(),
        2,
        "in every mailbox"
    );
    let left = |m| {
        fetch_all(store, m, 100)
            .0
            .into_iter()
            .map(|e| e.2)
            .collect::<Vec<_>>()
    };
    assert_eq!(left("mb-t1"), [b"3".to_vec(), b"4".to_vec()]);
    assert!(left("mb-t2").is_empty());
}

fn relay_quota_holds_under_concurrent_posts(store: &dyn Store) {
    store.put_directory(&entry("mb-q", 1)).unwrap();
    let outcomes: Vec<Posted> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                s.spawn(move || {
                    (0..3)
                        .map(|j| {
                            let e = envelope("mb-q", &format!("w{i}-{j}"), "mb-s1", b"q", 1);
                            store.post_envelope(&e, 10).unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let stored = outcomes
        .iter()
        .filter(|p| matches!(p, Posted::Stored(_)))
        .count();
    assert_eq!(stored, 10, "exactly the quota: {outcomes:?}");
    assert_eq!(outcomes.iter().filter(|p| **p == Posted::Full).count(), 14);
    let (all, _) = fetch_all(store, "mb-q", 100);
    assert_eq!(all.len(), 10);
    // Room again after an ack.
    assert_eq!(store.ack_envelopes("mb-q", &[all[0].0]).unwrap(), 1);
    let e = envelope("mb-q", "again", "mb-s1", b"q", 1);
    assert!(matches!(
        store.post_envelope(&e, 10).unwrap(),
        Posted::Stored(_)
    ));
    assert_eq!(store.post_envelope(&e, 10).unwrap(), Posted::Full);
}

fn relay_prune_removes_what_has_expired(store: &dyn Store) {
    let key = [6u8; 32];
    store.put_challenge("c-prune-old", &key, 5_000).unwrap();
    store.put_challenge("c-prune-new", &key, 50_000).unwrap();
    let session = |expires_ms| Session {
        key: key.to_vec(),
        expires_ms,
    };
    store.put_session("s-prune-old", &session(5_000)).unwrap();
    store.put_session("s-prune-new", &session(50_000)).unwrap();
    store.put_directory(&entry("mb-p", 1)).unwrap();
    post(store, &envelope("mb-p", "t", "mb-s1", b"old", 100));
    let young = post(store, &envelope("mb-p", "t", "mb-s1", b"young", 200));
    let pruned = store.prune_relay(10_000, 150).unwrap();
    assert!(pruned.challenges >= 1 && pruned.sessions >= 1 && pruned.envelopes >= 1);
    assert!(store.get_session("s-prune-old", 0).unwrap().is_none());
    assert!(store.get_session("s-prune-new", 10_000).unwrap().is_some());
    assert!(!store.take_challenge("c-prune-old", &key, 0).unwrap());
    assert!(store.take_challenge("c-prune-new", &key, 10_000).unwrap());
    let (left, _) = fetch_all(store, "mb-p", 100);
    assert_eq!(left.iter().map(|e| e.0).collect::<Vec<_>>(), [young]);
    // Directory entries are not pruned.
    assert!(store.get_directory("mb-p").unwrap().is_some());
    let again = store.prune_relay(10_000, 150).unwrap();
    assert_eq!(
        (again.challenges, again.sessions, again.envelopes),
        (0, 0, 0)
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlite_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::sqlite::SqliteStore::open(&dir.path().join("s.db")).unwrap();
        super::run(&store);
        concurrent_puts_get_distinct_times(&[&store]);
    }

    #[test]
    fn store_urls_dispatch_by_scheme() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("u.db").display());
        assert!(crate::store::open_url(&url).is_ok());
        for bad in ["sqlite://", "mysql://root:hunter2@db/x", "carry.db", ""] {
            let Err(e) = crate::store::open_url(bad) else {
                panic!("'{bad}' opened");
            };
            assert!(matches!(e, crate::store::StoreError::Url(_)), "{bad}: {e}");
            assert!(!e.to_string().contains("hunter2"), "no password echoed");
        }
        // A PostgreSQL URL goes to PostgreSQL: nothing listens on port 1, and the
        // error names the step, not the password.
        let Err(e) = crate::store::open_url("postgres://carry:hunter2@127.0.0.1:1/x") else {
            panic!("nothing listens on port 1");
        };
        assert!(matches!(e, crate::store::StoreError::Backend(_)), "{e}");
        assert!(e.to_string().contains("connecting to PostgreSQL"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "no password echoed");
    }

    /// Drops the throwaway database when the test ends, passed or not.
    struct TempDatabase {
        admin: postgres::Config,
        name: String,
    }

    impl Drop for TempDatabase {
        fn drop(&mut self) {
            let dropped = self.admin.connect(postgres::NoTls).and_then(|mut c| {
                c.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.name
                ))
            });
            if let Err(e) = dropped {
                eprintln!("could not drop test database {}: {e}", self.name);
            }
        }
    }

    /// Runs the suite on a fresh database on the server `CARRY_TEST_POSTGRES_URL`
    /// names (an admin URL whose role may create databases). Skipped without it,
    /// unless `CARRY_REQUIRE_POSTGRES=1`, as under `make postgres`.
    #[test]
    fn postgres_passes_the_conformance_suite() {
        use crate::store::Store;
        let required = std::env::var("CARRY_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let skip = |why: String| {
            assert!(!required, "CARRY_REQUIRE_POSTGRES=1 but {why}");
            eprintln!("postgres_passes_the_conformance_suite: skipped ({why})");
        };
        let Ok(url) = std::env::var("CARRY_TEST_POSTGRES_URL") else {
            return skip("CARRY_TEST_POSTGRES_URL is not set".into());
        };
        let mut admin: postgres::Config = url.parse().expect("CARRY_TEST_POSTGRES_URL parses");
        admin.connect_timeout(std::time::Duration::from_secs(5));
        let mut client = match admin.connect(postgres::NoTls) {
            Ok(c) => c,
            // The error names the step, never the URL or its password.
            Err(e) => return skip(format!("cannot reach CARRY_TEST_POSTGRES_URL: {e}")),
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("carry_test_{}_{nanos}", std::process::id());
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap();
        drop(client);
        let db = TempDatabase {
            admin: admin.clone(),
            name: name.clone(),
        };
        let mut config = admin;
        config.dbname(&name);
        let store = crate::postgres::PostgresStore::with_config(config.clone()).unwrap();
        super::run(&store);
        // A second instance (another server process, say) over the same tables: opening
        // again works, sees what the first wrote, and the two write concurrently.
        let other = crate::postgres::PostgresStore::with_config(config).unwrap();
        assert!(other.has_tenant("gp").unwrap());
        concurrent_puts_get_distinct_times(&[&store, &other]);
        // The server drops every connection (a restart, a failover): the pooled ones
        // are replaced and calls go on.
        let mut admin_client = db.admin.connect(postgres::NoTls).unwrap();
        let dropped = admin_client
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                &[&name],
            )
            .unwrap();
        assert!(dropped > 0);
        drop(admin_client);
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(store.get("v", "Patient", "p1").unwrap().is_some());
        let r = serde_json::json!({"resourceType": "Patient", "id": "p9"});
        store.put("v", "Patient", "p9", Some("p9"), &r, 1).unwrap();
        drop((store, other));
        drop(db);
    }

    /// Writers racing in one tenant, through one or more stores, still get strictly
    /// increasing change times, and none is lost.
    fn concurrent_puts_get_distinct_times(stores: &[&dyn crate::store::Store]) {
        use crate::store::Query;
        stores[0].ensure_tenant("race").unwrap();
        std::thread::scope(|s| {
            for w in 0..8 {
                let store = stores[w % stores.len()];
                s.spawn(move || {
                    for i in 0..10 {
                        let id = format!("w{w}-{i}");
                        let r = serde_json::json!({"resourceType": "Observation", "id": id});
                        store
                            .put("race", "Observation", &id, Some("p1"), &r, 7)
                            .unwrap();
                    }
                });
            }
        });
        let all = stores[0]
            .search(
                "race",
                &Query {
                    limit: 1000,
                    ..Query::default()
                },
            )
            .unwrap();
        assert_eq!(all.len(), 80);
        let mut times: Vec<i64> = all.iter().map(|s| s.last_updated_ms).collect();
        times.dedup();
        assert_eq!(times.len(), 80, "every write has its own change time");
    }
}
