//! Results over time: the values of one clinical concept (HbA1c, blood pressure,
//! weight…), newest first, each with its date, source and reference range. A concept
//! is a set of LOINC codes; values in another unit are converted only where the
//! conversion is exact, and kept apart, flagged, where it is not.

use std::collections::HashSet;

use rusqlite::{params, Connection};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::record::summary;

const LOINC: &str = "http://loinc.org";
/// mg/dL of glucose per mmol/L: its molar mass, 180.156 g/mol, over 10.
const GLUCOSE_MG_DL_PER_MMOL_L: f64 = 18.0156;
/// Kilograms per avoirdupois pound, exactly.
const KG_PER_LB: f64 = 0.453_592_37;

/// A concept a person follows over time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Concept {
    /// Its short name, for `carry trend ID`.
    pub id: &'static str,
    /// Its name, as a person reads it.
    pub name: &'static str,
    /// Other words for it that search and `trend` understand.
    pub synonyms: &'static [&'static str],
    /// The LOINC codes that mean it.
    pub codes: &'static [&'static str],
    /// The unit its values are shown in (UCUM).
    pub unit: &'static str,
}

/// The concepts Carry knows; any LOINC code can be followed too (`trend 2093-3`).
pub const CONCEPTS: &[Concept] = &[
    Concept {
        id: "hba1c",
        name: "HbA1c",
        synonyms: &["a1c", "glycated haemoglobin", "glycated hemoglobin"],
        codes: &["4548-4", "17856-6", "59261-8"],
        unit: "%",
    },
    Concept {
        id: "bp",
        name: "Blood pressure",
        synonyms: &["blood pressure"],
        codes: &["85354-9", "55284-4", "35094-2"],
        unit: "mm[Hg]",
    },
    Concept {
        id: "weight",
        name: "Body weight",
        synonyms: &["body weight"],
        codes: &["29463-7", "3141-9"],
        unit: "kg",
    },
    Concept {
        id: "bmi",
        name: "Body mass index",
        synonyms: &["body mass index"],
        codes: &["39156-5"],
        unit: "kg/m2",
    },
    Concept {
        id: "cholesterol",
        name: "Total cholesterol",
        synonyms: &["total cholesterol"],
        codes: &["2093-3", "14647-2"],
        unit: "mg/dL",
    },
    Concept {
        id: "egfr",
        name: "eGFR",
        synonyms: &["gfr", "kidney function"],
        codes: &[
            "33914-3", "48642-3", "48643-1", "62238-1", "69405-9", "98979-8",
        ],
        unit: "mL/min/{1.73_m2}",
    },
    Concept {
        id: "creatinine",
        name: "Creatinine",
        synonyms: &[],
        codes: &["2160-0", "38483-4", "14682-9"],
        unit: "mg/dL",
    },
    Concept {
        id: "glucose",
        name: "Glucose",
        synonyms: &["blood sugar", "blood glucose"],
        codes: &["2339-0", "2345-7", "15074-8", "14749-6", "41653-7"],
        unit: "mmol/L",
    },
];

/// The concept a word names: its id, a synonym, or its name (any case).
pub fn concept(word: &str) -> Option<&'static Concept> {
    let w = word.trim().to_lowercase();
    CONCEPTS
        .iter()
        .find(|c| c.id == w || c.name.to_lowercase() == w || c.synonyms.iter().any(|s| *s == w))
}

/// One value of a series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// The item it comes from, for `show`.
    pub item_id: i64,
    /// Its date as written.
    pub date: String,
    /// The value, in the series' unit when `comparable`, else in `unit`.
    pub value: f64,
    /// The second value of a pair: diastolic, for blood pressure.
    pub second: Option<f64>,
    /// The unit of `value` (UCUM).
    pub unit: String,
    /// The value as the record wrote it, with its unit, as a person reads it.
    pub written: String,
    /// The unit it was converted from, when it was.
    pub converted_from: Option<String>,
    /// Whether it is in the series' unit (or converted exactly to it). A value that
    /// is not is kept, flagged, and left out of the sparkline.
    pub comparable: bool,
    /// Where it came from (a provider, a file, `self`).
    pub source: String,
    /// The reference range as written (`4.0–5.9 %`), if any.
    pub range: Option<String>,
}

/// The values of one concept, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// The concept's id, or the code followed.
    pub concept: String,
    /// Its name.
    pub name: String,
    /// The unit of its comparable values (UCUM).
    pub unit: String,
    /// The values, newest first; one per fact, however many sources hold it.
    pub points: Vec<Point>,
}

/// A series' candidates: the Observations the search index finds for its codes (`?1`,
/// each code as a phrase in the codes column), the first copy of each fact, newest
/// first. Which of them carry one of the codes exactly is decided as each is read.
const SERIES_SQL: &str = "SELECT r.id FROM resources_fts f
     JOIN resources r ON r.id = f.rowid
     WHERE resources_fts MATCH ?1
       AND r.rtype = 'Observation'
       AND (r.group_id IS NULL OR r.group_id = r.id)
     ORDER BY r.date_sort DESC, r.id DESC";

/// Every fact's first copy, newest first, straight from the timeline's index: walked
/// when a series has many candidates and only its newest few are wanted.
const HEADS_SQL: &str = "SELECT id FROM resources WHERE group_id IS NULL OR group_id = id
     ORDER BY date_sort DESC, id DESC";

/// Past this many candidates per point wanted, the newest points are found by walking
/// the timeline's index rather than by sorting every candidate.
const WALK_PER_POINT: usize = 4;

/// The series `what` names: a concept (its id, a synonym or its name) or a LOINC code.
pub fn series(conn: &Connection, what: &str) -> Result<Series> {
    newest(conn, what, usize::MAX)
}

/// The newest `limit` points of the series `what` (see [`series`]): only they are read,
/// so a search for a concept costs its page, not the whole series.
pub fn newest(conn: &Connection, what: &str, limit: usize) -> Result<Series> {
    let (id, name, codes, unit): (String, String, Vec<&str>, &str) = match concept(what) {
        Some(c) => (c.id.into(), c.name.into(), c.codes.to_vec(), c.unit),
        None if is_loinc(what.trim()) => (
            what.trim().into(),
            what.trim().into(),
            vec![what.trim()],
            "",
        ),
        None => {
            return Err(Error::invalid(format!(
                "no concept '{what}': use one of {} or a LOINC code such as 2093-3",
                CONCEPTS.iter().map(|c| c.id).collect::<Vec<_>>().join(", ")
            )))
        }
    };
    // The search index finds the candidates (each code as a phrase in the codes
    // column), and the exact code decides; one row per fact, its first copy (the head
    // of its group, as the timeline shows it). So the cost follows the matches, not the
    // size of the record.
    let phrases: Vec<String> = codes
        .iter()
        .map(|c| format!("\"{}\"", c.replace('"', "")))
        .collect();
    let matching = format!("codes : ({})", phrases.join(" OR "));
    // Ids in order first (no JSON is sorted), then each resource as it is needed. A
    // few points of a long series (a search's page of blood pressures) come from the
    // timeline's index, newest first, keeping the candidates the search index found;
    // otherwise the candidates are sorted.
    let candidates: HashSet<i64> = conn
        .prepare_cached("SELECT rowid FROM resources_fts WHERE resources_fts MATCH ?1")?
        .query_map(params![matching], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let walk = limit.saturating_mul(WALK_PER_POINT) < candidates.len();
    let mut ordered = conn.prepare_cached(if walk { HEADS_SQL } else { SERIES_SQL })?;
    let mut ids = if walk {
        ordered.query([])?
    } else {
        ordered.query(params![matching])?
    };
    let mut one = conn.prepare_cached(
        "SELECT r.json, s.name, r.codes, r.rtype FROM resources r
         JOIN sources s ON s.id = r.source_id WHERE r.id = ?1",
    )?;
    let mut points = Vec::new();
    let mut unit = unit.to_string();
    while let Some(row) = ids.next()? {
        if points.len() >= limit {
            break;
        }
        let item_id: i64 = row.get(0)?;
        if walk && !candidates.contains(&item_id) {
            continue;
        }
        let (text, source, held, rtype): (String, String, String, String) = one
            .query_row([item_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
        if rtype != "Observation" {
            continue;
        }
        // The index matched the words of a code; the code itself must be there.
        let held: Vec<crate::record::Code> = serde_json::from_str(&held).unwrap_or_default();
        if !held
            .iter()
            .any(|c| c.code.as_deref().is_some_and(|c| codes.contains(&c)))
        {
            continue;
        }
        let Ok(r) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if r["status"] == "entered-in-error" {
            continue;
        }
        let date = summary::clinical_date("Observation", &r)
            .map(|(d, _)| d)
            .unwrap_or_default();
        let Some(mut p) = point(&r, &codes) else {
            continue;
        };
        // A code followed on its own takes the unit of its newest value.
        if unit.is_empty() {
            unit.clone_from(&p.unit);
        }
        normalise(&mut p, &unit, &id);
        p.item_id = item_id;
        p.date = date;
        p.source = source;
        points.push(p);
    }
    Ok(Series {
        concept: id,
        name,
        unit,
        points,
    })
}

fn is_loinc(s: &str) -> bool {
    s.split_once('-').is_some_and(|(a, b)| {
        !a.is_empty() && b.len() == 1 && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
    })
}

/// The value of an Observation that carries one of `codes`: its own quantity, or the
/// matching component's; a blood pressure's systolic and diastolic.
fn point(r: &Value, codes: &[&str]) -> Option<Point> {
    let has = |node: &Value, code: &str| {
        node.pointer("/code/coding")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["code"] == code && c["system"].as_str().is_none_or(|s| s == LOINC))
            })
    };
    let quantity = |q: &Value| -> Option<(f64, String)> {
        let v = q.get("value")?.as_f64()?;
        let u = q
            .get("code")
            .or_else(|| q.get("unit"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        Some((v, u))
    };
    let components = r["component"].as_array().cloned().unwrap_or_default();
    let (value, unit, second) = if let Some(q) = r.get("valueQuantity") {
        let (v, u) = quantity(q)?;
        (v, u, None)
    } else {
        let sys = components.iter().find(|c| has(c, "8480-6"));
        let dia = components.iter().find(|c| has(c, "8462-4"));
        match (sys, dia) {
            (Some(s), Some(d)) => {
                let (sv, su) = quantity(&s["valueQuantity"])?;
                let (dv, _) = quantity(&d["valueQuantity"])?;
                (sv, su, Some(dv))
            }
            _ => {
                let c = components
                    .iter()
                    .find(|c| codes.iter().any(|k| has(c, k)))?;
                let (v, u) = quantity(&c["valueQuantity"])?;
                (v, u, None)
            }
        }
    };
    // As the record wrote it, through the one formatter: 82.80592677 reads 82.8.
    let written = match (r.get("valueQuantity"), second) {
        (Some(q), _) => summary::quantity(q).unwrap_or_default(),
        (None, Some(_)) => {
            let part = |code: &str| {
                components
                    .iter()
                    .find(|c| has(c, code))
                    .and_then(|c| summary::number(&c["valueQuantity"]["value"]))
            };
            format!(
                "{}/{} {}",
                part("8480-6").unwrap_or_default(),
                part("8462-4").unwrap_or_default(),
                summary::readable_unit(&unit)
            )
        }
        (None, None) => components
            .iter()
            .find(|c| codes.iter().any(|k| has(c, k)))
            .and_then(|c| summary::quantity(&c["valueQuantity"]))
            .unwrap_or_default(),
    };
    Some(Point {
        item_id: 0,
        date: String::new(),
        value,
        second,
        unit,
        written,
        converted_from: None,
        comparable: true,
        source: String::new(),
        range: summary::reference_range(r),
    })
}

/// Bring `p` into `unit` where the conversion is exact: kilograms from pounds, and
/// glucose between mg/dL and mmol/L by its molar mass. Anything else in another unit
/// stays as it is and is flagged not comparable.
fn normalise(p: &mut Point, unit: &str, concept: &str) {
    if p.unit == unit || unit.is_empty() {
        return;
    }
    let factor = match (concept, p.unit.as_str(), unit) {
        (_, "[lb_av]", "kg") => Some(KG_PER_LB),
        ("glucose", "mg/dL", "mmol/L") => Some(1.0 / GLUCOSE_MG_DL_PER_MMOL_L),
        ("glucose", "mmol/L", "mg/dL") => Some(GLUCOSE_MG_DL_PER_MMOL_L),
        _ => None,
    };
    match factor {
        Some(f) => {
            p.converted_from = Some(std::mem::replace(&mut p.unit, unit.to_string()));
            p.value *= f;
            p.second = p.second.map(|s| s * f);
        }
        None => p.comparable = false,
    }
}

/// A sparkline of the comparable values, oldest to newest (`▁▃▅█`).
pub fn sparkline(series: &Series) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let values: Vec<f64> = series
        .points
        .iter()
        .rev()
        .filter(|p| p.comparable)
        .map(|p| p.value)
        .collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(*v), h.max(*v))
        });
    values
        .iter()
        .map(|v| {
            if hi > lo {
                let i = ((v - lo) / (hi - lo) * 7.0).round() as usize;
                BARS[i.min(7)]
            } else {
                BARS[3]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The share-link viewer draws the same concepts (its own table, in JavaScript):
    /// every code here is there, under the concept's name.
    #[test]
    fn the_viewer_follows_the_same_codes() {
        let viewer = include_str!("../../../endpoint/viewer/viewer.js");
        let table = viewer
            .split("var KEY_RESULTS = [")
            .nth(1)
            .and_then(|rest| rest.split("];").next())
            .unwrap();
        for c in CONCEPTS {
            let line = table
                .lines()
                .find(|l| l.contains(&format!("name: '{}'", c.name)))
                .unwrap_or_else(|| panic!("the viewer does not follow {}", c.name));
            for code in c.codes {
                assert!(line.contains(&format!("'{code}'")), "{}: {code}", c.name);
            }
            assert_eq!(line.matches('-').count(), c.codes.len(), "{line}");
        }
    }

    /// A series costs what it finds, not the size of the record: the plan starts from
    /// the search index and never scans the resources (at 100k resources, the scan it
    /// replaced took seconds per search for `bp`).
    #[test]
    fn a_series_starts_from_the_search_index() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::vault::migrations::migrate(&mut conn).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {SERIES_SQL}"))
            .unwrap()
            .query_map(params!["codes : (\"4548-4\")"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(plan[0].contains("VIRTUAL TABLE INDEX"), "{plan:?}");
        let walk: String = conn
            .query_row(&format!("EXPLAIN QUERY PLAN {HEADS_SQL}"), [], |r| r.get(3))
            .unwrap();
        assert!(walk.contains("resources_timeline_heads"), "{walk}");
        assert!(
            !plan
                .iter()
                .any(|l| l.starts_with("SCAN r") || l.starts_with("SCAN s")),
            "{plan:?}"
        );
    }

    /// The newest few points, found by walking the timeline's index, are the series'
    /// newest points: entered-in-error values, other codes and other resource types
    /// that the search index also finds are passed over the same way.
    #[test]
    fn the_newest_points_are_the_series_first_ones_whichever_way_they_are_found() {
        use crate::record::EnteredBy;
        use crate::store::{ensure_source, SourceKind, Writer};
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::vault::migrations::migrate(&mut conn).unwrap();
        let tx = conn.transaction().unwrap();
        let source = ensure_source(&tx, SourceKind::File, "f.json", 1).unwrap();
        let mut w = Writer::new(&tx, source, None, EnteredBy::Provider, 1);
        for i in 0..60 {
            let day = format!("2020-{:02}-{:02}", 1 + i % 12, 1 + i % 28);
            let status = if i % 7 == 0 {
                "entered-in-error"
            } else {
                "final"
            };
            let weight = json!({
                "resourceType": "Observation", "id": format!("w{i}"), "status": status,
                "code": { "coding": [{ "system": "http://loinc.org", "code": "29463-7",
                                        "display": "Body weight" }] },
                "effectiveDateTime": day,
                "valueQuantity": { "value": 60 + i, "unit": "kg", "code": "kg" }
            });
            // The same words in another resource type, and a code that only shares them.
            let note = json!({
                "resourceType": "Condition", "id": format!("c{i}"),
                "code": { "coding": [{ "code": "29463-7", "display": "Body weight" }] },
                "onsetDateTime": day
            });
            let near = json!({
                "resourceType": "Observation", "id": format!("n{i}"), "status": "final",
                "code": { "coding": [{ "system": "http://loinc.org", "code": "29463 7" }] },
                "effectiveDateTime": day,
                "valueQuantity": { "value": 1, "unit": "kg", "code": "kg" }
            });
            for v in [weight, note, near] {
                w.put(&v.to_string(), &v, None).unwrap();
            }
        }
        let all = series(&tx, "weight").unwrap();
        assert_eq!(
            all.points.len(),
            60 - 9,
            "entered-in-error and the others left out"
        );
        for limit in [1, 5, 12, 200] {
            let few = newest(&tx, "weight", limit).unwrap();
            let want: Vec<i64> = all.points.iter().take(limit).map(|p| p.item_id).collect();
            let got: Vec<i64> = few.points.iter().map(|p| p.item_id).collect();
            assert_eq!(got, want, "limit {limit}");
        }
    }

    #[test]
    fn concepts_are_found_by_id_synonym_and_name() {
        assert_eq!(concept("HbA1c").map(|c| c.id), Some("hba1c"));
        assert_eq!(concept("a1c").map(|c| c.id), Some("hba1c"));
        assert_eq!(concept("Blood Pressure").map(|c| c.id), Some("bp"));
        assert_eq!(concept("bp").map(|c| c.id), Some("bp"));
        assert!(concept("aspirin").is_none());
        assert!(is_loinc("2093-3") && !is_loinc("2093") && !is_loinc("a-1"));
    }

    #[test]
    fn units_convert_only_where_exact() {
        let p = |v: f64, u: &str| Point {
            item_id: 0,
            date: String::new(),
            value: v,
            second: None,
            unit: u.into(),
            written: String::new(),
            converted_from: None,
            comparable: true,
            source: String::new(),
            range: None,
        };
        let mut g = p(90.0, "mg/dL");
        normalise(&mut g, "mmol/L", "glucose");
        assert!((g.value - 4.9957).abs() < 1e-3 && g.comparable);
        assert_eq!(g.converted_from.as_deref(), Some("mg/dL"));
        let mut w = p(154.0, "[lb_av]");
        normalise(&mut w, "kg", "weight");
        assert!((w.value - 69.853).abs() < 1e-3);
        // Cholesterol in mmol/L is not converted to mg/dL: kept, flagged.
        let mut c = p(5.2, "mmol/L");
        normalise(&mut c, "mg/dL", "cholesterol");
        assert!(!c.comparable && c.converted_from.is_none() && c.value == 5.2);
        // HbA1c in IFCC mmol/mol is not NGSP %: kept apart.
        let mut a = p(48.0, "mmol/mol");
        normalise(&mut a, "%", "hba1c");
        assert!(!a.comparable);
    }

    #[test]
    fn points_read_quantities_pairs_and_ranges() {
        let bp = json!({"component": [
            {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]}, "valueQuantity": {"value": 128.4, "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]}, "valueQuantity": {"value": 82, "code": "mm[Hg]"}}]});
        let p = point(&bp, &["85354-9"]).unwrap();
        assert_eq!((p.value, p.second), (128.4, Some(82.0)));
        assert_eq!(p.written, "128.4/82 mmHg");
        let long = json!({"valueQuantity": {"value": 82.80592677079234, "unit": "kg"}});
        assert_eq!(point(&long, &["29463-7"]).unwrap().written, "82.8 kg");
        let a1c = json!({"valueQuantity": {"value": 6.1, "unit": "%"},
            "referenceRange": [{"low": {"value": 4.0, "unit": "%"}, "high": {"value": 5.9, "unit": "%"}}]});
        let p = point(&a1c, &["4548-4"]).unwrap();
        assert_eq!(p.range.as_deref(), Some("4.0–5.9 %"));
    }

    #[test]
    fn the_sparkline_runs_oldest_to_newest_over_comparable_values() {
        let s = Series {
            concept: "x".into(),
            name: "x".into(),
            unit: "%".into(),
            points: [8.0, 7.0, 6.0]
                .iter()
                .map(|v| Point {
                    item_id: 0,
                    date: String::new(),
                    value: *v,
                    second: None,
                    unit: "%".into(),
                    written: String::new(),
                    converted_from: None,
                    comparable: true,
                    source: String::new(),
                    range: None,
                })
                .collect(),
        };
        assert_eq!(sparkline(&s), "▁▅█");
    }
}
