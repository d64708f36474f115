//! The MCP tools: names, descriptions written for the model, honest annotations, and which
//! tools a configuration offers.

use rmcp::handler::server::tool::{InputResponses, RequestState};
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::CallToolResponse;
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, tool, tool_router};

use super::args::{
    CreateAdminArgs, CreateResourceArgs, Created, DatabaseList, DatabaseView, DeleteArgs,
    GateAnswer, GatedArgs, InstanceArgs, InstanceInfo, ListTokensArgs, PendingArgs, PendingView,
    ServerInfoView, TokenList, TokenView, ToolInfo,
};
use super::gated::Gated;
use super::schema;
use super::{McpCore, McpServer};
use crate::gate::{PendingId, PendingState};
use crate::service::Request;
use crate::shown::shown;
use crate::tokens::{
    Expiry, ListFilter, NewToken, Page, ParseError, Permission, ResourceType, TokenName, TokenSpec,
    parse_duration,
};

/// Each tool, whether this configuration offers it, and why.
pub fn availability(core: &McpCore) -> Vec<(&'static str, bool, String)> {
    let s = &core.settings;
    let all_core = core
        .service
        .instances()
        .all(|i| i.edition == Some(crate::tokens::Edition::Core));
    let writable = |what: &str| {
        if s.read_only {
            (
                false,
                format!("[mcp] read_only = true hides tools that {what}"),
            )
        } else {
            (true, format!("{what} (mcp is not read-only)"))
        }
    };
    let (create, create_why) = writable("create tokens");
    let (delete, delete_why) = writable("delete tokens");
    let (resource, resource_why) = match (create, all_core) {
        (false, _) => (false, create_why.clone()),
        (true, true) => (
            false,
            "every instance is configured as InfluxDB 3 Core, which has no resource tokens".into(),
        ),
        (true, false) => (
            true,
            "resource tokens need InfluxDB 3 Enterprise; Core instances refuse them".into(),
        ),
    };
    let (regen, regen_why) = match (s.read_only, s.allow_regenerate) {
        (true, _) => (false, "[mcp] read_only = true".to_owned()),
        (false, false) => (false, "off unless [mcp] allow_regenerate = true".to_owned()),
        (false, true) => (true, "[mcp] allow_regenerate = true".to_owned()),
    };
    vec![
        ("list_tokens", true, "always".into()),
        ("list_databases", true, "always".into()),
        ("server_info", true, "always".into()),
        ("get_pending_action", true, "always".into()),
        ("create_admin_token", create, create_why),
        ("create_resource_token", resource, resource_why),
        ("delete_token", delete, delete_why.clone()),
        ("prune_expired_tokens", delete, delete_why),
        ("regenerate_operator_token", regen, regen_why),
    ]
}

fn expiry(
    expires_in: Option<&str>,
    expires_at: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Expiry, ParseError> {
    Expiry::from_options(expires_in, expires_at, now)
}

#[tool_router(vis = "pub(super)")]
impl McpServer {
    #[tool(
        title = "List tokens",
        input_schema = schema::input::<ListTokensArgs>(),
        output_schema = schema::output::<TokenList>(),
        description = "List the InfluxDB 3 tokens of an instance (never their secrets), optionally filtered by name \
        substring, kind, database, status or upcoming expiry. Returns name, id, kind, permissions, creation and expiry \
        times and status, a page at a time (limit, default 50): pass next_cursor back as cursor for more. Use before \
        deleting, to find exact names.",
        annotations(
            title = "List tokens",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_tokens(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(a): Parameters<ListTokensArgs>,
    ) -> Result<Json<TokenList>, String> {
        let expiring_within = a
            .expiring_within
            .as_deref()
            .map(parse_duration)
            .transpose()
            .map_err(|e| e.to_string())?;
        let filter = ListFilter {
            name_contains: a.name,
            name_is: None,
            kind: a.kind.map(Into::into),
            database: a.database,
            status: a.status.map(Into::into),
            expiring_within,
        };
        let limit = a.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(format!("limit must be 1 to 500, not {limit}"));
        }
        let offset = match a.cursor.as_deref() {
            None => 0,
            Some(c) => c
                .parse::<usize>()
                .map_err(|_| format!("cursor `{c}` is not a next_cursor from list_tokens"))?,
        };
        let svc = &self.core.service;
        let page = Page {
            offset,
            limit: limit as usize,
        };
        let listed = svc
            .list_page(&self.actor(&ctx), a.instance.as_deref(), &filter, page)
            .await
            .map_err(|e| super::reply::explain(&e))?;
        let now = svc.now();
        Ok(Json(TokenList {
            instance: svc.instance_or_default(a.instance),
            count: listed.tokens.len(),
            tokens: listed
                .tokens
                .iter()
                .map(|t| TokenView::new(t, now))
                .collect(),
            next_cursor: listed.next.map(|n| n.to_string()),
        }))
    }

    #[tool(
        title = "List databases",
        input_schema = schema::input::<InstanceArgs>(),
        output_schema = schema::output::<DatabaseList>(),
        description = "List the databases of an instance, to fill resource-token permissions, with each one's \
        retention period and number of tables where the server tells them.",
        annotations(
            title = "List databases",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn list_databases(
        &self,
        ctx: RequestContext<RoleServer>,
        Parameters(a): Parameters<InstanceArgs>,
    ) -> Result<Json<DatabaseList>, String> {
        let svc = &self.core.service;
        let databases = svc
            .list_databases(&self.actor(&ctx), a.instance.as_deref())
            .await
            .map_err(|e| super::reply::explain(&e))?;
        Ok(Json(DatabaseList {
            instance: svc.instance_or_default(a.instance),
            details: databases.iter().map(DatabaseView::from).collect(),
            databases: databases.into_iter().map(|d| d.name).collect(),
        }))
    }

    #[tool(
        title = "Create admin token",
        input_schema = schema::input::<CreateAdminArgs>(),
        output_schema = schema::output::<Created>(),
        description = "Create a named admin token (full access) with an optional expiry. You never see the secret: \
        the result says how the user receives it (usually a one-time link to pass on). If the secret cannot reach the \
        user, the token is deleted again. Prefer an expiry; creating is not idempotent (a second call with the same \
        name fails).",
        annotations(title = "Create admin token", read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn create_admin_token(
        &self,
        ctx: RequestContext<RoleServer>,
        RequestState(state): RequestState,
        InputResponses(responses): InputResponses,
        Parameters(a): Parameters<CreateAdminArgs>,
    ) -> Result<CallToolResponse, ErrorData> {
        let now = self.core.service.now();
        let new = TokenName::parse_new(&a.name).and_then(|name| {
            Ok(NewToken {
                name,
                spec: TokenSpec::Admin,
                expiry: expiry(a.expires_in.as_deref(), a.expires_at.as_deref(), now)?,
            })
        });
        self.create(&ctx, state, responses, a.instance, new).await
    }

    #[tool(
        title = "Create resource token",
        input_schema = schema::input::<CreateResourceArgs>(),
        output_schema = schema::output::<Created>(),
        description = "Create a database-scoped resource token (InfluxDB 3 Enterprise only) with per-database actions \
        (and, if asked, read access to system endpoints such as metrics) and an optional expiry. Call list_databases \
        first for valid names. You never see the secret: the result says \
        how the user receives it. Not idempotent.",
        annotations(title = "Create resource token", read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn create_resource_token(
        &self,
        ctx: RequestContext<RoleServer>,
        RequestState(state): RequestState,
        InputResponses(responses): InputResponses,
        Parameters(a): Parameters<CreateResourceArgs>,
    ) -> Result<CallToolResponse, ErrorData> {
        let now = self.core.service.now();
        let new = TokenName::parse_new(&a.name).and_then(|name| {
            if a.permissions.is_empty() {
                return Err(ParseError(
                    "give at least one permission: {database, actions} or {system, actions}".into(),
                ));
            }
            let permissions = a
                .permissions
                .iter()
                .map(|p| {
                    let actions: Vec<String> =
                        p.actions.iter().map(|x| x.as_str().to_owned()).collect();
                    let (kind, resource) = match (&p.database, p.system) {
                        (Some(db), None) => (ResourceType::Db, db.clone()),
                        (None, Some(sys)) => (ResourceType::System, sys.as_str().to_owned()),
                        _ => {
                            return Err(ParseError(
                                "each permission names a `database` or a `system` resource: one of the two".into(),
                            ));
                        }
                    };
                    Permission::new(kind, std::slice::from_ref(&resource), &actions)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let expiry = expiry(a.expires_in.as_deref(), a.expires_at.as_deref(), now)?;
            Ok(NewToken {
                name,
                spec: TokenSpec::Resource(permissions),
                expiry,
            })
        });
        self.create(&ctx, state, responses, a.instance, new).await
    }

    #[tool(
        title = "Delete token",
        input_schema = schema::input::<DeleteArgs>(),
        output_schema = schema::output::<GateAnswer>(),
        description = "Delete a token by exact name. Destructive: clients using it stop working at once. The user must \
        confirm: the client may ask them directly; otherwise this returns status `confirmation_required` with what \
        will be deleted and a one-time confirmation_code. Show that to the user and call again with the code only if \
        they agree. Under an approval policy it returns `approval_required` with a pending_id. Protected tokens and \
        `_admin` are refused.",
        annotations(title = "Delete token", read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn delete_token(
        &self,
        ctx: RequestContext<RoleServer>,
        RequestState(state): RequestState,
        InputResponses(responses): InputResponses,
        Parameters(a): Parameters<DeleteArgs>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = match TokenName::parse(&a.name) {
            Ok(n) => n,
            Err(e) => return Ok(super::reply::tool_error(e)),
        };
        let instance = self.core.service.instance_or_default(a.instance);
        let g = Gated {
            request: Request::Delete { instance, name },
            code: a.confirmation_code,
        };
        self.gated(&ctx, state, responses, g).await
    }

    #[tool(
        title = "Regenerate operator token",
        input_schema = schema::input::<GatedArgs>(),
        output_schema = schema::output::<GateAnswer>(),
        description = "Regenerate the operator token `_admin`: its current secret stops working at once and every \
        client using it breaks, possibly tokenwarden itself. The user must confirm, as for delete_token. You never see \
        the new secret; the result says how the user receives it.",
        annotations(title = "Regenerate operator token", read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn regenerate_operator_token(
        &self,
        ctx: RequestContext<RoleServer>,
        RequestState(state): RequestState,
        InputResponses(responses): InputResponses,
        Parameters(a): Parameters<GatedArgs>,
    ) -> Result<CallToolResponse, ErrorData> {
        let instance = self.core.service.instance_or_default(a.instance);
        let g = Gated {
            request: Request::Regenerate { instance },
            code: a.confirmation_code,
        };
        self.gated(&ctx, state, responses, g).await
    }

    #[tool(
        title = "Prune expired tokens",
        input_schema = schema::input::<GatedArgs>(),
        output_schema = schema::output::<GateAnswer>(),
        description = "Delete the expired tokens of an instance (InfluxDB keeps them forever; protected tokens are \
        never touched). Destructive. The user confirms the exact list: the client may ask them to type `prune`; \
        otherwise this returns `confirmation_required` with the list and a confirmation_code to send back only if they \
        agree. Under an approval policy it returns `approval_required`. At most 500 tokens per call.",
        annotations(title = "Prune expired tokens", read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn prune_expired_tokens(
        &self,
        ctx: RequestContext<RoleServer>,
        RequestState(state): RequestState,
        InputResponses(responses): InputResponses,
        Parameters(a): Parameters<GatedArgs>,
    ) -> Result<CallToolResponse, ErrorData> {
        let instance = self.core.service.instance_or_default(a.instance);
        let g = Gated {
            request: Request::Prune { instance },
            code: a.confirmation_code,
        };
        self.gated(&ctx, state, responses, g).await
    }

    #[tool(
        title = "Get pending action",
        input_schema = schema::input::<PendingArgs>(),
        output_schema = schema::output::<PendingView>(),
        description = "Report the state of a pending action (for example a delete awaiting approval): open, succeeded, \
        failed, rejected or expired, with approvals so far.",
        annotations(
            title = "Get pending action",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn get_pending_action(
        &self,
        Parameters(a): Parameters<PendingArgs>,
    ) -> Result<Json<PendingView>, String> {
        let id = PendingId::parse(&a.id).map_err(|e| e.to_string())?;
        let mut p = self
            .core
            .service
            .pending(&id)
            .await
            .map_err(|e| super::reply::explain(&e))?;
        p.expire_if_due(self.core.service.now());
        let required = p.mode.required();
        let detail = match &p.state {
            PendingState::Failed { reason } | PendingState::Unknown { reason } => {
                Some(shown(reason).into_owned())
            }
            PendingState::Rejected { by, reason } => Some(format!(
                "rejected by {by}{}",
                reason
                    .as_ref()
                    .map(|r| format!(": {}", shown(r)))
                    .unwrap_or_default()
            )),
            _ => None,
        };
        Ok(Json(PendingView {
            id: p.id.to_string(),
            operation: p.action.describe(),
            state: p.state.label().to_owned(),
            requested_by: p.requester.to_string(),
            approvals: p.approvals.len(),
            required_approvals: required,
            expires_at: p.expires_at,
            reason: p.reason.clone(),
            detail,
        }))
    }

    #[tool(
        title = "Server info",
        output_schema = schema::output::<ServerInfoView>(),
        description = "Describe this tokenwarden server: the InfluxDB instances (edition, version, read-only), which \
        tools are enabled and why, how secrets are delivered and how deletes are confirmed.",
        annotations(
            title = "Server info",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn server_info(&self) -> Result<Json<ServerInfoView>, String> {
        let svc = &self.core.service;
        let mut instances = Vec::new();
        for i in svc.instances() {
            let info = svc.server_info(Some(&i.name)).await;
            let edition = i.edition.or(info.as_ref().ok().and_then(|s| s.edition));
            instances.push(InstanceInfo {
                name: i.name.clone(),
                default: i.name == svc.default_instance(),
                edition: edition.map_or("unknown".to_owned(), |e| e.to_string()),
                version: info.as_ref().ok().and_then(|s| s.version.clone()),
                read_only: i.read_only,
                error: info.err().map(|e| e.to_string()),
            });
        }
        let s = &self.core.settings;
        Ok(Json(ServerInfoView {
            tokenwarden_version: env!("CARGO_PKG_VERSION").to_owned(),
            instances,
            tools: availability(&self.core).into_iter().map(|(n, e, w)| ToolInfo { name: n.to_owned(), enabled: e, why: w }).collect(),
            secret_delivery: match &s.secret_mode {
                super::SecretMode::RevealLink => format!("one-time reveal link, valid {}", humantime::format_duration(s.reveal_ttl)),
                super::SecretMode::File(dir) => format!("0600 file in {}", dir.display()),
                super::SecretMode::Inline => "inline in the tool result (the model provider sees it)".to_owned(),
                super::SecretMode::Private => format!("tokenwarden's private page, after the user's passphrase, valid {}", humantime::format_duration(s.reveal_ttl)),
            },
            delete_gate: match &s.approvals {
                Some(p) => format!("{} approval(s) by people in Discord or the CLI, within {}", p.required, humantime::format_duration(p.timeout)),
                None => "the user types the token name (elicitation) or agrees to a one-time confirmation code".to_owned(),
            },
        }))
    }
}
