//! The `shlink:/` payload of a SMART Health Link, and its QR code.
//!
//! A link is `shlink:/` followed by base64url of a JSON object: `url` (the manifest,
//! or the file itself with the `U` flag; at most 128 characters), `key` (43
//! base64url characters: 32 bytes), and optionally `exp` (Unix seconds, a number),
//! `flag` (letters among `L`, `P`, `U`, in alphabetical order, never `U` with `P`),
//! `label` (at most 80 characters) and `v` (1). It may sit behind a viewer's address
//! as `https://viewer/…#shlink:/…`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The scheme prefix.
pub const PREFIX: &str = "shlink:/";
/// Longest `url`.
pub const URL_MAX: usize = 128;
/// Longest `label`.
pub const LABEL_MAX: usize = 80;

/// A parsed `shlink:/` payload. Fields serialise in the order the spec's examples use.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// The manifest URL (or, with `U`, the file's).
    pub url: String,
    /// Flags: `L` long-lived, `P` passcode, `U` direct file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
    /// The file key, base64url (43 characters).
    pub key: String,
    /// When it expires (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// A short description for the person scanning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The payload version, 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<u32>,
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payload")
            .field("url", &"…")
            .field("key", &"(redacted)")
            .field("exp", &self.exp)
            .field("flag", &self.flag)
            .finish_non_exhaustive()
    }
}

fn bad(why: impl Into<String>) -> Error {
    Error::invalid(format!("not a valid SMART Health Link: {}", why.into()))
}

/// Flags in the form the spec requires, from any order: alphabetical, no repeats.
pub fn normalise_flags(flags: &str) -> Result<String> {
    let mut v: Vec<char> = flags.chars().collect();
    v.sort_unstable();
    v.dedup();
    if let Some(c) = v.iter().find(|c| !matches!(c, 'L' | 'P' | 'U')) {
        return Err(bad(format!("unknown flag '{c}'")));
    }
    if v.contains(&'U') && v.contains(&'P') {
        return Err(bad(
            "a direct-file link (U) cannot also need a passcode (P)",
        ));
    }
    Ok(v.into_iter().collect())
}

impl Payload {
    /// Check every field the spec constrains.
    pub fn check(&self) -> Result<()> {
        if self.url.len() > URL_MAX {
            return Err(bad(format!("the url is longer than {URL_MAX} characters")));
        }
        let u = url::Url::parse(&self.url).map_err(|_| bad("the url does not parse"))?;
        if !matches!(u.scheme(), "https" | "http") {
            return Err(bad("the url is neither https nor http"));
        }
        if self.key.len() != 43 || self.key_bytes().is_err() {
            return Err(bad("the key is not 43 base64url characters (32 bytes)"));
        }
        if let Some(f) = &self.flag {
            if normalise_flags(f)? != *f {
                return Err(bad("the flags are not in alphabetical order"));
            }
        }
        if self
            .label
            .as_ref()
            .is_some_and(|l| l.chars().count() > LABEL_MAX)
        {
            return Err(bad(format!(
                "the label is longer than {LABEL_MAX} characters"
            )));
        }
        if self.v.is_some_and(|v| v != 1) {
            return Err(bad("an unknown payload version; update the app"));
        }
        Ok(())
    }

    /// The 32-byte file key.
    pub fn key_bytes(&self) -> Result<Zeroizing<Vec<u8>>> {
        let k = Zeroizing::new(
            B64.decode(&self.key)
                .map_err(|_| bad("the key is not base64url"))?,
        );
        if k.len() != 32 {
            return Err(bad("the key is not 32 bytes"));
        }
        Ok(k)
    }

    /// Whether a flag is set.
    pub fn has(&self, flag: char) -> bool {
        self.flag.as_deref().is_some_and(|f| f.contains(flag))
    }

    /// `shlink:/…`.
    pub fn to_link(&self) -> Result<String> {
        self.check()?;
        let json = serde_json::to_string(self)?;
        Ok(format!("{PREFIX}{}", B64.encode(json)))
    }

    /// Parse a link: bare (`shlink:/…`) or behind a viewer (`https://…#shlink:/…`).
    /// Unknown members are ignored; a malformed or unknown-version payload is refused.
    pub fn parse(text: &str) -> Result<Payload> {
        let text = text.trim();
        let body = match text.find(PREFIX) {
            Some(i) if i == 0 || text[..i].ends_with('#') => &text[i + PREFIX.len()..],
            _ => return Err(bad("it holds no shlink:/ payload")),
        };
        let raw = B64
            .decode(body.trim_end_matches('='))
            .map_err(|_| bad("the payload is not base64url"))?;
        let v: Value = serde_json::from_slice(&raw).map_err(|_| bad("the payload is not JSON"))?;
        let obj = v
            .as_object()
            .ok_or_else(|| bad("the payload is not a JSON object"))?;
        let text_field = |k: &str| -> Result<Option<String>> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(bad(format!("{k} is not a string"))),
            }
        };
        let exp = match obj.get("exp") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(
                n.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e11)
                    .ok_or_else(|| bad("exp is not a time in seconds"))? as i64,
            ),
            Some(_) => return Err(bad("exp is not a number")),
        };
        let v = match obj.get("v") {
            None | Some(Value::Null) => None,
            Some(n) => Some(
                n.as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| bad("v is not a whole number"))?,
            ),
        };
        let p = Payload {
            url: text_field("url")?.ok_or_else(|| bad("url is missing"))?,
            key: text_field("key")?.ok_or_else(|| bad("key is missing"))?,
            exp,
            flag: text_field("flag")?.filter(|f| !f.is_empty()),
            label: text_field("label")?,
            v,
        };
        p.check()?;
        Ok(p)
    }
}

pub use crate::qr::{qr, QrMatrix};

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(p: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/fixtures/shl")
            .join(p)
    }

    #[test]
    fn the_spec_examples_parse_and_the_nonconformant_one_is_refused() {
        let spec: Value = serde_json::from_str(
            &std::fs::read_to_string(shared("spec-shl-example-vector.json")).unwrap(),
        )
        .unwrap();
        let want: Payload = serde_json::from_value(spec["shlinkJsonPayload"].clone()).unwrap();
        for form in ["shlinkBare", "shlinkWithViewer"] {
            let p = Payload::parse(spec[form].as_str().unwrap()).unwrap();
            assert_eq!(p, want, "{form}");
        }
        assert_eq!(
            want.to_link().unwrap(),
            spec["shlinkBare"].as_str().unwrap(),
            "our encoding matches the spec's byte for byte"
        );
        let ips: Value =
            serde_json::from_str(&std::fs::read_to_string(shared("ips-shl-details.json")).unwrap())
                .unwrap();
        assert!(Payload::parse(ips["shlinkBare"].as_str().unwrap())
            .unwrap()
            .has('U'));
        let bad = std::fs::read_to_string(shared("spec-shl-payload-1-nonconformant.json")).unwrap();
        let link = format!("{PREFIX}{}", B64.encode(bad.trim()));
        assert!(Payload::parse(&link).is_err());
        let good = std::fs::read_to_string(shared("spec-shl-payload-2.json")).unwrap();
        let link = format!("{PREFIX}{}", B64.encode(good.trim()));
        Payload::parse(&link).unwrap();
    }

    #[test]
    fn fields_are_checked() {
        let ok = Payload {
            url: "https://h.example/shl/m/abc".into(),
            key: B64.encode([3u8; 32]),
            exp: Some(1_800_000_000),
            flag: Some("LP".into()),
            label: None,
            v: Some(1),
        };
        Payload::parse(&ok.to_link().unwrap()).unwrap();
        let with = |f: &dyn Fn(&mut Payload)| {
            let mut p = ok.clone();
            f(&mut p);
            p.to_link()
        };
        assert!(with(&|p| p.flag = Some("PL".into())).is_err());
        assert!(with(&|p| p.flag = Some("PU".into())).is_err());
        assert!(with(&|p| p.flag = Some("X".into())).is_err());
        assert!(with(&|p| p.v = Some(2)).is_err());
        assert!(with(&|p| p.label = Some("x".repeat(81))).is_err());
        assert!(with(&|p| p.url = format!("https://h.example/{}", "a".repeat(120))).is_err());
        assert!(with(&|p| p.key = "short".into()).is_err());
        assert!(Payload::parse("https://x.example/#nothing").is_err());
        assert!(Payload::parse("shlink:/!!!").is_err());
        assert_eq!(normalise_flags("PL").unwrap(), "LP");
        assert!(format!("{ok:?}").contains("redacted"));
    }

    fn viewer_link(host: &str) -> String {
        let p = Payload {
            url: format!("https://{host}/shl/m/{}", B64.encode([9u8; 32])),
            flag: Some("P".into()),
            key: B64.encode([5u8; 32]),
            exp: Some(1_800_000_000),
            label: None,
            v: None,
        };
        format!("https://{host}/view#{}", p.to_link().unwrap())
    }

    #[test]
    fn qr_versions_for_viewer_links_with_exp_and_a_passcode() {
        // DESIGN.md's measurement: a 12-character host gives version 11 at level M.
        let link = viewer_link("carry.nhs.uk");
        let q = qr(&link).unwrap();
        assert!(
            q.version <= 11,
            "version {} for {} characters",
            q.version,
            link.len()
        );
        assert_eq!(q.modules.len(), (q.width * q.width) as usize);
        assert_eq!(q.width, 17 + 4 * u32::from(q.version));
        // Each host character appears twice (viewer and manifest), the second time
        // inside base64: version 11 holds hosts up to 13 characters; a 20-character
        // host needs version 12 (BENCHMARKS.md).
        assert!(qr(&viewer_link("carry.example")).unwrap().version <= 11);
        assert_eq!(
            qr(&viewer_link("carry.nhs-region.org")).unwrap().version,
            12
        );
    }
}
