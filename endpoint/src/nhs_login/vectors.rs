//! Vectors of Trust (RFC 8485) as NHS login uses them: an identity proofing level
//! (`P0`, `P5`, `P9`) and the credentials used (`Cp` password, `Cd` registered device,
//! `Ck` shared key in a device, `Cm` asymmetric key in a device), joined by dots, e.g.
//! `P9.Cp.Cd`. A request (`vtr`) is a JSON array of acceptable vectors, ORed; the
//! components of one vector are ANDed, and a vector that leaves out a component accepts
//! any value of it.

/// How far a user's identity has been proven, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// No identity proofing: the user owns an email address and a mobile number.
    P0,
    /// Medium: basic identity information checked against the NHS's records.
    P5,
    /// High: photo ID or a physical comparison; the NHS number is traced.
    P9,
}

impl Level {
    /// `P0`, `P5` or `P9`; anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "P0" => Some(Level::P0),
            "P5" => Some(Level::P5),
            "P9" => Some(Level::P9),
            _ => None,
        }
    }

    /// The level as NHS login writes it (`identity_proofing_level`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::P0 => "P0",
            Level::P5 => "P5",
            Level::P9 => "P9",
        }
    }
}

/// The credential components NHS login knows.
const CREDENTIALS: [&str; 4] = ["Cp", "Cd", "Ck", "Cm"];

/// What is assumed when a request has no `vtr`: high proofing with two factors.
pub const DEFAULT_VTR: [&str; 3] = ["P9.Cp.Cd", "P9.Cp.Ck", "P9.Cm"];

/// The vectors NHS login's profiles name, offered in discovery.
pub const SUPPORTED: [&str; 9] = [
    "P0.Cp", "P0.Cp.Cd", "P0.Cp.Ck", "P5.Cp.Cd", "P5.Cp.Ck", "P5.Cm", "P9.Cp.Cd", "P9.Cp.Ck",
    "P9.Cm",
];

/// The most vectors one request may list.
const MAX_VECTORS: usize = 16;
/// The longest vector, in bytes.
const MAX_VECTOR_LEN: usize = 32;

/// One acceptable vector of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vector {
    /// The vector as requested, e.g. `P9.Cp.Cd`.
    pub text: String,
    /// Its proofing level, if it names one (none: any level will do).
    pub level: Option<Level>,
}

/// The vectors of a `vtr` parameter (a JSON array of strings), or the default when it
/// is absent.
pub fn parse_vtr(raw: Option<&str>) -> Result<Vec<Vector>, &'static str> {
    let texts: Vec<String> = match raw {
        None => DEFAULT_VTR.iter().map(|s| s.to_string()).collect(),
        Some(raw) => {
            serde_json::from_str(raw).map_err(|_| "vtr must be a JSON array of strings")?
        }
    };
    if texts.is_empty() || texts.len() > MAX_VECTORS {
        return Err("vtr must list 1 to 16 vectors");
    }
    texts.into_iter().map(|t| parse_vector(&t)).collect()
}

/// One vector: dot-separated components, at most one proofing level, credentials from
/// [`CREDENTIALS`]. Credential management (`M`) and assertion presentation (`A`) are
/// outside NHS login's vectors.
fn parse_vector(text: &str) -> Result<Vector, &'static str> {
    if text.is_empty() || text.len() > MAX_VECTOR_LEN {
        return Err("vtr has an empty or overlong vector");
    }
    let mut level = None;
    for component in text.split('.') {
        if let Some(l) = Level::parse(component) {
            if level.replace(l).is_some() {
                return Err("vtr has a vector with two proofing levels");
            }
        } else if !CREDENTIALS.contains(&component) {
            return Err("vtr has a component NHS login does not know (P0, P5, P9, Cp, Cd, Ck, Cm)");
        }
    }
    Ok(Vector {
        text: text.to_string(),
        level,
    })
}

/// The vector granted to a user proven to `user`: the first requested one whose level
/// the user meets (a vector without a level accepts any), or none.
pub fn grant(requested: &[Vector], user: Level) -> Option<&Vector> {
    requested
        .iter()
        .find(|v| v.level.is_none_or(|needed| user >= needed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_asks_for_p9() {
        let v = parse_vtr(None).unwrap();
        assert_eq!(v.len(), 3);
        assert!(v.iter().all(|v| v.level == Some(Level::P9)));
        assert!(grant(&v, Level::P5).is_none());
        assert_eq!(grant(&v, Level::P9).unwrap().text, "P9.Cp.Cd");
    }

    #[test]
    fn the_first_vector_the_user_meets_is_granted() {
        let v = parse_vtr(Some(r#"["P9.Cp.Cd","P5.Cp.Cd","P0.Cp"]"#)).unwrap();
        assert_eq!(grant(&v, Level::P5).unwrap().text, "P5.Cp.Cd");
        assert_eq!(grant(&v, Level::P0).unwrap().text, "P0.Cp");
        let any = parse_vtr(Some(r#"["Cp.Cd"]"#)).unwrap();
        assert_eq!(grant(&any, Level::P0).unwrap().text, "Cp.Cd");
    }

    #[test]
    fn malformed_requests_are_refused() {
        for bad in [
            "P9.Cp.Cd",
            "[]",
            r#"["P9.P5"]"#,
            r#"["P7.Cp"]"#,
            r#"["P9.Ca"]"#,
            r#"["P9..Cp"]"#,
            r#"[1]"#,
            r#"["P9.Cp.Cd.Cp.Cd.Cp.Cd.Cp.Cd.Cp.Cd.Cm"]"#,
        ] {
            assert!(parse_vtr(Some(bad)).is_err(), "{bad}");
        }
        assert!(SUPPORTED.iter().all(|s| parse_vector(s).is_ok()));
    }
}
