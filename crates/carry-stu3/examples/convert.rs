//! Converts the resources of an STU3 Bundle (a GP Connect Access Record response, say)
//! to R4 and prints them as an R4 Bundle of type `collection` on standard output.
//! Entries that cannot be converted, and the notes on what did not carry over, are
//! reported on standard error, one a line:
//!
//! ```text
//! unsupported: OperationOutcome/8b67…: no conversion from STU3 OperationOutcome to R4: …
//! note: AllergyIntolerance/6bff…: AllergyIntolerance.…
//! ```
//!
//! Usage: `cargo run -p carry-stu3 --example convert -- BUNDLE.json`

use std::process::ExitCode;

use serde_json::{json, Value};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("convert: {problem}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (Some(path), None) = (args.next(), args.next()) else {
        return Err("usage: convert BUNDLE.json".into());
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let input: Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let resources: Vec<&Value> = match input.get("resourceType").and_then(Value::as_str) {
        Some("Bundle") => input
            .get("entry")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("resource"))
            .collect(),
        _ => vec![&input],
    };
    let mut entries = Vec::new();
    for resource in resources {
        let name = format!(
            "{}/{}",
            resource
                .get("resourceType")
                .and_then(Value::as_str)
                .unwrap_or("(no type)"),
            resource
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("(no id)")
        );
        match carry_stu3::to_r4(resource) {
            Ok(converted) => {
                for note in &converted.notes {
                    eprintln!("note: {name}: {note}");
                }
                entries.push(json!({"resource": converted.resource}));
            }
            Err(e @ carry_stu3::Stu3Error::Unsupported { .. }) => {
                eprintln!("unsupported: {name}: {e}")
            }
            Err(e) => eprintln!("invalid: {name}: {e}"),
        }
    }
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "collection",
        "meta": {"tag": [{
            "system": carry_stu3::CONVERTED_SYSTEM,
            "code": carry_stu3::CONVERTED_CODE,
        }]},
        "entry": entries,
    });
    let out = serde_json::to_string_pretty(&bundle).map_err(|e| e.to_string())?;
    println!("{out}");
    Ok(())
}
