//! The integration test binary: the client, simulator, core and CLI end to end.

mod cli;
mod client;
mod crash;
mod discord;
mod discord_fake;
mod discord_support;
mod faults;
mod guardrails;
mod identity;
mod mcp;
mod mcp_e2e;
mod mcp_http;
mod mcp_schemas;
mod mcp_shutdown;
mod mcp_support;
mod official_mcp;
mod peers;
mod private_delivery;
mod procs;
mod props;
mod reveal_page;
mod service;
mod sim_api;
mod support;
