//! The query log behind `system.queries`, which every database shows: each SQL query that
//! reached an existing database, newest last, at most 1000 (`influxdb3 serve --query-log-size`,
//! default 1000). Recorded as `query_database_sql` does (`influxdb3_query_executor/src/lib.rs`:
//! `record_query` with type `sql`, `fail()` when planning fails); columns from
//! `influxdb3_system_tables/src/queries.rs` (`queries_schema`).
//!
//! The simulator measures nothing, so partitions, files, durations, memory and trace id are null
//! (nullable columns, dropped from JSON rows as Arrow's writer drops nulls), and `issue_time` has
//! millisecond precision where InfluxDB has nanoseconds.

use std::collections::VecDeque;

use super::value::Value;

const CAPACITY: usize = 1000;

pub const QUERIES_COLUMNS: [&str; 17] = [
    "id",
    "phase",
    "issue_time",
    "query_type",
    "query_text",
    "partitions",
    "parquet_files",
    "plan_duration",
    "permit_duration",
    "execute_duration",
    "end2end_duration",
    "compute_duration",
    "max_memory",
    "success",
    "running",
    "cancelled",
    "trace_id",
];

#[derive(Debug, Clone)]
struct Entry {
    id: String,
    issue_time: i64,
    text: String,
    /// `None` while it runs.
    success: Option<bool>,
}

#[derive(Debug, Default)]
pub struct QueryLog {
    entries: VecDeque<Entry>,
}

impl QueryLog {
    /// Records a query as received; returns its id.
    pub fn start(&mut self, text: &str, now: i64) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        if self.entries.len() == CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back(Entry {
            id: id.clone(),
            issue_time: now,
            text: text.to_owned(),
            success: None,
        });
        id
    }

    pub fn finish(&mut self, id: &str, success: bool) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.id == id) {
            e.success = Some(success);
        }
    }

    /// The rows of `system.queries`. A query still running (the one reading this table) is in
    /// phase `permit`; finished ones are `success` or `fail` (`iox_query::query_log::QueryPhase`).
    pub fn rows(&self) -> Vec<Vec<Value>> {
        self.entries
            .iter()
            .map(|e| {
                let phase = match e.success {
                    None => "permit",
                    Some(true) => "success",
                    Some(false) => "fail",
                };
                let mut row = vec![
                    Value::Str(e.id.clone()),
                    Value::Str(phase.into()),
                    Value::Ts(e.issue_time),
                    Value::Str("sql".into()),
                    Value::Str(e.text.clone()),
                ];
                row.extend(std::iter::repeat_n(Value::Null, 8));
                row.extend([
                    Value::Bool(e.success == Some(true)),
                    Value::Bool(e.success.is_none()),
                    Value::Bool(false),
                    Value::Null,
                ]);
                row
            })
            .collect()
    }
}
