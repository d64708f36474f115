//! Every interaction is answered, even when handling it panics: a panic while choosing the
//! answer becomes an ephemeral error, and a panic in the work after a deferred answer edits
//! "thinking…" into an error (a button click gets an ephemeral follow-up), instead of leaving
//! the person waiting or Discord showing "interaction failed".

use std::future::Future;
use std::sync::Arc;

use serenity::builder::{Builder, CreateAutocompleteResponse, CreateInteractionResponse};
use serenity::http::Http;
use serenity::model::application::Interaction;

use super::text;
use super::{Reply, ephemeral};
use crate::panics::catching;

/// What a person reads when tokenwarden failed inside.
pub(super) const FAILED: &str = "tokenwarden hit an internal error and did not finish this; \
please report it. A change it had started is settled from its journal: run /token list to see \
where things stand before trying again.";

/// Where an interaction can still be answered from after a panic. The interaction token it
/// holds lets anyone post in the interaction for 15 minutes: it is never logged.
pub(super) enum Origin {
    /// A slash command: its deferred answer is edited.
    Command {
        token: String,
    },
    /// A button click: acknowledged without a message, so it gets an ephemeral follow-up.
    Component {
        token: String,
    },
    /// Autocomplete answers with choices only.
    Autocomplete,
    Other,
}

impl Origin {
    pub(super) fn of(interaction: &Interaction) -> Self {
        match interaction {
            Interaction::Command(c) => Self::Command {
                token: c.token.clone(),
            },
            Interaction::Component(c) => Self::Component {
                token: c.token.clone(),
            },
            Interaction::Autocomplete(_) => Self::Autocomplete,
            _ => Self::Other,
        }
    }

    /// The first answer in place of one that panicked.
    fn first_answer(&self) -> CreateInteractionResponse {
        match self {
            Self::Autocomplete => {
                CreateInteractionResponse::Autocomplete(CreateAutocompleteResponse::new())
            }
            _ => ephemeral(FAILED),
        }
    }

    /// Tells the person that the work after the first answer failed.
    async fn report_failure(&self, http: &Arc<Http>) {
        let sent = match self {
            Self::Command { token } => text::edit(FAILED).execute(http, token.as_str()).await,
            Self::Component { token } => {
                text::followup(FAILED)
                    .execute(http, (None, token.as_str()))
                    .await
            }
            Self::Autocomplete | Self::Other => return,
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not tell Discord that an interaction failed");
        }
    }
}

/// `dispatch`'s reply, answering for it if it panics, and for its deferred work if that does.
pub(super) async fn guarded(
    http: Arc<Http>,
    origin: Origin,
    dispatch: impl Future<Output = Reply>,
) -> Reply {
    let reply = match catching(dispatch).await {
        Ok(reply) => reply,
        Err(panicked) => {
            tracing::error!(panic = %panicked.0, "a Discord interaction handler panicked; answered with an error");
            return Reply::now(origin.first_answer());
        }
    };
    let Some(later) = reply.later else {
        return reply;
    };
    Reply::then(reply.initial, async move {
        if let Err(panicked) = catching(later).await {
            tracing::error!(panic = %panicked.0, "the work after a Discord answer panicked; telling the user");
            origin.report_failure(&http).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::extract::{Request, State};
    use serde_json::Value;
    use serenity::http::HttpBuilder;
    use serenity::model::id::ApplicationId;

    use super::*;
    use crate::discord::deferred;

    type Seen = Arc<Mutex<Vec<(String, String, Value)>>>;

    /// A Discord REST API that records method, path and JSON body, and answers 200 `{}`.
    async fn fake_discord() -> (Arc<Http>, Seen) {
        let seen: Seen = Arc::default();
        let record = |State(seen): State<Seen>, req: Request| async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let mut seen = seen.lock().unwrap();
            seen.push((parts.method.to_string(), parts.uri.path().to_owned(), json));
            "{}"
        };
        let app = axum::Router::new()
            .fallback(record)
            .with_state(Arc::clone(&seen));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let http = HttpBuilder::new("bot-token")
            .proxy(url)
            .ratelimiter_disabled(true)
            .application_id(ApplicationId::new(7))
            .build();
        (Arc::new(http), seen)
    }

    fn explode() -> Reply {
        panic!("handler failed near apiv3_NeverShownToAnyone")
    }

    fn json(r: &CreateInteractionResponse) -> Value {
        serde_json::to_value(r).unwrap()
    }

    #[tokio::test]
    async fn a_panic_while_choosing_the_answer_is_answered_with_an_ephemeral_error() {
        let (http, seen) = fake_discord().await;
        let origin = Origin::Command {
            token: "itoken".into(),
        };
        let reply = guarded(http, origin, async { explode() }).await;
        let answer = json(&reply.initial);
        assert_eq!(
            (answer["type"].as_u64(), answer["data"]["flags"].as_u64()),
            (Some(4), Some(64))
        );
        let content = answer["data"]["content"].as_str().unwrap();
        assert!(content.contains("internal error"), "{content}");
        assert!(
            !content.contains("apiv3_") && !content.contains("near"),
            "{content}"
        );
        assert!(reply.later.is_none());
        assert!(seen.lock().unwrap().is_empty());

        let (http, _) = fake_discord().await;
        let reply = guarded(http, Origin::Autocomplete, async { explode() }).await;
        assert_eq!(
            json(&reply.initial)["type"],
            8,
            "autocomplete gets no choices, not a message"
        );
    }

    #[tokio::test]
    async fn a_panic_after_a_deferred_answer_edits_thinking_into_an_error() {
        let (http, seen) = fake_discord().await;
        let origin = Origin::Command {
            token: "itoken".into(),
        };
        let reply = guarded(http, origin, async {
            Reply::then(deferred(), async {
                explode();
            })
        })
        .await;
        assert_eq!(json(&reply.initial)["type"], 5, "thinking…");
        reply.later.expect("deferred work").await;
        let seen = seen.lock().unwrap();
        let [(method, path, body)] = seen.as_slice() else {
            panic!("one call to Discord: {seen:?}")
        };
        assert_eq!(
            (method.as_str(), path.as_str()),
            ("PATCH", "/api/v10/webhooks/7/itoken/messages/@original")
        );
        assert!(
            body["content"].as_str().unwrap().contains("internal error"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_panic_after_a_button_click_sends_an_ephemeral_follow_up() {
        let (http, seen) = fake_discord().await;
        let origin = Origin::Component {
            token: "ctoken".into(),
        };
        let reply = guarded(http, origin, async {
            Reply::then(CreateInteractionResponse::Acknowledge, async {
                explode();
            })
        })
        .await;
        reply.later.expect("deferred work").await;
        let seen = seen.lock().unwrap();
        let [(method, path, body)] = seen.as_slice() else {
            panic!("one call to Discord: {seen:?}")
        };
        assert_eq!(
            (method.as_str(), path.as_str()),
            ("POST", "/api/v10/webhooks/7/ctoken")
        );
        assert_eq!(body["flags"], 64, "{body}");
        assert!(
            body["content"].as_str().unwrap().contains("internal error"),
            "{body}"
        );
    }
}
