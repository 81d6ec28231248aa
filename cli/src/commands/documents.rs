//! `carry attach` and `carry open-document`: a PDF or an image kept in the record, and
//! any document the record holds written out as a file again.

use std::path::{Path, PathBuf};

use carry_core::{Error, Item, Profile, Result};

use crate::output::{clean, Outcome};

/// The document `carry attach` kept.
#[derive(serde::Serialize)]
#[serde(transparent)]
struct Attached(Item);

impl std::fmt::Display for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "Kept {} as item {}, encrypted in your record. Open it again: carry open-document {} --out FILE",
            clean(&self.0.display),
            self.0.id,
            self.0.id
        )
    }
}

/// `carry attach FILE --title T [--type CONTENT-TYPE]`.
pub fn attach(
    profile: &Profile,
    file: &Path,
    title: Option<String>,
    content_type: Option<String>,
) -> Result<Outcome> {
    let meta = std::fs::metadata(file)
        .map_err(|e| Error::invalid(format!("cannot read {}: {e}", file.display())))?;
    if meta.len() > carry_core::documents::MAX_DOCUMENT_BYTES as u64 {
        return Err(Error::invalid(format!(
            "{} is {} MB; a document is at most {} MB",
            file.display(),
            meta.len().div_ceil(1 << 20),
            carry_core::documents::MAX_DOCUMENT_BYTES >> 20
        )));
    }
    let bytes = std::fs::read(file)
        .map_err(|e| Error::invalid(format!("cannot read {}: {e}", file.display())))?;
    // The file's name, without its extension, when no title is given.
    let title = title.unwrap_or_else(|| {
        file.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let item = profile.attach_document(&bytes, &title, content_type.as_deref())?;
    Ok(Outcome::ok(Attached(item)))
}

/// What `carry open-document` wrote.
#[derive(serde::Serialize)]
struct Written {
    path: PathBuf,
    bytes: usize,
    content_type: String,
    title: String,
}

impl std::fmt::Display for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "Wrote {} ({}, {} bytes) to {} (readable by you only).",
            clean(&self.title),
            self.content_type,
            self.bytes,
            self.path.display()
        )
    }
}

/// `carry open-document ID [--out FILE]`: to FILE, else to a file named from its
/// title in the current folder (never over an existing file).
pub fn open_document(profile: &Profile, id: i64, out: Option<PathBuf>) -> Result<Outcome> {
    let file = profile.document_file(id)?;
    let path = match out {
        Some(p) => p,
        None => {
            let p = PathBuf::from(file.file_name());
            if p.exists() {
                return Err(Error::invalid(format!(
                    "{} exists already; choose a file with --out",
                    p.display()
                )));
            }
            p
        }
    };
    carry_core::private_file::write(&path, &file.bytes)
        .map_err(|e| Error::invalid(format!("cannot write {}: {e}", path.display())))?;
    Ok(Outcome::ok(Written {
        bytes: file.bytes.len(),
        content_type: file.content_type,
        title: file.title,
        path,
    }))
}
