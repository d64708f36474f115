//! The embedded backend: one SQLite file (WAL mode) that processes on one host share; its
//! write lock is SQLite's own (`BEGIN IMMEDIATE`), waited for up to the busy timeout.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql, params_from_iter};

use super::StoreError;
use super::sql::{Conn, Dialect, Row, Value};

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Self::Null => ToSqlOutput::Owned(rusqlite::types::Value::Null),
            Self::Int(i) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(*i)),
            Self::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

fn value(v: ValueRef<'_>) -> Result<Value, StoreError> {
    match v {
        ValueRef::Null => Ok(Value::Null),
        ValueRef::Integer(i) => Ok(Value::Int(i)),
        ValueRef::Text(t) => Ok(Value::Text(String::from_utf8_lossy(t).into_owned())),
        other => Err(StoreError::Corrupt {
            id: "column".into(),
            detail: format!("unexpected {:?} value", other.data_type()),
        }),
    }
}

impl Conn for Connection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<usize, StoreError> {
        let mut stmt = self.prepare_cached(sql)?;
        Ok(stmt.execute(params_from_iter(args))?)
    }

    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.prepare_cached(sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(params_from_iter(args))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let values = (0..columns)
                .map(|i| value(row.get_ref(i)?))
                .collect::<Result<_, StoreError>>()?;
            out.push(Row(values));
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        Ok(self.execute_batch(sql)?)
    }

    fn begin_write(&mut self, wait: std::time::Duration) -> Result<(), StoreError> {
        self.busy_timeout(wait)?;
        let begun = self.execute_batch("BEGIN IMMEDIATE");
        self.busy_timeout(super::BUSY_TIMEOUT)?;
        Ok(begun?)
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        Ok(self.execute_batch("COMMIT")?)
    }

    fn rollback(&mut self) -> Result<(), StoreError> {
        Ok(self.execute_batch("ROLLBACK")?)
    }
}
