//! References inside a summary: every one must resolve inside the Bundle. A reference
//! to a resource the summary includes is pointed at that resource's entry; one to a
//! resource left out (an encounter, a practitioner) keeps only its display text, so
//! nothing in the document points outside it.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// Where each resource of a summary is in its Bundle: the names it was known by
/// (`Type/id`, the full URL it was held under, `urn:uuid:id`), each to its entry's
/// fullUrl.
#[derive(Debug, Default)]
pub(super) struct Targets(HashMap<String, String>);

/// What rewriting the references of a summary did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rewritten {
    /// References pointed at an entry of the Bundle.
    pub resolved: usize,
    /// References to resources left out, kept as display text only.
    pub dropped: usize,
}

impl Targets {
    /// Record that the resource `rtype`/`id`, held under `full_url`, is the entry `url`.
    pub fn add(&mut self, rtype: &str, id: Option<&str>, full_url: Option<&str>, url: &str) {
        if let Some(id) = id.filter(|i| !i.is_empty()) {
            self.0.insert(format!("{rtype}/{id}"), url.to_string());
            self.0.insert(format!("urn:uuid:{id}"), url.to_string());
        }
        if let Some(f) = full_url.filter(|f| !f.is_empty()) {
            self.0.insert(f.to_string(), url.to_string());
        }
    }

    /// The entry a reference names, if the summary includes it.
    pub fn resolve(&self, reference: &str) -> Option<&str> {
        let plain = match reference.find("/_history/") {
            Some(i) => &reference[..i],
            None => reference,
        };
        if let Some(url) = self.0.get(plain) {
            return Some(url);
        }
        // An absolute URL names `Type/id` at its end.
        if plain.contains("://") {
            let mut parts = plain.rsplit('/');
            let (id, rtype) = (parts.next()?, parts.next()?);
            return self.0.get(&format!("{rtype}/{id}")).map(String::as_str);
        }
        None
    }

    /// Point the references in `resource` at the entries they name; turn those to
    /// resources left out into display text. Local references (`#id`, to contained
    /// resources) stay as they are.
    pub fn rewrite(&self, resource: &mut Value) -> Rewritten {
        let mut done = Rewritten::default();
        self.walk(resource, &mut done);
        done
    }

    fn walk(&self, node: &mut Value, done: &mut Rewritten) {
        match node {
            Value::Object(o) => {
                // The narrative is XHTML, not data: nothing in it is a reference.
                if o.contains_key("div") && o.contains_key("status") {
                    return;
                }
                if let Some(Value::String(reference)) = o.get("reference") {
                    let reference = reference.clone();
                    self.one(o, &reference, done);
                }
                for (key, v) in o.iter_mut() {
                    if key != "reference" {
                        self.walk(v, done);
                    }
                }
            }
            Value::Array(a) => {
                for v in a {
                    self.walk(v, done);
                }
            }
            _ => {}
        }
    }

    fn one(&self, o: &mut Map<String, Value>, reference: &str, done: &mut Rewritten) {
        if reference.starts_with('#') {
            return;
        }
        if let Some(url) = self.resolve(reference) {
            o.insert("reference".into(), Value::String(url.to_string()));
            done.resolved += 1;
            return;
        }
        o.remove("reference");
        if !o.contains_key("display") && !o.contains_key("identifier") {
            let rtype = type_of(reference).unwrap_or("a record");
            o.insert(
                "display".into(),
                Value::String(format!("{rtype} (not in this summary)")),
            );
        }
        done.dropped += 1;
    }
}

/// The resource type a reference names: `Type/id`, `…/Type/id`, or `Type?search`.
fn type_of(reference: &str) -> Option<&str> {
    if reference.starts_with("urn:") {
        return None;
    }
    let path = reference.split('?').next()?;
    let mut parts = path.trim_end_matches('/').rsplit('/');
    let last = parts.next()?;
    let candidate = if reference.contains('?') {
        last
    } else {
        parts.next()?
    };
    candidate
        .chars()
        .next()
        .filter(char::is_ascii_uppercase)
        .map(|_| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn targets() -> Targets {
        let mut t = Targets::default();
        t.add(
            "Observation",
            Some("o1"),
            Some("urn:uuid:6f1e"),
            "urn:uuid:new-o1",
        );
        t.add(
            "Medication",
            Some("m1"),
            Some("https://gp.example/fhir/Medication/m1"),
            "urn:uuid:new-m1",
        );
        t
    }

    #[test]
    fn every_form_of_a_reference_to_an_included_resource_resolves() {
        let t = targets();
        for r in [
            "Observation/o1",
            "urn:uuid:6f1e",
            "urn:uuid:o1",
            "https://other.example/fhir/Observation/o1",
            "Observation/o1/_history/3",
        ] {
            assert_eq!(t.resolve(r), Some("urn:uuid:new-o1"), "{r}");
        }
        assert_eq!(
            t.resolve("https://gp.example/fhir/Medication/m1"),
            Some("urn:uuid:new-m1")
        );
        for r in [
            "Observation/o2",
            "urn:uuid:nope",
            "Practitioner?identifier=x|1",
        ] {
            assert_eq!(t.resolve(r), None, "{r}");
        }
    }

    #[test]
    fn references_are_pointed_inside_or_kept_as_display_only() {
        let mut r = json!({
            "resourceType": "DiagnosticReport",
            "text": {"status": "generated", "div": "<div>Observation/o1</div>"},
            "result": [{"reference": "Observation/o1"}, {"reference": "Observation/gone"}],
            "encounter": {"reference": "urn:uuid:enc-9"},
            "performer": [{"reference": "Practitioner?identifier=npi|1", "display": "Dr Lee"}],
            "contained": [{"resourceType": "Medication", "id": "c"}],
            "basedOn": [{"reference": "#c"}],
            "subject": {"reference": "Patient/p", "identifier": {"value": "9"}}
        });
        let done = targets().rewrite(&mut r);
        assert_eq!(
            done,
            Rewritten {
                resolved: 1,
                dropped: 4
            }
        );
        assert_eq!(r["result"][0], json!({"reference": "urn:uuid:new-o1"}));
        assert_eq!(
            r["result"][1],
            json!({"display": "Observation (not in this summary)"})
        );
        assert_eq!(
            r["encounter"],
            json!({"display": "a record (not in this summary)"})
        );
        assert_eq!(r["performer"][0], json!({"display": "Dr Lee"}));
        assert_eq!(r["subject"], json!({"identifier": {"value": "9"}}));
        assert_eq!(r["basedOn"][0], json!({"reference": "#c"}));
        assert_eq!(r["text"]["div"], "<div>Observation/o1</div>");
    }

    #[test]
    fn types_are_read_from_every_form() {
        assert_eq!(type_of("Encounter/e1"), Some("Encounter"));
        assert_eq!(
            type_of("https://x/fhir/Practitioner/p"),
            Some("Practitioner")
        );
        assert_eq!(type_of("Organization?identifier=a|b"), Some("Organization"));
        assert_eq!(type_of("urn:uuid:1234"), None);
    }
}
