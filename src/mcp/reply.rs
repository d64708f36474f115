//! What the MCP tools answer with, and what the client on the other end can do: the protocol
//! era of a request and the elicitation modes its client declared.

use rmcp::ErrorData;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock, ProtocolVersion};
use rmcp::service::{ElicitationMode, RequestContext, RoleServer};

/// Whether the request speaks the 2026-07-28 protocol (no server-to-client requests).
pub fn is_modern(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.protocol_version()
        .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28)
}

/// Whether the client can answer an elicitation of `mode` on this request.
pub fn can_elicit(ctx: &RequestContext<RoleServer>, mode: ElicitationMode) -> bool {
    if is_modern(ctx) {
        ctx.client_capabilities()
            .and_then(|c| c.elicitation)
            .is_some_and(|e| match mode {
                ElicitationMode::Url => e.url.is_some(),
                _ => e.form.is_some() || e.url.is_none(),
            })
    } else {
        ctx.peer.supported_elicitation_modes().contains(&mode)
    }
}

pub fn tool_error(msg: impl std::fmt::Display) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(msg.to_string())]).into()
}

pub fn structured<T: serde::Serialize>(v: &T) -> Result<CallToolResponse, ErrorData> {
    let value =
        serde_json::to_value(v).map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
    Ok(CallToolResult::structured(value).into())
}

/// A failure of the core as the model reads it: what happened, then the tool that helps (never
/// a command it cannot run).
pub fn explain(e: &crate::service::ServiceError) -> String {
    use crate::service::Remedy;
    let step = match e.remedy() {
        None => return e.to_string(),
        Some(Remedy::ListTokens { why }) => format!("call list_tokens {why}"),
        Some(Remedy::ListDatabases) => "call list_databases to see the names".to_owned(),
        Some(Remedy::RegenerateOperator) => {
            "the regenerate_operator_token tool does that where this server offers it (see server_info)".to_owned()
        }
        Some(Remedy::BootstrapOperator) => {
            "whoever runs InfluxDB has to create it; no tool here can".to_owned()
        }
        Some(Remedy::DeleteToken { name }) => {
            format!(
                "call delete_token with name {} to delete it now",
                crate::shown::quoted(&name)
            )
        }
        Some(Remedy::CheckInstance) => {
            "call server_info to see whether the instance still accepts tokenwarden's credential"
                .to_owned()
        }
    };
    format!("{e}; {step}")
}

/// [`tool_error`] for a failure of the core.
pub fn service_error(e: &crate::service::ServiceError) -> CallToolResponse {
    tool_error(explain(e))
}
