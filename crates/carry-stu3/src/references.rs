//! References to resource types R4 renamed. A ProcedureRequest or ReferralRequest
//! becomes a ServiceRequest with the same id, so every reference to one is rewritten
//! to match, wherever it sits (an element, a list entry, an extension), and the
//! references still resolve among the converted resources.

use serde_json::{Map, Value};

/// STU3 resource types R4 renamed, with their R4 names.
pub(crate) const RENAMED: &[(&str, &str)] = &[
    ("ProcedureRequest", "ServiceRequest"),
    ("ReferralRequest", "ServiceRequest"),
];

/// The R4 name of STU3 resource type `stu3`, if R4 renamed it.
pub(crate) fn renamed(stu3: &str) -> Option<&'static str> {
    RENAMED
        .iter()
        .find(|(from, _)| *from == stu3)
        .map(|(_, to)| *to)
}

/// `reference` with a renamed type rewritten, or `None` when it names none. Relative
/// (`ReferralRequest/1`, `ReferralRequest/1/_history/2`), absolute
/// (`https://example.org/fhir/ReferralRequest/1`) and conditional
/// (`ReferralRequest?identifier=…`) references are rewritten; contained (`#x`) and
/// `urn:` references have no type to rewrite.
pub(crate) fn retargeted(reference: &str) -> Option<String> {
    if reference.starts_with('#') || reference.starts_with("urn:") {
        return None;
    }
    let (path, query) = match reference.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (reference, None),
    };
    let segments: Vec<&str> = path.split('/').collect();
    // The type is the segment before the id; in `…/Type/id/_history/v` it is the
    // third from last.
    let position = match (query, segments.as_slice()) {
        (Some(_), [.., last]) => Some(segments.len() - 1).filter(|_| renamed(last).is_some()),
        (None, [.., t, _id, "_history", _v]) if renamed(t).is_some() => Some(segments.len() - 4),
        (None, [.., t, _id]) if renamed(t).is_some() => Some(segments.len() - 2),
        _ => None,
    }?;
    let mut segments: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
    segments[position] = renamed(&segments[position])?.to_string();
    let path = segments.join("/");
    Some(match query {
        Some(query) => format!("{path}?{query}"),
        None => path,
    })
}

/// Rewrites `object`'s `reference`, if it is a Reference to a renamed type.
pub(crate) fn retarget(object: &mut Map<String, Value>) {
    let Some(Value::String(reference)) = object.get("reference") else {
        return;
    };
    if let Some(to) = retargeted(reference) {
        object.insert("reference".into(), Value::String(to));
    }
}

#[cfg(test)]
mod tests {
    use super::retargeted;

    #[test]
    fn renamed_types_are_rewritten_in_every_form() {
        assert_eq!(
            retargeted("ProcedureRequest/1").as_deref(),
            Some("ServiceRequest/1")
        );
        assert_eq!(
            retargeted("ReferralRequest/a-b").as_deref(),
            Some("ServiceRequest/a-b")
        );
        assert_eq!(
            retargeted("ReferralRequest/1/_history/3").as_deref(),
            Some("ServiceRequest/1/_history/3")
        );
        assert_eq!(
            retargeted("https://example.org/fhir/ProcedureRequest/9").as_deref(),
            Some("https://example.org/fhir/ServiceRequest/9")
        );
        assert_eq!(
            retargeted("ReferralRequest?identifier=x|1").as_deref(),
            Some("ServiceRequest?identifier=x|1")
        );
    }

    #[test]
    fn other_references_are_left_alone() {
        for r in [
            "Patient/1",
            "#ProcedureRequest",
            "urn:uuid:ProcedureRequest/1",
            "ProcedureRequest",
            "Observation/ProcedureRequest",
            "https://example.org/ProcedureRequest/fhir/Patient/1",
        ] {
            assert_eq!(retargeted(r), None, "{r}");
        }
    }
}
