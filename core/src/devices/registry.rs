//! The person's devices: this device's own keys, and the list every device holds.
//!
//! A profile with no other devices has an empty list and works as before. Once a
//! second device joins, both are listed; exactly one is the *primary*, the device that
//! talks to other people's devices through the relay (deliveries to carers, their
//! readings, invites taken up), so that grants' sequence numbers come from one place.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use zeroize::Zeroizing;

use super::pairing::DeviceCard;
use crate::crypto::identity::{Identity, PublicIdentity};
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::time::now_unix;

/// One of the person's devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    /// Its id (the short handle of its key).
    pub id: String,
    /// The name the person gave it.
    pub name: String,
    /// Whether it is the device asking.
    pub this_device: bool,
    /// Whether it is the one that talks to other people's devices.
    pub primary: bool,
    /// When it joined (Unix seconds).
    pub added_at: i64,
    /// When it was removed, if it was.
    pub removed_at: Option<i64>,
}

/// This device's keys for the channel between the person's devices, made on first
/// use. Returns its id with them.
pub(crate) fn this_device(conn: &Connection) -> Result<(String, Identity)> {
    let row: Option<(String, Vec<u8>, Vec<u8>)> = conn
        .query_row(
            "SELECT device, sign_pkcs8, enc_secret FROM device_self WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    if let Some((id, sign, enc)) = row {
        let sign = zeroize::Zeroizing::new(sign);
        let enc = zeroize::Zeroizing::new(enc);
        return Ok((id, Identity::from_parts(&sign, &enc)?));
    }
    let me = Identity::generate()?;
    let id = me.public().handle();
    store_self(conn, &id, &me)?;
    Ok((id, me))
}

/// Keep `me` as this device's keys.
pub(crate) fn store_self(conn: &Connection, id: &str, me: &Identity) -> Result<()> {
    conn.execute(
        "INSERT INTO device_self (id, device, sign_pkcs8, enc_secret) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET device = excluded.device,
           sign_pkcs8 = excluded.sign_pkcs8, enc_secret = excluded.enc_secret",
        params![id, me.sign_pkcs8(), me.enc_secret().as_bytes().as_slice()],
    )?;
    Ok(())
}

/// The card that names this device to a device joining (or to the one it joins).
pub(crate) fn card_of(id: &str, name: &str, me: &Identity) -> DeviceCard {
    use base64::Engine as _;
    DeviceCard {
        id: id.to_string(),
        name: name.to_string(),
        keys: me.public().to_keys(),
        binding: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(me.binding()),
    }
}

/// The other devices still in the profile, with their keys.
pub(crate) fn others(conn: &Connection) -> Result<Vec<(String, PublicIdentity)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.id, d.sign_key, d.enc_key FROM devices d, device_self s
         WHERE d.removed_at IS NULL AND d.id <> s.device ORDER BY d.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, Vec<u8>>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, sign, enc) = row?;
        let (Ok(sign), Ok(enc)) = (sign.try_into(), enc.try_into()) else {
            return Err(Error::internal("a stored device key has the wrong length"));
        };
        out.push((id, PublicIdentity { sign, enc }));
    }
    Ok(out)
}

/// The primary device's id, if the profile has devices: the one marked primary
/// (the latest mark wins), else the first still in the profile by id.
pub(crate) fn primary(conn: &Connection) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT id FROM devices WHERE removed_at IS NULL
             ORDER BY is_primary DESC, lamport DESC, lamport_device DESC, id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?)
}

/// Whether this device talks to other people's devices: it is the primary, or the
/// profile has no other devices.
pub(crate) fn is_primary(conn: &Connection) -> Result<bool> {
    let me: Option<String> = conn
        .query_row("SELECT device FROM device_self WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(match (primary(conn)?, me) {
        (None, _) => true,
        (Some(p), Some(me)) => p == me,
        (Some(_), None) => false,
    })
}

/// Add `joining` to the profile's devices (and this device, named `my_name`, first if
/// the list is empty; it is then the primary).
pub(crate) fn register(conn: &Connection, my_name: &str, joining: &DeviceCard) -> Result<()> {
    let (me, my_keys) = this_device(conn)?;
    let now = now_unix();
    let empty: bool = conn.query_row("SELECT count(*) = 0 FROM devices", [], |r| r.get(0))?;
    if empty {
        let p = my_keys.public();
        conn.execute(
            "INSERT INTO devices (id, name, sign_key, enc_key, added_at, is_primary)
             VALUES (?1, ?2, ?3, ?4, ?5, 1)",
            params![me, my_name, &p.sign[..], &p.enc[..], now],
        )?;
    }
    let them = super::pairing::peer(&joining.keys, &joining.binding)?;
    if them.handle() != joining.id || joining.id == me {
        return Err(Error::invalid(
            "the joining device's id does not match its keys",
        ));
    }
    conn.execute(
        "INSERT INTO devices (id, name, sign_key, enc_key, added_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET removed_at = NULL, name = excluded.name",
        params![joining.id, joining.name, &them.sign[..], &them.enc[..], now],
    )?;
    crate::audit::append(
        conn,
        crate::audit::AuditEvent::DeviceAdded,
        None,
        &format!(
            "device {} ({}) joined the profile",
            joining.id, joining.name
        ),
    )
}

/// The person's devices. Empty while the profile is on one device only.
pub fn list(profile: &Profile) -> Result<Vec<Device>> {
    profile.vault().read(|c| {
        let me: Option<String> = c
            .query_row("SELECT device FROM device_self WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?;
        let primary = primary(c)?;
        let mut stmt =
            c.prepare("SELECT id, name, added_at, removed_at FROM devices ORDER BY added_at, id")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, name, added_at, removed_at) = row?;
            out.push(Device {
                this_device: me.as_deref() == Some(id.as_str()),
                primary: primary.as_deref() == Some(id.as_str()),
                id,
                name,
                added_at,
                removed_at,
            });
        }
        Ok(out)
    })
}

fn known(conn: &Connection, id: &str) -> Result<(String, Option<i64>)> {
    conn.query_row(
        "SELECT id, removed_at FROM devices WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?
    .ok_or_else(|| Error::NotFound {
        what: format!("a device {id} in this profile (see the device list)"),
    })
}

/// Remove a device from the profile: nothing more is sent to it or taken from it,
/// and the profile's identity and recovery code are replaced, so that what it still
/// holds no longer acts as the person (see [`crate::share::rotation`]). The people the
/// profile knows are sent the new keys, and the old ones are retired at the endpoint
/// at the next exchange, made by this device, which becomes the primary. Returns the
/// new recovery code, for the person to write down (the old one opens no later
/// backup). What the removed device already holds stays with it; this device cannot
/// remove itself (wipe it instead).
pub fn remove(profile: &Profile, id: &str) -> Result<Zeroizing<String>> {
    profile.vault().write(|c| {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (id, removed) = known(&tx, id)?;
        let (me, _) = this_device(&tx)?;
        if id == me {
            return Err(Error::invalid(
                "this is the device you are using; remove it from another of your devices",
            ));
        }
        if removed.is_some() {
            return Err(Error::Revoked {
                what: format!("device {id} was already removed"),
            });
        }
        // The others hear of it before the list stops naming it.
        tx.execute(
            "INSERT OR IGNORE INTO device_changes (tbl, k) VALUES ('devices', ?1)",
            [&id],
        )?;
        tx.execute(
            "UPDATE devices SET removed_at = ?2, is_primary = 0 WHERE id = ?1",
            params![id, now_unix()],
        )?;
        // This device retires the old keys, so it talks to other people from now on.
        tx.execute(
            "UPDATE devices SET is_primary = (id = ?1) WHERE removed_at IS NULL",
            [&me],
        )?;
        crate::audit::append(
            &tx,
            crate::audit::AuditEvent::DeviceRemoved,
            None,
            &format!("device {id} was removed from the profile"),
        )?;
        let code = super::rotation::rotate(&tx)?;
        tx.commit()?;
        Ok(code)
    })
}

/// Make `id` the device that talks to other people's devices.
pub fn set_primary(profile: &Profile, id: &str) -> Result<()> {
    profile.vault().write(|c| {
        let tx = c.transaction()?;
        let (id, removed) = known(&tx, id)?;
        if removed.is_some() {
            return Err(Error::Revoked {
                what: format!("device {id} was removed"),
            });
        }
        tx.execute(
            "UPDATE devices SET is_primary = (id = ?1) WHERE removed_at IS NULL",
            [&id],
        )?;
        tx.commit()?;
        Ok(())
    })
}
