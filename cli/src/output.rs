//! Everything the CLI prints as text goes through here, so that text from outside
//! (FHIR display lines, people's and invites' names, share-link recipients, servers'
//! messages, error reasons) cannot drive the terminal: control characters and the
//! Unicode characters that reorder text are shown as visible escapes (`\u{1b}`), and
//! one printed line stays one line. JSON output is left to serde, unchanged.

use std::borrow::Cow;
use std::io::Write as _;

/// `s` with every unsafe character written as `\u{hex}` ([`carry_core::text`]);
/// ordinary text (accents, CJK, emoji) is untouched and borrowed.
pub fn clean(s: &str) -> Cow<'_, str> {
    carry_core::text::escaped(s, usize::MAX)
}

/// Print `text` as one line on stdout, as it is: for JSON, which serde has escaped.
/// When the reader has gone (`carry timeline | head`), stop quietly.
pub fn raw_line(text: &str) {
    if let Err(e) = writeln!(std::io::stdout().lock(), "{text}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

/// Print `text` as one line of text on stdout, made safe ([`clean`]).
pub fn line(text: &str) {
    raw_line(&clean(text));
}

/// Print `text` as one line on stderr, made safe ([`clean`]).
pub fn err_line(text: &str) {
    eprintln!("{}", clean(text));
}

/// Where the log's lines go: stderr, each made safe like everything else printed
/// ([`clean`]). The log formatter writes each event whole, ending in a line break,
/// so a reason quoted in a warning cannot start a line of its own either. Its colours
/// must be off, or their escapes would be shown as text.
pub struct LogLine;

impl std::io::Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        writeln!(std::io::stderr().lock(), "{}", clean(text))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Print a line of text to stdout, made safe for the terminal ([`clean`]). Each call
/// is one line: a line break inside what is printed shows as `\u{a}`.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::line(&format!($($arg)*))
    };
}

/// Print a line of text to stderr, made safe for the terminal ([`clean`]).
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::output::err_line(&format!($($arg)*))
    };
}

/// Print `v` as pretty JSON on stdout: the `--json` form of every command.
pub(crate) fn print_json(v: &impl serde::Serialize) -> carry_core::Result<()> {
    let text =
        serde_json::to_string_pretty(v).map_err(|e| carry_core::Error::internal(e.to_string()))?;
    raw_line(&text);
    Ok(())
}

/// Print what a command answers: with `--json`, its JSON (serde); else its text
/// (`Display`), each line made safe as [`line`] makes it. Commands return values that
/// are both, so no command prints two ways by hand.
pub fn show<T: serde::Serialize + std::fmt::Display>(
    value: &T,
    as_json: bool,
) -> carry_core::Result<()> {
    if as_json {
        return print_json(value);
    }
    for l in value.to_string().lines() {
        line(l);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn controls_and_reordering_characters_are_escaped() {
        assert_eq!(
            clean("Mum\u{1b}[1;32m (verified)\u{1b}[0m\nfake"),
            "Mum\\u{1b}[1;32m (verified)\\u{1b}[0m\\u{a}fake"
        );
        assert_eq!(
            clean("\u{1b}]8;;http://x\u{7}a\u{1b}]8;;\u{7}"),
            "\\u{1b}]8;;http://x\\u{7}a\\u{1b}]8;;\\u{7}"
        );
        assert_eq!(
            clean("a\rb\u{8}c\u{7f}d\td"),
            "a\\u{d}b\\u{8}c\\u{7f}d\\u{9}d"
        );
        assert_eq!(
            clean("\u{9b}31m\u{9d}0;t\u{9c}"),
            "\\u{9b}31m\\u{9d}0;t\\u{9c}"
        );
        assert_eq!(clean("abc\u{202e}fdp.exe"), "abc\\u{202e}fdp.exe");
        assert_eq!(
            clean("\u{2066}x\u{2069}\u{200f}\u{2028}"),
            "\\u{2066}x\\u{2069}\\u{200f}\\u{2028}"
        );
    }

    #[test]
    fn ordinary_text_passes_untouched() {
        for s in [
            "Zoë Brontë-Ćwik",
            "Siobhán Ó Dálaigh",
            "山田 太郎",
            "مريم",
            "👨\u{200d}👩\u{200d}👧 family",
            "Blood pressure 120/80 mmHg (Left arm) [x] {y} \\ ~",
        ] {
            assert!(matches!(clean(s), std::borrow::Cow::Borrowed(_)), "{s}");
        }
    }
}
