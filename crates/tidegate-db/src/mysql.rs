//! MySQL and MariaDB behind the database seam, on `mysql_async`: a [`MySqlConfig`] from a `mysql://` or
//! `mariadb://` URL (the password never printed), and [`MySqlSession`], a [`Session`] whose errors keep the
//! server's error number beside its SQLSTATE and are classed the way the engine retries them (1205 lock wait or
//! metadata-lock timeout, 1213 deadlock, 3024/1969 statement time limits, 1062 duplicate key, 2006/2013 and I/O
//! errors a lost connection).
//!
//! Statements are one text each (MySQL's protocol runs one statement per prepared query); `batch_execute`
//! accepts several separated by `;` through the text protocol, which the server runs in order.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;

use crate::connect::{ConnectError, DbError};
use crate::driver::{
    CancelHandle, Driver, ErrorClass, Family, Prepared, Query, Row, Session, Value,
};

/// Where to connect: parsed from `mysql://user:password@host:port/db` (or `mariadb://…`).
#[derive(Clone)]
pub struct MySqlConfig {
    opts: mysql_async::Opts,
}

impl fmt::Debug for MySqlConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MySqlConfig")
            .field("target", &self.redacted())
            .finish()
    }
}

impl MySqlConfig {
    /// Whether a connection string names the MySQL family (`mysql://` or `mariadb://`).
    pub fn is_mysql_url(url: &str) -> bool {
        let lower = url.trim_start().to_ascii_lowercase();
        lower.starts_with("mysql://") || lower.starts_with("mariadb://")
    }

    pub fn from_url(url: &str) -> Result<Self, ConnectError> {
        Self::from_url_in(url, "--db")
    }

    /// As [`MySqlConfig::from_url`], naming where the URL came from (`--db`, `DATABASE_URL`) in errors.
    pub fn from_url_in(url: &str, source_name: &'static str) -> Result<Self, ConnectError> {
        let trimmed = url.trim();
        let rest = match trimmed.split_once("://") {
            Some((scheme, rest))
                if scheme.eq_ignore_ascii_case("mysql")
                    || scheme.eq_ignore_ascii_case("mariadb") =>
            {
                rest
            }
            _ => {
                return Err(ConnectError::BadMySqlUrl {
                    source_name,
                    reason: "a MySQL or MariaDB URL starts with mysql:// or mariadb://".into(),
                })
            }
        };
        let opts = mysql_async::Opts::from_url(&format!("mysql://{rest}")).map_err(|error| {
            ConnectError::BadMySqlUrl {
                source_name,
                // mysql_async's messages name the parameter, never the password.
                reason: error.to_string(),
            }
        })?;
        // Affected rows count the rows a statement matched, as PostgreSQL counts them: a checkpoint or a
        // control flag that writes the value already there still says it found its row.
        let opts = mysql_async::OptsBuilder::from_opts(opts)
            .client_found_rows(true)
            .into();
        Ok(Self { opts })
    }

    /// `mysql://user@host:port/db`, without the password.
    pub fn redacted(&self) -> String {
        format!(
            "mysql://{}@{}:{}/{}",
            self.opts.user().unwrap_or(""),
            self.opts.ip_or_hostname(),
            self.opts.tcp_port(),
            self.opts.db_name().unwrap_or("")
        )
    }

    pub fn database(&self) -> Option<&str> {
        self.opts.db_name()
    }

    pub async fn connect(&self) -> Result<MySqlSession, DbError> {
        let conn = mysql_async::Conn::new(self.opts.clone())
            .await
            .map_err(|error| {
                let mut e = db_error(format!("connecting to {}", self.redacted()), &error);
                // A refusal (wrong password, unknown database) is permanent; anything else may pass.
                if !matches!(error, mysql_async::Error::Server(_)) {
                    e.class = ErrorClass::ConnectionLost;
                }
                e
            })?;
        let id = conn.id();
        Ok(MySqlSession {
            conn: tokio::sync::Mutex::new(Some(conn)),
            id,
            opts: self.opts.clone(),
            closed: Arc::new(AtomicBool::new(false)),
        })
    }
}

#[async_trait]
impl Driver for MySqlConfig {
    fn family(&self) -> Family {
        Family::MySql
    }

    async fn open(&self) -> Result<Box<dyn Session>, DbError> {
        Ok(Box::new(self.connect().await?))
    }
}

/// One connection. `mysql_async` needs `&mut` for every call; the seam's `&self` goes through a mutex (a
/// session is used by one task at a time anyway).
pub struct MySqlSession {
    conn: tokio::sync::Mutex<Option<mysql_async::Conn>>,
    /// The server's connection id: what `KILL QUERY` names to cancel a statement.
    id: u32,
    opts: mysql_async::Opts,
    closed: Arc<AtomicBool>,
}

impl MySqlSession {
    /// The server's id of this connection (`CONNECTION_ID()`).
    pub fn connection_id(&self) -> u32 {
        self.id
    }

    async fn with_conn<T>(
        &self,
        context: String,
        run: impl for<'c> FnOnce(
            &'c mut mysql_async::Conn,
        ) -> futures_util::future::BoxFuture<'c, mysql_async::Result<T>>,
    ) -> Result<T, DbError> {
        let mut guard = self.conn.lock().await;
        let Some(conn) = guard.as_mut() else {
            return Err(lost(context));
        };
        match run(conn).await {
            Ok(value) => Ok(value),
            Err(error) => {
                let e = db_error(context, &error);
                if e.class == ErrorClass::ConnectionLost {
                    // The connection is unusable: later calls fail fast as lost, and is_closed says so.
                    *guard = None;
                    self.closed.store(true, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }
}

fn lost(context: String) -> DbError {
    DbError {
        class: ErrorClass::ConnectionLost,
        ..DbError::other(context, "the connection was lost earlier")
    }
}

/// Our values as MySQL parameters: text stays text (the server converts it to the column's type, as the
/// PostgreSQL side casts `$1::text::type`), a list of text as its JSON array.
fn to_mysql(value: &Value) -> mysql_async::Value {
    match value {
        Value::Null => mysql_async::Value::NULL,
        Value::Bool(b) => mysql_async::Value::Int(i64::from(*b)),
        Value::Int(i) => mysql_async::Value::Int(*i),
        Value::Float(f) => mysql_async::Value::Double(*f),
        Value::Text(s) => mysql_async::Value::Bytes(s.clone().into_bytes()),
        Value::TextList(list) => {
            mysql_async::Value::Bytes(serde_json::to_string(list).unwrap_or_default().into_bytes())
        }
    }
}

/// A MySQL value as ours: integers as integers, floats as floats, everything else (decimal, dates, text) as the
/// text the server would print.
fn from_mysql(value: &mysql_async::Value) -> Value {
    match value {
        mysql_async::Value::NULL => Value::Null,
        mysql_async::Value::Int(i) => Value::Int(*i),
        mysql_async::Value::UInt(u) => match i64::try_from(*u) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Text(u.to_string()),
        },
        mysql_async::Value::Float(f) => Value::Float(f64::from(*f)),
        mysql_async::Value::Double(f) => Value::Float(*f),
        mysql_async::Value::Bytes(bytes) => {
            Value::Text(String::from_utf8_lossy(bytes).into_owned())
        }
        other => Value::Text(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

fn rows(result: Vec<mysql_async::Row>) -> Vec<Row> {
    let Some(first) = result.first() else {
        return Vec::new();
    };
    let names: Arc<[String]> = first
        .columns_ref()
        .iter()
        .map(|c| c.name_str().into_owned())
        .collect();
    result
        .into_iter()
        .map(|row| {
            let values = (0..row.len())
                .map(|i| row.as_ref(i).map_or(Value::Null, from_mysql))
                .collect();
            Row::new(names.clone(), values)
        })
        .collect()
}

fn params(values: &[Value]) -> mysql_async::Params {
    if values.is_empty() {
        mysql_async::Params::Empty
    } else {
        mysql_async::Params::Positional(values.iter().map(to_mysql).collect())
    }
}

/// What a server error number means for retrying. Documented for both MySQL 8 and MariaDB 10.11 (MariaDB's
/// 1969 is its `max_statement_time`; MySQL's 3024 its `max_execution_time`).
pub fn classify_code(code: u16) -> ErrorClass {
    match code {
        1205 => ErrorClass::LockTimeout,
        1213 => ErrorClass::Deadlock,
        3024 | 1969 | 1317 => ErrorClass::StatementTimeout,
        1062 => ErrorClass::UniqueViolation,
        // Server gone away, lost during query, shutdown in progress, connection killed.
        2006 | 2013 | 1053 | 1927 => ErrorClass::ConnectionLost,
        _ => ErrorClass::Other,
    }
}

fn db_error(context: impl Into<String>, error: &mysql_async::Error) -> DbError {
    match error {
        mysql_async::Error::Server(server) => DbError {
            context: context.into(),
            message: format!(
                "{} (error {}, SQLSTATE {})",
                server.message, server.code, server.state
            ),
            sqlstate: Some(tokio_postgres::error::SqlState::from_code(&server.state)),
            class: classify_code(server.code),
            primary: Some(server.message.clone()),
            server_code: Some(server.code),
        },
        mysql_async::Error::Io(_) => DbError {
            class: ErrorClass::ConnectionLost,
            ..DbError::other(context, error.to_string())
        },
        other if other.is_fatal() => DbError {
            class: ErrorClass::ConnectionLost,
            ..DbError::other(context, other.to_string())
        },
        other => DbError::other(context, other.to_string()),
    }
}

fn context_of(sql: &str) -> String {
    let head: String = sql.split_whitespace().take(6).collect::<Vec<_>>().join(" ");
    format!("running `{head}…`")
}

struct MySqlCancel {
    opts: mysql_async::Opts,
    id: u32,
}

#[async_trait]
impl CancelHandle for MySqlCancel {
    async fn cancel(&self) -> Result<(), DbError> {
        let mut conn = mysql_async::Conn::new(self.opts.clone())
            .await
            .map_err(|e| db_error("connecting to cancel a statement", &e))?;
        let result = conn
            .query_drop(format!("KILL QUERY {}", self.id))
            .await
            .map_err(|e| db_error("cancelling a statement", &e));
        let _ = conn.disconnect().await;
        result
    }
}

#[async_trait]
impl Session for MySqlSession {
    fn family(&self) -> Family {
        Family::MySql
    }

    async fn batch_execute(&self, sql: &str) -> Result<(), DbError> {
        let sql = sql.to_string();
        self.with_conn(context_of(&sql), |conn| {
            Box::pin(async move { conn.query_drop(sql.as_str()).await })
        })
        .await
    }

    async fn execute(&self, query: Query<'_>, values: &[Value]) -> Result<u64, DbError> {
        let sql = query.sql().to_string();
        let params = params(values);
        let statement = match query {
            Query::Prepared(p) => match p.handle::<mysql_async::Statement>() {
                Some(statement) => Some(statement.clone()),
                None => return Err(foreign_statement(p)),
            },
            Query::Text(_) => None,
        };
        self.with_conn(context_of(&sql), |conn| {
            Box::pin(async move {
                match statement {
                    Some(statement) => conn.exec_drop(statement, params).await?,
                    None => conn.exec_drop(sql.as_str(), params).await?,
                }
                Ok(conn.affected_rows())
            })
        })
        .await
    }

    async fn query(&self, query: Query<'_>, values: &[Value]) -> Result<Vec<Row>, DbError> {
        let sql = query.sql().to_string();
        let params = params(values);
        let statement = match query {
            Query::Prepared(p) => match p.handle::<mysql_async::Statement>() {
                Some(statement) => Some(statement.clone()),
                None => return Err(foreign_statement(p)),
            },
            Query::Text(_) => None,
        };
        let result: Vec<mysql_async::Row> = self
            .with_conn(context_of(&sql), |conn| {
                Box::pin(async move {
                    match statement {
                        Some(statement) => conn.exec(statement, params).await,
                        None => conn.exec(sql.as_str(), params).await,
                    }
                })
            })
            .await?;
        Ok(rows(result))
    }

    async fn prepare(&self, sql: &str) -> Result<Prepared, DbError> {
        let text = sql.to_string();
        let statement = self
            .with_conn(format!("preparing `{text}`"), |conn| {
                let text = text.clone();
                Box::pin(async move { conn.prep(text.as_str()).await })
            })
            .await?;
        Ok(Prepared::new(sql, Box::new(statement)))
    }

    async fn query_text(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, DbError> {
        let text = sql.to_string();
        let result: Vec<mysql_async::Row> = self
            .with_conn(context_of(&text), |conn| {
                let text = text.clone();
                Box::pin(async move { conn.query(text.as_str()).await })
            })
            .await?;
        Ok(result
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| match row.as_ref(i).map(from_mysql) {
                        None | Some(Value::Null) => None,
                        Some(Value::Int(i)) => Some(i.to_string()),
                        Some(Value::Float(f)) => Some(f.to_string()),
                        Some(Value::Bool(b)) => Some(if b { "1" } else { "0" }.to_string()),
                        Some(Value::Text(s)) => Some(s),
                        Some(Value::TextList(list)) => Some(list.join(",")),
                    })
                    .collect()
            })
            .collect())
    }

    fn cancel_handle(&self) -> Box<dyn CancelHandle> {
        Box::new(MySqlCancel {
            opts: self.opts.clone(),
            id: self.id,
        })
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

fn foreign_statement(p: &Prepared) -> DbError {
    DbError::other(
        "running a prepared statement",
        format!("the statement was prepared by another driver: {}", p.sql()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_both_spellings_parse_and_never_show_the_password() {
        for url in [
            "mysql://app:s3cret@db.example:3307/shop",
            "mariadb://app:s3cret@db.example:3307/shop",
        ] {
            assert!(MySqlConfig::is_mysql_url(url));
            let config = MySqlConfig::from_url(url).unwrap();
            assert_eq!(config.redacted(), "mysql://app@db.example:3307/shop");
            assert!(!format!("{config:?}").contains("s3cret"));
            assert_eq!(config.database(), Some("shop"));
        }
        assert!(!MySqlConfig::is_mysql_url("postgresql://x@y/z"));
        let error = MySqlConfig::from_url("postgresql://x:pw@y/z").unwrap_err();
        assert!(error.to_string().contains("mysql://"), "{error}");
    }

    #[test]
    fn server_error_numbers_are_classed_as_the_engine_retries_them() {
        assert_eq!(classify_code(1205), ErrorClass::LockTimeout);
        assert_eq!(classify_code(1213), ErrorClass::Deadlock);
        assert_eq!(classify_code(1969), ErrorClass::StatementTimeout);
        assert_eq!(classify_code(3024), ErrorClass::StatementTimeout);
        assert_eq!(classify_code(1062), ErrorClass::UniqueViolation);
        assert_eq!(classify_code(2013), ErrorClass::ConnectionLost);
        assert_eq!(classify_code(1146), ErrorClass::Other);
    }
}

/// What `tidegate lint --db mysql://…` reads of a server: which server it is and how big its tables are.
#[derive(Debug, Clone)]
pub struct ServerSizes {
    /// What `SELECT VERSION()` printed.
    pub version: String,
    /// The connection's database (`DATABASE()`), where unqualified names live.
    pub database: Option<String>,
    pub tables: Vec<MyTableSize>,
}

/// One base table's size as InnoDB estimates it (`information_schema.TABLES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MyTableSize {
    pub schema: String,
    pub name: String,
    /// `TABLE_ROWS`, an estimate from index statistics; or, for a table the estimate calls small, its rows
    /// counted up to the threshold (the estimate lags behind fresh inserts, and a table judged small must be).
    pub rows: u64,
    /// The rows were counted, and fewer than the threshold.
    pub rows_exact: bool,
    /// Data and index bytes.
    pub total_bytes: u64,
}

/// Reads the server's version and every user table's estimated size, in one READ ONLY transaction with short
/// lock waits; a table estimated under `count_below` rows has them counted, reading at most that many. Nothing
/// is written.
pub async fn read_server_sizes(
    session: &dyn Session,
    count_below: u64,
) -> Result<ServerSizes, DbError> {
    use crate::driver::SessionExt;
    session
        .batch_execute("SET SESSION lock_wait_timeout = 5, SESSION innodb_lock_wait_timeout = 5")
        .await
        .map_err(|error| error.context("bounding lock waits"))?;
    session
        .batch_execute("START TRANSACTION READ ONLY")
        .await
        .map_err(|error| error.context("starting a read-only transaction"))?;
    let read = async {
        let server = session
            .query_one("SELECT VERSION() AS version, DATABASE() AS db", &[])
            .await
            .map_err(|error| error.context("reading the server's version"))?;
        let version: String = server.get("version").map_err(DbError::from)?;
        let database: Option<String> = server.get("db").map_err(DbError::from)?;
        let rows = session
            .rows(
                "SELECT TABLE_SCHEMA AS table_schema, TABLE_NAME AS table_name, \
                 CAST(coalesce(TABLE_ROWS, 0) AS SIGNED) AS table_rows, \
                 CAST(coalesce(DATA_LENGTH, 0) + coalesce(INDEX_LENGTH, 0) AS SIGNED) AS total_bytes \
                 FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' \
                 AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys', 'tidegate') \
                 ORDER BY TABLE_SCHEMA, TABLE_NAME",
                &[],
            )
            .await
            .map_err(|error| error.context("reading table sizes"))?;
        let mut tables = Vec::with_capacity(rows.len());
        for row in rows {
            let schema: String = row.get("table_schema").map_err(DbError::from)?;
            let name: String = row.get("table_name").map_err(DbError::from)?;
            let mut rows = row.get::<i64>("table_rows").map_err(DbError::from)?.max(0) as u64;
            let mut rows_exact = false;
            if rows < count_below {
                let quoted = format!(
                    "`{}`.`{}`",
                    schema.replace('`', "``"),
                    name.replace('`', "``")
                );
                let counted: i64 = session
                    .query_one(
                        &format!(
                            "SELECT CAST(count(*) AS SIGNED) AS counted FROM \
                             (SELECT 1 FROM {quoted} LIMIT {count_below}) AS bounded"
                        ),
                        &[],
                    )
                    .await
                    .map_err(|error| error.context("counting a small table's rows"))?
                    .get("counted")
                    .map_err(DbError::from)?;
                rows = counted.max(0) as u64;
                rows_exact = rows < count_below;
            }
            tables.push(MyTableSize {
                schema,
                name,
                rows,
                rows_exact,
                total_bytes: row.get::<i64>("total_bytes").map_err(DbError::from)?.max(0) as u64,
            });
        }
        Ok(ServerSizes {
            version,
            database,
            tables,
        })
    };
    let outcome = read.await;
    // Nothing was written: the end of the transaction only releases what information_schema took.
    let _ = session.batch_execute("COMMIT").await;
    outcome
}
