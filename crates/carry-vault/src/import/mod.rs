//! Import of FHIR R4 JSON files: single resources, Bundles of every type, and NDJSON.
//! FHIR STU3 (GP Connect's Access Record) is converted to R4 as it is read, and each
//! converted resource keeps the text it arrived in beside its R4 view; DSTU2 is
//! refused whole.
//!
//! A file is read as a stream, so memory does not grow with its size. One thread reads
//! and parses it and makes each resource ready to store ([`Prepared`]); the calling
//! thread writes them, in file order, through a bounded queue of batches, so at most
//! [`QUEUE`] batches of [`BATCH`] wait between the two. It is written in one
//! transaction: a file that cannot be parsed leaves nothing behind, and a process
//! killed mid-import leaves none of the file. A malformed entry is rejected with its
//! position and reason while the rest of the file is imported; a file of which
//! nothing could be stored leaves nothing either, not even its source. A file that is
//! not UTF-8 text is refused whole, with the offset of its first bad byte.

mod bundle;
mod reader;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use rusqlite::{params, Connection, TransactionBehavior};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::record::EnteredBy;
use crate::store::{self, Prepared, PutOutcome, SourceKind, Writer};
use crate::time::now_unix;
use crate::vault::tracking;
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
    /// Of the resources stored, how many arrived as FHIR STU3 and were converted to
    /// R4 (each keeps the text it arrived in).
    pub converted: u64,
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
            converted: 0,
            rejected: Vec::new(),
        }
    }

    /// Whether nothing of the file could be read.
    pub fn failed(&self) -> bool {
        self.format.is_none()
    }

    fn reject(&mut self, position: String, reason: String) {
        self.rejected.push(Rejection {
            file: self.file.clone(),
            entry: position,
            reason,
        });
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

/// Files from this size (bytes; some hundred resources) import with the change
/// triggers set aside while nothing tracks changes: dropping and creating them again
/// takes about 3 ms, each resource's write is a tenth or more cheaper without them.
const SET_ASIDE_FROM: u64 = 256 * 1024;

/// Items handed over at once: one hand-over per item made the two threads wake each
/// other for every resource.
pub const BATCH: usize = 64;

/// Batches made ready and waiting for the writer, at most.
pub const QUEUE: usize = 4;

/// What the reading thread hands the writing one, in file order.
enum Item {
    /// A resource ready to store, and where it was found.
    Resource {
        position: String,
        prepared: Box<Prepared>,
        /// Converted from STU3.
        converted: bool,
    },
    /// An entry refused before storing: where, and why.
    Reject { position: String, reason: String },
    /// An entry passed over.
    Skip,
}

/// The reading side of one file's import, shared by the Bundle, resource and NDJSON
/// readers: it parses each resource, makes it ready to store and queues it.
pub struct Sink<'o> {
    items: SyncSender<Vec<Item>>,
    /// Items not yet handed over.
    batch: Vec<Item>,
    counter: Counter,
    not_utf8: NotUtf8,
    cancel: Option<&'o AtomicBool>,
    /// Set when the writer stopped taking items: reading stops at the next resource.
    closed: bool,
}

impl Sink<'_> {
    /// Make the resource found at `position` ready and queue it. Invalid resources
    /// become rejections; only content refused whole, cancellation and a writer that
    /// stopped are returned as errors.
    pub fn resource(&mut self, position: &str, raw: &str, full_url: Option<&str>) -> Result<()> {
        if self.closed || self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(Error::Cancelled);
        }
        let parsed: Value = match serde_json::from_str(raw) {
            Ok(v) => v,
            Err(e) => {
                self.reject(position, format!("not valid JSON ({e})"));
                return Ok(());
            }
        };
        // A resource whose content shows STU3 is converted; content of an earlier
        // release is refused whole, never read as R4. Each resource is judged on its
        // own: one stray STU3 element must not send the R4 resources after it through
        // the converter, which would refuse them.
        let earlier = crate::record::release::pre_r4(&parsed);
        if earlier == Some("STU3") || carry_stu3::release_of(&parsed) == carry_stu3::Release::Stu3 {
            return self.convert(position, raw, &parsed, full_url);
        }
        if let Some(release) = earlier {
            return Err(Error::invalid(format!(
                "this is FHIR {release} content ({position}); Carry reads FHIR R4 (and converts STU3) but not {release}, so nothing of the file was imported"
            )));
        }
        self.queue(position, Prepared::new(raw, &parsed, full_url), false)
    }

    /// Convert the STU3 resource `parsed` (from `raw`) to R4 and queue it with its
    /// original text. A type with no conversion is rejected, with why.
    fn convert(
        &mut self,
        position: &str,
        raw: &str,
        parsed: &Value,
        full_url: Option<&str>,
    ) -> Result<()> {
        let prepared = Prepared::from_stu3(raw, parsed, full_url).map(|(p, _)| p);
        self.queue(position, prepared, true)
    }

    /// Queue a resource made ready, or reject it if it could not be.
    fn queue(&mut self, position: &str, prepared: Result<Prepared>, converted: bool) -> Result<()> {
        match prepared {
            Ok(prepared) => self.send(Item::Resource {
                position: position.to_string(),
                prepared: Box::new(prepared),
                converted,
            }),
            Err(Error::InvalidInput { reason }) => self.reject(position, reason),
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Count an entry passed over (not a resource the record keeps).
    pub fn skip(&mut self) {
        self.send(Item::Skip);
    }

    /// Record an entry refused, where it was and why.
    pub fn reject(&mut self, position: &str, reason: String) {
        self.send(Item::Reject {
            position: position.to_string(),
            reason,
        });
    }

    fn send(&mut self, item: Item) {
        self.batch.push(item);
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    /// Hand over the items not yet handed over.
    fn flush(&mut self) {
        if self.batch.is_empty() || self.closed {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        // Fails only once the writer has stopped, and then it has its own error.
        if self.items.send(batch).is_err() {
            self.closed = true;
        }
    }
}

impl Drop for Sink<'_> {
    /// The last items go over when reading ends, however it ends (on an error the
    /// writer's transaction is dropped anyway).
    fn drop(&mut self) {
        self.flush();
    }
}

/// The writing side: store the queued items in order until the reading side is done,
/// counting them in `report`. Returns how many resources it handled, or the first
/// error that stops the import.
fn write_items(
    items: Receiver<Vec<Item>>,
    writer: &mut Writer<'_, '_>,
    report: &mut FileReport,
    progress: &Progress<'_>,
) -> Result<u64> {
    let mut handled = 0u64;
    for item in items.into_iter().flatten() {
        if progress.cancelled() {
            return Err(Error::Cancelled);
        }
        match item {
            Item::Skip => report.skipped += 1,
            Item::Reject { position, reason } => report.reject(position, reason),
            Item::Resource {
                position,
                prepared,
                converted,
            } => {
                match writer.put_prepared(*prepared) {
                    Ok(PutOutcome::Inserted(_)) => report.imported += 1,
                    Ok(PutOutcome::Updated(_)) => report.updated += 1,
                    Ok(PutOutcome::Unchanged(_)) => report.unchanged += 1,
                    Err(Error::InvalidInput { reason }) => {
                        report.reject(position, reason);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
                report.converted += u64::from(converted);
                handled += 1;
                if handled.is_multiple_of(PROGRESS_EVERY) {
                    progress.report(handled);
                }
            }
        }
    }
    Ok(handled)
}

/// Progress reports and cancellation, as the writing side sees them.
struct Progress<'o> {
    options: ImportOptions<'o>,
    counter: Counter,
    bytes_total: u64,
}

impl Progress<'_> {
    fn cancelled(&self) -> bool {
        self.options
            .cancel
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    fn report(&self, resources: u64) {
        if let Some(p) = self.options.progress {
            p(ImportProgress {
                bytes_read: self.counter.get().min(self.bytes_total),
                bytes_total: self.bytes_total,
                resources,
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
    // While nothing tracks changes, the triggers only cost (a statement journal for
    // every resource): set aside for the import, put back before it commits. Not for
    // a small file, where dropping and creating them costs more than they would.
    let aside = if bytes_total >= SET_ASIDE_FROM {
        tracking::set_aside_if_idle(&tx)?
    } else {
        None
    };
    let mut writer =
        Writer::new(&tx, source_id, Some(import_id), EnteredBy::Provider, now).batched();
    let counter = Counter::default();
    let file = reader::open(path, counter.clone(), not_utf8.clone())?;
    let progress = Progress {
        options,
        counter: counter.clone(),
        bytes_total,
    };
    let (sender, items) = sync_channel(QUEUE);
    let mut sink = Sink {
        items: sender,
        batch: Vec::with_capacity(BATCH),
        counter,
        not_utf8: not_utf8.clone(),
        cancel: options.cancel,
        closed: false,
    };
    let (read, written) = std::thread::scope(|scope| {
        let reading = std::thread::Builder::new()
            .name("carry-import-read".into())
            .spawn_scoped(scope, move || match layout {
                Layout::Ndjson => read_ndjson(file, &mut sink).map(|()| FileFormat::Ndjson),
                Layout::Json => bundle::read_json(file, path, &mut sink),
            });
        let reading = match reading {
            Ok(reading) => reading,
            Err(e) => return (Err(e.into()), Ok(0)),
        };
        // Returns when the reading side is done (its queue closes), or at the first
        // error, whose dropped queue stops the reading side at its next resource.
        let written = write_items(items, &mut writer, &mut report, &progress);
        let read = reading
            .join()
            .unwrap_or_else(|_| Err(Error::internal("the import's reading thread failed")));
        (read, written)
    });
    // The writer's error comes first: the reading side then only saw its queue close.
    let outcome = written.and_then(|handled| {
        let format = read?;
        writer.finish()?;
        progress.report(handled);
        Ok(format)
    });
    drop(writer);
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
            if let Some(aside) = aside {
                aside.put_back(&tx)?;
            }
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

fn read_ndjson(file: FileReader, sink: &mut Sink<'_>) -> Result<()> {
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
