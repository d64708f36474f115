//! The shared backend: a PostgreSQL database that replicas on several hosts use at once. Its
//! write lock is one transaction-scoped advisory lock, so writers take turns exactly as they do
//! on SQLite. The synchronous `postgres` client runs on a thread of its own (it cannot block
//! inside tokio's runtime); callers hand it statements and wait for the answer.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use bytes::BytesMut;
use postgres::config::SslMode;
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls, Statement};

use super::StoreError;
use super::sql::{Conn, Dialect, Row, Value};

/// The key of the advisory lock every write transaction holds ("tokenwar" in ASCII).
const WRITE_LOCK: i64 = 0x746F_6B65_6E77_6172;
/// How long one statement may run before PostgreSQL cancels it.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the server when connecting, unless the URL says `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the password comes from; never from the URL, which shows up in logs and `store check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Password {
    File(PathBuf),
    Env(String),
}

/// A PostgreSQL database to keep the store in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTarget {
    /// `postgres://user@host:port/dbname?sslmode=require`, without a password.
    pub url: String,
    pub password: Option<Password>,
    /// PEM certificates to trust for TLS besides the system's roots.
    pub ca_file: Option<PathBuf>,
}

impl PgTarget {
    /// Checks the URL without connecting; says what is wrong with it.
    pub fn check(&self) -> Result<(), String> {
        let config: postgres::Config = self
            .url
            .parse()
            .map_err(|e| format!("store.url is not a PostgreSQL URL: {e}"))?;
        if config.get_password().is_some() {
            return Err(
                "store.url holds a password: put it in a file named by store.password_file, \
                        or in an environment variable named by store.password_env"
                    .into(),
            );
        }
        if config.get_dbname().is_none() {
            return Err("store.url names no database (postgres://user@host/DATABASE)".into());
        }
        Ok(())
    }

    fn connect(&self) -> Result<Client, StoreError> {
        let connect_err = |detail: String| StoreError::Connect {
            url: self.url.clone(),
            detail,
        };
        let mut config: postgres::Config = self
            .url
            .parse()
            .map_err(|e: postgres::Error| connect_err(e.to_string()))?;
        match &self.password {
            Some(Password::File(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    connect_err(format!(
                        "cannot read store.password_file {}: {e}",
                        path.display()
                    ))
                })?;
                config.password(text.trim_end_matches(['\r', '\n']));
            }
            Some(Password::Env(var)) => {
                let text = std::env::var(var).map_err(|_| {
                    connect_err(format!(
                        "environment variable {var} (store.password_env) is not set"
                    ))
                })?;
                config.password(text);
            }
            None => {}
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // A server that vanishes without closing the connection (a host or a network gone) is
        // noticed within about a minute, not when the kernel gives up hours later.
        config
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3)
            .tcp_user_timeout(STATEMENT_TIMEOUT);
        let mut client = match config.get_ssl_mode() {
            SslMode::Disable => config.connect(NoTls),
            _ => config.connect(self.tls().map_err(connect_err)?),
        }
        .map_err(|e| connect_err(describe(&e)))?;
        client
            .batch_execute(&format!(
                "SET statement_timeout = {}; SET idle_in_transaction_session_timeout = {}",
                STATEMENT_TIMEOUT.as_millis(),
                STATEMENT_TIMEOUT.as_millis() * 2
            ))
            .map_err(|e| connect_err(describe(&e)))?;
        Ok(client)
    }

    /// TLS that trusts the system's roots and `ca_file`, and checks the server's name.
    fn tls(&self) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = &self.ca_file {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read store.ca_file {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "store.ca_file {} holds no PEM certificate",
                    path.display()
                ));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("store.ca_file {}: {e}", path.display()))?;
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }
}

/// A PostgreSQL error with the server's own message and hint, which `Display` leaves out.
pub(super) fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.hint() {
            Some(hint) => format!("{} ({hint})", db.message()),
            None => db.message().to_owned(),
        },
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

/// A connection to the store's PostgreSQL database, through its own thread.
pub(super) struct PgConn {
    jobs: mpsc::Sender<Job>,
}

#[derive(Clone)]
enum Kind {
    Execute(String, Vec<Value>),
    Query(String, Vec<Value>),
    Batch(String),
    Begin(Duration),
    Commit,
    Rollback,
}

enum Answer {
    Changed(usize),
    Rows(Vec<Row>),
    Done,
}

struct Job {
    kind: Kind,
    reply: mpsc::SyncSender<Result<Answer, StoreError>>,
}

impl PgConn {
    /// Connects (on the connection's own thread), or says why it cannot.
    pub(super) fn open(target: &PgTarget) -> Result<Self, StoreError> {
        let (jobs, inbox) = mpsc::channel();
        let (ready, started) = mpsc::sync_channel(1);
        let target = target.clone();
        std::thread::Builder::new()
            .name("tokenwarden-postgres".into())
            .spawn(move || match target.connect() {
                Ok(client) => {
                    let _ = ready.send(Ok(()));
                    Worker {
                        target,
                        client,
                        statements: HashMap::new(),
                        in_tx: false,
                        broken_tx: false,
                        lost: false,
                    }
                    .serve(&inbox);
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            })
            .map_err(|e| StoreError::Gone(format!("cannot start its thread: {e}")))?;
        started
            .recv()
            .map_err(|_| StoreError::Gone("its thread ended".into()))??;
        Ok(Self { jobs })
    }

    fn ask(&self, kind: Kind) -> Result<Answer, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.jobs
            .send(Job { kind, reply })
            .map_err(|_| StoreError::Gone("its thread ended".into()))?;
        answer
            .recv()
            .map_err(|_| StoreError::Gone("its thread ended".into()))?
    }
}

impl Conn for PgConn {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, args: &[Value]) -> Result<usize, StoreError> {
        match self.ask(Kind::Execute(sql.to_owned(), args.to_vec()))? {
            Answer::Changed(n) => Ok(n),
            _ => Ok(0),
        }
    }

    fn query(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>, StoreError> {
        match self.ask(Kind::Query(sql.to_owned(), args.to_vec()))? {
            Answer::Rows(rows) => Ok(rows),
            _ => Ok(Vec::new()),
        }
    }

    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.ask(Kind::Batch(sql.to_owned())).map(drop)
    }

    fn begin_write(&mut self, wait: Duration) -> Result<(), StoreError> {
        self.ask(Kind::Begin(wait)).map(drop)
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        self.ask(Kind::Commit).map(drop)
    }

    fn rollback(&mut self) -> Result<(), StoreError> {
        self.ask(Kind::Rollback).map(drop)
    }
}

/// The thread that owns the client. A connection lost between transactions is made again, and
/// a read or the start of a transaction that found it lost is tried once more on the new one
/// (neither had done anything); one lost inside a transaction fails every statement of that
/// transaction until it is rolled back, so no half of it runs on a new connection.
struct Worker {
    target: PgTarget,
    client: Client,
    statements: HashMap<String, Statement>,
    in_tx: bool,
    broken_tx: bool,
    /// The server ended the connection, though the client may not have seen it close yet.
    lost: bool,
}

impl Worker {
    fn serve(mut self, inbox: &mpsc::Receiver<Job>) {
        for job in inbox {
            let answer = self.run(job.kind);
            let _ = job.reply.send(answer);
        }
    }

    fn run(&mut self, kind: Kind) -> Result<Answer, StoreError> {
        let retry =
            (matches!(kind, Kind::Begin(_) | Kind::Query(..)) && !self.in_tx).then(|| kind.clone());
        let answer = self.attempt(kind);
        if let Err(StoreError::Postgres(e)) = &answer
            && self.gone(e)
        {
            // Its next use connects again (or, inside a transaction, fails until rolled back).
            self.lost = true;
            if let Some(kind) = retry {
                tracing::warn!(error = %describe(e), "the store's PostgreSQL connection was lost; connecting again");
                return self.attempt(kind);
            }
        }
        answer
    }

    /// Whether `e` says the connection is gone: closed, or ended by the server (an
    /// administrator, a shutdown, a crash), whose goodbye may arrive before the socket closes.
    fn gone(&self, e: &postgres::Error) -> bool {
        self.client.is_closed()
            || e.is_closed()
            || e.code()
                .is_some_and(|c| matches!(c.code(), "57P01" | "57P02" | "57P03"))
    }

    fn attempt(&mut self, kind: Kind) -> Result<Answer, StoreError> {
        let lost = self.lost || self.client.is_closed();
        if let Kind::Rollback = kind
            && (self.broken_tx || lost)
        {
            // The server rolled the transaction back when the connection went.
            self.broken_tx = false;
            self.in_tx = false;
            return Ok(Answer::Done);
        }
        if self.broken_tx {
            return Err(lost_in_tx());
        }
        if lost {
            if self.in_tx {
                self.broken_tx = true;
                return Err(lost_in_tx());
            }
            self.client = self.target.connect()?;
            self.statements.clear();
            self.lost = false;
        }
        match kind {
            Kind::Execute(sql, args) => {
                let stmt = self.prepared(&sql)?;
                let params: Vec<&(dyn ToSql + Sync)> =
                    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
                let n = self.client.execute(&stmt, &params)?;
                Ok(Answer::Changed(usize::try_from(n).unwrap_or(usize::MAX)))
            }
            Kind::Query(sql, args) => {
                let stmt = self.prepared(&sql)?;
                let params: Vec<&(dyn ToSql + Sync)> =
                    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
                let rows = self.client.query(&stmt, &params)?;
                rows.iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| r.try_get::<_, Value>(i))
                            .collect::<Result<Vec<_>, _>>()
                            .map(Row)
                            .map_err(StoreError::from)
                    })
                    .collect::<Result<_, _>>()
                    .map(Answer::Rows)
            }
            Kind::Batch(sql) => {
                self.client.batch_execute(&sql)?;
                Ok(Answer::Done)
            }
            Kind::Begin(wait) => {
                let begun = self.client.batch_execute(&format!(
                    "BEGIN; SET LOCAL lock_timeout = {}; SELECT pg_advisory_xact_lock({WRITE_LOCK})",
                    wait.as_millis().max(1)
                ));
                match begun {
                    Ok(()) => {
                        self.in_tx = true;
                        Ok(Answer::Done)
                    }
                    Err(e) => {
                        let _ = self.client.batch_execute("ROLLBACK");
                        Err(e.into())
                    }
                }
            }
            Kind::Commit => {
                self.in_tx = false;
                match self.client.batch_execute("COMMIT") {
                    Ok(()) => Ok(Answer::Done),
                    // The server may have committed before the connection went.
                    Err(e) if self.gone(&e) => {
                        self.lost = true;
                        Err(StoreError::Gone(format!(
                            "the connection was lost while committing ({}); whether the change was written is unknown",
                            describe(&e)
                        )))
                    }
                    Err(e) => Err(e.into()),
                }
            }
            Kind::Rollback => {
                self.in_tx = false;
                self.client.batch_execute("ROLLBACK")?;
                Ok(Answer::Done)
            }
        }
    }

    /// Statement `sql` (`?N` placeholders), prepared once per connection.
    fn prepared(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(stmt) = self.statements.get(sql) {
            return Ok(stmt.clone());
        }
        let stmt = self.client.prepare(&numbered(sql))?;
        self.statements.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }
}

fn lost_in_tx() -> StoreError {
    StoreError::Gone(
        "the connection was lost in the middle of a transaction; none of it was written".into(),
    )
}

/// `?1`-style placeholders as PostgreSQL numbers them (`$1`). The store's statements hold no
/// `?` of their own.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Self::Null => Ok(IsNull::Yes),
            Self::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => Err(format!("an integer cannot be sent as {ty}").into()),
            },
            Self::Text(s) if <&str as ToSql>::accepts(ty) => s.as_str().to_sql(ty, out),
            Self::Text(_) => Err(format!("a text cannot be sent as {ty}").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(match *ty {
            Type::INT8 => Self::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Self::Int(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT2 => Self::Int(i64::from(i16::from_sql(ty, raw)?)),
            Type::BOOL => Self::Int(i64::from(bool::from_sql(ty, raw)?)),
            _ if <String as FromSql>::accepts(ty) => Self::Text(String::from_sql(ty, raw)?),
            _ => return Err(format!("a column of type {ty} cannot be read").into()),
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Self::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::sql::args;
    use crate::store::testing::TestDb;

    #[test]
    fn placeholders_are_numbered_the_postgres_way() {
        assert_eq!(
            numbered("SELECT a FROM t WHERE b = ?1 AND c IN (?2, ?12) AND d = '?'"),
            "SELECT a FROM t WHERE b = $1 AND c IN ($2, $12) AND d = '?'"
        );
    }

    fn backend(store: &Store) -> i64 {
        store
            .read(|c| c.scalar("SELECT pg_backend_pid()", &[]))
            .unwrap()
    }

    fn terminate(admin: &Store, pid: i64) {
        let ended: bool = admin
            .read(|c| c.scalar("SELECT pg_terminate_backend(?1)", args![pid]))
            .unwrap();
        assert!(ended);
    }

    fn cut_off(store: &Store, admin: &Store) {
        terminate(admin, backend(store));
    }

    #[test]
    fn a_lost_connection_is_made_again_and_a_transaction_it_cut_writes_nothing() {
        let Some(db) = TestDb::postgres() else {
            return;
        };
        let (store, admin) = (db.open(), db.open());
        let now = chrono::Utc::now();
        assert!(store.first_sighting("a", now).unwrap());
        cut_off(&store, &admin);
        assert!(
            store.first_sighting("b", now).unwrap(),
            "the next write connects again"
        );
        cut_off(&store, &admin);
        assert_eq!(store.count_rows("interactions"), 2, "so does a read");

        let pid = backend(&store);
        let cut = store.write(|c| {
            c.execute(
                "INSERT INTO interactions (id, seen_at) VALUES ('c', 0)",
                &[],
            )?;
            terminate(&admin, pid);
            c.execute(
                "INSERT INTO interactions (id, seen_at) VALUES ('d', 0)",
                &[],
            )
        });
        let err = cut.unwrap_err().to_string();
        assert!(err.contains("store error"), "{err}");
        assert_eq!(
            admin.count_rows("interactions"),
            2,
            "nothing of the cut transaction was written"
        );
        assert!(
            store.first_sighting("e", now).unwrap(),
            "and the store works on"
        );
    }

    #[test]
    fn a_password_in_the_url_is_refused_and_a_database_is_required() {
        let target = |url: &str| PgTarget {
            url: url.into(),
            password: None,
            ca_file: None,
        };
        let err = target("postgres://tw:hunter2@db/tw").check().unwrap_err();
        assert!(err.contains("password_file"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = target("postgres://tw@db").check().unwrap_err();
        assert!(err.contains("names no database"), "{err}");
        target("postgres://tw@db:5433/tw?sslmode=require")
            .check()
            .unwrap();
    }
}
