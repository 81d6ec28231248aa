//! Documents: a letter, a scan or a photo the person adds (a PDF or an image), kept
//! as a `DocumentReference` with the file inside it (`content[0].attachment.data`,
//! with its size and SHA-1 hash as FHIR defines them), so it is encrypted with the
//! rest of the record and travels wherever the record goes: backups, exports, and the
//! grants whose scope holds documents (split across envelopes when it is larger than
//! one). Any document in the record opens again as a file: one added here, or one a
//! provider sent with its content inline or in a `Binary` the record holds.

use base64::Engine;
use ring::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY};
use rusqlite::{Connection, OptionalExtension, Transaction};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::readings::{uuid_v4, Subject};
use crate::store;
use crate::time::rfc3339;

/// The largest file kept: 20 MiB (a long scanned letter at phone resolution).
pub const MAX_DOCUMENT_BYTES: usize = 20 << 20;
/// The longest title.
const MAX_TITLE: usize = 200;

/// The kinds of file a document may be, by the bytes they start with.
const KINDS: &[(&str, &str)] = &[
    ("application/pdf", "a PDF"),
    ("image/jpeg", "a JPEG image"),
    ("image/png", "a PNG image"),
    ("image/heic", "a HEIC photo"),
];

/// The content type of `bytes`, from how they start, if it is one kept.
fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.get(4..8) == Some(b"ftyp")
        && matches!(
            bytes.get(8..12),
            Some(b"heic" | b"heix" | b"mif1" | b"msf1")
        )
    {
        Some("image/heic")
    } else {
        None
    }
}

/// A document's file, as it opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentFile {
    /// Its title (the attachment's, else the document's description).
    pub title: String,
    /// Its content type (`application/pdf`, `image/jpeg`…), as the record gives it.
    pub content_type: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
}

impl DocumentFile {
    /// A file name for it: the title's letters and digits, with the type's extension.
    pub fn file_name(&self) -> String {
        let stem: String = self
            .title
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { '-' })
            .collect::<String>()
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let ext = match self.content_type.as_str() {
            "application/pdf" => "pdf",
            "image/jpeg" => "jpg",
            "image/png" => "png",
            "image/heic" => "heic",
            "text/plain" => "txt",
            "text/html" => "html",
            _ => "bin",
        };
        let stem = if stem.is_empty() {
            "document".into()
        } else {
            stem
        };
        format!("{}.{ext}", stem.chars().take(80).collect::<String>())
    }
}

/// Check a document before it is kept: its title, size and kind. Returns the content
/// type (the one given must be the one the bytes are).
pub fn check(bytes: &[u8], title: &str, content_type: Option<&str>) -> Result<&'static str> {
    let title = title.trim();
    if title.is_empty() {
        return Err(Error::invalid("a document needs a title"));
    }
    if title.chars().count() > MAX_TITLE || title.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "a document's title is at most {MAX_TITLE} characters, with no control characters"
        )));
    }
    if bytes.is_empty() {
        return Err(Error::invalid("the file is empty"));
    }
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(Error::invalid(format!(
            "the file is {} MB; a document is at most {} MB",
            bytes.len().div_ceil(1 << 20),
            MAX_DOCUMENT_BYTES >> 20
        )));
    }
    let kinds = KINDS.iter().map(|(_, k)| *k).collect::<Vec<_>>().join(", ");
    let found = sniff(bytes).ok_or_else(|| {
        Error::invalid(format!(
            "the file is not a document Carry keeps: it must be {kinds}"
        ))
    })?;
    if let Some(given) = content_type {
        if !given.eq_ignore_ascii_case(found) {
            return Err(Error::invalid(format!(
                "the file is {found}, not {given} as said"
            )));
        }
    }
    Ok(found)
}

/// The `DocumentReference` holding `bytes`.
fn document(
    bytes: &[u8],
    title: &str,
    content_type: &str,
    patient: &Value,
    author: &str,
    now: i64,
) -> Result<Value> {
    let id = uuid_v4()?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let when = rfc3339(now);
    Ok(json!({
        "resourceType": "DocumentReference",
        "id": id,
        "identifier": [{ "system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{id}") }],
        "status": "current",
        "type": { "text": "Document added by the patient" },
        "description": title.trim(),
        "subject": patient,
        "date": when,
        "author": [{ "display": author }],
        "content": [{ "attachment": {
            "contentType": content_type,
            "data": b64.encode(bytes),
            "size": bytes.len(),
            "hash": b64.encode(digest(&SHA1_FOR_LEGACY_USE_ONLY, bytes)),
            "title": title.trim(),
            "creation": when,
        } }],
    }))
}

/// Keep `bytes` as a document titled `title` in `tx`, for the person named `name`.
/// Returns its item id.
pub fn attach_in(
    tx: &Transaction<'_>,
    name: &str,
    self_patient: Option<i64>,
    bytes: &[u8],
    title: &str,
    content_type: Option<&str>,
    now: i64,
) -> Result<i64> {
    let kind = check(bytes, title, content_type)?;
    let patient = Subject {
        reference: store::self_patient_reference(tx, self_patient)?,
        display: name.to_string(),
    }
    .to_json();
    let resource = document(bytes, title, kind, &patient, name, now)?;
    store::put_own(tx, &resource, now)
}

/// The file of document `id`: its first attachment with content inline, or in a
/// `Binary` the record holds. `NotFound` for no such item; `InvalidInput` for an item
/// that is not a document, one whose content is held elsewhere (a URL), or one whose
/// bytes do not match the size or hash it gives (damaged on its way here).
pub fn file(conn: &Connection, id: i64) -> Result<DocumentFile> {
    let row: Option<(String, String)> = conn
        .query_row(
            "SELECT rtype, json FROM resources WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((rtype, json)) = row else {
        return Err(Error::not_found(format!("item {id}")));
    };
    if rtype != "DocumentReference" {
        return Err(Error::invalid(format!(
            "item {id} is a {rtype}, not a document"
        )));
    }
    let doc: Value = serde_json::from_str(&json)?;
    let attachments: Vec<&Value> = doc["content"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| &c["attachment"])
        .collect();
    let title = |a: &Value| {
        a["title"]
            .as_str()
            .or_else(|| doc["description"].as_str())
            .or_else(|| doc["type"]["text"].as_str())
            .unwrap_or("document")
            .to_string()
    };
    for a in &attachments {
        let data = match a["data"].as_str() {
            Some(d) => Some(d.to_string()),
            None => match a["url"].as_str() {
                Some(url) => held_binary(conn, url)?,
                None => None,
            },
        };
        let Some(data) = data else { continue };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|_| Error::invalid(format!("item {id}'s content is not base64")))?;
        verify(a, &bytes, id)?;
        return Ok(DocumentFile {
            title: title(a),
            content_type: a["contentType"]
                .as_str()
                .unwrap_or("application/octet-stream")
                .to_string(),
            bytes,
        });
    }
    match attachments.iter().find_map(|a| a["url"].as_str()) {
        Some(url) => Err(Error::invalid(format!(
            "item {id}'s content is not in the record: the provider keeps it at {url}"
        ))),
        None => Err(Error::invalid(format!("item {id} has no content"))),
    }
}

/// The base64 content of the `Binary` that `url` names, if the record holds it.
fn held_binary(conn: &Connection, url: &str) -> Result<Option<String>> {
    let rid = url
        .rsplit_once("Binary/")
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or(rest));
    let Some(rid) = rid.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let json: Option<String> = conn
        .query_row(
            "SELECT json FROM resources WHERE rtype = 'Binary' AND (rid = ?1 OR full_url = ?2)
             ORDER BY id LIMIT 1",
            rusqlite::params![rid, url],
            |r| r.get(0),
        )
        .optional()?;
    Ok(json
        .and_then(|j| serde_json::from_str::<Value>(&j).ok())
        .and_then(|b| b["data"].as_str().map(str::to_string)))
}

/// The bytes match the attachment's `size` and `hash` (SHA-1, base64), where given.
fn verify(a: &Value, bytes: &[u8], id: i64) -> Result<()> {
    if let Some(size) = a["size"].as_u64() {
        if size != bytes.len() as u64 {
            return Err(Error::invalid(format!(
                "item {id}'s content is {} bytes, not the {size} its document says",
                bytes.len()
            )));
        }
    }
    if let Some(hash) = a["hash"].as_str() {
        let ours = base64::engine::general_purpose::STANDARD
            .encode(digest(&SHA1_FOR_LEGACY_USE_ONLY, bytes));
        if ours != hash.trim() {
            return Err(Error::invalid(format!(
                "item {id}'s content does not match the hash its document gives: it was damaged before it reached the record"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_documents_of_the_kinds_kept_are_taken() {
        let pdf = b"%PDF-1.7\n...";
        assert_eq!(check(pdf, "Letter", None).unwrap(), "application/pdf");
        assert_eq!(
            check(pdf, "Letter", Some("APPLICATION/PDF")).unwrap(),
            "application/pdf"
        );
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0";
        assert_eq!(check(heic, "Photo", None).unwrap(), "image/heic");
        for (bytes, title, kind) in [
            (&pdf[..], " ", None),
            (&pdf[..], "Letter", Some("image/png")),
            (&b"<html>"[..], "Page", None),
            (&b""[..], "Nothing", None),
            (&pdf[..], "Bell\u{7}", None),
        ] {
            assert!(
                matches!(check(bytes, title, kind), Err(Error::InvalidInput { .. })),
                "{title}"
            );
        }
        let big = [b"%PDF-".as_slice(), &vec![0u8; MAX_DOCUMENT_BYTES]].concat();
        assert!(check(&big, "Big", None).is_err());
    }

    #[test]
    fn file_names_come_from_the_title() {
        let f = |title: &str, t: &str| {
            DocumentFile {
                title: title.into(),
                content_type: t.into(),
                bytes: vec![],
            }
            .file_name()
        };
        assert_eq!(
            f("Clinic letter: 3 May", "application/pdf"),
            "Clinic-letter-3-May.pdf"
        );
        assert_eq!(f("../../etc/passwd", "image/png"), "etc-passwd.png");
        assert_eq!(f("", "text/plain"), "document.txt");
    }
}
