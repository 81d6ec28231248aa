//! The FHIR facade's resources, identifiers and SMART grants on PostgreSQL.

use super::*;

/// The columns [`stored`] reads, in order.
const RESOURCE_COLUMNS: &str = "rtype, id, version, last_updated_ms, patient, json";

/// A row of [`RESOURCE_COLUMNS`] as a [`Stored`].
fn stored(row: &Row, what: &'static str) -> Res<Stored> {
    let json: String = row.try_get(5).op(what)?;
    let json = Stored::raw(json).map_err(Fail::Store)?;
    Ok(Stored {
        rtype: row.try_get(0).op(what)?,
        id: row.try_get(1).op(what)?,
        version: row.try_get(2).op(what)?,
        last_updated_ms: row.try_get(3).op(what)?,
        patient: row.try_get(4).op(what)?,
        json,
    })
}

/// One resource by tenant, type and id.
fn select_one(
    c: &mut impl GenericClient,
    tenant: &str,
    rtype: &str,
    id: &str,
    what: &'static str,
) -> Res<Option<Stored>> {
    c.query_opt(
        &format!(
            "SELECT {RESOURCE_COLUMNS} FROM resources WHERE tenant = $1 AND rtype = $2 AND id = $3"
        ),
        &[&tenant, &rtype, &id],
    )
    .op(what)?
    .map(|r| stored(&r, what))
    .transpose()
}

/// Hold the tenant's row until the transaction ends, so writers to one tenant take
/// turns and change times stay strictly increasing. A tenant that was never created
/// has no row to lock: writes to it still work, as in SQLite, but without that
/// guarantee against concurrent writers (every caller creates its tenants first).
fn lock_tenant(tx: &mut Transaction<'_>, tenant: &str, what: &'static str) -> Res<()> {
    tx.query_opt(
        "SELECT name FROM tenants WHERE name = $1 FOR UPDATE",
        &[&tenant],
    )
    .op(what)?;
    Ok(())
}

/// Insert or replace inside an open transaction (see [`Store::put`]).
fn put_in(
    tx: &mut Transaction<'_>,
    tenant: &str,
    rtype: &str,
    id: &str,
    patient: Option<&str>,
    resource: &Value,
    now_ms: i64,
) -> Res<Stored> {
    lock_tenant(tx, tenant, "put: lock tenant")?;
    let existing = select_one(tx, tenant, rtype, id, "put: read current version")?;
    if let Some(old) = &existing {
        if unstamped(&old.resource()) == unstamped(resource) && old.patient.as_deref() == patient {
            return Ok(old.clone());
        }
    }
    let version = existing.map_or(1, |o| o.version + 1);
    // Keep change times strictly increasing per tenant so paging by them is exact.
    let last: Option<i64> = tx
        .query_one(
            "SELECT max(last_updated_ms) FROM resources WHERE tenant = $1",
            &[&tenant],
        )
        .op("put: read latest change time")?
        .try_get(0)
        .op("put: read latest change time")?;
    let when = last.map_or(now_ms, |l| now_ms.max(l + 1));
    let doc = stamp(resource, version, when);
    let json = serde_json::to_string(&doc)
        .map_err(|e| Fail::Store(StoreError::Backend(format!("put: serialise: {e}"))))?;
    tx.execute(
        "INSERT INTO resources (tenant, rtype, id, version, last_updated_ms, patient, json)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (tenant, rtype, id) DO UPDATE SET version = excluded.version,
           last_updated_ms = excluded.last_updated_ms, patient = excluded.patient,
           json = excluded.json",
        &[&tenant, &rtype, &id, &version, &when, &patient, &json],
    )
    .op("put: write resource")?;
    Ok(Stored {
        rtype: rtype.into(),
        id: id.into(),
        version,
        last_updated_ms: when,
        patient: patient.map(str::to_string),
        json: Stored::raw(json).map_err(Fail::Store)?,
    })
}

/// The columns [`grant`] reads, in order.
const GRANT_COLUMNS: &str = "tenant, kind, patient, scope, client_id, expires_ms, data";

/// A row of [`GRANT_COLUMNS`] as a [`Grant`].
fn grant(r: &Row, what: &'static str) -> Res<Grant> {
    Ok(Grant {
        tenant: r.try_get(0).op(what)?,
        kind: r.try_get(1).op(what)?,
        patient: r.try_get(2).op(what)?,
        scope: r.try_get(3).op(what)?,
        client_id: r.try_get(4).op(what)?,
        expires_ms: r.try_get(5).op(what)?,
        data: r.try_get(6).op(what)?,
    })
}

impl FhirStore for PostgresStore {
    fn ensure_tenant(&self, tenant: &str) -> Result<()> {
        self.tx("ensure tenant", |t| {
            t.execute(
                "INSERT INTO tenants (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                &[&tenant],
            )
            .op("ensure tenant")?;
            Ok(())
        })
    }

    fn has_tenant(&self, tenant: &str) -> Result<bool> {
        self.read(|c| {
            Ok(
                c.query_opt("SELECT 1 FROM tenants WHERE name = $1", &[&tenant])
                    .op("read tenant")?
                    .is_some(),
            )
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
        self.tx("put", |t| {
            put_in(t, tenant, rtype, id, patient, resource, now_ms)
        })
    }

    fn get(&self, tenant: &str, rtype: &str, id: &str) -> Result<Option<Stored>> {
        self.read(|c| select_one(c, tenant, rtype, id, "read resource"))
    }

    fn search(&self, tenant: &str, q: &Query) -> Result<Vec<Stored>> {
        let mut sql = format!("SELECT {RESOURCE_COLUMNS} FROM resources WHERE tenant = $1");
        let mut args: Vec<Box<dyn ToSql + Sync>> = vec![Box::new(tenant.to_string())];
        // `clause` holds one `?` per value, numbered here in order.
        let mut arg = |sql: &mut String, clause: &str, v: Box<dyn ToSql + Sync>| {
            args.push(v);
            sql.push_str(&clause.replace('?', &format!("${}", args.len())));
        };
        if let Some(t) = &q.rtype {
            arg(&mut sql, " AND rtype = ?", Box::new(t.clone()));
        }
        if let Some(p) = &q.patient {
            if q.include_shared {
                arg(
                    &mut sql,
                    &format!(
                        " AND (patient = ? OR (patient IS NULL AND {}))",
                        shared_types_sql()
                    ),
                    Box::new(p.clone()),
                );
            } else {
                arg(&mut sql, " AND patient = ?", Box::new(p.clone()));
            }
        }
        if let Some(ms) = q.updated_after_ms {
            arg(&mut sql, " AND last_updated_ms > ?", Box::new(ms));
        }
        if let Some(ms) = q.updated_since_ms {
            arg(&mut sql, " AND last_updated_ms >= ?", Box::new(ms));
        }
        if let Some(a) = &q.after {
            arg(
                &mut sql,
                " AND (last_updated_ms, rtype, id) > (?",
                Box::new(a.last_updated_ms),
            );
            arg(&mut sql, ", ?", Box::new(a.rtype.clone()));
            arg(&mut sql, ", ?)", Box::new(a.id.clone()));
        }
        sql.push_str(" ORDER BY last_updated_ms, rtype, id");
        let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
        arg(&mut sql, " LIMIT ?", Box::new(limit));
        let args: Vec<&(dyn ToSql + Sync)> = args.iter().map(|b| b.as_ref()).collect();
        self.read(|c| {
            c.query(sql.as_str(), &args)
                .op("search")?
                .iter()
                .map(|r| stored(r, "search"))
                .collect()
        })
    }

    fn types(&self, tenant: &str) -> Result<Vec<String>> {
        self.read(|c| {
            c.query(
                "SELECT DISTINCT rtype FROM resources WHERE tenant = $1 ORDER BY rtype",
                &[&tenant],
            )
            .op("list types")?
            .iter()
            .map(|r| r.try_get(0).op("list types"))
            .collect()
        })
    }

    fn delete(&self, tenant: &str, rtype: &str, id: &str) -> Result<bool> {
        self.tx("delete", |t| {
            // Take turns with `put` in this tenant, as SQLite's one writer does.
            lock_tenant(t, tenant, "delete: lock tenant")?;
            let n = t
                .execute(
                    "DELETE FROM resources WHERE tenant = $1 AND rtype = $2 AND id = $3",
                    &[&tenant, &rtype, &id],
                )
                .op("delete: resource")?;
            t.execute(
                "DELETE FROM identifiers WHERE tenant = $1 AND rtype = $2 AND id = $3",
                &[&tenant, &rtype, &id],
            )
            .op("delete: identifiers")?;
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
        self.tx("create unique", |t| {
            // The identifier row decides who creates: the one whose insert lands. A
            // concurrent inserter of the same key waits for us, then sees our row.
            for _ in 0..3 {
                let claimed = t
                    .query_opt(
                        "INSERT INTO identifiers (tenant, rtype, patient, key, id)
                         VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (tenant, rtype, patient, key) DO NOTHING RETURNING id",
                        &[&tenant, &rtype, &patient, &key, &id],
                    )
                    .op("create unique: claim identifier")?;
                if claimed.is_some() {
                    let s = put_in(t, tenant, rtype, id, Some(patient), resource, now_ms)?;
                    return Ok((s, true));
                }
                let holder: Option<String> = t
                    .query_opt(
                        "SELECT id FROM identifiers
                         WHERE tenant = $1 AND rtype = $2 AND patient = $3 AND key = $4",
                        &[&tenant, &rtype, &patient, &key],
                    )
                    .op("create unique: read identifier")?
                    .map(|r| r.try_get(0))
                    .transpose()
                    .op("create unique: read identifier")?;
                let Some(holder) = holder else {
                    // Deleted between the two statements: claim it again.
                    continue;
                };
                if let Some(s) =
                    select_one(t, tenant, rtype, &holder, "create unique: read match")?
                {
                    return Ok((s, false));
                }
                // The identifier names a resource that is gone: take it over, as SQLite
                // does, but only if nobody else has meanwhile.
                let moved = t
                    .execute(
                        "UPDATE identifiers SET id = $5
                         WHERE tenant = $1 AND rtype = $2 AND patient = $3 AND key = $4 AND id = $6",
                        &[&tenant, &rtype, &patient, &key, &id, &holder],
                    )
                    .op("create unique: take over identifier")?;
                if moved == 1 {
                    let s = put_in(t, tenant, rtype, id, Some(patient), resource, now_ms)?;
                    return Ok((s, true));
                }
            }
            Err(Fail::Store(StoreError::Backend(
                "create unique: the identifier kept changing under concurrent writers".into(),
            )))
        })
    }

    fn put_grant(&self, hash: &str, g: &Grant) -> Result<()> {
        self.tx("put grant", |t| {
            t.execute(
                "INSERT INTO grants (hash, tenant, kind, patient, scope, client_id, expires_ms, data)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &hash,
                    &g.tenant,
                    &g.kind,
                    &g.patient,
                    &g.scope,
                    &g.client_id,
                    &g.expires_ms,
                    &g.data,
                ],
            )
            .op("put grant")?;
            Ok(())
        })
    }

    fn get_grant(&self, hash: &str, now_ms: i64) -> Result<Option<Grant>> {
        self.read(|c| {
            c.query_opt(
                &format!("SELECT {GRANT_COLUMNS} FROM grants WHERE hash = $1 AND expires_ms > $2"),
                &[&hash, &now_ms],
            )
            .op("read grant")?
            .map(|r| grant(&r, "read grant"))
            .transpose()
        })
    }

    fn take_grant(
        &self,
        hash: &str,
        kind: &str,
        tenant: &str,
        now_ms: i64,
    ) -> Result<Option<Grant>> {
        self.tx("take grant", |t| {
            // Of concurrent takers, the one whose delete lands gets the row.
            let g = t
                .query_opt(
                    &format!(
                        "DELETE FROM grants WHERE hash = $1 AND kind = $2 AND tenant = $3
                         RETURNING {GRANT_COLUMNS}"
                    ),
                    &[&hash, &kind, &tenant],
                )
                .op("take grant")?
                .map(|r| grant(&r, "take grant"))
                .transpose()?;
            // Expired grants go whenever one is taken, so the table stays small.
            t.execute("DELETE FROM grants WHERE expires_ms <= $1", &[&now_ms])
                .op("take grant: purge expired")?;
            Ok(g.filter(|g| g.expires_ms > now_ms))
        })
    }

    fn refresh_grant(&self, hash: &str, r: &Refresh<'_>) -> Result<Refreshed> {
        const WHAT: &str = "refresh grant";
        self.tx(WHAT, |t| {
            // The presented token's row, locked: concurrent exchanges of one token take
            // turns, and each sees what the one before it did.
            let found = t
                .query_opt(
                    &format!("SELECT {GRANT_COLUMNS} FROM grants WHERE hash = $1 FOR UPDATE"),
                    &[&hash],
                )
                .op(WHAT)?
                .map(|row| grant(&row, WHAT))
                .transpose()?;
            // Its successor's row too (locked after it, always in that order), so a
            // retry cannot race the successor's own rotation.
            let successor_unused = match found
                .as_ref()
                .filter(|g| g.kind == "spent")
                .and_then(|g| Spent::of(g).next_refresh)
            {
                Some(next) => t
                    .query_opt(
                        "SELECT kind, expires_ms FROM grants WHERE hash = $1 FOR UPDATE",
                        &[&next],
                    )
                    .op(WHAT)?
                    .map(|row| -> Res<bool> {
                        let kind: String = row.try_get(0).op(WHAT)?;
                        let expires_ms: i64 = row.try_get(1).op(WHAT)?;
                        Ok(kind == "refresh" && expires_ms > r.now_ms)
                    })
                    .transpose()?
                    .unwrap_or(false),
                None => true,
            };
            Ok(
                match (refresh_step(found.as_ref(), successor_unused, r), found) {
                    (RefreshStep::Rotate, Some(g)) => {
                        let spent = Spent::exchanged(r.now_ms, false, r);
                        t.execute(
                            "UPDATE grants SET kind = 'spent', data = $2 WHERE hash = $1",
                            &[&hash, &spent.to_data()],
                        )
                        .op(WHAT)?;
                        insert_pair(t, &g, r)?;
                        Refreshed::Issued {
                            grant: g,
                            retry: false,
                        }
                    }
                    (RefreshStep::Retry(old), Some(g)) => {
                        if let Some(a) = &old.next_access {
                            t.execute(
                                "DELETE FROM grants WHERE hash = $1 AND kind = 'access'",
                                &[a],
                            )
                            .op(WHAT)?;
                        }
                        if let Some(n) = &old.next_refresh {
                            t.execute(
                                "UPDATE grants SET kind = 'superseded', data = '{}' WHERE hash = $1",
                                &[n],
                            )
                            .op(WHAT)?;
                        }
                        let spent = Spent::exchanged(old.spent_ms, true, r);
                        t.execute(
                            "UPDATE grants SET data = $2 WHERE hash = $1",
                            &[&hash, &spent.to_data()],
                        )
                        .op(WHAT)?;
                        insert_pair(t, &g, r)?;
                        Refreshed::Issued {
                            grant: g,
                            retry: true,
                        }
                    }
                    (RefreshStep::Revoke, Some(g)) => {
                        let n = t
                            .execute(
                                "DELETE FROM grants
                                 WHERE tenant = $1 AND patient = $2 AND client_id = $3",
                                &[&g.tenant, &g.patient, &g.client_id],
                            )
                            .op(WHAT)?;
                        Refreshed::Revoked(rows(n))
                    }
                    _ => Refreshed::Unknown,
                },
            )
        })
    }
}

/// Store the access and refresh token a refresh exchange issues, for `from`'s patient.
fn insert_pair(t: &mut Transaction<'_>, from: &Grant, r: &Refresh<'_>) -> Res<()> {
    for (hash, kind, expires_ms) in [
        (r.access.0, "access", r.access.1),
        (r.refresh.0, "refresh", r.refresh.1),
    ] {
        let g = successor_grant(from, kind, expires_ms);
        t.execute(
            "INSERT INTO grants (hash, tenant, kind, patient, scope, client_id, expires_ms, data)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &hash,
                &g.tenant,
                &g.kind,
                &g.patient,
                &g.scope,
                &g.client_id,
                &g.expires_ms,
                &g.data,
            ],
        )
        .op("refresh grant: issue")?;
    }
    Ok(())
}
