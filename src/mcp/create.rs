//! Creating tokens over MCP: the core creates and delivers; where the client supports URL-mode
//! elicitation the user is shown the one-time link directly (a server request on 2025-11-25, an
//! `InputRequiredResult` round on 2026-07-28), otherwise the link goes in the result for the
//! assistant to pass on. Declining the link withdraws the token.

use rmcp::ErrorData;
use rmcp::model::{
    CallToolResponse, ElicitRequest, ElicitRequestParams, ElicitResult, ElicitationAction,
    InputRequest, InputRequests, InputRequiredResult, InputResponses,
};
use rmcp::service::{ElicitationMode, RequestContext, RoleServer};

use super::args::{Created, Handoff, TokenView};
use super::delivery::{Handed, McpDelivery};
use super::reply::{can_elicit, is_modern, service_error, structured, tool_error};
use super::{McpServer, SecretMode};
use crate::actor::Actor;
use crate::shown::{quoted, shown};
use crate::tokens::{NewToken, ParseError, Token, TokenName};

const REVEAL_STATE: &str = "reveal";
const REVEAL_KEY: &str = "reveal";

impl McpServer {
    /// Creates `new` on `instance` and hands its secret to the user.
    pub(super) async fn create(
        &self,
        ctx: &RequestContext<RoleServer>,
        state: Option<String>,
        responses: Option<InputResponses>,
        instance: Option<String>,
        new: Result<NewToken, ParseError>,
    ) -> Result<CallToolResponse, ErrorData> {
        let actor = self.actor(ctx);
        let new = match new {
            Ok(n) => n,
            Err(e) => return Ok(tool_error(e)),
        };
        let instance = self.core.service.instance_or_default(instance);
        if state.as_deref() == Some(REVEAL_STATE) {
            return self
                .finish_reveal(&actor, &instance, &new.name, responses)
                .await;
        }
        let mut delivery = McpDelivery::new(
            self.core.settings.secret_mode.clone(),
            self.core.reveal.clone(),
            instance.clone(),
            actor.clone(),
        );
        if self.core.settings.secret_mode == SecretMode::Private {
            let person = self.core.service.people().of(&actor);
            match person.filter(|p| p.passphrase_argon2.is_some()) {
                Some(p) => delivery = delivery.for_person(p.name.clone()),
                None => {
                    return Ok(tool_error(format!(
                        "Nothing was created: secrets go only to their owner's private page here, and this \
                         MCP client ({}) belongs to nobody with a passphrase in tokenwarden's [[people]]. \
                         The administrator can add it (README, \"Private delivery\").",
                        actor.account()
                    )));
                }
            }
        }
        let done = match self
            .core
            .service
            .create(&actor, Some(&instance), new, &delivery)
            .await
        {
            Ok(d) => d,
            Err(e) => return Ok(service_error(&e)),
        };
        let Some(handed) = delivery.handed() else {
            return Ok(tool_error("the secret was not handed over; this is a bug"));
        };
        // The user is shown the address directly where the client can: a one-time link, or the
        // private page, which asks for their passphrase (so its address alone opens nothing).
        let shown_to_user = match &handed {
            Handed::Link(link) => Some((
                link.url.clone(),
                format!(
                    "Token {} was created on {}. Open this one-time link to see its secret; it works once \
                     and expires, after which the token is deleted if unopened.",
                    quoted(&done.token.name),
                    quoted(&instance)
                ),
            )),
            Handed::Private { person, page, .. } => Some((
                page.clone(),
                format!(
                    "Token {} was created on {}. Its secret waits for {} on this page, which \
                     asks for their passphrase; if nobody signs in before it expires, the token is deleted.",
                    quoted(&done.token.name),
                    quoted(&instance),
                    shown(person)
                ),
            )),
            _ => None,
        };
        if let Some((address, message)) = shown_to_user
            && can_elicit(ctx, ElicitationMode::Url)
        {
            if is_modern(ctx) {
                let request = InputRequest::Elicitation(ElicitRequest::new(
                    ElicitRequestParams::UrlElicitationParams {
                        meta: None,
                        message,
                        url: address.clone(),
                        elicitation_id: uuid::Uuid::new_v4().to_string(),
                    },
                ));
                let mut requests = InputRequests::new();
                requests.insert(REVEAL_KEY.to_owned(), request);
                return Ok(
                    InputRequiredResult::new(Some(requests), Some(REVEAL_STATE.to_owned())).into(),
                );
            }
            if let Ok(url) = url::Url::parse(&address) {
                let timeout = Some(self.core.settings.elicitation_timeout);
                let shown = ctx
                    .peer
                    .elicit_url_with_timeout(
                        message,
                        url,
                        uuid::Uuid::new_v4().to_string(),
                        timeout,
                    )
                    .await;
                match shown {
                    Ok(ElicitationAction::Accept) => return self.shown(&instance, &done.token),
                    Ok(_) => return self.declined(&actor, &instance, &done.token.name).await,
                    Err(e) => {
                        tracing::debug!(error = %e, "URL elicitation failed; the link goes in the result")
                    }
                }
            }
        }
        structured(&Created {
            instance,
            token: TokenView::new(&done.token, self.core.service.now()),
            next_step: handed.next_step(),
            secret_handoff: handed.handoff(),
        })
    }

    fn shown(&self, instance: &str, token: &Token) -> Result<CallToolResponse, ErrorData> {
        structured(&Created {
            instance: instance.to_owned(),
            token: TokenView::new(token, self.core.service.now()),
            secret_handoff: super::args::SecretHandoff {
                method: Handoff::UrlElicitation,
                reveal_url: None,
                reveal_expires_at: None,
                file: None,
                secret: None,
            },
            next_step: "The user was shown where to see the secret; nothing more to pass on."
                .to_owned(),
        })
    }

    async fn declined(
        &self,
        actor: &Actor,
        instance: &str,
        name: &str,
    ) -> Result<CallToolResponse, ErrorData> {
        let why = "the user declined to open its one-time reveal link";
        let token = quoted(name);
        let withdrawn = self
            .core
            .reveal
            .withdraw_for(actor, instance, name, why)
            .await;
        Ok(tool_error(if withdrawn {
            format!(
                "The user declined to open the link to the secret, so token {token} was deleted again; nobody holds it."
            )
        } else {
            format!(
                "The user declined to open the link to the secret, but that link was no longer waiting: it was \
                 opened, or it lapsed and token {token} was deleted. Nothing more was done; list_tokens shows \
                 whether the token exists."
            )
        }))
    }

    async fn finish_reveal(
        &self,
        actor: &Actor,
        instance: &str,
        name: &TokenName,
        responses: Option<InputResponses>,
    ) -> Result<CallToolResponse, ErrorData> {
        let action = responses
            .and_then(|mut r| r.remove(REVEAL_KEY))
            .and_then(|v| serde_json::from_value::<ElicitResult>(v).ok())
            .map(|r| r.action);
        match action {
            Some(ElicitationAction::Accept) => {
                match self.core.service.find(actor, Some(instance), name).await {
                    Ok(token) => self.shown(instance, &token),
                    Err(e) => Ok(service_error(&e)),
                }
            }
            _ => self.declined(actor, instance, name.as_str()).await,
        }
    }
}
