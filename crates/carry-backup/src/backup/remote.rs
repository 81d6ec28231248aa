//! Backups at the endpoint: stored as opaque blobs under a locator the recovery code
//! derives, so the code alone finds them again. The first upload is a whole backup;
//! later ones carry only what changed, each on top of the one before, until the
//! chain is long enough that a whole one is due again.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use carry_proto::backup::{Restores, Stored, BASE_HEADER, FETCH_HASH_HEADER, FETCH_HEADER};
use zeroize::Zeroizing;

use super::code::{Purpose, RecoverySecret};
use super::{chain, extend_chain, record_backup, state, write_backup, BackupReport};
use crate::error::{Error, Result};
use crate::keys::KeyStore;
use crate::net::http::{Http, Resp};
use crate::net::relay::{status_error, Relay};
use crate::net::CallOptions;
use crate::profile::db;
use crate::profile::Profile;

/// The most blobs one restore fetches: a whole backup and the endpoint's longest
/// chain of increments on it.
const MAX_CHAIN_FETCH: usize = 65;
/// The largest backup blob fetched (the endpoint refuses more than 256 MiB by default).
const BLOB_MAX: usize = 1 << 30;

/// The endpoint's name for this code's backups, and the secret that fetches them.
pub(super) fn locator_and_fetch(secret: &RecoverySecret) -> (String, Zeroizing<String>) {
    (
        B64.encode(secret.derive(Purpose::Locator).as_ref()),
        Zeroizing::new(B64.encode(secret.derive(Purpose::Fetch).as_ref())),
    )
}

/// What the endpoint keeps to check fetches: SHA-256 of the 32-byte fetch secret.
fn fetch_hash(secret: &RecoverySecret) -> String {
    B64.encode(ring::digest::digest(
        &ring::digest::SHA256,
        secret.derive(Purpose::Fetch).as_ref(),
    ))
}

/// Store `blob` at `path` as the relay session's owner: a whole backup, or an
/// increment on the endpoint's version `base`.
async fn put(
    relay: &Relay,
    path: &str,
    fetch_hash: &str,
    blob: Vec<u8>,
    base: Option<i64>,
) -> Result<Resp> {
    let blob = Arc::new(blob);
    relay
        .owner(path, |c, url| {
            let b = c
                .put(url)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .header(FETCH_HASH_HEADER, fetch_hash);
            let b = match base {
                Some(v) => b.header(BASE_HEADER, v.to_string()),
                None => b,
            };
            b.body(blob.as_ref().clone())
        })
        .await
}

/// Stage a whole backup for a move to a new device: sealed under a one-time secret
/// (not the recovery code) and stored at the endpoint as `relay`'s identity. Returns
/// the one-time code that finds and opens it, and its path for deleting it after.
pub async fn stage_move(
    profile: Arc<Profile>,
    relay: &Relay,
) -> Result<(Zeroizing<String>, String)> {
    let secret = RecoverySecret::generate()?;
    let wrap = RecoverySecret::from_bytes(secret.as_bytes())?;
    let (_, blob, _) = db(&profile, move |p| {
        write_backup(p, Vec::new(), None, Some(&wrap), false)
    })
    .await?;
    let path = format!("backup/v1/blobs/{}", locator_and_fetch(&secret).0);
    let r = put(relay, &path, &fetch_hash(&secret), blob, None).await?;
    if !matches!(r.status, 200 | 201) {
        return Err(status_error("staging the profile for the new device", &r));
    }
    Ok((secret.code(), path))
}

/// Where the profile keeps what it last heard of restores: `LOCATOR COUNT`.
const RESTORES_SEEN: &str = "backup_restores_seen";

/// Compare the endpoint's count of restores under `locator` with the count last seen
/// and record what is new in the audit log: the report's `restores_elsewhere` and
/// `last_restored_at`. A first count under a locator (a new profile, a new recovery
/// code, a restored profile, whose own restore is among them) is taken as seen.
fn notice_restores(
    c: &rusqlite::Connection,
    locator: &str,
    restores: Restores,
    report: &mut BackupReport,
) -> Result<()> {
    let seen = crate::vault::meta::get(c, RESTORES_SEEN)?.and_then(|v| {
        let (l, n) = v.split_once(' ')?;
        (l == locator).then(|| n.parse::<u64>().ok()).flatten()
    });
    if let Some(seen) = seen.filter(|&seen| restores.count > seen) {
        let new = restores.count - seen;
        let last = restores.last_at.map(crate::time::rfc3339);
        report.restores_elsewhere = new;
        report.last_restored_at = last.clone();
        tracing::warn!(
            restores = new,
            "the backup at the endpoint was restored elsewhere"
        );
        crate::audit::append(
            c,
            crate::audit::AuditEvent::RestoredElsewhere,
            None,
            &format!(
                "the backup at the endpoint was restored with the recovery code {new} time{}{}",
                if new == 1 { "" } else { "s" },
                last.map(|t| format!(", last at {t}")).unwrap_or_default()
            ),
        )?;
    }
    crate::vault::meta::set(c, RESTORES_SEEN, &format!("{locator} {}", restores.count))
}

/// Forget the restores seen, so the next backup takes the endpoint's count as seen:
/// a restored profile's own restore is among them.
pub(super) fn forget_restores_seen(c: &rusqlite::Connection) -> Result<()> {
    c.execute("DELETE FROM meta WHERE key = ?1", [RESTORES_SEEN])?;
    Ok(())
}

/// Back up the profile to the endpoint: encrypted on the device, stored as an opaque
/// blob under a locator the recovery code derives, so the code alone finds it again.
/// After the first, a backup carries only what changed since the last one (unless
/// `full`, or the chain is due a whole one); the endpoint keeps whole chains for the
/// last few whole backups.
pub async fn backup_to_endpoint(
    profile: Arc<Profile>,
    endpoint: &str,
    options: &CallOptions,
    full: bool,
) -> Result<BackupReport> {
    let (secret, stale, link) = db(&profile, move |p| {
        p.vault().write(|c| {
            // The identity signs in to the endpoint, so make sure it exists first.
            crate::vault::identity::get(c)?;
            let link = if full {
                None
            } else {
                chain(c)?.and_then(|ch| ch.next().map(|l| (ch.version, l)))
            };
            Ok((
                state(c)?.0,
                crate::vault::meta::get(c, "stale_backup_locator")?,
                link,
            ))
        })
    })
    .await?;
    let (locator, _) = locator_and_fetch(&secret);
    let fetch_hash = fetch_hash(&secret);
    let me = db(&profile, |p| {
        p.vault().write(|c| crate::vault::identity::get(c))
    })
    .await?;
    let http = options.http()?;
    let relay = Relay::connect(http, endpoint, &me).await?;
    let path = format!("backup/v1/blobs/{locator}");

    let mut link = link;
    let (mut report, changes_upto, version, restores) = loop {
        let (base_version, l) = match link.take() {
            Some((v, l)) => (Some(v), Some(l)),
            None => (None, None),
        };
        let (report, blob, changes_upto) = db(&profile, move |p| {
            write_backup(p, Vec::new(), l.as_ref(), None, true)
        })
        .await?;
        let r = put(&relay, &path, &fetch_hash, blob, base_version).await?;
        match r.status {
            200 | 201 => {
                // `restores` is absent from endpoints from before restores were counted.
                let stored: Stored =
                    serde_json::from_slice(&r.body).map_err(|_| Error::Network {
                        reason: "the endpoint's answer to a backup was not understood".into(),
                        retry_after_s: None,
                    })?;
                break (report, changes_upto, stored.version, stored.restores);
            }
            // The chain moved on elsewhere (another device, a restore) or is full:
            // send a whole backup instead.
            409 if base_version.is_some() => {
                tracing::info!("the endpoint wants a whole backup; sending one");
                continue;
            }
            _ => return Err(status_error("storing the backup", &r)),
        }
    };

    // Backups under a code that was replaced are deleted once a new one is stored;
    // after a device was removed, once the old keys that own them are retired and
    // have handed them to the new ones.
    let handed_over = db(&profile, |p| {
        p.vault().read(|c| {
            Ok(c.query_row(
                "SELECT count(*) = 0 FROM identity_retired WHERE finished_at IS NULL",
                [],
                |r| r.get::<_, bool>(0),
            )?)
        })
    })
    .await?;
    if let Some(old) = stale.filter(|_| handed_over) {
        let r = relay
            .owner(&format!("backup/v1/blobs/{old}"), |c, url| c.delete(url))
            .await?;
        if matches!(r.status, 200 | 204 | 404) {
            db(&profile, |p| {
                p.vault().write(|c| {
                    c.execute("DELETE FROM meta WHERE key = 'stale_backup_locator'", [])?;
                    Ok(())
                })
            })
            .await?;
        }
    }
    db(&profile, move |p| {
        extend_chain(p, &report, version, changes_upto)?;
        record_backup(p, &report, "the endpoint")?;
        if let Some(restores) = restores {
            p.vault()
                .write(|c| notice_restores(c, &locator, restores, &mut report))?;
        }
        Ok(report)
    })
    .await
}

/// Fetch one blob under the locator: the latest, or version `n`.
async fn fetch(http: &Http, url: &str, fetch: &str) -> Result<Resp> {
    let r = http
        .send(|| http.client().get(url).header(FETCH_HEADER, fetch))
        .await?;
    match r.status {
        200 => Ok(r),
        404 => Err(Error::NotFound {
            what: "a backup for this recovery code at that endpoint".into(),
        }),
        s => Err(Error::Network {
            reason: format!("the endpoint answered {s}"),
            retry_after_s: None,
        }),
    }
}

/// Restore from the endpoint with nothing but the recovery code: the code derives
/// where the backup is and the secret that fetches it. The latest backup and the
/// chain it builds on are fetched and applied in order. A code with no backup there
/// is [`Error::NotFound`]; repeated wrong tries are slowed down by the endpoint. The
/// vault only: `carry_core::restore::from_endpoint` also asks again for the records
/// shared with the person.
pub async fn restore_from_endpoint(
    dir: &std::path::Path,
    endpoint: &str,
    code: &str,
    key_store: Arc<dyn KeyStore>,
) -> Result<Profile> {
    let profile = restore_as(dir, endpoint, code, key_store, None).await?;
    super::restore::record_restored(&profile, "from the endpoint, with the recovery code")?;
    Ok(profile)
}

/// Restore from the endpoint as [`restore_from_endpoint`] does; with `join`, as
/// another device of the profile, keeping the device list (see `restore::Join`).
pub async fn restore_as(
    dir: &std::path::Path,
    endpoint: &str,
    code: &str,
    key_store: Arc<dyn KeyStore>,
    join: Option<Box<super::restore::Join>>,
) -> Result<Profile> {
    let secret = RecoverySecret::parse(code)?;
    let (locator, fetch_secret) = locator_and_fetch(&secret);
    let base = crate::net::relay::base_of(endpoint)?;
    let root = format!(
        "{}/backup/v1/blobs/{locator}",
        base.trim_end_matches("/relay/v1")
    );
    let http = Http::new(None, None)?.max_body(BLOB_MAX);
    let mut blobs = Vec::new();
    let mut r = fetch(&http, &root, &fetch_secret).await?;
    loop {
        let base = r.carry_header(BASE_HEADER).map(str::to_string);
        blobs.push(r.body);
        let Some(base) = base else { break };
        if blobs.len() >= MAX_CHAIN_FETCH
            || base.is_empty()
            || !base.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(Error::invalid(
                "the endpoint's chain of backups is damaged (a base)",
            ));
        }
        r = fetch(&http, &format!("{root}/versions/{base}"), &fetch_secret).await?;
    }
    blobs.reverse();
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        super::restore::restore(
            &dir,
            blobs.into_iter().map(std::io::Cursor::new).collect(),
            &secret,
            key_store.as_ref(),
            join.as_deref(),
        )
    })
    .await
    .map_err(|e| Error::internal(format!("the restore task failed: {e}")))?
}
