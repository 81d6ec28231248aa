//! Text that came from outside (names, display lines, share-link recipients, servers'
//! reasons) made safe to show: the characters that could drive a terminal or make one
//! line read as another are written as visible `\u{…}` escapes.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not be shown as itself: C0 controls (ESC, CR, LF, BEL, backspace,
/// tab…), DEL, C1 controls (U+0080–U+009F, among them the 8-bit CSI and OSC), the bidi
/// marks, embeddings, overrides and isolates, the line and paragraph separators, and
/// the deprecated format characters that change how text is shaped or ordered.
/// Joiners (U+200C, U+200D) stay: emoji and many scripts need them.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{206A}'..='\u{206F}'
        )
}

/// `s` with every [`is_unsafe`] character written as `\u{hex}`, and at most `max`
/// characters (then `…`); ordinary text (accents, CJK, emoji) is untouched, and
/// borrowed when nothing changes.
pub fn escaped(s: &str, max: usize) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) && s.chars().nth(max).is_none() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if is_unsafe(c) {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escaped;

    #[test]
    fn controls_and_reordering_characters_are_escaped_and_length_bounded() {
        assert_eq!(
            escaped("Dr\u{1b}[1m\r\n\u{202e}x", 99),
            "Dr\\u{1b}[1m\\u{d}\\u{a}\\u{202e}x"
        );
        assert_eq!(escaped("Zoë 李 👩‍⚕️", 99), "Zoë 李 👩‍⚕️");
        assert_eq!(escaped("abcdef", 3), "abc…");
    }
}
