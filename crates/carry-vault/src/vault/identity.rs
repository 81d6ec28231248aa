//! The profile's own key pairs (Ed25519 to sign, X25519 to receive) and the key its
//! received records are sealed under, kept in the vault's `identity` row.

use rusqlite::{params, Connection, OptionalExtension};

use crate::crypto::identity::Identity;
use crate::error::Result;
use crate::keys::fill_random;
use crate::time::now_unix;

/// Load the identity, creating it on first use.
pub fn get(conn: &Connection) -> Result<Identity> {
    let row: Option<(Vec<u8>, Vec<u8>)> = conn
        .query_row(
            "SELECT sign_pkcs8, enc_secret FROM identity WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match row {
        Some((s, e)) => Identity::from_parts(&s, &zeroize::Zeroizing::new(e)),
        None => {
            let id = Identity::generate()?;
            let mut received = zeroize::Zeroizing::new([0u8; 32]);
            fill_random(received.as_mut())?;
            conn.execute(
                "INSERT INTO identity (id, sign_pkcs8, enc_secret, received_key, created_at)
                 VALUES (1, ?1, ?2, ?3, ?4)",
                params![
                    id.sign_pkcs8(),
                    id.enc_secret().as_bytes().as_slice(),
                    received.as_slice(),
                    now_unix()
                ],
            )?;
            Ok(id)
        }
    }
}
