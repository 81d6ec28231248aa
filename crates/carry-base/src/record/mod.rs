//! The record: how each FHIR resource is understood (category, date, display line,
//! codes, sensitivity) and kept (lossless JSON).

pub mod category;
mod json;
pub mod patient;
pub mod redisplay;
pub mod relabel;
pub mod release;
pub mod sameness;
pub mod sensitivity;
pub mod summary;
mod types;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
pub use json::minify;
pub use sensitivity::Label;
pub use types::is_resource_type;

/// The identifier system for a person's Carry signing key: a performer so named is a
/// carer who entered the item.
pub const KEY_SYSTEM: &str = "https://carry.health/fhir/NamingSystem/signing-key";
/// The code system of the tag a summary puts on an item the patient (`patient`) or a
/// carer (`carer`) entered, so that a reader tells it from a clinician's.
pub const ENTERED_BY_SYSTEM: &str = "https://carry.health/fhir/CodeSystem/entered-by";

/// The patient-facing category of a resource. The ids (`as_str`) are used in the
/// API, the CLI and grant documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Diagnoses and problems.
    Conditions,
    /// Prescriptions and medicines taken.
    Medications,
    /// Allergies and intolerances.
    Allergies,
    /// Vaccinations.
    Immunisations,
    /// Laboratory and other results, and reports.
    TestResults,
    /// Weight, blood pressure, pulse and the like.
    VitalSigns,
    /// Operations and procedures.
    Procedures,
    /// Visits and admissions.
    Encounters,
    /// Booked appointments.
    Appointments,
    /// Letters, summaries and attached documents.
    Documents,
    /// Care plans, goals, care teams and referrals.
    CarePlans,
    /// Records from social care.
    SocialCare,
    /// Paperwork about care rather than care: claims, explanations of benefit, cover,
    /// provenance. Left out of the timeline unless asked for.
    Administrative,
    /// Everything else: people, organisations, surveys.
    Other,
}

impl Category {
    /// Every category, in display order.
    pub const ALL: [Category; 14] = [
        Category::Conditions,
        Category::Medications,
        Category::Allergies,
        Category::Immunisations,
        Category::TestResults,
        Category::VitalSigns,
        Category::Procedures,
        Category::Encounters,
        Category::Appointments,
        Category::Documents,
        Category::CarePlans,
        Category::SocialCare,
        Category::Administrative,
        Category::Other,
    ];

    /// The category id, e.g. `test-results`.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Conditions => "conditions",
            Category::Medications => "medications",
            Category::Allergies => "allergies",
            Category::Immunisations => "immunisations",
            Category::TestResults => "test-results",
            Category::VitalSigns => "vital-signs",
            Category::Procedures => "procedures",
            Category::Encounters => "encounters",
            Category::Appointments => "appointments",
            Category::Documents => "documents",
            Category::CarePlans => "care-plans",
            Category::SocialCare => "social-care",
            Category::Administrative => "administrative",
            Category::Other => "other",
        }
    }

    /// Parse a category id.
    pub fn parse(s: &str) -> Result<Category> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                let ids: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
                Error::invalid(format!(
                    "unknown category '{s}'; use one of {}",
                    ids.join(", ")
                ))
            })
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who entered a resource, kept apart from its category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnteredBy {
    /// A care provider (an import or a sync).
    Provider,
    /// The person themself.
    #[serde(rename = "self")]
    Patient,
    /// A carer on the person's behalf.
    Carer,
}

impl EnteredBy {
    /// The stored id: `provider`, `self` or `carer`.
    pub fn as_str(self) -> &'static str {
        match self {
            EnteredBy::Provider => "provider",
            EnteredBy::Patient => "self",
            EnteredBy::Carer => "carer",
        }
    }

    /// Parse a stored id.
    pub fn parse(s: &str) -> Result<EnteredBy> {
        match s {
            "provider" => Ok(EnteredBy::Provider),
            "self" => Ok(EnteredBy::Patient),
            "carer" => Ok(EnteredBy::Carer),
            _ => Err(Error::internal(format!("unknown entered_by '{s}'"))),
        }
    }
}

/// One coding (or the text of a concept, with no system or code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Code {
    /// The code system URI.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub system: Option<String>,
    /// The code.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<String>,
    /// Its display text.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub display: Option<String>,
}

/// Everything the vault indexes about one resource.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// `resourceType`.
    pub resource_type: String,
    /// `id`, when present.
    pub id: Option<String>,
    /// `meta.versionId`, when present.
    pub version_id: Option<String>,
    /// Patient-facing category.
    pub category: Category,
    /// The clinically relevant date as written, and its sort key.
    pub date: Option<(String, i64)>,
    /// The display line.
    pub display: String,
    /// The codes.
    pub codes: Vec<Code>,
    /// Sensitivity labels with their rules.
    pub labels: Vec<Label>,
}

/// The text full-text search indexes besides the display line: code displays and codes.
pub fn search_codes(a: &Analysis) -> String {
    let mut out = String::new();
    for c in &a.codes {
        for part in [&c.display, &c.code].into_iter().flatten() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(part);
        }
    }
    out
}

/// Check that `resource` is a FHIR resource and work out its indexed columns.
/// Errors name the problem, never the content.
pub fn analyse(resource: &Value) -> Result<Analysis> {
    let obj = resource
        .as_object()
        .ok_or_else(|| Error::invalid("the resource is not a JSON object"))?;
    let resource_type = match obj.get("resourceType") {
        Some(Value::String(t)) if is_resource_type(t) => t.clone(),
        Some(Value::String(t)) => {
            let shown: String = t.chars().take(40).collect();
            return Err(Error::invalid(format!("unknown resourceType '{shown}'")));
        }
        Some(_) => return Err(Error::invalid("resourceType is not a string")),
        None => return Err(Error::invalid("missing resourceType")),
    };
    let id = match obj.get("id") {
        None => None,
        Some(Value::String(id)) if is_valid_id(id) => Some(id.clone()),
        Some(_) => {
            return Err(Error::invalid(
                "id is not a FHIR id (1-64 of A-Z a-z 0-9 - .)",
            ))
        }
    };
    let version_id = resource
        .pointer("/meta/versionId")
        .and_then(Value::as_str)
        .map(str::to_string);
    let codes = summary::codes(resource);
    let display = summary::display(&resource_type, resource);
    let labels = sensitivity::labels(resource, &codes, &display);
    Ok(Analysis {
        category: category::categorise(&resource_type, resource),
        date: summary::clinical_date(&resource_type, resource),
        id,
        version_id,
        display,
        codes,
        labels,
        resource_type,
    })
}

/// Whether `id` is a valid FHIR id.
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}
