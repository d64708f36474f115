//! tokenwarden manages the authorization tokens of InfluxDB 3 servers.
pub mod actor;
pub mod app;
pub mod cli;
pub mod config;
pub mod gate;
pub mod influx;
pub mod service;
pub mod sim;
pub mod store;
pub mod tokens;
