//! `/token list`: an ephemeral, readable page of tokens, with buttons to page through long lists.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serenity::builder::{CreateActionRow, CreateButton, CreateEmbed};
use serenity::model::application::ButtonStyle;

use super::Bot;
use crate::tokens::{Token, TokenStatus};

/// Tokens per page.
pub const PAGE: usize = 15;
/// How long page buttons keep working.
const SESSION_TTL: Duration = Duration::from_secs(15 * 60);
pub const PAGE_PREFIX: &str = "tw:pg:";

/// A listing someone is paging through.
pub struct ListSession {
    pub user: u64,
    pub instance: String,
    pub tokens: Vec<Token>,
    pub at: DateTime<Utc>,
    created: Instant,
}

fn line(t: &Token, now: DateTime<Utc>) -> String {
    let status = match t.status(now) {
        TokenStatus::Active => "active",
        TokenStatus::Expired => "EXPIRED",
    };
    let expiry = t
        .expiry
        .map_or("never".to_owned(), |e| e.format("%Y-%m-%d").to_string());
    format!(
        "{:<24} {:<8} {:<7} {:<10} {}",
        t.name,
        t.kind,
        status,
        expiry,
        t.permissions.join(" ")
    )
}

/// Page `page` of a session: the embed and its paging buttons.
pub fn render(s: &ListSession, id: &str, page: usize) -> (CreateEmbed, Vec<CreateActionRow>) {
    let pages = s.tokens.len().div_ceil(PAGE).max(1);
    let page = page.min(pages - 1);
    let rows: Vec<String> = s
        .tokens
        .iter()
        .skip(page * PAGE)
        .take(PAGE)
        .map(|t| line(t, s.at))
        .collect();
    let body = if rows.is_empty() {
        "No tokens match.".to_owned()
    } else {
        let mut text = format!(
            "```\n{:<24} {:<8} {:<7} {:<10} {}\n",
            "NAME", "KIND", "STATUS", "EXPIRES", "PERMISSIONS"
        );
        for r in rows {
            text.push_str(&r);
            text.push('\n');
        }
        text.push_str("```");
        text
    };
    let embed = CreateEmbed::new()
        .title(format!(
            "Tokens on `{}`: {} (page {} of {pages})",
            s.instance,
            s.tokens.len(),
            page + 1
        ))
        .description(body)
        .colour(0x34_98_DB);
    let mut rows = vec![];
    if pages > 1 {
        rows.push(CreateActionRow::Buttons(vec![
            CreateButton::new(format!("{PAGE_PREFIX}{id}:{}", page.saturating_sub(1)))
                .label("◀ Previous")
                .style(ButtonStyle::Secondary)
                .disabled(page == 0),
            CreateButton::new(format!("{PAGE_PREFIX}{id}:{}", page + 1))
                .label("Next ▶")
                .style(ButtonStyle::Secondary)
                .disabled(page + 1 >= pages),
        ]));
    }
    (embed, rows)
}

impl Bot {
    /// Keeps a listing for paging; returns its id.
    pub(super) fn keep_list(&self, user: u64, instance: String, tokens: Vec<Token>) -> String {
        let id = crate::gate::PendingId::random().to_string()[..10].to_owned();
        let session = ListSession {
            user,
            instance,
            tokens,
            at: self.service.now(),
            created: Instant::now(),
        };
        let mut lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        lists.retain(|_, s| s.created.elapsed() < SESSION_TTL);
        lists.insert(id.clone(), session);
        id
    }

    /// Renders page `page` of listing `id` for `user`; `None` if it expired or is someone else's.
    pub(super) fn list_page(
        &self,
        id: &str,
        page: usize,
        user: u64,
    ) -> Option<(CreateEmbed, Vec<CreateActionRow>)> {
        let lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        let s = lists
            .get(id)
            .filter(|s| s.user == user && s.created.elapsed() < SESSION_TTL)?;
        Some(render(s, id, page))
    }
}
