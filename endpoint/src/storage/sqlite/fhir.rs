//! The FHIR facade's resources, identifiers and SMART grants on SQLite.

use super::*;

fn row_to_stored(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(String, String, i64, i64, Option<String>, String)> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn stored(parts: (String, String, i64, i64, Option<String>, String)) -> Result<Stored> {
    let (rtype, id, version, last_updated_ms, patient, json) = parts;
    Ok(Stored {
        rtype,
        id,
        version,
        last_updated_ms,
        patient,
        json: Stored::raw(json)?,
    })
}

/// One resource by tenant, type and id.
fn select_one(c: &Connection, tenant: &str, rtype: &str, id: &str) -> Result<Option<Stored>> {
    c.query_row(
        "SELECT rtype, id, version, last_updated_ms, patient, json FROM resources
         WHERE tenant = ?1 AND rtype = ?2 AND id = ?3",
        params![tenant, rtype, id],
        row_to_stored,
    )
    .optional()?
    .map(stored)
    .transpose()
}

/// Insert or replace inside an open transaction (see [`Store::put`]).
fn put_in(
    tx: &Connection,
    tenant: &str,
    rtype: &str,
    id: &str,
    patient: Option<&str>,
    resource: &Value,
    now_ms: i64,
) -> Result<Stored> {
    let existing = select_one(tx, tenant, rtype, id)?;
    if let Some(old) = &existing {
        if unstamped(&old.resource()) == unstamped(resource) && old.patient.as_deref() == patient {
            return Ok(old.clone());
        }
    }
    let version = existing.map_or(1, |o| o.version + 1);
    // Keep change times strictly increasing per tenant so paging by them is exact.
    let last: Option<i64> = tx.query_row(
        "SELECT max(last_updated_ms) FROM resources WHERE tenant = ?1",
        [tenant],
        |r| r.get(0),
    )?;
    let when = last.map_or(now_ms, |l| now_ms.max(l + 1));
    let doc = stamp(resource, version, when);
    let json = serde_json::to_string(&doc).map_err(|e| StoreError::Backend(e.to_string()))?;
    tx.execute(
        "INSERT INTO resources (tenant, rtype, id, version, last_updated_ms, patient, json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (tenant, rtype, id) DO UPDATE SET version = excluded.version,
           last_updated_ms = excluded.last_updated_ms, patient = excluded.patient, json = excluded.json",
        params![tenant, rtype, id, version, when, patient, json],
    )?;
    Ok(Stored {
        rtype: rtype.into(),
        id: id.into(),
        version,
        last_updated_ms: when,
        patient: patient.map(str::to_string),
        json: Stored::raw(json)?,
    })
}

fn row_to_grant(r: &rusqlite::Row<'_>) -> rusqlite::Result<Grant> {
    Ok(Grant {
        tenant: r.get(0)?,
        kind: r.get(1)?,
        patient: r.get(2)?,
        scope: r.get(3)?,
        client_id: r.get(4)?,
        expires_ms: r.get(5)?,
        data: r.get(6)?,
    })
}

const GRANT_COLUMNS: &str = "tenant, kind, patient, scope, client_id, expires_ms, data";

impl FhirStore for SqliteStore {
    fn ensure_tenant(&self, tenant: &str) -> Result<()> {
        self.with(|c| {
            c.execute("INSERT OR IGNORE INTO tenants (name) VALUES (?1)", [tenant])?;
            Ok(())
        })
    }

    fn has_tenant(&self, tenant: &str) -> Result<bool> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT 1 FROM tenants WHERE name = ?1",
                [tenant],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
        })
    }

    fn put(
        &self,
        tenant: &str,
        rtype: &str,
        id: &str,
        patient: Option<&str>,
        resource: &Value,
        now_ms: i64,
    ) -> Result<Stored> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let out = put_in(&tx, tenant, rtype, id, patient, resource, now_ms)?;
            tx.commit()?;
            Ok(out)
        })
    }

    fn get(&self, tenant: &str, rtype: &str, id: &str) -> Result<Option<Stored>> {
        self.with(|c| select_one(c, tenant, rtype, id))
    }

    fn search(&self, tenant: &str, q: &Query) -> Result<Vec<Stored>> {
        let mut sql = String::from(
            "SELECT rtype, id, version, last_updated_ms, patient, json FROM resources WHERE tenant = ?1",
        );
        let mut args: Vec<rusqlite::types::Value> = vec![tenant.to_string().into()];
        let mut arg = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
            args.push(v);
            sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
        };
        if let Some(t) = &q.rtype {
            arg(&mut sql, " AND rtype = ?", t.clone().into());
        }
        if let Some(p) = &q.patient {
            if q.include_shared {
                arg(
                    &mut sql,
                    &format!(
                        " AND (patient = ? OR (patient IS NULL AND {}))",
                        shared_types_sql()
                    ),
                    p.clone().into(),
                );
            } else {
                arg(&mut sql, " AND patient = ?", p.clone().into());
            }
        }
        if let Some(ms) = q.updated_after_ms {
            arg(&mut sql, " AND last_updated_ms > ?", ms.into());
        }
        if let Some(ms) = q.updated_since_ms {
            arg(&mut sql, " AND last_updated_ms >= ?", ms.into());
        }
        if let Some(a) = &q.after {
            arg(
                &mut sql,
                " AND (last_updated_ms, rtype, id) > (?",
                a.last_updated_ms.into(),
            );
            arg(&mut sql, ", ?", a.rtype.clone().into());
            arg(&mut sql, ", ?)", a.id.clone().into());
        }
        sql.push_str(" ORDER BY last_updated_ms, rtype, id");
        arg(&mut sql, " LIMIT ?", (q.limit as i64).into());
        self.with(|c| {
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args.iter()), row_to_stored)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(stored).collect()
        })
    }

    fn types(&self, tenant: &str) -> Result<Vec<String>> {
        self.with(|c| {
            let mut stmt =
                c.prepare("SELECT DISTINCT rtype FROM resources WHERE tenant = ?1 ORDER BY rtype")?;
            let types = stmt
                .query_map([tenant], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(types)
        })
    }

    fn delete(&self, tenant: &str, rtype: &str, id: &str) -> Result<bool> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "DELETE FROM resources WHERE tenant = ?1 AND rtype = ?2 AND id = ?3",
                params![tenant, rtype, id],
            )?;
            tx.execute(
                "DELETE FROM identifiers WHERE tenant = ?1 AND rtype = ?2 AND id = ?3",
                params![tenant, rtype, id],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn create_unique(
        &self,
        tenant: &str,
        rtype: &str,
        id: &str,
        patient: &str,
        key: &str,
        resource: &Value,
        now_ms: i64,
    ) -> Result<(Stored, bool)> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let found: Option<String> = tx
                .query_row(
                    "SELECT id FROM identifiers WHERE tenant = ?1 AND rtype = ?2 AND patient = ?3 AND key = ?4",
                    params![tenant, rtype, patient, key],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(existing) = found {
                if let Some(s) = select_one(&tx, tenant, rtype, &existing)? {
                    return Ok((s, false));
                }
            }
            tx.execute(
                "INSERT OR REPLACE INTO identifiers (tenant, rtype, patient, key, id) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![tenant, rtype, patient, key, id],
            )?;
            let s = put_in(&tx, tenant, rtype, id, Some(patient), resource, now_ms)?;
            tx.commit()?;
            Ok((s, true))
        })
    }

    fn put_grant(&self, hash: &str, g: &Grant) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO grants (hash, tenant, kind, patient, scope, client_id, expires_ms, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![hash, g.tenant, g.kind, g.patient, g.scope, g.client_id, g.expires_ms, g.data],
            )?;
            Ok(())
        })
    }

    fn get_grant(&self, hash: &str, now_ms: i64) -> Result<Option<Grant>> {
        self.with(|c| {
            Ok(c.query_row(
                &format!("SELECT {GRANT_COLUMNS} FROM grants WHERE hash = ?1 AND expires_ms > ?2"),
                params![hash, now_ms],
                row_to_grant,
            )
            .optional()?)
        })
    }

    fn take_grant(
        &self,
        hash: &str,
        kind: &str,
        tenant: &str,
        now_ms: i64,
    ) -> Result<Option<Grant>> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let g = tx
                .query_row(
                    &format!(
                        "SELECT {GRANT_COLUMNS} FROM grants WHERE hash = ?1 AND kind = ?2 AND tenant = ?3"
                    ),
                    params![hash, kind, tenant],
                    row_to_grant,
                )
                .optional()?;
            tx.execute(
                "DELETE FROM grants WHERE hash = ?1 AND kind = ?2 AND tenant = ?3",
                params![hash, kind, tenant],
            )?;
            // Expired grants go whenever one is taken, so the table stays small.
            tx.execute("DELETE FROM grants WHERE expires_ms <= ?1", [now_ms])?;
            tx.commit()?;
            Ok(g.filter(|g| g.expires_ms > now_ms))
        })
    }

    fn refresh_grant(&self, hash: &str, r: &Refresh<'_>) -> Result<Refreshed> {
        self.with(|c| {
            // SQLite's one writer: the IMMEDIATE transaction holds every row it reads.
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let found = tx
                .query_row(
                    &format!("SELECT {GRANT_COLUMNS} FROM grants WHERE hash = ?1"),
                    [hash],
                    row_to_grant,
                )
                .optional()?;
            let successor_unused = match found
                .as_ref()
                .filter(|g| g.kind == "spent")
                .and_then(|g| Spent::of(g).next_refresh)
            {
                Some(next) => tx
                    .query_row(
                        "SELECT 1 FROM grants WHERE hash = ?1 AND kind = 'refresh' AND expires_ms > ?2",
                        params![next, r.now_ms],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some(),
                None => true,
            };
            let out = match (refresh_step(found.as_ref(), successor_unused, r), found) {
                (RefreshStep::Rotate, Some(g)) => {
                    let spent = Spent::exchanged(r.now_ms, false, r);
                    tx.execute(
                        "UPDATE grants SET kind = 'spent', data = ?2 WHERE hash = ?1",
                        params![hash, spent.to_data()],
                    )?;
                    insert_pair(&tx, &g, r)?;
                    Refreshed::Issued {
                        grant: g,
                        retry: false,
                    }
                }
                (RefreshStep::Retry(old), Some(g)) => {
                    if let Some(a) = &old.next_access {
                        tx.execute(
                            "DELETE FROM grants WHERE hash = ?1 AND kind = 'access'",
                            [a],
                        )?;
                    }
                    if let Some(n) = &old.next_refresh {
                        tx.execute(
                            "UPDATE grants SET kind = 'superseded', data = '{}' WHERE hash = ?1",
                            [n],
                        )?;
                    }
                    let spent = Spent::exchanged(old.spent_ms, true, r);
                    tx.execute(
                        "UPDATE grants SET data = ?2 WHERE hash = ?1",
                        params![hash, spent.to_data()],
                    )?;
                    insert_pair(&tx, &g, r)?;
                    Refreshed::Issued {
                        grant: g,
                        retry: true,
                    }
                }
                (RefreshStep::Revoke, Some(g)) => Refreshed::Revoked(tx.execute(
                    "DELETE FROM grants WHERE tenant = ?1 AND patient = ?2 AND client_id = ?3",
                    params![g.tenant, g.patient, g.client_id],
                )?),
                _ => Refreshed::Unknown,
            };
            tx.commit()?;
            Ok(out)
        })
    }
}

/// Store the access and refresh token a refresh exchange issues, for `from`'s patient.
fn insert_pair(tx: &rusqlite::Transaction<'_>, from: &Grant, r: &Refresh<'_>) -> Result<()> {
    for (hash, kind, expires_ms) in [
        (r.access.0, "access", r.access.1),
        (r.refresh.0, "refresh", r.refresh.1),
    ] {
        let g = successor_grant(from, kind, expires_ms);
        tx.execute(
            "INSERT INTO grants (hash, tenant, kind, patient, scope, client_id, expires_ms, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                hash,
                g.tenant,
                g.kind,
                g.patient,
                g.scope,
                g.client_id,
                g.expires_ms,
                g.data
            ],
        )?;
    }
    Ok(())
}
