//! Showing a clinician: `carry share`, `carry shares`, `carry unshare`,
//! `carry emergency-card` (the patient's side) and `carry open` (the clinician's).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use carry_core::links::{self, NewShare, OpenOptions, Preset, QrMatrix};
use carry_core::net::CallOptions;
use carry_core::{Error, Result};
use serde_json::json;

use crate::commands::grants::parse_length;
use crate::context::endpoint_of;
use crate::context::open;
use crate::context::runtime;
use crate::exit;
use crate::output::{Outcome, Said};
use crate::said;

/// The options of `carry share`.
#[derive(clap::Args)]
pub struct ShareArgs {
    /// emergency, meds-allergies or all-but-restricted.
    #[arg(long, default_value = "emergency")]
    preset: String,
    /// How long the link works: 30min, 1h, 8h, 2d… (default 1h, at most a year).
    #[arg(long)]
    expires: Option<String>,
    /// A passcode the clinician must type.
    #[arg(long)]
    passcode: Option<String>,
    /// The link works for one opening only.
    #[arg(long)]
    once: bool,
    /// The endpoint's copy follows your record as it changes.
    #[arg(long)]
    long_lived: bool,
    /// A label shown to the clinician (makes the QR code larger).
    #[arg(long)]
    label: Option<String>,
    /// Write the QR code to this file: .png or .svg.
    #[arg(long, value_name = "FILE")]
    qr: Option<PathBuf>,
}

/// Write a QR matrix as PNG or SVG, by the file's extension, readable by its owner
/// only.
pub fn write_qr(q: &QrMatrix, path: &Path) -> Result<()> {
    const QUIET: u32 = 4;
    let size = q.width + 2 * QUIET;
    let dark = |x: u32, y: u32| {
        x >= QUIET
            && y >= QUIET
            && x < QUIET + q.width
            && y < QUIET + q.width
            && q.modules[((y - QUIET) * q.width + (x - QUIET)) as usize]
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("svg") => {
            let mut svg = format!(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" \
                 shape-rendering=\"crispEdges\"><rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/><path fill=\"#000\" d=\""
            );
            for y in 0..size {
                for x in 0..size {
                    if dark(x, y) {
                        svg.push_str(&format!("M{x} {y}h1v1h-1z"));
                    }
                }
            }
            svg.push_str("\"/></svg>\n");
            std::io::Write::write_all(
                &mut carry_core::private_file::create(path)?,
                svg.as_bytes(),
            )?;
        }
        Some("png") => {
            const SCALE: u32 = 8;
            let px = size * SCALE;
            let mut pixels = Vec::with_capacity((px * px) as usize);
            for y in 0..px {
                for x in 0..px {
                    pixels.push(if dark(x / SCALE, y / SCALE) {
                        0u8
                    } else {
                        255u8
                    });
                }
            }
            let file = std::io::BufWriter::new(carry_core::private_file::create(path)?);
            let mut enc = png::Encoder::new(file, px, px);
            enc.set_color(png::ColorType::Grayscale);
            enc.set_depth(png::BitDepth::Eight);
            let io = |e: png::EncodingError| Error::Storage {
                reason: format!("writing the QR code: {e}"),
            };
            enc.write_header()
                .map_err(io)?
                .write_image_data(&pixels)
                .map_err(io)?;
        }
        _ => return Err(Error::invalid("the QR file must end in .png or .svg")),
    }
    Ok(())
}

fn date_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// `carry share`.
pub fn share(home: &Path, args: ShareArgs) -> Result<Outcome> {
    let profile = Arc::new(open(home)?);
    let url = endpoint_of(&profile)?;
    let new = NewShare {
        preset: Preset::parse(&args.preset)?,
        expires_s: args.expires.as_deref().map(parse_length).transpose()?,
        passcode: args.passcode,
        once: args.once,
        long_lived: args.long_lived,
        direct: false,
        label: args.label,
    };
    let made = runtime()?.block_on(links::create(profile, &url, &new, &CallOptions::default()))?;
    if let Some(path) = &args.qr {
        write_qr(&made.qr, path)?;
    }
    let mut said = Said::new(json!({
        "id": made.info.id, "link": made.info.link, "expires_at": made.info.expires_at,
        "flags": made.info.flags, "resources": made.info.resources,
        "qr_version": made.qr.version, "qr_file": args.qr,
    }));
    {
        said!(
            said,
            "Share this link (or its QR code{}); it works until {}{}:",
            args.qr
                .as_ref()
                .map(|p| format!(", written to {}", p.display()))
                .unwrap_or_default(),
            made.info.expires_at.map(date_time).unwrap_or_default(),
            if made.info.flags.contains('P') {
                ", with the passcode"
            } else {
                ""
            }
        );
        said!(said, "{}", made.info.link);
        said!(
            said,
            "It holds your {} summary ({} items). See who opens it: carry shares. End it: carry unshare {}",
            made.info.preset,
            made.info.resources,
            &made.info.id[..10]
        );
    }
    Ok(Outcome::ok(said))
}

/// `carry shares`: each link, refreshed from the endpoint, with its accesses.
pub fn shares(home: &Path) -> Result<Outcome> {
    let profile = Arc::new(open(home)?);
    let fetched = endpoint_of(&profile).and_then(|url| {
        runtime()?.block_on(links::list_with_accesses(
            profile.clone(),
            &url,
            &CallOptions::default(),
        ))
    });
    // Without the endpoint, the links are still listed, with no access log.
    let out = match fetched {
        Ok(out) => out,
        Err(e) => {
            tracing::warn!(error = %e, "the access logs could not be fetched");
            links::list(&profile)?
                .into_iter()
                .map(|s| (s, Vec::new()))
                .collect()
        }
    };
    let v: Vec<_> = out
        .iter()
        .map(|(s, a)| {
            let mut v = json!(s);
            v["access_log"] = json!(a);
            v
        })
        .collect();
    let mut said = Said::new(json!(v));
    if out.is_empty() {
        said!(said, "No share links: carry share --preset emergency");
    }
    for (s, accesses) in &out {
        said!(
            said,
            "{}  {:<18} {:<8} flags '{}'  until {}  {} items",
            &s.id[..10],
            s.preset,
            s.state,
            s.flags,
            s.expires_at.map(date_time).unwrap_or_default(),
            s.resources
        );
        for a in accesses {
            said!(
                said,
                "      {}  {:<15} via {:<8} claimed by '{}'",
                date_time(a.at),
                a.outcome,
                a.via,
                a.recipient
            );
        }
        if s.refused > 0 {
            said!(
                said,
                "      {} requests refused (wrong passcodes, or not served), the last at {}",
                s.refused,
                s.last_refused_at.map(date_time).unwrap_or_default()
            );
        }
    }
    Ok(Outcome::ok(said))
}

/// `carry unshare ID`.
pub fn unshare(home: &Path, id: &str) -> Result<Outcome> {
    let profile = Arc::new(open(home)?);
    let url = endpoint_of(&profile)?;
    let info = runtime()?.block_on(links::revoke(profile, &url, id, &CallOptions::default()))?;
    let mut said =
        Said::new(json!({ "id": info.id, "state": info.state, "accesses": info.accesses }));
    {
        said!(
            said,
            "The link {} is revoked: the endpoint no longer serves it. It was opened {} times.",
            &info.id[..10],
            info.accesses
        );
        said!(said, "Anything already seen cannot be recalled.");
    }
    Ok(Outcome::ok(said))
}

/// `carry emergency-card`: make or refresh the always-ready emergency card.
pub fn emergency_card(home: &Path, qr: Option<PathBuf>) -> Result<Outcome> {
    let profile = Arc::new(open(home)?);
    let url = endpoint_of(&profile)?;
    let card = runtime()?.block_on(links::emergency_card(
        profile,
        &url,
        &CallOptions::default(),
    ))?;
    if let Some(path) = &qr {
        write_qr(&card.qr, path)?;
    }
    let mut said = Said::new(json!({ "id": card.info.id, "link": card.info.link,
        "expires_at": card.info.expires_at, "summary": card.summary }));
    said!(
        said,
        "Emergency card for {}",
        card.summary.name.as_deref().unwrap_or("")
    );
    sections(&mut said, &card.summary);
    said!(
        said,
        "Link (no passcode, for the lock screen): {}",
        card.info.link
    );
    Ok(Outcome::ok(said))
}

fn sections(said: &mut Said, s: &links::Summary) {
    for sec in &s.sections {
        said!(said, "{}:", sec.title);
        if sec.withheld {
            said!(said, "  (left out by the patient)");
        } else if sec.lines.is_empty() {
            said!(said, "  (no information in the record)");
        }
        for l in &sec.lines {
            said!(said, "  - {l}");
        }
    }
}

/// `carry open LINK`: the clinician's side.
pub fn open_link(
    link: &str,
    passcode: Option<String>,
    recipient: Option<String>,
) -> Result<Outcome> {
    let options = OpenOptions {
        passcode,
        recipient: recipient.unwrap_or_else(|| "Carry CLI".into()),
        budget: Some(std::time::Duration::from_secs(60)),
    };
    let opened = runtime()?.block_on(links::open(link, &options))?;
    let mut said = Said::new(json!({
        "summary": opened.summary, "label": opened.label, "expires_at": opened.expires_at,
        "bundle": opened.bundle,
    }));
    match &opened.summary {
        Some(s) => {
            said!(
                said,
                "{}  born {}{}{}",
                s.name.as_deref().unwrap_or("(no name)"),
                s.birth_date.as_deref().unwrap_or("?"),
                s.age.map(|a| format!(" (age {a})")).unwrap_or_default(),
                s.nhs_number
                    .as_deref()
                    .map(|n| format!("  NHS number {n}"))
                    .unwrap_or_default()
            );
            if let Some(l) = &s.language {
                let interpreter = if s.interpreter_needed {
                    "; interpreter needed"
                } else {
                    ""
                };
                said!(said, "Language: {l}{interpreter}");
            }
            if let Some(gp) = &s.gp_practice {
                said!(said, "GP practice: {gp}");
            }
            for c in &s.contacts {
                said!(said, "Contact: {c}");
            }
            said!(
                said,
                "Summary made {}{}",
                s.made_at.as_deref().unwrap_or("?"),
                opened
                    .expires_at
                    .map(|e| format!("; the link works until {}", date_time(e)))
                    .unwrap_or_default()
            );
            sections(&mut said, s);
        }
        None => said!(said, "{}", opened.bundle),
    }
    Ok(Outcome::ok(said))
}

/// `carry summary`: the patient summary as a FHIR document, to a file or stdout.
pub fn summary(home: &Path, preset: &str, out: Option<PathBuf>) -> Result<u8> {
    let profile = open(home)?;
    let preset = carry_core::links::ips::Preset::parse(preset)?;
    let bundle = carry_core::links::summary_document(&profile, &preset)?;
    let text = serde_json::to_string_pretty(&bundle)
        .map_err(|e| carry_core::Error::internal(e.to_string()))?;
    match out {
        Some(path) => {
            carry_core::private_file::write(&path, text.as_bytes())?;
            crate::note!("summary written to {}", path.display());
        }
        None => crate::output::raw_line(&text),
    }
    Ok(exit::OK)
}
