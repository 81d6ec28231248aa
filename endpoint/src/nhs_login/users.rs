//! The sandbox's synthetic users: made up on sign-in from the authorize request's
//! `sandbox_*` parameters, never looked up anywhere. A user is known by an NHS number
//! whose modulus-11 check digit is right; the subject identifier (`sub`) is derived
//! from it, the same on every run, and is not the number itself.

use std::collections::HashMap;

use super::vectors::Level;

/// What a sandbox sign-in gives when the request names no given name.
const DEFAULT_GIVEN: &str = "Sandbox";
/// What a sandbox sign-in gives when the request names no family name.
const DEFAULT_FAMILY: &str = "User";
/// What a sandbox sign-in gives when the request names no date of birth.
const DEFAULT_BIRTHDATE: &str = "1980-01-01";
/// The longest name the sandbox takes, in characters.
const MAX_NAME: usize = 64;
/// What the subject identifier is derived under (SHA-256 of this, then the number).
const SUB_LABEL: &[u8] = b"carry mock NHS login subject v1\n";

/// A synthetic user signed in through the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxUser {
    /// The 10-digit NHS number.
    pub nhs_number: String,
    /// How far the identity is taken as proven.
    pub proofing: Level,
    /// First name.
    pub given_name: String,
    /// Surname.
    pub family_name: String,
    /// Date of birth, `YYYY-MM-DD`.
    pub birthdate: String,
}

impl SandboxUser {
    /// The user the `sandbox_*` parameters describe; `today` bounds the date of
    /// birth. The error completes "sandbox_… …" for the client.
    pub fn from_params(
        p: &HashMap<String, String>,
        today: time::Date,
    ) -> Result<Self, &'static str> {
        let get = |k: &str| super::param(p, k);
        let nhs_number = get("sandbox_user").ok_or("sandbox_user is required")?;
        if !valid_nhs_number(nhs_number) {
            return Err("sandbox_user must be a 10-digit NHS number with a valid check digit");
        }
        let proofing = match get("sandbox_proofing") {
            None => Level::P9,
            Some(l) => Level::parse(l).ok_or("sandbox_proofing must be P0, P5 or P9")?,
        };
        let name = |k: &str, default: &str, why: &'static str| match get(k) {
            None => Ok(default.to_string()),
            Some(v) => {
                let v = v.trim();
                if v.is_empty() || v.chars().count() > MAX_NAME || v.chars().any(char::is_control) {
                    Err(why)
                } else {
                    Ok(v.to_string())
                }
            }
        };
        let given_name = name(
            "sandbox_given",
            DEFAULT_GIVEN,
            "sandbox_given must be 1 to 64 characters",
        )?;
        let family_name = name(
            "sandbox_family",
            DEFAULT_FAMILY,
            "sandbox_family must be 1 to 64 characters",
        )?;
        let birthdate = match get("sandbox_birthdate") {
            None => DEFAULT_BIRTHDATE.to_string(),
            Some(d) => {
                let fmt = time::macros::format_description!("[year]-[month]-[day]");
                match time::Date::parse(d, fmt) {
                    Ok(date) if date.year() >= 1900 && date <= today => d.to_string(),
                    _ => return Err("sandbox_birthdate must be a past date, YYYY-MM-DD"),
                }
            }
        };
        Ok(SandboxUser {
            nhs_number: nhs_number.to_string(),
            proofing,
            given_name,
            family_name,
            birthdate,
        })
    }

    /// The subject identifier: hex SHA-256 of a fixed label and the NHS number, so
    /// the same person has the same `sub` on every run and every endpoint.
    pub fn sub(&self) -> String {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(SUB_LABEL);
        ctx.update(self.nhs_number.as_bytes());
        hex::encode(ctx.finish())
    }

    /// Whether NHS login releases this user's NHS number and demographics (`profile`,
    /// `basic_demographics`, `profile_extended`): only once the identity is proven to
    /// P5 or P9.
    pub fn demographics_released(&self) -> bool {
        self.proofing >= Level::P5
    }
}

pub use carry_proto::nhs::is_nhs_number as valid_nhs_number;

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn today() -> time::Date {
        time::macros::date!(2026 - 01 - 01)
    }

    #[test]
    fn nhs_numbers_are_checked_by_modulus_11() {
        for good in ["9912003888", "9000000009", "4857773457"] {
            assert!(valid_nhs_number(good), "{good}");
        }
        for bad in [
            "9912003889",
            "4857773456",
            "991200388",
            "99120038888",
            "99120038a8",
            "+912003888",
            "",
        ] {
            assert!(!valid_nhs_number(bad), "{bad}");
        }
    }

    #[test]
    fn a_user_has_defaults_and_a_stable_sub_that_is_not_the_number() {
        let u =
            SandboxUser::from_params(&params(&[("sandbox_user", "9912003888")]), today()).unwrap();
        assert_eq!(u.proofing, Level::P9);
        assert_eq!(u.birthdate, DEFAULT_BIRTHDATE);
        let sub = u.sub();
        assert_eq!(sub.len(), 64);
        assert!(!sub.contains("9912003888"));
        let again = SandboxUser::from_params(
            &params(&[("sandbox_user", "9912003888"), ("sandbox_proofing", "P5")]),
            today(),
        )
        .unwrap();
        assert_eq!(again.sub(), sub);
        assert!(again.demographics_released());
    }

    #[test]
    fn bad_sandbox_parameters_are_refused() {
        for bad in [
            vec![("sandbox_user", "9912003889")],
            vec![("sandbox_user", "9912003888"), ("sandbox_proofing", "P7")],
            vec![
                ("sandbox_user", "9912003888"),
                ("sandbox_birthdate", "2030-01-01"),
            ],
            vec![
                ("sandbox_user", "9912003888"),
                ("sandbox_birthdate", "1990-02-30"),
            ],
            vec![("sandbox_user", "9912003888"), ("sandbox_given", "a\nb")],
            vec![("sandbox_user", "9912003888"), ("sandbox_family", "   ")],
        ] {
            assert!(
                SandboxUser::from_params(&params(&bad), today()).is_err(),
                "{bad:?}"
            );
        }
        let p0 = SandboxUser::from_params(
            &params(&[("sandbox_user", "9912003888"), ("sandbox_proofing", "P0")]),
            today(),
        )
        .unwrap();
        assert!(!p0.demographics_released());
    }
}
