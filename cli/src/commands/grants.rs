//! People, grants, shared records and the audit log: `carry endpoint`, `id`,
//! `invite`, `accept`, `people`, `grant`, `grants`, `revoke`, `view-as`, `consent`,
//! `profiles`, `use` and `audit`.

use std::path::{Path, PathBuf};

use carry_core::share::proxy::{Decider, Notice, NoticeKind, Recipient, Standing};
use carry_core::share::{self, Basis, BasisKind, NewGrant, Role, Scope};
use carry_core::{Category, Error, Result};
use serde_json::json;

use crate::context::{endpoint_of, open, CURRENT_FILE, SELF};
use crate::exit;
use crate::output::{print_json, Outcome, Said};
use crate::said;

/// `carry endpoint` subcommands.
#[derive(clap::Subcommand)]
pub enum EndpointAction {
    /// Record the endpoint whose relay and share host this profile uses.
    Set {
        /// Its base URL, e.g. https://carry.example.org.
        url: String,
    },
    /// Show the endpoint in use.
    Show,
}

/// `carry people` subcommands.
#[derive(clap::Subcommand)]
pub enum PeopleAction {
    /// Mark a person verified after comparing the safety number with them.
    Verify {
        /// Their id (from carry people) or name.
        person: String,
    },
}

/// The options of `carry grant`.
#[derive(clap::Args)]
pub struct GrantArgs {
    /// Who: their id (from carry people) or name, or the start of either that only
    /// one person has.
    person: String,
    /// viewer, contributor (may add readings for you) or manager (may also manage
    /// grants, for a Lasting Power of Attorney).
    #[arg(long, default_value = "viewer")]
    role: String,
    /// The categories to share, comma-separated (e.g. medications,allergies,vital-signs).
    #[arg(long, value_delimiter = ',', required = true)]
    categories: Vec<String>,
    /// Only these FHIR resource types, comma-separated.
    #[arg(long, value_delimiter = ',')]
    types: Vec<String>,
    /// Only data dated on or after this date.
    #[arg(long)]
    data_from: Option<String>,
    /// Only data dated before this date.
    #[arg(long)]
    data_until: Option<String>,
    /// Also share items with these sensitivity labels (PSY, SEX, HIV, ETH, SDV, GDIS…).
    /// Needs the person verified.
    #[arg(long, value_delimiter = ',')]
    include_restricted: Vec<String>,
    /// Item ids to keep back, comma-separated.
    #[arg(long, value_delimiter = ',')]
    hide: Vec<i64>,
    /// How long it lasts: 30d, 12w, 6m, 1y, or hours (8h) (default 90d).
    #[arg(long)]
    expires: Option<String>,
    /// Why, in your words.
    #[arg(long, default_value = "")]
    purpose: String,
    /// For a proxy: patient-choice, parental-responsibility, lasting-power-of-attorney,
    /// court-deputy or best-interests.
    #[arg(long)]
    basis: Option<String>,
    /// The evidence seen for the basis (an LPA reference, a court order number).
    #[arg(long)]
    evidence: Option<String>,
    /// For a proxy: who decided that they may have access: person (the default),
    /// practice or court.
    #[arg(long)]
    decided_by: Option<String>,
    /// Grant to a person whose keys you have not verified (safety numbers not
    /// compared): without it, that is refused.
    #[arg(long)]
    unverified: bool,
}

/// Seconds from `90s`, `30min`, `2h`, `30d`, `12w`, `6m` (30 days each) or `1y` (365 days).
pub fn parse_length(s: &str) -> Result<i64> {
    let s = s.trim();
    if let Some(n) = s.strip_suffix("min") {
        return n
            .parse::<i64>()
            .map(|n| n.saturating_mul(60))
            .map_err(|_| Error::invalid(format!("'{s}' is not a length like 30min")));
    }
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = n
        .parse()
        .map_err(|_| Error::invalid(format!("'{s}' is not a length like 30d, 12w, 6m or 1y")))?;
    let per = match unit {
        "s" => 1,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "m" => 30 * 86_400,
        "y" => 365 * 86_400,
        _ => {
            return Err(Error::invalid(format!(
                "'{s}' is not a length like 30d, 12w, 6m or 1y"
            )))
        }
    };
    Ok(n.saturating_mul(per))
}

pub(crate) fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .map(|t| t.date().to_string())
        .unwrap_or_default()
}

/// `carry endpoint …`.
pub fn endpoint(home: &Path, action: EndpointAction) -> Result<Outcome> {
    let profile = open(home)?;
    let said = match action {
        EndpointAction::Set { url } => {
            share::set_endpoint(&profile, &url)?;
            let url = endpoint_of(&profile)?;
            let mut said = Said::new(json!({ "endpoint": url }));
            {
                said!(said, "This profile now uses {url} to share and relay.");
            }
            said
        }
        EndpointAction::Show => {
            let url = endpoint_of(&profile).ok();
            let mut said = Said::new(json!({ "endpoint": url }));
            {
                match url {
                    Some(u) => said!(said, "{u}"),
                    None => said!(said, "No endpoint is set: carry endpoint set URL"),
                }
            }
            said
        }
    };
    Ok(Outcome::ok(said))
}

/// `carry id`.
pub fn id(home: &Path) -> Result<Outcome> {
    let me = share::my_identity(&open(home)?)?;
    let mut said = Said::new(json!(me));
    {
        said!(said, "{} (id {})", me.name, me.person);
        said!(said, "fingerprint: {}", me.fingerprint);
        said!(
            said,
            "endpoint:    {}",
            me.endpoint
                .as_deref()
                .unwrap_or("(none: carry endpoint set URL)")
        );
    }
    Ok(Outcome::ok(said))
}

/// `carry invite`.
pub fn invite(home: &Path) -> Result<Outcome> {
    let profile = std::sync::Arc::new(open(home)?);
    let url = endpoint_of(&profile)?;
    // Publish this profile's keys at the relay first, so the invitee can reach it.
    crate::context::runtime()?.block_on(carry_core::exchange::exchange(
        profile.clone(),
        &url,
        &Default::default(),
    ))?;
    let inv = share::invite(&profile, &url)?;
    let mut said = Said::new(json!({ "code": inv.code, "expires_at": inv.expires_at }));
    {
        said!(
            said,
            "Give this code to the person you invite (valid until {}):",
            date(inv.expires_at)
        );
        said!(said, "{}", inv.code);
        said!(
            said,
            "They run: carry accept CODE. Then compare the safety number (carry people)."
        );
    }
    Ok(Outcome::ok(said))
}

/// `carry accept CODE [--adopt-endpoint]`: add the inviter and send them this
/// profile's keys.
pub fn accept(home: &Path, code: &str, adopt_endpoint: bool) -> Result<Outcome> {
    let profile = std::sync::Arc::new(open(home)?);
    let person = share::accept(&profile, code, adopt_endpoint)?;
    let url = endpoint_of(&profile)?;
    crate::context::runtime()?.block_on(carry_core::exchange::exchange(
        profile.clone(),
        &url,
        &Default::default(),
    ))?;
    let mut said = Said::new(json!({
        "person": person.person, "name": person.name, "fingerprint": person.fingerprint
    }));
    {
        said!(said, "Added {} (id {}).", person.name, person.person);
        said!(said, "Safety number: {}", person.fingerprint);
        said!(
            said,
            "Compare it with {} in person or on a call, then: carry people verify {}",
            person.name,
            person.person
        );
    }
    Ok(Outcome::ok(said))
}

/// `carry people [verify PERSON]`.
pub fn people(home: &Path, action: Option<PeopleAction>) -> Result<Outcome> {
    let profile = open(home)?;
    if let Some(PeopleAction::Verify { person }) = action {
        let p = share::verify_person(&profile, &person)?;
        let mut said = Said::new(json!(p));
        {
            said!(said, "{} is verified.", p.name);
        }
        return Ok(Outcome::ok(said));
    }
    let all = share::people(&profile)?;
    let mut said = Said::new(json!(all));
    {
        if all.is_empty() {
            said!(said, "No people yet: carry invite, or carry accept CODE.");
        }
        for p in &all {
            said!(
                said,
                "{}  {:<20} {}  {}",
                p.person,
                p.name,
                p.fingerprint,
                if p.verified {
                    "verified"
                } else {
                    "not verified"
                }
            );
        }
    }
    Ok(Outcome::ok(said))
}

/// `carry grant PERSON …`.
pub fn grant(home: &Path, args: GrantArgs) -> Result<Outcome> {
    let profile = open(home)?;
    let categories = args
        .categories
        .iter()
        .map(|c| Category::parse(c.trim()))
        .collect::<Result<Vec<_>>>()?;
    let basis = match args.basis.as_deref() {
        Some(b) => Some(Basis {
            kind: BasisKind::parse(b)?,
            evidence: args.evidence.clone(),
            decided_by: Some(
                args.decided_by
                    .as_deref()
                    .map_or(Ok(Decider::Person), Decider::parse)?,
            ),
        }),
        None if args.evidence.is_some() || args.decided_by.is_some() => {
            return Err(Error::invalid(
                "--evidence and --decided-by go with --basis",
            ))
        }
        None => None,
    };
    let new = NewGrant {
        person: args.person,
        role: Role::parse(&args.role)?,
        scope: Scope {
            categories,
            resource_types: args.types,
            data_from: args.data_from,
            data_until: args.data_until,
            include_labels: args
                .include_restricted
                .iter()
                .map(|l| l.trim().to_ascii_uppercase())
                .collect(),
            hidden: args.hide,
        },
        purpose: args.purpose,
        basis,
        duration_s: args.expires.as_deref().map(parse_length).transpose()?,
        unverified: args.unverified,
    };
    let g = share::grant(&profile, &new)?;
    let mut said = Said::new(json!({
        "grant": g.grant, "person": g.person, "role": g.role, "expires_at": g.expires_at,
        "revision": g.revision, "new_access": g.new_access
    }));
    {
        said!(
            said,
            "{} {} can see {} as a {} until {} (grant {}).",
            if g.new_access { "Granted:" } else { "Changed:" },
            g.name,
            categories_line(&g.scope),
            g.role.as_str(),
            date(g.expires_at),
            g.grant
        );
        said!(said, "It reaches them at the next carry sync.");
    }
    Ok(Outcome::ok(said))
}

fn categories_line(s: &Scope) -> String {
    let mut out = s
        .categories
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if !s.include_labels.is_empty() {
        out.push_str(&format!(" (including {})", s.include_labels.join(", ")));
    }
    if !s.hidden.is_empty() {
        out.push_str(&format!(" except {} hidden items", s.hidden.len()));
    }
    out
}

/// `carry grants [--active]`.
pub fn grants(home: &Path, active: bool) -> Result<Outcome> {
    let profile = open(home)?;
    let list = if active {
        share::who_can_see(&profile)?
    } else {
        share::grants(&profile)?
    };
    let mut said = Said::new(json!(list));
    {
        if list.is_empty() {
            said!(
                said,
                "{}",
                if active {
                    "Nobody else can see your record."
                } else {
                    "No grants."
                }
            );
        }
        for g in &list {
            let arrow = if g.direction == "out" { "to  " } else { "from" };
            let last = g.last_delivery_at.map_or("never".to_string(), date);
            said!(
                said,
                "{}  {arrow} {:<16} {:<11} {:<8} until {}  last delivery {last}  [{}]",
                g.grant,
                g.name,
                g.role.as_str(),
                g.state,
                date(g.expires_at),
                categories_line(&g.scope)
            );
            if let Some(b) = &g.basis {
                said!(
                    said,
                    "      proxy: {}",
                    proxy_line(b, g.standing, g.notices.first())
                );
            }
        }
    }
    Ok(Outcome::ok(said))
}

/// A proxy's terms in one line: basis, evidence, who decided, where access stands and
/// the next notice.
pub(crate) fn proxy_line(b: &Basis, standing: Option<Standing>, next: Option<&Notice>) -> String {
    let kind = serde_json::to_value(b.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let mut line = kind;
    if let Some(e) = &b.evidence {
        line.push_str(&format!(" ({e})"));
    }
    if let Some(d) = b.decided_by {
        line.push_str(&format!(", decided by {}", d.as_str()));
    }
    if let Some(s) = standing {
        line.push_str(&format!("; {}", standing_text(s)));
    }
    if let Some(n) = next {
        line.push_str(&format!("; next: {} on {}", notice_text(n), date(n.at)));
    }
    line
}

/// `active`, `suspended (age 16)`, `ended` or `removed (unused 5 years)`.
pub(crate) fn standing_text(s: Standing) -> &'static str {
    match s {
        Standing::Active => "active",
        Standing::Suspended { .. } => "suspended (age 16)",
        Standing::Ended => "ended",
        Standing::Removed => "removed (unused 5 years)",
    }
}

/// What a proxy notice says, for a person.
pub(crate) fn notice_text(n: &Notice) -> String {
    let to = match n.to {
        Recipient::Keeper => "to the keeper",
        Recipient::Person => "to the person",
        Recipient::Both => "to both",
    };
    let what = match n.kind {
        NoticeKind::Review { age } => format!("review at age {age}"),
        NoticeKind::Suspension { days_before } => {
            format!("suspension at 16 in {days_before} days")
        }
        NoticeKind::Suspended => "suspended at 16".into(),
        NoticeKind::End { days_before } => format!("ends in {days_before} days"),
        NoticeKind::Ended => "access ends".into(),
        NoticeKind::Removed => "removed, unused 5 years".into(),
    };
    format!("{what}, {to}")
}

/// `carry revoke --all`: stop sharing with everyone.
pub fn revoke_all(home: &Path) -> Result<Outcome> {
    let profile = std::sync::Arc::new(open(home)?);
    let url = endpoint_of(&profile).ok();
    let rt = crate::context::runtime()?;
    let stopped = rt.block_on(carry_core::stop_sharing::stop_all(
        profile,
        url.as_deref(),
        &Default::default(),
    ))?;
    let mut said = Said::new(json!(stopped));
    {
        if stopped.grants.is_empty() && stopped.links.is_empty() && stopped.complete() {
            said!(
                said,
                "Nobody had access: no grant or share link was in force."
            );
        }
        for g in &stopped.grants {
            said!(said, "Revoked {} for {}.", g.grant, g.name);
        }
        for l in &stopped.links {
            let what = if l.emergency_card {
                "emergency card"
            } else {
                "share link"
            };
            said!(said, "Ended the {what} {}.", &l.id[..l.id.len().min(10)]);
        }
        for l in &stopped.links_not_ended {
            said!(
                said,
                "The share link {} still works: {}. Run carry revoke --all again.",
                &l.id[..l.id.len().min(10)],
                l.reason
            );
        }
        if !stopped.grants.is_empty() {
            if stopped.sent {
                said!(said, "The relay's copies are deleted and each person's app has been told to delete its copy.");
            } else {
                said!(
                    said,
                    "The relay could not be reached: the revocations go at the next carry sync."
                );
            }
        }
        said!(said, "A copy someone already saw cannot be recalled.");
    }
    let code = if stopped.complete() {
        exit::OK
    } else {
        exit::NETWORK
    };
    Ok(Outcome::with_code(said, code))
}

/// `carry revoke GRANT`.
pub fn revoke(home: &Path, grant_id: &str) -> Result<Outcome> {
    let profile = std::sync::Arc::new(open(home)?);
    let g = share::revoke(&profile, grant_id)?;
    // Delete the relay's copies and send the revocation now, if the relay answers;
    // otherwise at the next sync.
    let mut sent = false;
    if let Ok(url) = endpoint_of(&profile) {
        let rt = crate::context::runtime()?;
        match rt.block_on(carry_core::exchange::exchange(
            profile.clone(),
            &url,
            &Default::default(),
        )) {
            Ok(_) => sent = true,
            Err(e) => tracing::warn!(error = %e, "the revocation waits for the next sync"),
        }
    }
    let mut said = Said::new(json!({ "grant": g.grant, "state": g.state, "sent": sent }));
    {
        said!(said, "Revoked {} for {}.", g.grant, g.name);
        if sent {
            said!(
                said,
                "The relay's copies are deleted and {}'s app has been told to delete its copy.",
                g.name
            );
        } else {
            said!(
                said,
                "The relay could not be reached: the revocation goes at the next carry sync."
            );
        }
        said!(said, "A copy they already saw cannot be recalled.");
    }
    Ok(Outcome::ok(said))
}

/// `carry view-as PERSON [--out FILE]`.
pub fn view_as(home: &Path, person: &str, out: Option<PathBuf>) -> Result<Outcome> {
    let profile = open(home)?;
    if let Some(path) = out {
        let mut file = std::io::BufWriter::new(carry_core::private_file::create(&path)?);
        let n = share::view_as_export(&profile, person, &mut file)?;
        std::io::Write::flush(&mut file)?;
        let mut said = Said::new(json!({ "exported": n, "file": path }));
        {
            said!(
                said,
                "Wrote the {n} resources {person} would receive to {}.",
                path.display()
            );
        }
        return Ok(Outcome::ok(said));
    }
    let items = share::view_as(&profile, person)?;
    let mut said = Said::new(json!(items));
    {
        said!(
            said,
            "{} items, exactly as {person} receives them:",
            items.len()
        );
        for i in &items {
            said!(said, "{}", crate::commands::item_line(i));
        }
    }
    Ok(Outcome::ok(said))
}

/// `carry grants --document GRANT`: the signed grant document.
pub fn document(home: &Path, grant_id: &str) -> Result<u8> {
    let text = share::grant_document(&open(home)?, grant_id)?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::internal(e.to_string()))?;
    print_json(&v)?;
    Ok(exit::OK)
}

/// `carry consent GRANT`: the grant as a FHIR Consent.
pub fn consent(home: &Path, grant_id: &str) -> Result<u8> {
    let v = share::consent(&open(home)?, grant_id)?;
    print_json(&v)?;
    Ok(exit::OK)
}

/// `carry profiles`.
pub fn profiles(home: &Path, current: &str) -> Result<Outcome> {
    let own = crate::context::open_own(home)?;
    let me = own.info()?;
    let received = share::received_profiles(&own)?;
    let mut rows = vec![json!({
        "profile": SELF, "name": me.name, "owner": true, "current": current == SELF
    })];
    for d in share::dependants::list(&own)? {
        rows.push(json!({
            "profile": d.profile, "name": d.name, "owner": false, "keeper": true,
            "standing": d.standing, "current": current == d.profile
        }));
    }
    for r in &received {
        rows.push(json!({
            "profile": r.profile, "name": r.name, "owner": false, "role": r.role,
            "expires_at": r.expires_at, "current": current == r.profile
        }));
    }
    let mut said = Said::new(json!(rows));
    {
        for r in &rows {
            let mark = if r["current"] == true { "*" } else { " " };
            let whose = if r["owner"] == true {
                "your record".to_string()
            } else if r["keeper"] == true {
                format!(
                    "kept by you ({})",
                    r["standing"]["standing"].as_str().unwrap_or("")
                )
            } else {
                format!(
                    "shared with you as {} until {}",
                    r["role"].as_str().unwrap_or(""),
                    date(r["expires_at"].as_i64().unwrap_or(0))
                )
            };
            said!(
                said,
                "{mark} {:<12} {:<20} {whose}",
                r["profile"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or("")
            );
        }
    }
    Ok(Outcome::ok(said))
}

/// `carry use PROFILE`.
pub fn use_profile(home: &Path, profile: &str) -> Result<Outcome> {
    let own = crate::context::open_own(home)?;
    let id = if profile == SELF {
        SELF.to_string()
    } else if let Some(d) = share::dependants::list(&own)?
        .into_iter()
        .find(|d| d.profile == profile || d.name.eq_ignore_ascii_case(profile))
    {
        d.profile
    } else {
        let found = share::received_profiles(&own)?
            .into_iter()
            .find(|r| r.profile == profile || r.name.eq_ignore_ascii_case(profile))
            .ok_or_else(|| {
                Error::not_found(format!("a profile '{profile}'; see carry profiles"))
            })?;
        found.profile
    };
    carry_core::private_file::write(&home.join(CURRENT_FILE), id.as_bytes())?;
    let mut said = Said::new(json!({ "profile": id }));
    {
        said!(said, "Commands now act on the profile {id}.");
    }
    Ok(Outcome::ok(said))
}

/// `carry audit [--verify]`.
pub fn audit(home: &Path, verify: bool, limit: u32) -> Result<Outcome> {
    let profile = open(home)?;
    if verify {
        let check = share::verify_audit(&profile)?;
        let mut said = Said::new(
            json!({ "entries": check.entries, "ok": check.ok(), "broken_at": check.broken_at }),
        );
        if check.ok() {
            said!(
                said,
                "The audit log is whole: {} entries, every link holds.",
                check.entries
            );
        } else {
            said!(
                said,
                "The audit log was changed: the chain breaks at entry {}.",
                check.broken_at.unwrap_or(0)
            );
        }
        let code = if check.ok() { exit::OK } else { exit::OTHER };
        return Ok(Outcome::with_code(said, code));
    }
    let entries = share::audit_log(&profile, limit)?;
    let mut said = Said::new(json!(entries));
    {
        for e in &entries {
            said!(
                said,
                "{:>5}  {}  {:<22} {:<10} {}",
                e.seq,
                date(e.at),
                e.event,
                e.party.as_deref().unwrap_or(""),
                e.detail
            );
        }
    }
    Ok(Outcome::ok(said))
}

/// What `carry contributions` does to waiting entries.
#[derive(clap::Subcommand)]
pub enum ContributionAction {
    /// Apply them to your record (they go on to providers like your own).
    Approve {
        /// Their id (from carry contributions).
        id: i64,
    },
    /// Decline them; the carer is told.
    Reject {
        /// Their id (from carry contributions).
        id: i64,
    },
}

/// `carry contributions [approve|reject ID]`.
pub fn contributions(home: &Path, action: Option<ContributionAction>) -> Result<Outcome> {
    let profile = open(home)?;
    let said = match action {
        Some(ContributionAction::Approve { id }) => {
            let n = share::approve_contribution(&profile, id)?;
            let mut said = Said::new(json!({ "approved": id, "applied": n }));
            {
                said!(said, "Applied {n} entries to your record.");
            }
            said
        }
        Some(ContributionAction::Reject { id }) => {
            share::reject_contribution(&profile, id)?;
            let mut said = Said::new(json!({ "rejected": id }));
            {
                said!(said, "Declined; the carer is told at the next carry sync.");
            }
            said
        }
        None => {
            let waiting = share::pending_contributions(&profile)?;
            let mut said = Said::new(json!(waiting));
            if waiting.is_empty() {
                said!(said, "No carer's entries are waiting for your approval.");
            } else {
                for w in &waiting {
                    said!(
                        said,
                        "#{}  from {} ({}): {}",
                        w.id,
                        w.name,
                        w.person,
                        w.entries.join("; ")
                    );
                }
                said!(said, "carry contributions approve ID, or reject ID.");
            }
            said
        }
    };
    Ok(Outcome::ok(said))
}
