//! Deletes, prunes and regenerations through the gate, as MCP flows: form elicitation in both protocol
//! eras (a server request on 2025-11-25, `InputRequiredResult` on 2026-07-28), a one-time
//! confirmation code for clients that cannot elicit, or a human approval elsewhere.

use rmcp::ErrorData;
use rmcp::elicit_safe;
use rmcp::model::{
    CallToolResponse, ElicitRequest, ElicitRequestParams, ElicitResult, ElicitationAction,
    ElicitationSchema, InputRequest, InputRequests, InputRequiredResult, InputResponses,
};
use rmcp::service::{ElicitationError, ElicitationMode, RequestContext, RoleServer};
use schemars::JsonSchema;
use serde::Deserialize;

use super::McpServer;
use super::args::{ExpiredView, GateAnswer, GateStatus, Kind, TokenView};
use super::reply::{can_elicit, is_modern, service_error, structured, tool_error};
use crate::actor::Actor;
use crate::gate::{GateError, PendingId};
use crate::service::{
    ApprovalPolicy, Channel, Executed, GatePolicy, NextStep, Opened, Operation, PendingRequest,
    Request, ServiceError,
};
use crate::shown::{quoted, shown};

/// The answer typed to confirm a delete.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TypedTokenName {
    /// Type the token's exact name to delete it.
    pub token_name: String,
}

/// The answer typed to confirm a regeneration.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TypedInstanceName {
    /// Type the instance's exact name to regenerate its operator token.
    pub instance_name: String,
}

/// The answer typed to confirm pruning expired tokens.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TypedConfirmation {
    /// Type `prune` to delete the expired tokens listed.
    pub confirmation: String,
}

elicit_safe!(TypedTokenName, TypedInstanceName, TypedConfirmation);

/// What the user types to confirm each kind of operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Typed {
    TokenName,
    InstanceName,
    Prune,
}

impl Typed {
    fn field(self) -> &'static str {
        match self {
            Self::TokenName => "token_name",
            Self::InstanceName => "instance_name",
            Self::Prune => "confirmation",
        }
    }

    fn schema(self) -> Result<ElicitationSchema, serde_json::Error> {
        match self {
            Self::TokenName => ElicitationSchema::from_type::<TypedTokenName>(),
            Self::InstanceName => ElicitationSchema::from_type::<TypedInstanceName>(),
            Self::Prune => ElicitationSchema::from_type::<TypedConfirmation>(),
        }
    }
}

const STATE_PREFIX: &str = "confirm:";
const CONFIRM_KEY: &str = "confirm";

/// One destructive request as the tools describe it.
pub struct Gated {
    pub request: Request,
    pub code: Option<String>,
}

impl Gated {
    fn typed(&self) -> Typed {
        match self.request {
            Request::Delete { .. } => Typed::TokenName,
            Request::Regenerate { .. } => Typed::InstanceName,
            Request::Prune { .. } => Typed::Prune,
        }
    }

    /// The question the user answers. Names in it are quoted and escaped ([`quoted`]): a name
    /// cannot end its quoting or add a line to what the user is asked.
    fn prompt(&self, p: &PendingRequest, now: chrono::DateTime<chrono::Utc>) -> String {
        let phrase = quoted(&self.request.phrase());
        match (
            &p.pending.action,
            p.token.as_ref().map(|t| TokenView::new(t, now)),
        ) {
            (Operation::DeleteToken { instance, name, .. }, Some(t)) => format!(
                "Delete token {} on instance {}? It is {} token with permissions {}, created {}, expiring {}. \
                 Clients using it stop working at once. Type {phrase} to confirm.",
                quoted(name.as_str()),
                quoted(instance),
                match t.kind {
                    Kind::Admin => "an admin",
                    Kind::Resource => "a resource",
                },
                shown(&t.permissions.join(" ")),
                t.created_at.format("%Y-%m-%d %H:%M UTC"),
                t.expiry.map_or("never".to_owned(), |e| e
                    .format("%Y-%m-%d %H:%M UTC")
                    .to_string()),
            ),
            (Operation::DeleteToken { instance, name, .. }, None) => format!(
                "Delete token {} on instance {}? Type {phrase} to confirm.",
                quoted(name.as_str()),
                quoted(instance)
            ),
            (Operation::RegenerateOperator { instance, file }, _) => format!(
                "Regenerate the operator token `_admin` of instance {}? Its current secret stops working at once \
                 and every client using it breaks; the new secret is written to {}. Type {phrase} to confirm.",
                quoted(instance),
                shown(&file.display().to_string())
            ),
            (op @ (Operation::PruneExpired { .. } | Operation::Retired { .. }), _) => {
                let what = op.describe();
                let mut chars = what.chars();
                let first = chars
                    .next()
                    .map(|c| c.to_uppercase().to_string())
                    .unwrap_or_default();
                format!(
                    "{first}{}? They no longer work anyway. Type {phrase} to confirm.",
                    chars.as_str()
                )
            }
        }
    }
}

fn answer(request: &Request, status: GateStatus, message: String) -> GateAnswer {
    GateAnswer {
        status,
        instance: request.instance().to_owned(),
        token: None,
        expired_tokens: None,
        confirmation_code: None,
        pending_id: None,
        expires_at: None,
        secret_handoff: None,
        message,
    }
}

impl McpServer {
    /// What the request concerns, as the person confirming it sees it: the token of a delete,
    /// the expired tokens of a prune.
    fn concerned(&self, p: &PendingRequest, a: &mut GateAnswer) {
        a.token = p
            .token
            .as_ref()
            .map(|t| TokenView::new(t, self.core.service.now()));
        if let Operation::PruneExpired { tokens, .. } = &p.pending.action {
            a.expired_tokens = Some(
                tokens
                    .iter()
                    .map(|t| ExpiredView {
                        name: t.name.to_string(),
                        id: t.id,
                        expired_at: t.expired_at,
                    })
                    .collect(),
            );
        }
    }

    /// The gate policy of this MCP server: deletes need approvals under `approve_deletes`.
    fn policy(&self) -> GatePolicy {
        GatePolicy {
            approvals: self
                .core
                .settings
                .approvals
                .as_ref()
                .map(|p| ApprovalPolicy {
                    required: p.required,
                    allow_self: false,
                    ttl: p.timeout,
                    approve_from: p.approve_from.clone(),
                }),
        }
    }

    /// Runs a destructive tool call through the gate, whichever round of whichever flow it is.
    pub(super) async fn gated(
        &self,
        ctx: &RequestContext<RoleServer>,
        state: Option<String>,
        responses: Option<InputResponses>,
        g: Gated,
    ) -> Result<CallToolResponse, ErrorData> {
        let actor = self.actor(ctx);
        // Round two of the 2026-07-28 flow: the client answered our elicitation.
        if let Some(state) = state {
            return self.finish_elicited(&actor, &state, responses, &g).await;
        }
        // Round two of the code flow: the assistant relays the user's agreement.
        if let Some(code) = &g.code {
            let done = self
                .core
                .service
                .confirm_code(&actor, &g.request, code)
                .await;
            return self.render(&actor, &g.request, done, None).await;
        }
        let channel = if can_elicit(ctx, ElicitationMode::Form) {
            Channel::Form
        } else {
            Channel::Code
        };
        let reason = Some(format!("requested through MCP by {}", actor.name));
        let opened = match self
            .core
            .service
            .begin(&actor, &g.request, channel, self.policy(), reason, None)
            .await
        {
            Ok(Some(o)) => o,
            Ok(None) => {
                return structured(&answer(
                    &g.request,
                    GateStatus::Done,
                    "There are no expired tokens to prune (protected tokens are never pruned)."
                        .to_owned(),
                ));
            }
            Err(e) => return Ok(service_error(&e)),
        };
        let Opened { request: p, next } = opened;
        match next {
            NextStep::Approve { need, .. } => {
                let mut a = answer(
                    &g.request,
                    GateStatus::ApprovalRequired,
                    format!(
                        "Nothing has happened yet: {} needs the approval of {need} other person(s). Tell the user \
                         that pending action {} awaits the team's approval, then check it with get_pending_action.",
                        p.pending.action.describe(),
                        p.pending.id,
                    ),
                );
                self.concerned(&p, &mut a);
                a.pending_id = Some(p.pending.id.to_string());
                a.expires_at = Some(p.pending.expires_at);
                structured(&a)
            }
            NextStep::SendCode { code } => {
                let mut a = answer(
                    &g.request,
                    GateStatus::ConfirmationRequired,
                    format!(
                        "Nothing has happened yet. Show the user exactly what will happen ({}) and ask them to agree. \
                         Only if they agree, call this tool again with the same arguments and confirmation_code. The \
                         code works once, for this request only, until expires_at.",
                        p.pending.action.describe()
                    ),
                );
                self.concerned(&p, &mut a);
                a.confirmation_code = Some(code);
                a.expires_at = Some(p.pending.expires_at);
                structured(&a)
            }
            NextStep::Type { .. } => {
                let prompt = g.prompt(&p, self.core.service.now());
                if is_modern(ctx) {
                    self.ask_modern(&p, prompt, &g)
                } else {
                    self.ask_legacy(ctx, &actor, &p, prompt, &g).await
                }
            }
        }
    }

    fn ask_modern(
        &self,
        p: &PendingRequest,
        prompt: String,
        g: &Gated,
    ) -> Result<CallToolResponse, ErrorData> {
        let schema = g
            .typed()
            .schema()
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let request = InputRequest::Elicitation(ElicitRequest::new(
            ElicitRequestParams::FormElicitationParams {
                meta: None,
                message: prompt,
                requested_schema: schema,
            },
        ));
        let mut requests = InputRequests::new();
        requests.insert(CONFIRM_KEY.to_owned(), request);
        Ok(InputRequiredResult::new(
            Some(requests),
            Some(format!("{STATE_PREFIX}{}", p.pending.id)),
        )
        .into())
    }

    async fn ask_legacy(
        &self,
        ctx: &RequestContext<RoleServer>,
        actor: &Actor,
        p: &PendingRequest,
        prompt: String,
        g: &Gated,
    ) -> Result<CallToolResponse, ErrorData> {
        let timeout = Some(self.core.settings.elicitation_timeout);
        let peer = &ctx.peer;
        let typed = match g.typed() {
            Typed::TokenName => peer
                .elicit_with_timeout::<TypedTokenName>(prompt, timeout)
                .await
                .map(|t| t.map(|t| t.token_name)),
            Typed::InstanceName => peer
                .elicit_with_timeout::<TypedInstanceName>(prompt, timeout)
                .await
                .map(|t| t.map(|t| t.instance_name)),
            Typed::Prune => peer
                .elicit_with_timeout::<TypedConfirmation>(prompt, timeout)
                .await
                .map(|t| t.map(|t| t.confirmation)),
        };
        let (id, op) = (&p.pending.id, &p.pending.action);
        match typed {
            Ok(Some(text)) => {
                let done = self
                    .core
                    .service
                    .confirm_typed(actor, id, &g.request, &text)
                    .await;
                self.render(actor, &g.request, done, Some(id)).await
            }
            Ok(None) | Err(ElicitationError::UserDeclined | ElicitationError::UserCancelled) => {
                self.cancel(actor, id, op).await
            }
            Err(e) => {
                let _ = self
                    .core
                    .service
                    .reject(actor, id, Some(format!("no confirmation: {e}")))
                    .await;
                Ok(tool_error(format!(
                    "the user did not confirm ({e}); nothing was done"
                )))
            }
        }
    }

    async fn finish_elicited(
        &self,
        actor: &Actor,
        state: &str,
        responses: Option<InputResponses>,
        g: &Gated,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(id) = state
            .strip_prefix(STATE_PREFIX)
            .and_then(|s| PendingId::parse(s).ok())
        else {
            return Ok(tool_error(
                "unknown requestState; call the tool again without it",
            ));
        };
        let result = responses
            .and_then(|mut r| r.remove(CONFIRM_KEY))
            .and_then(|v| serde_json::from_value::<ElicitResult>(v).ok());
        let Some(result) = result else {
            return Ok(tool_error(
                "the confirmation answer is missing; nothing was done",
            ));
        };
        let op = match self.core.service.bound(&id, &g.request).await {
            Ok(op) => op,
            Err(e) => return Ok(service_error(&e)),
        };
        match result.action {
            ElicitationAction::Accept => {
                let field = g.typed().field();
                let typed = result
                    .content
                    .as_ref()
                    .and_then(|c| c.get(field))
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                let done = self
                    .core
                    .service
                    .confirm_typed(actor, &id, &g.request, typed)
                    .await;
                self.render(actor, &g.request, done, Some(&id)).await
            }
            _ => self.cancel(actor, &id, &op).await,
        }
    }

    async fn cancel(
        &self,
        actor: &Actor,
        id: &PendingId,
        op: &Operation,
    ) -> Result<CallToolResponse, ErrorData> {
        let request = request_of(op);
        if let Err(e) = self
            .core
            .service
            .reject(actor, id, Some("declined by the user".into()))
            .await
        {
            return Ok(service_error(&e));
        }
        structured(&answer(
            &request,
            GateStatus::Declined,
            format!(
                "The user declined; nothing was done ({}). Do not ask again unless the user asks for it.",
                op.describe()
            ),
        ))
    }

    /// The tool's answer to a confirmation's result. A mismatch closes an elicited request
    /// (`elicited`: the user answered once) but leaves a code open until it expires.
    async fn render(
        &self,
        actor: &Actor,
        request: &Request,
        done: Result<Executed, ServiceError>,
        elicited: Option<&PendingId>,
    ) -> Result<CallToolResponse, ErrorData> {
        let request = request.clone();
        match done {
            Ok(Executed::Deleted { instance, name }) => structured(&answer(
                &request,
                GateStatus::Done,
                format!(
                    "Deleted token {} on instance {}.",
                    quoted(name.as_str()),
                    quoted(&instance)
                ),
            )),
            Ok(Executed::Regenerated {
                instance,
                file,
                own_credential,
                ..
            }) => {
                let own = if own_credential {
                    "That file is tokenwarden's own credential, so tokenwarden keeps working."
                } else {
                    "tokenwarden's own credential did not change."
                };
                structured(&answer(
                    &request,
                    GateStatus::Done,
                    format!(
                        "Regenerated the operator token of {}. Its old secret no longer works; the new one \
                         is in {} on the server running tokenwarden (mode 0600). {own}",
                        quoted(&instance),
                        shown(&file.display().to_string())
                    ),
                ))
            }
            Ok(Executed::Pruned {
                instance,
                deleted,
                skipped,
                failed,
            }) => {
                let mut text = format!(
                    "Deleted {} expired {} on instance {}.",
                    deleted.len(),
                    if deleted.len() == 1 {
                        "token"
                    } else {
                        "tokens"
                    },
                    quoted(&instance)
                );
                for (what, list) in [
                    ("were left alone", &skipped),
                    ("could not be deleted", &failed),
                ] {
                    if !list.is_empty() {
                        let items: Vec<String> = list
                            .iter()
                            .map(|(n, e)| format!("{}: {e}", quoted(n)))
                            .collect();
                        text.push_str(&format!(" {} {what}: {}.", list.len(), items.join("; ")));
                    }
                }
                structured(&answer(&request, GateStatus::Done, text))
            }
            Err(ServiceError::Gate(GateError::WrongProof { id })) => {
                if let Some(id) = elicited {
                    let _ = self
                        .core
                        .service
                        .reject(
                            actor,
                            id,
                            Some("the typed confirmation did not match".into()),
                        )
                        .await;
                }
                if elicited.is_none() {
                    return Ok(tool_error(format!(
                        "that confirmation_code does not belong to this request; nothing was done (pending action \
                         {id}). Send the code from this request's confirmation_required answer, and only if the user \
                         agreed"
                    )));
                }
                structured(&answer(
                    &request,
                    GateStatus::ConfirmationMismatch,
                    format!(
                        "What the user typed does not match the text they were shown; nothing was done (pending \
                         action {id}). Do not retry unless the user asks for it."
                    ),
                ))
            }
            Err(e) => Ok(service_error(&e)),
        }
    }
}

/// The request a stored operation answers, for the tool's reply.
fn request_of(op: &Operation) -> Request {
    let instance = op.instance().to_owned();
    match op {
        Operation::DeleteToken { name, .. } => Request::Delete {
            instance,
            name: name.clone(),
        },
        Operation::RegenerateOperator { .. } => Request::Regenerate { instance },
        Operation::PruneExpired { .. } | Operation::Retired { .. } => Request::Prune { instance },
    }
}
