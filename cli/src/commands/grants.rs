//! People, grants, shared records and the audit log: `carry endpoint`, `id`,
//! `invite`, `accept`, `people`, `grant`, `grants`, `revoke`, `view-as`, `consent`,
//! `profiles`, `use` and `audit`.

use std::path::{Path, PathBuf};

use carry_core::share::{self, Basis, BasisKind, NewGrant, Role, Scope};
use carry_core::{Category, Error, Result};
use serde_json::json;

use crate::context::{endpoint_of, open, CURRENT_FILE, SELF};
use crate::exit;
use crate::output::print_json;
use crate::say;

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

fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .map(|t| t.date().to_string())
        .unwrap_or_default()
}

/// `carry endpoint …`.
pub fn endpoint(home: &Path, as_json: bool, action: EndpointAction) -> Result<u8> {
    let profile = open(home)?;
    match action {
        EndpointAction::Set { url } => {
            share::set_endpoint(&profile, &url)?;
            let url = endpoint_of(&profile)?;
            if as_json {
                print_json(&json!({ "endpoint": url }))?;
            } else {
                say!("This profile now uses {url} to share and relay.");
            }
        }
        EndpointAction::Show => {
            let url = endpoint_of(&profile).ok();
            if as_json {
                print_json(&json!({ "endpoint": url }))?;
            } else {
                match url {
                    Some(u) => say!("{u}"),
                    None => say!("No endpoint is set: carry endpoint set URL"),
                }
            }
        }
    }
    Ok(exit::OK)
}

/// `carry id`.
pub fn id(home: &Path, as_json: bool) -> Result<u8> {
    let me = share::my_identity(&open(home)?)?;
    if as_json {
        print_json(&me)?;
    } else {
        say!("{} (id {})", me.name, me.person);
        say!("fingerprint: {}", me.fingerprint);
        say!(
            "endpoint:    {}",
            me.endpoint
                .as_deref()
                .unwrap_or("(none: carry endpoint set URL)")
        );
    }
    Ok(exit::OK)
}

/// `carry invite`.
pub fn invite(home: &Path, as_json: bool) -> Result<u8> {
    let profile = std::sync::Arc::new(open(home)?);
    let url = endpoint_of(&profile)?;
    // Publish this profile's keys at the relay first, so the invitee can reach it.
    crate::context::runtime()?.block_on(carry_core::exchange::exchange(
        profile.clone(),
        &url,
        &Default::default(),
    ))?;
    let inv = share::invite(&profile, &url)?;
    if as_json {
        print_json(&json!({ "code": inv.code, "expires_at": inv.expires_at }))?;
    } else {
        say!(
            "Give this code to the person you invite (valid until {}):",
            date(inv.expires_at)
        );
        say!("{}", inv.code);
        say!("They run: carry accept CODE. Then compare the safety number (carry people).");
    }
    Ok(exit::OK)
}

/// `carry accept CODE [--adopt-endpoint]`: add the inviter and send them this
/// profile's keys.
pub fn accept(home: &Path, as_json: bool, code: &str, adopt_endpoint: bool) -> Result<u8> {
    let profile = std::sync::Arc::new(open(home)?);
    let person = share::accept(&profile, code, adopt_endpoint)?;
    let url = endpoint_of(&profile)?;
    crate::context::runtime()?.block_on(carry_core::exchange::exchange(
        profile.clone(),
        &url,
        &Default::default(),
    ))?;
    if as_json {
        print_json(&json!({
            "person": person.person, "name": person.name, "fingerprint": person.fingerprint
        }))?;
    } else {
        say!("Added {} (id {}).", person.name, person.person);
        say!("Safety number: {}", person.fingerprint);
        say!(
            "Compare it with {} in person or on a call, then: carry people verify {}",
            person.name,
            person.person
        );
    }
    Ok(exit::OK)
}

/// `carry people [verify PERSON]`.
pub fn people(home: &Path, as_json: bool, action: Option<PeopleAction>) -> Result<u8> {
    let profile = open(home)?;
    if let Some(PeopleAction::Verify { person }) = action {
        let p = share::verify_person(&profile, &person)?;
        if as_json {
            print_json(&p)?;
        } else {
            say!("{} is verified.", p.name);
        }
        return Ok(exit::OK);
    }
    let all = share::people(&profile)?;
    if as_json {
        print_json(&all)?;
    } else {
        if all.is_empty() {
            say!("No people yet: carry invite, or carry accept CODE.");
        }
        for p in &all {
            say!(
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
    Ok(exit::OK)
}

/// `carry grant PERSON …`.
pub fn grant(home: &Path, as_json: bool, args: GrantArgs) -> Result<u8> {
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
        }),
        None if args.evidence.is_some() => {
            return Err(Error::invalid("--evidence goes with --basis"))
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
    if as_json {
        print_json(&json!({
            "grant": g.grant, "person": g.person, "role": g.role, "expires_at": g.expires_at,
            "revision": g.revision, "new_access": g.new_access
        }))?;
    } else {
        say!(
            "{} {} can see {} as a {} until {} (grant {}).",
            if g.new_access { "Granted:" } else { "Changed:" },
            g.name,
            categories_line(&g.scope),
            g.role.as_str(),
            date(g.expires_at),
            g.grant
        );
        say!("It reaches them at the next carry sync.");
    }
    Ok(exit::OK)
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
pub fn grants(home: &Path, as_json: bool, active: bool) -> Result<u8> {
    let profile = open(home)?;
    let list = if active {
        share::who_can_see(&profile)?
    } else {
        share::grants(&profile)?
    };
    if as_json {
        print_json(&list)?;
    } else {
        if list.is_empty() {
            say!(
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
            say!(
                "{}  {arrow} {:<16} {:<11} {:<8} until {}  last delivery {last}  [{}]",
                g.grant,
                g.name,
                g.role.as_str(),
                g.state,
                date(g.expires_at),
                categories_line(&g.scope)
            );
        }
    }
    Ok(exit::OK)
}

/// `carry revoke --all`: stop sharing with everyone.
pub fn revoke_all(home: &Path, as_json: bool) -> Result<u8> {
    let profile = std::sync::Arc::new(open(home)?);
    let url = endpoint_of(&profile).ok();
    let rt = crate::context::runtime()?;
    let stopped = rt.block_on(carry_core::stop_sharing::stop_all(
        profile,
        url.as_deref(),
        &Default::default(),
    ))?;
    if as_json {
        print_json(&json!(stopped))?;
    } else {
        if stopped.grants.is_empty() && stopped.links.is_empty() && stopped.complete() {
            say!("Nobody had access: no grant or share link was in force.");
        }
        for g in &stopped.grants {
            say!("Revoked {} for {}.", g.grant, g.name);
        }
        for l in &stopped.links {
            let what = if l.emergency_card {
                "emergency card"
            } else {
                "share link"
            };
            say!("Ended the {what} {}.", &l.id[..l.id.len().min(10)]);
        }
        for l in &stopped.links_not_ended {
            say!(
                "The share link {} still works: {}. Run carry revoke --all again.",
                &l.id[..l.id.len().min(10)],
                l.reason
            );
        }
        if !stopped.grants.is_empty() {
            if stopped.sent {
                say!("The relay's copies are deleted and each person's app has been told to delete its copy.");
            } else {
                say!("The relay could not be reached: the revocations go at the next carry sync.");
            }
        }
        say!("A copy someone already saw cannot be recalled.");
    }
    Ok(if stopped.complete() {
        exit::OK
    } else {
        exit::NETWORK
    })
}

/// `carry revoke GRANT`.
pub fn revoke(home: &Path, as_json: bool, grant_id: &str) -> Result<u8> {
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
    if as_json {
        print_json(&json!({ "grant": g.grant, "state": g.state, "sent": sent }))?;
    } else {
        say!("Revoked {} for {}.", g.grant, g.name);
        if sent {
            say!(
                "The relay's copies are deleted and {}'s app has been told to delete its copy.",
                g.name
            );
        } else {
            say!("The relay could not be reached: the revocation goes at the next carry sync.");
        }
        say!("A copy they already saw cannot be recalled.");
    }
    Ok(exit::OK)
}

/// `carry view-as PERSON [--out FILE]`.
pub fn view_as(home: &Path, as_json: bool, person: &str, out: Option<PathBuf>) -> Result<u8> {
    let profile = open(home)?;
    if let Some(path) = out {
        let mut file = std::io::BufWriter::new(carry_core::private_file::create(&path)?);
        let n = share::view_as_export(&profile, person, &mut file)?;
        std::io::Write::flush(&mut file)?;
        if as_json {
            print_json(&json!({ "exported": n, "file": path }))?;
        } else {
            say!(
                "Wrote the {n} resources {person} would receive to {}.",
                path.display()
            );
        }
        return Ok(exit::OK);
    }
    let items = share::view_as(&profile, person)?;
    if as_json {
        print_json(&items)?;
    } else {
        say!("{} items, exactly as {person} receives them:", items.len());
        for i in &items {
            say!("{}", crate::commands::item_line(i));
        }
    }
    Ok(exit::OK)
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
pub fn profiles(home: &Path, as_json: bool, current: &str) -> Result<u8> {
    let own = open(home)?;
    let me = own.info()?;
    let received = share::received_profiles(&own)?;
    let mut rows = vec![json!({
        "profile": SELF, "name": me.name, "owner": true, "current": current == SELF
    })];
    for r in &received {
        rows.push(json!({
            "profile": r.profile, "name": r.name, "owner": false, "role": r.role,
            "expires_at": r.expires_at, "current": current == r.profile
        }));
    }
    if as_json {
        print_json(&rows)?;
    } else {
        for r in &rows {
            let mark = if r["current"] == true { "*" } else { " " };
            let whose = if r["owner"] == true {
                "your record".to_string()
            } else {
                format!(
                    "shared with you as {} until {}",
                    r["role"].as_str().unwrap_or(""),
                    date(r["expires_at"].as_i64().unwrap_or(0))
                )
            };
            say!(
                "{mark} {:<12} {:<20} {whose}",
                r["profile"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or("")
            );
        }
    }
    Ok(exit::OK)
}

/// `carry use PROFILE`.
pub fn use_profile(home: &Path, as_json: bool, profile: &str) -> Result<u8> {
    let own = open(home)?;
    let id = if profile == SELF {
        SELF.to_string()
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
    if as_json {
        print_json(&json!({ "profile": id }))?;
    } else {
        say!("Commands now act on the profile {id}.");
    }
    Ok(exit::OK)
}

/// `carry audit [--verify]`.
pub fn audit(home: &Path, as_json: bool, verify: bool, limit: u32) -> Result<u8> {
    let profile = open(home)?;
    if verify {
        let check = share::verify_audit(&profile)?;
        if as_json {
            print_json(
                &json!({ "entries": check.entries, "ok": check.ok(), "broken_at": check.broken_at }),
            )?;
        } else if check.ok() {
            say!(
                "The audit log is whole: {} entries, every link holds.",
                check.entries
            );
        } else {
            say!(
                "The audit log was changed: the chain breaks at entry {}.",
                check.broken_at.unwrap_or(0)
            );
        }
        return Ok(if check.ok() { exit::OK } else { exit::OTHER });
    }
    let entries = share::audit_log(&profile, limit)?;
    if as_json {
        print_json(&entries)?;
    } else {
        for e in &entries {
            say!(
                "{:>5}  {}  {:<22} {:<10} {}",
                e.seq,
                date(e.at),
                e.event,
                e.party.as_deref().unwrap_or(""),
                e.detail
            );
        }
    }
    Ok(exit::OK)
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
pub fn contributions(home: &Path, as_json: bool, action: Option<ContributionAction>) -> Result<u8> {
    let profile = open(home)?;
    match action {
        Some(ContributionAction::Approve { id }) => {
            let n = share::approve_contribution(&profile, id)?;
            if as_json {
                print_json(&json!({ "approved": id, "applied": n }))?;
            } else {
                say!("Applied {n} entries to your record.");
            }
        }
        Some(ContributionAction::Reject { id }) => {
            share::reject_contribution(&profile, id)?;
            if as_json {
                print_json(&json!({ "rejected": id }))?;
            } else {
                say!("Declined; the carer is told at the next carry sync.");
            }
        }
        None => {
            let waiting = share::pending_contributions(&profile)?;
            if as_json {
                print_json(&waiting)?;
            } else if waiting.is_empty() {
                say!("No carer's entries are waiting for your approval.");
            } else {
                for w in &waiting {
                    say!(
                        "#{}  from {} ({}): {}",
                        w.id,
                        w.name,
                        w.person,
                        w.entries.join("; ")
                    );
                }
                say!("carry contributions approve ID, or reject ID.");
            }
        }
    }
    Ok(exit::OK)
}
