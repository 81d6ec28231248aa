//! Results over time, as apps draw them: a concept's values newest first.

use carry_core::trend as ct;

use crate::error::Result;
use crate::profile::{blocking, Profile};

/// One value of a [`TrendSeries`].
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TrendPoint {
    /// The item it comes from (for `show`).
    pub item_id: i64,
    /// Its date as written (a FHIR date or dateTime).
    pub date: String,
    /// The value, in the series' unit when `comparable`, else in `unit`.
    pub value: f64,
    /// The second value of a pair: diastolic, for blood pressure.
    pub second: Option<f64>,
    /// The unit of `value` (UCUM).
    pub unit: String,
    /// The value as the record wrote it, as a person reads it (`82.8 kg`).
    pub written: String,
    /// The unit it was converted from, when it was (exact conversions only).
    pub converted_from: Option<String>,
    /// Whether it is in the series' unit; a value in another unit that cannot be
    /// converted exactly is kept, with this false: draw it apart.
    pub comparable: bool,
    /// Where it came from (a provider, a file, `self`).
    pub source: String,
    /// The reference range as written, if any.
    pub range: Option<String>,
}

/// A concept's values over time, newest first, one per fact.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TrendSeries {
    /// The concept's id (`hba1c`, `bp`…) or the LOINC code followed.
    pub concept: String,
    /// Its name, as a person reads it.
    pub name: String,
    /// The unit of its comparable values (UCUM).
    pub unit: String,
    /// The values, newest first.
    pub points: Vec<TrendPoint>,
}

impl From<ct::Series> for TrendSeries {
    fn from(s: ct::Series) -> Self {
        TrendSeries {
            concept: s.concept,
            name: s.name,
            unit: s.unit,
            points: s
                .points
                .into_iter()
                .map(|p| TrendPoint {
                    item_id: p.item_id,
                    date: p.date,
                    value: p.value,
                    second: p.second,
                    unit: p.unit,
                    written: p.written,
                    converted_from: p.converted_from,
                    comparable: p.comparable,
                    source: p.source,
                    range: p.range,
                })
                .collect(),
        }
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Profile {
    /// The values of one result over time, newest first: `concept` is `hba1c`, `bp`,
    /// `weight`, `bmi`, `cholesterol`, `egfr`, `creatinine`, `glucose`, a synonym
    /// (`a1c`, `blood pressure`) or a LOINC code (`2093-3`). `InvalidInput` for a
    /// word that names no concept.
    pub async fn trend(&self, concept: String) -> Result<TrendSeries> {
        let core = self.core.clone();
        Ok(blocking(move || core.trend(&concept)).await?.into())
    }
}
