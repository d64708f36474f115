//! Outside text as a person or a script reads it: control characters (escape sequences, carriage
//! returns, newlines that would forge table rows), bidirectional overrides and invisible
//! characters are written as visible escapes (`\x1b`, `\n`, `\u{202e}`), or as JSON `\uXXXX`
//! escapes in JSON, so a token name or a client's name cannot rewrite what a person reads.
//! Everything else is left as it is. Depends on nothing in the crate; every module may use it.

use std::borrow::Cow;
use std::fmt::Write;

/// Characters that reorder the text around them or hide in it: Unicode bidirectional controls,
/// zero-width spaces and joiners between words, line and paragraph separators, the byte order
/// mark, and tag characters (invisible to people, yet read by language models).
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// Whether `c` is never shown as it is: a control character, or one that reorders or hides
/// text.
pub fn hidden(c: char) -> bool {
    c.is_control() || invisible(c)
}

/// How an escaped character is written.
#[derive(Clone, Copy)]
enum Form {
    /// For people: `\n`, `\x1b`, `\u{202e}`.
    Visible,
    /// Inside a JSON string: `\u202e`, a surrogate pair above U+FFFF.
    Json,
}

fn escaped(s: &str, hide: impl Fn(char) -> bool, form: Form) -> Cow<'_, str> {
    if !s.chars().any(&hide) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !hide(c) {
            out.push(c);
            continue;
        }
        let _ = match (form, c) {
            (Form::Visible, '\n') => out.write_str("\\n"),
            (Form::Visible, '\r') => out.write_str("\\r"),
            (Form::Visible, '\t') => out.write_str("\\t"),
            (Form::Visible, c) if (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32),
            (Form::Visible, c) => write!(out, "\\u{{{:x}}}", c as u32),
            (Form::Json, c) => c
                .encode_utf16(&mut [0; 2])
                .iter()
                .try_for_each(|unit| write!(out, "\\u{unit:04x}")),
        };
    }
    Cow::Owned(out)
}

/// One value (a name, a reason, a cell): every control character escaped, newlines included.
pub fn shown(s: &str) -> Cow<'_, str> {
    escaped(s, hidden, Form::Visible)
}

/// A text of several lines built by tokenwarden (a table, a message): its newlines stay,
/// every other control character is escaped.
pub fn shown_lines(s: &str) -> Cow<'_, str> {
    escaped(s, |c| c != '\n' && hidden(c), Form::Visible)
}

/// A name quoted in prose that may be read as markdown: `` `name` ``, escaped as [`shown`]
/// escapes it and its backticks written `\x60`, so the name can neither end its quoting nor
/// start a line.
pub fn quoted(s: &str) -> String {
    format!("`{}`", escaped(s, |c| c == '`' || hidden(c), Form::Visible))
}

/// JSON text as serde_json writes it (compact or pretty), for a terminal: every character
/// [`hidden`] holds (serde_json escapes only those below U+0020) becomes a `\uXXXX` escape. Such
/// characters occur only inside strings there, so the text stays valid JSON and parses back to
/// the same strings; its newlines are pretty-printing and stay.
pub fn shown_json(json: &str) -> Cow<'_, str> {
    escaped(json, |c| c != '\n' && hidden(c), Form::Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_visible_and_plain_text_is_untouched() {
        assert_eq!(shown("ci-bot é ✓ 👩‍💻"), "ci-bot é ✓ 👩‍💻");
        assert_eq!(shown("a\u{1b}[2Jb"), "a\\x1b[2Jb");
        assert_eq!(shown("row\nforged"), "row\\nforged");
        assert_eq!(shown("x\u{202E}gpj.exe"), "x\\u{202e}gpj.exe");
        assert_eq!(shown("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(shown_lines("a\nb\u{7}"), "a\nb\\x07");
    }

    #[test]
    fn invisible_characters_are_shown() {
        assert_eq!(shown("a\u{200B}b\u{FEFF}"), "a\\u{200b}b\\u{feff}");
        assert_eq!(shown_lines("a\u{2028}b"), "a\\u{2028}b");
        assert_eq!(shown("ok\u{E0041}\u{E0042}"), "ok\\u{e0041}\\u{e0042}");
    }

    #[test]
    fn a_quoted_name_cannot_end_its_quoting() {
        assert_eq!(quoted("ci"), "`ci`");
        assert_eq!(quoted("a` on `prod\n\nb"), "`a\\x60 on \\x60prod\\n\\nb`");
        assert_eq!(quoted("r\u{202E}l"), "`r\\u{202e}l`");
    }

    #[test]
    fn json_keeps_its_strings_and_shows_no_raw_control() {
        let name = "grafana\u{202E}gpj\u{85}\u{7f}\u{E0041}\ttab";
        for text in [
            serde_json::json!({ "name": name }).to_string(),
            serde_json::to_string_pretty(&serde_json::json!({ "name": [name] })).unwrap(),
        ] {
            let out = shown_json(&text);
            assert!(!out.chars().any(|c| c != '\n' && hidden(c)), "{out}");
            let back: serde_json::Value = serde_json::from_str(&out).unwrap();
            let got = back["name"].as_str().or(back["name"][0].as_str());
            assert_eq!(got, Some(name), "{out}");
        }
        assert!(shown_json("\"\u{202E}\"").contains("\\u202e"));
        assert_eq!(shown_json("\"\u{E0041}\""), "\"\\udb40\\udc41\"");
    }
}
