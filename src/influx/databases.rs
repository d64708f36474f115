//! The database list: names from `GET /api/v3/configure/database` (any token may read it), then,
//! where the token may read `_internal`, retention periods from `system.databases` and table
//! counts from `system.tables` (`influxdb3_system_tables/src/databases.rs` and `tables.rs`).
//! `configure/database` itself shows names only (`show_databases` in
//! `influxdb3_query_executor/src/lib.rs`).

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::InfluxClient;
use crate::tokens::{BackendError, Database, Retention};

const RETENTION_SQL: &str =
    "SELECT database_name, retention_period_ns FROM system.databases WHERE deleted = false";
const TABLES_SQL: &str = "SELECT database_name FROM system.tables WHERE deleted = false";

#[derive(Deserialize)]
struct DbRow {
    database_name: String,
    /// Absent (a dropped null) for no retention period.
    retention_period_ns: Option<u64>,
}

#[derive(Deserialize)]
struct TableRow {
    database_name: String,
}

impl InfluxClient {
    pub(super) async fn databases(&self) -> Result<Vec<Database>, BackendError> {
        let a = self
            .read(|| {
                self.request(reqwest::Method::GET, "/api/v3/configure/database")
                    .query(&[("format", "json")])
            })
            .await?;
        if a.status != StatusCode::OK {
            return Err(self.failure(&a));
        }
        let names = super::decode::databases(&self.url, &a.body)?;
        let (retention, tables) = tokio::join!(
            self.internal_rows::<DbRow>(RETENTION_SQL),
            self.internal_rows::<TableRow>(TABLES_SQL)
        );
        let retention: Option<HashMap<String, Retention>> = retention.map(|rows| {
            rows.into_iter()
                .map(|r| {
                    let period = match r.retention_period_ns {
                        Some(ns) => Retention::Period(Duration::from_nanos(ns)),
                        None => Retention::Indefinite,
                    };
                    (r.database_name, period)
                })
                .collect()
        });
        let tables: Option<HashMap<String, usize>> = tables.map(|rows| {
            let mut counts = HashMap::new();
            for r in rows {
                *counts.entry(r.database_name).or_insert(0) += 1;
            }
            counts
        });
        Ok(names
            .into_iter()
            .map(|name| Database {
                retention_period: retention.as_ref().and_then(|m| m.get(&name).copied()),
                tables: tables.as_ref().map(|m| m.get(&name).copied().unwrap_or(0)),
                name,
            })
            .collect())
    }

    /// Rows of a query on `_internal`, or `None` if the server would not answer it (a resource
    /// token, an older server): the details are then unknown, not an error.
    async fn internal_rows<T: serde::de::DeserializeOwned>(&self, sql: &str) -> Option<Vec<T>> {
        let body = json!({ "db": "_internal", "q": sql, "format": "json" });
        let a = self
            .read(|| {
                self.request(reqwest::Method::POST, "/api/v3/query_sql")
                    .json(&body)
            })
            .await;
        match a {
            Ok(a) if a.status == StatusCode::OK => serde_json::from_slice(&a.body).ok(),
            Ok(a) => {
                tracing::debug!(status = %a.status, "database details are unknown");
                None
            }
            Err(e) => {
                tracing::debug!(error = %e, "database details are unknown");
                None
            }
        }
    }
}
