//! The shape of R4's resources: for each resource type this crate writes, its
//! elements, whether each is a list, and the JSON type of its values. [`fit`] holds
//! every converted resource to it:
//!
//! - a lone value where R4 has a list becomes a list of one (STU3 had a single value
//!   for some of these, such as `Observation.interpretation`, and GP Connect's
//!   examples write lists as lone objects), and a list of one where R4 has a single
//!   value becomes that value;
//! - a number written as a string becomes the number;
//! - `null`s and empty lists, which FHIR's JSON does not have, are left out;
//! - an element R4 does not have is dropped with a note (so nothing STU3-only is left
//!   in the output, even where no rule of the family modules knew it);
//! - any other value of the wrong JSON type is an error.
//!
//! The table was taken from R4's definitions, as the `fhir.resources` R4B models
//! carry them (R4B is R4 for these types). It covers a resource's own elements; those
//! of its backbone elements and data types are the family modules' to convert.

use serde_json::{Map, Value};

use crate::draft::Draft;
use crate::error::Result;

/// The JSON type of an element's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A JSON object: a complex type or a backbone element.
    Object,
    /// A JSON string: string, code, uri, date, dateTime and the other text primitives.
    Text,
    /// A JSON boolean.
    Flag,
    /// A JSON number: integer, decimal, positiveInt, unsignedInt.
    Number,
}

/// How an element appears in R4 JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Whether it is a list (cardinality `..*`).
    pub(crate) list: bool,
    /// The JSON type of its values.
    pub(crate) kind: Kind,
}

impl Shape {
    /// A single value of `kind`.
    const fn one(kind: Kind) -> Shape {
        Shape { list: false, kind }
    }

    /// A list of values of `kind`.
    const fn list(kind: Kind) -> Shape {
        Shape { list: true, kind }
    }
}

/// A single object.
const O: Shape = Shape::one(Kind::Object);
/// A list of objects.
const OS: Shape = Shape::list(Kind::Object);
/// A single string.
const T: Shape = Shape::one(Kind::Text);
/// A list of strings.
const TS: Shape = Shape::list(Kind::Text);
/// A single boolean.
const B: Shape = Shape::one(Kind::Flag);
/// A single number.
const N: Shape = Shape::one(Kind::Number);

/// The elements every R4 resource of these types has (Resource and DomainResource).
const COMMON: &[(&str, Shape)] = &[
    ("id", T),
    ("meta", O),
    ("implicitRules", T),
    ("language", T),
    ("text", O),
    ("contained", OS),
    ("extension", OS),
    ("modifierExtension", OS),
];

/// The elements of each R4 resource type this crate writes, besides [`COMMON`].
#[rustfmt::skip]
const ELEMENTS: &[(&str, &[(&str, Shape)])] = &[
    ("AllergyIntolerance", &[
        ("asserter", O), ("category", TS), ("clinicalStatus", O), ("code", O),
        ("criticality", T), ("encounter", O), ("identifier", OS), ("lastOccurrence", T),
        ("note", OS), ("onsetAge", O), ("onsetDateTime", T), ("onsetPeriod", O),
        ("onsetRange", O), ("onsetString", T), ("patient", O), ("reaction", OS),
        ("recordedDate", T), ("recorder", O), ("type", T), ("verificationStatus", O),
    ]),
    ("Condition", &[
        ("abatementAge", O), ("abatementDateTime", T), ("abatementPeriod", O),
        ("abatementRange", O), ("abatementString", T), ("asserter", O), ("bodySite", OS),
        ("category", OS), ("clinicalStatus", O), ("code", O), ("encounter", O),
        ("evidence", OS), ("identifier", OS), ("note", OS), ("onsetAge", O),
        ("onsetDateTime", T), ("onsetPeriod", O), ("onsetRange", O), ("onsetString", T),
        ("recordedDate", T), ("recorder", O), ("severity", O), ("stage", OS), ("subject", O),
        ("verificationStatus", O),
    ]),
    ("DiagnosticReport", &[
        ("basedOn", OS), ("category", OS), ("code", O), ("conclusion", T),
        ("conclusionCode", OS), ("effectiveDateTime", T), ("effectivePeriod", O),
        ("encounter", O), ("identifier", OS), ("imagingStudy", OS), ("issued", T),
        ("media", OS), ("performer", OS), ("presentedForm", OS), ("result", OS),
        ("resultsInterpreter", OS), ("specimen", OS), ("status", T), ("subject", O),
    ]),
    ("Encounter", &[
        ("account", OS), ("appointment", OS), ("basedOn", OS), ("classHistory", OS),
        ("class", O), ("diagnosis", OS), ("episodeOfCare", OS), ("hospitalization", O),
        ("identifier", OS), ("length", O), ("location", OS), ("partOf", O), ("participant", OS),
        ("period", O), ("priority", O), ("reasonCode", OS), ("reasonReference", OS),
        ("serviceProvider", O), ("serviceType", O), ("status", T), ("statusHistory", OS),
        ("subject", O), ("type", OS),
    ]),
    ("Immunization", &[
        ("doseQuantity", O), ("education", OS), ("encounter", O), ("expirationDate", T),
        ("fundingSource", O), ("identifier", OS), ("isSubpotent", B), ("location", O),
        ("lotNumber", T), ("manufacturer", O), ("note", OS), ("occurrenceDateTime", T),
        ("occurrenceString", T), ("patient", O), ("performer", OS), ("primarySource", B),
        ("programEligibility", OS), ("protocolApplied", OS), ("reaction", OS),
        ("reasonCode", OS), ("reasonReference", OS), ("recorded", T), ("reportOrigin", O),
        ("route", O), ("site", O), ("status", T), ("statusReason", O), ("subpotentReason", OS),
        ("vaccineCode", O),
    ]),
    ("List", &[
        ("code", O), ("date", T), ("emptyReason", O), ("encounter", O), ("entry", OS),
        ("identifier", OS), ("mode", T), ("note", OS), ("orderedBy", O), ("source", O),
        ("status", T), ("subject", O), ("title", T),
    ]),
    ("Location", &[
        ("address", O), ("alias", TS), ("availabilityExceptions", T), ("description", T),
        ("endpoint", OS), ("hoursOfOperation", OS), ("identifier", OS),
        ("managingOrganization", O), ("mode", T), ("name", T), ("operationalStatus", O),
        ("partOf", O), ("physicalType", O), ("position", O), ("status", T), ("telecom", OS),
        ("type", OS),
    ]),
    ("Medication", &[
        ("amount", O), ("batch", O), ("code", O), ("form", O), ("identifier", OS),
        ("ingredient", OS), ("manufacturer", O), ("status", T),
    ]),
    ("MedicationRequest", &[
        ("authoredOn", T), ("basedOn", OS), ("category", OS), ("courseOfTherapyType", O),
        ("detectedIssue", OS), ("dispenseRequest", O), ("doNotPerform", B),
        ("dosageInstruction", OS), ("encounter", O), ("eventHistory", OS),
        ("groupIdentifier", O), ("identifier", OS), ("instantiatesCanonical", TS),
        ("instantiatesUri", TS), ("insurance", OS), ("intent", T),
        ("medicationCodeableConcept", O), ("medicationReference", O), ("note", OS),
        ("performer", O), ("performerType", O), ("priorPrescription", O), ("priority", T),
        ("reasonCode", OS), ("reasonReference", OS), ("recorder", O), ("reportedBoolean", B),
        ("reportedReference", O), ("requester", O), ("status", T), ("statusReason", O),
        ("subject", O), ("substitution", O), ("supportingInformation", OS),
    ]),
    ("MedicationStatement", &[
        ("basedOn", OS), ("category", O), ("context", O), ("dateAsserted", T),
        ("derivedFrom", OS), ("dosage", OS), ("effectiveDateTime", T), ("effectivePeriod", O),
        ("identifier", OS), ("informationSource", O), ("medicationCodeableConcept", O),
        ("medicationReference", O), ("note", OS), ("partOf", OS), ("reasonCode", OS),
        ("reasonReference", OS), ("status", T), ("statusReason", OS), ("subject", O),
    ]),
    ("Observation", &[
        ("basedOn", OS), ("bodySite", O), ("category", OS), ("code", O), ("component", OS),
        ("dataAbsentReason", O), ("derivedFrom", OS), ("device", O), ("effectiveDateTime", T),
        ("effectiveInstant", T), ("effectivePeriod", O), ("effectiveTiming", O),
        ("encounter", O), ("focus", OS), ("hasMember", OS), ("identifier", OS),
        ("interpretation", OS), ("issued", T), ("method", O), ("note", OS), ("partOf", OS),
        ("performer", OS), ("referenceRange", OS), ("specimen", O), ("status", T),
        ("subject", O), ("valueBoolean", B), ("valueCodeableConcept", O), ("valueDateTime", T),
        ("valueInteger", N), ("valuePeriod", O), ("valueQuantity", O), ("valueRange", O),
        ("valueRatio", O), ("valueSampledData", O), ("valueString", T), ("valueTime", T),
    ]),
    ("Organization", &[
        ("active", B), ("address", OS), ("alias", TS), ("contact", OS), ("endpoint", OS),
        ("identifier", OS), ("name", T), ("partOf", O), ("telecom", OS), ("type", OS),
    ]),
    ("Patient", &[
        ("active", B), ("address", OS), ("birthDate", T), ("communication", OS),
        ("contact", OS), ("deceasedBoolean", B), ("deceasedDateTime", T), ("gender", T),
        ("generalPractitioner", OS), ("identifier", OS), ("link", OS),
        ("managingOrganization", O), ("maritalStatus", O), ("multipleBirthBoolean", B),
        ("multipleBirthInteger", N), ("name", OS), ("photo", OS), ("telecom", OS),
    ]),
    ("Practitioner", &[
        ("active", B), ("address", OS), ("birthDate", T), ("communication", OS), ("gender", T),
        ("identifier", OS), ("name", OS), ("photo", OS), ("qualification", OS), ("telecom", OS),
    ]),
    ("PractitionerRole", &[
        ("active", B), ("availabilityExceptions", T), ("availableTime", OS), ("code", OS),
        ("endpoint", OS), ("healthcareService", OS), ("identifier", OS), ("location", OS),
        ("notAvailable", OS), ("organization", O), ("period", O), ("practitioner", O),
        ("specialty", OS), ("telecom", OS),
    ]),
    ("ServiceRequest", &[
        ("asNeededBoolean", B), ("asNeededCodeableConcept", O), ("authoredOn", T),
        ("basedOn", OS), ("bodySite", OS), ("category", OS), ("code", O), ("doNotPerform", B),
        ("encounter", O), ("identifier", OS), ("instantiatesCanonical", TS),
        ("instantiatesUri", TS), ("insurance", OS), ("intent", T), ("locationCode", OS),
        ("locationReference", OS), ("note", OS), ("occurrenceDateTime", T),
        ("occurrencePeriod", O), ("occurrenceTiming", O), ("orderDetail", OS),
        ("patientInstruction", T), ("performer", OS), ("performerType", O), ("priority", T),
        ("quantityQuantity", O), ("quantityRange", O), ("quantityRatio", O), ("reasonCode", OS),
        ("reasonReference", OS), ("relevantHistory", OS), ("replaces", OS), ("requester", O),
        ("requisition", O), ("specimen", OS), ("status", T), ("subject", O),
        ("supportingInfo", OS),
    ]),
    ("Specimen", &[
        ("accessionIdentifier", O), ("collection", O), ("condition", OS), ("container", OS),
        ("identifier", OS), ("note", OS), ("parent", OS), ("processing", OS),
        ("receivedTime", T), ("request", OS), ("status", T), ("subject", O), ("type", O),
    ]),
];

/// The shape of element `name` of R4 resource type `target`, if R4 has it.
pub(crate) fn shape(target: &str, name: &str) -> Option<Shape> {
    let own = ELEMENTS
        .iter()
        .find(|(t, _)| *t == target)
        .map_or(&[][..], |(_, e)| *e);
    COMMON
        .iter()
        .chain(own.iter())
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
}

/// Holds the draft's elements to the shape of its R4 type (see the module's notes).
pub(crate) fn fit(draft: &mut Draft) -> Result<()> {
    let names: Vec<String> = draft.elements.keys().cloned().collect();
    for name in names {
        if name == "resourceType" {
            continue;
        }
        if let Some(base) = name.strip_prefix('_') {
            // The extensions of a primitive element go where the element goes.
            if shape(draft.target, base).is_none() {
                draft.elements.remove(&name);
                if !draft.has(base) {
                    let why = format!("not an element of R4 {}; not carried over", draft.target);
                    draft.note(base, why);
                }
            }
            continue;
        }
        let Some(value) = draft.take(&name) else {
            continue;
        };
        match shape(draft.target, &name) {
            None => {
                let why = format!("not an element of R4 {}; not carried over", draft.target);
                draft.note(&name, why);
            }
            Some(shape) => {
                let fitted = fit_value(draft, &name, shape, value)?;
                // FHIR's JSON has no empty lists; an empty one carries nothing.
                if !fitted.as_array().is_some_and(Vec::is_empty) {
                    draft.put(&name, fitted);
                }
            }
        }
    }
    Ok(())
}

/// `value` in the shape `shape` of element `name`, or the error for it.
fn fit_value(draft: &Draft, name: &str, shape: Shape, value: Value) -> Result<Value> {
    let expected = match (shape.list, shape.kind) {
        (false, Kind::Object) => "an object",
        (false, Kind::Text) => "a string",
        (false, Kind::Flag) => "a boolean",
        (false, Kind::Number) => "a number",
        (true, Kind::Object) => "a list of objects",
        (true, Kind::Text) => "a list of strings",
        (true, Kind::Flag) => "a list of booleans",
        (true, Kind::Number) => "a list of numbers",
    };
    if shape.list {
        let items = match value {
            Value::Array(items) => items,
            lone => {
                let kind = draft.source.as_str();
                tracing::debug!(
                    resource_type = kind,
                    element = name,
                    "a lone value as a list of one"
                );
                vec![lone]
            }
        };
        let mut fitted = Vec::with_capacity(items.len());
        for item in items {
            // A list of primitives may hold nulls, to line up with its `_` extensions.
            if item.is_null() && shape.kind != Kind::Object {
                fitted.push(item);
                continue;
            }
            match fit_single(shape.kind, item) {
                Ok(v) => fitted.push(v),
                Err(item) => return Err(draft.mistyped(name, expected, &item)),
            }
        }
        return Ok(Value::Array(fitted));
    }
    let value = match value {
        Value::Array(mut items) if items.len() == 1 => {
            let kind = draft.source.as_str();
            tracing::debug!(
                resource_type = kind,
                element = name,
                "a list of one as its item"
            );
            items.remove(0)
        }
        other => other,
    };
    fit_single(shape.kind, value).map_err(|v| draft.mistyped(name, expected, &v))
}

/// `value` as a single value of `kind`, or back as the error's evidence. A number
/// written as a string is read as the number.
fn fit_single(kind: Kind, value: Value) -> std::result::Result<Value, Value> {
    match (kind, value) {
        (Kind::Object, v @ Value::Object(_))
        | (Kind::Text, v @ Value::String(_))
        | (Kind::Flag, v @ Value::Bool(_))
        | (Kind::Number, v @ Value::Number(_)) => Ok(v),
        (Kind::Number, Value::String(s)) => number(&s).ok_or(Value::String(s)),
        (_, v) => Err(v),
    }
}

/// The JSON number a string spells, if it spells one: GP Connect's examples write
/// quantities as strings (`"value": "28"`), which R4's JSON does not allow.
pub(crate) fn number(text: &str) -> Option<Value> {
    let text = text.trim();
    if let Ok(i) = text.parse::<i64>() {
        return Some(Value::from(i));
    }
    let f = text.parse::<f64>().ok().filter(|f| f.is_finite())?;
    serde_json::Number::from_f64(f).map(Value::Number)
}

/// Repairs a Quantity (or Duration, Age, SimpleQuantity) the way GP Connect's examples
/// break them: a `value` written as a string becomes a number, and a `code` written as
/// a list of one string becomes that string. Anything else is left as it is.
pub(crate) fn repair_quantity(quantity: &mut Map<String, Value>) {
    if let Some(Value::String(s)) = quantity.get("value") {
        if let Some(n) = number(s) {
            quantity.insert("value".into(), n);
        }
    }
    if let Some(Value::Array(codes)) = quantity.get("code") {
        if let [Value::String(code)] = codes.as_slice() {
            let code = code.clone();
            quantity.insert("code".into(), Value::String(code));
        }
    }
}

/// [`repair_quantity`] on element `name` of `parent`, if it is an object.
pub(crate) fn repair_quantity_in(parent: &mut Map<String, Value>, name: &str) {
    if let Some(Value::Object(q)) = parent.get_mut(name) {
        repair_quantity(q);
    }
}

#[cfg(test)]
mod tests {
    use super::{fit, number, repair_quantity, shape, Kind};
    use crate::draft::Draft;
    use serde_json::{json, Value};

    fn draft(target: &'static str, value: Value) -> Draft {
        let Value::Object(map) = value else {
            panic!("not an object")
        };
        Draft::new(target, target, map)
    }

    #[test]
    fn the_table_knows_r4_elements() {
        assert!(shape("Patient", "generalPractitioner").unwrap().list);
        assert_eq!(
            shape("Observation", "valueInteger").unwrap().kind,
            Kind::Number
        );
        assert!(shape("Observation", "comment").is_none());
        assert!(shape("AllergyIntolerance", "assertedDate").is_none());
        assert!(shape("MedicationStatement", "context").is_some());
        assert!(shape("Anything", "id").is_some());
    }

    #[test]
    fn lone_values_become_lists_and_lists_of_one_become_values() {
        let mut d = draft(
            "Patient",
            json!({"resourceType": "Patient", "generalPractitioner": {"reference": "Practitioner/1"},
                   "gender": ["female"], "active": true}),
        );
        fit(&mut d).unwrap();
        assert_eq!(
            d.elements["generalPractitioner"],
            json!([{"reference": "Practitioner/1"}])
        );
        assert_eq!(d.elements["gender"], "female");
        assert!(d.notes.is_empty());

        let mut empty = draft("Patient", json!({"name": [], "telecom": null}));
        fit(&mut empty).unwrap();
        assert!(empty.elements.is_empty());
    }

    #[test]
    fn elements_r4_lacks_are_dropped_with_a_note() {
        let mut d = draft(
            "Patient",
            json!({"resourceType": "Patient", "animal": {}, "_foo": {"id": "1"}, "_gender": {}}),
        );
        fit(&mut d).unwrap();
        assert!(!d.has("animal") && !d.has("_foo"));
        assert!(d.has("_gender"));
        assert_eq!(d.notes.len(), 2, "{:?}", d.notes);
    }

    #[test]
    fn wrong_json_types_are_errors() {
        for bad in [
            json!({"identifier": 5}),
            json!({"identifier": ["x"]}),
            json!({"active": "yes"}),
            json!({"gender": {"code": "female"}}),
            json!({"name": [{"family": "A"}, 3]}),
            json!({"birthDate": ["1950", "1951"]}),
        ] {
            let mut d = draft("Patient", bad.clone());
            assert!(fit(&mut d).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_written_as_strings_are_read() {
        assert_eq!(number("28"), Some(json!(28)));
        assert_eq!(number("2.5"), Some(json!(2.5)));
        assert_eq!(number("NaN"), None);
        assert_eq!(number("twenty"), None);
        let mut d = draft("Patient", json!({"multipleBirthInteger": "2"}));
        fit(&mut d).unwrap();
        assert_eq!(d.elements["multipleBirthInteger"], 2);
    }

    #[test]
    fn quantities_are_repaired() {
        let Value::Object(mut q) = json!({"value": "28", "code": ["d"], "unit": "day"}) else {
            panic!()
        };
        repair_quantity(&mut q);
        assert_eq!(
            Value::Object(q),
            json!({"value": 28, "code": "d", "unit": "day"})
        );
        let Value::Object(mut odd) = json!({"value": "lots", "code": ["d", "h"]}) else {
            panic!()
        };
        repair_quantity(&mut odd);
        assert_eq!(
            Value::Object(odd),
            json!({"value": "lots", "code": ["d", "h"]})
        );
    }
}
