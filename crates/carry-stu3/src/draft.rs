//! A resource on its way from STU3 to R4: a copy of its elements, the R4 type it
//! becomes, and the notes on what did not carry over. The family modules move, rename
//! and drop elements through it; each read checks the element's JSON type, so hostile
//! input gives a typed error rather than a panic or a silently wrong R4 element.

use serde_json::{Map, Value};

use crate::error::{json_type, Result, Stu3Error};

/// A resource being converted.
#[derive(Debug)]
pub(crate) struct Draft {
    /// The STU3 resource type it was read as; notes and errors name elements by it.
    pub(crate) source: String,
    /// The R4 resource type it becomes (the same as `source` unless R4 renamed it).
    pub(crate) target: &'static str,
    /// The elements, STU3 at first and R4 once every rule has run.
    pub(crate) elements: Map<String, Value>,
    /// What did not carry over, in plain words.
    pub(crate) notes: Vec<String>,
}

impl Draft {
    /// A draft of `elements`, read as STU3 `source`, to become R4 `target`.
    pub(crate) fn new(source: &str, target: &'static str, elements: Map<String, Value>) -> Draft {
        Draft {
            source: source.to_string(),
            target,
            elements,
            notes: Vec::new(),
        }
    }

    /// The error for this resource, with `reason`.
    pub(crate) fn invalid(&self, reason: impl Into<String>) -> Stu3Error {
        Stu3Error::Invalid {
            resource_type: self.source.clone(),
            reason: reason.into(),
        }
    }

    /// The error for element `name`, which should have been `expected` but is `found`.
    pub(crate) fn mistyped(&self, name: &str, expected: &str, found: &Value) -> Stu3Error {
        self.invalid(format!(
            "{name}: expected {expected}, found {}",
            json_type(found)
        ))
    }

    /// Records that something did not carry over: `element` (a path below the resource
    /// type) and why, in plain words.
    pub(crate) fn note(&mut self, element: &str, why: impl AsRef<str>) {
        self.notes
            .push(format!("{}.{element}: {}", self.source, why.as_ref()));
    }

    /// Whether element `name` is present.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.elements.contains_key(name)
    }

    /// Sets element `name`.
    pub(crate) fn put(&mut self, name: &str, value: Value) {
        self.elements.insert(name.to_string(), value);
    }

    /// Removes element `name` and returns it, whatever its JSON type. A JSON `null`
    /// (which FHIR's JSON never uses for an element) counts as absent.
    pub(crate) fn take(&mut self, name: &str) -> Option<Value> {
        self.elements.remove(name).filter(|v| !v.is_null())
    }

    /// Removes element `name`, which must be a string.
    pub(crate) fn text(&mut self, name: &str) -> Result<Option<String>> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.mistyped(name, "a string", &other)),
        }
    }

    /// Removes element `name`, which must be a boolean.
    pub(crate) fn flag(&mut self, name: &str) -> Result<Option<bool>> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(self.mistyped(name, "a boolean", &other)),
        }
    }

    /// Removes element `name`, which must be an object.
    pub(crate) fn object(&mut self, name: &str) -> Result<Option<Map<String, Value>>> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(other) => Err(self.mistyped(name, "an object", &other)),
        }
    }

    /// Removes element `name`, a list of objects (empty when absent). A lone object
    /// where STU3 has a list is taken as a list of one: GP Connect's published examples
    /// write `basedOn` and `generalPractitioner` that way.
    pub(crate) fn objects(&mut self, name: &str) -> Result<Vec<Map<String, Value>>> {
        let items = match self.take(name) {
            None => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(Value::Object(m)) => vec![Value::Object(m)],
            Some(other) => return Err(self.mistyped(name, "a list of objects", &other)),
        };
        items
            .into_iter()
            .map(|item| match item {
                Value::Object(m) => Ok(m),
                other => Err(self.mistyped(name, "a list of objects", &other)),
            })
            .collect()
    }

    /// Renames element `from` to `to`, with its primitive extensions (`_from`). When
    /// the input already has `to`, the input's `to` wins and `from` is noted as lost.
    pub(crate) fn rename(&mut self, from: &str, to: &str) {
        let Some(value) = self.take(from) else {
            return self.rename_extensions(from, to);
        };
        if self.has(to) {
            self.elements.remove(&format!("_{from}"));
            self.note(
                from,
                format!("the input also has R4's {to}, which was kept instead"),
            );
            return;
        }
        self.put(to, value);
        self.rename_extensions(from, to);
    }

    /// Moves `_from` (the extensions of a primitive element) to `_to`.
    fn rename_extensions(&mut self, from: &str, to: &str) {
        if let Some(extensions) = self.elements.remove(&format!("_{from}")) {
            self.elements.insert(format!("_{to}"), extensions);
        }
    }

    /// Removes `_name`, the extensions of primitive element `name`.
    pub(crate) fn primitive_extensions(&mut self, name: &str) -> Option<Value> {
        self.elements
            .remove(&format!("_{name}"))
            .filter(|v| !v.is_null())
    }

    /// Drops element `name` (and its primitive extensions) with a note saying why, if
    /// it is present.
    pub(crate) fn drop(&mut self, name: &str, why: &str) {
        let had = self.take(name).is_some();
        let had_extensions = self.primitive_extensions(name).is_some();
        if had || had_extensions {
            self.note(name, why);
        }
    }

    /// Appends `items` to list element `name`, creating it if need be.
    pub(crate) fn append(&mut self, name: &str, items: Vec<Value>) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let mut list: Vec<Value> = self.objects(name)?.into_iter().map(Value::Object).collect();
        list.extend(items);
        self.put(name, Value::Array(list));
        Ok(())
    }

    /// Checks that code element `name`, if present, is a string among `codes` (the
    /// codes STU3 defines for it, with a required binding). It stays in place.
    pub(crate) fn check_code(&self, name: &str, codes: &[&str]) -> Result<()> {
        match self.elements.get(name) {
            None | Some(Value::Null) => Ok(()),
            Some(Value::String(code)) if codes.contains(&code.as_str()) => Ok(()),
            Some(Value::String(_)) => {
                Err(self.invalid(format!("{name}: a code STU3 does not define here")))
            }
            Some(other) => Err(self.mistyped(name, "a code (a string)", other)),
        }
    }

    /// STU3's `context` becomes R4's `encounter` (the name R4 gave it on this type).
    /// R4's element refers to an Encounter only, so a reference to an EpisodeOfCare
    /// does not carry over and is noted.
    pub(crate) fn context_to_encounter(&mut self) -> Result<()> {
        let Some(context) = self.object("context")? else {
            return Ok(());
        };
        let episode = context
            .get("reference")
            .and_then(Value::as_str)
            .is_some_and(|r| r.starts_with("EpisodeOfCare/") || r.contains("/EpisodeOfCare/"));
        if episode {
            let why = format!(
                "refers to an EpisodeOfCare; R4's {}.encounter refers to an Encounter only, so it was not carried over",
                self.target
            );
            self.note("context", why);
        } else if self.has("encounter") {
            self.note(
                "context",
                "the input also has R4's encounter, which was kept instead",
            );
        } else {
            self.put("encounter", Value::Object(context));
        }
        Ok(())
    }

    /// The finished R4 elements and the notes.
    pub(crate) fn finish(self) -> (Map<String, Value>, Vec<String>) {
        (self.elements, self.notes)
    }
}

#[cfg(test)]
mod tests {
    use super::Draft;
    use crate::Stu3Error;
    use serde_json::{json, Value};

    fn draft(value: Value) -> Draft {
        let Value::Object(map) = value else {
            panic!("not an object")
        };
        Draft::new("Condition", "Condition", map)
    }

    #[test]
    fn reads_check_json_types() {
        let mut d = draft(json!({"a": 5, "b": "x", "c": [1], "d": true}));
        let err = d.text("a").unwrap_err();
        assert_eq!(
            err,
            Stu3Error::Invalid {
                resource_type: "Condition".into(),
                reason: "a: expected a string, found a number".into()
            }
        );
        assert!(d.flag("b").is_err());
        assert!(d.objects("c").is_err());
        assert!(d.object("d").is_err());
        assert_eq!(d.text("missing").unwrap(), None);
    }

    #[test]
    fn a_lone_object_reads_as_a_list_of_one_and_null_as_absent() {
        let mut d = draft(json!({"basedOn": {"reference": "X/1"}, "note": null}));
        assert_eq!(d.objects("basedOn").unwrap().len(), 1);
        assert!(d.objects("note").unwrap().is_empty());
    }

    #[test]
    fn rename_carries_primitive_extensions_and_keeps_an_existing_target() {
        let mut d = draft(json!({"assertedDate": "2020", "_assertedDate": {"id": "x"}}));
        d.rename("assertedDate", "recordedDate");
        assert_eq!(d.elements["recordedDate"], "2020");
        assert_eq!(d.elements["_recordedDate"], json!({"id": "x"}));
        assert!(d.notes.is_empty());

        let mut both = draft(json!({"assertedDate": "2020", "recordedDate": "2021"}));
        both.rename("assertedDate", "recordedDate");
        assert_eq!(both.elements["recordedDate"], "2021");
        assert!(!both.has("assertedDate"));
        assert_eq!(both.notes.len(), 1);
    }

    #[test]
    fn drop_notes_only_what_was_there() {
        let mut d = draft(json!({"abatementBoolean": true}));
        d.drop("abatementBoolean", "no R4 element");
        d.drop("absent", "no R4 element");
        assert_eq!(d.notes, vec!["Condition.abatementBoolean: no R4 element"]);
    }

    #[test]
    fn check_code_refuses_codes_and_types_stu3_does_not_have() {
        let d = draft(json!({"status": "final", "bad": "nonsense", "num": 3}));
        assert!(d.check_code("status", &["final"]).is_ok());
        assert!(d.check_code("bad", &["final"]).is_err());
        assert!(d.check_code("num", &["final"]).is_err());
        assert!(d.check_code("absent", &["final"]).is_ok());
    }

    #[test]
    fn context_becomes_encounter_unless_it_is_an_episode() {
        let mut d = draft(json!({"context": {"reference": "Encounter/1"}}));
        d.context_to_encounter().unwrap();
        assert_eq!(d.elements["encounter"], json!({"reference": "Encounter/1"}));
        assert!(!d.has("context"));

        let mut e = draft(json!({"context": {"reference": "EpisodeOfCare/1"}}));
        e.context_to_encounter().unwrap();
        assert!(!e.has("encounter") && !e.has("context"));
        assert_eq!(e.notes.len(), 1);

        let mut bad = draft(json!({"context": "Encounter/1"}));
        assert!(bad.context_to_encounter().is_err());
    }
}

/// What the modules' tests share.
#[cfg(test)]
pub(crate) mod testing {
    #![allow(clippy::panic)]
    use super::Draft;
    use serde_json::Value;

    /// A draft of the JSON object `value` as a resource of `kind`.
    pub(crate) fn draft(kind: &'static str, value: Value) -> Draft {
        draft_as(kind, kind, value)
    }

    /// A draft of the JSON object `value`, a `source` resource becoming a `target`.
    pub(crate) fn draft_as(source: &str, target: &'static str, value: Value) -> Draft {
        let Value::Object(map) = value else {
            panic!("not an object")
        };
        Draft::new(source, target, map)
    }
}
