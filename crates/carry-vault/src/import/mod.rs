//! Import of FHIR R4 JSON files: single resources, Bundles of every type, and NDJSON.
//!
//! A file is read as a stream, so memory does not grow with its size, and written in
//! one transaction: a file that cannot be parsed leaves nothing behind, and a process
//! killed mid-import leaves none of the file. A malformed entry is rejected with its
//! position and reason while the rest of the file is imported; a file of which
//! nothing could be stored leaves nothing either, not even its source. A file that is
//! not UTF-8 text is refused whole, with the offset of its first bad byte.

mod bundle;
mod reader;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{params, Connection, TransactionBehavior};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::record::EnteredBy;
use crate::store::{self, PutOutcome, SourceKind, Writer};
use crate::time::now_unix;
use reader::{Counter, FileReader, NotUtf8};

/// One entry of a file that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The file's name.
    pub file: String,
    /// Where in the file: `entry[3]` in a Bundle, `line 7` in NDJSON, or `file` when
    /// the whole file was refused.
    pub entry: String,
    /// Why. Never contains health data.
    pub reason: String,
}

/// The shape of an imported file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// One resource that is not a Bundle.
    Resource,
    /// A Bundle, whose entries were imported.
    Bundle,
    /// Newline-delimited JSON, one resource a line.
    Ndjson,
}

/// What importing one file did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    /// The file's name (without its folder).
    pub file: String,
    /// How the file was read. `None` when it could not be read at all.
    pub format: Option<FileFormat>,
    /// Resources new to the vault.
    pub imported: u64,
    /// Resources already held under the same identity whose content changed.
    pub updated: u64,
    /// Resources already held exactly so.
    pub unchanged: u64,
    /// Bundle entries with no resource (for example DELETE requests).
    pub skipped: u64,
    /// Entries (or the whole file) not imported.
    pub rejected: Vec<Rejection>,
}

impl FileReport {
    fn new(file: String) -> Self {
        FileReport {
            file,
            format: None,
            imported: 0,
            updated: 0,
            unchanged: 0,
            skipped: 0,
            rejected: Vec::new(),
        }
    }

    /// Whether nothing of the file could be read.
    pub fn failed(&self) -> bool {
        self.format.is_none()
    }
}

/// Progress of an import, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportProgress {
    /// Bytes of the file read so far.
    pub bytes_read: u64,
    /// The file's size in bytes.
    pub bytes_total: u64,
    /// Resources handled so far.
    pub resources: u64,
}

/// How to run an import.
#[derive(Default, Clone, Copy)]
pub struct ImportOptions<'a> {
    /// Called every few hundred resources and once at the end.
    pub progress: Option<&'a (dyn Fn(ImportProgress) + Sync)>,
    /// When set, the import stops at the next resource and nothing of the file stays.
    pub cancel: Option<&'a AtomicBool>,
}

/// Resources between two progress reports.
const PROGRESS_EVERY: u64 = 256;

/// The per-file state shared by the Bundle, resource and NDJSON readers.
pub struct Sink<'w, 't, 'c, 'o> {
    writer: &'w mut Writer<'t, 'c>,
    report: &'w mut FileReport,
    counter: Counter,
    not_utf8: NotUtf8,
    bytes_total: u64,
    options: ImportOptions<'o>,
    handled: u64,
}

impl Sink<'_, '_, '_, '_> {
    /// Store one resource found at `position`. Invalid resources become rejections;
    /// only storage failures and cancellation are returned as errors.
    pub fn resource(&mut self, position: &str, raw: &str, full_url: Option<&str>) -> Result<()> {
        if self
            .options
            .cancel
            .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            return Err(Error::Cancelled);
        }
        let parsed: Value = match serde_json::from_str(raw) {
            Ok(v) => v,
            Err(e) => {
                self.reject(position, format!("not valid JSON ({e})"));
                return Ok(());
            }
        };
        // Content of an earlier FHIR release is refused whole, never read as R4.
        if let Some(release) = crate::record::release::pre_r4(&parsed) {
            return Err(Error::invalid(format!(
                "this is FHIR {release} content ({position}); Carry reads FHIR R4 and cannot convert {release} yet, so nothing of the file was imported"
            )));
        }
        match self.writer.put(raw, &parsed, full_url) {
            Ok(PutOutcome::Inserted(_)) => self.report.imported += 1,
            Ok(PutOutcome::Updated(_)) => self.report.updated += 1,
            Ok(PutOutcome::Unchanged(_)) => self.report.unchanged += 1,
            Err(Error::InvalidInput { reason }) => self.reject(position, reason),
            Err(e) => return Err(e),
        }
        self.handled += 1;
        if self.handled.is_multiple_of(PROGRESS_EVERY) {
            self.report_progress();
        }
        Ok(())
    }

    /// Count an entry passed over (not a resource the record keeps).
    pub fn skip(&mut self) {
        self.report.skipped += 1;
    }

    /// Record an entry refused, where it was and why.
    pub fn reject(&mut self, position: &str, reason: String) {
        self.report.rejected.push(Rejection {
            file: self.report.file.clone(),
            entry: position.to_string(),
            reason,
        });
    }

    fn report_progress(&self) {
        if let Some(p) = self.options.progress {
            p(ImportProgress {
                bytes_read: self.counter.get().min(self.bytes_total),
                bytes_total: self.bytes_total,
                resources: self.handled,
            });
        }
    }
}

/// How a file's text is laid out.
enum Layout {
    Json,
    Ndjson,
}

/// NDJSON when the name says so, or when the first line is a complete JSON value with
/// more after it. Bytes that are not UTF-8 are noted in `not_utf8`.
fn sniff(path: &Path, not_utf8: &NotUtf8) -> Result<Layout> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext.eq_ignore_ascii_case("ndjson") || ext.eq_ignore_ascii_case("jsonl") {
        return Ok(Layout::Ndjson);
    }
    let mut r = BufReader::new(reader::open(path, Counter::default(), not_utf8.clone())?);
    let mut first = String::new();
    r.read_line(&mut first)?;
    if first.trim().is_empty() || serde_json::from_str::<serde::de::IgnoredAny>(&first).is_err() {
        return Ok(Layout::Json);
    }
    let mut rest = String::new();
    while r.read_line(&mut rest)? > 0 {
        if !rest.trim().is_empty() {
            return Ok(Layout::Ndjson);
        }
        rest.clear();
    }
    Ok(Layout::Json)
}

/// Import one file into the vault behind `conn`, under the file source named after it.
pub fn import_file(
    conn: &mut Connection,
    path: &Path,
    options: ImportOptions<'_>,
) -> Result<FileReport> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let mut report = FileReport::new(name.clone());
    // Reasons name the file, never its folder: a path can say more than it should.
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::not_found(format!("file {name}")),
        _ => Error::from(e),
    })?;
    if meta.is_dir() {
        return Err(Error::invalid(format!(
            "{name} is a folder; pass the files in it"
        )));
    }
    let bytes_total = meta.len();
    let not_utf8 = NotUtf8::default();
    let layout = match sniff(path, &not_utf8) {
        Ok(layout) => layout,
        Err(e) => return refused(name, e, &not_utf8),
    };
    let now = now_unix();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let source_id = store::ensure_source(&tx, SourceKind::File, &name, now)?;
    tx.execute(
        "INSERT INTO imports (source_id, started_at, finished_at, imported, updated, unchanged, skipped, rejected)
         VALUES (?1, ?2, ?2, 0, 0, 0, 0, 0)",
        params![source_id, now],
    )?;
    let import_id = tx.last_insert_rowid();
    let outcome = {
        let mut writer =
            Writer::new(&tx, source_id, Some(import_id), EnteredBy::Provider, now).batched();
        let counter = Counter::default();
        let file = reader::open(path, counter.clone(), not_utf8.clone())?;
        let mut sink = Sink {
            writer: &mut writer,
            report: &mut report,
            counter,
            not_utf8: not_utf8.clone(),
            bytes_total,
            options,
            handled: 0,
        };
        let result = match layout {
            Layout::Ndjson => read_ndjson(file, &mut sink).map(|()| FileFormat::Ndjson),
            Layout::Json => bundle::read_json(file, path, &mut sink),
        };
        let result = result.and_then(|format| {
            sink.writer.finish()?;
            Ok(format)
        });
        if result.is_ok() {
            sink.report_progress();
        }
        result
    };
    match outcome {
        // Nothing of the file could be stored (its only resource, or every one, was
        // rejected): nothing of it stays, not even its source.
        Ok(format) if report.imported + report.updated + report.unchanged == 0 => {
            drop(tx);
            report.format = Some(format);
            tracing::info!(
                rejected = report.rejected.len(),
                "nothing of the file was stored"
            );
            Ok(report)
        }
        Ok(format) => {
            report.format = Some(format);
            tx.execute(
                "UPDATE imports SET finished_at=?2, imported=?3, updated=?4, unchanged=?5, skipped=?6, rejected=?7 WHERE id=?1",
                params![
                    import_id,
                    now_unix(),
                    report.imported as i64,
                    report.updated as i64,
                    report.unchanged as i64,
                    report.skipped as i64,
                    report.rejected.len() as i64
                ],
            )?;
            store::adopt_self_patient(&tx)?;
            tx.commit()?;
            tracing::info!(
                imported = report.imported,
                updated = report.updated,
                unchanged = report.unchanged,
                rejected = report.rejected.len(),
                "file imported"
            );
            Ok(report)
        }
        Err(e) => {
            drop(tx);
            refused(name, e, &not_utf8)
        }
    }
}

/// The file `name` was refused whole with `e`: nothing of it stays. Input errors
/// (including bytes that are not UTF-8, however the reader met them) become its one
/// rejection; anything else (the vault failed, the import was cancelled) is returned.
fn refused(name: String, e: Error, not_utf8: &NotUtf8) -> Result<FileReport> {
    let reason = match (not_utf8.at(), e) {
        (Some(at), _) => format!(
            "not UTF-8 text: the byte at offset {at} is not part of a UTF-8 character; nothing of the file was imported"
        ),
        (None, Error::InvalidInput { reason }) => reason,
        (None, e) => return Err(e),
    };
    let mut failed = FileReport::new(name.clone());
    failed.rejected.push(Rejection {
        file: name,
        entry: "file".into(),
        reason,
    });
    Ok(failed)
}

fn read_ndjson(file: FileReader, sink: &mut Sink<'_, '_, '_, '_>) -> Result<()> {
    let mut r = BufReader::with_capacity(64 * 1024, file);
    let mut line = String::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let n = match r.read_line(&mut line) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(Error::invalid(format!(
                    "line {}: not UTF-8 text",
                    number + 1
                )))
            }
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Ok(());
        }
        number += 1;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        sink.resource(&format!("line {number}"), text, None)?;
    }
}
