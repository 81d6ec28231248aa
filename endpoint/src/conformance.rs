//! The storage conformance suite: every backend must pass it. Each check takes a
//! fresh, empty store.

use serde_json::json;

use crate::store::{After, Query, Store};

/// Run every check against `store` (which must be empty).
pub fn run(store: &dyn Store) {
    tenants(store);
    put_get_and_versions(store);
    search_order_paging_and_filters(store);
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
    assert_eq!(a.resource["meta"]["versionId"], "1");
    // The same content again: no new version.
    let b = store
        .put("v", "Patient", "p1", Some("p1"), &a.resource, 5_000)
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
        vec!["Condition".to_string(), "Observation".to_string()]
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlite_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::sqlite::SqliteStore::open(&dir.path().join("s.db")).unwrap();
        super::run(&store);
    }

    #[test]
    fn only_sqlite_urls_open() {
        assert!(crate::sqlite::open_url("postgres://localhost/x").is_err());
        assert!(crate::sqlite::open_url("sqlite://").is_err());
    }
}
