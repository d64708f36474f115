//! Outside text as a terminal shows it: control characters (escape sequences, carriage returns,
//! newlines that would forge table rows) and bidirectional overrides are written as visible
//! escapes (`\x1b`, `\n`, `\u{202e}`), so a token name or a client's name cannot rewrite what a
//! person reads. Everything else is left as it is.

use std::borrow::Cow;
use std::fmt::Write;

/// Characters that reorder the text around them (Unicode bidirectional controls).
fn reorders(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn escaped(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    let hidden = |c: char| !keep(c) && (c.is_control() || reorders(c));
    if !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !hidden(c) {
            out.push(c);
            continue;
        }
        let _ = match c {
            '\n' => out.write_str("\\n"),
            '\r' => out.write_str("\\r"),
            '\t' => out.write_str("\\t"),
            c if (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32),
            c => write!(out, "\\u{{{:x}}}", c as u32),
        };
    }
    Cow::Owned(out)
}

/// One value (a name, a reason, a cell): every control character escaped, newlines included.
pub fn shown(s: &str) -> Cow<'_, str> {
    escaped(s, |_| false)
}

/// A text of several lines built by tokenwarden (a table, a message): its newlines stay,
/// every other control character is escaped.
pub fn shown_lines(s: &str) -> Cow<'_, str> {
    escaped(s, |c| c == '\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_visible_and_plain_text_is_untouched() {
        assert_eq!(shown("ci-bot é ✓"), "ci-bot é ✓");
        assert_eq!(shown("a\u{1b}[2Jb"), "a\\x1b[2Jb");
        assert_eq!(shown("row\nforged"), "row\\nforged");
        assert_eq!(shown("x\u{202E}gpj.exe"), "x\\u{202e}gpj.exe");
        assert_eq!(shown("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(shown_lines("a\nb\u{7}"), "a\nb\\x07");
    }
}
