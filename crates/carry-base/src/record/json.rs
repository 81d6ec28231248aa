//! Lossless compaction of JSON text.

/// Remove insignificant whitespace from JSON text, leaving every string, number and
/// key exactly as written (so `1.50` stays `1.50` and key order is kept).
///
/// The input must already be valid JSON; this only drops whitespace outside strings.
pub fn minify(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for ch in text.chars() {
        if in_string {
            out.push(ch);
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_string = false;
            }
        } else if ch == '"' {
            in_string = true;
            out.push(ch);
        } else if !matches!(ch, ' ' | '\n' | '\r' | '\t') {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::minify;

    #[test]
    fn keeps_strings_numbers_and_escapes() {
        let text = "{ \"a\" : [ 1.50 , \"x y\\\" z\" ],\n \"b\":\t\"\\\\\" }";
        assert_eq!(minify(text), "{\"a\":[1.50,\"x y\\\" z\"],\"b\":\"\\\\\"}");
    }
}
