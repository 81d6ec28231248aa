//! NHS England's identifiers, as both the core (NHS login, GP Connect) and the
//! endpoint's mocks of them read them.

/// The identifier system of NHS numbers.
pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";

/// Whether `s` is an NHS number: ten ASCII digits whose last is the modulus-11 check
/// digit of the first nine (weights 10 down to 2; a check of 11 counts as 0, and one
/// of 10 makes no valid number).
pub fn is_nhs_number(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if s.len() != 10 || digits.len() != 10 {
        return false;
    }
    let sum: u32 = digits[..9]
        .iter()
        .zip((2..=10).rev())
        .map(|(d, w)| d * w)
        .sum();
    let check = match 11 - sum % 11 {
        11 => 0,
        10 => return false,
        c => c,
    };
    digits[9] == check
}

#[cfg(test)]
mod tests {
    use super::is_nhs_number;

    #[test]
    fn nhs_numbers_are_checked_by_modulus_11() {
        // NHS England's published examples, and their neighbours.
        for good in ["9434765919", "9999999999"] {
            assert!(is_nhs_number(good), "{good}");
        }
        for bad in [
            "9434765918",
            "943476591",
            "94347659190",
            "94347a5919",
            "+434765919",
            "9434765919 ",
            // A check digit of 10 makes no number.
            "0000000060",
        ] {
            assert!(!is_nhs_number(bad), "{bad}");
        }
    }
}
