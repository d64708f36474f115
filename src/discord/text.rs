//! Every text the bot sends, within Discord's limits by construction: outside text is escaped
//! first (markdown, mentions, control characters; a code span cannot be broken out of), then cut
//! at a character boundary with an ellipsis; every message mentions nobody. Discord refuses a
//! whole request when one limit is passed, so nothing is sent that has not been through here.

use serenity::builder::{
    CreateActionRow, CreateAllowedMentions, CreateEmbed, CreateEmbedFooter,
    CreateInteractionResponse, CreateInteractionResponseFollowup, CreateInteractionResponseMessage,
    CreateMessage, EditInteractionResponse, EditMessage,
};

// Which characters are hidden is the display escaping's rule; here they are replaced.
use crate::shown::hidden;

/// Message content.
pub const CONTENT: usize = 2000;
/// Embed title.
pub const TITLE: usize = 256;
/// Embed description.
pub const DESCRIPTION: usize = 4096;
/// Embed field name.
pub const FIELD_NAME: usize = 256;
/// Embed field value.
pub const FIELD_VALUE: usize = 1024;
/// Embed footer.
pub const FOOTER: usize = 2048;
/// All of an embed's texts together.
pub const EMBED_TOTAL: usize = 6000;
/// Fields per embed.
pub const FIELDS: usize = 25;
/// An autocomplete choice's name and value.
pub const CHOICE: usize = 100;
/// A button's custom id.
pub const CUSTOM_ID: usize = 100;

const ELLIPSIS: char = '…';
/// What stands in for a character that would be invisible or break the layout.
const REPLACEMENT: char = '\u{FFFD}';
/// What stands in for a backtick inside code, where it would end the code span.
const BACKTICK: char = '\u{02CB}';

/// The length Discord counts: characters.
pub fn len(s: &str) -> usize {
    s.chars().count()
}

/// Joins `units` (each one visible character and its escape) and cuts the result to `max`
/// characters, never inside a unit, ending with an ellipsis when cut.
fn fit(units: impl Iterator<Item = (char, Option<char>)>, max: usize) -> String {
    let units: Vec<(char, Option<char>)> = units.collect();
    let width = |u: &(char, Option<char>)| 1 + usize::from(u.1.is_some());
    let total: usize = units.iter().map(width).sum();
    let budget = if total <= max {
        max
    } else {
        max.saturating_sub(1)
    };
    let mut out = String::new();
    let mut used = 0;
    for u in &units {
        if used + width(u) > budget {
            break;
        }
        used += width(u);
        if let Some(escape) = u.1 {
            out.push(escape);
        }
        out.push(u.0);
    }
    if total > max && max > 0 {
        out.push(ELLIPSIS);
    }
    out
}

/// `s` as Discord markdown text that shows exactly `s`: markdown and mention characters escaped,
/// control characters replaced, at most `max` characters.
pub fn plain(s: &str, max: usize) -> String {
    fit(
        s.chars().map(|c| match c {
            c if hidden(c) => (REPLACEMENT, None),
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '#' | '-' | '[' | ']' | '<' | '@' => {
                (c, Some('\\'))
            }
            c => (c, None),
        }),
        max,
    )
}

/// `s` as the inside of code (a span or a block): nothing is markdown there, so only backticks
/// (which would end the code) and control characters are replaced; at most `max` characters.
pub fn literal(s: &str, max: usize) -> String {
    fit(
        s.chars().map(|c| match c {
            c if hidden(c) => (REPLACEMENT, None),
            '`' => (BACKTICK, None),
            c => (c, None),
        }),
        max,
    )
}

/// `s` in a code span, at most `max` characters with its backticks.
pub fn code(s: &str, max: usize) -> String {
    format!("`{}`", literal(s, max.saturating_sub(2).max(1)))
}

/// Text for a label Discord shows without markdown (an autocomplete choice): control
/// characters replaced, at most `max` characters.
pub fn label(s: &str, max: usize) -> String {
    fit(
        s.chars().map(|c| {
            if hidden(c) {
                (REPLACEMENT, None)
            } else {
                (c, None)
            }
        }),
        max,
    )
}

/// Text made of safe pieces, cut to `max` characters.
pub fn clamp(s: &str, max: usize) -> String {
    fit(s.chars().map(|c| (c, None)), max)
}

/// Mentions nobody: no `@everyone`, no roles, no users, whatever the text holds.
pub fn quiet() -> CreateAllowedMentions {
    CreateAllowedMentions::new()
}

/// Content that is never empty and never too long.
fn content(text: &str) -> String {
    if text.is_empty() {
        "…".to_owned()
    } else {
        clamp(text, CONTENT)
    }
}

/// An ephemeral answer (only the caller sees it).
pub fn reply(text: &str) -> CreateInteractionResponse {
    CreateInteractionResponse::Message(
        CreateInteractionResponseMessage::new()
            .content(content(text))
            .ephemeral(true)
            .allowed_mentions(quiet()),
    )
}

/// The text that replaces "thinking…".
pub fn edit(text: &str) -> EditInteractionResponse {
    EditInteractionResponse::new()
        .content(content(text))
        .allowed_mentions(quiet())
}

/// An embed (and its buttons) that replaces "thinking…" or an earlier page.
pub fn edit_embed(embed: Embed, rows: Vec<CreateActionRow>) -> EditInteractionResponse {
    EditInteractionResponse::new()
        .embed(embed.build())
        .components(rows)
        .allowed_mentions(quiet())
}

/// An ephemeral follow-up.
pub fn followup(text: &str) -> CreateInteractionResponseFollowup {
    CreateInteractionResponseFollowup::new()
        .content(content(text))
        .ephemeral(true)
        .allowed_mentions(quiet())
}

/// A channel or direct message.
pub fn message(text: &str) -> CreateMessage {
    CreateMessage::new()
        .content(content(text))
        .allowed_mentions(quiet())
}

/// A message holding an embed and its buttons.
pub fn card_message(embed: Embed, rows: Vec<CreateActionRow>) -> CreateMessage {
    CreateMessage::new()
        .embed(embed.build())
        .components(rows)
        .allowed_mentions(quiet())
}

/// The edit of such a message.
pub fn card_edit(embed: Embed, rows: Vec<CreateActionRow>) -> EditMessage {
    EditMessage::new()
        .embed(embed.build())
        .components(rows)
        .allowed_mentions(quiet())
}

/// An embed whose texts are cut to Discord's limits when it is built.
#[derive(Debug, Clone, Default)]
pub struct Embed {
    title: String,
    description: Option<String>,
    fields: Vec<(String, String, bool)>,
    footer: Option<String>,
    colour: u32,
}

impl Embed {
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            ..Self::default()
        }
    }

    pub fn colour(mut self, colour: u32) -> Self {
        self.colour = colour;
        self
    }

    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }

    pub fn field(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
        inline: bool,
    ) -> Self {
        self.fields.push((name.into(), value.into(), inline));
        self
    }

    pub fn footer(mut self, text: impl Into<String>) -> Self {
        self.footer = Some(text.into());
        self
    }

    /// Each text cut to its own limit (and never empty where Discord needs text), at most
    /// [`FIELDS`] fields, then the longest texts cut further until the whole fits [`EMBED_TOTAL`].
    pub fn build(self) -> CreateEmbed {
        let nonempty = |s: String, max| {
            if s.is_empty() {
                "-".to_owned()
            } else {
                clamp(&s, max)
            }
        };
        // Title, description, footer, then each field's name and value.
        let mut texts: Vec<Option<String>> = vec![
            Some(nonempty(self.title, TITLE)),
            self.description.map(|d| nonempty(d, DESCRIPTION)),
            self.footer.map(|f| nonempty(f, FOOTER)),
        ];
        let mut inline = vec![];
        for (name, value, i) in self.fields.into_iter().take(FIELDS) {
            texts.push(Some(nonempty(name, FIELD_NAME)));
            texts.push(Some(nonempty(value, FIELD_VALUE)));
            inline.push(i);
        }
        loop {
            let lengths: Vec<usize> = texts.iter().map(|t| t.as_deref().map_or(0, len)).collect();
            let total: usize = lengths.iter().sum();
            let Some((longest, &have)) = lengths.iter().enumerate().max_by_key(|(_, l)| **l) else {
                break;
            };
            if total <= EMBED_TOTAL || have <= 1 {
                break;
            }
            let keep = have.saturating_sub(total - EMBED_TOTAL).max(1);
            texts[longest] = texts[longest].take().map(|t| clamp(&t, keep));
        }
        let mut texts = texts.into_iter();
        let mut e = CreateEmbed::new().colour(self.colour);
        if let Some(Some(title)) = texts.next() {
            e = e.title(title);
        }
        if let Some(Some(description)) = texts.next() {
            e = e.description(description);
        }
        if let Some(Some(footer)) = texts.next() {
            e = e.footer(CreateEmbedFooter::new(footer));
        }
        for i in inline {
            if let (Some(Some(name)), Some(Some(value))) = (texts.next(), texts.next()) {
                e = e.field(name, value, i);
            }
        }
        e
    }
}

/// A failure of the core as a Discord user reads it (unescaped: callers escape and cut it with
/// the rest of their text): what happened, then the slash command that helps.
pub fn explain(e: &crate::service::ServiceError) -> String {
    use crate::service::Remedy;
    let step = match e.remedy() {
        None => return e.to_string(),
        Some(Remedy::ListTokens { why }) => format!("use /token list {why}"),
        Some(Remedy::ListDatabases) => {
            "the database option suggests the names as you type".to_owned()
        }
        Some(Remedy::RegenerateOperator) => {
            "an operator can do that with `tokenwarden tokens regenerate-operator`".to_owned()
        }
        Some(Remedy::BootstrapOperator) => {
            "an operator can do that with `tokenwarden tokens bootstrap-operator`".to_owned()
        }
        Some(Remedy::DeleteToken { name }) => {
            format!("use /token delete name:{name} to delete it now")
        }
        Some(Remedy::CheckInstance) => {
            "an operator can check it with `tokenwarden check`".to_owned()
        }
    };
    format!("{e}; {step}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remedy_is_a_slash_command_or_an_operator_s_job() {
        use crate::service::ServiceError;
        use crate::tokens::BackendError;
        let missing = ServiceError::Backend {
            instance: "local".into(),
            source: BackendError::NotFound { name: "x".into() },
        };
        assert_eq!(
            explain(&missing),
            "instance `local`: no token named `x` exists; use /token list to see the names"
        );
        assert!(explain(&ServiceError::OperatorProtected).contains("an operator can do that"));
    }

    #[test]
    fn outside_text_shows_as_written_and_mentions_nobody() {
        assert_eq!(
            plain("**@everyone** <@1>", 100),
            "\\*\\*\\@everyone\\*\\* \\<\\@1\\>"
        );
        assert_eq!(plain("a\nb\u{202E}", 100), "a\u{FFFD}b\u{FFFD}");
        assert_eq!(
            plain("w\u{2060}j\u{E0041}", 100),
            "w\u{FFFD}j\u{FFFD}",
            "invisible to people, read by models"
        );
        assert_eq!(code("x`y", 100), "`x\u{02CB}y`");
    }

    #[test]
    fn cuts_end_with_an_ellipsis_and_never_split_an_escape() {
        assert_eq!(plain("abcdef", 4), "abc…");
        assert_eq!(plain("abc", 3), "abc");
        assert_eq!(
            plain("ab*cd", 4),
            "ab…",
            "the escaped star does not fit whole"
        );
        assert_eq!(code(&"x".repeat(300), 10), format!("`{}…`", "x".repeat(7)));
        assert_eq!(len(&clamp(&"é".repeat(3000), CONTENT)), CONTENT);
    }

    #[test]
    fn embeds_fit_their_total() {
        let mut e = Embed::new("t".repeat(999)).description("d".repeat(9999));
        for _ in 0..30 {
            e = e.field("n", "v".repeat(2000), false);
        }
        let v = serde_json::to_value(e.build()).unwrap();
        let fields = v["fields"].as_array().unwrap();
        assert_eq!(fields.len(), FIELDS);
        let total: usize = [&v["title"], &v["description"]]
            .iter()
            .map(|t| len(t.as_str().unwrap()))
            .chain(
                fields
                    .iter()
                    .map(|f| len(f["name"].as_str().unwrap()) + len(f["value"].as_str().unwrap())),
            )
            .sum();
        assert!(total <= EMBED_TOTAL, "{total}");
        assert!(len(v["title"].as_str().unwrap()) <= TITLE);
    }
}
