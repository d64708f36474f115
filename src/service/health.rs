//! Readiness: whether this process can do its work now (the store answers, and the default
//! instance's InfluxDB does), for a load balancer's `/ready`.

use serde::Serialize;

use super::{TokenService, blocking};

/// What `/ready` reports: each dependency `ok` or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub store: String,
    pub instance: String,
    pub influxdb: String,
}

const OK: &str = "ok";

/// How long `/ready` waits for InfluxDB: inside the 5 s a load balancer's check usually allows,
/// whatever the instance's `timeout` and read retries would add up to.
pub const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

impl TokenService {
    /// Asks the store and the default instance's InfluxDB (`/ping`, within its `timeout`).
    pub async fn readiness(&self) -> Readiness {
        let store = self.store.clone();
        let store = match blocking(move || store.ping()).await {
            Ok(()) => OK.to_owned(),
            Err(e) => e.to_string(),
        };
        let influxdb = match tokio::time::timeout(READY_WITHIN, self.server_info(None)).await {
            Ok(Ok(_)) => OK.to_owned(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!(
                "instance `{}` did not answer /ping within {} s",
                self.default_instance,
                READY_WITHIN.as_secs()
            ),
        };
        Readiness {
            ready: store == OK && influxdb == OK,
            store,
            instance: self.default_instance.clone(),
            influxdb,
        }
    }
}
