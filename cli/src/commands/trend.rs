//! `carry trend`: one result over time.

use carry_core::trend::{sparkline, Series};
use carry_core::{Profile, Result};

use crate::output::{clean, Outcome};

/// A series as `carry trend` prints it: JSON as the core gives it; as text, a line per
/// value, newest first, then a sparkline oldest to newest.
#[derive(serde::Serialize)]
#[serde(transparent)]
struct Shown(Series);

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.0;
        if s.points.is_empty() {
            return writeln!(f, "{}: no values in the record", s.name);
        }
        writeln!(f, "{} ({} values, newest first)", s.name, s.points.len())?;
        for p in &s.points {
            let mut line = format!(
                "  {:<10}  {:<16}  {}",
                p.date.get(..10).unwrap_or(&p.date),
                p.written,
                clean(&p.source)
            );
            if let Some(r) = &p.range {
                line.push_str(&format!("  (range {})", clean(r)));
            }
            if let Some(u) = &p.converted_from {
                line.push_str(&format!("  (converted from {u})"));
            }
            if !p.comparable {
                line.push_str("  (another unit: kept apart, not in the line below)");
            }
            writeln!(f, "{line}")?;
        }
        let line = sparkline(s);
        if !line.is_empty() {
            writeln!(f, "Oldest to newest: {line}")?;
        }
        Ok(())
    }
}

/// `carry trend CONCEPT`.
pub fn trend(profile: &Profile, concept: &str) -> Result<Outcome> {
    Ok(Outcome::ok(Shown(profile.trend(concept)?)))
}
