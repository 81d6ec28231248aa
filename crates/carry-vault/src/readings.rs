//! Patient-entered readings: weight, blood pressure, heart rate, blood glucose, body
//! temperature, oxygen saturation, peak flow and a mood-diary entry. Each becomes a FHIR R4 Observation with LOINC codes and UCUM
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

/// Units a body temperature can be given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemperatureUnit {
    /// Degrees Celsius (UCUM `Cel`).
    Celsius,
    /// Degrees Fahrenheit (UCUM `[degF]`).
    Fahrenheit,
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
    /// Body temperature.
    Temperature {
        /// The thermometer's number.
        value: f64,
        /// Its unit.
        unit: TemperatureUnit,
    },
    /// Oxygen saturation from a pulse oximeter, in percent.
    OxygenSaturation {
        /// Percent, 50 to 100.
        percent: u32,
    },
    /// Peak expiratory flow from a peak flow meter, in litres per minute.
    PeakFlow {
        /// Litres per minute, 50 to 1000.
        litres_per_minute: u32,
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
            "weight" if stones_and_pounds(value).is_some() => Reading::Weight {
                value: stones_and_pounds(value).unwrap_or_default(),
                unit: WeightUnit::Pounds,
            },
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
                            "weight unit '{other}' is not supported; use kg or lb, or whole \
                             stones and pounds (11st 6lb)"
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
            "temp" | "temperature" => {
                let (n, unit) = split_unit(value);
                let unit = match unit.to_ascii_lowercase().trim_start_matches('°') {
                    "c" => TemperatureUnit::Celsius,
                    "f" => TemperatureUnit::Fahrenheit,
                    "" => {
                        return Err(Error::invalid(
                            "temperature needs a unit: C or F (e.g. 37.2C)",
                        ))
                    }
                    other => {
                        return Err(Error::invalid(format!(
                            "temperature unit '{other}' is not supported; use C or F"
                        )))
                    }
                };
                Reading::Temperature {
                    value: number(n, "temperature")?,
                    unit,
                }
            }
            "spo2" | "oxygen" => {
                let (n, unit) = split_unit(value);
                if !matches!(unit, "" | "%") {
                    return Err(Error::invalid(format!(
                        "oxygen saturation unit '{unit}' is not supported; give a percentage"
                    )));
                }
                Reading::OxygenSaturation {
                    percent: integer(n, "oxygen saturation")?,
                }
            }
            "peak-flow" | "peakflow" => {
                let (n, unit) = split_unit(value);
                if !matches!(unit.to_ascii_lowercase().as_str(), "" | "l/min") {
                    return Err(Error::invalid(format!(
                        "peak flow unit '{unit}' is not supported; give litres per minute (L/min)"
                    )));
                }
                Reading::PeakFlow {
                    litres_per_minute: integer(n, "peak flow")?,
                }
            }
            other => {
                return Err(Error::invalid(format!(
                    "unknown reading '{other}'; use weight, bp, pulse, glucose, temp, spo2, \
                     peak-flow or mood"
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
            Reading::Temperature { value, unit } => match unit {
                TemperatureUnit::Celsius => check(
                    (30.0..=45.0).contains(&value),
                    "temperature",
                    "between 30 and 45 °C",
                ),
                TemperatureUnit::Fahrenheit => check(
                    (86.0..=113.0).contains(&value),
                    "temperature",
                    "between 86 and 113 °F",
                ),
            },
            Reading::OxygenSaturation { percent } => check(
                (50..=100).contains(&percent),
                "oxygen saturation",
                "between 50 and 100%",
            ),
            Reading::PeakFlow { litres_per_minute } => check(
                (50..=1000).contains(&litres_per_minute),
                "peak flow",
                "between 50 and 1000 L/min",
            ),
        }
    }
}

/// A weight in stones and pounds (`11st 6lb`, `11st6`, `11 st`), in pounds; `None`
/// for anything else.
fn stones_and_pounds(text: &str) -> Option<f64> {
    let t = text.trim().to_ascii_lowercase();
    let (st, rest) = t.split_once("st")?;
    // Whole stones, as scales and people give them.
    let stones: u32 = st.trim().parse().ok()?;
    if !(1..=50).contains(&stones) {
        return None;
    }
    let stones = f64::from(stones);
    let rest = rest
        .trim()
        .trim_end_matches("lbs")
        .trim_end_matches("lb")
        .trim();
    let pounds: f64 = if rest.is_empty() {
        0.0
    } else {
        rest.parse().ok()?
    };
    (pounds.is_finite() && (0.0..14.0).contains(&pounds)).then_some(stones * 14.0 + pounds)
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
    /// As FHIR writes a reference: `display`, and `reference` when known.
    pub fn to_json(&self) -> Value {
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
pub fn uuid_v4() -> Result<String> {
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
        Reading::Temperature { value, unit } => {
            obs["category"] = category("vital-signs", "Vital Signs");
            obs["code"] = loinc("8310-5", "Body temperature", "Temperature");
            obs["valueQuantity"] = match unit {
                TemperatureUnit::Celsius => ucum(json!(value), "°C", "Cel"),
                TemperatureUnit::Fahrenheit => ucum(json!(value), "°F", "[degF]"),
            };
        }
        Reading::OxygenSaturation { percent } => {
            obs["category"] = category("vital-signs", "Vital Signs");
            obs["code"] = loinc(
                "59408-5",
                "Oxygen saturation in Arterial blood by Pulse oximetry",
                "Oxygen saturation",
            );
            obs["valueQuantity"] = ucum(json!(percent), "%", "%");
        }
        Reading::PeakFlow { litres_per_minute } => {
            obs["category"] = category("vital-signs", "Vital Signs");
            obs["code"] = loinc(
                "19935-6",
                "Maximum expiratory gas flow Respiratory system airway by Peak flow meter",
                "Peak flow",
            );
            obs["valueQuantity"] = ucum(json!(litres_per_minute), "L/min", "L/min");
        }
    }
    if let Some(n) = note.map(str::trim).filter(|n| !n.is_empty()) {
        obs["note"] = json!([{ "text": n }]);
    }
    Ok(obs)
}

/// The reading kinds, as push policies name them.
pub const KINDS: &[&str] = &[
    "weight",
    "bp",
    "pulse",
    "glucose",
    "temp",
    "spo2",
    "peak-flow",
    "mood",
];

/// The kind of a reading Carry made (see [`KINDS`]), from its code; `None` for
/// anything else.
pub fn kind_of(observation: &Value) -> Option<&'static str> {
    let coding = observation["code"]["coding"].as_array()?;
    coding.iter().find_map(|c| match c["code"].as_str()? {
        "29463-7" => Some("weight"),
        "85354-9" => Some("bp"),
        "8867-4" => Some("pulse"),
        "15074-8" | "2339-0" => Some("glucose"),
        "8310-5" => Some("temp"),
        "59408-5" => Some("spo2"),
        "19935-6" => Some("peak-flow"),
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
        for (text, pounds) in [("11st 6lb", 160.0), ("11st6", 160.0), ("11 st", 154.0)] {
            assert_eq!(
                Reading::parse("weight", text).unwrap(),
                Reading::Weight {
                    value: pounds,
                    unit: WeightUnit::Pounds
                },
                "{text}"
            );
        }
        assert_eq!(
            Reading::parse("temp", "37.2C").unwrap(),
            Reading::Temperature {
                value: 37.2,
                unit: TemperatureUnit::Celsius
            }
        );
        assert_eq!(
            Reading::parse("temperature", "98.6°F").unwrap(),
            Reading::Temperature {
                value: 98.6,
                unit: TemperatureUnit::Fahrenheit
            }
        );
        assert_eq!(
            Reading::parse("spo2", "97%").unwrap(),
            Reading::OxygenSaturation { percent: 97 }
        );
        assert_eq!(
            Reading::parse("peak-flow", "420L/min").unwrap(),
            Reading::PeakFlow {
                litres_per_minute: 420
            }
        );
        // Each kind is known again from the Observation it makes, for push rules.
        let subject = Subject {
            reference: None,
            display: "A".into(),
        };
        for kind in KINDS {
            let sample = match *kind {
                "weight" => "70kg",
                "bp" => "120/80",
                "pulse" => "60",
                "glucose" => "5mmol/L",
                "temp" => "37C",
                "spo2" => "98",
                "peak-flow" => "400",
                _ => "3",
            };
            let obs =
                observation(&Reading::parse(kind, sample).unwrap(), None, &subject, 0).unwrap();
            assert_eq!(kind_of(&obs), Some(*kind));
        }
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
            ("weight", "11st 15lb"),
            ("weight", "60st"),
            ("temp", "37.2"),
            ("temp", "37.2K"),
            ("temp", "50C"),
            ("spo2", "101"),
            ("spo2", "97ppm"),
            ("peak-flow", "20"),
            ("peak-flow", "400L/s"),
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
