//! The soak's envelope bodies: a sequence number, a SHA-256 and random bytes, so a
//! receiver can tell which envelope it holds and that every byte arrived intact.
//!
//! Layout: `seq` (8 bytes, big-endian) ‖ SHA-256(`seq` ‖ `payload`) (32 bytes) ‖ `payload`.

use ring::digest::{Context, SHA256};

/// Bytes before the payload: the sequence number and the hash.
pub const HEADER: usize = 8 + 32;

/// SHA-256 of the sequence number's bytes and the payload.
fn digest(seq: &[u8], payload: &[u8]) -> [u8; 32] {
    let mut ctx = Context::new(&SHA256);
    ctx.update(seq);
    ctx.update(payload);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// An envelope body carrying `seq` and `payload`.
pub fn make(seq: u64, payload: &[u8]) -> Vec<u8> {
    let seq_bytes = seq.to_be_bytes();
    let mut body = Vec::with_capacity(HEADER + payload.len());
    body.extend_from_slice(&seq_bytes);
    body.extend_from_slice(&digest(&seq_bytes, payload));
    body.extend_from_slice(payload);
    body
}

/// The sequence number of an intact body, or why it is not one.
pub fn check(body: &[u8]) -> Result<u64, String> {
    if body.len() < HEADER {
        return Err(format!(
            "the body has {} bytes, fewer than the {HEADER}-byte header",
            body.len()
        ));
    }
    let (seq_bytes, rest) = body.split_at(8);
    let (hash, payload) = rest.split_at(32);
    if digest(seq_bytes, payload) != hash {
        return Err(format!(
            "the body's SHA-256 does not match its {} bytes",
            body.len()
        ));
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(seq_bytes);
    Ok(u64::from_be_bytes(seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_carries_its_sequence_number_and_checks_out() {
        let body = make(42, b"some random bytes");
        assert_eq!(body.len(), HEADER + 17);
        assert_eq!(check(&body), Ok(42));
        assert_eq!(check(&make(u64::MAX, b"")), Ok(u64::MAX));
    }

    #[test]
    fn any_changed_byte_or_a_short_body_is_caught() {
        let body = make(7, &[0xAB; 1000]);
        for i in [0, 7, 8, 39, 40, 500, body.len() - 1] {
            let mut bad = body.clone();
            bad[i] ^= 1;
            assert!(check(&bad).is_err(), "byte {i} flipped");
        }
        let mut cut = body.clone();
        cut.pop();
        assert!(check(&cut).is_err(), "a byte short");
        assert!(
            check(&body[..HEADER - 1]).is_err(),
            "no room for the header"
        );
    }
}
