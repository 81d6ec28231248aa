//! The person's preferences: `carry prefs`.

use std::path::Path;

use carry_core::prefs::{self, NATIONAL_OPT_OUT_URL};
use carry_core::{EmergencyCardContents, OptOut, Preferences, PrefsChange, Result};

use crate::context::open;
use crate::exit;
use crate::output::{json_mode, print_json, Outcome};

/// The options of `carry prefs`.
#[derive(clap::Args)]
pub struct PrefsArgs {
    /// Record the national data opt-out (research and planning) as on or off. Carry
    /// keeps your record of it; register it with the NHS at
    /// https://www.nhs.uk/your-nhs-data-matters/. Also --research-opt-out.
    #[arg(long, alias = "research-opt-out", value_name = "on|off", value_parser = ["on", "off"])]
    national_opt_out: Option<String>,
    /// Record the type 1 opt-out (held at your GP practice) as on or off. Carry keeps
    /// your record of it; your GP practice registers it.
    #[arg(long = "type1-opt-out", value_name = "on|off", value_parser = ["on", "off"])]
    type1_opt_out: Option<String>,
    /// How long a grant lasts when carry grant has no --expires, in days (1-1098).
    #[arg(long, value_name = "DAYS")]
    grant_days: Option<u32>,
    /// Seconds in the background before the app locks (0-3600; 0 locks at once).
    #[arg(long, value_name = "SECONDS")]
    lock_timeout: Option<u32>,
    /// What the emergency card shows, comma-separated: allergies, medications,
    /// problems, vital-signs, results, contacts (or none). Required parts left out stay in the
    /// summary, marked as withheld.
    #[arg(long, value_name = "PARTS")]
    emergency_card: Option<String>,
    /// Whether carers' entries wait for your approval (carry contributions) before
    /// they reach your record or any provider.
    #[arg(long, value_name = "on|off", value_parser = ["on", "off"])]
    approve_contributions: Option<String>,
    /// Print the opt-outs that are on as a JSON array of FHIR Consent resources.
    #[arg(long)]
    consent: bool,
}

fn on(v: Option<&str>) -> Option<bool> {
    v.map(|v| v == "on")
}

fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .map(|t| t.date().to_string())
        .unwrap_or_default()
}

fn opt_out_line(o: Option<OptOut>) -> String {
    match o {
        None => "not recorded".into(),
        Some(o) if o.opted_out => format!(
            "opted out (recorded in Carry {}; not an NHS registration)",
            date(o.recorded_at)
        ),
        Some(o) => format!("not opted out (recorded {})", date(o.recorded_at)),
    }
}

/// The preferences as `carry prefs` shows them: JSON as the core gives them, text a
/// line each.
#[derive(serde::Serialize)]
#[serde(transparent)]
struct Shown(Preferences);

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.0;
        writeln!(
            f,
            "National data opt-out:  {}",
            opt_out_line(p.national_opt_out)
        )?;
        writeln!(
            f,
            "Type 1 opt-out:         {}",
            opt_out_line(p.type1_opt_out)
        )?;
        writeln!(f, "Default grant length:   {} days", p.default_grant_days)?;
        if p.lock_timeout_s == 0 {
            writeln!(
                f,
                "Lock timeout:           as soon as the app leaves the foreground"
            )?;
        } else {
            writeln!(
                f,
                "Lock timeout:           {} seconds in the background",
                p.lock_timeout_s
            )?;
        }
        writeln!(
            f,
            "Carers' entries:        {}",
            if p.approve_contributions {
                "wait for your approval (carry contributions)"
            } else {
                "applied at once when inside their grant"
            }
        )?;
        let parts = p.emergency_card.included();
        writeln!(
            f,
            "Emergency card shows:   {}",
            if parts.is_empty() {
                "no optional parts (allergies, medications and problems marked as withheld)"
                    .to_string()
            } else {
                parts.join(", ")
            }
        )
    }
}

/// What `carry prefs` answers: the preferences (their JSON is the core's), after
/// "Saved." when they changed, and the notices an opt-out needs.
#[derive(serde::Serialize)]
#[serde(transparent)]
struct Answer {
    prefs: Shown,
    #[serde(skip)]
    saved: bool,
    #[serde(skip)]
    notices: Vec<String>,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.saved {
            writeln!(f, "Saved.")?;
        }
        write!(f, "{}", self.prefs)?;
        for n in &self.notices {
            writeln!(f, "{n}")?;
        }
        Ok(())
    }
}

/// `carry prefs [...]`: show the preferences, or change them and show the result.
pub fn prefs(home: &Path, args: PrefsArgs) -> Result<Outcome> {
    let profile = open(home)?;
    let change = PrefsChange {
        national_opt_out: on(args.national_opt_out.as_deref()),
        type1_opt_out: on(args.type1_opt_out.as_deref()),
        default_grant_days: args.grant_days,
        lock_timeout_s: args.lock_timeout,
        emergency_card: args
            .emergency_card
            .as_deref()
            .map(EmergencyCardContents::parse_list)
            .transpose()?,
        approve_contributions: on(args.approve_contributions.as_deref()),
    };
    let changing = change != PrefsChange::default();
    let current = if changing {
        prefs::set(&profile, &change)?
    } else {
        prefs::get(&profile)?
    };
    // Said plainly each time an opt-out is set on; on stderr when stdout is JSON.
    let mut notices = Vec::new();
    if change.national_opt_out == Some(true) {
        notices.push(format!(
            "Carry records your national data opt-out but does not register it with the NHS: \
             do that at {NATIONAL_OPT_OUT_URL}"
        ));
    }
    if change.type1_opt_out == Some(true) {
        notices.push(
            "Carry records your type 1 opt-out but does not register it with the NHS: \
             ask your GP practice to record it."
                .to_string(),
        );
    }
    // With JSON on stdout, the notices go to stderr.
    if args.consent || json_mode() {
        for n in &notices {
            crate::note!("{n}");
        }
    }
    if args.consent {
        // The opt-outs as FHIR Consent resources: a document, printed as it is.
        print_json(&prefs::research_consents(&profile)?)?;
        return Ok(Outcome::printed(exit::OK));
    }
    Ok(Outcome::ok(Answer {
        prefs: Shown(current),
        saved: changing,
        notices: if json_mode() { Vec::new() } else { notices },
    }))
}
