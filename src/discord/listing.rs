//! `/token list`: an ephemeral, readable page of tokens, with buttons that fetch the previous or
//! next page from InfluxDB (so even huge listings stay small). What was asked is kept in the
//! store for 15 minutes, so the buttons work on whichever process answers and after a restart.

use chrono::{DateTime, Utc};
use serenity::builder::{CreateActionRow, CreateButton, CreateEmbed};
use serenity::model::application::ButtonStyle;
use serenity::model::user::User;

use super::requests::INSTANCE_SHOWN;
use super::text::{self, DESCRIPTION, Embed, code, literal, plain};
use super::{Bot, actor_of};
use crate::store::Listing;
use crate::tokens::{ListFilter, Page, Token, TokenStatus};

/// Tokens per page.
pub const PAGE: usize = 15;
/// A page button's custom id: this, the listing's id, `:` and the page number.
pub const PAGE_PREFIX: &str = "tw:pg:";

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
    /// Keeps what `user` asked to list (in the store, so any process sharing it can show the
    /// next page) and shows its first page.
    pub(super) async fn first_page(
        &self,
        user: &User,
        instance: Option<String>,
        filter: ListFilter,
    ) -> Result<(Embed, Vec<CreateActionRow>), String> {
        let actor = actor_of(user);
        let id = self
            .service
            .save_listing(&actor, instance.clone(), filter.clone())
            .await
            .map_err(|e| could_not_list(&e))?;
        let listing = Listing {
            owner: actor.account(),
            instance,
            filter,
        };
        self.list_view(user, &id, &listing, 0).await
    }

    /// Listing `id`, if it exists, has not lapsed and is `user`'s.
    pub(super) async fn listing_of(
        &self,
        user: &User,
        id: &str,
    ) -> Result<Option<Listing>, String> {
        self.service
            .listing(&actor_of(user), id)
            .await
            .map_err(|e| could_not_list(&e))
    }

    /// Page `page` of `listing` (saved as `id`), fetched now.
    pub(super) async fn list_view(
        &self,
        user: &User,
        id: &str,
        listing: &Listing,
        page: usize,
    ) -> Result<(Embed, Vec<CreateActionRow>), String> {
        // The page comes from a button's custom id, which a crafted request can set to anything.
        let offset = page
            .checked_mul(PAGE)
            .ok_or_else(|| "There is no such page; run /token list again.".to_owned())?;
        let window = Page {
            offset,
            limit: PAGE,
        };
        let instance = listing.instance.as_deref();
        let listed = self
            .service
            .list_page(&actor_of(user), instance, &listing.filter, window)
            .await
            .map_err(|e| could_not_list(&e))?;
        let name = self.service.instance_or_default(listing.instance.clone());
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

fn could_not_list(e: &crate::service::ServiceError) -> String {
    format!(
        "Could not list tokens: {}",
        plain(&crate::discord::text::explain(e), 1900)
    )
}
