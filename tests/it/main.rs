//! The integration test binary: the client, simulator, core and CLI end to end.

mod cli;
mod client;
mod service;
mod sim_api;
mod support;
