//! Sensitivity labels: HL7 v3 codes that mark content a person may not want to show
//! by default. Labelled resources are left out of every grant unless the person
//! includes the label explicitly.
//!
//! The labels used: `PSY` (mental health), `ETH` (substance use), `HIV`, `SEX`
//! (sexual and reproductive health, including sexually transmitted infections),
//! `SDV` (sexual assault, abuse, domestic violence: safeguarding), `GDIS` (genetics),
//! and the confidentiality codes `R` and `V` when a sender set them.
//!
//! The rules, each recorded by name when it fires:
//! - `meta.security`: a label the sender already set.
//! - `icd10:<range>`: an ICD-10 code in a sensitive range (F00–F99, B20–B24, …).
//! - `snomed:<concept>` and `loinc:<code>`: a listed concept (see the tables below).
//! - `category:genetics`: a report category of HL7 v2 table 0074 "GE".
//! - `keyword:<word>`: a word in the display line or a code display, matched at the
//!   start of a word ("alcohol", "depress", "hiv", …).
//!
//! Over-labelling costs the person one explicit choice; under-labelling could expose
//! them, so the keyword rule leans wide.

use std::sync::OnceLock;

use aho_corasick::AhoCorasick;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Code;

/// A sensitivity label and the rule that set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// The HL7 v3 code, e.g. `PSY`.
    pub label: String,
    /// The rule that fired, e.g. `icd10:F00-F99`.
    pub rule: String,
}

/// The HL7 v3 sensitivity codes Carry understands in `meta.security`.
const KNOWN_SECURITY: &[&str] = &[
    "PSY", "MH", "ETH", "ETHUD", "OPIOIDUD", "SUD", "HIV", "SEX", "STD", "SDV", "GDIS", "SCA",
    "SOC", "R", "V",
];

/// ICD-10 ranges: (first, last, label, rule). Compared on the first three characters.
const ICD10_RANGES: &[(&str, &str, &str, &str)] = &[
    ("F10", "F19", "ETH", "icd10:F10-F19"),
    ("F00", "F99", "PSY", "icd10:F00-F99"),
    ("B20", "B24", "HIV", "icd10:B20-B24"),
    ("Z21", "Z21", "HIV", "icd10:Z21"),
    ("A50", "A64", "SEX", "icd10:A50-A64"),
    ("Z30", "Z30", "SEX", "icd10:Z30"),
    ("O04", "O04", "SEX", "icd10:O04"),
    ("T74", "T74", "SDV", "icd10:T74"),
    ("T76", "T76", "SDV", "icd10:T76"),
    ("Y05", "Y07", "SDV", "icd10:Y05-Y07"),
    ("Q90", "Q99", "GDIS", "icd10:Q90-Q99"),
];

/// SNOMED CT concepts: (concept id, label). Each is the named disorder itself.
const SNOMED: &[(&str, &str)] = &[
    ("74732009", "PSY"),  // Mental disorder
    ("35489007", "PSY"),  // Depressive disorder
    ("370143000", "PSY"), // Major depressive disorder
    ("36923009", "PSY"),  // Major depression, single episode
    ("197480006", "PSY"), // Anxiety disorder
    ("58214004", "PSY"),  // Schizophrenia
    ("13746004", "PSY"),  // Bipolar disorder
    ("47505003", "PSY"),  // Posttraumatic stress disorder
    ("7200002", "ETH"),   // Alcoholism
    ("66214007", "ETH"),  // Substance abuse
    ("5602001", "ETH"),   // Opioid abuse
    ("86406008", "HIV"),  // Human immunodeficiency virus infection
    ("165816005", "HIV"), // HIV positive
    ("76272004", "SEX"),  // Syphilis
    ("15628003", "SEX"),  // Gonorrhea
    ("105629000", "SEX"), // Chlamydial infection
];

/// LOINC codes of screening instruments whose answers are sensitive.
const LOINC: &[(&str, &str)] = &[
    ("44249-1", "PSY"), // PHQ-9 panel
    ("44261-6", "PSY"), // PHQ-9 total score
    ("55757-9", "PSY"), // PHQ-2 panel
    ("69737-5", "PSY"), // GAD-7 panel
    ("70274-6", "PSY"), // GAD-7 total score
    ("72109-2", "ETH"), // AUDIT-C panel
    ("75626-2", "ETH"), // AUDIT-C total score
    ("82667-7", "ETH"), // DAST-10 total score
];

/// Word starts that label a resource: (word, label).
const KEYWORDS: &[(&str, &str)] = &[
    ("depress", "PSY"),
    ("anxiety", "PSY"),
    ("schizo", "PSY"),
    ("bipolar", "PSY"),
    ("psychos", "PSY"),
    ("psychotic", "PSY"),
    ("psychiatr", "PSY"),
    ("mental health", "PSY"),
    ("suicid", "PSY"),
    ("self-harm", "PSY"),
    ("self harm", "PSY"),
    ("eating disorder", "PSY"),
    ("post-traumatic stress", "PSY"),
    ("alcohol", "ETH"),
    ("drinker", "ETH"),
    ("opioid", "ETH"),
    ("heroin", "ETH"),
    ("cocaine", "ETH"),
    ("substance abuse", "ETH"),
    ("substance misuse", "ETH"),
    ("substance use", "ETH"),
    ("drug abuse", "ETH"),
    ("drug misuse", "ETH"),
    ("hiv", "HIV"),
    ("human immunodeficiency virus", "HIV"),
    ("sexually transmitted", "SEX"),
    ("sexual health", "SEX"),
    ("chlamydia", "SEX"),
    ("gonorr", "SEX"),
    ("syphilis", "SEX"),
    ("contracept", "SEX"),
    ("termination of pregnancy", "SEX"),
    ("abortion", "SEX"),
    ("domestic violence", "SDV"),
    ("domestic abuse", "SDV"),
    ("sexual assault", "SDV"),
    ("rape", "SDV"),
    ("safeguarding", "SDV"),
    ("child protection", "SDV"),
    ("maltreatment", "SDV"),
    ("genetic", "GDIS"),
    ("genomic", "GDIS"),
    ("chromosom", "GDIS"),
];

fn push(out: &mut Vec<Label>, label: &str, rule: String) {
    if !out.iter().any(|l| l.label == label && l.rule == rule) {
        out.push(Label {
            label: label.to_string(),
            rule,
        });
    }
}

fn icd10_label(code: &str) -> Option<(&'static str, &'static str)> {
    let head: String = code.chars().filter(|c| *c != '.').take(3).collect();
    if head.len() < 3 {
        return None;
    }
    let head = head.to_ascii_uppercase();
    ICD10_RANGES
        .iter()
        .find(|(lo, hi, _, _)| head.as_str() >= *lo && head.as_str() <= *hi)
        .map(|(_, _, label, rule)| (*label, *rule))
}

/// Whether `at` starts a word in `text`.
fn starts_word(text: &str, at: usize) -> bool {
    !text
        .get(..at)
        .and_then(|before| before.chars().next_back())
        .is_some_and(char::is_alphanumeric)
}

/// Every keyword as one automaton, built once, so that one pass over the text finds
/// them all. `None` only if it could not be built, and then each word is looked for
/// in turn.
fn keyword_finder() -> Option<&'static AhoCorasick> {
    static FINDER: OnceLock<Option<AhoCorasick>> = OnceLock::new();
    FINDER
        .get_or_init(|| AhoCorasick::new(KEYWORDS.iter().map(|(word, _)| word)).ok())
        .as_ref()
}

/// Which of [`KEYWORDS`] start a word in `text` (already lower-cased), by index.
fn keywords_in(text: &str) -> Vec<bool> {
    let mut found = vec![false; KEYWORDS.len()];
    match keyword_finder() {
        Some(finder) => {
            // Overlapping: a word may start inside another one's match ("psychos" and
            // "psychotic" at the same place, "hiv" inside "archive").
            for m in finder.find_overlapping_iter(text) {
                if starts_word(text, m.start()) {
                    if let Some(slot) = found.get_mut(m.pattern().as_usize()) {
                        *slot = true;
                    }
                }
            }
        }
        None => found = keywords_one_by_one(text),
    }
    found
}

/// Each keyword looked for on its own, word by word: the fallback when the automaton
/// could not be built, and what the one-pass finder must agree with.
fn keywords_one_by_one(text: &str) -> Vec<bool> {
    KEYWORDS
        .iter()
        .map(|(word, _)| text.match_indices(word).any(|(i, _)| starts_word(text, i)))
        .collect()
}

/// Every label that applies to `resource`, given its extracted `codes` and `display`.
pub fn labels(resource: &Value, codes: &[Code], display: &str) -> Vec<Label> {
    let mut out = Vec::new();
    if let Some(sec) = resource.pointer("/meta/security").and_then(Value::as_array) {
        for code in sec
            .iter()
            .filter_map(|c| c.get("code").and_then(Value::as_str))
        {
            if KNOWN_SECURITY.contains(&code) {
                push(&mut out, code, "meta.security".into());
            }
        }
    }
    for c in codes {
        let system = c.system.as_deref().unwrap_or("");
        let Some(code) = c.code.as_deref() else {
            continue;
        };
        if system.contains("icd-10") || system.contains("icd10") {
            if let Some((label, rule)) = icd10_label(code) {
                push(&mut out, label, rule.into());
            }
        } else if system == "http://snomed.info/sct" {
            if let Some((_, label)) = SNOMED.iter().find(|(id, _)| *id == code) {
                push(&mut out, label, format!("snomed:{code}"));
            }
        } else if system == "http://loinc.org" {
            if let Some((_, label)) = LOINC.iter().find(|(id, _)| *id == code) {
                push(&mut out, label, format!("loinc:{code}"));
            }
        }
    }
    let genetics = resource
        .get("category")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("coding").and_then(Value::as_array))
        .flatten()
        .any(|c| {
            c.get("code").and_then(Value::as_str) == Some("GE")
                && c.get("system")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.ends_with("v2-0074"))
        });
    if genetics {
        push(&mut out, "GDIS", "category:genetics".into());
    }
    let mut text = display.to_lowercase();
    for c in codes {
        if let Some(d) = &c.display {
            text.push('\n');
            text.push_str(&d.to_lowercase());
        }
    }
    let found = keywords_in(&text);
    for ((word, label), _) in KEYWORDS.iter().zip(found).filter(|(_, f)| *f) {
        push(&mut out, label, format!("keyword:{word}"));
    }
    out
}

/// The distinct label codes of `labels`, sorted, space-separated (the stored column).
pub fn label_column(labels: &[Label]) -> String {
    let mut codes: Vec<&str> = labels.iter().map(|l| l.label.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
    codes.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(system: &str, code: &str, display: &str) -> Code {
        Code {
            system: Some(system.into()),
            code: Some(code.into()),
            display: Some(display.into()),
        }
    }

    #[test]
    fn the_one_pass_finder_agrees_with_each_word_looked_for_on_its_own() {
        let mut texts: Vec<String> = vec![
            String::new(),
            "archive of shiv and chivalry".into(),
            "psychotic episode; psychosis".into(),
            "self-harm, self harm and selfharm".into(),
            "(hiv) and ¿hiv and éhiv and 1hiv".into(),
            "alcoholic drinkers: post-traumatic stress".into(),
            "non-genetic antigenetics chromosomal".into(),
            "grape rapeseed rape".into(),
        ];
        // Every keyword at a word start, inside a word, and run into the next one.
        for (word, _) in KEYWORDS {
            texts.push(format!("x {word} y"));
            texts.push(format!("x{word}y"));
            texts.push(format!("{word}{word}"));
            texts.push(word.chars().rev().collect());
        }
        let all: String = KEYWORDS.iter().map(|(w, _)| format!("{w} ")).collect();
        texts.push(all.clone());
        let mut hits = 0;
        for text in &texts {
            let found = keywords_in(text);
            assert_eq!(found, keywords_one_by_one(text), "{text:?}");
            hits += found.iter().filter(|f| **f).count();
        }
        assert!(keywords_in(&all).iter().all(|f| *f), "every keyword found");
        assert!(hits > KEYWORDS.len(), "the texts exercise the finder");
    }

    #[test]
    fn icd10_ranges_and_substance_before_mental_health() {
        let icd = "http://hl7.org/fhir/sid/icd-10";
        let l = labels(&json!({}), &[code(icd, "F32.1", "x")], "");
        assert_eq!(label_column(&l), "PSY");
        assert_eq!(l[0].rule, "icd10:F00-F99");
        let l = labels(&json!({}), &[code(icd, "F10.2", "x")], "");
        assert_eq!(label_column(&l), "ETH");
        let l = labels(&json!({}), &[code(icd, "B20", "x")], "");
        assert_eq!(label_column(&l), "HIV");
        let l = labels(&json!({}), &[code(icd, "E11", "x")], "");
        assert!(l.is_empty());
    }

    #[test]
    fn meta_security_snomed_loinc_and_category() {
        let r = json!({"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"SDV"}]}});
        assert_eq!(label_column(&labels(&r, &[], "")), "SDV");
        let sct = code("http://snomed.info/sct", "86406008", "x");
        assert_eq!(label_column(&labels(&json!({}), &[sct], "")), "HIV");
        let phq = code("http://loinc.org", "44261-6", "x");
        assert_eq!(labels(&json!({}), &[phq], "")[0].rule, "loinc:44261-6");
        let ge = json!({"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0074","code":"GE"}]}]});
        assert_eq!(label_column(&labels(&ge, &[], "")), "GDIS");
    }

    #[test]
    fn keywords_match_word_starts_only() {
        assert_eq!(
            label_column(&labels(&json!({}), &[], "Heavy drinker")),
            "ETH"
        );
        assert_eq!(
            label_column(&labels(&json!({}), &[], "HIV screening")),
            "HIV"
        );
        assert!(labels(&json!({}), &[], "Archive of grape therapy notes").is_empty());
        assert!(labels(&json!({}), &[], "Body weight 72 kg").is_empty());
    }
}
