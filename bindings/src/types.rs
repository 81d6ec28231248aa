//! Records and enums that cross the FFI. Each mirrors a core type and converts from
//! it; the doc comments flow into the Swift and Kotlin bindings.

use std::collections::HashMap;

use carry_core as cc;

/// The patient-facing category of a record item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, uniffi::Enum)]
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

macro_rules! mirror_enum {
    ($ours:ident, $theirs:path, [$($v:ident),+]) => {
        impl From<$theirs> for $ours {
            fn from(c: $theirs) -> Self {
                use $theirs as T;
                match c { $(T::$v => $ours::$v),+ }
            }
        }
        impl From<$ours> for $theirs {
            fn from(c: $ours) -> Self {
                use $theirs as T;
                match c { $($ours::$v => T::$v),+ }
            }
        }
    };
}
pub(crate) use mirror_enum;

mirror_enum!(
    Category,
    cc::Category,
    [
        Conditions,
        Medications,
        Allergies,
        Immunisations,
        TestResults,
        VitalSigns,
        Procedures,
        Encounters,
        Appointments,
        Documents,
        CarePlans,
        SocialCare,
        Administrative,
        Other
    ]
);

/// Who entered an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum EnteredBy {
    /// A care provider (an import or a sync).
    Provider,
    /// The person themself.
    Patient,
    /// A carer on the person's behalf.
    Carer,
}

mirror_enum!(EnteredBy, cc::EnteredBy, [Provider, Patient, Carer]);

/// One line of the timeline or of search results.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TimelineItem {
    /// The item id, for `show`.
    pub id: i64,
    /// The FHIR resource type, e.g. `Observation`.
    pub resource_type: String,
    /// The patient-facing category.
    pub category: Category,
    /// The clinically relevant date as written (FHIR date or dateTime), if any.
    pub date: Option<String>,
    /// A one-line, readable description.
    pub display: String,
    /// Where it came from: a file name, a provider, or `self`.
    pub source: String,
    /// HL7 v3 sensitivity labels, e.g. `PSY`. Empty when none apply.
    pub sensitivity: Vec<String>,
    /// Who entered it.
    pub entered_by: EnteredBy,
    /// Other sources that hold the same fact, grouped under this line.
    pub also_from: Vec<String>,
    /// Whether the provider no longer holds it (it is kept, marked as removed).
    pub gone_at_source: bool,
}

impl From<cc::Item> for TimelineItem {
    fn from(i: cc::Item) -> Self {
        TimelineItem {
            id: i.id,
            resource_type: i.resource_type,
            category: i.category.into(),
            date: i.date,
            display: i.display,
            source: i.source,
            sensitivity: i.sensitivity,
            entered_by: i.entered_by.into(),
            also_from: i.also_from,
            gone_at_source: i.gone_at_source,
        }
    }
}

/// Filters and paging for the timeline. Every field is optional.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct TimelineQuery {
    /// Only these categories; empty means every category but `Administrative`
    /// (claims and other paperwork), which shows only when listed.
    #[uniffi(default = [])]
    pub categories: Vec<Category>,
    /// Only items dated on or after this FHIR date (`2024`, `2024-05-31`).
    #[uniffi(default = None)]
    pub since: Option<String>,
    /// Only items dated before this FHIR date.
    #[uniffi(default = None)]
    pub until: Option<String>,
    /// Only items from this source.
    #[uniffi(default = None)]
    pub source: Option<String>,
    /// Page size: default 50, at most 500.
    #[uniffi(default = None)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[uniffi(default = None)]
    pub cursor: Option<String>,
}

impl From<TimelineQuery> for cc::TimelineQuery {
    fn from(q: TimelineQuery) -> Self {
        cc::TimelineQuery {
            categories: q.categories.into_iter().map(Into::into).collect(),
            since: q.since,
            until: q.until,
            source: q.source,
            limit: q.limit,
            cursor: q.cursor,
        }
    }
}

/// A page of the timeline, newest first.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TimelinePage {
    /// The items.
    pub items: Vec<TimelineItem>,
    /// Pass this back as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
}

impl From<cc::Page> for TimelinePage {
    fn from(p: cc::Page) -> Self {
        TimelinePage {
            items: p.items.into_iter().map(Into::into).collect(),
            next_cursor: p.next_cursor,
        }
    }
}

/// One entry of a file that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Rejection {
    /// The file's name.
    pub file: String,
    /// Where: `entry[3]`, `line 7`, or `file` when the whole file was refused.
    pub entry: String,
    /// Why. Never contains health data.
    pub reason: String,
}

/// How an imported file was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum FileFormat {
    /// One resource that is not a Bundle.
    Resource,
    /// A Bundle, whose entries were imported.
    Bundle,
    /// Newline-delimited JSON.
    Ndjson,
}

mirror_enum!(FileFormat, cc::FileFormat, [Resource, Bundle, Ndjson]);

/// What importing one file did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ImportReport {
    /// The file's name.
    pub file: String,
    /// How it was read; null when it could not be read at all (nothing was stored).
    pub format: Option<FileFormat>,
    /// Resources new to the record.
    pub imported: u64,
    /// Resources already held whose content changed.
    pub updated: u64,
    /// Resources already held exactly so.
    pub unchanged: u64,
    /// Bundle entries with no resource (for example DELETE requests).
    pub skipped: u64,
    /// Of the resources stored, how many arrived as FHIR STU3 (a GP Connect record)
    /// and were converted to R4; each keeps the text it arrived in.
    pub converted: u64,
    /// Entries (or the whole file) not imported.
    pub rejected: Vec<Rejection>,
}

impl From<cc::FileReport> for ImportReport {
    fn from(r: cc::FileReport) -> Self {
        ImportReport {
            file: r.file,
            format: r.format.map(Into::into),
            imported: r.imported,
            updated: r.updated,
            unchanged: r.unchanged,
            skipped: r.skipped,
            converted: r.converted,
            rejected: r
                .rejected
                .into_iter()
                .map(|x| Rejection {
                    file: x.file,
                    entry: x.entry,
                    reason: x.reason,
                })
                .collect(),
        }
    }
}

/// Progress of an import, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct ImportProgress {
    /// Bytes of the file read so far.
    pub bytes_read: u64,
    /// The file's size in bytes.
    pub bytes_total: u64,
    /// Resources handled so far.
    pub resources: u64,
}

impl From<cc::ImportProgress> for ImportProgress {
    fn from(p: cc::ImportProgress) -> Self {
        ImportProgress {
            bytes_read: p.bytes_read,
            bytes_total: p.bytes_total,
            resources: p.resources,
        }
    }
}

/// Counts over the whole record.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RecordStats {
    /// Resources held.
    pub resources: u64,
    /// Resources per FHIR type.
    pub by_type: HashMap<String, u64>,
    /// Resources per category id (`vital-signs`, …).
    pub by_category: HashMap<String, u64>,
    /// Resources with at least one sensitivity label.
    pub sensitive: u64,
    /// Sources: files, providers and the person.
    pub sources: u64,
}

impl From<cc::Stats> for RecordStats {
    fn from(s: cc::Stats) -> Self {
        RecordStats {
            resources: s.resources,
            by_type: s.by_type.into_iter().collect(),
            by_category: s.by_category.into_iter().collect(),
            sensitive: s.sensitive,
            sources: s.sources,
        }
    }
}

/// A coding, or the text of a concept (with no system or code).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Code {
    /// The code system URI.
    pub system: Option<String>,
    /// The code.
    pub code: Option<String>,
    /// Its display text.
    pub display: Option<String>,
}

/// A sensitivity label and the rule that set it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SensitivityLabel {
    /// The HL7 v3 code, e.g. `PSY`.
    pub label: String,
    /// The rule that fired, e.g. `icd10:F00-F99`.
    pub rule: String,
}

/// A reference inside a resource, resolved within the record.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ResourceReference {
    /// Where in the resource, e.g. `subject`.
    pub path: String,
    /// The reference as written.
    pub reference: String,
    /// The item it points to, if the record holds it.
    pub target: Option<i64>,
}

/// One item in full.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ResourceDetail {
    /// Its timeline line.
    pub item: TimelineItem,
    /// The `fullUrl` it arrived with.
    pub full_url: Option<String>,
    /// Its codes.
    pub codes: Vec<Code>,
    /// Its sensitivity labels, with their rules.
    pub labels: Vec<SensitivityLabel>,
    /// Its references.
    pub references: Vec<ResourceReference>,
    /// The FHIR resource exactly as received, as JSON text; for one converted from
    /// FHIR STU3 (a GP Connect record), its R4 view.
    pub json: String,
    /// For a resource converted from FHIR STU3, the JSON text it arrived in.
    pub original: Option<String>,
}

impl From<cc::Detail> for ResourceDetail {
    fn from(d: cc::Detail) -> Self {
        ResourceDetail {
            item: d.item.into(),
            full_url: d.full_url,
            codes: d
                .codes
                .into_iter()
                .map(|c| Code {
                    system: c.system,
                    code: c.code,
                    display: c.display,
                })
                .collect(),
            labels: d
                .labels
                .into_iter()
                .map(|l| SensitivityLabel {
                    label: l.label,
                    rule: l.rule,
                })
                .collect(),
            references: d
                .references
                .into_iter()
                .map(|r| ResourceReference {
                    path: r.path,
                    reference: r.reference,
                    target: r.target,
                })
                .collect(),
            json: d.json,
            original: d.original,
        }
    }
}

/// Units of a weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum WeightUnit {
    /// Kilograms.
    Kilograms,
    /// Pounds.
    Pounds,
}

mirror_enum!(WeightUnit, cc::WeightUnit, [Kilograms, Pounds]);

/// Units of a blood glucose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum GlucoseUnit {
    /// Millimoles per litre (UK).
    MmolPerL,
    /// Milligrams per decilitre.
    MgPerDl,
}

mirror_enum!(GlucoseUnit, cc::GlucoseUnit, [MmolPerL, MgPerDl]);

/// Units of a body temperature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum TemperatureUnit {
    /// Degrees Celsius.
    Celsius,
    /// Degrees Fahrenheit.
    Fahrenheit,
}

mirror_enum!(TemperatureUnit, cc::TemperatureUnit, [Celsius, Fahrenheit]);

/// A reading the person takes themself. Values are checked for plausibility.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum Reading {
    /// Body weight (0.5–500 kg, 1–1100 lb).
    Weight {
        /// The number on the scale.
        value: f64,
        /// Its unit.
        unit: WeightUnit,
    },
    /// Blood pressure in mmHg (systolic 50–300 above diastolic 20–200).
    BloodPressure {
        /// Systolic.
        systolic: u32,
        /// Diastolic.
        diastolic: u32,
    },
    /// Heart rate, 20–300 beats per minute.
    HeartRate {
        /// Beats per minute.
        bpm: u32,
    },
    /// Blood glucose (0.5–50 mmol/L, 10–900 mg/dL).
    Glucose {
        /// The meter's number.
        value: f64,
        /// Its unit.
        unit: GlucoseUnit,
    },
    /// A mood-diary entry from 1 (very low) to 5 (very good). Labelled PSY.
    Mood {
        /// The score.
        score: u8,
    },
    /// Body temperature (30–45 °C, 86–113 °F).
    Temperature {
        /// The thermometer's number.
        value: f64,
        /// Its unit.
        unit: TemperatureUnit,
    },
    /// Oxygen saturation from a pulse oximeter, 50–100%.
    OxygenSaturation {
        /// Percent.
        percent: u32,
    },
    /// Peak flow, 50–1000 litres per minute.
    PeakFlow {
        /// Litres per minute.
        litres_per_minute: u32,
    },
}

impl From<Reading> for cc::Reading {
    fn from(r: Reading) -> Self {
        match r {
            Reading::Weight { value, unit } => cc::Reading::Weight {
                value,
                unit: unit.into(),
            },
            Reading::BloodPressure {
                systolic,
                diastolic,
            } => cc::Reading::BloodPressure {
                systolic,
                diastolic,
            },
            Reading::HeartRate { bpm } => cc::Reading::HeartRate { bpm },
            Reading::Glucose { value, unit } => cc::Reading::Glucose {
                value,
                unit: unit.into(),
            },
            Reading::Mood { score } => cc::Reading::Mood { score },
            Reading::Temperature { value, unit } => cc::Reading::Temperature {
                value,
                unit: unit.into(),
            },
            Reading::OxygenSaturation { percent } => cc::Reading::OxygenSaturation { percent },
            Reading::PeakFlow { litres_per_minute } => cc::Reading::PeakFlow { litres_per_minute },
        }
    }
}

impl From<cc::Reading> for Reading {
    fn from(r: cc::Reading) -> Self {
        match r {
            cc::Reading::Weight { value, unit } => Reading::Weight {
                value,
                unit: unit.into(),
            },
            cc::Reading::BloodPressure {
                systolic,
                diastolic,
            } => Reading::BloodPressure {
                systolic,
                diastolic,
            },
            cc::Reading::HeartRate { bpm } => Reading::HeartRate { bpm },
            cc::Reading::Glucose { value, unit } => Reading::Glucose {
                value,
                unit: unit.into(),
            },
            cc::Reading::Mood { score } => Reading::Mood { score },
            cc::Reading::Temperature { value, unit } => Reading::Temperature {
                value,
                unit: unit.into(),
            },
            cc::Reading::OxygenSaturation { percent } => Reading::OxygenSaturation { percent },
            cc::Reading::PeakFlow { litres_per_minute } => Reading::PeakFlow { litres_per_minute },
        }
    }
}

/// Which part of the record to export. Empty fields mean everything.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct ExportScope {
    /// Only these categories.
    #[uniffi(default = [])]
    pub categories: Vec<Category>,
    /// Only resources dated on or after this FHIR date.
    #[uniffi(default = None)]
    pub since: Option<String>,
    /// Only resources dated before this FHIR date.
    #[uniffi(default = None)]
    pub until: Option<String>,
    /// Only this source.
    #[uniffi(default = None)]
    pub source: Option<String>,
    /// One copy per fact (as the timeline shows it) instead of every copy every
    /// source sent; the default keeps every copy, losslessly.
    #[uniffi(default = false)]
    pub one_per_fact: bool,
}

impl From<ExportScope> for cc::ExportScope {
    fn from(s: ExportScope) -> Self {
        cc::ExportScope {
            categories: s.categories.into_iter().map(Into::into).collect(),
            since: s.since,
            until: s.until,
            source: s.source,
            one_per_fact: s.one_per_fact,
        }
    }
}

/// Facts about a profile.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ProfileInfo {
    /// The name the person gave it.
    pub name: String,
    /// When it was created, in Unix seconds.
    pub created_at: i64,
    /// The vault's schema version.
    pub schema_version: i64,
    /// The item id of the Patient the profile is about, once known.
    pub self_patient: Option<i64>,
}

impl From<cc::ProfileInfo> for ProfileInfo {
    fn from(i: cc::ProfileInfo) -> Self {
        ProfileInfo {
            name: i.name,
            created_at: i.created_at,
            schema_version: i.schema_version,
            self_patient: i.self_patient,
        }
    }
}
