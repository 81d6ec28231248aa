//! Which servers the core trusts: the Mozilla roots (webpki-roots) for every host,
//! and, per host, what an app adds ([`set_trust`]): extra roots (a provider or an
//! endpoint under a private CA) and SPKI pins (SHA-256 of a certificate's
//! SubjectPublicKeyInfo, as in RFC 7469). With pins, a certificate chain must both
//! verify and present at least one pinned key (the server's own, or an intermediate
//! it sends); a chain that verifies but matches no pin is refused.
//!
//! The settings live for the process and apply to every request to that host, from
//! sync, sharing, share links and backups alike.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::digest::{digest, SHA256};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{Error, Result};

/// What an app adds to the trust of one host.
struct HostTrust {
    /// A verifier over the Mozilla roots and the host's extra roots, when it has any.
    verifier: Option<Arc<WebPkiServerVerifier>>,
    /// SHA-256 of the SubjectPublicKeyInfo of keys the chain must present; empty: any.
    pins: Vec<[u8; 32]>,
}

/// Per host (lower case), what the app added.
static HOSTS: LazyLock<RwLock<HashMap<String, Arc<HostTrust>>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn mozilla_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// The host of `url` (lower case), which trust settings are kept under.
fn host_of(url: &str) -> Result<String> {
    let parsed =
        url::Url::parse(url).map_err(|_| Error::invalid(format!("'{url}' is not a URL")))?;
    parsed
        .host_str()
        .map(|h| {
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase()
        })
        .ok_or_else(|| Error::invalid(format!("'{url}' names no host")))
}

/// Read a pin: base64 of 32 bytes, optionally after `sha256/` (the HPKP form).
fn parse_pin(text: &str) -> Result<[u8; 32]> {
    let b64 = text.trim().strip_prefix("sha256/").unwrap_or(text.trim());
    B64.decode(b64)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| {
            Error::invalid(format!(
                "the pin '{text}' is not sha256/ and the base64 of a 32-byte SHA-256 digest"
            ))
        })
}

/// Read extra roots: PEM text holding one or more certificates.
fn parse_roots(pem: &[String]) -> Result<Vec<CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject as _;
    let mut out = Vec::new();
    for text in pem {
        let found: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(text.as_bytes())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::invalid("an extra root is not a PEM certificate"))?;
        if found.is_empty() {
            return Err(Error::invalid(
                "an extra root holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            ));
        }
        out.extend(found);
    }
    Ok(out)
}

/// Trust, for the host of `url`, these extra roots (PEM certificates) beside the
/// Mozilla roots, and require one of these SPKI pins (`sha256/BASE64`) in its chain.
/// Both may be empty; both empty forgets what was set. Replaces any earlier setting
/// for that host, for the rest of the process.
pub fn set_trust(url: &str, extra_roots_pem: &[String], spki_pins: &[String]) -> Result<()> {
    let host = host_of(url)?;
    let roots = parse_roots(extra_roots_pem)?;
    let pins = spki_pins
        .iter()
        .map(|p| parse_pin(p))
        .collect::<Result<Vec<_>>>()?;
    let mut hosts = HOSTS.write().unwrap_or_else(|p| p.into_inner());
    if roots.is_empty() && pins.is_empty() {
        hosts.remove(&host);
        return Ok(());
    }
    let verifier = if roots.is_empty() {
        None
    } else {
        let mut store = mozilla_roots();
        for r in roots {
            store
                .add(r)
                .map_err(|e| Error::invalid(format!("an extra root is not usable: {e}")))?;
        }
        Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider())
                .build()
                .map_err(|e| Error::internal(format!("TLS setup: {e}")))?,
        )
    };
    hosts.insert(host, Arc::new(HostTrust { verifier, pins }));
    Ok(())
}

/// The SPKI pin (`sha256/BASE64`) of a DER certificate, for an operator or an app to
/// pin its own endpoint's key.
pub fn spki_pin(cert_der: &[u8]) -> Result<String> {
    let cert = CertificateDer::from(cert_der.to_vec());
    let parsed = webpki::EndEntityCert::try_from(&cert)
        .map_err(|_| Error::invalid("not a DER X.509 certificate"))?;
    Ok(format!(
        "sha256/{}",
        B64.encode(digest(&SHA256, &parsed.subject_public_key_info()))
    ))
}

/// The verifier every client uses: the Mozilla roots, and per host what the app added.
#[derive(Debug)]
pub struct Verifier {
    default: Arc<WebPkiServerVerifier>,
}

impl std::fmt::Debug for HostTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostTrust")
            .field("extra_roots", &self.verifier.is_some())
            .field("pins", &self.pins.len())
            .finish()
    }
}

impl Verifier {
    /// Over the Mozilla roots.
    pub fn new() -> Result<Self> {
        Ok(Verifier {
            default: WebPkiServerVerifier::builder_with_provider(
                Arc::new(mozilla_roots()),
                provider(),
            )
            .build()
            .map_err(|e| Error::internal(format!("TLS setup: {e}")))?,
        })
    }

    fn host_trust(name: &ServerName<'_>) -> Option<Arc<HostTrust>> {
        let host = match name {
            ServerName::DnsName(d) => d.as_ref().to_ascii_lowercase(),
            ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
            _ => return None,
        };
        HOSTS
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&host)
            .cloned()
    }
}

/// Whether any of `certs` presents a key in `pins`.
fn pinned(certs: &[&CertificateDer<'_>], pins: &[[u8; 32]]) -> bool {
    certs.iter().any(|c| {
        webpki::EndEntityCert::try_from(*c).is_ok_and(|parsed| {
            let spki = digest(&SHA256, &parsed.subject_public_key_info());
            pins.iter()
                .any(|p| crate::keys::same_secret(p, spki.as_ref()))
        })
    })
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let trust = Verifier::host_trust(server_name);
        let verifier = trust
            .as_ref()
            .and_then(|t| t.verifier.clone())
            .unwrap_or_else(|| self.default.clone());
        let verified = verifier.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        if let Some(t) = trust.filter(|t| !t.pins.is_empty()) {
            let chain: Vec<&CertificateDer<'_>> =
                std::iter::once(end_entity).chain(intermediates).collect();
            if !pinned(&chain, &t.pins) {
                return Err(rustls::Error::General(PIN_MISMATCH.into()));
            }
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.default.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.default.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.default.supported_verify_schemes()
    }
}

/// What a chain that matches no pin is refused with.
const PIN_MISMATCH: &str = "the certificate presents none of the keys pinned for this host";

/// If `e` failed because the server's certificate was refused, why, in words: such a
/// failure is not worth retrying.
pub fn certificate_refusal(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(tls) = c.downcast_ref::<rustls::Error>() {
            return match tls {
                rustls::Error::InvalidCertificate(why) => Some(in_words(why)),
                rustls::Error::General(why) if why == PIN_MISMATCH => Some(why.clone()),
                _ => None,
            };
        }
        // An I/O error's `source` skips the error it wraps: step into that instead.
        cause = match c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => c.source(),
        };
    }
    None
}

fn in_words(why: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match why {
        C::UnknownIssuer => "it is not signed by an authority this app trusts".into(),
        C::Expired | C::ExpiredContext { .. } => "it has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "it is not valid yet".into(),
        C::NotValidForName | C::NotValidForNameContext { .. } => "it is for another name".into(),
        C::Revoked => "it was revoked".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::PrivateKeyDer;

    use super::*;
    use crate::http::Http;

    /// A private CA and a certificate for `localhost` and 127.0.0.1 signed by it.
    struct Pki {
        ca_pem: String,
        leaf: CertificateDer<'static>,
        leaf_key: PrivateKeyDer<'static>,
    }

    fn pki() -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        Pki {
            ca_pem: ca.pem(),
            leaf: leaf.der().clone(),
            leaf_key: PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
        }
    }

    /// Serve `{}` over TLS with `pki`'s certificate on `localhost`, to every
    /// connection, from a thread; returns the port.
    fn serve(pki: &Pki) -> u16 {
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![pki.leaf.clone()], pki.leaf_key.clone_key())
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut tcp) = stream else { continue };
                let config = config.clone();
                std::thread::spawn(move || {
                    let Ok(conn) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let mut tls = rustls::StreamOwned::new(conn, &mut tcp);
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = tls.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                    );
                    let _ = tls.flush();
                });
            }
        });
        port
    }

    fn get(url: &str) -> Result<u16> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let http = Http::new(None, None)?;
            Ok(http.send(|| http.client().get(url)).await?.status)
        })
    }

    fn denied(r: Result<u16>) -> String {
        match r {
            Err(Error::Denied { reason }) => reason,
            other => panic!("expected a refused certificate, got {other:?}"),
        }
    }

    #[test]
    fn extra_roots_and_pins_hold_per_host() {
        let pki = pki();
        let port = serve(&pki);
        let url = format!("https://localhost:{port}/metadata");

        // The Mozilla roots do not know the private CA: refused at once, not retried.
        let started = std::time::Instant::now();
        let why = denied(get(&url));
        assert!(why.contains("not signed by an authority"), "{why}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));

        // Its root, added for this host, is trusted for this host only.
        set_trust(&url, std::slice::from_ref(&pki.ca_pem), &[]).unwrap();
        assert_eq!(get(&url).unwrap(), 200);
        let other = format!("https://127.0.0.1:{port}/metadata");
        assert!(
            denied(get(&other)).contains("not signed by an authority"),
            "the same server under another name gains nothing"
        );

        // A pin of another key: the chain verifies but is refused.
        let stranger = pki_stranger_pin();
        set_trust(
            &url,
            std::slice::from_ref(&pki.ca_pem),
            std::slice::from_ref(&stranger),
        )
        .unwrap();
        let why = denied(get(&url));
        assert!(why.contains("pinned"), "{why}");

        // The server's own key, beside a backup pin: served.
        let own = spki_pin(&pki.leaf).unwrap();
        assert!(own.starts_with("sha256/"));
        set_trust(&url, std::slice::from_ref(&pki.ca_pem), &[stranger, own]).unwrap();
        assert_eq!(get(&url).unwrap(), 200);
        // A pin does not stand in for trust: without the root, still refused.
        set_trust(&url, &[], &[spki_pin(&pki.leaf).unwrap()]).unwrap();
        assert!(denied(get(&url)).contains("not signed by an authority"));

        // Clearing forgets it.
        set_trust(&url, &[], &[]).unwrap();
        assert!(denied(get(&url)).contains("not signed by an authority"));
    }

    fn pki_stranger_pin() -> String {
        spki_pin(pki().leaf.as_ref()).unwrap()
    }

    #[test]
    fn bad_settings_are_refused_whole() {
        let url = "https://pinned.example/fhir";
        for pin in ["sha256/short", "not base64!", "sha1/AAAA"] {
            assert!(matches!(
                set_trust(url, &[], &[pin.to_string()]),
                Err(Error::InvalidInput { .. })
            ));
        }
        assert!(matches!(
            set_trust(url, &["no certificate here".to_string()], &[]),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(
            set_trust("not a url", &[], &[]),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(spki_pin(b"junk"), Err(Error::InvalidInput { .. })));
        assert!(HOSTS.read().unwrap().get("pinned.example").is_none());
    }
}
