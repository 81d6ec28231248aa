//! The people to contact for the person: those their providers' records name
//! (`Patient.contact`) and those the person adds here, kept as `RelatedPerson`
//! resources of their own (entered by the patient, in the record like a reading, but
//! never sent to a provider). The emergency card and the patient summary list both.

use rusqlite::{Connection, OptionalExtension, Transaction};
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::readings::{uuid_v4, Subject};
use crate::record::patient::ContactParts;
use crate::store;

/// The code system of HL7's personal relationship codes.
const ROLE_CODES: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleCode";
/// The code system of HL7 v2's contact roles (`C`, emergency contact).
const CONTACT_ROLES: &str = "http://terminology.hl7.org/CodeSystem/v2-0131";

/// The longest name, relationship or email accepted.
const MAX_TEXT: usize = 200;

/// A contact the person adds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewContact {
    /// Their name, as the person writes it (required).
    pub name: String,
    /// How they are related ("daughter", "neighbour"), if given.
    pub relationship: Option<String>,
    /// A telephone number: digits, spaces and `+ - ( ) .`.
    pub phone: Option<String>,
    /// An email address.
    pub email: Option<String>,
}

/// A person to contact, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contact {
    /// The item id of a contact the person added (to remove it); `None` for one a
    /// provider's record names.
    pub item: Option<i64>,
    /// Their name, where given.
    pub name: Option<String>,
    /// How they are related, in the record's words.
    pub relationship: Option<String>,
    /// Their telephone number.
    pub phone: Option<String>,
    /// Their email address.
    pub email: Option<String>,
    /// Where the contact comes from: `self` for one the person added, else the
    /// source's name.
    pub source: String,
}

impl Contact {
    /// The contact `v` (a `Patient.contact` or a `RelatedPerson`) from `source`.
    fn of(item: Option<i64>, v: &Value, source: &str) -> Contact {
        let p = ContactParts::of(v);
        Contact {
            item,
            name: p.name,
            relationship: p.relationship,
            phone: p.phone,
            email: p.email,
            source: source.to_string(),
        }
    }

    /// One line: name, relationship in brackets, telephone (else email).
    pub fn line(&self) -> String {
        self.parts().line().unwrap_or_default()
    }

    fn parts(&self) -> ContactParts {
        ContactParts {
            name: self.name.clone(),
            relationship: self.relationship.clone(),
            phone: self.phone.clone(),
            email: self.email.clone(),
        }
    }
}

/// `text` trimmed, or `None` when empty; too long or with control characters is
/// `InvalidInput`.
fn field(text: Option<&str>, what: &str) -> Result<Option<String>> {
    let Some(t) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if t.chars().count() > MAX_TEXT {
        return Err(Error::invalid(format!(
            "a contact's {what} is at most {MAX_TEXT} characters"
        )));
    }
    if t.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "a contact's {what} cannot hold control characters"
        )));
    }
    Ok(Some(t.to_string()))
}

impl NewContact {
    /// The contact with its fields trimmed, or why it cannot be kept.
    fn checked(&self) -> Result<NewContact> {
        let name = field(Some(&self.name), "name")?
            .ok_or_else(|| Error::invalid("a contact needs a name"))?;
        let relationship = field(self.relationship.as_deref(), "relationship")?;
        let phone = field(self.phone.as_deref(), "telephone number")?;
        if let Some(p) = &phone {
            let digits = p.chars().filter(char::is_ascii_digit).count();
            if !(3..=20).contains(&digits)
                || !p
                    .chars()
                    .all(|c| c.is_ascii_digit() || " +-().".contains(c))
            {
                return Err(Error::invalid(format!(
                    "'{p}' is not a telephone number: use 3 to 20 digits, with spaces or + - ( ) ."
                )));
            }
        }
        let email = field(self.email.as_deref(), "email")?;
        if let Some(e) = &email {
            let ok = e.split_once('@').is_some_and(|(user, host)| {
                !user.is_empty()
                    && host.contains('.')
                    && !host.starts_with('.')
                    && !host.ends_with('.')
                    && !host.contains('@')
            }) && !e.chars().any(char::is_whitespace);
            if !ok {
                return Err(Error::invalid(format!("'{e}' is not an email address")));
            }
        }
        Ok(NewContact {
            name,
            relationship,
            phone,
            email,
        })
    }
}

/// HL7's code for a relationship written in plain words, where there is one.
fn role_code(relationship: &str) -> Option<(&'static str, &'static str)> {
    Some(match relationship.to_lowercase().as_str() {
        "mother" | "mum" | "mom" => ("MTH", "mother"),
        "father" | "dad" => ("FTH", "father"),
        "parent" => ("PRN", "parent"),
        "daughter" => ("DAU", "natural daughter"),
        "son" => ("SON", "natural son"),
        "child" => ("CHILD", "child"),
        "wife" => ("WIFE", "wife"),
        "husband" => ("HUSB", "husband"),
        "spouse" => ("SPS", "spouse"),
        "partner" => ("DOMPART", "domestic partner"),
        "sister" => ("SIS", "sister"),
        "brother" => ("BRO", "brother"),
        "sibling" => ("SIB", "sibling"),
        "grandmother" | "grandma" | "nan" => ("GRMTH", "grandmother"),
        "grandfather" | "grandad" | "grandpa" => ("GRFTH", "grandfather"),
        "granddaughter" => ("GRNDDAU", "granddaughter"),
        "grandson" => ("GRNDSON", "grandson"),
        "aunt" => ("AUNT", "aunt"),
        "uncle" => ("UNCLE", "uncle"),
        "niece" => ("NIECE", "niece"),
        "nephew" => ("NEPHEW", "nephew"),
        "cousin" => ("COUSN", "cousin"),
        "friend" => ("FRND", "unrelated friend"),
        "neighbour" | "neighbor" => ("NBOR", "neighbor"),
        "guardian" => ("GUARD", "guardian"),
        _ => return None,
    })
}

/// The `RelatedPerson` for `c`, about the patient `patient` (a reference, else the
/// person's name as display text).
fn related_person(c: &NewContact, patient: &Value) -> Result<Value> {
    let id = uuid_v4()?;
    let mut relationship = Vec::new();
    if let Some(r) = &c.relationship {
        let mut concept = json!({ "text": r });
        if let Some((code, display)) = role_code(r) {
            concept["coding"] = json!([{ "system": ROLE_CODES, "code": code, "display": display }]);
        }
        relationship.push(concept);
    }
    relationship.push(json!({ "coding": [{
        "system": CONTACT_ROLES, "code": "C", "display": "Emergency Contact" }] }));
    let mut telecom = Vec::new();
    if let Some(p) = &c.phone {
        telecom.push(json!({ "system": "phone", "value": p }));
    }
    if let Some(e) = &c.email {
        telecom.push(json!({ "system": "email", "value": e }));
    }
    let mut r = json!({
        "resourceType": "RelatedPerson",
        "id": id,
        "identifier": [{ "system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{id}") }],
        "active": true,
        "patient": patient,
        "relationship": relationship,
        "name": [{ "text": c.name }],
    });
    if !telecom.is_empty() {
        r["telecom"] = Value::Array(telecom);
    }
    Ok(r)
}

/// Keep `contact` in `tx` for the person named `name`. Returns it as listed.
pub fn add_in(
    tx: &Transaction<'_>,
    name: &str,
    self_patient: Option<i64>,
    contact: &NewContact,
    now: i64,
) -> Result<Contact> {
    let c = contact.checked()?;
    let patient = Subject {
        reference: store::self_patient_reference(tx, self_patient)?,
        display: name.to_string(),
    }
    .to_json();
    let resource = related_person(&c, &patient)?;
    let item = store::put_own(tx, &resource, now)?;
    Ok(Contact::of(Some(item), &resource, "self"))
}

/// Remove the contact `item` the person added. `NotFound` for no such item,
/// `InvalidInput` for anything but a contact added here.
pub fn remove_in(tx: &Transaction<'_>, item: i64) -> Result<()> {
    let row: Option<(String, String)> = tx
        .query_row(
            "SELECT s.kind, r.rtype FROM resources r JOIN sources s ON s.id = r.source_id
             WHERE r.id = ?1",
            [item],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match row {
        None => Err(Error::not_found(format!("item {item}"))),
        Some((kind, rtype)) if kind == "self" && rtype == "RelatedPerson" => {
            store::remove(tx, item)
        }
        Some(_) => Err(Error::invalid(format!(
            "item {item} is not a contact you added: a provider's record is theirs to correct"
        ))),
    }
}

/// Every contact: the ones the person added, oldest first, then those the
/// providers' records name, each person once (same name and telephone).
pub fn list(conn: &Connection) -> Result<Vec<Contact>> {
    let mut out: Vec<Contact> = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT r.id, r.json FROM resources r JOIN sources s ON s.id = r.source_id
         WHERE s.kind = 'self' AND r.rtype = 'RelatedPerson' ORDER BY r.id",
    )?;
    let own = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (id, json) in own {
        let Ok(v) = serde_json::from_str::<Value>(&json) else {
            continue;
        };
        if v["active"] == false {
            continue;
        }
        push(&mut out, Some(id), &v, "self");
    }
    let mut stmt = conn.prepare(
        "SELECT r.json, s.name FROM resources r JOIN sources s ON s.id = r.source_id
         WHERE s.kind <> 'self' AND r.rtype = 'Patient' AND r.gone_at IS NULL ORDER BY r.id",
    )?;
    let patients = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (json, source) in patients {
        let Ok(p) = serde_json::from_str::<Value>(&json) else {
            continue;
        };
        for c in p["contact"].as_array().into_iter().flatten() {
            push(&mut out, None, c, &source);
        }
    }
    Ok(out)
}

fn push(out: &mut Vec<Contact>, item: Option<i64>, v: &Value, source: &str) {
    let c = Contact::of(item, v, source);
    if c.name.is_none() && c.phone.is_none() && c.email.is_none() {
        return;
    }
    let key = |c: &Contact| {
        (
            c.name.as_deref().map(str::to_lowercase),
            c.phone
                .as_deref()
                .map(|t| t.chars().filter(char::is_ascii_digit).collect::<String>()),
        )
    };
    if !out.iter().any(|o| key(o) == key(&c)) {
        out.push(c);
    }
}

/// The contacts the person added, as `Patient.contact` entries for a summary's
/// Patient (which FHIR and the IPS read contacts from).
pub fn as_patient_contacts(conn: &Connection) -> Result<Vec<Value>> {
    Ok(list(conn)?
        .into_iter()
        .filter(|c| c.item.is_some())
        .map(|c| {
            let mut v = json!({
                "relationship": [{ "coding": [{
                    "system": CONTACT_ROLES, "code": "C", "display": "Emergency Contact" }] }],
            });
            if let Some(r) = &c.relationship {
                v["relationship"] = json!([{ "text": r }, v["relationship"][0].clone()]);
            }
            if let Some(n) = &c.name {
                v["name"] = json!({ "text": n });
            }
            let telecom: Vec<Value> = c
                .phone
                .iter()
                .map(|p| json!({ "system": "phone", "value": p }))
                .chain(
                    c.email
                        .iter()
                        .map(|e| json!({ "system": "email", "value": e })),
                )
                .collect();
            if !telecom.is_empty() {
                v["telecom"] = Value::Array(telecom);
            }
            v
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(name: &str, rel: Option<&str>, phone: Option<&str>, email: Option<&str>) -> NewContact {
        NewContact {
            name: name.into(),
            relationship: rel.map(str::to_string),
            phone: phone.map(str::to_string),
            email: email.map(str::to_string),
        }
    }

    #[test]
    fn contacts_are_checked_before_they_are_kept() {
        let ok = new(
            " Amy Lee ",
            Some("Daughter"),
            Some("+44 (0)7700 900-123"),
            None,
        );
        assert_eq!(ok.checked().unwrap().name, "Amy Lee");
        for bad in [
            new("  ", None, None, None),
            new("Amy", None, Some("call me"), None),
            new("Amy", None, Some("12"), None),
            new("Amy", None, None, Some("amy@")),
            new("Amy", None, None, Some("amy lee@example.org")),
            new("Amy\u{7}", None, None, None),
            new(&"a".repeat(201), None, None, None),
        ] {
            assert!(
                matches!(bad.checked(), Err(Error::InvalidInput { .. })),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn a_related_person_carries_the_relationship_coded_where_hl7_has_a_code() {
        let c = new(
            "Amy Lee",
            Some("daughter"),
            Some("07700 900123"),
            Some("amy@example.org"),
        );
        let r = related_person(&c, &json!({"reference": "Patient/p1"})).unwrap();
        assert_eq!(r["resourceType"], "RelatedPerson");
        assert_eq!(r["relationship"][0]["coding"][0]["code"], "DAU");
        assert_eq!(r["relationship"][1]["coding"][0]["code"], "C");
        assert_eq!(r["telecom"][1]["value"], "amy@example.org");
        let parts = ContactParts::of(&r);
        assert_eq!(
            parts.line().as_deref(),
            Some("Amy Lee (daughter) 07700 900123")
        );
        let neighbour = related_person(
            &new("Bo", Some("the man next door"), None, None),
            &json!({}),
        )
        .unwrap();
        assert!(neighbour["relationship"][0].get("coding").is_none());
    }
}
