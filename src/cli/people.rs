//! `tokenwarden people hash-passphrase`: the Argon2 hash for a `[[people]]` entry's
//! `passphrase_hash`, from a passphrase typed without echo (or piped in).

use std::io::{BufRead, IsTerminal};

use super::CliError;

/// Shortest passphrase accepted: the page lets anyone who has its address guess a few times.
const MIN_CHARS: usize = 12;

/// Reads the passphrase (twice at a terminal, once from a pipe) and returns its hash.
pub fn hash_passphrase() -> Result<String, CliError> {
    let passphrase = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Passphrase: ")
            .map_err(|e| CliError::Prompt(e.to_string()))?;
        let again =
            rpassword::prompt_password("Again: ").map_err(|e| CliError::Prompt(e.to_string()))?;
        if first != again {
            return Err(CliError::Incomplete(
                "the two passphrases differ; nothing was hashed".into(),
            ));
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::Prompt(e.to_string()))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if passphrase.chars().count() < MIN_CHARS {
        return Err(CliError::Incomplete(format!(
            "a passphrase needs at least {MIN_CHARS} characters; nothing was hashed"
        )));
    }
    crate::people::hash_passphrase(&passphrase)
        .map_err(|e| CliError::Incomplete(format!("cannot hash the passphrase: {e}")))
}
