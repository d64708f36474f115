//! tokenwarden manages the authorization tokens of InfluxDB 3 servers.
//!
//! # Layout
//!
//! - [`tokens`]: the domain (names, permissions, expiries, the token view) and the
//!   [`tokens::TokenBackend`] port. [`actor`]: who asks; [`people`]: which accounts are one
//!   person.
//! - [`gate`]: pending destructive actions as a pure state machine.
//! - [`store`]: SQLite persistence of the audit log and pending actions.
//! - [`service`]: the core every adapter calls: policy, gate flows, secret delivery, audit.
//! - [`influx`]: the InfluxDB 3 HTTP client implementing the backend port.
//! - [`sim`]: a simulator of the InfluxDB 3 token API.
//! - [`cli`]: the human CLI adapter.
//! - [`mcp`]: the MCP server adapter (stdio and streamable HTTP).
//! - [`discord`]: the Discord bot adapter (gateway and HTTP interactions endpoint).
//! - [`config`] and [`app`]: the configuration file and the binary's wiring; [`logging`]: the
//!   log filter and stderr output (depends on nothing in the crate).
//! - [`panics`]: a panic caught and described in one secret-free line, so adapters still answer
//!   (depends on `tokens` and `shown`).
//! - [`health`]: `/health` and `/ready` for every HTTP server (depends on `service`).
//! - [`http_serve`]: how every listener serves HTTP: header and idle timeouts, a connection cap,
//!   graceful shutdown (depends on nothing in the crate).
//! - [`shown`]: how outside text is shown to people and scripts (escaped); depends on nothing in
//!   the crate, and every module may use it.
//!
//! # Dependency rule
//!
//! `actor`, `tokens` and `http_serve` depend on nothing in the crate (but `shown`, which every
//! module may use); `people` and `gate` only on `actor`; `store` on `gate`, `actor` and `tokens`;
//! `service` on `tokens`, `gate`, `store`, `people` and `actor`; `influx` and `sim` only on
//! `tokens`; adapters (`cli`, `mcp`, `discord`) on `service`, `gate`, `tokens`, `actor` and
//! `http_serve` (and the helper `panics`), never on `influx`, `sim` or each other. `config`
//! builds the adapters' settings; only `app` and `main.rs` see everything.

pub mod actor;
pub mod app;
pub mod cli;
pub mod config;
pub mod discord;
pub mod gate;
pub mod health;
pub mod http_serve;
pub mod influx;
pub mod logging;
pub mod mcp;
pub mod panics;
pub mod people;
mod sent;
pub mod service;
pub mod shown;
pub mod sim;
pub mod store;
pub mod tokens;

/// A listener whose connections send small writes at once (`TCP_NODELAY`), for the simulator.
/// Without it, a streamed answer waits on Nagle's algorithm and delayed ACKs, about 40 ms a request.
pub(crate) fn no_delay(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = std::net::SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|stream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    })
}
