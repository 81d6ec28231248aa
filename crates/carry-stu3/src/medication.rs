//! Medicines: Medication, MedicationRequest, MedicationStatement, and the Dosage they
//! share (STU3's `dose[x]` and `rate[x]` are R4's `doseAndRate`).

use serde_json::{Map, Value};

use crate::draft::Draft;
use crate::error::Result;
use crate::extensions;
use crate::request;
use crate::shape::repair_quantity_in;

/// MedicationRequest statuses (the same in STU3 and R4).
const REQUEST_STATUSES: &[&str] = &[
    "active",
    "on-hold",
    "cancelled",
    "completed",
    "entered-in-error",
    "stopped",
    "draft",
    "unknown",
];

/// STU3's MedicationRequest intents (all of them R4's too).
const REQUEST_INTENTS: &[&str] = &["proposal", "plan", "order", "instance-order"];

/// STU3's MedicationStatement statuses (all of them R4's too).
const STATEMENT_STATUSES: &[&str] = &[
    "active",
    "completed",
    "entered-in-error",
    "intended",
    "stopped",
    "on-hold",
];

/// R4 statuses that say the medication is or was being taken.
const TAKING: &[&str] = &["active", "completed", "stopped"];

/// Medication: `ingredient.amount` is `ingredient.strength`, and the first
/// `package.batch` is `batch`. R4 has no element for `isBrand`, `isOverTheCounter`,
/// `image` or the package's `container` and `content`: each is noted.
pub(crate) fn medication(draft: &mut Draft) -> Result<()> {
    draft.drop(
        "isBrand",
        "R4 has no element for whether it is a brand; not carried over",
    );
    draft.drop(
        "isOverTheCounter",
        "R4 has no element for whether it is sold over the counter; not carried over",
    );
    if draft.has("image") {
        let count = draft.objects("image")?.len();
        draft.note(
            "image",
            format!("R4 has no element for pictures of a medication; {count} not carried over"),
        );
    }
    if draft.has("ingredient") {
        let mut ingredients = draft.objects("ingredient")?;
        for ingredient in &mut ingredients {
            if let Some(amount) = ingredient.remove("amount") {
                ingredient.insert("strength".into(), amount);
            }
        }
        draft.put(
            "ingredient",
            Value::Array(ingredients.into_iter().map(Value::Object).collect()),
        );
    }
    if let Some(mut package) = draft.object("package")? {
        if package.remove("container").is_some() {
            draft.note(
                "package.container",
                "R4 has no element for the package's container; not carried over",
            );
        }
        if package.remove("content").is_some() {
            draft.note(
                "package.content",
                "R4 has no element for the package's content; not carried over",
            );
        }
        let batches = match package.remove("batch") {
            None => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(lone @ Value::Object(_)) => vec![lone],
            Some(other) => {
                return Err(draft.mistyped("package.batch", "a list of objects", &other))
            }
        };
        let mut batches = batches.into_iter();
        if let Some(first) = batches.next() {
            draft.put("batch", first);
        }
        let more = batches.count();
        if more > 0 {
            draft.note(
                "package.batch",
                format!("R4 has one batch; {more} more not carried over"),
            );
        }
    }
    Ok(())
}

/// MedicationRequest: `context` is `encounter`, `requester.agent` the `requester`,
/// `category` a list, `substitution.allowed` `substitution.allowedBoolean`, and each
/// dosage instruction an R4 Dosage. GP Connect's prescription type becomes
/// `courseOfTherapyType` and its status reason fills `statusReason` (see
/// [`extensions`]); its repeat information stays an extension.
pub(crate) fn medication_request(draft: &mut Draft) -> Result<()> {
    draft.check_code("status", REQUEST_STATUSES)?;
    draft.check_code("intent", REQUEST_INTENTS)?;
    request::definition(draft)?;
    draft.context_to_encounter()?;
    request::requester(draft)?;
    extensions::prescription_type(draft);
    extensions::medication_status_reason(draft, false);
    if let Some(mut substitution) = draft.object("substitution")? {
        if let Some(allowed) = substitution.remove("allowed") {
            if !allowed.is_boolean() {
                return Err(draft.mistyped("substitution.allowed", "a boolean", &allowed));
            }
            substitution.insert("allowedBoolean".into(), allowed);
        }
        draft.put("substitution", Value::Object(substitution));
    }
    if let Some(mut dispense) = draft.object("dispenseRequest")? {
        repair_quantity_in(&mut dispense, "quantity");
        repair_quantity_in(&mut dispense, "expectedSupplyDuration");
        draft.put("dispenseRequest", Value::Object(dispense));
    }
    dosages(draft, "dosageInstruction")
}

/// MedicationStatement: STU3's `taken` has no R4 element. `n` (not taken) becomes R4's
/// status `not-taken`, replacing the status, which is noted; `unk` and `na` are noted
/// and the status kept (GP Connect sends `unk` for every medication, so the record
/// keeps saying whether it is current); `y` is what R4's `active`, `completed` and
/// `stopped` already say, and noted only beside another status. `reasonNotTaken` is
/// `statusReason`. `context` keeps its name (R4 renamed it only on other types).
pub(crate) fn medication_statement(draft: &mut Draft) -> Result<()> {
    draft.check_code("status", STATEMENT_STATUSES)?;
    let status = draft
        .elements
        .get("status")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(taken) = draft.text("taken")? {
        draft.primitive_extensions("taken");
        let status = status.as_deref().unwrap_or("(none)");
        match taken.as_str() {
            "n" if status == "entered-in-error" => draft.note(
                "taken",
                "'n' (not taken): the entry was made in error, so its status stays; not carried over",
            ),
            "n" => {
                draft.put("status", Value::String("not-taken".into()));
                if status != "(none)" {
                    let why = format!("'{status}' replaced by R4's 'not-taken' (STU3 taken 'n'); not carried over");
                    draft.note("status", why);
                }
            }
            "unk" => draft.note(
                "taken",
                format!("'unk' (not known whether it was taken) has no R4 element; status '{status}' kept"),
            ),
            "na" => draft.note(
                "taken",
                format!("'na' (taking it does not apply) has no R4 element; status '{status}' kept"),
            ),
            "y" if TAKING.contains(&status) => {}
            "y" => draft.note(
                "taken",
                format!("'y' (it was taken) has no R4 element beside status '{status}'; not carried over"),
            ),
            _ => return Err(draft.invalid("taken: a code STU3 does not define here")),
        }
    }
    let reasons: Vec<Value> = draft
        .objects("reasonNotTaken")?
        .into_iter()
        .map(Value::Object)
        .collect();
    if !reasons.is_empty() {
        if draft.has("statusReason") {
            draft.note(
                "reasonNotTaken",
                "the input also has R4's statusReason, which was kept instead",
            );
        } else {
            draft.put("statusReason", Value::Array(reasons));
        }
    }
    extensions::medication_status_reason(draft, true);
    dosages(draft, "dosage")
}

/// Converts each Dosage in list element `name`.
fn dosages(draft: &mut Draft, name: &str) -> Result<()> {
    if !draft.has(name) {
        return Ok(());
    }
    let converted = draft
        .objects(name)?
        .into_iter()
        .map(|d| dosage(d).map_err(|reason| draft.invalid(format!("{name}: {reason}"))))
        .collect::<Result<Vec<_>>>()?;
    draft.put(name, Value::Array(converted));
    Ok(())
}

/// One STU3 Dosage as R4's: `dose[x]` and `rate[x]` move into one `doseAndRate`.
fn dosage(mut dosage: Map<String, Value>) -> std::result::Result<Value, String> {
    let mut dose_and_rate = Map::new();
    for name in [
        "doseQuantity",
        "doseRange",
        "rateRatio",
        "rateRange",
        "rateQuantity",
    ] {
        if let Some(value) = dosage.remove(name) {
            if !value.is_object() {
                return Err(format!(
                    "{name}: expected an object, found {}",
                    crate::error::json_type(&value)
                ));
            }
            dose_and_rate.insert(name.into(), value);
        }
    }
    repair_quantity_in(&mut dose_and_rate, "doseQuantity");
    repair_quantity_in(&mut dose_and_rate, "rateQuantity");
    if !dose_and_rate.is_empty() {
        dosage.insert(
            "doseAndRate".into(),
            Value::Array(vec![Value::Object(dose_and_rate)]),
        );
    }
    Ok(Value::Object(dosage))
}

#[cfg(test)]
mod tests {
    use super::{medication, medication_request, medication_statement};
    use crate::draft::testing::draft;
    use serde_json::json;

    #[test]
    fn medication_ingredients_and_package() {
        let mut d = draft(
            "Medication",
            json!({"isBrand": true, "ingredient": [{"itemCodeableConcept": {"text": "x"}, "amount": {"numerator": {"value": 1}}}],
                   "package": {"container": {"text": "box"}, "batch": [{"lotNumber": "A"}, {"lotNumber": "B"}]}}),
        );
        medication(&mut d).unwrap();
        let e = &d.elements;
        assert_eq!(
            e["ingredient"][0]["strength"],
            json!({"numerator": {"value": 1}})
        );
        assert!(e["ingredient"][0].get("amount").is_none());
        assert_eq!(e["batch"], json!({"lotNumber": "A"}));
        assert!(!e.contains_key("package") && !e.contains_key("isBrand"));
        assert_eq!(d.notes.len(), 3, "{:?}", d.notes);
    }

    #[test]
    fn medication_request_requester_context_substitution_dosage() {
        let mut d = draft(
            "MedicationRequest",
            json!({"status": "active", "intent": "order",
                   "requester": {"agent": {"reference": "Practitioner/1"}},
                   "context": {"reference": "Encounter/1"},
                   "substitution": {"allowed": false},
                   "dispenseRequest": {"quantity": {"value": "28"}, "expectedSupplyDuration": {"value": "28", "code": ["d"]}},
                   "dosageInstruction": [{"text": "one daily", "doseQuantity": {"value": "1"}, "rateRatio": {}}]}),
        );
        medication_request(&mut d).unwrap();
        let e = &d.elements;
        assert_eq!(e["requester"], json!({"reference": "Practitioner/1"}));
        assert_eq!(e["encounter"], json!({"reference": "Encounter/1"}));
        assert_eq!(e["substitution"], json!({"allowedBoolean": false}));
        assert_eq!(e["dispenseRequest"]["quantity"]["value"], 28);
        assert_eq!(e["dispenseRequest"]["expectedSupplyDuration"]["code"], "d");
        assert_eq!(
            e["dosageInstruction"][0],
            json!({"text": "one daily", "doseAndRate": [{"doseQuantity": {"value": 1}, "rateRatio": {}}]})
        );
        assert!(d.notes.is_empty(), "{:?}", d.notes);
    }

    #[test]
    fn medication_request_refuses_bad_input() {
        for bad in [
            json!({"status": "done"}),
            json!({"status": "active", "intent": "original-order"}),
            json!({"substitution": {"allowed": "yes"}}),
            json!({"dosageInstruction": [{"doseQuantity": 1}]}),
            json!({"dosageInstruction": "one daily"}),
            json!({"requester": "Dr A"}),
        ] {
            let mut d = draft("MedicationRequest", bad.clone());
            assert!(medication_request(&mut d).is_err(), "{bad}");
        }
    }

    #[test]
    fn taken_and_status() {
        let cases = [
            ("active", "unk", "active", 1),
            ("completed", "n", "not-taken", 1),
            ("active", "y", "active", 0),
            ("intended", "y", "intended", 1),
            ("entered-in-error", "n", "entered-in-error", 1),
            ("active", "na", "active", 1),
        ];
        for (status, taken, r4, notes) in cases {
            let mut d = draft(
                "MedicationStatement",
                json!({"status": status, "taken": taken}),
            );
            medication_statement(&mut d).unwrap();
            assert_eq!(d.elements["status"], r4, "{status} {taken}");
            assert!(!d.has("taken"));
            assert_eq!(d.notes.len(), notes, "{status} {taken}: {:?}", d.notes);
        }
        let mut bad = draft(
            "MedicationStatement",
            json!({"status": "active", "taken": true}),
        );
        assert!(medication_statement(&mut bad).is_err());
        let mut odd = draft(
            "MedicationStatement",
            json!({"status": "active", "taken": "maybe"}),
        );
        assert!(medication_statement(&mut odd).is_err());
    }

    #[test]
    fn reason_not_taken_is_status_reason_and_context_stays() {
        let mut d = draft(
            "MedicationStatement",
            json!({"status": "active", "taken": "n", "reasonNotTaken": [{"text": "side effects"}],
                   "context": {"reference": "Encounter/1"}}),
        );
        medication_statement(&mut d).unwrap();
        assert_eq!(
            d.elements["statusReason"],
            json!([{"text": "side effects"}])
        );
        assert_eq!(d.elements["context"], json!({"reference": "Encounter/1"}));
        assert!(!d.has("reasonNotTaken"));
    }
}
