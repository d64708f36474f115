//! One way to speak SQL to either backend: statements are written once with `?1`-style
//! placeholders, take [`Value`]s and give back [`Row`]s of them; [`Dialect`] holds the few
//! expressions the two databases spell differently.

use chrono::{DateTime, Utc};

use super::StoreError;

/// Which database a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The database's clock in Unix milliseconds, as a query.
    pub(super) fn now_ms(self) -> &'static str {
        match self {
            Self::Sqlite => "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
            Self::Postgres => "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    /// The text at `outer.inner` of the JSON document in column `column`, as an expression.
    pub(super) fn json_text(self, column: &str, outer: &str, inner: &str) -> String {
        match self {
            Self::Sqlite => format!("CAST(json_extract({column}, '$.{outer}.{inner}') AS TEXT)"),
            Self::Postgres => format!("(CAST({column} AS jsonb) -> '{outer}' ->> '{inner}')"),
        }
    }
}

/// A parameter or a column's value: the only types the store's tables use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Self::Int(i64::from(v))
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Int(i64::from(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Self::Text(v.clone())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// The arguments of a statement, in placeholder order.
macro_rules! args {
    ($($v:expr),* $(,)?) => {
        &[$($crate::store::sql::Value::from($v)),*] as &[$crate::store::sql::Value]
    };
}
pub(super) use args;

/// One row of a query's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub(super) Vec<Value>);

impl Row {
    /// Column `i` as a `T`; a column of another type is a corrupt store.
    pub(super) fn get<T: FromValue>(&self, i: usize) -> Result<T, StoreError> {
        let value = self.0.get(i).unwrap_or(&Value::Null);
        T::from_value(value).ok_or_else(|| StoreError::Corrupt {
            id: format!("column {i}"),
            detail: format!("unexpected value {value:?}"),
        })
    }
}

/// What a column's value can be read as.
pub(super) trait FromValue: Sized {
    fn from_value(v: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl FromValue for u64 {
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).and_then(|i| u64::try_from(i).ok())
    }
}

impl FromValue for bool {
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).map(|i| i != 0)
    }
}

impl FromValue for String {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// A connection to a store database, either backend.
pub trait Conn: Send {
    fn dialect(&self) -> Dialect;
    /// Runs one statement; the number of rows it changed.
    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<usize, StoreError>;
    /// Runs one query; every row of its answer.
    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, StoreError>;
    /// Runs statements without arguments (schema changes, transaction control).
    fn batch(&mut self, sql: &str) -> Result<(), StoreError>;
    /// Starts a transaction that holds the store's one write lock until it ends, waiting up to
    /// `wait` for it: writers take turns across every process, whatever the backend.
    fn begin_write(&mut self, wait: std::time::Duration) -> Result<(), StoreError>;
    fn commit(&mut self) -> Result<(), StoreError>;
    fn rollback(&mut self) -> Result<(), StoreError>;
}

impl dyn Conn + '_ {
    /// The first row of a query's answer, if any.
    pub(super) fn query_opt(
        &mut self,
        sql: &str,
        args: &[Value],
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, args)?.into_iter().next())
    }

    /// The one value a query answers (`SELECT COUNT(*)`, `SELECT EXISTS`).
    pub(super) fn scalar<T: FromValue>(
        &mut self,
        sql: &str,
        args: &[Value],
    ) -> Result<T, StoreError> {
        let row = self
            .query_opt(sql, args)?
            .ok_or_else(|| StoreError::Corrupt {
                id: "query".into(),
                detail: "no row".into(),
            })?;
        row.get(0)
    }

    /// The database's clock in Unix milliseconds: leases are timed by it, not by the hosts'.
    pub(super) fn now_ms(&mut self) -> Result<i64, StoreError> {
        let sql = self.dialect().now_ms();
        self.scalar(sql, &[])
    }

    /// The database's clock.
    pub(super) fn now(&mut self) -> Result<DateTime<Utc>, StoreError> {
        time_of(self.now_ms()?)
    }
}

/// A time the database gave in Unix milliseconds.
pub(super) fn time_of(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Corrupt {
        id: "clock".into(),
        detail: format!("the database's time {ms} ms is out of range"),
    })
}

/// A write transaction: committed by [`Tx::commit`], rolled back if dropped before (an error or
/// a panic in the middle leaves the store as it was).
pub(super) struct Tx<'a> {
    conn: &'a mut dyn Conn,
    open: bool,
}

impl<'a> Tx<'a> {
    pub(super) fn begin(
        conn: &'a mut dyn Conn,
        wait: std::time::Duration,
    ) -> Result<Self, StoreError> {
        conn.begin_write(wait)?;
        Ok(Self { conn, open: true })
    }

    pub(super) fn conn(&mut self) -> &mut dyn Conn {
        self.conn
    }

    pub(super) fn commit(mut self) -> Result<(), StoreError> {
        self.open = false;
        self.conn.commit()
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.rollback();
        }
    }
}
