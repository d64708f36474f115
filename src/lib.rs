//! tokenwarden manages the authorization tokens of InfluxDB 3 servers.
pub mod actor;
pub mod gate;
pub mod store;
pub mod tokens;
