//! Everything the CLI prints as text goes through here, so that text from outside
//! (FHIR display lines, people's and invites' names, share-link recipients, servers'
//! messages, error reasons) cannot drive the terminal: control characters and the
//! Unicode characters that reorder text are shown as visible escapes (`\u{1b}`), and
//! one printed line stays one line. JSON output is left to serde, unchanged.

use std::borrow::Cow;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether `--json` was given: the printer's choice, set once in `main`.
static JSON: AtomicBool = AtomicBool::new(false);

/// Say whether answers print as JSON (`--json`).
pub fn set_json_mode(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// Whether answers print as JSON: for a command that also says something on stderr
/// as it goes, which a script reading JSON does not want.
pub fn json_mode() -> bool {
    JSON.load(Ordering::Relaxed)
}

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

/// A command's answer, printed once by [`Outcome::print`]: text for a person
/// (`Display`), JSON for a script (`Serialize`). Every `Serialize + Display` value is
/// one.
pub trait Answer {
    /// The answer as text lines.
    fn text(&self) -> String;
    /// The answer as pretty JSON, fields in their declared order.
    fn json(&self) -> carry_core::Result<String>;
}

impl<T: serde::Serialize + std::fmt::Display> Answer for T {
    fn text(&self) -> String {
        self.to_string()
    }
    fn json(&self) -> carry_core::Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| carry_core::Error::internal(e.to_string()))
    }
}

/// An answer made of a JSON value and lines of text: for a command whose JSON is built
/// in place (`json!`) rather than a type of its own. Each line is made safe as it is
/// added ([`clean`]), so one added line stays one printed line.
#[derive(Default)]
pub struct Said {
    json: serde_json::Value,
    text: String,
}

impl Said {
    /// An answer whose JSON is `json`, with no text yet.
    pub fn new(json: serde_json::Value) -> Said {
        Said {
            json,
            text: String::new(),
        }
    }

    /// Add one line of text.
    pub fn line(&mut self, text: &str) {
        self.text.push_str(&clean(text));
        self.text.push('\n');
    }
}

impl serde::Serialize for Said {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(s)
    }
}

impl std::fmt::Display for Said {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Add a line to a [`Said`], as `say!` prints one.
#[macro_export]
macro_rules! said {
    ($to:expr, $($arg:tt)*) => {
        $to.line(&format!($($arg)*))
    };
}

/// What a command did: its answer (printed by the one printer) and its exit code.
pub struct Outcome {
    answer: Option<Box<dyn Answer>>,
    /// The exit code.
    pub code: u8,
}

impl Outcome {
    /// `answer`, with exit code 0.
    pub fn ok(answer: impl Answer + 'static) -> Outcome {
        Outcome::with_code(answer, crate::exit::OK)
    }

    /// `answer`, with exit `code`.
    pub fn with_code(answer: impl Answer + 'static, code: u8) -> Outcome {
        Outcome {
            answer: Some(Box::new(answer)),
            code,
        }
    }

    /// A command that printed what it had to say itself (a document, or a
    /// conversation such as a move between phones), with exit `code`.
    pub fn printed(code: u8) -> Outcome {
        Outcome { answer: None, code }
    }

    /// Print the answer: its JSON with `--json`, else its text, each line made safe.
    pub fn print(&self, as_json: bool) -> carry_core::Result<()> {
        match &self.answer {
            None => Ok(()),
            Some(a) if as_json => {
                raw_line(&a.json()?);
                Ok(())
            }
            Some(a) => {
                for l in a.text().lines() {
                    line(l);
                }
                Ok(())
            }
        }
    }
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
