//! The storage conformance suite: every backend must pass it. Each check takes a
//! fresh, empty store.

use serde_json::json;

use crate::backup::store::{
    Blob, Fetch, Put, Restores, Upload, MAX_CHAIN, MAX_WRONG, WRONG_WINDOW_S,
};
use crate::fhir::store::{After, Grant, Query, Refresh, Refreshed};
use crate::links::store::{Answer, Ask, Attempt, Change, LinkState, NewLink, Outcome, Via};
use crate::relay::store::{
    DirectoryEntry, NewEnvelope, Page, Posted, Quota, Retired, Retirement, Session,
};
use crate::storage::Store;

/// Call `$m!` with the name of every check: the tests below make one `#[test]` per
/// check per backend, each on a fresh store, so a failure names its check and hides
/// no other.
macro_rules! for_each_check {
    ($m:ident) => {
        $m!(
            tenants,
            put_get_and_versions,
            search_order_paging_and_filters,
            delete_removes,
            conditional_create_is_unique,
            unplaced_resources_are_shared_by_type_only,
            grants_are_single_use,
            refresh_tokens_rotate_and_replays_revoke_the_family,
            refresh_checks_tenant_and_client_before_changing_anything,
            concurrent_refreshes_of_one_token_leave_at_most_one_chain,
            relay_challenges_are_single_use_and_expire,
            relay_sessions_expire,
            relay_directory_entries_are_replaced,
            relay_envelopes_post_fetch_and_page_in_order,
            relay_acks_reach_only_their_own_mailbox,
            relay_tag_deletes_reach_only_their_own_sender,
            relay_quota_holds_under_concurrent_posts,
            relay_byte_quota_holds_under_concurrent_posts,
            relay_prune_removes_what_has_expired,
            relay_retirement_hands_over_and_stands,
            shl_links_belong_to_their_owner,
            shl_manifests_embed_or_mint_locations,
            shl_failures_are_capped_under_concurrent_guesses,
            shl_one_time_links_serve_once,
            shl_expiry_and_revocation_stop_service,
            backups_belong_to_their_first_uploader,
            backups_keep_the_newest_versions,
            backups_number_versions_under_concurrent_uploads,
            backup_fetches_need_the_latest_fetch_hash,
            backup_wrong_tries_lock_the_locator_for_a_window,
            backup_deletes_remove_every_version,
            backup_pruning_keeps_whole_chains,
            backup_incrementals_build_on_the_latest_version,
            backup_chains_hold_at_most_max_chain_incrementals,
            backup_concurrent_incrementals_on_one_base_store_one,
            backup_fetches_by_version_count_only_wrong_secrets,
            backup_restores_count_fetches_of_the_latest,
            backup_blobs_of_many_pieces_or_none_round_trip
        );
    };
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
            .map(|_| {
                s.spawn(|| {
                    store
                        .take_grant("h-code", "code", "g", 10)
                        .unwrap()
                        .is_some()
                })
            })
            .collect();
        handles
            .into_iter()
            .filter(|_| true)
            .map(|h| h.join().unwrap())
            .filter(|w| *w)
            .count()
    });
    assert_eq!(wins, 1);
    assert_eq!(store.take_grant("h-code", "code", "g", 10).unwrap(), None);
    // Only a grant of the kind and tenant asked for is taken; anything else stays.
    store.put_grant("h-code2", &grant("code", 5_000)).unwrap();
    assert_eq!(
        store.take_grant("h-code2", "code", "other", 10).unwrap(),
        None
    );
    assert_eq!(
        store.take_grant("h-code2", "access", "g", 10).unwrap(),
        None
    );
    assert!(store.get_grant("h-code2", 10).unwrap().is_some());
    // An expired grant is not handed out.
    store.put_grant("h-old", &grant("code", 5)).unwrap();
    assert_eq!(store.take_grant("h-old", "code", "g", 10).unwrap(), None);
}

/// A refresh token of `patient` (tenant `g`, client `app`), live until 1,000,000.
fn refresh_grant_of(store: &dyn Store, hash: &str, patient: &str) {
    let mut g = grant("refresh", 1_000_000);
    g.patient = patient.into();
    store.put_grant(hash, &g).unwrap();
}

/// A presentation at tenant `g` by client `app`, issuing `next`'s access and refresh
/// token (`next-a`, `next-r`).
fn presented<'a>(next: &'a (String, String), now_ms: i64, grace_ms: i64) -> Refresh<'a> {
    Refresh {
        tenant: "g",
        client_id: "app",
        now_ms,
        grace_ms,
        access: (&next.0, now_ms + 1_000),
        refresh: (&next.1, 1_000_000),
    }
}

fn pair(name: &str) -> (String, String) {
    (format!("{name}-a"), format!("{name}-r"))
}

fn kind_of(store: &dyn Store, hash: &str, now_ms: i64) -> Option<String> {
    store.get_grant(hash, now_ms).unwrap().map(|g| g.kind)
}

fn refresh_tokens_rotate_and_replays_revoke_the_family(store: &dyn Store) {
    // Rotation: the new pair is stored for the same patient, the old token is spent.
    refresh_grant_of(store, "f-0", "pf");
    let mut other_client = grant("refresh", 1_000_000);
    other_client.patient = "pf".into();
    other_client.client_id = "other-app".into();
    store.put_grant("f-other", &other_client).unwrap();
    let one = pair("f-1");
    match store
        .refresh_grant("f-0", &presented(&one, 100, 1_000))
        .unwrap()
    {
        Refreshed::Issued { grant, retry } => {
            assert_eq!((grant.patient.as_str(), retry), ("pf", false));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(kind_of(store, "f-0", 100).as_deref(), Some("spent"));
    assert_eq!(kind_of(store, &one.0, 100).as_deref(), Some("access"));
    assert_eq!(kind_of(store, &one.1, 100).as_deref(), Some("refresh"));
    // Within the grace window, once: a new pair, and the first use's pair stops working.
    let two = pair("f-2");
    assert!(matches!(
        store
            .refresh_grant("f-0", &presented(&two, 200, 1_000))
            .unwrap(),
        Refreshed::Issued { retry: true, .. }
    ));
    assert_eq!(kind_of(store, &one.0, 200), None, "superseded access token");
    assert_eq!(kind_of(store, &one.1, 200).as_deref(), Some("superseded"));
    assert_eq!(kind_of(store, &two.1, 200).as_deref(), Some("refresh"));
    // A second use within the window is a replay: the whole family goes, and only it.
    let three = pair("f-3");
    assert!(matches!(
        store.refresh_grant("f-0", &presented(&three, 300, 1_000)).unwrap(),
        Refreshed::Revoked(n) if n >= 4
    ));
    for h in ["f-0", &two.0, &two.1, &one.1, &three.0, &three.1] {
        assert_eq!(kind_of(store, h, 300), None, "{h}");
    }
    assert!(store.get_grant("f-other", 300).unwrap().is_some());
    assert_eq!(
        store
            .refresh_grant("f-0", &presented(&three, 400, 1_000))
            .unwrap(),
        Refreshed::Unknown
    );

    // Past the window, a spent token is a replay.
    refresh_grant_of(store, "l-0", "pl");
    let next = pair("l-1");
    store
        .refresh_grant("l-0", &presented(&next, 100, 1_000))
        .unwrap();
    assert!(matches!(
        store
            .refresh_grant("l-0", &presented(&pair("l-2"), 1_101, 1_000))
            .unwrap(),
        Refreshed::Revoked(_)
    ));
    assert_eq!(kind_of(store, &next.1, 1_101), None);

    // Without a window (0), at once.
    refresh_grant_of(store, "z-0", "pz");
    store
        .refresh_grant("z-0", &presented(&pair("z-1"), 100, 0))
        .unwrap();
    assert!(matches!(
        store
            .refresh_grant("z-0", &presented(&pair("z-2"), 100, 0))
            .unwrap(),
        Refreshed::Revoked(_)
    ));

    // Within the window, but the successor was already used: not a lost answer.
    refresh_grant_of(store, "u-0", "pu");
    let u1 = pair("u-1");
    store
        .refresh_grant("u-0", &presented(&u1, 100, 1_000))
        .unwrap();
    store
        .refresh_grant(&u1.1, &presented(&pair("u-2"), 150, 1_000))
        .unwrap();
    assert!(matches!(
        store
            .refresh_grant("u-0", &presented(&pair("u-3"), 200, 1_000))
            .unwrap(),
        Refreshed::Revoked(_)
    ));
    assert_eq!(kind_of(store, "u-2-r", 200), None);

    // A superseded token presented is a replay too.
    refresh_grant_of(store, "s-0", "ps");
    let s1 = pair("s-1");
    store
        .refresh_grant("s-0", &presented(&s1, 100, 1_000))
        .unwrap();
    store
        .refresh_grant("s-0", &presented(&pair("s-2"), 110, 1_000))
        .unwrap();
    assert!(matches!(
        store
            .refresh_grant(&s1.1, &presented(&pair("s-3"), 120, 1_000))
            .unwrap(),
        Refreshed::Revoked(_)
    ));
    assert_eq!(kind_of(store, "s-2-r", 120), None);
}

fn refresh_checks_tenant_and_client_before_changing_anything(store: &dyn Store) {
    refresh_grant_of(store, "w-0", "pw");
    let next = pair("w-1");
    let mut elsewhere = presented(&next, 100, 1_000);
    elsewhere.tenant = "other";
    let mut stranger = presented(&next, 100, 1_000);
    stranger.client_id = "evil";
    for r in [elsewhere, stranger] {
        assert_eq!(store.refresh_grant("w-0", &r).unwrap(), Refreshed::Unknown);
        assert_eq!(kind_of(store, "w-0", 100).as_deref(), Some("refresh"));
        assert_eq!(kind_of(store, &next.0, 100), None);
    }
    // An access token or a code presented as a refresh token is left as it was.
    store
        .put_grant("w-access", &grant("access", 1_000_000))
        .unwrap();
    store
        .put_grant("w-code", &grant("code", 1_000_000))
        .unwrap();
    for h in ["w-access", "w-code", "w-nothing"] {
        assert_eq!(
            store
                .refresh_grant(h, &presented(&next, 100, 1_000))
                .unwrap(),
            Refreshed::Unknown
        );
    }
    assert_eq!(kind_of(store, "w-access", 100).as_deref(), Some("access"));
    assert_eq!(kind_of(store, "w-code", 100).as_deref(), Some("code"));
    // An expired refresh token does nothing either.
    let mut old = grant("refresh", 50);
    old.patient = "pw".into();
    store.put_grant("w-old", &old).unwrap();
    assert_eq!(
        store
            .refresh_grant("w-old", &presented(&next, 100, 1_000))
            .unwrap(),
        Refreshed::Unknown
    );
    // The token still works where it belongs.
    assert!(matches!(
        store
            .refresh_grant("w-0", &presented(&next, 100, 1_000))
            .unwrap(),
        Refreshed::Issued { retry: false, .. }
    ));
}

/// Twenty exchanges of one token at once take turns: one rotates it, one is the
/// grace-window retry (superseding the first's pair), the next is a replay that
/// revokes the family, and the rest find nothing. No two chains are ever live.
fn concurrent_refreshes_of_one_token_leave_at_most_one_chain(store: &dyn Store) {
    for (name, grace) in [("c", 30_000), ("n", 0)] {
        let root = format!("{name}-0");
        refresh_grant_of(store, &root, &format!("p{name}"));
        let pairs: Vec<(String, String)> = (1..=20).map(|i| pair(&format!("{name}-{i}"))).collect();
        let outcomes: Vec<Refreshed> = std::thread::scope(|s| {
            let handles: Vec<_> = pairs
                .iter()
                .map(|p| {
                    let root = root.as_str();
                    s.spawn(move || {
                        store
                            .refresh_grant(root, &presented(p, 100, grace))
                            .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let issued = outcomes
            .iter()
            .filter(|o| matches!(o, Refreshed::Issued { .. }))
            .count();
        let revoked = outcomes
            .iter()
            .filter(|o| matches!(o, Refreshed::Revoked(_)))
            .count();
        let expected_issued = if grace > 0 { 2 } else { 1 };
        assert_eq!(
            (issued, revoked),
            (expected_issued, 1),
            "{name}: {outcomes:?}"
        );
        let live = pairs
            .iter()
            .filter(|p| kind_of(store, &p.1, 100).as_deref() == Some("refresh"))
            .count();
        assert_eq!(live, 0, "{name}: the replays revoked every chain");
    }
    // Two at once (a retry racing the first use) leave exactly one live chain.
    refresh_grant_of(store, "t-0", "pt");
    let pairs = [pair("t-1"), pair("t-2")];
    std::thread::scope(|s| {
        for p in &pairs {
            s.spawn(move || {
                store
                    .refresh_grant("t-0", &presented(p, 100, 30_000))
                    .unwrap()
            });
        }
    });
    let live: Vec<&(String, String)> = pairs
        .iter()
        .filter(|p| kind_of(store, &p.1, 100).as_deref() == Some("refresh"))
        .collect();
    assert_eq!(live.len(), 1);
    assert_eq!(kind_of(store, &live[0].0, 100).as_deref(), Some("access"));
}

fn unplaced_resources_are_shared_by_type_only(store: &dyn Store) {
    store.ensure_tenant("u").unwrap();
    let put = |rtype: &str, id: &str, patient: Option<&str>| {
        let r = json!({"resourceType": rtype, "id": id});
        store.put("u", rtype, id, patient, &r, 1_000).unwrap();
    };
    put("Patient", "p1", Some("p1"));
    put("Observation", "o1", Some("p1"));
    put("Observation", "o2", Some("p2"));
    for t in crate::fhir::store::SHARED_TYPES {
        put(t, "shared", None);
    }
    // A database seeded before seeding failed closed may hold these.
    put("Appointment", "a1", None);
    put("Composition", "c1", None);
    let ids = |rtype: Option<&str>, patient: Option<&str>, include_shared| {
        let mut v: Vec<String> = store
            .search(
                "u",
                &Query {
                    rtype: rtype.map(str::to_string),
                    patient: patient.map(str::to_string),
                    include_shared,
                    limit: 100,
                    ..Query::default()
                },
            )
            .unwrap()
            .into_iter()
            .map(|s| format!("{}/{}", s.rtype, s.id))
            .collect();
        v.sort();
        v
    };
    let mut expected: Vec<String> = crate::fhir::store::SHARED_TYPES
        .iter()
        .map(|t| format!("{t}/shared"))
        .collect();
    expected.extend(["Observation/o1".to_string(), "Patient/p1".to_string()]);
    expected.sort();
    assert_eq!(ids(None, Some("p1"), true), expected);
    assert!(ids(Some("Appointment"), Some("p1"), true).is_empty());
    assert!(ids(Some("Composition"), Some("p1"), true).is_empty());
    assert_eq!(
        ids(Some("Organization"), Some("p1"), true),
        ["Organization/shared"]
    );
    // Without a patient (open servers, static tokens) everything is there.
    assert_eq!(ids(None, None, false).len(), expected.len() + 3);
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

/// A quota of `envelopes` and `bytes`.
fn quota(envelopes: usize, bytes: u64) -> Quota {
    Quota { envelopes, bytes }
}

/// Post and return the id, which must be new.
fn post(store: &dyn Store, e: &NewEnvelope) -> i64 {
    match store.post_envelope(e, &quota(1_000, 1 << 30)).unwrap() {
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
        store
            .post_envelope(&to_nobody, &quota(10, 1 << 20))
            .unwrap(),
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
    // Each envelope comes with the mailbox of the key that posted it.
    post(store, &envelope("mb-b", "t1", "mb-s2", b"from s2", 1));
    let senders: Vec<String> = store
        .fetch_envelopes("mb-b", 0, 10, 1 << 20)
        .unwrap()
        .envelopes
        .into_iter()
        .map(|e| e.sender)
        .collect();
    assert_eq!(senders, ["mb-s1", "mb-s2"]);
}

fn relay_acks_reach_only_their_own_mailbox(store: &dyn Store) {
    // Five envelopes in mailbox a (left there by the paging check when the checks run
    // in order on one store).
    if fetch_all(store, "mb-a", 100).0.is_empty() {
        store.put_directory(&entry("mb-a", 1)).unwrap();
        store.put_directory(&entry("mb-b", 1)).unwrap();
        for i in 0..5u8 {
            post(
                store,
                &envelope("mb-a", &format!("t{i}"), "mb-s1", &[i; 10], 1),
            );
        }
    }
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
                            store.post_envelope(&e, &quota(10, 1 << 20)).unwrap()
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
        store.post_envelope(&e, &quota(10, 1 << 20)).unwrap(),
        Posted::Stored(_)
    ));
    assert_eq!(
        store.post_envelope(&e, &quota(10, 1 << 20)).unwrap(),
        Posted::Full
    );
}

fn relay_byte_quota_holds_under_concurrent_posts(store: &dyn Store) {
    store.put_directory(&entry("mb-qb", 1)).unwrap();
    // 100 bytes of room: ten envelopes of 10 bytes, however many race for it.
    let q = quota(1_000, 100);
    let outcomes: Vec<Posted> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                s.spawn(move || {
                    (0..3)
                        .map(|j| {
                            let e = envelope("mb-qb", &format!("w{i}-{j}"), "mb-s1", &[7u8; 10], 1);
                            store.post_envelope(&e, &q).unwrap()
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
    assert_eq!(stored, 10, "exactly the bytes allowed: {outcomes:?}");
    // Full by bytes though far from full by count; one byte more does not fit.
    let (all, _) = fetch_all(store, "mb-qb", 100);
    assert_eq!(all.iter().map(|e| e.2.len()).sum::<usize>(), 100);
    let one = envelope("mb-qb", "one", "mb-s1", b"x", 1);
    assert_eq!(store.post_envelope(&one, &q).unwrap(), Posted::Full);
    // Another mailbox is not touched by this one's bytes.
    store.put_directory(&entry("mb-qb2", 1)).unwrap();
    let other = envelope("mb-qb2", "one", "mb-s1", &[1u8; 100], 1);
    assert!(matches!(
        store.post_envelope(&other, &q).unwrap(),
        Posted::Stored(_)
    ));
    // An ack frees its bytes.
    assert_eq!(store.ack_envelopes("mb-qb", &[all[0].0]).unwrap(), 1);
    let ten = envelope("mb-qb", "ten", "mb-s1", &[2u8; 10], 1);
    assert!(matches!(
        store.post_envelope(&ten, &q).unwrap(),
        Posted::Stored(_)
    ));
    assert_eq!(store.post_envelope(&one, &q).unwrap(), Posted::Full);
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

/// A link `id` of `owner` with `flags`, no expiry, a cap of `max_failures`.
fn relay_retirement_hands_over_and_stands(store: &dyn Store) {
    let (old, new) = (vec![21u8; 32], vec![22u8; 32]);
    store
        .put_session(
            "s-retiring",
            &Session {
                key: old.clone(),
                expires_ms: i64::MAX,
            },
        )
        .unwrap();
    store.put_directory(&entry("mb-retiring", 1)).unwrap();
    store.put_directory(&entry("mb-x", 1)).unwrap();
    post(
        store,
        &envelope("mb-retiring", "t", "mb-x", b"for the old key", 1),
    );
    post(
        store,
        &envelope("mb-x", "t-old", "mb-retiring", b"from the old key", 1),
    );
    store
        .shl_create(&link("ret-1", "mb-retiring", "L", false, 5))
        .unwrap();
    let h = [7u8; 32];
    store
        .backup_put(&upload("ret-b", "mb-retiring", &h, b"one", 10))
        .unwrap();
    assert_eq!(store.successor_of("mb-retiring").unwrap(), None);
    let r = Retirement {
        key: old.clone(),
        mailbox: "mb-retiring".into(),
        successor: new.clone(),
        successor_mailbox: "mb-successor".into(),
        at_s: 20,
    };
    assert_eq!(store.retire_key(&r).unwrap(), Retired::Done);
    assert_eq!(
        store.successor_of("mb-retiring").unwrap().as_deref(),
        Some("mb-successor")
    );
    assert_eq!(store.successor_of("mb-successor").unwrap(), None);
    assert_eq!(
        store.get_session("s-retiring", 0).unwrap(),
        None,
        "signed out"
    );
    assert_eq!(store.get_directory("mb-retiring").unwrap(), None);
    assert_eq!(
        store
            .post_envelope(
                &envelope("mb-retiring", "t", "mb-x", b"late", 21),
                &quota(10, 1 << 20)
            )
            .unwrap(),
        Posted::NoMailbox
    );
    assert!(
        fetch_all(store, "mb-retiring", 10).0.is_empty(),
        "its mailbox is gone"
    );
    // What it owned is the successor's now.
    assert_eq!(store.delete_tagged("mb-successor", "t-old").unwrap(), 1);
    assert_eq!(
        store.shl_links("mb-successor").unwrap().len(),
        1,
        "the link passed on"
    );
    assert!(store.shl_links("mb-retiring").unwrap().is_empty());
    assert!(store
        .backup_versions("ret-b", "mb-successor")
        .unwrap()
        .is_some());
    assert!(store
        .backup_versions("ret-b", "mb-retiring")
        .unwrap()
        .is_none());
    // A retry stands; a retirement in favour of another key changes nothing.
    assert_eq!(store.retire_key(&r).unwrap(), Retired::Again);
    let hijack = Retirement {
        successor: vec![23u8; 32],
        successor_mailbox: "mb-hijack".into(),
        ..r
    };
    assert_eq!(store.retire_key(&hijack).unwrap(), Retired::Other);
    assert!(store.shl_links("mb-hijack").unwrap().is_empty());
}

fn link(id: &str, owner: &str, flags: &str, once: bool, max_failures: i64) -> NewLink {
    NewLink {
        id: id.into(),
        owner: owner.into(),
        flags: flags.into(),
        passcode_hash: flags
            .contains('P')
            .then(|| "pbkdf2-sha256$1$AA$AA".to_string()),
        expires_s: None,
        once,
        max_failures,
        file: format!("eyJhbGciOiJkaXIifQ..aXY.{id}.dGFn"),
        created_s: 1_000,
    }
}

fn attempt(id: &str, recipient: &str, via: Via, ask: Ask, now_s: i64) -> Attempt {
    Attempt {
        id: id.into(),
        recipient: recipient.into(),
        via,
        ask,
        now_s,
    }
}

fn manifest(embed_max: Option<u64>, token: &str, expires_s: i64) -> Ask {
    Ask::Manifest {
        embed_max,
        token_hash: token.into(),
        token_expires_s: expires_s,
    }
}

/// The outcomes an owner sees in a link's log, in order.
fn outcomes(
    store: &dyn Store,
    id: &str,
    owner: &str,
) -> Vec<(i64, String, &'static str, &'static str)> {
    let (_, log) = store.shl_accesses(id, owner, 0, 1000).unwrap().unwrap();
    log.iter()
        .map(|a| {
            (
                a.seq,
                a.recipient.clone(),
                a.outcome.as_str(),
                a.via.as_str(),
            )
        })
        .collect()
}

fn shl_links_belong_to_their_owner(store: &dyn Store) {
    store
        .shl_create(&link("own-1", "mb-alice", "L", false, 5))
        .unwrap();
    let mut second = link("own-2", "mb-alice", "LP", false, 5);
    second.created_s = 2_000;
    second.expires_s = Some(9_000);
    store.shl_create(&second).unwrap();
    store
        .shl_create(&link("own-3", "mb-bob", "", false, 5))
        .unwrap();
    let mine = store.shl_links("mb-alice").unwrap();
    assert_eq!(
        mine.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(),
        ["own-1", "own-2"],
        "oldest first, only alice's"
    );
    let got = store.shl_link("own-2").unwrap().unwrap();
    assert_eq!(
        (
            got.flags.as_str(),
            got.expires_s,
            got.once,
            got.max_failures
        ),
        ("LP", Some(9_000), false, 5)
    );
    assert_eq!(got.passcode_hash.as_deref(), Some("pbkdf2-sha256$1$AA$AA"));
    assert_eq!(
        (got.failures, got.accesses, got.revoked_s, got.used_s),
        (0, 0, None, None)
    );
    assert_eq!(got.state(1_500), LinkState::Active);
    assert!(store.shl_link("nope").unwrap().is_none());
    assert!(store.shl_links("mb-nobody").unwrap().is_empty());

    // Another owner can neither replace, revoke nor read it.
    let file = "eyJhbGciOiJkaXIifQ..aXY.bmV3.dGFn";
    assert_eq!(
        store.shl_replace_file("own-1", "mb-bob", file, 1).unwrap(),
        Change::NotFound
    );
    assert_eq!(
        store.shl_revoke("own-1", "mb-bob", 1).unwrap(),
        Change::NotFound
    );
    assert!(store
        .shl_accesses("own-1", "mb-bob", 0, 10)
        .unwrap()
        .is_none());
    assert_eq!(
        store.shl_replace_file("nope", "mb-alice", file, 1).unwrap(),
        Change::NotFound
    );
    // The owner can: the new file is what is served.
    assert_eq!(
        store
            .shl_replace_file("own-1", "mb-alice", file, 1)
            .unwrap(),
        Change::Done
    );
    let served = store
        .shl_access(&attempt("own-1", "Dr A", Via::Direct, Ask::Direct, 1_500))
        .unwrap();
    assert_eq!(served, Answer::File(file.into()));
    // Revoked: idempotent, and the file can no longer be replaced.
    assert_eq!(
        store.shl_revoke("own-1", "mb-alice", 1_600).unwrap(),
        Change::Done
    );
    assert_eq!(
        store.shl_revoke("own-1", "mb-alice", 1_700).unwrap(),
        Change::Done
    );
    assert_eq!(
        store.shl_link("own-1").unwrap().unwrap().revoked_s,
        Some(1_600)
    );
    assert_eq!(
        store
            .shl_replace_file("own-1", "mb-alice", file, 1)
            .unwrap(),
        Change::Revoked
    );
    assert_eq!(
        store.shl_links("mb-alice").unwrap()[0].state(1_800),
        LinkState::Revoked
    );
}

fn shl_manifests_embed_or_mint_locations(store: &dyn Store) {
    let new = link("man-1", "mb-m", "L", false, 5);
    let len = new.file.len() as u64;
    store.shl_create(&new).unwrap();
    // Embedded when the client allows the length, else a location token.
    let a = store
        .shl_access(&attempt(
            "man-1",
            "Dr A",
            Via::Manifest,
            manifest(Some(len), "tok-a", 5_000),
            2_000,
        ))
        .unwrap();
    assert_eq!(a, Answer::File(new.file.clone()));
    let b = store
        .shl_access(&attempt(
            "man-1",
            "Dr B",
            Via::Manifest,
            manifest(Some(len - 1), "tok-b", 5_000),
            2_001,
        ))
        .unwrap();
    assert_eq!(b, Answer::Location);
    let c = store
        .shl_access(&attempt(
            "man-1",
            "Dr C",
            Via::Manifest,
            manifest(None, "tok-c", 2_100),
            2_002,
        ))
        .unwrap();
    assert_eq!(c, Answer::Location);
    // A location works until its token expires, more than once for a lasting link.
    // Fetched by its recipient soon after the manifest, it is part of that opening
    // (even with another recipient's opening between them).
    assert_eq!(
        store.shl_fetch("tok-b", 2_010).unwrap(),
        Answer::File(new.file.clone())
    );
    assert_eq!(
        store.shl_fetch("tok-b", 2_020).unwrap(),
        Answer::File(new.file.clone())
    );
    // A token past its life on a link in force is a refusal, counted, not logged.
    assert_eq!(
        store.shl_fetch("tok-c", 2_100).unwrap(),
        Answer::Refused(Outcome::Expired)
    );
    assert_eq!(
        store.shl_fetch("tok-c", 2_101).unwrap(),
        Answer::NoLink,
        "an expired token goes"
    );
    assert_eq!(
        store.shl_fetch("tok-unknown", 2_010).unwrap(),
        Answer::NoLink
    );
    // Refusing a request the link does not serve is counted too.
    let r = store
        .shl_access(&attempt("man-1", "Dr D", Via::Direct, Ask::Refuse, 2_200))
        .unwrap();
    assert_eq!(r, Answer::Refused(Outcome::Inactive));
    assert_eq!(
        store
            .shl_access(&attempt("nope", "Dr D", Via::Direct, Ask::Direct, 2_200))
            .unwrap(),
        Answer::NoLink
    );
    // Long after its manifest, a fetch through the same token is an opening of its
    // own; again soon after, part of that one.
    assert!(matches!(
        store.shl_fetch("tok-b", 2_400).unwrap(),
        Answer::File(_)
    ));
    assert!(matches!(
        store.shl_fetch("tok-b", 2_401).unwrap(),
        Answer::File(_)
    ));
    // The log holds the openings alone, in order; the refusals are a count.
    assert_eq!(
        outcomes(store, "man-1", "mb-m"),
        [
            (1, "Dr A".to_string(), "ok", "manifest"),
            (2, "Dr B".to_string(), "ok", "manifest"),
            (3, "Dr C".to_string(), "ok", "manifest"),
            (4, "Dr B".to_string(), "ok", "file"),
        ]
    );
    let (l, page) = store.shl_accesses("man-1", "mb-m", 1, 1).unwrap().unwrap();
    assert_eq!((page.len(), page[0].seq, page[0].at_s), (1, 2, 2_001));
    assert_eq!(
        (l.accesses, l.refused, l.last_refused_s, l.failures),
        (4, 2, Some(2_200), 0)
    );
    let listed = &store.shl_links("mb-m").unwrap()[0];
    assert_eq!((listed.accesses, listed.refused), (4, 2));
    // Pruning drops expired tokens only.
    store
        .shl_access(&attempt(
            "man-1",
            "Dr E",
            Via::Manifest,
            manifest(None, "tok-e", 3_000),
            2_300,
        ))
        .unwrap();
    assert_eq!(
        store.shl_prune(2_500).unwrap(),
        0,
        "nothing has expired yet"
    );
    assert_eq!(
        store.shl_fetch("tok-e", 2_600).unwrap(),
        Answer::File(new.file.clone())
    );
    assert_eq!(
        store.shl_prune(3_000).unwrap(),
        1,
        "tok-e went, tok-b stays"
    );
    assert_eq!(store.shl_fetch("tok-e", 2_600).unwrap(), Answer::NoLink);
    assert!(matches!(
        store.shl_fetch("tok-b", 2_600).unwrap(),
        Answer::File(_)
    ));
    assert_eq!(
        outcomes(store, "man-1", "mb-m").len(),
        5,
        "Dr E's one opening"
    );
}

fn shl_failures_are_capped_under_concurrent_guesses(store: &dyn Store) {
    store
        .shl_create(&link("cap-1", "mb-c", "P", false, 5))
        .unwrap();
    let answers: Vec<Answer> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                s.spawn(move || {
                    let who = format!("guesser {i}");
                    store
                        .shl_access(&attempt(
                            "cap-1",
                            &who,
                            Via::Manifest,
                            Ask::WrongPasscode,
                            3_000,
                        ))
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut remaining: Vec<i64> = answers
        .iter()
        .filter_map(|a| match a {
            Answer::WrongPasscode { remaining } => Some(*remaining),
            _ => None,
        })
        .collect();
    remaining.sort_unstable();
    assert_eq!(
        remaining,
        [0, 1, 2, 3, 4],
        "exactly the cap counted: {answers:?}"
    );
    assert_eq!(
        answers
            .iter()
            .filter(|a| **a == Answer::Refused(Outcome::Locked))
            .count(),
        11
    );
    let l = store.shl_link("cap-1").unwrap().unwrap();
    assert_eq!(
        (l.failures, l.remaining_attempts(), l.state(3_000)),
        (5, 0, LinkState::Locked)
    );
    // Locked: even a right passcode (the handler's manifest ask) is refused.
    let after = store
        .shl_access(&attempt(
            "cap-1",
            "Dr R",
            Via::Manifest,
            manifest(Some(1 << 20), "tok-cap", 9_000),
            3_001,
        ))
        .unwrap();
    assert_eq!(after, Answer::Refused(Outcome::Locked));
    // The five wrong passcodes are counted; once locked, nothing more is recorded.
    assert!(outcomes(store, "cap-1", "mb-c").is_empty());
    let l = store.shl_link("cap-1").unwrap().unwrap();
    assert_eq!(
        (l.refused, l.last_refused_s, l.accesses),
        (5, Some(3_000), 0)
    );
}

fn shl_one_time_links_serve_once(store: &dyn Store) {
    // Racing direct requests: exactly one is served.
    store
        .shl_create(&link("once-1", "mb-o", "U", true, 5))
        .unwrap();
    let answers: Vec<Answer> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(move || {
                    store
                        .shl_access(&attempt("once-1", "Dr O", Via::Direct, Ask::Direct, 4_000))
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        answers
            .iter()
            .filter(|a| matches!(a, Answer::File(_)))
            .count(),
        1
    );
    assert_eq!(
        answers
            .iter()
            .filter(|a| **a == Answer::Refused(Outcome::Inactive))
            .count(),
        7
    );
    let l = store.shl_link("once-1").unwrap().unwrap();
    assert_eq!((l.used_s, l.state(4_001)), (Some(4_000), LinkState::Used));
    assert_eq!(
        (l.accesses, l.refused),
        (1, 0),
        "one opening; nothing recorded once used"
    );
    // A manifest of a one-time link: the location it mints works once.
    store
        .shl_create(&link("once-2", "mb-o", "", true, 5))
        .unwrap();
    let m = store
        .shl_access(&attempt(
            "once-2",
            "Dr P",
            Via::Manifest,
            manifest(None, "tok-once", 9_000),
            4_000,
        ))
        .unwrap();
    assert_eq!(m, Answer::Location);
    let again = store
        .shl_access(&attempt(
            "once-2",
            "Dr Q",
            Via::Manifest,
            manifest(None, "tok-twice", 9_000),
            4_001,
        ))
        .unwrap();
    assert_eq!(again, Answer::Refused(Outcome::Inactive));
    assert!(matches!(
        store.shl_fetch("tok-once", 4_002).unwrap(),
        Answer::File(_)
    ));
    assert_eq!(store.shl_fetch("tok-once", 4_003).unwrap(), Answer::NoLink);
    assert_eq!(store.shl_fetch("tok-twice", 4_003).unwrap(), Answer::NoLink);
    assert_eq!(
        outcomes(store, "once-2", "mb-o"),
        [(1, "Dr P".to_string(), "ok", "manifest")],
        "the manifest and its file are one opening; the refusal after use is not kept"
    );
    assert_eq!(store.shl_link("once-2").unwrap().unwrap().refused, 0);
}

fn shl_expiry_and_revocation_stop_service(store: &dyn Store) {
    let mut expiring = link("exp-1", "mb-e", "L", false, 5);
    expiring.expires_s = Some(5_000);
    store.shl_create(&expiring).unwrap();
    let m = store
        .shl_access(&attempt(
            "exp-1",
            "Dr E",
            Via::Manifest,
            manifest(None, "tok-exp", 9_000),
            4_990,
        ))
        .unwrap();
    assert_eq!(m, Answer::Location);
    assert!(matches!(
        store.shl_fetch("tok-exp", 4_999).unwrap(),
        Answer::File(_)
    ));
    // Past the link's expiry its token is refused, whatever the token's own.
    assert_eq!(
        store.shl_fetch("tok-exp", 5_000).unwrap(),
        Answer::Refused(Outcome::Expired)
    );
    let late = store
        .shl_access(&attempt(
            "exp-1",
            "Dr E",
            Via::Manifest,
            manifest(None, "tok-late", 9_000),
            5_000,
        ))
        .unwrap();
    assert_eq!(late, Answer::Refused(Outcome::Expired));
    let wrong = store
        .shl_access(&attempt(
            "exp-1",
            "Dr E",
            Via::Manifest,
            Ask::WrongPasscode,
            5_001,
        ))
        .unwrap();
    assert_eq!(
        wrong,
        Answer::Refused(Outcome::Expired),
        "no failure counted"
    );
    let l = store.shl_link("exp-1").unwrap().unwrap();
    assert_eq!((l.failures, l.refused, l.accesses), (0, 0, 1));
    assert_eq!(
        outcomes(store, "exp-1", "mb-e"),
        [(1, "Dr E".to_string(), "ok", "manifest")],
        "nothing is recorded after a link expires"
    );

    // Revocation: tokens already handed out stop working, and so does the link.
    store
        .shl_create(&link("rev-1", "mb-e", "", false, 5))
        .unwrap();
    let m = store
        .shl_access(&attempt(
            "rev-1",
            "Dr F",
            Via::Manifest,
            manifest(None, "tok-rev", 9_000),
            6_000,
        ))
        .unwrap();
    assert_eq!(m, Answer::Location);
    assert_eq!(
        store.shl_revoke("rev-1", "mb-e", 6_001).unwrap(),
        Change::Done
    );
    assert_eq!(store.shl_fetch("tok-rev", 6_002).unwrap(), Answer::NoLink);
    let after = store
        .shl_access(&attempt("rev-1", "Dr F", Via::Direct, Ask::Direct, 6_003))
        .unwrap();
    assert_eq!(after, Answer::Refused(Outcome::Revoked));
    for ask in [Ask::Refuse, Ask::WrongPasscode, Ask::Direct] {
        assert_eq!(
            store
                .shl_access(&attempt("rev-1", "Dr G", Via::Direct, ask, 6_005))
                .unwrap(),
            Answer::Refused(Outcome::Revoked)
        );
    }
    let (l, log) = store.shl_accesses("rev-1", "mb-e", 0, 10).unwrap().unwrap();
    assert_eq!(l.state(6_004), LinkState::Revoked);
    assert_eq!(
        log.iter().map(|a| a.outcome).collect::<Vec<_>>(),
        [Outcome::Ok],
        "nothing is recorded after a revocation"
    );
    assert_eq!((l.refused, l.last_refused_s, l.failures), (0, None, 0));
}

fn upload<'a>(
    locator: &'a str,
    owner: &'a str,
    hash: &'a [u8],
    data: &'a [u8],
    now_s: i64,
) -> Upload<'a> {
    Upload {
        locator,
        owner,
        fetch_hash: hash,
        data: data.into(),
        base: None,
        keep: 3,
        now_s,
    }
}

fn backups_belong_to_their_first_uploader(store: &dyn Store) {
    let h = [1u8; 32];
    assert_eq!(
        store
            .backup_put(&upload("own-b", "mb-a", &h, b"one", 10))
            .unwrap(),
        Put::Stored(1)
    );
    assert_eq!(
        store
            .backup_put(&upload("own-b", "mb-b", &[2u8; 32], b"evil", 11))
            .unwrap(),
        Put::NotOwner
    );
    // The refused upload changed nothing: not the data, not the fetch hash.
    assert_eq!(
        store.backup_fetch("own-b", &h, None, 12).unwrap(),
        Fetch::Blob {
            version: 1,
            base: None,
            data: b"one".to_vec()
        }
    );
    assert!(store.backup_versions("own-b", "mb-b").unwrap().is_none());
    assert!(!store.backup_delete("own-b", "mb-b").unwrap());
    assert!(store.backup_versions("nope", "mb-a").unwrap().is_none());
    let v = store.backup_versions("own-b", "mb-a").unwrap().unwrap();
    assert_eq!(
        (v.len(), v[0].version, v[0].bytes, v[0].created_s),
        (1, 1, 3, 10)
    );
}

fn backups_keep_the_newest_versions(store: &dyn Store) {
    let h = [3u8; 32];
    for (i, data) in [b"v1", b"v2", b"v3", b"v4", b"v5"].iter().enumerate() {
        let n = i64::try_from(i).unwrap() + 1;
        assert_eq!(
            store
                .backup_put(&upload("keep-b", "mb-k", &h, *data, 100 + n))
                .unwrap(),
            Put::Stored(n)
        );
    }
    let v = store.backup_versions("keep-b", "mb-k").unwrap().unwrap();
    let numbers: Vec<i64> = v.iter().map(|v| v.version).collect();
    assert_eq!(numbers, [5, 4, 3], "newest first, the oldest pruned");
    assert_eq!(v[0].created_s, 105);
    assert_eq!(
        store.backup_fetch("keep-b", &h, None, 200).unwrap(),
        Fetch::Blob {
            version: 5,
            base: None,
            data: b"v5".to_vec()
        }
    );
    // A smaller keep prunes further; binary data round-trips.
    let bin: Vec<u8> = (0..=255).collect();
    let mut u = upload("keep-b", "mb-k", &h, &bin, 300);
    u.keep = 1;
    assert_eq!(store.backup_put(&u).unwrap(), Put::Stored(6));
    let v = store.backup_versions("keep-b", "mb-k").unwrap().unwrap();
    assert_eq!((v.len(), v[0].version, v[0].bytes), (1, 6, 256));
    assert_eq!(
        store.backup_fetch("keep-b", &h, None, 301).unwrap(),
        Fetch::Blob {
            version: 6,
            base: None,
            data: bin
        }
    );
}

/// Blobs are copied into the store in pieces: one of several pieces (and an uneven
/// last one), and an empty one, come back byte for byte.
fn backup_blobs_of_many_pieces_or_none_round_trip(store: &dyn Store) {
    let h = [6u8; 32];
    let piece = crate::backup::store::BLOB_PIECE;
    let big: Vec<u8> = (0..piece * 3 + 1234).map(|i| (i * 7 % 251) as u8).collect();
    let u = Upload {
        data: Blob::Bytes(&big),
        ..upload("pieces-b", "mb-p", &h, &[], 400)
    };
    assert_eq!(store.backup_put(&u).unwrap(), Put::Stored(1));
    let v = store.backup_versions("pieces-b", "mb-p").unwrap().unwrap();
    assert_eq!(v[0].bytes, big.len() as i64);
    assert_eq!(
        store.backup_fetch("pieces-b", &h, None, 401).unwrap(),
        Fetch::Blob {
            version: 1,
            base: None,
            data: big
        }
    );
    assert_eq!(
        store
            .backup_put(&upload("pieces-b", "mb-p", &h, &[], 402))
            .unwrap(),
        Put::Stored(2)
    );
    assert_eq!(
        store.backup_fetch("pieces-b", &h, None, 403).unwrap(),
        Fetch::Blob {
            version: 2,
            base: None,
            data: Vec::new()
        }
    );
}

fn backups_number_versions_under_concurrent_uploads(store: &dyn Store) {
    let h = [4u8; 32];
    let mut got: Vec<i64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let mut u = upload("race-b", "mb-r", &h, b"x", 400);
                    u.keep = 100;
                    match store.backup_put(&u).unwrap() {
                        Put::Stored(n) => n,
                        other => panic!("a full upload was refused: {other:?}"),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    got.sort_unstable();
    assert_eq!(got, (1..=8).collect::<Vec<i64>>(), "no gaps, no duplicates");
    assert_eq!(
        store
            .backup_versions("race-b", "mb-r")
            .unwrap()
            .unwrap()
            .len(),
        8
    );
}

fn backup_fetches_need_the_latest_fetch_hash(store: &dyn Store) {
    let (old, new) = ([5u8; 32], [6u8; 32]);
    store
        .backup_put(&upload("hash-b", "mb-h", &old, b"a", 500))
        .unwrap();
    store
        .backup_put(&upload("hash-b", "mb-h", &new, b"b", 501))
        .unwrap();
    assert_eq!(
        store.backup_fetch("hash-b", &old, None, 502).unwrap(),
        Fetch::Wrong
    );
    assert_eq!(
        store.backup_fetch("hash-b", &new, None, 502).unwrap(),
        Fetch::Blob {
            version: 2,
            base: None,
            data: b"b".to_vec()
        }
    );
    assert_eq!(
        store.backup_fetch("unknown-b", &new, None, 502).unwrap(),
        Fetch::Unknown
    );
}

fn backup_wrong_tries_lock_the_locator_for_a_window(store: &dyn Store) {
    let h = [7u8; 32];
    store
        .backup_put(&upload("lock-b", "mb-l", &h, b"z", 600))
        .unwrap();
    // Concurrent wrong tries are all counted.
    std::thread::scope(|s| {
        for _ in 0..MAX_WRONG {
            s.spawn(|| {
                assert_eq!(
                    store
                        .backup_fetch("lock-b", &[0u8; 32], None, 1_000)
                        .unwrap(),
                    Fetch::Wrong
                );
            });
        }
    });
    assert_eq!(
        store.backup_fetch("lock-b", &h, None, 1_010).unwrap(),
        Fetch::Locked(WRONG_WINDOW_S - 10)
    );
    assert_eq!(
        store
            .backup_fetch("lock-b", &[0u8; 32], None, 1_020)
            .unwrap(),
        Fetch::Locked(WRONG_WINDOW_S - 20)
    );
    // Other locators are not affected.
    store
        .backup_put(&upload("steady-b", "mb-h", &[6u8; 32], b"s", 1_000))
        .unwrap();
    assert!(matches!(
        store
            .backup_fetch("steady-b", &[6u8; 32], None, 1_010)
            .unwrap(),
        Fetch::Blob { .. }
    ));
    let after = 1_000 + WRONG_WINDOW_S;
    assert_eq!(
        store.backup_fetch("lock-b", &h, None, after).unwrap(),
        Fetch::Blob {
            version: 1,
            base: None,
            data: b"z".to_vec()
        }
    );
    // A wrong try after the window starts a new one: it takes five again to lock.
    for i in 0..MAX_WRONG - 1 {
        assert_eq!(
            store
                .backup_fetch("lock-b", &[0u8; 32], None, after + i)
                .unwrap(),
            Fetch::Wrong
        );
    }
    assert!(matches!(
        store.backup_fetch("lock-b", &h, None, after + 10).unwrap(),
        Fetch::Blob { .. }
    ));
    assert_eq!(
        store
            .backup_fetch("lock-b", &[0u8; 32], None, after + 11)
            .unwrap(),
        Fetch::Wrong
    );
    assert_eq!(
        store.backup_fetch("lock-b", &h, None, after + 12).unwrap(),
        Fetch::Locked(WRONG_WINDOW_S - 12)
    );
}

fn backup_deletes_remove_every_version(store: &dyn Store) {
    let h = [8u8; 32];
    for t in 0..2 {
        store
            .backup_put(&upload("del-b", "mb-d", &h, b"d", 700 + t))
            .unwrap();
    }
    assert!(store.backup_delete("del-b", "mb-d").unwrap());
    assert!(!store.backup_delete("del-b", "mb-d").unwrap());
    assert_eq!(
        store.backup_fetch("del-b", &h, None, 800).unwrap(),
        Fetch::Unknown
    );
    assert!(store.backup_versions("del-b", "mb-d").unwrap().is_none());
    // The locator is free again: a new first upload owns it, from version 1.
    assert_eq!(
        store
            .backup_put(&upload("del-b", "mb-e", &h, b"e", 900))
            .unwrap(),
        Put::Stored(1)
    );
}

/// An incremental upload on top of `base`, keeping `keep` fulls.
fn incremental<'a>(
    locator: &'a str,
    owner: &'a str,
    hash: &'a [u8],
    data: &'a [u8],
    base: i64,
    keep: i64,
) -> Upload<'a> {
    Upload {
        base: Some(base),
        keep,
        ..upload(locator, owner, hash, data, 2_000 + base)
    }
}

/// `locator`'s versions as (number, base), newest first.
fn chain_of(store: &dyn Store, locator: &str, owner: &str) -> Vec<(i64, Option<i64>)> {
    store
        .backup_versions(locator, owner)
        .unwrap()
        .unwrap()
        .iter()
        .map(|v| (v.version, v.base))
        .collect()
}

fn backup_pruning_keeps_whole_chains(store: &dyn Store) {
    let h = [10u8; 32];
    let full = |n: i64, keep: i64| {
        let mut u = upload("chain-b", "mb-c", &h, b"full", 2_000 + n);
        u.keep = keep;
        assert_eq!(store.backup_put(&u).unwrap(), Put::Stored(n), "full {n}");
    };
    let inc = |n: i64, keep: i64| {
        let u = incremental("chain-b", "mb-c", &h, b"inc", n - 1, keep);
        assert_eq!(
            store.backup_put(&u).unwrap(),
            Put::Stored(n),
            "incremental {n}"
        );
    };
    // With keep = 2: incrementals never count, so one chain of any length is kept.
    full(1, 2);
    inc(2, 2);
    inc(3, 2);
    assert_eq!(
        chain_of(store, "chain-b", "mb-c"),
        [(3, Some(2)), (2, Some(1)), (1, None)]
    );
    // A second full: two fulls, still nothing to prune.
    full(4, 2);
    inc(5, 2);
    assert_eq!(chain_of(store, "chain-b", "mb-c").len(), 5);
    // A third full: the oldest chain (1, 2, 3) goes whole; 4's chain stays whole.
    full(6, 2);
    assert_eq!(
        chain_of(store, "chain-b", "mb-c"),
        [(6, None), (5, Some(4)), (4, None)]
    );
    inc(7, 2);
    inc(8, 2);
    full(9, 2);
    assert_eq!(
        chain_of(store, "chain-b", "mb-c"),
        [(9, None), (8, Some(7)), (7, Some(6)), (6, None)]
    );
    // A pruned version is gone for the right secret too, and not counted as wrong.
    assert_eq!(
        store.backup_fetch("chain-b", &h, Some(4), 2_100).unwrap(),
        Fetch::NoVersion
    );
    assert_eq!(
        store.backup_fetch("chain-b", &h, Some(7), 2_100).unwrap(),
        Fetch::Blob {
            version: 7,
            base: Some(6),
            data: b"inc".to_vec()
        }
    );

    // keep = 3: full, inc, inc, full, inc, full, inc, inc are all kept.
    let h3 = [11u8; 32];
    let bases = [
        None,
        Some(1),
        Some(2),
        None,
        Some(4),
        None,
        Some(6),
        Some(7),
    ];
    for (n, base) in (1i64..).zip(bases) {
        let mut u = upload("chain3-b", "mb-c", &h3, b"x", 2_200 + n);
        u.base = base;
        assert_eq!(store.backup_put(&u).unwrap(), Put::Stored(n));
    }
    assert_eq!(chain_of(store, "chain3-b", "mb-c").len(), 8);
    // A fourth full drops the first chain only.
    let u = upload("chain3-b", "mb-c", &h3, b"x", 2_209);
    assert_eq!(store.backup_put(&u).unwrap(), Put::Stored(9));
    let left: Vec<i64> = chain_of(store, "chain3-b", "mb-c")
        .iter()
        .map(|v| v.0)
        .collect();
    assert_eq!(left, [9, 8, 7, 6, 5, 4]);
}

fn backup_incrementals_build_on_the_latest_version(store: &dyn Store) {
    let h = [12u8; 32];
    // An incremental cannot start a locator, and leaves nothing behind.
    assert_eq!(
        store
            .backup_put(&incremental("base-b", "mb-x", &h, b"i", 1, 3))
            .unwrap(),
        Put::Stale(None)
    );
    assert!(store.backup_versions("base-b", "mb-x").unwrap().is_none());
    assert_eq!(
        store.backup_fetch("base-b", &h, None, 2_300).unwrap(),
        Fetch::Unknown
    );
    // So another identity's full upload still owns it from version 1.
    assert_eq!(
        store
            .backup_put(&upload("base-b", "mb-b1", &h, b"f1", 2_301))
            .unwrap(),
        Put::Stored(1)
    );
    for wrong in [0, 2, 7, -1] {
        assert_eq!(
            store
                .backup_put(&incremental("base-b", "mb-b1", &h, b"i", wrong, 3))
                .unwrap(),
            Put::Stale(Some(1)),
            "base {wrong}"
        );
    }
    assert_eq!(
        store
            .backup_put(&incremental("base-b", "mb-b1", &h, b"i2", 1, 3))
            .unwrap(),
        Put::Stored(2)
    );
    // The same base again is stale now.
    assert_eq!(
        store
            .backup_put(&incremental("base-b", "mb-b1", &h, b"i2", 1, 3))
            .unwrap(),
        Put::Stale(Some(2))
    );
    // Another identity is refused as not the owner, whatever its base: it does not
    // learn the latest version.
    for base in [1, 2] {
        assert_eq!(
            store
                .backup_put(&incremental("base-b", "mb-b2", &h, b"evil", base, 3))
                .unwrap(),
            Put::NotOwner
        );
    }
    // A refused incremental changes nothing: not the data, not the fetch hash.
    let other_hash = [13u8; 32];
    assert_eq!(
        store
            .backup_put(&incremental("base-b", "mb-b1", &other_hash, b"no", 1, 3))
            .unwrap(),
        Put::Stale(Some(2))
    );
    assert_eq!(
        store.backup_fetch("base-b", &h, None, 2_302).unwrap(),
        Fetch::Blob {
            version: 2,
            base: Some(1),
            data: b"i2".to_vec()
        }
    );
    assert_eq!(
        chain_of(store, "base-b", "mb-b1"),
        [(2, Some(1)), (1, None)]
    );
}

fn backup_chains_hold_at_most_max_chain_incrementals(store: &dyn Store) {
    let h = [14u8; 32];
    let put = |u: &Upload<'_>| store.backup_put(u).unwrap();
    assert_eq!(
        put(&upload("cap-b", "mb-cap", &h, b"f", 2_400)),
        Put::Stored(1)
    );
    for n in 1..=MAX_CHAIN {
        assert_eq!(
            put(&incremental("cap-b", "mb-cap", &h, b"i", n, 3)),
            Put::Stored(n + 1)
        );
    }
    let latest = MAX_CHAIN + 1;
    // The next incremental, on the right base, needs a full first.
    assert_eq!(
        put(&incremental("cap-b", "mb-cap", &h, b"i", latest, 3)),
        Put::FullRequired
    );
    // A wrong base is still reported as such.
    assert_eq!(
        put(&incremental("cap-b", "mb-cap", &h, b"i", latest - 1, 3)),
        Put::Stale(Some(latest))
    );
    assert_eq!(
        store.backup_versions("cap-b", "mb-cap").unwrap().unwrap()[0].version,
        latest,
        "the refused incremental stored nothing"
    );
    // A full starts a new chain, with room again.
    assert_eq!(
        put(&upload("cap-b", "mb-cap", &h, b"f", 2_500)),
        Put::Stored(latest + 1)
    );
    assert_eq!(
        put(&incremental("cap-b", "mb-cap", &h, b"i", latest + 1, 3)),
        Put::Stored(latest + 2)
    );
    let v = chain_of(store, "cap-b", "mb-cap");
    assert_eq!(
        v.len(),
        usize::try_from(latest + 2).unwrap(),
        "both chains kept"
    );
}

fn backup_concurrent_incrementals_on_one_base_store_one(store: &dyn Store) {
    let h = [15u8; 32];
    assert_eq!(
        store
            .backup_put(&upload("raceinc-b", "mb-ri", &h, b"f", 2_600))
            .unwrap(),
        Put::Stored(1)
    );
    let got: Vec<Put> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    store
                        .backup_put(&incremental("raceinc-b", "mb-ri", &h, b"i", 1, 3))
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let stored = got.iter().filter(|p| **p == Put::Stored(2)).count();
    let stale = got.iter().filter(|p| **p == Put::Stale(Some(2))).count();
    assert_eq!((stored, stale), (1, 7), "exactly one on a base: {got:?}");
    assert_eq!(
        chain_of(store, "raceinc-b", "mb-ri"),
        [(2, Some(1)), (1, None)]
    );
}

fn backup_restores_count_fetches_of_the_latest(store: &dyn Store) {
    let h = [17u8; 32];
    store
        .backup_put(&upload("rst-b", "mb-r", &h, b"full", 3_000))
        .unwrap();
    store
        .backup_put(&incremental("rst-b", "mb-r", &h, b"delta", 1, 3_001))
        .unwrap();
    let restores = || store.backup_restores("rst-b", "mb-r").unwrap();
    assert_eq!(
        restores(),
        Some(Restores {
            count: 0,
            last_s: None
        })
    );
    // A restore: the latest, then the version it builds on. One counted.
    assert!(matches!(
        store.backup_fetch("rst-b", &h, None, 3_100).unwrap(),
        Fetch::Blob { version: 2, .. }
    ));
    assert!(matches!(
        store.backup_fetch("rst-b", &h, Some(1), 3_101).unwrap(),
        Fetch::Blob { version: 1, .. }
    ));
    assert_eq!(
        restores(),
        Some(Restores {
            count: 1,
            last_s: Some(3_100)
        })
    );
    // Wrong secrets, versions not kept and unknown locators are not restores.
    assert_eq!(
        store
            .backup_fetch("rst-b", &[0u8; 32], None, 3_200)
            .unwrap(),
        Fetch::Wrong
    );
    assert_eq!(
        store.backup_fetch("rst-b", &h, Some(9), 3_201).unwrap(),
        Fetch::NoVersion
    );
    assert!(matches!(
        store.backup_fetch("rst-b", &h, None, 3_300).unwrap(),
        Fetch::Blob { .. }
    ));
    assert_eq!(
        restores(),
        Some(Restores {
            count: 2,
            last_s: Some(3_300)
        })
    );
    // Only the owner reads them, and an upload keeps them.
    assert_eq!(store.backup_restores("rst-b", "mb-other").unwrap(), None);
    assert_eq!(store.backup_restores("nope-b", "mb-r").unwrap(), None);
    store
        .backup_put(&upload("rst-b", "mb-r", &h, b"full 2", 3_400))
        .unwrap();
    assert_eq!(restores().map(|r| r.count), Some(2));
}

fn backup_fetches_by_version_count_only_wrong_secrets(store: &dyn Store) {
    let h = [16u8; 32];
    let wrong = [0u8; 32];
    store
        .backup_put(&upload("byv-b", "mb-v", &h, b"full", 2_700))
        .unwrap();
    store
        .backup_put(&incremental("byv-b", "mb-v", &h, b"delta", 1, 3))
        .unwrap();
    let at = |v: Option<i64>, hash: &[u8], now_s: i64| {
        store.backup_fetch("byv-b", hash, v, now_s).unwrap()
    };
    assert_eq!(
        at(Some(1), &h, 2_800),
        Fetch::Blob {
            version: 1,
            base: None,
            data: b"full".to_vec()
        }
    );
    assert_eq!(
        at(Some(2), &h, 2_800),
        Fetch::Blob {
            version: 2,
            base: Some(1),
            data: b"delta".to_vec()
        }
    );
    assert_eq!(
        at(None, &h, 2_800),
        at(Some(2), &h, 2_800),
        "latest by default"
    );
    // An unknown version with the right secret is not a wrong try, however often.
    for v in [3, 0, -1, i64::MAX, 3, 3, 3] {
        assert_eq!(at(Some(v), &h, 2_801), Fetch::NoVersion, "version {v}");
    }
    assert!(matches!(at(Some(1), &h, 2_802), Fetch::Blob { .. }));
    // An unknown locator is unknown, with any version.
    assert_eq!(
        store.backup_fetch("nope-b", &h, Some(1), 2_802).unwrap(),
        Fetch::Unknown
    );
    // Wrong secrets by version are counted with those for the latest, and lock both.
    for i in 0..MAX_WRONG {
        let v = if i % 2 == 0 { Some(1) } else { None };
        assert_eq!(at(v, &wrong, 2_900), Fetch::Wrong);
    }
    for v in [Some(1), Some(2), Some(3), None] {
        assert_eq!(at(v, &h, 2_910), Fetch::Locked(WRONG_WINDOW_S - 10));
    }
    assert!(matches!(
        at(Some(1), &h, 2_900 + WRONG_WINDOW_S),
        Fetch::Blob { version: 1, .. }
    ));
}

#[cfg(test)]
mod tests {
    use crate::backup::store::BackupStore as _;

    /// One test per check on a fresh SQLite file.
    macro_rules! sqlite_tests {
        ($($check:ident),* $(,)?) => {
            mod on_sqlite {
                $(
                    #[test]
                    fn $check() {
                        let dir = tempfile::tempdir().unwrap();
                        let store =
                            crate::storage::sqlite::SqliteStore::open(&dir.path().join("s.db")).unwrap();
                        super::super::$check(&store);
                    }
                )*
            }
        };
    }
    for_each_check!(sqlite_tests);

    /// One test per check on a fresh PostgreSQL database (see [`postgres_database`]),
    /// skipped without one unless `CARRY_REQUIRE_POSTGRES=1`.
    macro_rules! postgres_tests {
        ($($check:ident),* $(,)?) => {
            mod on_postgres {
                $(
                    #[test]
                    fn $check() {
                        let Some((db, config)) = super::postgres_database(stringify!($check))
                        else {
                            return;
                        };
                        let store = crate::storage::postgres::PostgresStore::with_config(config).unwrap();
                        super::super::$check(&store);
                        drop(store);
                        drop(db);
                    }
                )*
            }
        };
    }
    for_each_check!(postgres_tests);

    #[test]
    fn sqlite_concurrent_puts_get_distinct_times() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::storage::sqlite::SqliteStore::open(&dir.path().join("s.db")).unwrap();
        concurrent_puts_get_distinct_times(&[&store]);
    }

    /// The backup tables as endpoints before incremental backups made them, with one
    /// locator (`old-b`, owner `mb-old`, fetch hash `[20; 32]`) holding versions 1 and
    /// 2. The same SQL for both engines but for the blob type.
    fn old_backup_tables(blob: &str) -> Vec<String> {
        let hash = hex::encode([20u8; 32]);
        let literal = |bytes: &str| match blob {
            "BYTEA" => format!("'\\x{bytes}'::bytea"),
            _ => format!("x'{bytes}'"),
        };
        vec![
            format!(
                "CREATE TABLE backup_locators (
                    locator TEXT PRIMARY KEY, owner TEXT NOT NULL, fetch_hash {blob} NOT NULL,
                    latest BIGINT NOT NULL, failures BIGINT NOT NULL,
                    window_start_s BIGINT NOT NULL, created_s BIGINT NOT NULL)"
            ),
            format!(
                "CREATE TABLE backup_versions (
                    locator TEXT NOT NULL, version BIGINT NOT NULL, bytes BIGINT NOT NULL,
                    created_s BIGINT NOT NULL, data {blob} NOT NULL,
                    PRIMARY KEY (locator, version))"
            ),
            format!(
                "INSERT INTO backup_locators VALUES ('old-b', 'mb-old', {}, 2, 0, 0, 5)",
                literal(&hash)
            ),
            format!(
                "INSERT INTO backup_versions VALUES ('old-b', 1, 2, 5, {}), ('old-b', 2, 2, 6, {})",
                literal("0101"),
                literal("0202")
            ),
        ]
    }

    /// The share-link tables as endpoints made them before refusals were counted
    /// (`shl_links` without `refused` and `last_refused_s`), with link `old-l` of owner
    /// `mb-old` logged as opened once and refused once, row by row. `once_type` is
    /// the engine's type for the flag.
    fn old_shl_tables(once_type: &str) -> Vec<String> {
        let no = if once_type == "BOOLEAN" { "false" } else { "0" };
        vec![
            format!(
                "CREATE TABLE shl_links (
                    id TEXT PRIMARY KEY, owner TEXT NOT NULL, flags TEXT NOT NULL,
                    passcode_hash TEXT, expires_s BIGINT, once {once_type} NOT NULL,
                    max_failures BIGINT NOT NULL, failures BIGINT NOT NULL,
                    accesses BIGINT NOT NULL, created_s BIGINT NOT NULL, revoked_s BIGINT,
                    used_s BIGINT, file TEXT NOT NULL, file_len BIGINT NOT NULL)"
            ),
            "CREATE TABLE shl_accesses (
                link TEXT NOT NULL, seq BIGINT NOT NULL, at_s BIGINT NOT NULL,
                recipient TEXT NOT NULL, outcome TEXT NOT NULL, via TEXT NOT NULL,
                PRIMARY KEY (link, seq))"
                .to_string(),
            format!(
                "INSERT INTO shl_links VALUES ('old-l', 'mb-old', '', NULL, NULL, {no}, 5, 0,
                 2, 5, NULL, NULL, 'eyJhbGciOiJkaXIifQ..aXY.b2xk.dGFn', 33)"
            ),
            "INSERT INTO shl_accesses VALUES ('old-l', 1, 6, 'Dr Old', 'ok', 'manifest'),
             ('old-l', 2, 7, 'Dr Old', 'inactive', 'direct')"
                .to_string(),
        ]
    }

    /// What a store opened over [`old_shl_tables`] must show: the old log as it was,
    /// refusals counted from none, and new openings numbered on.
    fn old_links_count_refusals_from_the_upgrade(store: &dyn crate::storage::Store) {
        use crate::links::store::{Answer, Ask, Attempt, Outcome, Via};
        let l = store.shl_link("old-l").unwrap().unwrap();
        assert_eq!((l.accesses, l.refused, l.last_refused_s), (2, 0, None));
        let at = |ask, now_s| Attempt {
            id: "old-l".into(),
            recipient: "Dr New".into(),
            via: Via::Direct,
            ask,
            now_s,
        };
        assert_eq!(
            store.shl_access(&at(Ask::Refuse, 20)).unwrap(),
            Answer::Refused(Outcome::Inactive)
        );
        assert!(matches!(
            store.shl_access(&at(Ask::Direct, 21)).unwrap(),
            Answer::File(_)
        ));
        let (l, log) = store
            .shl_accesses("old-l", "mb-old", 0, 10)
            .unwrap()
            .unwrap();
        assert_eq!((l.accesses, l.refused, l.last_refused_s), (3, 1, Some(20)));
        assert_eq!(
            log.iter()
                .map(|a| (a.seq, a.outcome.as_str()))
                .collect::<Vec<_>>(),
            [(1, "ok"), (2, "inactive"), (3, "ok")]
        );
    }

    /// What a store opened over [`old_backup_tables`] must show: the old versions
    /// as fulls, and incrementals on top of them.
    fn old_backups_are_full(store: &dyn crate::storage::Store) {
        use crate::backup::store::{Fetch, Put, Upload};
        let h = [20u8; 32];
        assert_eq!(
            store.backup_fetch("old-b", &h, None, 10).unwrap(),
            Fetch::Blob {
                version: 2,
                base: None,
                data: vec![2, 2]
            }
        );
        let v = store.backup_versions("old-b", "mb-old").unwrap().unwrap();
        assert_eq!(
            v.iter().map(|v| (v.version, v.base)).collect::<Vec<_>>(),
            [(2, None), (1, None)]
        );
        // Restores are counted from the upgrade on.
        assert_eq!(
            store.backup_restores("old-b", "mb-old").unwrap(),
            Some(crate::backup::store::Restores {
                count: 1,
                last_s: Some(10)
            })
        );
        let u = Upload {
            locator: "old-b",
            owner: "mb-old",
            fetch_hash: &h,
            data: crate::backup::store::Blob::Bytes(b"inc"),
            base: Some(2),
            keep: 3,
            now_s: 11,
        };
        assert_eq!(store.backup_put(&u).unwrap(), Put::Stored(3));
        assert_eq!(
            store.backup_fetch("old-b", &h, Some(3), 12).unwrap(),
            Fetch::Blob {
                version: 3,
                base: Some(2),
                data: b"inc".to_vec()
            }
        );
    }

    #[test]
    fn sqlite_upgrades_old_backup_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let old = rusqlite::Connection::open(&path).unwrap();
        for statement in old_backup_tables("BLOB")
            .into_iter()
            .chain(old_shl_tables("INTEGER"))
        {
            old.execute_batch(&statement).unwrap();
        }
        drop(old);
        let store = crate::storage::sqlite::SqliteStore::open(&path).unwrap();
        old_backups_are_full(&store);
        old_links_count_refusals_from_the_upgrade(&store);
        drop(store);
        // Opening again finds the column and leaves everything as it was.
        let again = crate::storage::sqlite::SqliteStore::open(&path).unwrap();
        let v = again.backup_versions("old-b", "mb-old").unwrap().unwrap();
        assert_eq!(v.len(), 3);
        use crate::links::store::LinkStore as _;
        assert_eq!(again.shl_link("old-l").unwrap().unwrap().refused, 1);
    }

    /// Where the databases saved from released endpoints are (made by
    /// `tests/release-fixtures.sh`, a release's own demo run to its end).
    fn release_fixture(release: &str, file: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(release)
            .join(file)
    }

    /// Samples of what a released database holds, read with plain SQL before it is
    /// opened, to read back through the store after the upgrade.
    #[derive(Debug, Default)]
    struct Held {
        /// Every table's columns.
        columns: std::collections::BTreeMap<String, Vec<String>>,
        /// Every row of every table, as text, sorted: the upgrade may add columns but
        /// change no row.
        rows: std::collections::BTreeMap<String, Vec<String>>,
        /// (tenant, type, id, JSON) of a few resources.
        resources: Vec<(String, String, String, String)>,
        /// (link id, owner).
        links: Vec<(String, String)>,
        /// (locator, owner, versions, restores counted).
        backups: Vec<(String, String, usize, i64)>,
        /// Relay mailboxes in the directory.
        mailboxes: Vec<String>,
    }

    /// What a store opened over a released database must show: every sample as it
    /// was, read through the store.
    fn release_data_reads_back(store: &dyn crate::storage::Store, held: &Held) {
        assert!(!held.resources.is_empty() && !held.links.is_empty());
        assert!(!held.backups.is_empty() && !held.mailboxes.is_empty());
        for (tenant, rtype, id, json) in &held.resources {
            assert!(store.has_tenant(tenant).unwrap());
            let got = store.get(tenant, rtype, id).unwrap().unwrap();
            let want: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(got.json.get(), want.to_string(), "{rtype}/{id}");
        }
        for (id, owner) in &held.links {
            let l = store.shl_link(id).unwrap().unwrap();
            // The release logged refusals row by row; the count starts at none.
            assert_eq!((&l.owner, l.refused, l.last_refused_s), (owner, 0, None));
            assert!(store.shl_links(owner).unwrap().iter().any(|l| &l.id == id));
        }
        for (locator, owner, n, restores) in &held.backups {
            let v = store.backup_versions(locator, owner).unwrap().unwrap();
            assert_eq!(v.len(), *n);
            let r = store.backup_restores(locator, owner).unwrap().unwrap();
            assert_eq!(r.count, *restores);
        }
        for m in &held.mailboxes {
            assert!(store.get_directory(m).unwrap().is_some());
            assert_eq!(store.successor_of(m).unwrap(), None);
        }
    }

    /// Every row of every table of a SQLite database, as text, by table: of the
    /// columns `only` names for the table, or all of them.
    fn sqlite_rows(
        c: &rusqlite::Connection,
        only: Option<&std::collections::BTreeMap<String, Vec<String>>>,
    ) -> std::collections::BTreeMap<String, Vec<String>> {
        let tables: Vec<String> = c
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        tables
            .into_iter()
            .filter(|t| only.is_none_or(|o| o.contains_key(t)))
            .map(|t| {
                let cols = match only {
                    Some(o) => o[&t]
                        .iter()
                        .map(|c| format!("\"{c}\""))
                        .collect::<Vec<_>>()
                        .join(", "),
                    None => "*".into(),
                };
                let mut s = c.prepare(&format!("SELECT {cols} FROM \"{t}\"")).unwrap();
                let n = s.column_count();
                let mut rows: Vec<String> = s
                    .query_map([], |r| {
                        (0..n)
                            .map(|i| {
                                r.get::<_, rusqlite::types::Value>(i)
                                    .map(|v| format!("{v:?}"))
                            })
                            .collect::<Result<Vec<_>, _>>()
                            .map(|v| v.join("|"))
                    })
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                rows.sort();
                (t, rows)
            })
            .collect()
    }

    /// The columns of every table of a SQLite database, by table.
    fn sqlite_columns(c: &rusqlite::Connection) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut out = std::collections::BTreeMap::<String, Vec<String>>::new();
        let mut s = c
            .prepare(
                "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid",
            )
            .unwrap();
        let pairs = s
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .unwrap();
        for pair in pairs {
            let (t, col) = pair.unwrap();
            out.entry(t).or_default().push(col);
        }
        out
    }

    /// The shape of a SQLite database: every table's columns (name, type, not null,
    /// default, key) and every index's columns, as text.
    fn sqlite_shape(c: &rusqlite::Connection) -> Vec<String> {
        let mut shape: Vec<String> = c
            .prepare(
                "SELECT m.name || '.' || p.name || ' ' || p.type || ' ' || p.\"notnull\" || ' '
                        || coalesce(p.dflt_value, '-') || ' ' || p.pk
                 FROM sqlite_master m JOIN pragma_table_info(m.name) p
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
                 UNION ALL
                 SELECT 'index ' || m.name || ' ' || i.name || ' ' || i.\"unique\" || ' '
                        || (SELECT group_concat(name, ',') FROM pragma_index_info(i.name))
                 FROM sqlite_master m JOIN pragma_index_list(m.name) i
                 WHERE m.type = 'table'",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        shape.sort();
        shape
    }

    /// A database the last release's endpoint made and used (its demo run to the
    /// end) opens with this build: it is brought to the newest schema, which is then
    /// the schema of a new database; no row changes; and everything reads back
    /// through the store, the counts the release kept included.
    #[test]
    fn sqlite_database_from_the_release_upgrades() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("release.db");
        std::fs::copy(release_fixture("2026-11-23", "endpoint.sqlite"), &path).unwrap();
        let held = {
            let c = rusqlite::Connection::open(&path).unwrap();
            let version: i64 = c
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            assert_eq!(version, 0, "the release kept no schema version");
            let q = |sql: &str| {
                let mut s = c.prepare(sql).unwrap();
                let n = s.column_count();
                s.query_map([], |r| {
                    (0..n)
                        .map(|i| r.get::<_, String>(i))
                        .collect::<Result<Vec<_>, _>>()
                })
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
            };
            Held {
                columns: sqlite_columns(&c),
                rows: sqlite_rows(&c, None),
                resources: q("SELECT tenant, rtype, id, json FROM resources ORDER BY tenant, rtype, id LIMIT 40")
                    .into_iter()
                    .map(|r| (r[0].clone(), r[1].clone(), r[2].clone(), r[3].clone()))
                    .collect(),
                links: q("SELECT id, owner FROM shl_links")
                    .into_iter()
                    .map(|r| (r[0].clone(), r[1].clone()))
                    .collect(),
                backups: q("SELECT l.locator, l.owner, CAST(count(v.version) AS TEXT), CAST(l.restores AS TEXT)
                            FROM backup_locators l JOIN backup_versions v USING (locator)
                            GROUP BY l.locator, l.owner, l.restores")
                    .into_iter()
                    .map(|r| (r[0].clone(), r[1].clone(), r[2].parse().unwrap(), r[3].parse().unwrap()))
                    .collect(),
                mailboxes: q("SELECT mailbox FROM relay_directory")
                    .into_iter()
                    .map(|r| r[0].clone())
                    .collect(),
            }
        };
        let store = crate::storage::sqlite::SqliteStore::open(&path).unwrap();
        release_data_reads_back(&store, &held);
        drop(store);

        let c = rusqlite::Connection::open(&path).unwrap();
        let version: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(
            version,
            crate::storage::migrations::latest(crate::storage::sqlite::MIGRATIONS)
        );
        let fresh_path = dir.path().join("fresh.db");
        drop(crate::storage::sqlite::SqliteStore::open(&fresh_path).unwrap());
        let fresh = rusqlite::Connection::open(&fresh_path).unwrap();
        assert_eq!(sqlite_shape(&c), sqlite_shape(&fresh));
        // Rows as they were, read without the columns the upgrade added.
        assert_eq!(sqlite_rows(&c, Some(&held.columns)), held.rows);
    }

    /// The shape of a PostgreSQL database's tables (columns with type, null, default,
    /// collation and identity; indexes), as text.
    fn postgres_shape(c: &mut postgres::Client) -> Vec<String> {
        let mut shape: Vec<String> = c
            .query(
                "SELECT table_name || '.' || column_name || ' ' || data_type || ' '
                        || is_nullable || ' ' || coalesce(column_default, '-') || ' '
                        || coalesce(collation_name, '-') || ' ' || is_identity
                 FROM information_schema.columns WHERE table_schema = 'public'
                 UNION ALL
                 SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        shape.sort();
        shape
    }

    /// Every row of every table of a PostgreSQL database as JSON text, by table: of
    /// the columns `only` names for the table, or all of them; and the columns.
    #[allow(clippy::type_complexity)]
    fn postgres_rows(
        c: &mut postgres::Client,
        only: Option<&std::collections::BTreeMap<String, Vec<String>>>,
    ) -> (
        std::collections::BTreeMap<String, Vec<String>>,
        std::collections::BTreeMap<String, Vec<String>>,
    ) {
        let mut columns = std::collections::BTreeMap::<String, Vec<String>>::new();
        for r in c
            .query(
                "SELECT table_name::text, column_name::text FROM information_schema.columns
                 WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
                &[],
            )
            .unwrap()
        {
            columns.entry(r.get(0)).or_default().push(r.get(1));
        }
        let columns = match only {
            Some(o) => o.clone(),
            None => columns,
        };
        let mut rows = std::collections::BTreeMap::new();
        for (t, cols) in &columns {
            let list = cols
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", ");
            let mut got: Vec<String> = c
                .query(
                    &format!(
                        "SELECT row_to_json(x)::text FROM (SELECT {list} FROM public.\"{t}\") x"
                    ),
                    &[],
                )
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            got.sort();
            rows.insert(t.clone(), got);
        }
        (columns, rows)
    }

    /// The PostgreSQL database the last release's endpoint made and used (its demo
    /// run to the end, saved with `pg_dump`) opens with this build: it is brought to
    /// the newest schema, which is then the schema of a new database; no row changes;
    /// and everything reads back. Skipped without a server, as the checks are.
    #[test]
    fn postgres_database_from_the_release_upgrades() {
        let test = "postgres_database_from_the_release_upgrades";
        let Some((db, config)) = postgres_database(test) else {
            return;
        };
        let dump = std::fs::read_to_string(release_fixture("2026-11-23", "endpoint.postgres.sql"))
            .unwrap();
        let mut c = config.connect(postgres::NoTls).unwrap();
        c.batch_execute(&dump).unwrap();
        let text = |c: &mut postgres::Client, sql: &str| -> Vec<Vec<String>> {
            c.query(sql, &[])
                .unwrap()
                .iter()
                .map(|r| (0..r.len()).map(|i| r.get::<_, String>(i)).collect())
                .collect()
        };
        let (columns, rows) = postgres_rows(&mut c, None);
        let held = Held {
            columns,
            rows,
            resources: text(
                &mut c,
                "SELECT tenant, rtype, id, json FROM resources ORDER BY tenant, rtype, id LIMIT 40",
            )
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone(), r[2].clone(), r[3].clone()))
            .collect(),
            links: text(&mut c, "SELECT id, owner FROM shl_links")
                .into_iter()
                .map(|r| (r[0].clone(), r[1].clone()))
                .collect(),
            backups: text(
                &mut c,
                "SELECT l.locator, l.owner, count(v.version)::text, l.restores::text
                         FROM backup_locators l JOIN backup_versions v USING (locator)
                         GROUP BY l.locator, l.owner, l.restores",
            )
            .into_iter()
            .map(|r| {
                let n = r[2].parse().unwrap();
                (r[0].clone(), r[1].clone(), n, r[3].parse().unwrap())
            })
            .collect(),
            mailboxes: text(&mut c, "SELECT mailbox FROM relay_directory")
                .into_iter()
                .map(|r| r[0].clone())
                .collect(),
        };
        let store = crate::storage::postgres::PostgresStore::with_config(config.clone()).unwrap();
        release_data_reads_back(&store, &held);
        drop(store);
        let version: i64 = c
            .query_one("SELECT version FROM carry_schema", &[])
            .unwrap()
            .get(0);
        assert_eq!(
            version,
            crate::storage::migrations::latest(crate::storage::postgres::MIGRATIONS)
        );
        assert_eq!(postgres_rows(&mut c, Some(&held.columns)).1, held.rows);

        let Some((fresh_db, fresh_config)) = postgres_database(test) else {
            return;
        };
        drop(crate::storage::postgres::PostgresStore::with_config(fresh_config.clone()).unwrap());
        let mut fresh = fresh_config.connect(postgres::NoTls).unwrap();
        assert_eq!(postgres_shape(&mut c), postgres_shape(&mut fresh));
        drop((c, fresh, fresh_db, db));
    }

    /// A PostgreSQL database made by a newer endpoint is refused, as on SQLite.
    #[test]
    fn postgres_database_from_a_newer_endpoint_is_refused() {
        let test = "postgres_database_from_a_newer_endpoint_is_refused";
        let Some((db, config)) = postgres_database(test) else {
            return;
        };
        drop(crate::storage::postgres::PostgresStore::with_config(config.clone()).unwrap());
        let newer = crate::storage::migrations::latest(crate::storage::postgres::MIGRATIONS) + 1;
        let mut c = config.connect(postgres::NoTls).unwrap();
        c.execute("UPDATE carry_schema SET version = $1", &[&newer])
            .unwrap();
        let Err(e) = crate::storage::postgres::PostgresStore::with_config(config) else {
            panic!("a newer database opened");
        };
        assert!(
            matches!(e, crate::fhir::store::StoreError::TooNew { found, .. } if found == newer)
        );
        drop((c, db));
    }

    /// Once the schema is current, a process may run as a role that can only read
    /// and write rows: opening runs no DDL.
    #[test]
    fn postgres_up_to_date_database_opens_as_a_role_without_ddl() {
        let test = "postgres_up_to_date_database_opens_as_a_role_without_ddl";
        let Some((db, config)) = postgres_database(test) else {
            return;
        };
        drop(crate::storage::postgres::PostgresStore::with_config(config.clone()).unwrap());
        let role = format!("{}_dml", db.name);
        let mut c = config.connect(postgres::NoTls).unwrap();
        c.batch_execute(&format!(
            "CREATE ROLE \"{role}\" NOLOGIN;
             GRANT \"{role}\" TO CURRENT_USER;
             GRANT CONNECT ON DATABASE \"{db}\" TO \"{role}\";
             GRANT USAGE ON SCHEMA public TO \"{role}\";
             REVOKE CREATE ON SCHEMA public FROM PUBLIC;
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO \"{role}\";",
            db = db.name
        ))
        .unwrap();
        // Connected as the test's user, acting as the role from the start.
        let mut as_role = config.clone();
        as_role.options(&format!("-c role={role}"));
        let opened = crate::storage::postgres::PostgresStore::with_config(as_role);
        let worked = opened.and_then(|store| {
            use crate::fhir::store::FhirStore as _;
            store.ensure_tenant("gp")?;
            store.has_tenant("gp")
        });
        // The role goes once the database with its privileges has gone.
        let admin = db.admin.clone();
        drop((c, db));
        admin
            .connect(postgres::NoTls)
            .and_then(|mut a| a.batch_execute(&format!("DROP ROLE \"{role}\"")))
            .unwrap();
        assert!(worked.unwrap());
    }

    /// A database made by a newer endpoint (a schema version past this build's) is
    /// refused with a message that says so, and left as it was.
    #[test]
    fn sqlite_database_from_a_newer_endpoint_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        drop(crate::storage::sqlite::SqliteStore::open(&path).unwrap());
        let newer = crate::storage::migrations::latest(crate::storage::sqlite::MIGRATIONS) + 1;
        rusqlite::Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", newer)
            .unwrap();
        let before = std::fs::read(&path).unwrap();
        let Err(e) = crate::storage::sqlite::SqliteStore::open(&path) else {
            panic!("a newer database opened");
        };
        assert!(
            matches!(e, crate::fhir::store::StoreError::TooNew { found, .. } if found == newer)
        );
        assert!(e.to_string().contains("newer endpoint"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn store_urls_dispatch_by_scheme() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("u.db").display());
        assert!(crate::storage::open_url(&url).is_ok());
        for bad in ["sqlite://", "mysql://root:hunter2@db/x", "carry.db", ""] {
            let Err(e) = crate::storage::open_url(bad) else {
                panic!("'{bad}' opened");
            };
            assert!(
                matches!(e, crate::fhir::store::StoreError::Url(_)),
                "{bad}: {e}"
            );
            assert!(!e.to_string().contains("hunter2"), "no password echoed");
        }
        // A PostgreSQL URL goes to PostgreSQL: nothing listens on port 1, and the
        // error names the step, not the password.
        let Err(e) = crate::storage::open_url("postgres://carry:hunter2@127.0.0.1:1/x") else {
            panic!("nothing listens on port 1");
        };
        assert!(
            matches!(e, crate::fhir::store::StoreError::Backend(_)),
            "{e}"
        );
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

    /// A fresh database on the server `CARRY_TEST_POSTGRES_URL` names (an admin URL
    /// whose role may create databases), and where to connect to it; `None` (the
    /// test is skipped) without it, unless `CARRY_REQUIRE_POSTGRES=1`, as under
    /// `make postgres`.
    fn postgres_database(test: &str) -> Option<(TempDatabase, postgres::Config)> {
        let required = std::env::var("CARRY_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
        let skip = |why: String| {
            assert!(!required, "CARRY_REQUIRE_POSTGRES=1 but {why}");
            eprintln!("{test}: skipped ({why})");
            None
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
        // Tests run in parallel in one process: a counter keeps their names apart.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("carry_test_{}_{nanos}_{n}", std::process::id());
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
        Some((db, config))
    }

    /// Two instances over one PostgreSQL database, and a server that drops every
    /// connection (see [`postgres_database`]).
    #[test]
    fn postgres_instances_share_the_tables_and_survive_dropped_connections() {
        use crate::fhir::store::FhirStore as _;
        let Some((db, config)) = postgres_database(
            "postgres_instances_share_the_tables_and_survive_dropped_connections",
        ) else {
            return;
        };
        let name = db.name.clone();
        let store = crate::storage::postgres::PostgresStore::with_config(config.clone()).unwrap();
        // Some data for the second instance to see (the checks themselves run one test
        // each, above).
        store.ensure_tenant("gp").unwrap();
        let r = serde_json::json!({"resourceType": "Patient", "id": "p1"});
        store.put("v", "Patient", "p1", Some("p1"), &r, 1).unwrap();
        // A second instance (another server process, say) over the same tables: opening
        // again works, sees what the first wrote, and the two write concurrently.
        let other = crate::storage::postgres::PostgresStore::with_config(config).unwrap();
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

    /// A database made before incremental backups and counted refusals gets the
    /// columns added since when opened.
    #[test]
    fn postgres_upgrades_old_backup_tables() {
        let Some((db, config)) = postgres_database("postgres_upgrades_old_backup_tables") else {
            return;
        };
        let mut old = config.connect(postgres::NoTls).unwrap();
        for statement in old_backup_tables("BYTEA")
            .into_iter()
            .chain(old_shl_tables("BOOLEAN"))
        {
            old.batch_execute(&statement).unwrap();
        }
        drop(old);
        let store = crate::storage::postgres::PostgresStore::with_config(config.clone()).unwrap();
        old_backups_are_full(&store);
        old_links_count_refusals_from_the_upgrade(&store);
        // A second process opening the same database finds the column there.
        let again = crate::storage::postgres::PostgresStore::with_config(config).unwrap();
        let v = again.backup_versions("old-b", "mb-old").unwrap().unwrap();
        assert_eq!(v.len(), 3);
        use crate::links::store::LinkStore as _;
        assert_eq!(again.shl_link("old-l").unwrap().unwrap().refused, 1);
        drop((store, again));
        drop(db);
    }

    /// Writers racing in one tenant, through one or more stores, still get strictly
    /// increasing change times, and none is lost.
    fn concurrent_puts_get_distinct_times(stores: &[&dyn crate::storage::Store]) {
        use crate::fhir::store::Query;
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
