//! The person's preferences: their research and planning opt-outs, how long a grant
//! lasts unless they say otherwise, when the app locks, and what the emergency card
//! shows.
//!
//! Each preference is one row of the vault's `prefs` table (key, JSON value, when it
//! changed, and a Lamport counter), so preferences travel with the profile: in its
//! backups, and between the person's devices, whose sync is to merge them key by key
//! by (lamport, then value).
//!
//! Recording an opt-out here does not by itself register it with the NHS. The
//! national data opt-out is registered at <https://www.nhs.uk/your-nhs-data-matters/>
//! ([`NATIONAL_OPT_OUT_URL`]); a type 1 opt-out is recorded by the person's GP
//! practice, on request. Carry keeps the person's own record of the choice and its
//! date, and can export it as FHIR `Consent` resources ([`research_consents`]).

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::audit::{self, AuditEvent};
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::time::{now_unix, rfc3339};

/// Where a person registers (or changes) the national data opt-out in England.
pub const NATIONAL_OPT_OUT_URL: &str = "https://www.nhs.uk/your-nhs-data-matters/";
/// The default lock timeout: five minutes.
pub const DEFAULT_LOCK_TIMEOUT_S: u32 = 300;
/// The longest lock timeout: an hour.
pub const MAX_LOCK_TIMEOUT_S: u32 = 3600;
/// The default length of a new grant, in days.
pub const DEFAULT_GRANT_DAYS: u32 = 90;
/// The longest a grant may run, in days (the bound every grant has).
pub const MAX_GRANT_DAYS: u32 = 3 * 366;

const NATIONAL: &str = "national_opt_out";
const TYPE1: &str = "type1_opt_out";
const GRANT_DAYS: &str = "default_grant_days";
const LOCK_TIMEOUT: &str = "lock_timeout_s";
const CARD: &str = "emergency_card";
const APPROVE: &str = "approve_contributions";

/// A research and planning opt-out as the person recorded it. An opt-out turned off
/// is kept too, with its date: the choice and when it was made both matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptOut {
    /// Whether the person has opted out.
    pub opted_out: bool,
    /// When they recorded this choice in Carry (Unix seconds).
    pub recorded_at: i64,
}

/// What the emergency card's summary holds. Allergies, medications and problems are
/// the International Patient Summary's required sections: one left out still
/// appears, empty, marked as withheld (`emptyReason` `withheld`), so a clinician
/// knows it was left out rather than that there is nothing to list. Everything is
/// included by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmergencyCardContents {
    /// Current allergies and intolerances.
    pub allergies: bool,
    /// Current medicines.
    pub medications: bool,
    /// Current problems (conditions).
    pub problems: bool,
    /// The latest reading of each vital sign.
    pub vital_signs: bool,
    /// The latest result of each kind, from the year before the newest. A card saved
    /// before results could be chosen leaves them out until the person adds them.
    #[serde(default)]
    pub results: bool,
    /// The emergency contacts held on the person's Patient record.
    pub contacts: bool,
}

impl Default for EmergencyCardContents {
    fn default() -> Self {
        EmergencyCardContents {
            allergies: true,
            medications: true,
            problems: true,
            vital_signs: true,
            results: true,
            contacts: true,
        }
    }
}

impl EmergencyCardContents {
    /// The ids of the parts, in the order lists show them.
    pub const PARTS: [&'static str; 6] = [
        "allergies",
        "medications",
        "problems",
        "vital-signs",
        "results",
        "contacts",
    ];

    /// The contents that include exactly the parts named in `list` (comma-separated
    /// ids from [`EmergencyCardContents::PARTS`]; `none` or an empty list for none).
    pub fn parse_list(list: &str) -> Result<EmergencyCardContents> {
        let mut c = EmergencyCardContents {
            allergies: false,
            medications: false,
            problems: false,
            vital_signs: false,
            results: false,
            contacts: false,
        };
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "allergies" => c.allergies = true,
                "medications" => c.medications = true,
                "problems" => c.problems = true,
                "vital-signs" => c.vital_signs = true,
                "results" => c.results = true,
                "contacts" => c.contacts = true,
                "none" => {}
                other => {
                    return Err(Error::invalid(format!(
                        "unknown emergency card part '{other}'; use {} (or none)",
                        Self::PARTS.join(", ")
                    )))
                }
            }
        }
        Ok(c)
    }

    /// The ids of the parts included, in [`EmergencyCardContents::PARTS`] order.
    pub fn included(&self) -> Vec<&'static str> {
        let on = [
            self.allergies,
            self.medications,
            self.problems,
            self.vital_signs,
            self.results,
            self.contacts,
        ];
        Self::PARTS
            .iter()
            .zip(on)
            .filter(|(_, on)| *on)
            .map(|(p, _)| *p)
            .collect()
    }
}

/// The person's preferences, with the defaults filled in for any never set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preferences {
    /// The national data opt-out (England), as recorded in Carry; `None` if never set.
    pub national_opt_out: Option<OptOut>,
    /// The type 1 opt-out held at the GP practice, as recorded in Carry; `None` if
    /// never set.
    pub type1_opt_out: Option<OptOut>,
    /// How long a new grant lasts when no length is given, in days (default 90, from
    /// 1 to [`MAX_GRANT_DAYS`]).
    pub default_grant_days: u32,
    /// Seconds in the background before the app locks the profile (default 300, at
    /// most 3600); 0 locks as soon as the app leaves the foreground. The core stores
    /// it; the app enforces it.
    pub lock_timeout_s: u32,
    /// What the emergency card shows.
    pub emergency_card: EmergencyCardContents,
    /// Whether carers' entries wait for the person's approval before they reach the
    /// record or any provider (default: no; entries inside a grant apply at once).
    pub approve_contributions: bool,
}

impl Default for Preferences {
    fn default() -> Self {
        Preferences {
            national_opt_out: None,
            type1_opt_out: None,
            default_grant_days: DEFAULT_GRANT_DAYS,
            lock_timeout_s: DEFAULT_LOCK_TIMEOUT_S,
            emergency_card: EmergencyCardContents::default(),
            approve_contributions: false,
        }
    }
}

/// A change to the preferences: each field left `None` stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefsChange {
    /// Opt out of (true) or back into (false) the national data opt-out, as of now.
    pub national_opt_out: Option<bool>,
    /// Opt out of (true) or back into (false) the type 1 opt-out, as of now.
    pub type1_opt_out: Option<bool>,
    /// The default grant length, 1 to [`MAX_GRANT_DAYS`] days.
    pub default_grant_days: Option<u32>,
    /// The lock timeout, 0 to [`MAX_LOCK_TIMEOUT_S`] seconds.
    pub lock_timeout_s: Option<u32>,
    /// What the emergency card shows.
    pub emergency_card: Option<EmergencyCardContents>,
    /// Whether carers' entries wait for approval.
    pub approve_contributions: Option<bool>,
}

/// The stored value of `key`, or `None` when unset or unreadable (a value written
/// by a newer build, say). Unreadable values fall back to the default.
fn stored<T: DeserializeOwned>(conn: &Connection, key: &str) -> Result<Option<T>> {
    let text: Option<String> = conn
        .query_row("SELECT value FROM prefs WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(text.and_then(|t| match serde_json::from_str(&t) {
        Ok(v) => Some(v),
        Err(_) => {
            tracing::warn!(key, "a stored preference is unreadable; using its default");
            None
        }
    }))
}

/// The preferences held in the vault `conn` opens.
pub fn load(conn: &Connection) -> Result<Preferences> {
    let d = Preferences::default();
    Ok(Preferences {
        national_opt_out: stored(conn, NATIONAL)?,
        type1_opt_out: stored(conn, TYPE1)?,
        default_grant_days: stored(conn, GRANT_DAYS)?
            .filter(|n| (1..=MAX_GRANT_DAYS).contains(n))
            .unwrap_or(d.default_grant_days),
        lock_timeout_s: stored(conn, LOCK_TIMEOUT)?
            .filter(|n| *n <= MAX_LOCK_TIMEOUT_S)
            .unwrap_or(d.lock_timeout_s),
        emergency_card: stored(conn, CARD)?.unwrap_or(d.emergency_card),
        approve_contributions: stored(conn, APPROVE)?.unwrap_or(d.approve_contributions),
    })
}

fn validate(change: &PrefsChange) -> Result<()> {
    if let Some(days) = change.default_grant_days {
        if !(1..=MAX_GRANT_DAYS).contains(&days) {
            return Err(Error::invalid(format!(
                "the default grant length is 1 to {MAX_GRANT_DAYS} days, not {days}"
            )));
        }
    }
    if let Some(s) = change.lock_timeout_s {
        if s > MAX_LOCK_TIMEOUT_S {
            return Err(Error::invalid(format!(
                "the lock timeout is 0 to {MAX_LOCK_TIMEOUT_S} seconds (0 locks as soon as \
                 the app leaves the foreground), not {s}"
            )));
        }
    }
    Ok(())
}

fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::internal(e.to_string()))
}

/// The person's preferences, with defaults for any never set.
pub fn get(profile: &Profile) -> Result<Preferences> {
    profile.vault().read(load)
}

/// Change the preferences. Values are checked first (`InvalidInput` names the
/// range); then every key that really changes is written in one transaction, with
/// one audit entry naming the keys (never their values) and the next Lamport count.
/// Setting an opt-out to what it already is keeps its original date. Returns the
/// preferences as they now stand.
pub fn set(profile: &Profile, change: &PrefsChange) -> Result<Preferences> {
    validate(change)?;
    profile.vault().write(|conn| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = load(&tx)?;
        let now = now_unix();
        let mut writes: Vec<(&str, String)> = Vec::new();
        let opt_out = |old: Option<OptOut>, new: Option<bool>| -> Option<OptOut> {
            match (old, new) {
                (_, None) => None,
                (Some(o), Some(n)) if o.opted_out == n => None,
                (_, Some(n)) => Some(OptOut {
                    opted_out: n,
                    recorded_at: now,
                }),
            }
        };
        if let Some(o) = opt_out(current.national_opt_out, change.national_opt_out) {
            writes.push((NATIONAL, to_json(&o)?));
        }
        if let Some(o) = opt_out(current.type1_opt_out, change.type1_opt_out) {
            writes.push((TYPE1, to_json(&o)?));
        }
        if let Some(d) = change
            .default_grant_days
            .filter(|d| *d != current.default_grant_days)
        {
            writes.push((GRANT_DAYS, to_json(&d)?));
        }
        if let Some(s) = change
            .lock_timeout_s
            .filter(|s| *s != current.lock_timeout_s)
        {
            writes.push((LOCK_TIMEOUT, to_json(&s)?));
        }
        if let Some(c) = change
            .emergency_card
            .filter(|c| *c != current.emergency_card)
        {
            writes.push((CARD, to_json(&c)?));
        }
        if let Some(a) = change
            .approve_contributions
            .filter(|a| *a != current.approve_contributions)
        {
            writes.push((APPROVE, to_json(&a)?));
        }
        if writes.is_empty() {
            return Ok(current);
        }
        let lamport: i64 =
            tx.query_row("SELECT coalesce(max(lamport), 0) + 1 FROM prefs", [], |r| {
                r.get(0)
            })?;
        for (key, value) in &writes {
            tx.execute(
                "INSERT INTO prefs (key, value, updated_at, lamport) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                   updated_at = excluded.updated_at, lamport = excluded.lamport",
                params![key, value, now, lamport],
            )?;
        }
        let keys: Vec<&str> = writes.iter().map(|(k, _)| *k).collect();
        audit::append(
            &tx,
            AuditEvent::PreferencesChanged,
            None,
            &format!("changed {}", keys.join(", ")),
        )?;
        let out = load(&tx)?;
        tx.commit()?;
        tracing::info!(keys = keys.len(), "preferences changed");
        Ok(out)
    })
}

/// The Patient reference for the person this record is about: `Patient/id` when the
/// record holds their Patient resource, always with their name as the display.
fn patient_reference(conn: &Connection) -> Result<Value> {
    let name: String = conn
        .query_row("SELECT value FROM meta WHERE key = 'name'", [], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or_default();
    let rid: Option<String> = conn
        .query_row(
            "SELECT r.rid FROM meta m JOIN resources r ON r.id = CAST(m.value AS INTEGER)
             WHERE m.key = 'self_patient' AND r.rtype = 'Patient'",
            [],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten();
    let mut reference = json!({ "display": name });
    if let Some(rid) = rid {
        reference["reference"] = json!(format!("Patient/{rid}"));
    }
    Ok(reference)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One opt-out as a FHIR R4 `Consent`: scope research, a deny provision for the
/// purposes the opt-out covers.
fn opt_out_consent(
    id: &str,
    what: &str,
    recorded_at: i64,
    patient: &Value,
    policy: Option<&str>,
    rule_text: &str,
) -> Value {
    let mut consent = json!({
        "resourceType": "Consent",
        "id": id,
        "text": {
            "status": "generated",
            "div": format!(
                "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>{}: opted out of the use of \
                 confidential patient information for research and planning, as recorded \
                 in Carry on {}. Recorded by the person; Carry does not register it with \
                 the NHS.</p></div>",
                xml_escape(what),
                rfc3339(recorded_at).get(..10).unwrap_or("")
            ),
        },
        "status": "active",
        "scope": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
            "code": "research", "display": "Research"
        }]},
        "category": [
            {"coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}]},
            {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/consentcategorycodes",
                "code": "research", "display": "Research Information Access"
            }]}
        ],
        "patient": patient,
        "dateTime": rfc3339(recorded_at),
        "performer": [patient],
        "policyRule": {
            "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "OPTOUT", "display": "opt-out"
            }],
            "text": rule_text
        },
        "provision": {
            "type": "deny",
            "purpose": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                    "code": "HRESCH", "display": "healthcare research"
                },
                // "Planning" in the NHS's sense (planning, commissioning and improving
                // health and care services) is v3 healthcare operations: the
                // administrative activities around the provision of care, whose
                // children include quality improvement and outcome measures. Not
                // PUBHLTH: the opt-outs do not stop every public-health use (an
                // epidemic, a legal duty); not HPAYMT: paying for care is not what
                // they cover.
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                    "code": "HOPERAT", "display": "healthcare operations"
                }
            ]
        }
    });
    if let Some(uri) = policy {
        consent["policy"] = json!([{ "uri": uri }]);
    }
    consent
}

/// The opt-outs that are on, as FHIR R4 `Consent` resources (status active, scope
/// research, a deny provision for research and planning), national first. Empty when
/// none is on. They record the person's choice; they are not an NHS registration.
/// Like every export, one that is not empty is recorded in the audit log.
pub fn research_consents(profile: &Profile) -> Result<Vec<Value>> {
    profile.vault().write(|conn| {
        let prefs = load(conn)?;
        let patient = patient_reference(conn)?;
        let mut out = Vec::new();
        if let Some(o) = prefs.national_opt_out.filter(|o| o.opted_out) {
            out.push(opt_out_consent(
                "carry-national-data-opt-out",
                "National data opt-out",
                o.recorded_at,
                &patient,
                Some(NATIONAL_OPT_OUT_URL),
                "National data opt-out (England): confidential patient information is \
                 not to be used for research and planning",
            ));
        }
        if let Some(o) = prefs.type1_opt_out.filter(|o| o.opted_out) {
            out.push(opt_out_consent(
                "carry-type1-opt-out",
                "Type 1 opt-out",
                o.recorded_at,
                &patient,
                None,
                "Type 1 opt-out, held at the person's GP practice: confidential patient \
                 information in the GP record is not to be shared outside the practice \
                 for purposes other than the person's individual care",
            ));
        }
        if !out.is_empty() {
            audit::append(
                conn,
                AuditEvent::Exported,
                None,
                &format!("{} research opt-outs as FHIR Consents", out.len()),
            )?;
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PassphraseKeyStore;

    fn profile(dir: &std::path::Path) -> Profile {
        let ks = PassphraseKeyStore::new("a test passphrase").unwrap();
        Profile::create(dir, "Ada Okafor", &ks).unwrap()
    }

    fn rows(p: &Profile) -> Vec<(String, String, i64)> {
        p.vault()
            .read(|c| {
                let mut st = c.prepare("SELECT key, value, lamport FROM prefs ORDER BY key")?;
                let rows = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(rows)
            })
            .unwrap()
    }

    #[test]
    fn defaults_then_a_change_in_one_transaction_with_an_audit_line_and_lamport() {
        let d = tempfile::tempdir().unwrap();
        let p = profile(d.path());
        let prefs = get(&p).unwrap();
        assert_eq!(prefs, Preferences::default());
        assert_eq!(prefs.default_grant_days, 90);
        assert_eq!(prefs.lock_timeout_s, 300);
        assert!(rows(&p).is_empty());

        let after = set(
            &p,
            &PrefsChange {
                national_opt_out: Some(true),
                default_grant_days: Some(30),
                ..PrefsChange::default()
            },
        )
        .unwrap();
        assert!(after.national_opt_out.unwrap().opted_out);
        assert_eq!(after.type1_opt_out, None);
        assert_eq!(after.default_grant_days, 30);
        assert_eq!(get(&p).unwrap(), after);
        let r = rows(&p);
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|(_, _, l)| *l == 1));
        assert_eq!(
            r[0],
            ("default_grant_days".to_string(), "30".to_string(), 1)
        );

        // Setting the same value again changes nothing, and keeps the date.
        let date = after.national_opt_out.unwrap().recorded_at;
        let same = set(
            &p,
            &PrefsChange {
                national_opt_out: Some(true),
                ..PrefsChange::default()
            },
        )
        .unwrap();
        assert_eq!(same.national_opt_out.unwrap().recorded_at, date);
        assert_eq!(rows(&p), r);

        // Turning it off is kept, with its own date, and bumps the counter.
        let off = set(
            &p,
            &PrefsChange {
                national_opt_out: Some(false),
                lock_timeout_s: Some(0),
                ..PrefsChange::default()
            },
        )
        .unwrap();
        assert_eq!(off.national_opt_out.map(|o| o.opted_out), Some(false));
        assert_eq!(off.lock_timeout_s, 0);
        let r = rows(&p);
        let lamport = |k: &str| r.iter().find(|(key, _, _)| key == k).unwrap().2;
        assert_eq!(lamport("national_opt_out"), 2);
        assert_eq!(lamport("lock_timeout_s"), 2);
        assert_eq!(lamport("default_grant_days"), 1);

        let log = p.vault().read(|c| crate::audit::list(c, 10)).unwrap();
        let changes: Vec<_> = log
            .iter()
            .filter(|e| e.event == "preferences-changed")
            .collect();
        assert_eq!(changes.len(), 2);
        assert_eq!(
            changes[0].detail,
            "changed national_opt_out, lock_timeout_s"
        );
        assert!(!changes[0].detail.contains("true") && !changes[0].detail.contains('0'));
    }

    #[test]
    fn out_of_range_values_are_refused_and_nothing_is_written() {
        let d = tempfile::tempdir().unwrap();
        let p = profile(d.path());
        for change in [
            PrefsChange {
                default_grant_days: Some(0),
                ..PrefsChange::default()
            },
            PrefsChange {
                default_grant_days: Some(MAX_GRANT_DAYS + 1),
                national_opt_out: Some(true),
                ..PrefsChange::default()
            },
            PrefsChange {
                lock_timeout_s: Some(3601),
                ..PrefsChange::default()
            },
        ] {
            let err = set(&p, &change).unwrap_err();
            assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
        }
        assert!(rows(&p).is_empty());
        assert_eq!(get(&p).unwrap(), Preferences::default());
        // The bounds themselves are allowed.
        set(
            &p,
            &PrefsChange {
                default_grant_days: Some(MAX_GRANT_DAYS),
                lock_timeout_s: Some(3600),
                ..PrefsChange::default()
            },
        )
        .unwrap();
    }

    #[test]
    fn an_unreadable_stored_value_falls_back_to_its_default() {
        let d = tempfile::tempdir().unwrap();
        let p = profile(d.path());
        p.vault()
            .write(|c| {
                c.execute_batch(
                    "INSERT INTO prefs VALUES ('lock_timeout_s', '\"soon\"', 0, 1);
                     INSERT INTO prefs VALUES ('default_grant_days', '99999', 0, 1);
                     INSERT INTO prefs VALUES ('a_newer_key', '{}', 0, 1);",
                )?;
                Ok(())
            })
            .unwrap();
        assert_eq!(get(&p).unwrap(), Preferences::default());
        // Card contents from a newer build: its own parts are ignored, ours kept.
        p.vault()
            .write(|c| {
                c.execute_batch(
                    "INSERT INTO prefs VALUES ('emergency_card',
                       '{\"contacts\": false, \"blood_group\": true}', 0, 2);",
                )?;
                Ok(())
            })
            .unwrap();
        let card = get(&p).unwrap().emergency_card;
        assert!(!card.contacts && card.allergies && card.vital_signs);
    }

    #[test]
    fn emergency_card_lists_parse_and_print() {
        let c = EmergencyCardContents::parse_list("allergies, medications,contacts").unwrap();
        assert!(c.allergies && c.medications && c.contacts);
        assert!(!c.problems && !c.vital_signs);
        assert_eq!(c.included(), ["allergies", "medications", "contacts"]);
        assert_eq!(
            EmergencyCardContents::default().included(),
            EmergencyCardContents::PARTS
        );
        assert!(EmergencyCardContents::parse_list("none")
            .unwrap()
            .included()
            .is_empty());
        assert!(matches!(
            EmergencyCardContents::parse_list("allergies,blood-type"),
            Err(Error::InvalidInput { .. })
        ));
    }

    #[test]
    fn opt_outs_that_are_on_become_research_consents() {
        let d = tempfile::tempdir().unwrap();
        let p = profile(d.path());
        assert!(research_consents(&p).unwrap().is_empty());
        set(
            &p,
            &PrefsChange {
                national_opt_out: Some(true),
                type1_opt_out: Some(false),
                ..PrefsChange::default()
            },
        )
        .unwrap();
        let c = research_consents(&p).unwrap();
        assert_eq!(c.len(), 1, "an opt-out turned off is no Consent");
        let n = &c[0];
        assert_eq!(n["resourceType"], "Consent");
        assert_eq!(n["status"], "active");
        assert_eq!(n["scope"]["coding"][0]["code"], "research");
        assert_eq!(n["provision"]["type"], "deny");
        assert_eq!(n["provision"]["purpose"][0]["code"], "HRESCH");
        assert_eq!(n["policy"][0]["uri"], NATIONAL_OPT_OUT_URL);
        assert_eq!(n["patient"]["display"], "Ada Okafor");
        assert!(n["patient"].get("reference").is_none(), "no Patient yet");
        assert!(n["dateTime"].as_str().unwrap().ends_with('Z'));

        set(
            &p,
            &PrefsChange {
                type1_opt_out: Some(true),
                ..PrefsChange::default()
            },
        )
        .unwrap();
        let c = research_consents(&p).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[1]["id"], "carry-type1-opt-out");
        assert!(c[1].get("policy").is_none());
        assert!(c[1]["policyRule"]["text"]
            .as_str()
            .unwrap()
            .contains("GP practice"));
        let exports = p
            .vault()
            .read(|c| crate::audit::list(c, 20))
            .unwrap()
            .into_iter()
            .filter(|e| e.event == "exported")
            .count();
        assert_eq!(exports, 2, "one per export that held a Consent");
    }
}
