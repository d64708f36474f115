//! Deletes, prunes and regenerations through the gate, as MCP flows: form elicitation in both protocol
//! eras (a server request on 2025-11-25, `InputRequiredResult` on 2026-07-28), a one-time
//! confirmation code for clients that cannot elicit, or a human approval elsewhere.

use rand::Rng;
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
use super::args::{GateAnswer, GateStatus, TokenView};
use super::reply::{can_elicit, is_modern, structured, tool_error};
use crate::actor::Actor;
use crate::gate::{GateError, GateMode, PendingId};
use crate::service::{Executed, GateRequest, Operation, PendingRequest, Request, ServiceError};

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
    /// What the user must type.
    pub expected: String,
}

impl Gated {
    fn typed(&self) -> Typed {
        match self.request {
            Request::Delete { .. } => Typed::TokenName,
            Request::Regenerate { .. } => Typed::InstanceName,
            Request::Prune { .. } => Typed::Prune,
        }
    }

    /// Deletes (one token, or the expired ones) fall under the approval policy.
    fn deletes(&self) -> bool {
        !matches!(self.request, Request::Regenerate { .. })
    }

    fn prompt(&self, p: &PendingRequest, now: chrono::DateTime<chrono::Utc>) -> String {
        match (
            &p.pending.action,
            p.token.as_ref().map(|t| TokenView::new(t, now)),
        ) {
            (Operation::DeleteToken { instance, name, .. }, Some(t)) => format!(
                "Delete token `{name}` on instance `{instance}`? It is a {} token with permissions {}, created {}, expiring {}. \
                 Clients using it stop working at once. Type `{name}` to confirm.",
                serde_json::to_value(t.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                t.permissions.join(" "),
                t.created_at.format("%Y-%m-%d %H:%M UTC"),
                t.expiry.map_or("never".to_owned(), |e| e
                    .format("%Y-%m-%d %H:%M UTC")
                    .to_string()),
            ),
            (Operation::DeleteToken { instance, name, .. }, None) => {
                format!("Delete token `{name}` on instance `{instance}`? Type `{name}` to confirm.")
            }
            (Operation::RegenerateOperator { instance, file }, _) => format!(
                "Regenerate the operator token `_admin` of instance `{instance}`? Its current secret stops working at once \
                 and every client using it breaks; the new secret is written to {}. Type `{instance}` to confirm.",
                file.display()
            ),
            (op @ (Operation::PruneExpired { .. } | Operation::Retired { .. }), _) => {
                let what = op.describe();
                let mut chars = what.chars();
                let first = chars
                    .next()
                    .map(|c| c.to_uppercase().to_string())
                    .unwrap_or_default();
                format!(
                    "{first}{}? They no longer work anyway. Type `prune` to confirm.",
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
        confirmation_code: None,
        pending_id: None,
        expires_at: None,
        secret_handoff: None,
        message,
    }
}

impl McpServer {
    /// `request`, as the tool's answer when it cannot go on.
    async fn open(
        &self,
        actor: &Actor,
        g: &Gated,
        gate: GateRequest,
    ) -> Result<PendingRequest, CallToolResponse> {
        match self
            .core
            .service
            .request(actor, &g.request, gate, None)
            .await
        {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(structured(&answer(
                &g.request,
                GateStatus::Done,
                "There are no expired tokens to prune (protected tokens are never pruned)."
                    .to_owned(),
            ))
            .unwrap_or_else(|e| tool_error(e.message))),
            Err(e) => Err(tool_error(e)),
        }
    }

    /// The exact operation pending action `id` is bound to (with the ids of the tokens it
    /// showed), for a call that repeats `g`'s arguments.
    async fn bound(&self, id: &PendingId, g: &Gated) -> Result<Operation, CallToolResponse> {
        match self.core.service.pending(id).await {
            Ok(p) if p.action.answers(&g.request) => Ok(p.action),
            Ok(_) => Err(tool_error(GateError::ActionMismatch { id: id.clone() })),
            Err(e) => Err(tool_error(e)),
        }
    }

    fn token_view(&self, p: &PendingRequest) -> Option<TokenView> {
        p.token
            .as_ref()
            .map(|t| TokenView::new(t, self.core.service.now()))
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
            let Some((id, nonce)) = code.trim().split_once('-') else {
                return Ok(tool_error(
                    "that confirmation_code is malformed; request the action again without one",
                ));
            };
            let id = match PendingId::parse(id) {
                Ok(id) => id,
                Err(e) => return Ok(tool_error(e)),
            };
            return match self.bound(&id, &g).await {
                Ok(op) => self.execute(&actor, &id, &op, nonce, false).await,
                Err(answer) => Ok(answer),
            };
        }
        if g.deletes()
            && let Some(policy) = &self.core.settings.approvals
        {
            let gate = GateRequest {
                mode: GateMode::Approvals {
                    required: policy.required,
                    allow_self: false,
                },
                ttl: Some(policy.timeout),
                reason: Some(format!("requested through MCP by {}", actor.name)),
            };
            return match self.open(&actor, &g, gate).await {
                Ok(p) => {
                    let mut a = answer(
                        &g.request,
                        GateStatus::ApprovalRequired,
                        format!(
                            "Deleting needs a teammate's approval. Ask them to approve pending action {} (in the Discord \
                                 approvals channel, or with `tokenwarden approvals approve {}`), then check it with get_pending_action.",
                            p.pending.id, p.pending.id
                        ),
                    );
                    a.token = self.token_view(&p);
                    a.pending_id = Some(p.pending.id.to_string());
                    a.expires_at = Some(p.pending.expires_at);
                    a.message = format!("{} ({})", a.message, p.pending.action.describe());
                    structured(&a)
                }
                Err(answer) => Ok(answer),
            };
        }
        if can_elicit(ctx, ElicitationMode::Form) {
            let gate = GateRequest {
                mode: GateMode::confirm_with(&g.expected),
                ttl: None,
                reason: None,
            };
            let p = match self.open(&actor, &g, gate).await {
                Ok(p) => p,
                Err(answer) => return Ok(answer),
            };
            let prompt = g.prompt(&p, self.core.service.now());
            return if is_modern(ctx) {
                self.ask_modern(&p, prompt, &g)
            } else {
                self.ask_legacy(ctx, &actor, &p, prompt, &g).await
            };
        }
        self.code_flow(&actor, &g).await
    }

    async fn code_flow(&self, actor: &Actor, g: &Gated) -> Result<CallToolResponse, ErrorData> {
        let mut bytes = [0u8; 6];
        rand::rng().fill_bytes(&mut bytes);
        let nonce = hex::encode(bytes);
        let gate = GateRequest {
            mode: GateMode::confirm_with(&nonce),
            ttl: None,
            reason: None,
        };
        let p = match self.open(actor, g, gate).await {
            Ok(p) => p,
            Err(answer) => return Ok(answer),
        };
        let mut a = answer(
            &g.request,
            GateStatus::ConfirmationRequired,
            format!(
                "Nothing has happened yet. Show the user exactly what will happen ({}) and ask them to agree. Only if \
                 they agree, call this tool again with the same arguments and confirmation_code. The code works once, \
                 for this request only, until expires_at.",
                p.pending.action.describe()
            ),
        );
        a.token = self.token_view(&p);
        a.confirmation_code = Some(format!("{}-{nonce}", p.pending.id));
        a.expires_at = Some(p.pending.expires_at);
        structured(&a)
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
            Ok(Some(text)) => self.execute(actor, id, op, &text, true).await,
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
        let op = match self.bound(&id, g).await {
            Ok(op) => op,
            Err(answer) => return Ok(answer),
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
                self.execute(actor, &id, &op, typed, true).await
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
            return Ok(tool_error(e));
        }
        structured(&answer(
            &request,
            GateStatus::Cancelled,
            format!("The user declined; nothing was done ({}).", op.describe()),
        ))
    }

    /// Confirms with `proof` and runs the operation once. A mismatch closes an elicited request
    /// (the user answered once) but leaves a code open until it expires.
    async fn execute(
        &self,
        actor: &Actor,
        id: &PendingId,
        op: &Operation,
        proof: &str,
        close_on_mismatch: bool,
    ) -> Result<CallToolResponse, ErrorData> {
        let request = request_of(op);
        match self.core.service.confirm(actor, id, op, proof).await {
            Ok(Executed::Deleted { instance, name }) => structured(&answer(
                &request,
                GateStatus::Done,
                format!("Deleted token `{name}` on instance `{instance}`."),
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
                        "Regenerated the operator token of `{instance}`. Its old secret no longer works; the new one \
                         is in {} on the server running tokenwarden (mode 0600). {own}",
                        file.display()
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
                    "Deleted {} expired {} on instance `{instance}`.",
                    deleted.len(),
                    if deleted.len() == 1 {
                        "token"
                    } else {
                        "tokens"
                    }
                );
                for (what, list) in [
                    ("were left alone", &skipped),
                    ("could not be deleted", &failed),
                ] {
                    if !list.is_empty() {
                        let items: Vec<String> =
                            list.iter().map(|(n, e)| format!("{n}: {e}")).collect();
                        text.push_str(&format!(" {} {what}: {}.", list.len(), items.join("; ")));
                    }
                }
                structured(&answer(&request, GateStatus::Done, text))
            }
            Err(ServiceError::Gate(GateError::WrongProof { .. })) => {
                if close_on_mismatch {
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
                Ok(tool_error(format!(
                    "the confirmation does not match (expected the exact text shown to the user); nothing was done ({})",
                    op.describe()
                )))
            }
            Err(e) => Ok(tool_error(e)),
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
