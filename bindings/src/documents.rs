//! Documents: a PDF or an image kept in the record, and any document it holds opened
//! again as a file.

use crate::error::Result;
use crate::profile::{blocking, Profile};
use crate::types::TimelineItem;

/// A document's file.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DocumentFile {
    /// Its title.
    pub title: String,
    /// Its content type (`application/pdf`, `image/jpeg`…), as the record gives it.
    pub content_type: String,
    /// A file name for it, from the title, with the type's extension.
    pub file_name: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
}

#[uniffi::export(async_runtime = "tokio")]
impl Profile {
    /// Keep a PDF or an image (JPEG, PNG, HEIC; at most 20 MB) as a document titled
    /// `title`, inside a `DocumentReference` in the record: encrypted with it, backed
    /// up with it, and shared with grants that hold documents. `content_type`, when
    /// given, must be what the bytes are. Returns its timeline item. `InvalidInput`
    /// for an empty, too large or unknown file, or no title.
    pub async fn attach_document(
        &self,
        bytes: Vec<u8>,
        title: String,
        content_type: Option<String>,
    ) -> Result<TimelineItem> {
        let core = self.core.clone();
        let item =
            blocking(move || core.attach_document(&bytes, &title, content_type.as_deref())).await?;
        Ok(item.into())
    }

    /// The file of the document `id`: one added here, or a provider's whose content
    /// the record holds (inline, or in a `Binary` it holds). `InvalidInput` for an
    /// item that is not a document, one whose content the provider keeps elsewhere
    /// (the message names where), or one damaged before it arrived.
    pub async fn document_file(&self, id: i64) -> Result<DocumentFile> {
        let core = self.core.clone();
        let f = blocking(move || core.document_file(id)).await?;
        Ok(DocumentFile {
            file_name: f.file_name(),
            title: f.title,
            content_type: f.content_type,
            bytes: f.bytes,
        })
    }
}
