//! Streaming reader for a JSON file holding one resource or a Bundle.
//!
//! The top-level object is walked key by key. Once `resourceType` says `Bundle`, each
//! element of `entry` is taken as raw text and stored before the next is read, so
//! memory stays flat however large the Bundle. A file that turns out to hold one
//! other resource is read whole (it is one resource, so its size is its own).

use std::fmt;
use std::io::BufReader;
use std::path::Path;

use serde::de::{
    self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::reader::{self, FileReader};
use super::{FileFormat, Sink};
use crate::error::{Error, Result};

/// Read buffer for files.
const BUFFER: usize = 64 * 1024;

/// Why the walk stopped early.
enum Stop {
    /// The vault failed, or the import was cancelled.
    Fatal(Error),
    /// The file holds one resource that is not a Bundle.
    NotBundle,
    /// `entry` came before `resourceType`: walk again knowing the type.
    EntryFirst,
}

/// Marker error text for a deliberate stop; the real reason is in [`Stop`].
const STOPPED: &str = "stopped";

struct TopVisitor<'s, 'a, 'o> {
    sink: &'s mut Sink<'o>,
    stop: &'a mut Option<Stop>,
    known_bundle: bool,
}

impl<'de> Visitor<'de> for TopVisitor<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a FHIR resource (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let mut is_bundle = self.known_bundle;
        let mut seen_type = self.known_bundle;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "resourceType" => {
                    let t: String = map.next_value()?;
                    if t != "Bundle" {
                        *self.stop = Some(Stop::NotBundle);
                        return Err(de::Error::custom(STOPPED));
                    }
                    is_bundle = true;
                    seen_type = true;
                }
                "entry" if is_bundle => map.next_value_seed(Entries {
                    sink: &mut *self.sink,
                    stop: &mut *self.stop,
                })?,
                "entry" => {
                    *self.stop = Some(Stop::EntryFirst);
                    return Err(de::Error::custom(STOPPED));
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !seen_type {
            return Err(de::Error::custom(
                "missing resourceType: this is not a FHIR resource",
            ));
        }
        Ok(())
    }
}

/// Finds `resourceType` anywhere in the top-level object, skipping everything else.
struct TypeProbe;

impl<'de> Visitor<'de> for TypeProbe {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a FHIR resource (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Option<String>, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "resourceType" {
                found = Some(map.next_value::<String>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

struct Entries<'s, 'a, 'o> {
    sink: &'s mut Sink<'o>,
    stop: &'a mut Option<Stop>,
}

impl<'de> DeserializeSeed<'de> for Entries<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Entries<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bundle.entry as an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let mut index = 0usize;
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            if let Err(e) = entry(self.sink, index, &raw) {
                *self.stop = Some(Stop::Fatal(e));
                return Err(de::Error::custom(STOPPED));
            }
            index += 1;
        }
        Ok(())
    }
}

/// The parts of a Bundle entry the import uses.
#[derive(Deserialize)]
struct EntryParts<'a> {
    #[serde(rename = "fullUrl", default)]
    full_url: Option<String>,
    #[serde(borrow, default)]
    resource: Option<&'a RawValue>,
}

fn entry(sink: &mut Sink<'_>, index: usize, raw: &RawValue) -> Result<()> {
    let position = format!("entry[{index}]");
    let parts: EntryParts<'_> = match serde_json::from_str(raw.get()) {
        Ok(p) => p,
        Err(e) => {
            sink.reject(&position, format!("not a valid Bundle entry ({e})"));
            return Ok(());
        }
    };
    match parts.resource {
        Some(res) => sink.resource(&position, res.get(), parts.full_url.as_deref()),
        None => {
            sink.skip();
            Ok(())
        }
    }
}

fn json_error(e: serde_json::Error) -> Error {
    Error::invalid(format!("not valid FHIR JSON: {e}"))
}

/// Walk the file once; returns what stopped the walk, if anything.
fn walk(file: FileReader, sink: &mut Sink<'_>, known_bundle: bool) -> Result<Option<Stop>> {
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(BUFFER, file));
    let mut stop = None;
    let walked = (&mut de).deserialize_map(TopVisitor {
        sink,
        stop: &mut stop,
        known_bundle,
    });
    match (stop, walked) {
        (Some(Stop::Fatal(e)), _) => Err(e),
        (Some(other), _) => Ok(Some(other)),
        (None, Err(e)) => Err(json_error(e)),
        (None, Ok(())) => de.end().map(|()| None).map_err(json_error),
    }
}

fn reopen(path: &Path, sink: &Sink<'_>) -> Result<FileReader> {
    Ok(reader::open(
        path,
        sink.counter.clone(),
        sink.not_utf8.clone(),
    )?)
}

/// Read a JSON file holding a Bundle or a single resource.
pub(super) fn read_json(file: FileReader, path: &Path, sink: &mut Sink<'_>) -> Result<FileFormat> {
    match walk(file, sink, false)? {
        None => Ok(FileFormat::Bundle),
        Some(Stop::NotBundle) => read_single(path, sink),
        Some(Stop::EntryFirst) => {
            let reader = BufReader::with_capacity(BUFFER, reopen(path, sink)?);
            let mut de = serde_json::Deserializer::from_reader(reader);
            let rtype = (&mut de).deserialize_map(TypeProbe).map_err(json_error)?;
            if rtype.as_deref() == Some("Bundle") {
                match walk(reopen(path, sink)?, sink, true)? {
                    None => Ok(FileFormat::Bundle),
                    Some(_) => Err(Error::internal("bundle walk stopped twice")),
                }
            } else {
                read_single(path, sink)
            }
        }
        Some(Stop::Fatal(e)) => Err(e),
    }
}

/// Read a file holding one resource that is not a Bundle.
fn read_single(path: &Path, sink: &mut Sink<'_>) -> Result<FileFormat> {
    let reader = BufReader::with_capacity(BUFFER, reopen(path, sink)?);
    let raw: Box<RawValue> = serde_json::from_reader(reader).map_err(json_error)?;
    sink.resource("resource", raw.get(), None)?;
    Ok(FileFormat::Resource)
}
