//! Which servers the app trusts beyond the Mozilla roots: extra roots and SPKI pins,
//! per host, for every request the core makes (providers, the endpoint's relay, share
//! links and backups).

use crate::error::Result;

/// Trust, for the host of `url`, these extra roots (PEM certificates) beside the
/// Mozilla roots, and require one of these SPKI pins in the server's chain
/// (`sha256/` and the base64 of the SHA-256 of a SubjectPublicKeyInfo, as RFC 7469
/// writes them; pin a backup key too). Both empty forgets what was set for the host.
/// Call at start-up, before the first request; a later call replaces the setting.
/// A server that then fails the check is refused with `Denied`, and nothing is
/// retried. `InvalidInput` for a URL without a host, a root that is not a PEM
/// certificate, or a pin that is not 32 bytes.
#[uniffi::export]
pub fn set_endpoint_trust(
    url: String,
    extra_roots_pem: Vec<String>,
    spki_pins: Vec<String>,
) -> Result<()> {
    Ok(carry_core::net::trust::set_trust(
        &url,
        &extra_roots_pem,
        &spki_pins,
    )?)
}

/// The SPKI pin (`sha256/BASE64`) of a DER certificate, to pin a server's key.
/// `InvalidInput` if it is not a DER X.509 certificate.
#[uniffi::export]
pub fn spki_pin(certificate_der: Vec<u8>) -> Result<String> {
    Ok(carry_core::net::trust::spki_pin(&certificate_der)?)
}
