//! The database seam: what the backfill engine and the state schema need of a database connection, as a trait a
//! second database family (MySQL/MariaDB) implements beside PostgreSQL's.
//!
//! A [`Session`] runs SQL text or a [`Prepared`] statement with [`Value`] parameters and returns owned [`Row`]s
//! whose columns are read **by name** into Rust types, so a query and its reader cannot drift apart by position.
//! Errors are [`DbError`]s with the server's code and an [`ErrorClass`] the driver decides, so callers choose to
//! retry, reconnect or stop on the class, never on message text or on one family's codes.
//!
//! PostgreSQL's implementation is on tokio-postgres: `Session` is implemented for `tokio_postgres::Client` and
//! `Transaction`, so code holding either passes `&client` where a `&dyn Session` is wanted. Parameters adapt to the
//! type the server inferred for them (an [`Value::Int`] binds to `int2`, `int4` or `int8`), the way the engine's
//! keys travel as text and are cast in SQL.
//!
//! ```no_run
//! # async fn demo(config: tidegate_db::connect::ConnectionConfig) -> Result<(), tidegate_db::connect::DbError> {
//! use tidegate_db::driver::{Driver, SessionExt, Value};
//! let session = config.open().await?;
//! let row = session
//!     .query_one("SELECT $1::int8 + 1 AS next", &[Value::Int(41)])
//!     .await?;
//! assert_eq!(row.get::<i64>("next")?, 42);
//! # Ok(()) }
//! ```

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use crate::connect::{ConnectionConfig, DbError};

/// The database families tidegate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Postgres,
    /// MySQL and MariaDB (one wire protocol; their differences are the dialect's).
    MySql,
}

impl Family {
    pub const fn name(self) -> &'static str {
        match self {
            Family::Postgres => "PostgreSQL",
            Family::MySql => "MySQL/MariaDB",
        }
    }
}

/// What an error means to a caller deciding whether to try again. Each driver maps its server's codes to these
/// (PostgreSQL: 55P03, 40P01, 40001, 57014, class 08 and the shutdown codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The connection is gone (closed socket, server restarting): reconnect and continue from the checkpoint.
    ConnectionLost,
    /// A lock was not granted within the lock timeout.
    LockTimeout,
    Deadlock,
    SerializationFailure,
    /// The statement ran past its statement timeout (or was cancelled).
    StatementTimeout,
    /// A unique constraint refused a row (another session inserted the same key first).
    UniqueViolation,
    /// Anything else: a retry would fail the same way.
    Other,
}

impl ErrorClass {
    /// A lock conflict of some kind: retry the same work later, smaller.
    pub fn is_lock_conflict(self) -> bool {
        matches!(
            self,
            ErrorClass::LockTimeout | ErrorClass::Deadlock | ErrorClass::SerializationFailure
        )
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorClass::ConnectionLost => "connection_lost",
            ErrorClass::LockTimeout => "lock_timeout",
            ErrorClass::Deadlock => "deadlock",
            ErrorClass::SerializationFailure => "serialization_failure",
            ErrorClass::StatementTimeout => "statement_timeout",
            ErrorClass::UniqueViolation => "unique_violation",
            ErrorClass::Other => "error",
        }
    }
}

/// A parameter or a column value crossing the seam. The engine's own queries produce and consume only these:
/// keys as text (cast in SQL to the key's type), counts as integers, arrays of text for composite keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    TextList(Vec<String>),
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}

impl From<Vec<String>> for Value {
    fn from(v: Vec<String>) -> Self {
        Value::TextList(v)
    }
}
impl From<&[String]> for Value {
    fn from(v: &[String]) -> Self {
        Value::TextList(v.to_vec())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A column's value could not be read as the type asked for: the query and its reader disagree. A bug in
/// tidegate, reported with the column's name rather than a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {problem}")]
pub struct RowError {
    pub column: String,
    pub problem: String,
}

impl From<RowError> for DbError {
    fn from(error: RowError) -> Self {
        DbError::other("reading a result row", error.to_string())
    }
}

/// Rust types a column can be read as.
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> Result<Self, String>;
}

fn mismatch(value: &Value, wanted: &str) -> String {
    format!("is {value:?}, not {wanted}")
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Bool(v) => Ok(*v),
            // MySQL has no boolean type: its BOOLEAN is TINYINT(1), and a comparison yields 0 or 1.
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            other => Err(mismatch(other, "a boolean")),
        }
    }
}
impl FromValue for i64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Int(v) => Ok(*v),
            other => Err(mismatch(other, "an integer")),
        }
    }
}
impl FromValue for i32 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Int(v) => i32::try_from(*v).map_err(|_| format!("{v} does not fit an int4")),
            other => Err(mismatch(other, "an integer")),
        }
    }
}
impl FromValue for u32 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Int(v) => u32::try_from(*v).map_err(|_| format!("{v} does not fit a u32")),
            other => Err(mismatch(other, "an integer")),
        }
    }
}
impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Float(v) => Ok(*v),
            Value::Int(v) => Ok(*v as f64),
            other => Err(mismatch(other, "a number")),
        }
    }
}
impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Text(v) => Ok(v.clone()),
            other => Err(mismatch(other, "text")),
        }
    }
}
impl FromValue for Vec<String> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::TextList(v) => Ok(v.clone()),
            // MySQL has no arrays: a list of text crosses as the text of its JSON array (see
            // `mysql::to_mysql`), and is stored and read back as that text.
            Value::Text(text) => serde_json::from_str(text)
                .map_err(|_| mismatch(value, "an array of text (or its JSON text)")),
            other => Err(mismatch(other, "an array of text")),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// One result row, owned, with its column names.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    pub fn new(names: Arc<[String]>, values: Vec<Value>) -> Self {
        Self { names, values }
    }

    /// The column `name`, read as `T`. A missing column or a type mismatch is a [`RowError`].
    pub fn get<T: FromValue>(&self, name: &str) -> Result<T, RowError> {
        let index = self
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| RowError {
                column: name.to_string(),
                problem: format!("not in the result (columns: {})", self.names.join(", ")),
            })?;
        T::from_value(&self.values[index]).map_err(|problem| RowError {
            column: name.to_string(),
            problem,
        })
    }

    /// Every column, in order, read as text: a key tuple.
    pub fn texts(&self) -> Result<Vec<String>, RowError> {
        self.names
            .iter()
            .zip(&self.values)
            .map(|(name, value)| {
                String::from_value(value).map_err(|problem| RowError {
                    column: name.clone(),
                    problem,
                })
            })
            .collect()
    }

    pub fn columns(&self) -> &[String] {
        &self.names
    }
}

/// A statement prepared on one session; valid only there. The driver keeps its own handle inside.
pub struct Prepared {
    sql: String,
    handle: Box<dyn Any + Send + Sync>,
}

impl Prepared {
    pub fn new(sql: impl Into<String>, handle: Box<dyn Any + Send + Sync>) -> Self {
        Self {
            sql: sql.into(),
            handle,
        }
    }

    pub fn sql(&self) -> &str {
        &self.sql
    }

    pub fn handle<T: 'static>(&self) -> Option<&T> {
        self.handle.downcast_ref()
    }
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared").field("sql", &self.sql).finish()
    }
}

/// What to run: SQL text (prepared on the fly) or a statement prepared on this session.
#[derive(Debug, Clone, Copy)]
pub enum Query<'a> {
    Text(&'a str),
    Prepared(&'a Prepared),
}

impl<'a> From<&'a str> for Query<'a> {
    fn from(sql: &'a str) -> Self {
        Query::Text(sql)
    }
}
impl<'a> From<&'a String> for Query<'a> {
    fn from(sql: &'a String) -> Self {
        Query::Text(sql)
    }
}
impl<'a> From<&'a Prepared> for Query<'a> {
    fn from(statement: &'a Prepared) -> Self {
        Query::Prepared(statement)
    }
}

impl Query<'_> {
    pub fn sql(&self) -> &str {
        match self {
            Query::Text(sql) => sql,
            Query::Prepared(p) => p.sql(),
        }
    }
}

/// Asks the server to cancel what a session is running, from another task.
#[async_trait]
pub trait CancelHandle: Send + Sync {
    async fn cancel(&self) -> Result<(), DbError>;
}

/// A connection to a database, as the engine and the state schema use it.
#[async_trait]
pub trait Session: Send + Sync {
    fn family(&self) -> Family;
    /// Runs one or more statements without parameters or results (settings, BEGIN/COMMIT, DDL).
    async fn batch_execute(&self, sql: &str) -> Result<(), DbError>;
    /// Runs a statement; returns the rows it changed.
    async fn execute(&self, query: Query<'_>, params: &[Value]) -> Result<u64, DbError>;
    /// Runs a query; returns its rows.
    async fn query(&self, query: Query<'_>, params: &[Value]) -> Result<Vec<Row>, DbError>;
    /// Prepares a statement on this session, for a loop that runs it many times.
    async fn prepare(&self, sql: &str) -> Result<Prepared, DbError>;
    /// Runs the user's SQL text (a `--probe-sql`, a `--throttle-query`) whatever its result types, and returns
    /// its rows' values as the server prints them (`None` for NULL).
    async fn query_text(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, DbError>;
    fn cancel_handle(&self) -> Box<dyn CancelHandle>;
    /// True once the connection is known to be gone.
    fn is_closed(&self) -> bool;
}

/// Conveniences over any [`Session`].
#[async_trait]
pub trait SessionExt: Session {
    /// Exactly one row, else an error naming the query.
    async fn query_one<'q, Q: Into<Query<'q>> + Send>(
        &self,
        query: Q,
        params: &[Value],
    ) -> Result<Row, DbError> {
        let query = query.into();
        let sql = query.sql().to_string();
        let mut rows = self.query(query, params).await?;
        match rows.len() {
            1 => Ok(rows.remove(0)),
            n => Err(DbError::other(
                "reading a result",
                format!("expected one row, got {n}, from: {sql}"),
            )),
        }
    }

    /// At most one row.
    async fn query_opt<'q, Q: Into<Query<'q>> + Send>(
        &self,
        query: Q,
        params: &[Value],
    ) -> Result<Option<Row>, DbError> {
        let query = query.into();
        let sql = query.sql().to_string();
        let mut rows = self.query(query, params).await?;
        match rows.len() {
            0 => Ok(None),
            1 => Ok(Some(rows.remove(0))),
            n => Err(DbError::other(
                "reading a result",
                format!("expected at most one row, got {n}, from: {sql}"),
            )),
        }
    }

    async fn run<'q, Q: Into<Query<'q>> + Send>(
        &self,
        query: Q,
        params: &[Value],
    ) -> Result<u64, DbError> {
        self.execute(query.into(), params).await
    }

    async fn rows<'q, Q: Into<Query<'q>> + Send>(
        &self,
        query: Q,
        params: &[Value],
    ) -> Result<Vec<Row>, DbError> {
        self.query(query.into(), params).await
    }
}

impl<S: Session + ?Sized> SessionExt for S {}

/// Opens sessions to one target; engines hold one to reconnect.
#[async_trait]
pub trait Driver: Send + Sync {
    fn family(&self) -> Family;
    async fn open(&self) -> Result<Box<dyn Session>, DbError>;
}

#[async_trait]
impl Driver for ConnectionConfig {
    fn family(&self) -> Family {
        Family::Postgres
    }

    async fn open(&self) -> Result<Box<dyn Session>, DbError> {
        Ok(Box::new(self.connect().await?))
    }
}

// ---- PostgreSQL, on tokio-postgres ------------------------------------------------------------------------------

/// A parameter binds to the type PostgreSQL inferred for its placeholder.
impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut tokio_postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Bool(v) => v.to_sql(ty, out),
            Value::Int(v) => match *ty {
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::OID => u32::try_from(*v)?.to_sql(ty, out),
                Type::FLOAT8 => (*v as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::NAME | Type::UNKNOWN => {
                    v.to_string().to_sql(ty, out)
                }
                _ => v.to_sql(ty, out),
            },
            Value::Float(v) => match *ty {
                Type::FLOAT4 => (*v as f32).to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Value::Text(v) => v.to_sql(ty, out),
            Value::TextList(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        bool::accepts(ty)
            || i64::accepts(ty)
            || i32::accepts(ty)
            || i16::accepts(ty)
            || u32::accepts(ty)
            || f64::accepts(ty)
            || f32::accepts(ty)
            || String::accepts(ty)
            || Vec::<String>::accepts(ty)
    }

    to_sql_checked!();
}

fn pg_value(row: &tokio_postgres::Row, index: usize) -> Result<Value, tokio_postgres::Error> {
    let ty = row.columns()[index].type_();
    Ok(match *ty {
        Type::BOOL => row.try_get::<_, Option<bool>>(index)?.map(Value::Bool),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(index)?
            .map(|v| Value::Int(v.into())),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(index)?
            .map(|v| Value::Int(v.into())),
        Type::INT8 => row.try_get::<_, Option<i64>>(index)?.map(Value::Int),
        Type::OID => row
            .try_get::<_, Option<u32>>(index)?
            .map(|v| Value::Int(v.into())),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(index)?
            .map(|v| Value::Float(v.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(index)?.map(Value::Float),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::NAME_ARRAY => row
            .try_get::<_, Option<Vec<String>>>(index)?
            .map(Value::TextList),
        // text, varchar, name, char, unknown, and any type whose binary form is text (enums).
        _ => row.try_get::<_, Option<String>>(index)?.map(Value::Text),
    }
    .unwrap_or(Value::Null))
}

fn pg_rows(rows: Vec<tokio_postgres::Row>, context: &str) -> Result<Vec<Row>, DbError> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let names: Arc<[String]> = first
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    rows.iter()
        .map(|row| {
            (0..row.len())
                .map(|i| pg_value(row, i))
                .collect::<Result<Vec<_>, _>>()
                .map(|values| Row::new(names.clone(), values))
                .map_err(|e| DbError::new(context.to_string(), &e))
        })
        .collect()
}

fn params_ref(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

fn context_of(query: &Query<'_>) -> String {
    let sql = query.sql();
    let head: String = sql.split_whitespace().take(6).collect::<Vec<_>>().join(" ");
    format!("running `{head}…`")
}

struct PgCancel(tokio_postgres::CancelToken);

#[async_trait]
impl CancelHandle for PgCancel {
    async fn cancel(&self) -> Result<(), DbError> {
        self.0
            .cancel_query(tokio_postgres::NoTls)
            .await
            .map_err(|e| DbError::new("cancelling a statement", &e))
    }
}

macro_rules! pg_session {
    ($ty:ty) => {
        #[async_trait]
        impl Session for $ty {
            fn family(&self) -> Family {
                Family::Postgres
            }

            async fn batch_execute(&self, sql: &str) -> Result<(), DbError> {
                tokio_postgres::GenericClient::batch_execute(self, sql)
                    .await
                    .map_err(|e| DbError::new(context_of(&Query::Text(sql)), &e))
            }

            async fn execute(&self, query: Query<'_>, params: &[Value]) -> Result<u64, DbError> {
                let params = params_ref(params);
                let result = match query {
                    Query::Text(sql) => {
                        tokio_postgres::GenericClient::execute(self, sql, &params).await
                    }
                    Query::Prepared(p) => match p.handle::<tokio_postgres::Statement>() {
                        Some(statement) => {
                            tokio_postgres::GenericClient::execute(self, statement, &params).await
                        }
                        None => return Err(foreign_statement(p)),
                    },
                };
                result.map_err(|e| DbError::new(context_of(&query), &e))
            }

            async fn query(&self, query: Query<'_>, params: &[Value]) -> Result<Vec<Row>, DbError> {
                let params = params_ref(params);
                let result = match query {
                    Query::Text(sql) => {
                        tokio_postgres::GenericClient::query(self, sql, &params).await
                    }
                    Query::Prepared(p) => match p.handle::<tokio_postgres::Statement>() {
                        Some(statement) => {
                            tokio_postgres::GenericClient::query(self, statement, &params).await
                        }
                        None => return Err(foreign_statement(p)),
                    },
                };
                let context = context_of(&query);
                pg_rows(
                    result.map_err(|e| DbError::new(context.clone(), &e))?,
                    &context,
                )
            }

            async fn prepare(&self, sql: &str) -> Result<Prepared, DbError> {
                let statement = tokio_postgres::GenericClient::prepare(self, sql)
                    .await
                    .map_err(|e| DbError::new(format!("preparing `{sql}`"), &e))?;
                Ok(Prepared::new(sql, Box::new(statement)))
            }

            async fn query_text(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, DbError> {
                let messages = tokio_postgres::GenericClient::client(self)
                    .simple_query(sql)
                    .await
                    .map_err(|e| DbError::new(context_of(&Query::Text(sql)), &e))?;
                Ok(messages
                    .iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                            (0..row.len())
                                .map(|i| row.get(i).map(str::to_string))
                                .collect(),
                        ),
                        _ => None,
                    })
                    .collect())
            }

            fn cancel_handle(&self) -> Box<dyn CancelHandle> {
                Box::new(PgCancel(
                    tokio_postgres::GenericClient::client(self).cancel_token(),
                ))
            }

            fn is_closed(&self) -> bool {
                tokio_postgres::GenericClient::client(self).is_closed()
            }
        }
    };
}

fn foreign_statement(p: &Prepared) -> DbError {
    DbError::other(
        "running a prepared statement",
        format!("the statement was prepared by another driver: {}", p.sql()),
    )
}

pg_session!(tokio_postgres::Client);
pg_session!(tokio_postgres::Transaction<'_>);
