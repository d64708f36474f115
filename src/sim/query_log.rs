//! The query log behind `system.queries`, which every database shows: each SQL query that
//! reached an existing database, newest last, at most 1000 (`influxdb3 serve --query-log-size`,
//! default 1000). Recorded as `query_database_sql` does (`influxdb3_query_executor/src/lib.rs`):
//! `record_query` with type `sql`, `fail()` when planning fails, and otherwise `logically_planned`,
//! `physically_planned`, `execution_permit` and `success()` as soon as `execute_stream` has
//! returned, before a single row is read. Columns from `influxdb3_system_tables/src/queries.rs`
//! (`queries_schema`).
//!
//! The phases and what each one sets follow `QueryCompletedToken` in
//! `core/iox_query/src/query_log.rs` at `d7834110b3` (3.10.0-nightly): a query that was planned
//! has `partitions` and `parquet_files` (0 on system tables), plan, permit, execute and end-to-end
//! durations, a compute duration and `max_memory` (both still 0, as nothing has run when success
//! is recorded); a query that failed in planning has only its end-to-end duration. Durations are
//! what the simulator measured. `issue_time` has millisecond precision where InfluxDB has
//! nanoseconds, and `trace_id` stays null (no trace header).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

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

/// Where a query stands (`QueryPhase::name`): received while the simulator plans it, then
/// terminal at once (the planned and permit phases pass within one step).
#[derive(Debug, Clone)]
enum Phase {
    Received,
    Success {
        plan: Duration,
        permit: Duration,
        execute: Duration,
        end2end: Duration,
    },
    Fail {
        end2end: Duration,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    id: String,
    issue_time: i64,
    started: Instant,
    text: String,
    phase: Phase,
}

#[derive(Debug, Default)]
pub struct QueryLog {
    entries: VecDeque<Entry>,
}

/// A duration as Arrow's writers print `Duration(Nanosecond)` by default (ISO 8601 through
/// chrono's `TimeDelta`, e.g. `PT0.000012S`, or `P0D`). Kept as text, like
/// `system.databases.hard_deletion_time`.
fn iso(d: Duration) -> Value {
    Value::Str(
        chrono::TimeDelta::from_std(d)
            .unwrap_or(chrono::TimeDelta::MAX)
            .to_string(),
    )
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
            started: Instant::now(),
            text: text.to_owned(),
            phase: Phase::Received,
        });
        id
    }

    fn entry(&mut self, id: &str) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.id == id)
    }

    /// The query was planned and its stream created: InfluxDB records success here, before the
    /// stream is read, so a query reading `system.queries` sees itself finished.
    pub fn succeed(&mut self, id: &str) {
        if let Some(e) = self.entry(id) {
            let plan = e.started.elapsed();
            let permit = e.started.elapsed().saturating_sub(plan);
            let execute = e.started.elapsed().saturating_sub(plan + permit);
            e.phase = Phase::Success {
                plan,
                permit,
                execute,
                end2end: e.started.elapsed(),
            };
        }
    }

    /// Planning failed (also for what DataFusion rejects while planning and the simulator only
    /// notices on a row).
    pub fn fail(&mut self, id: &str) {
        if let Some(e) = self.entry(id) {
            e.phase = Phase::Fail {
                end2end: e.started.elapsed(),
            };
        }
    }

    /// The rows of `system.queries`.
    pub fn rows(&self) -> Vec<Vec<Value>> {
        self.entries.iter().map(row).collect()
    }
}

fn row(e: &Entry) -> Vec<Value> {
    // partitions, parquet_files, the plan, permit, execute, end-to-end and compute durations,
    // max_memory.
    let (phase, figures, success): (&str, [Value; 8], bool) = match &e.phase {
        Phase::Received => ("received", std::array::from_fn(|_| Value::Null), false),
        Phase::Success {
            plan,
            permit,
            execute,
            end2end,
        } => (
            "success",
            [
                Value::Int(0),
                Value::Int(0),
                iso(*plan),
                iso(*permit),
                iso(*execute),
                iso(*end2end),
                iso(Duration::ZERO),
                Value::Int(0),
            ],
            true,
        ),
        Phase::Fail { end2end } => {
            let mut figures = std::array::from_fn(|_| Value::Null);
            figures[5] = iso(*end2end);
            ("fail", figures, false)
        }
    };
    let mut row = vec![
        Value::Str(e.id.clone()),
        Value::Str(phase.into()),
        Value::Ts(e.issue_time),
        Value::Str("sql".into()),
        Value::Str(e.text.clone()),
    ];
    row.extend(figures);
    row.extend([
        Value::Bool(success),
        Value::Bool(matches!(e.phase, Phase::Received)),
        Value::Bool(false),
        Value::Null,
    ]);
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_arrow_prints_them() {
        assert_eq!(iso(Duration::ZERO), Value::Str("P0D".into()));
        assert_eq!(
            iso(Duration::from_nanos(12_300)),
            Value::Str("PT0.0000123S".into())
        );
        assert_eq!(
            iso(Duration::from_millis(61_500)),
            Value::Str("PT61.5S".into())
        );
    }
}
