//! The NHS login client's key for the command line: an RSA private key in a PKCS#8
//! PEM file named by `CARRY_CLIENT_KEY`, standing in for the key an app keeps in its
//! platform's key store. It signs the client's assertions (RS512) and never enters
//! the profile.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use carry_core::sync::nhs_login::{self, ClientSigner};
use carry_core::{Error, Result};
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA512};
use zeroize::Zeroizing;

/// The variable naming the key file.
pub const KEY_ENV: &str = "CARRY_CLIENT_KEY";

struct FileSigner(RsaKeyPair);

impl ClientSigner for FileSigner {
    fn sign_rs512(&self, message: &[u8]) -> Result<Vec<u8>> {
        let mut sig = vec![0u8; self.0.public().modulus_len()];
        self.0
            .sign(
                &RSA_PKCS1_SHA512,
                &ring::rand::SystemRandom::new(),
                message,
                &mut sig,
            )
            .map_err(|_| Error::internal("the client key could not sign"))?;
        Ok(sig)
    }
}

/// Read the key `CARRY_CLIENT_KEY` names, if it is set, and let it sign for every
/// NHS login client this run signs in or refreshes as.
pub fn from_env() -> Result<()> {
    let Some(path) = std::env::var_os(KEY_ENV) else {
        return Ok(());
    };
    let text = Zeroizing::new(
        std::fs::read_to_string(&path)
            .map_err(|e| Error::invalid(format!("{KEY_ENV} names no readable file: {e}")))?,
    );
    let body: Zeroizing<String> = Zeroizing::new(
        text.lines()
            .skip_while(|l| !l.starts_with("-----BEGIN PRIVATE KEY-----"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect(),
    );
    let der = Zeroizing::new(STANDARD.decode(body.as_bytes()).map_err(|_| {
        Error::invalid(format!(
            "{KEY_ENV} must name a PKCS#8 PEM file (-----BEGIN PRIVATE KEY-----)"
        ))
    })?);
    let key = RsaKeyPair::from_pkcs8(&der).map_err(|_| {
        Error::invalid(format!(
            "{KEY_ENV} must hold an RSA key of 2048 bits or more"
        ))
    })?;
    nhs_login::set_client_signer(nhs_login::ANY_CLIENT, Arc::new(FileSigner(key)));
    Ok(())
}
