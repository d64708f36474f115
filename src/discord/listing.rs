//! `/token list`: an ephemeral, readable page of tokens, with buttons that fetch the previous or
//! next page from InfluxDB (so even huge listings stay small).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serenity::builder::{CreateActionRow, CreateButton, CreateEmbed};
use serenity::model::application::ButtonStyle;

use super::requests::INSTANCE_SHOWN;
use super::text::{self, DESCRIPTION, Embed, code, literal, plain};
use super::{Bot, actor_of};
use crate::tokens::{ListFilter, Page, Token, TokenStatus};

/// Tokens per page.
pub const PAGE: usize = 15;
/// How long page buttons keep working.
const SESSION_TTL: Duration = Duration::from_secs(15 * 60);
pub const PAGE_PREFIX: &str = "tw:pg:";

/// A listing someone is paging through: what they asked, not what came back.
pub struct ListSession {
    user: serenity::model::user::User,
    instance: Option<String>,
    filter: ListFilter,
    created: Instant,
}

/// How much of a name and of the permissions a row shows.
const NAME_WIDTH: usize = 32;
const PERMISSIONS_WIDTH: usize = 60;

fn row(name: &str, id: &str, kind: &str, status: &str, expiry: &str, permissions: &str) -> String {
    format!(
        "{:<NAME_WIDTH$} {:>6} {:<8} {:<7} {:<10} {}\n",
        literal(name, NAME_WIDTH),
        literal(id, 20),
        kind,
        status,
        expiry,
        literal(permissions, PERMISSIONS_WIDTH)
    )
}

fn line(t: &Token, now: DateTime<Utc>) -> String {
    let status = match t.status(now) {
        TokenStatus::Active => "active",
        TokenStatus::Expired => "EXPIRED",
    };
    let expiry = t
        .expiry
        .map_or("never".to_owned(), |e| e.format("%Y-%m-%d").to_string());
    row(
        &t.name,
        &t.id.to_string(),
        &t.kind.to_string(),
        status,
        &expiry,
        &t.permissions.join(" "),
    )
}

/// A page of tokens as an embed: a table in a code block, with as many rows as fit (names and
/// permissions cut; the id tells look-alike names apart).
pub fn list_embed(
    instance: &str,
    tokens: &[Token],
    page: usize,
    now: DateTime<Utc>,
) -> CreateEmbed {
    page_embed(instance, tokens, page, now).build()
}

fn page_embed(instance: &str, tokens: &[Token], page: usize, now: DateTime<Utc>) -> Embed {
    let body = if tokens.is_empty() {
        "No tokens match.".to_owned()
    } else {
        const FENCE: &str = "```";
        let more = |n: usize| format!("… and {n} more on this page\n");
        let mut text = format!(
            "{FENCE}\n{}",
            row("NAME", "ID", "KIND", "STATUS", "EXPIRES", "PERMISSIONS")
        );
        for (i, t) in tokens.iter().enumerate() {
            let l = line(t, now);
            let room = DESCRIPTION - FENCE.len() - text::len(&more(tokens.len()));
            if text::len(&text) + text::len(&l) > room {
                text.push_str(&more(tokens.len() - i));
                break;
            }
            text.push_str(&l);
        }
        text.push_str(FENCE);
        text
    };
    Embed::new(format!(
        "Tokens on {} (page {})",
        code(instance, INSTANCE_SHOWN),
        page.saturating_add(1)
    ))
    .description(body)
    .colour(0x34_98_DB)
}

/// A page as an embed, with paging buttons when there is more than one page.
fn render(
    instance: &str,
    tokens: &[Token],
    id: &str,
    page: usize,
    has_next: bool,
    now: DateTime<Utc>,
) -> (Embed, Vec<CreateActionRow>) {
    let embed = page_embed(instance, tokens, page, now);
    let mut rows = vec![];
    if page > 0 || has_next {
        rows.push(CreateActionRow::Buttons(vec![
            CreateButton::new(format!("{PAGE_PREFIX}{id}:{}", page.saturating_sub(1)))
                .label("◀ Previous")
                .style(ButtonStyle::Secondary)
                .disabled(page == 0),
            CreateButton::new(format!("{PAGE_PREFIX}{id}:{}", page.saturating_add(1)))
                .label("Next ▶")
                .style(ButtonStyle::Secondary)
                .disabled(!has_next),
        ]));
    }
    (embed, rows)
}

impl Bot {
    /// Keeps what `user` asked for, for paging; returns its id.
    pub(super) fn keep_list(
        &self,
        user: &serenity::model::user::User,
        instance: Option<String>,
        filter: ListFilter,
    ) -> String {
        let id = crate::gate::PendingId::random().to_string()[..10].to_owned();
        let session = ListSession {
            user: user.clone(),
            instance,
            filter,
            created: Instant::now(),
        };
        let mut lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        lists.retain(|_, s| s.created.elapsed() < SESSION_TTL);
        lists.insert(id.clone(), session);
        id
    }

    /// Whether listing `id` exists and belongs to `user`.
    pub(super) fn owns_list(&self, id: &str, user: u64) -> bool {
        let lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        lists
            .get(id)
            .is_some_and(|s| s.user.id.get() == user && s.created.elapsed() < SESSION_TTL)
    }

    /// Page `page` of listing `id`, fetched now.
    pub(super) async fn list_view(
        &self,
        id: &str,
        page: usize,
    ) -> Result<(Embed, Vec<CreateActionRow>), String> {
        let (user, instance, filter) = {
            let lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
            let s = lists
                .get(id)
                .ok_or_else(|| "This list expired; run /token list again.".to_owned())?;
            (s.user.clone(), s.instance.clone(), s.filter.clone())
        };
        // The page comes from a button's custom id, which a crafted request can set to anything.
        let offset = page
            .checked_mul(PAGE)
            .ok_or_else(|| "There is no such page; run /token list again.".to_owned())?;
        let window = Page {
            offset,
            limit: PAGE,
        };
        let listed = self
            .service
            .list_page(&actor_of(&user), instance.as_deref(), &filter, window)
            .await
            .map_err(|e| {
                format!(
                    "Could not list tokens: {}",
                    plain(&crate::discord::text::explain(&e), 1900)
                )
            })?;
        let name = self.service.instance_or_default(instance);
        Ok(render(
            &name,
            &listed.tokens,
            id,
            page,
            listed.next.is_some(),
            self.service.now(),
        ))
    }
}
