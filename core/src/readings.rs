//! Patient-entered readings: weight, blood pressure, heart rate, blood glucose and a
//! mood-diary entry. Each becomes a FHIR R4 Observation with LOINC codes and UCUM
//! units, the person as performer, and `entered_by = self`.

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::keys::fill_random;
use crate::time::rfc3339;

/// Units a weight can be given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightUnit {
    /// Kilograms (UCUM `kg`).
    Kilograms,
    /// Pounds (UCUM `[lb_av]`).
    Pounds,
}

/// Units a blood glucose can be given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlucoseUnit {
    /// Millimoles per litre (UCUM `mmol/L`), as in the UK.
    MmolPerL,
    /// Milligrams per decilitre (UCUM `mg/dL`).
    MgPerDl,
}

/// One reading the person takes themself.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// Body weight.
    Weight {
        /// The number read off the scale.
        value: f64,
        /// Its unit.
        unit: WeightUnit,
    },
    /// Blood pressure in mmHg.
    BloodPressure {
        /// Systolic pressure.
        systolic: u32,
        /// Diastolic pressure.
        diastolic: u32,
    },
    /// Heart rate in beats per minute.
    HeartRate {
        /// Beats per minute.
        bpm: u32,
    },
    /// Blood glucose.
    Glucose {
        /// The meter's number.
        value: f64,
        /// Its unit.
        unit: GlucoseUnit,
    },
    /// A mood-diary entry from 1 (very low) to 5 (very good).
    Mood {
        /// The score, 1 to 5.
        score: u8,
    },
}

/// Longest note kept with a reading, in characters.
pub const NOTE_MAX: usize = 1000;

fn check(ok: bool, what: &str, range: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("{what} must be {range}")))
    }
}

fn number(text: &str, what: &str) -> Result<f64> {
    let v: f64 = text
        .trim()
        .parse()
        .map_err(|_| Error::invalid(format!("{what}: '{text}' is not a number")))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Error::invalid(format!("{what}: '{text}' is not a number")))
    }
}

fn integer(text: &str, what: &str) -> Result<u32> {
    text.trim()
        .parse()
        .map_err(|_| Error::invalid(format!("{what}: '{text}' is not a whole number")))
}

/// Split `72.5kg` or `72.5 kg` into the number and the unit.
fn split_unit(text: &str) -> (&str, &str) {
    let t = text.trim();
    let at = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(t.len());
    (t[..at].trim(), t[at..].trim())
}

impl Reading {
    /// Parse a reading as the CLI takes it: `weight 72.5kg`, `bp 120/80`,
    /// `pulse 64`, `glucose 5.6mmol/L`, `mood 3`.
    pub fn parse(kind: &str, value: &str) -> Result<Reading> {
        let reading = match kind.to_ascii_lowercase().as_str() {
            "weight" => {
                let (n, unit) = split_unit(value);
                let unit = match unit.to_ascii_lowercase().as_str() {
                    "kg" => WeightUnit::Kilograms,
                    "lb" | "lbs" => WeightUnit::Pounds,
                    "" => {
                        return Err(Error::invalid(
                            "weight needs a unit: kg or lb (e.g. 72.5kg)",
                        ))
                    }
                    other => {
                        return Err(Error::invalid(format!(
                            "weight unit '{other}' is not supported; use kg or lb"
                        )))
                    }
                };
                Reading::Weight {
                    value: number(n, "weight")?,
                    unit,
                }
            }
            "bp" | "blood-pressure" => {
                let (s, d) = value
                    .trim()
                    .trim_end_matches("mmHg")
                    .trim()
                    .split_once('/')
                    .ok_or_else(|| {
                        Error::invalid("blood pressure is systolic/diastolic, e.g. 120/80")
                    })?;
                Reading::BloodPressure {
                    systolic: integer(s, "systolic")?,
                    diastolic: integer(d, "diastolic")?,
                }
            }
            "pulse" | "heart-rate" => {
                let (n, unit) = split_unit(value);
                if !matches!(unit.to_ascii_lowercase().as_str(), "" | "bpm" | "/min") {
                    return Err(Error::invalid(format!(
                        "pulse unit '{unit}' is not supported; give beats per minute (bpm)"
                    )));
                }
                Reading::HeartRate {
                    bpm: integer(n, "pulse")?,
                }
            }
            "glucose" => {
                let (n, unit) = split_unit(value);
                let unit = match unit.to_ascii_lowercase().as_str() {
                    "mmol/l" => GlucoseUnit::MmolPerL,
                    "mg/dl" => GlucoseUnit::MgPerDl,
                    "" => return Err(Error::invalid("glucose needs a unit: mmol/L or mg/dL")),
                    other => {
                        return Err(Error::invalid(format!(
                            "glucose unit '{other}' is not supported; use mmol/L or mg/dL"
                        )))
                    }
                };
                Reading::Glucose {
                    value: number(n, "glucose")?,
                    unit,
                }
            }
            "mood" => {
                let score = integer(value, "mood")?;
                Reading::Mood {
                    score: u8::try_from(score).unwrap_or(u8::MAX),
                }
            }
            other => {
                return Err(Error::invalid(format!(
                    "unknown reading '{other}'; use weight, bp, pulse, glucose or mood"
                )))
            }
        };
        reading.validate()?;
        Ok(reading)
    }

    /// Check the value is plausible for a living person.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Reading::Weight { value, unit } => match unit {
                WeightUnit::Kilograms => check(
                    (0.5..=500.0).contains(&value),
                    "weight",
                    "between 0.5 and 500 kg",
                ),
                WeightUnit::Pounds => check(
                    (1.0..=1100.0).contains(&value),
                    "weight",
                    "between 1 and 1100 lb",
                ),
            },
            Reading::BloodPressure {
                systolic,
                diastolic,
            } => {
                check(
                    (50..=300).contains(&systolic),
                    "systolic pressure",
                    "between 50 and 300 mmHg",
                )?;
                check(
                    (20..=200).contains(&diastolic),
                    "diastolic pressure",
                    "between 20 and 200 mmHg",
                )?;
                check(
                    systolic > diastolic,
                    "systolic pressure",
                    "higher than diastolic",
                )
            }
            Reading::HeartRate { bpm } => check(
                (20..=300).contains(&bpm),
                "pulse",
                "between 20 and 300 beats per minute",
            ),
            Reading::Glucose { value, unit } => match unit {
                GlucoseUnit::MmolPerL => check(
                    (0.5..=50.0).contains(&value),
                    "glucose",
                    "between 0.5 and 50 mmol/L",
                ),
                GlucoseUnit::MgPerDl => check(
                    (10.0..=900.0).contains(&value),
                    "glucose",
                    "between 10 and 900 mg/dL",
                ),
            },
            Reading::Mood { score } => check(
                (1..=5).contains(&score),
                "mood",
                "a whole number from 1 to 5",
            ),
        }
    }
}

/// Who the reading is about and who took it: the person, by reference when the
/// profile knows their Patient resource.
#[derive(Debug, Clone)]
pub struct Subject {
    /// `Patient/<id>`, when known.
    pub reference: Option<String>,
    /// The person's name as the profile holds it.
    pub display: String,
}

impl Subject {
    fn to_json(&self) -> Value {
        let mut v = json!({ "display": self.display });
        if let Some(r) = &self.reference {
            v["reference"] = json!(r);
        }
        v
    }
}

/// A LOINC concept with its official display and the plain words a person reads.
fn loinc(code: &str, display: &str, text: &str) -> Value {
    json!({ "coding": [{ "system": "http://loinc.org", "code": code, "display": display }], "text": text })
}

fn ucum(value: Value, unit: &str, code: &str) -> Value {
    json!({ "value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": code })
}

fn category(code: &str, display: &str) -> Value {
    json!([{ "coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
        "code": code, "display": display }] }])
}

/// A random UUID (version 4) from the system CSPRNG.
pub(crate) fn uuid_v4() -> Result<String> {
    let mut b = [0u8; 16];
    fill_random(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// The code system for Carry's own codes, where no published code fits.
pub const CARRY_CODES: &str = "https://carry.health/fhir/CodeSystem/patient-entered";

/// Build the Observation for `reading`, taken at `when` (Unix seconds).
pub fn observation(
    reading: &Reading,
    note: Option<&str>,
    subject: &Subject,
    when: i64,
) -> Result<Value> {
    reading.validate()?;
    if let Some(n) = note {
        if n.chars().count() > NOTE_MAX {
            return Err(Error::invalid(format!(
                "the note is longer than {NOTE_MAX} characters"
            )));
        }
    }
    let id = uuid_v4()?;
    let mut obs = json!({
        "resourceType": "Observation",
        "id": id,
        "identifier": [{ "system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{id}") }],
        "status": "final",
        "subject": subject.to_json(),
        "effectiveDateTime": rfc3339(when),
        "issued": rfc3339(when),
        "performer": [subject.to_json()],
    });
    match *reading {
        Reading::Weight { value, unit } => {
            obs["category"] = category("vital-signs", "Vital Signs");
            obs["code"] = loinc("29463-7", "Body weight", "Weight");
            obs["valueQuantity"] = match unit {
                WeightUnit::Kilograms => ucum(json!(value), "kg", "kg"),
                WeightUnit::Pounds => ucum(json!(value), "lb", "[lb_av]"),
            };
        }
        Reading::BloodPressure {
            systolic,
            diastolic,
        } => {
            obs["category"] = category("vital-signs", "Vital Signs");
            obs["code"] = loinc(
                "85354-9",
                "Blood pressure panel with all children optional",
                "Blood pressure",
            );
            obs["component"] = json!([
                { "code": loinc("8480-6", "Systolic blood pressure", "Systolic"), "valueQuantity": ucum(json!(systolic), "mmHg", "mm[Hg]") },
                { "code": loinc("8462-4", "Diastolic blood pressure", "Diastolic"), "valueQuantity": ucum(json!(diastolic), "mmHg", "mm[Hg]") },
            ]);
        }
        Reading::HeartRate { bpm } => {
            obs["category"] = category("vital-signs", "Vital Signs");
            obs["code"] = loinc("8867-4", "Heart rate", "Pulse");
            obs["valueQuantity"] = ucum(json!(bpm), "beats/minute", "/min");
        }
        Reading::Glucose { value, unit } => {
            // A home meter reading of capillary blood is a laboratory-type result in
            // FHIR's observation categories; it shows under test results.
            obs["category"] = category("laboratory", "Laboratory");
            (obs["code"], obs["valueQuantity"]) = match unit {
                GlucoseUnit::MmolPerL => (
                    loinc(
                        "15074-8",
                        "Glucose [Moles/volume] in Blood",
                        "Blood glucose",
                    ),
                    ucum(json!(value), "mmol/L", "mmol/L"),
                ),
                GlucoseUnit::MgPerDl => (
                    loinc("2339-0", "Glucose [Mass/volume] in Blood", "Blood glucose"),
                    ucum(json!(value), "mg/dL", "mg/dL"),
                ),
            };
        }
        Reading::Mood { score } => {
            obs["category"] = category("survey", "Survey");
            obs["code"] = json!({ "coding": [{ "system": CARRY_CODES, "code": "mood-diary", "display": "Mood diary entry" }], "text": "Mood diary" });
            obs["valueInteger"] = json!(score);
            // A mood diary is mental-health information: it is labelled so that no
            // grant includes it unless the person chooses to.
            obs["meta"] = json!({ "security": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "PSY", "display": "psychiatry disorder information sensitivity" }] });
        }
    }
    if let Some(n) = note.map(str::trim).filter(|n| !n.is_empty()) {
        obs["note"] = json!([{ "text": n }]);
    }
    Ok(obs)
}

/// The reading kinds, as push policies name them: `weight`, `bp`, `pulse`, `glucose`
/// and `mood`.
pub const KINDS: &[&str] = &["weight", "bp", "pulse", "glucose", "mood"];

/// The kind of a reading Carry made (see [`KINDS`]), from its code; `None` for
/// anything else.
pub fn kind_of(observation: &Value) -> Option<&'static str> {
    let coding = observation["code"]["coding"].as_array()?;
    coding.iter().find_map(|c| match c["code"].as_str()? {
        "29463-7" => Some("weight"),
        "85354-9" => Some("bp"),
        "8867-4" => Some("pulse"),
        "15074-8" | "2339-0" => Some("glucose"),
        "mood-diary" => Some("mood"),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cli_forms() {
        assert_eq!(
            Reading::parse("weight", "72.5kg").unwrap(),
            Reading::Weight {
                value: 72.5,
                unit: WeightUnit::Kilograms
            }
        );
        assert_eq!(
            Reading::parse("bp", "120/80").unwrap(),
            Reading::BloodPressure {
                systolic: 120,
                diastolic: 80
            }
        );
        assert_eq!(
            Reading::parse("pulse", "64").unwrap(),
            Reading::HeartRate { bpm: 64 }
        );
        assert_eq!(
            Reading::parse("glucose", "5.6mmol/L").unwrap(),
            Reading::Glucose {
                value: 5.6,
                unit: GlucoseUnit::MmolPerL
            }
        );
        assert_eq!(
            Reading::parse("mood", "3").unwrap(),
            Reading::Mood { score: 3 }
        );
    }

    #[test]
    fn refuses_bad_units_and_implausible_values() {
        for (kind, value) in [
            ("weight", "72.5st"),
            ("weight", "72.5"),
            ("weight", "0kg"),
            ("weight", "NaNkg"),
            ("bp", "80/120"),
            ("bp", "120"),
            ("pulse", "64mmHg"),
            ("pulse", "5"),
            ("glucose", "5.6"),
            ("glucose", "5.6mg"),
            ("mood", "6"),
            ("mood", "300"),
            ("height", "180cm"),
        ] {
            let err = Reading::parse(kind, value).unwrap_err();
            assert!(
                matches!(err, Error::InvalidInput { .. }),
                "{kind} {value}: {err}"
            );
        }
    }

    #[test]
    fn observation_has_loinc_ucum_and_performer() {
        let subject = Subject {
            reference: Some("Patient/p1".into()),
            display: "Sam".into(),
        };
        let bp = observation(
            &Reading::BloodPressure {
                systolic: 120,
                diastolic: 80,
            },
            Some("after a walk"),
            &subject,
            0,
        )
        .unwrap();
        assert_eq!(bp["code"]["coding"][0]["code"], "85354-9");
        assert_eq!(bp["component"][0]["valueQuantity"]["code"], "mm[Hg]");
        assert_eq!(bp["performer"][0]["reference"], "Patient/p1");
        assert_eq!(bp["note"][0]["text"], "after a walk");
        assert_eq!(bp["effectiveDateTime"], "1970-01-01T00:00:00Z");
        let mood = observation(&Reading::Mood { score: 4 }, None, &subject, 0).unwrap();
        assert_eq!(mood["meta"]["security"][0]["code"], "PSY");
        let long = "x".repeat(NOTE_MAX + 1);
        assert!(observation(&Reading::HeartRate { bpm: 60 }, Some(&long), &subject, 0).is_err());
    }
}
