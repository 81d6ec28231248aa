//! Reading one typed answer from standard input.

use std::io::{BufRead, IsTerminal};

use carry_core::{Error, Result};

/// Where an answer may come from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Only a person at a terminal (a secret such as the recovery code, which has an
    /// option for scripts instead).
    Terminal,
    /// A terminal or a pipe (scripts and tests answer the pairing questions).
    AnyInput,
}

/// Show `prompt` on standard error and read one line, trimmed. An invalid-input
/// error when `from` needs a terminal and there is none, or nothing was typed.
pub fn ask(prompt: &str, from: Input) -> Result<String> {
    if from == Input::Terminal && !std::io::stdin().is_terminal() {
        return Err(Error::invalid(format!(
            "{prompt}: run carry in a terminal, or pass the value as an option"
        )));
    }
    eprint!("{prompt}: ");
    let mut s = String::new();
    let n = std::io::stdin()
        .lock()
        .read_line(&mut s)
        .map_err(|e| Error::invalid(format!("could not read: {e}")))?;
    if n == 0 {
        return Err(Error::invalid(format!("{prompt}: no answer was typed")));
    }
    Ok(s.trim().to_string())
}
