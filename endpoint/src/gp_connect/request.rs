//! The `Parameters` of `$gpc.getstructuredrecord`, checked against the operation's
//! definition: the patient's NHS number, and the clinical areas asked for with their
//! part parameters.

use serde_json::Value;

use super::error::GpcError;
use super::record::NHS_NUMBER_SYSTEM;

/// A clinical area of the structured record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// `includeAllergies`.
    Allergies,
    /// `includeMedication`.
    Medication,
    /// `includeConsultations`.
    Consultations,
    /// `includeProblems`.
    Problems,
    /// `includeImmunisations`.
    Immunisations,
    /// `includeUncategorisedData`.
    Uncategorised,
    /// `includeInvestigations`.
    Investigations,
    /// `includeReferrals`.
    Referrals,
    /// `includeDiaryEntries`.
    DiaryEntries,
}

/// How a part parameter's value is typed.
#[derive(Clone, Copy)]
enum Kind {
    Boolean,
    Date,
    /// A whole date no earlier than today.
    FutureDate,
    Period,
    PositiveInt,
    Code(&'static [&'static str]),
}

/// An area's parameter: its name, whether it may repeat, and its part parameters.
struct AreaParameter {
    area: Area,
    name: &'static str,
    repeats: bool,
    parts: &'static [(&'static str, Kind)],
}

/// Each area's parameter.
const AREAS: &[AreaParameter] = &[
    AreaParameter {
        area: Area::Allergies,
        name: "includeAllergies",
        repeats: false,
        parts: &[("includeResolvedAllergies", Kind::Boolean)],
    },
    AreaParameter {
        area: Area::Medication,
        name: "includeMedication",
        repeats: false,
        parts: &[
            ("includePrescriptionIssues", Kind::Boolean),
            ("medicationSearchFromDate", Kind::Date),
        ],
    },
    AreaParameter {
        area: Area::Consultations,
        name: "includeConsultations",
        repeats: false,
        parts: &[
            ("consultationSearchPeriod", Kind::Period),
            ("includeNumberOfMostRecent", Kind::PositiveInt),
        ],
    },
    AreaParameter {
        area: Area::Problems,
        name: "includeProblems",
        repeats: true,
        parts: &[
            ("filterStatus", Kind::Code(&["active", "inactive"])),
            ("filterSignificance", Kind::Code(&["major", "minor"])),
        ],
    },
    AreaParameter {
        area: Area::Immunisations,
        name: "includeImmunisations",
        repeats: false,
        parts: &[
            ("includeNotGiven", Kind::Boolean),
            ("includeStatus", Kind::Boolean),
        ],
    },
    AreaParameter {
        area: Area::Uncategorised,
        name: "includeUncategorisedData",
        repeats: false,
        parts: &[("uncategorisedDataSearchPeriod", Kind::Period)],
    },
    AreaParameter {
        area: Area::Investigations,
        name: "includeInvestigations",
        repeats: false,
        parts: &[("investigationSearchPeriod", Kind::Period)],
    },
    AreaParameter {
        area: Area::Referrals,
        name: "includeReferrals",
        repeats: false,
        parts: &[("referralSearchPeriod", Kind::Period)],
    },
    AreaParameter {
        area: Area::DiaryEntries,
        name: "includeDiaryEntries",
        repeats: false,
        parts: &[("diaryEntriesSearchDate", Kind::FutureDate)],
    },
];

/// Part parameters that may not come with consultations, and those that may not come
/// with problems (the spec's combinations that carry clinical risk).
const NOT_WITH_CONSULTATIONS: &[&str] = &[
    "medicationSearchFromDate",
    "uncategorisedDataSearchPeriod",
    "filterSignificance",
    "filterStatus",
    "referralSearchPeriod",
    "diaryEntriesSearchDate",
    "includeNotGiven",
    "includeStatus",
];
const NOT_WITH_PROBLEMS: &[&str] = &[
    "medicationSearchFromDate",
    "uncategorisedDataSearchPeriod",
    "referralSearchPeriod",
    "diaryEntriesSearchDate",
    "includeNotGiven",
    "includeStatus",
];

/// The parameter name of an area.
pub fn parameter_of(area: Area) -> &'static str {
    AREAS.iter().find(|a| a.area == area).map_or("", |a| a.name)
}

/// A checked request.
#[derive(Debug)]
pub struct StructuredRequest {
    /// The patient's NHS number (valid by modulus 11).
    pub nhs_number: String,
    /// The areas asked for, in the order asked.
    pub areas: Vec<Area>,
    /// `includeAllergies.includeResolvedAllergies`.
    pub include_resolved_allergies: bool,
    /// `includeMedication.includePrescriptionIssues` (true when not given).
    pub include_prescription_issues: bool,
}

pub use carry_proto::nhs::is_nhs_number as valid_nhs_number;

fn invalid_parameter(text: impl Into<String>) -> GpcError {
    GpcError::InvalidParameter(text.into())
}

/// A whole date, YYYY-MM-DD, no later than today (no earlier, if `future`).
fn check_date(s: &str, name: &str, future: bool) -> Result<(), GpcError> {
    let bad = || {
        let when = if future { "before" } else { "after" };
        invalid_parameter(format!(
            "{name} must be a whole date (YYYY-MM-DD), not {when} today"
        ))
    };
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u32>().ok());
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return Err(bad());
    };
    let month = u8::try_from(m)
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or_else(bad)?;
    let date = time::Date::from_calendar_date(
        i32::try_from(y).map_err(|_| bad())?,
        month,
        u8::try_from(d).map_err(|_| bad())?,
    )
    .map_err(|_| bad())?;
    let today = time::OffsetDateTime::now_utc().date();
    if (!future && date > today) || (future && date < today) {
        return Err(bad());
    }
    Ok(())
}

/// Check a part parameter's value; the boolean it holds, if it is one.
fn check_part(part: &Value, name: &str, kind: Kind) -> Result<Option<bool>, GpcError> {
    let Some(obj) = part.as_object() else {
        return Err(invalid_parameter(format!("{name} is not a parameter")));
    };
    let values: Vec<(&String, &Value)> =
        obj.iter().filter(|(k, _)| k.starts_with("value")).collect();
    let wrong = || invalid_parameter(format!("{name} is passed without a value of its type"));
    let [(key, value)] = values.as_slice() else {
        return Err(wrong());
    };
    match kind {
        Kind::Boolean if key.as_str() == "valueBoolean" => {
            value.as_bool().map(Some).ok_or_else(wrong)
        }
        Kind::Date | Kind::FutureDate if key.as_str() == "valueDate" => {
            let future = matches!(kind, Kind::FutureDate);
            check_date(value.as_str().ok_or_else(wrong)?, name, future).map(|()| None)
        }
        Kind::Period if key.as_str() == "valuePeriod" => {
            let p = value.as_object().ok_or_else(wrong)?;
            if p.keys().any(|k| k != "start" && k != "end") {
                return Err(wrong());
            }
            let start = p
                .get("start")
                .map(|v| v.as_str().ok_or_else(wrong))
                .transpose()?;
            let end = p
                .get("end")
                .map(|v| v.as_str().ok_or_else(wrong))
                .transpose()?;
            for d in start.iter().chain(end.iter()) {
                check_date(d, name, false)?;
            }
            if let (Some(s), Some(e)) = (start, end) {
                if s > e {
                    return Err(invalid_parameter(format!(
                        "the start of {name} is after its end"
                    )));
                }
            }
            Ok(None)
        }
        Kind::PositiveInt if key.as_str() == "valuePositiveInt" => value
            .as_u64()
            .filter(|n| *n >= 1)
            .map(|_| None)
            .ok_or_else(wrong),
        Kind::Code(allowed) if key.as_str() == "valueCode" => {
            let c = value.as_str().ok_or_else(wrong)?;
            if allowed.contains(&c) {
                Ok(None)
            } else {
                Err(invalid_parameter(format!(
                    "{name} must be one of {}",
                    allowed.join(", ")
                )))
            }
        }
        _ => Err(wrong()),
    }
}

/// The patient's NHS number from `patientNHSNumber`.
fn nhs_number(param: &Value) -> Result<String, GpcError> {
    let Some(id) = param.get("valueIdentifier").and_then(Value::as_object) else {
        return Err(invalid_parameter(
            "patientNHSNumber must have a valueIdentifier",
        ));
    };
    if id.get("system").and_then(Value::as_str) != Some(NHS_NUMBER_SYSTEM) {
        return Err(GpcError::InvalidIdentifierSystem);
    }
    match id.get("value").and_then(Value::as_str) {
        Some(v) if valid_nhs_number(v) => Ok(v.to_string()),
        _ => Err(GpcError::InvalidNhsNumber),
    }
}

/// Check the body against the operation's definition.
pub fn parse(body: &[u8]) -> Result<StructuredRequest, GpcError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| GpcError::InvalidResource("the body could not be parsed as JSON".into()))?;
    if v.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(GpcError::InvalidResource(
            "the body is not a Parameters resource".into(),
        ));
    }
    let params = match v.get("parameter") {
        Some(Value::Array(p)) => p.as_slice(),
        _ => return Err(invalid_parameter("no recognised parameters are provided")),
    };
    let mut nhs: Option<String> = None;
    let mut request = StructuredRequest {
        nhs_number: String::new(),
        areas: Vec::new(),
        include_resolved_allergies: false,
        include_prescription_issues: true,
    };
    let mut parts_seen: Vec<&str> = Vec::new();
    for p in params {
        let Some(name) = p.get("name").and_then(Value::as_str) else {
            return Err(GpcError::InvalidResource("a parameter has no name".into()));
        };
        if name == "patientNHSNumber" {
            if nhs.is_some() {
                return Err(GpcError::InvalidResource(
                    "patientNHSNumber is given more than once".into(),
                ));
            }
            if p.get("part").is_some() {
                return Err(invalid_parameter("patientNHSNumber has no part parameters"));
            }
            nhs = Some(nhs_number(p)?);
            continue;
        }
        let Some(AreaParameter {
            area,
            repeats,
            parts,
            ..
        }) = AREAS.iter().find(|a| a.name == name)
        else {
            return Err(invalid_parameter(format!(
                "{name} is not a parameter of $gpc.getstructuredrecord"
            )));
        };
        if request.areas.contains(area) && !repeats {
            return Err(GpcError::InvalidResource(format!(
                "{name} is given more than once"
            )));
        }
        if p.as_object()
            .is_some_and(|o| o.keys().any(|k| k.starts_with("value") || k == "resource"))
        {
            return Err(invalid_parameter(format!(
                "{name} takes part parameters only"
            )));
        }
        let given = match p.get("part") {
            None => &[][..],
            Some(Value::Array(a)) => a.as_slice(),
            Some(_) => {
                return Err(GpcError::InvalidResource(format!(
                    "the part of {name} is not a list"
                )))
            }
        };
        let mut names: Vec<&str> = Vec::new();
        for part in given {
            let pname = part.get("name").and_then(Value::as_str).unwrap_or("");
            let Some((_, kind)) = parts.iter().find(|(n, _)| *n == pname) else {
                return Err(invalid_parameter(format!(
                    "{name} has no part parameter named '{pname}'"
                )));
            };
            if names.contains(&pname) {
                return Err(GpcError::InvalidResource(format!(
                    "{name}.{pname} is given more than once"
                )));
            }
            names.push(pname);
            let flag = check_part(part, pname, *kind)?;
            match (pname, flag) {
                ("includeResolvedAllergies", Some(b)) => request.include_resolved_allergies = b,
                ("includePrescriptionIssues", Some(b)) => request.include_prescription_issues = b,
                _ => {}
            }
        }
        if *area == Area::Allergies && !names.contains(&"includeResolvedAllergies") {
            return Err(invalid_parameter(
                "includeAllergies must have the part parameter includeResolvedAllergies",
            ));
        }
        if *area == Area::Consultations
            && names.contains(&"consultationSearchPeriod")
            && names.contains(&"includeNumberOfMostRecent")
        {
            return Err(GpcError::InvalidResource(
                "consultationSearchPeriod and includeNumberOfMostRecent may not both be given"
                    .into(),
            ));
        }
        parts_seen.extend(names);
        if !request.areas.contains(area) {
            request.areas.push(*area);
        }
    }
    for (area, banned) in [
        (Area::Consultations, NOT_WITH_CONSULTATIONS),
        (Area::Problems, NOT_WITH_PROBLEMS),
    ] {
        if request.areas.contains(&area) {
            if let Some(p) = parts_seen.iter().find(|p| banned.contains(p)) {
                return Err(invalid_parameter(format!(
                    "{p} may not be given with {}",
                    parameter_of(area)
                )));
            }
        }
    }
    request.nhs_number =
        nhs.ok_or_else(|| invalid_parameter("the patientNHSNumber parameter is not provided"))?;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code_of(body: Value) -> &'static str {
        parse(body.to_string().as_bytes()).unwrap_err().code()
    }

    fn nhs(v: &str) -> Value {
        json!({"name": "patientNHSNumber", "valueIdentifier": {"system": NHS_NUMBER_SYSTEM, "value": v}})
    }

    #[test]
    fn diary_dates_must_not_be_past_and_other_dates_not_future() {
        let diary = |d: &str| {
            json!({"resourceType": "Parameters", "parameter": [nhs("9999999999"),
                {"name": "includeDiaryEntries", "part": [{"name": "diaryEntriesSearchDate", "valueDate": d}]}]})
        };
        assert!(parse(diary("2999-01-01").to_string().as_bytes()).is_ok());
        assert_eq!(code_of(diary("2017-01-01")), "INVALID_PARAMETER");
        assert_eq!(code_of(diary("2999-01")), "INVALID_PARAMETER");
        let period = json!({"resourceType": "Parameters", "parameter": [nhs("9999999999"),
            {"name": "includeReferrals", "part": [{"name": "referralSearchPeriod",
                "valuePeriod": {"start": "2018-01-01", "end": "2017-01-01"}}]}]});
        assert_eq!(code_of(period), "INVALID_PARAMETER");
    }

    #[test]
    fn nhs_numbers_are_checked_by_modulus_11() {
        assert!(valid_nhs_number("9999999999"));
        assert!(valid_nhs_number("9434765919"));
        assert!(!valid_nhs_number("9434765918"));
        assert!(!valid_nhs_number("943476591"));
        assert!(!valid_nhs_number("+434765919"));
    }

    #[test]
    fn a_full_request_parses_and_mistakes_get_their_codes() {
        let ok = json!({"resourceType": "Parameters", "parameter": [nhs("9999999999"),
            {"name": "includeAllergies", "part": [{"name": "includeResolvedAllergies", "valueBoolean": true}]},
            {"name": "includeMedication", "part": [{"name": "includePrescriptionIssues", "valueBoolean": false}]},
            {"name": "includeProblems"}, {"name": "includeProblems", "part": [{"name": "filterStatus", "valueCode": "active"}]}]});
        let r = parse(ok.to_string().as_bytes()).unwrap();
        assert_eq!(
            r.areas,
            vec![Area::Allergies, Area::Medication, Area::Problems]
        );
        assert!(r.include_resolved_allergies && !r.include_prescription_issues);
        assert_eq!(
            code_of(json!({"resourceType": "Patient"})),
            "INVALID_RESOURCE"
        );
        assert_eq!(
            code_of(json!({"resourceType": "Parameters", "parameter": [nhs("9999999998")]})),
            "INVALID_NHS_NUMBER"
        );
        assert_eq!(
            code_of(
                json!({"resourceType": "Parameters", "parameter": [{"name": "includeAllergies", "part": [{"name": "includeResolvedAllergies", "valueBoolean": true}]}]})
            ),
            "INVALID_PARAMETER"
        );
        assert_eq!(
            code_of(
                json!({"resourceType": "Parameters", "parameter": [nhs("9999999999"), {"name": "includeAllergies"}]})
            ),
            "INVALID_PARAMETER"
        );
        assert_eq!(
            code_of(
                json!({"resourceType": "Parameters", "parameter": [nhs("9999999999"), {"name": "includeEverything"}]})
            ),
            "INVALID_PARAMETER"
        );
        assert_eq!(
            code_of(
                json!({"resourceType": "Parameters", "parameter": [nhs("9999999999"), {"name": "includeReferrals"}, {"name": "includeReferrals"}]})
            ),
            "INVALID_RESOURCE"
        );
        assert_eq!(
            code_of(
                json!({"resourceType": "Parameters", "parameter": [nhs("9999999999"),
            {"name": "includeMedication", "part": [{"name": "medicationSearchFromDate", "valueDate": "2999-01-01"}]}]})
            ),
            "INVALID_PARAMETER"
        );
        assert_eq!(
            code_of(
                json!({"resourceType": "Parameters", "parameter": [nhs("9999999999"), {"name": "includeConsultations"},
            {"name": "includeMedication", "part": [{"name": "medicationSearchFromDate", "valueDate": "2017-01-01"}]}]})
            ),
            "INVALID_PARAMETER"
        );
    }
}
