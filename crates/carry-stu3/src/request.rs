//! Requests: STU3's ProcedureRequest and ReferralRequest, which R4 merged into
//! ServiceRequest, and the elements STU3's requests share: `requester` (a backbone
//! element `{agent, onBehalfOf}` in STU3, a plain Reference in R4) and `definition`.

use serde_json::{json, Value};

use crate::draft::Draft;
use crate::error::Result;

/// STU3's request statuses with their R4 codes (R4 renamed two).
const STATUSES: &[(&str, &str)] = &[
    ("draft", "draft"),
    ("active", "active"),
    ("suspended", "on-hold"),
    ("cancelled", "revoked"),
    ("completed", "completed"),
    ("entered-in-error", "entered-in-error"),
    ("unknown", "unknown"),
];

/// The request intents STU3 and R4 share.
const INTENTS: &[&str] = &[
    "proposal",
    "plan",
    "order",
    "original-order",
    "reflex-order",
    "filler-order",
    "instance-order",
    "option",
];

/// STU3's `requester {agent, onBehalfOf}` becomes R4's `requester`, the agent's
/// Reference. R4 has no element for whom the agent acted; `onBehalfOf` is noted.
pub(crate) fn requester(draft: &mut Draft) -> Result<()> {
    let Some(mut requester) = draft.object("requester")? else {
        return Ok(());
    };
    match requester.remove("agent") {
        Some(Value::Object(agent)) => draft.put("requester", Value::Object(agent)),
        Some(other) => return Err(draft.mistyped("requester.agent", "an object", &other)),
        // Already a Reference (R4's shape): keep it.
        None if ["reference", "identifier", "display"]
            .iter()
            .any(|k| requester.contains_key(*k)) =>
        {
            draft.put("requester", Value::Object(requester));
            return Ok(());
        }
        None => {}
    }
    if let Some(behalf) = requester.remove("onBehalfOf") {
        let whom = behalf
            .get("reference")
            .and_then(Value::as_str)
            .unwrap_or("an organization");
        let why =
            format!("R4 has no element for whom the requester acted ({whom}); not carried over");
        draft.note("requester.onBehalfOf", why);
    }
    if requester.keys().any(|k| k != "id") {
        draft.note(
            "requester",
            "its extensions have no place on R4's plain reference; not carried over",
        );
    }
    Ok(())
}

/// STU3's `definition` refers to a definition by Reference; R4 names one by canonical
/// URL (`instantiatesCanonical`), which a reference does not give, so it is noted.
pub(crate) fn definition(draft: &mut Draft) -> Result<()> {
    for definition in draft.objects("definition")? {
        let what = definition
            .get("reference")
            .and_then(Value::as_str)
            .unwrap_or("a definition");
        let why = format!(
            "R4 names a definition by its canonical URL, not by reference; {what} not carried over"
        );
        draft.note("definition", why);
    }
    Ok(())
}

/// STU3's request `status` in R4's codes.
fn status(draft: &mut Draft) -> Result<()> {
    let Some(code) = draft.text("status")? else {
        return Ok(());
    };
    let Some((_, r4)) = STATUSES.iter().find(|(stu3, _)| *stu3 == code) else {
        return Err(draft.invalid("status: a code STU3 does not define here"));
    };
    draft.put("status", Value::String(r4.to_string()));
    Ok(())
}

/// ProcedureRequest becomes ServiceRequest. Its elements keep their names, except
/// `context` (now `encounter`), `requester`, `definition` and `status` (`suspended`
/// is now `on-hold`, `cancelled` is `revoked`); `performer` becomes a list.
pub(crate) fn procedure_request(draft: &mut Draft) -> Result<()> {
    status(draft)?;
    draft.check_code("intent", INTENTS)?;
    definition(draft)?;
    draft.context_to_encounter()?;
    requester(draft)
}

/// ReferralRequest becomes ServiceRequest: `groupIdentifier` is `requisition`, `type`
/// the `code` (or, without one, the first `serviceRequested`; the other services
/// requested are `orderDetail`), `specialty` the `performerType`, `recipient` the
/// `performer`, `context` the `encounter`, and `description` a `note`.
pub(crate) fn referral_request(draft: &mut Draft) -> Result<()> {
    status(draft)?;
    draft.check_code("intent", INTENTS)?;
    definition(draft)?;
    draft.context_to_encounter()?;
    requester(draft)?;
    draft.rename("groupIdentifier", "requisition");
    draft.rename("specialty", "performerType");
    draft.rename("recipient", "performer");
    let mut services = draft
        .objects("serviceRequested")?
        .into_iter()
        .map(Value::Object);
    match draft.object("type")? {
        Some(kind) => draft.put("code", Value::Object(kind)),
        None => {
            if let Some(first) = services.next() {
                draft.put("code", first);
            }
        }
    }
    draft.append("orderDetail", services.collect())?;
    if let Some(description) = draft.text("description")? {
        let mut note = json!({"text": description});
        if let Some(extensions) = draft.primitive_extensions("description") {
            note["_text"] = extensions;
        }
        draft.append("note", vec![note])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{procedure_request, referral_request, requester};
    use crate::draft::testing::draft_as;
    use crate::draft::Draft;
    use serde_json::{json, Value};

    fn draft(kind: &'static str, value: Value) -> Draft {
        draft_as(kind, "ServiceRequest", value)
    }

    #[test]
    fn requester_agent_becomes_the_reference_and_on_behalf_of_is_noted() {
        let mut d = draft(
            "ProcedureRequest",
            json!({"requester": {"agent": {"reference": "Practitioner/1"},
                                 "onBehalfOf": {"reference": "Organization/2"}}}),
        );
        requester(&mut d).unwrap();
        assert_eq!(
            d.elements["requester"],
            json!({"reference": "Practitioner/1"})
        );
        assert_eq!(d.notes.len(), 1);
        assert!(d.notes[0].contains("Organization/2"), "{:?}", d.notes);

        let mut plain = draft(
            "ProcedureRequest",
            json!({"requester": {"agent": {"display": "Dr A"}}}),
        );
        requester(&mut plain).unwrap();
        assert!(plain.notes.is_empty());

        let mut bad = draft(
            "ProcedureRequest",
            json!({"requester": {"agent": "Practitioner/1"}}),
        );
        assert!(requester(&mut bad).is_err());
        let mut worse = draft("ProcedureRequest", json!({"requester": ["x"]}));
        assert!(requester(&mut worse).is_err());
    }

    #[test]
    fn procedure_request_statuses_are_renamed() {
        for (stu3, r4) in [
            ("suspended", "on-hold"),
            ("cancelled", "revoked"),
            ("active", "active"),
        ] {
            let mut d = draft(
                "ProcedureRequest",
                json!({"status": stu3, "intent": "order"}),
            );
            procedure_request(&mut d).unwrap();
            assert_eq!(d.elements["status"], r4);
        }
        let mut bad = draft("ProcedureRequest", json!({"status": "on-hold"}));
        assert!(procedure_request(&mut bad).is_err());
        let mut wrong = draft(
            "ProcedureRequest",
            json!({"status": "active", "intent": "wish"}),
        );
        assert!(procedure_request(&mut wrong).is_err());
    }

    #[test]
    fn procedure_request_context_and_definition() {
        let mut d = draft(
            "ProcedureRequest",
            json!({"status": "active", "intent": "order", "context": {"reference": "Encounter/1"},
                   "definition": [{"reference": "ActivityDefinition/1"}]}),
        );
        procedure_request(&mut d).unwrap();
        assert_eq!(d.elements["encounter"], json!({"reference": "Encounter/1"}));
        assert!(!d.has("context") && !d.has("definition"));
        assert_eq!(d.notes.len(), 1);
    }

    #[test]
    fn referral_request_elements_move() {
        let mut d = draft(
            "ReferralRequest",
            json!({"status": "active", "intent": "order",
                   "groupIdentifier": {"value": "g"},
                   "specialty": {"text": "Cardiology"},
                   "recipient": [{"reference": "Organization/1"}],
                   "serviceRequested": [{"text": "Echo"}, {"text": "ECG"}],
                   "context": {"reference": "Encounter/1"},
                   "requester": {"agent": {"reference": "Practitioner/1"}},
                   "description": "Please see",
                   "note": [{"text": "existing"}]}),
        );
        referral_request(&mut d).unwrap();
        let e = &d.elements;
        assert_eq!(e["requisition"], json!({"value": "g"}));
        assert_eq!(e["performerType"], json!({"text": "Cardiology"}));
        assert_eq!(e["performer"], json!([{"reference": "Organization/1"}]));
        assert_eq!(e["code"], json!({"text": "Echo"}));
        assert_eq!(e["orderDetail"], json!([{"text": "ECG"}]));
        assert_eq!(e["encounter"], json!({"reference": "Encounter/1"}));
        assert_eq!(e["requester"], json!({"reference": "Practitioner/1"}));
        assert_eq!(
            e["note"],
            json!([{"text": "existing"}, {"text": "Please see"}])
        );
        for gone in [
            "groupIdentifier",
            "specialty",
            "recipient",
            "serviceRequested",
            "context",
            "description",
        ] {
            assert!(!e.contains_key(gone), "{gone}");
        }
        assert!(d.notes.is_empty(), "{:?}", d.notes);
    }

    #[test]
    fn referral_type_is_the_code_and_services_are_order_details() {
        let mut d = draft(
            "ReferralRequest",
            json!({"status": "draft", "intent": "proposal", "type": {"text": "Referral"},
                   "serviceRequested": [{"text": "Echo"}]}),
        );
        referral_request(&mut d).unwrap();
        assert_eq!(d.elements["code"], json!({"text": "Referral"}));
        assert_eq!(d.elements["orderDetail"], json!([{"text": "Echo"}]));
    }
}
