//! The MySQL/MariaDB dialect: every SQL string the engine sends to a MySQL-family server, beside PostgreSQL's in
//! [`crate::dialect`]. Checked against MariaDB 10.11 (tests/backfill_mysql.rs); MySQL 8.0 has every statement
//! used here (`FOR UPDATE SKIP LOCKED`, `GET_LOCK` with several locks per session, expression defaults) except
//! where a comment says otherwise.
//!
//! How it keeps the engine's guarantees on InnoDB:
//! - Every engine session runs under **READ COMMITTED** (`SET SESSION TRANSACTION ISOLATION LEVEL`): a batch's
//!   locking reads take no gap or next-key locks, so application INSERTs at the table's end and UPDATEs beside
//!   the range never wait on it (under REPEATABLE READ they wait and fail with 1205). Each batch sets a short
//!   `innodb_lock_wait_timeout` and `lock_wait_timeout` (seconds: MySQL's granularity, at least 1 s) and, on
//!   MariaDB, `max_statement_time`.
//! - **Keyset bounds** in the expanded form `(a > ? OR (a = ? AND b > ?))`, which the range optimiser turns into
//!   index ranges (row comparisons `(a, b) > (?, ?)` it may not). Placeholders are positional, so
//!   [`MySql::bound_params`] repeats a key column's value where the text compares it twice. Keys travel as text
//!   and are converted in SQL to the column's type (`CAST(? AS SIGNED)`, `UNHEX(?)` for binary keys, which are
//!   read out as hex), so a stored cursor means the same row on every reconnect.
//! - The batch's change and its **checkpoint commit together**: the state lives in InnoDB tables of a `tidegate`
//!   database on the same server. Chunk candidates are read `FOR UPDATE SKIP LOCKED` and a chunk is owned by a
//!   session-level `GET_LOCK`, released when the connection dies, like PostgreSQL's advisory lock.
//! - Health: blocked sessions from `information_schema.INNODB_LOCK_WAITS`, active sessions from the process
//!   list (what `Threads_running` counts, less our own sessions), the oldest transaction from `INNODB_TRX`; each
//!   needs the PROCESS privilege, and a read that fails is unknown, so the run waits (fail closed).
//!
//! - Replica lag: a primary cannot see its replicas' lag, so it is read on each replica given with `--replica`
//!   (`SHOW REPLICA STATUS`, MariaDB 10.5.1+ / MySQL 8.0.22+; `SHOW SLAVE STATUS` when the server refuses that
//!   spelling with error 1064), from `Seconds_Behind_Source` / `Seconds_Behind_Master`. NULL (an I/O or SQL
//!   thread not running) is no reading: the run waits (fail closed). Needs REPLICATION CLIENT (MySQL) or SLAVE
//!   MONITOR / REPLICA MONITOR (MariaDB 10.5+) on the replica.
//!
//! What is not here: the horizon holder (InnoDB's purge gains nothing from a held snapshot: it is off), lag on
//! the primary (none to read: see above), the WAL position (none), and `RETURNING` (the run's id comes from
//! `LAST_INSERT_ID()`).

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use tidegate_db::blockers::LockHolder;
use tidegate_db::connect::DbError;
use tidegate_db::driver::{Family, Row, Session, SessionExt, Value};

use crate::dialect::{
    BatchShape, ColumnInfo, Dialect, HealthSources, HorizonSql, OldestTransaction, ReplicaLag,
    ReplicaState, StateSql, TableKind, TableRef, UniqueIndex, Writability,
};
use crate::spec::Operation;

/// MySQL and MariaDB.
#[derive(Debug, Clone, Copy, Default)]
pub struct MySql;

/// How a key column's text crosses into SQL and back out.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyForm {
    /// Converted by a cast (`SIGNED`, `DECIMAL(10,2)`, `DATETIME(6)`…), read out as `CAST(… AS CHAR)`.
    Cast(String),
    /// Bytes: read out as hex, converted back by `UNHEX`.
    Hex,
    /// Text compared in the column's own collation, read out as it is.
    Plain,
}

fn key_form(type_name: &str) -> KeyForm {
    let ty = type_name.trim().to_ascii_lowercase();
    let base = ty.split(['(', ' ']).next().unwrap_or_default();
    let unsigned = ty.contains("unsigned");
    let args = ty.find('(').and_then(|open| {
        ty[open..]
            .find(')')
            .map(|close| &ty[open..open + close + 1])
    });
    match base {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" => {
            KeyForm::Cast(if unsigned { "UNSIGNED" } else { "SIGNED" }.into())
        }
        "decimal" | "numeric" | "dec" | "fixed" => {
            KeyForm::Cast(format!("DECIMAL{}", args.unwrap_or("")))
        }
        "date" => KeyForm::Cast("DATE".into()),
        "datetime" | "timestamp" => KeyForm::Cast(format!("DATETIME{}", args.unwrap_or(""))),
        "time" => KeyForm::Cast(format!("TIME{}", args.unwrap_or(""))),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "bit" => {
            KeyForm::Hex
        }
        _ => KeyForm::Plain,
    }
}

impl MySql {
    fn qualified(&self, shape: &BatchShape) -> String {
        format!(
            "{}.{}",
            self.quote_ident(&shape.schema),
            self.quote_ident(&shape.table)
        )
    }

    fn key_list(&self, shape: &BatchShape, suffix: &str) -> String {
        shape
            .key_columns
            .iter()
            .map(|c| format!("{}{suffix}", self.quote_ident(c)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn forms(shape: &BatchShape) -> Vec<KeyForm> {
        shape.key_types.iter().map(|t| key_form(t)).collect()
    }

    /// The key columns as text, aliased `key_0`, `key_1`… (so ORDER BY a column never means the text).
    fn key_texts(&self, shape: &BatchShape) -> String {
        shape
            .key_columns
            .iter()
            .zip(Self::forms(shape))
            .enumerate()
            .map(|(i, (c, form))| {
                let c = self.quote_ident(c);
                match form {
                    KeyForm::Cast(_) => format!("CAST({c} AS CHAR) AS key_{i}"),
                    KeyForm::Hex => format!("HEX({c}) AS key_{i}"),
                    KeyForm::Plain => format!("{c} AS key_{i}"),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn placeholder(form: &KeyForm) -> String {
        match form {
            KeyForm::Cast(ty) => format!("CAST(? AS {ty})"),
            KeyForm::Hex => "UNHEX(?)".into(),
            KeyForm::Plain => "?".into(),
        }
    }

    /// The key compared with one bound, expanded: `(a > ? OR (a = ? AND b > ?))`. `strict` is the operator on
    /// every column but the last (`>` or `<`), `last` the last column's (`>`, `>=`, `<=`).
    fn compare(&self, shape: &BatchShape, strict: &str, last: &str) -> String {
        let forms = Self::forms(shape);
        let columns: Vec<String> = shape
            .key_columns
            .iter()
            .map(|c| self.quote_ident(c))
            .collect();
        let n = columns.len();
        let mut text = format!(
            "{} {last} {}",
            columns[n - 1],
            Self::placeholder(&forms[n - 1])
        );
        for i in (0..n - 1).rev() {
            let p = Self::placeholder(&forms[i]);
            text = format!(
                "({c} {strict} {p} OR ({c} = {p} AND {text}))",
                c = columns[i]
            );
        }
        text
    }

    fn range(&self, shape: &BatchShape, has_lower: bool) -> String {
        let upper = self.compare(shape, "<", "<=");
        if has_lower {
            format!("{} AND {upper}", self.compare(shape, ">", ">"))
        } else {
            upper
        }
    }

    /// One bound's values in the order [`MySql::compare`] reads them: every column but the last twice.
    fn expand(key: &[String]) -> impl Iterator<Item = Value> + '_ {
        let n = key.len();
        key.iter().enumerate().flat_map(move |(i, v)| {
            let times = if i + 1 < n { 2 } else { 1 };
            std::iter::repeat_n(Value::Text(v.clone()), times)
        })
    }
}

/// The `sql_mode` flags under which the server would read `--set`/`--where` otherwise than sqlparser's MySQL
/// dialect did (`sql_mode` is a comma-separated set; combination modes are shown expanded, plus their own name):
/// NO_BACKSLASH_ESCAPES ends strings at a backslash-quote, MariaDB's ORACLE mode is another parser.
fn sql_mode_mismatch(sql_mode: &str) -> Option<String> {
    let differing: Vec<&str> = sql_mode
        .split(',')
        .map(str::trim)
        .filter(|flag| {
            ["NO_BACKSLASH_ESCAPES", "ORACLE"]
                .iter()
                .any(|f| flag.eq_ignore_ascii_case(f))
        })
        .collect();
    (!differing.is_empty()).then(|| {
        format!(
            "the session's sql_mode has {}, under which the server reads --set/--where otherwise than tidegate \
             checked them (MySQL's default string and name rules); run with a role or server whose sql_mode \
             leaves {} out",
            differing.join(", "),
            if differing.len() == 1 { "it" } else { "them" }
        )
    })
}

/// Seconds as MySQL's lock timeouts take them: whole, at least one.
fn whole_seconds(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

/// Our session ids as the text `FIND_IN_SET` reads (`12,15`).
fn id_list(ours: &[i32]) -> Value {
    Value::Text(
        ours.iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// `schema.table`, `table`, with optional backquotes, into (schema, table). `None` when it is not a name.
fn split_name(name: &str) -> Option<(Option<String>, String)> {
    let mut parts: Vec<String> = Vec::new();
    let mut chars = name.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'`') {
            chars.next();
            loop {
                match chars.next()? {
                    '`' if chars.peek() == Some(&'`') => {
                        chars.next();
                        part.push('`');
                    }
                    '`' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if c.is_whitespace() || c == '`' {
                    return None;
                }
                part.push(c);
                chars.next();
            }
        }
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        match chars.next() {
            None => break,
            Some('.') => continue,
            Some(_) => return None,
        }
    }
    match parts.len() {
        1 => Some((None, parts.remove(0))),
        2 => {
            let table = parts.remove(1);
            Some((Some(parts.remove(0)), table))
        }
        _ => None,
    }
}

#[async_trait]
impl Dialect for MySql {
    fn family(&self) -> Family {
        Family::MySql
    }

    fn quote_ident(&self, ident: &str) -> String {
        format!("`{}`", ident.replace('`', "``"))
    }

    fn batch_settings(&self, lock_timeout: Duration, statement_timeout: Duration) -> String {
        // MariaDB's max_statement_time in an executable comment only MariaDB runs; MySQL's max_execution_time
        // bounds SELECTs only, so a MySQL batch is bounded by its lock waits.
        format!(
            "SET SESSION innodb_lock_wait_timeout = {lock}, lock_wait_timeout = {lock} \
             /*M!, max_statement_time = {statement:.3} */",
            lock = whole_seconds(lock_timeout),
            statement = statement_timeout.as_secs_f64().max(0.001)
        )
    }

    fn batch_upper_bound(&self, shape: &BatchShape, has_lower: bool) -> String {
        format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT 1 OFFSET ?",
            self.key_texts(shape),
            self.qualified(shape),
            self.range(shape, has_lower),
            self.key_list(shape, "")
        )
    }

    fn batch_key_count(&self, shape: &BatchShape, has_lower: bool) -> String {
        format!(
            "SELECT count(*) AS `keys` FROM {} WHERE {}",
            self.qualified(shape),
            self.range(shape, has_lower)
        )
    }

    fn batch_change(&self, shape: &BatchShape, has_lower: bool) -> String {
        let range = self.range(shape, has_lower);
        // The user's text sits on lines of its own so a trailing `--` or `#` comment cannot swallow the bound.
        let predicate = match &shape.predicate {
            Some(p) => format!(" AND (\n{p}\n)"),
            None => String::new(),
        };
        match &shape.operation {
            Operation::Update { set } => format!(
                "UPDATE {} SET\n{set}\nWHERE {range}{predicate}",
                self.qualified(shape)
            ),
            Operation::Delete => format!(
                "DELETE FROM {}\nWHERE {range}{predicate}",
                self.qualified(shape)
            ),
        }
    }

    fn bound_params(
        &self,
        _shape: &BatchShape,
        lower: Option<&[String]>,
        upper: &[String],
        offset: Option<u64>,
    ) -> Vec<Value> {
        let mut params: Vec<Value> = Vec::new();
        if let Some(lower) = lower {
            params.extend(Self::expand(lower));
        }
        params.extend(Self::expand(upper));
        if let Some(offset) = offset {
            // LIMIT and OFFSET placeholders take integers only.
            params.push(Value::Int(offset.min(i64::MAX as u64) as i64));
        }
        params
    }

    fn probe_params(&self, _shape: &BatchShape, key: &[String]) -> Vec<Value> {
        Self::expand(key).collect()
    }

    fn check_change(&self, shape: &BatchShape, sql: &str) -> Result<(), String> {
        // The SET and WHERE were checked as an assignment list and an expression; MySQL also runs the text of
        // `/*! … */` and `/*M! … */` comments (sqlparser reads the first, not MariaDB's second), so both are
        // refused: text that only one of the two reads as SQL is not text to run.
        let texts = [shape.operation.set(), shape.predicate.as_deref()];
        for text in texts.into_iter().flatten() {
            let lower = text.to_ascii_lowercase();
            if lower.contains("/*!") || lower.contains("/*m!") {
                return Err(
                    "executable comments (/*! … */, /*M! … */) are SQL MySQL runs; write the expression itself"
                        .into(),
                );
            }
        }
        tidegate_sql::mysql::fragment::bounded_change(
            sql,
            matches!(shape.operation, Operation::Delete),
        )
    }

    fn health_sources(&self) -> HealthSources {
        HealthSources {
            blocked: "information_schema.INNODB_LOCK_WAITS",
            replica_lag: Some("SHOW REPLICA STATUS on each --replica"),
            active: "sessions running a statement (Threads_running, less ours)",
        }
    }

    fn key_min(&self, shape: &BatchShape) -> String {
        format!(
            "SELECT {} FROM {} ORDER BY {} LIMIT 1",
            self.key_texts(shape),
            self.qualified(shape),
            self.key_list(shape, "")
        )
    }

    fn key_max(&self, shape: &BatchShape) -> String {
        format!(
            "SELECT {} FROM {} ORDER BY {} LIMIT 1",
            self.key_texts(shape),
            self.qualified(shape),
            self.key_list(shape, " DESC")
        )
    }

    fn default_probe(&self, shape: &BatchShape) -> String {
        format!(
            "SELECT 1 AS found FROM {} WHERE {} ORDER BY {} LIMIT 1",
            self.qualified(shape),
            self.compare(shape, ">", ">="),
            self.key_list(shape, "")
        )
    }

    fn write_probe(&self, shape: &BatchShape) -> String {
        // Locks the row the way an application's UPDATE of it would; READ COMMITTED (the session's), so no gap.
        format!(
            "SELECT 1 AS locked FROM {} WHERE {} ORDER BY {} LIMIT 1 FOR UPDATE",
            self.qualified(shape),
            self.compare(shape, ">", ">="),
            self.key_list(shape, "")
        )
    }

    fn write_probe_begin(&self, lock_timeout: Duration) -> String {
        format!(
            "SET SESSION innodb_lock_wait_timeout = {}; START TRANSACTION",
            whole_seconds(lock_timeout)
        )
    }

    fn write_probe_end(&self) -> &'static str {
        "ROLLBACK"
    }

    fn horizon(&self) -> Option<&'static HorizonSql> {
        None
    }

    fn session_settings(&self, lock_timeout: Duration, statement_timeout: Duration) -> String {
        format!(
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; \
             SET SESSION innodb_lock_wait_timeout = {lock}, lock_wait_timeout = {lock} \
             /*M!, max_statement_time = {statement:.3} */ /*M!100300 , idle_transaction_timeout = 60 */",
            lock = whole_seconds(lock_timeout),
            statement = statement_timeout.as_secs_f64().max(0.001)
        )
    }

    fn state(&self) -> &StateSql {
        &MYSQL_STATE
    }

    async fn resolve_table(
        &self,
        s: &dyn Session,
        name: &str,
    ) -> Result<Option<TableRef>, DbError> {
        let Some((schema, table)) = split_name(name) else {
            return Ok(None);
        };
        let Some(row) = s
            .query_opt(catalog::RESOLVE_TABLE, &[schema.into(), table.into()])
            .await?
        else {
            return Ok(None);
        };
        let table_type: String = row.get("table_type")?;
        let engine: Option<String> = row.get("engine")?;
        let kind = match (table_type.as_str(), engine.as_deref()) {
            ("BASE TABLE", Some(e)) if e.eq_ignore_ascii_case("InnoDB") => TableKind::Table,
            ("BASE TABLE", e) => TableKind::Other(format!(
                "engine {}: not transactional, so a batch and its checkpoint cannot commit together; \
                 only InnoDB tables can be backfilled",
                e.unwrap_or("unknown")
            )),
            (other, _) => TableKind::Other(other.to_string()),
        };
        Ok(Some(TableRef {
            id: 0,
            schema: row.get("schema_name")?,
            name: row.get("table_name")?,
            kind,
            estimated_rows: row.get("table_rows")?,
            // MySQL's privileges come from several grant levels; preparing the batch statement (which the
            // engine does before any row changes) is where the server refuses one the user lacks.
            may_update: true,
            may_delete: true,
        }))
    }

    async fn columns(&self, s: &dyn Session, table: &TableRef) -> Result<Vec<ColumnInfo>, DbError> {
        s.rows(
            catalog::COLUMNS,
            &[(&table.schema).into(), (&table.name).into()],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(ColumnInfo {
                name: r.get("name")?,
                type_name: r.get("type")?,
                not_null: r.get("not_null")?,
            })
        })
        .collect()
    }

    async fn unique_indexes(
        &self,
        s: &dyn Session,
        table: &TableRef,
    ) -> Result<Vec<UniqueIndex>, DbError> {
        let rows = s
            .rows(
                catalog::UNIQUE_INDEX_COLUMNS,
                &[(&table.schema).into(), (&table.name).into()],
            )
            .await?;
        let mut indexes: Vec<UniqueIndex> = Vec::new();
        for r in &rows {
            let name: String = r.get("index_name")?;
            // A functional key part has no column name; a prefix (`SUB_PART`) does not order whole values.
            let column: Option<String> = r.get("column_name")?;
            let prefix: Option<i64> = r.get("sub_part")?;
            let nullable: bool = r.get("nullable")?;
            let btree: bool = r.get("btree")?;
            let index = match indexes.iter_mut().find(|ix| ix.name == name) {
                Some(index) => index,
                None => {
                    indexes.push(UniqueIndex {
                        primary: name == "PRIMARY",
                        name,
                        columns: Vec::new(),
                        all_not_null: true,
                        usable: true,
                    });
                    indexes.last_mut().expect("just pushed")
                }
            };
            index.all_not_null &= !nullable && column.is_some();
            index.usable &= btree && prefix.is_none() && column.is_some();
            index.columns.push(column.unwrap_or_default());
        }
        indexes.sort_by_key(|ix| !ix.primary);
        Ok(indexes)
    }

    async fn writable(&self, s: &dyn Session) -> Result<Writability, DbError> {
        let row = s.query_one(catalog::WRITABLE, &[]).await?;
        Ok(Writability {
            in_recovery: false,
            read_only: row.get("read_only")?,
        })
    }

    async fn grammar_mismatch(&self, s: &dyn Session) -> Result<Option<String>, DbError> {
        let row = s.query_one(catalog::SQL_MODE, &[]).await?;
        let mode: String = row.get("sql_mode")?;
        Ok(sql_mode_mismatch(&mode))
    }

    async fn backend_pid(&self, s: &dyn Session) -> Result<i32, DbError> {
        Ok(s.query_one(catalog::BACKEND_PID, &[]).await?.get("pid")?)
    }

    async fn blocked_by_us(&self, s: &dyn Session, ours: &[i32]) -> Result<u32, DbError> {
        let row = s
            .query_one(health::BLOCKED_BY_US, &[id_list(ours), id_list(ours)])
            .await?;
        Ok(row.get::<i64>("blocked")?.max(0) as u32)
    }

    async fn replica_lag(&self, _s: &dyn Session) -> Result<ReplicaLag, DbError> {
        // A MySQL primary does not know its replicas' lag (PostgreSQL's pg_stat_replication does): it is read
        // on each replica (SHOW REPLICA STATUS), which the engine has no connection to. Not watched.
        Ok(ReplicaLag {
            replicas: 0,
            hidden: 0,
            max_lag: Duration::ZERO,
        })
    }

    fn reads_lag_on_replicas(&self) -> bool {
        true
    }

    async fn replica_state(&self, s: &dyn Session) -> Result<ReplicaState, DbError> {
        // The new spelling first; a server older than MariaDB 10.5.1 / MySQL 8.0.22 refuses it as a syntax error.
        let rows = match s.rows(replica::SHOW_REPLICA_STATUS, &[]).await {
            Err(e) if e.server_code == Some(1064) => {
                s.rows(replica::SHOW_SLAVE_STATUS, &[]).await?
            }
            other => other?,
        };
        replica_state_of(&rows)
    }

    async fn active_backends(&self, s: &dyn Session, ours: &[i32]) -> Result<u32, DbError> {
        let row = s
            .query_one(health::ACTIVE_SESSIONS, &[id_list(ours)])
            .await?;
        Ok(row.get::<i64>("active")?.max(0) as u32)
    }

    async fn oldest_transaction(
        &self,
        s: &dyn Session,
        ours: &[i32],
    ) -> Result<Option<OldestTransaction>, DbError> {
        let Some(row) = s
            .query_opt(health::OLDEST_TRANSACTION, &[id_list(ours)])
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(OldestTransaction {
            pid: row.get("pid")?,
            age: Duration::from_secs_f64(row.get::<f64>("age_seconds")?.max(0.0)),
        }))
    }

    async fn wal_position(&self, _s: &dyn Session) -> Result<Option<String>, DbError> {
        Ok(None)
    }

    async fn lock_holders(
        &self,
        s: &dyn Session,
        _shape: &BatchShape,
        ours: &[i32],
    ) -> Result<Vec<LockHolder>, DbError> {
        // INNODB_TRX says how many rows a transaction locks, not on which table: the oldest transactions
        // holding row locks are the likely blockers.
        s.rows(health::LOCK_HOLDERS, &[id_list(ours)])
            .await?
            .iter()
            .map(|r| {
                Ok(LockHolder {
                    pid: r.get("pid")?,
                    application_name: String::new(),
                    user: r.get("user_name")?,
                    state: r.get("state")?,
                    transaction_age_seconds: r.get("transaction_age_seconds")?,
                    query: r.get("query")?,
                    mode: None,
                    granted: true,
                })
            })
            .collect()
    }
}

/// The first of `names` the row has, as text (`None`: NULL, or no such column).
fn column_text(row: &Row, names: &[&str]) -> Result<Option<String>, DbError> {
    match names.iter().find(|n| row.columns().iter().any(|c| c == *n)) {
        Some(name) => Ok(row.get::<Option<String>>(name)?),
        None => Ok(None),
    }
}

/// The first of `names` the row has, as whole seconds (`None`: NULL, or no such column). The binary protocol
/// sends a number, the text protocol its digits.
fn column_seconds(row: &Row, names: &[&str]) -> Result<Option<u64>, DbError> {
    let Some(name) = names.iter().find(|n| row.columns().iter().any(|c| c == *n)) else {
        return Ok(None);
    };
    if let Ok(value) = row.get::<Option<i64>>(name) {
        return Ok(value.map(|v| v.max(0) as u64));
    }
    match row.get::<Option<String>>(name)? {
        None => Ok(None),
        Some(text) => text.trim().parse().map(Some).map_err(|_| {
            DbError::other(
                "reading replica lag",
                format!("{name} is {text:?}, not a number of seconds"),
            )
        }),
    }
}

/// A replica's state from its status rows (one per replication channel): the largest lag, or the first channel
/// whose lag is NULL. MySQL 8.0.22+ names the columns `…Source`/`Replica_…`; MariaDB keeps `…Master`/`Slave_…`.
fn replica_state_of(rows: &[Row]) -> Result<ReplicaState, DbError> {
    if rows.is_empty() {
        return Ok(ReplicaState::NotReplica);
    }
    let mut largest = Duration::ZERO;
    for row in rows {
        match column_seconds(row, &["Seconds_Behind_Source", "Seconds_Behind_Master"])? {
            Some(seconds) => largest = largest.max(Duration::from_secs(seconds)),
            None => {
                let text = |names: &[&str]| -> Result<String, DbError> {
                    Ok(column_text(row, names)?.unwrap_or_default())
                };
                let last_error = [
                    text(&["Last_SQL_Error"])?,
                    text(&["Last_IO_Error"])?,
                    text(&["Last_Error"])?,
                ]
                .into_iter()
                .find(|e| !e.is_empty())
                .unwrap_or_default();
                return Ok(ReplicaState::Stopped {
                    io_running: text(&["Replica_IO_Running", "Slave_IO_Running"])?,
                    sql_running: text(&["Replica_SQL_Running", "Slave_SQL_Running"])?,
                    last_error,
                });
            }
        }
    }
    Ok(ReplicaState::Behind(largest))
}

/// Read on a replica (`--replica`): its replication status, one row per channel, none on a server that is not
/// a replica. Needs REPLICATION CLIENT (MySQL) or SLAVE MONITOR / REPLICA MONITOR (MariaDB 10.5+).
pub mod replica {
    /// MariaDB 10.5.1+, MySQL 8.0.22+.
    pub const SHOW_REPLICA_STATUS: &str = "SHOW REPLICA STATUS";
    /// Older servers (error 1064 on the statement above).
    pub const SHOW_SLAVE_STATUS: &str = "SHOW SLAVE STATUS";
}

/// Catalog queries (information_schema). Each column is named and read by name.
pub mod catalog {
    /// Parameters: the schema (NULL: the connection's database), the table name.
    pub const RESOLVE_TABLE: &str = "SELECT t.TABLE_SCHEMA AS schema_name, t.TABLE_NAME AS table_name, \
        t.TABLE_TYPE AS table_type, t.ENGINE AS engine, CAST(t.TABLE_ROWS AS SIGNED) AS table_rows \
        FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = coalesce(?, DATABASE()) AND t.TABLE_NAME = ?";

    /// Parameters: schema, table.
    pub const COLUMNS: &str = "SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type, IS_NULLABLE = 'NO' AS not_null \
        FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";

    /// Unique indexes' key parts, in index order. Parameters: schema, table.
    pub const UNIQUE_INDEX_COLUMNS: &str = "SELECT INDEX_NAME AS index_name, COLUMN_NAME AS column_name, \
        CAST(SUB_PART AS SIGNED) AS sub_part, NULLABLE = 'YES' AS nullable, INDEX_TYPE = 'BTREE' AS btree \
        FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
        ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX";

    /// Whether the server refuses writes (`read_only`: a replica, usually).
    pub const WRITABLE: &str = "SELECT @@global.read_only <> 0 AS read_only";
    pub const SQL_MODE: &str = "SELECT @@SESSION.sql_mode AS sql_mode";

    pub const BACKEND_PID: &str = "SELECT CAST(CONNECTION_ID() AS SIGNED) AS pid";
}

/// Health reads. Our own sessions are a comma-separated id list (`FIND_IN_SET`).
pub mod health {
    /// Sessions waiting on a row lock one of ours holds (our own workers waiting on each other do not count).
    /// Parameters: our ids, twice.
    pub const BLOCKED_BY_US: &str = "SELECT count(*) AS blocked FROM information_schema.INNODB_LOCK_WAITS w \
        JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id \
        JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id \
        WHERE FIND_IN_SET(b.trx_mysql_thread_id, ?) > 0 AND FIND_IN_SET(r.trx_mysql_thread_id, ?) = 0";

    /// Client sessions running a statement (what `Threads_running` counts), other than this one and ours.
    /// Parameter: our ids.
    pub const ACTIVE_SESSIONS: &str =
        "SELECT count(*) AS active FROM information_schema.PROCESSLIST \
        WHERE COMMAND NOT IN ('Sleep', 'Daemon', 'Binlog Dump', 'Binlog Dump GTID') \
        AND USER NOT IN ('system user', 'event_scheduler') \
        AND ID <> CONNECTION_ID() AND FIND_IN_SET(ID, ?) = 0";

    /// The oldest open InnoDB transaction other than ours. Parameter: our ids.
    pub const OLDEST_TRANSACTION: &str = "SELECT CAST(trx_mysql_thread_id AS SIGNED) AS pid, \
        TIMESTAMPDIFF(MICROSECOND, trx_started, NOW(6)) / 1e6 AS age_seconds \
        FROM information_schema.INNODB_TRX \
        WHERE trx_mysql_thread_id <> CONNECTION_ID() AND FIND_IN_SET(trx_mysql_thread_id, ?) = 0 \
        ORDER BY trx_started LIMIT 1";

    /// The oldest transactions other than ours holding row locks. Parameter: our ids.
    pub const LOCK_HOLDERS: &str = "SELECT CAST(t.trx_mysql_thread_id AS SIGNED) AS pid, \
        coalesce(p.USER, '') AS user_name, coalesce(p.COMMAND, '') AS state, \
        TIMESTAMPDIFF(MICROSECOND, t.trx_started, NOW(6)) / 1e6 AS transaction_age_seconds, \
        LEFT(coalesce(t.trx_query, p.INFO, ''), 120) AS query \
        FROM information_schema.INNODB_TRX t LEFT JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id \
        WHERE t.trx_rows_locked > 0 AND t.trx_mysql_thread_id <> CONNECTION_ID() \
        AND FIND_IN_SET(t.trx_mysql_thread_id, ?) = 0 ORDER BY t.trx_started LIMIT 3";
}

/// The `tidegate` state database: the same logical tables as PostgreSQL's `tidegate` schema (runs, chunks,
/// journal, migrations), InnoDB, times in UTC (`UTC_TIMESTAMP(6)` into `DATETIME(6)`), key tuples as the text
/// of a JSON array of text. Statements whose parameters the engine passes in an order their text cannot read
/// once each (MySQL's `?` are positional) read them from a one-row derived table `p`.
pub mod state {
    pub const BEGIN: &str = "BEGIN";
    pub const COMMIT: &str = "COMMIT";
    pub const ROLLBACK: &str = "ROLLBACK";

    pub const SCHEMA_VERSION: i32 = 1;

    /// MySQL's DDL commits on its own and cannot sit in a transaction, and a `GET_LOCK` would outlive it (it
    /// is the session's); instead every migration is idempotent (`IF NOT EXISTS`) and versions are recorded
    /// with `INSERT IGNORE`, so concurrent first uses both succeed.
    pub const MIGRATION_LOCK: &str = "DO 0";

    pub const CREATE_SCHEMA: &str = "CREATE DATABASE IF NOT EXISTS tidegate \
        DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin; \
        CREATE TABLE IF NOT EXISTS tidegate.schema_version (version INT NOT NULL PRIMARY KEY, \
        applied_at DATETIME(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6))) ENGINE=InnoDB";

    pub const CURRENT_VERSION: &str =
        "SELECT CAST(coalesce(max(version), 0) AS SIGNED) AS version \
        FROM tidegate.schema_version";

    pub const SCHEMA_EXISTS: &str =
        "SELECT count(*) > 0 AS present FROM information_schema.TABLES \
        WHERE TABLE_SCHEMA = 'tidegate' AND TABLE_NAME = 'schema_version'";

    pub const MIGRATIONS: &[&str] = &["
        CREATE TABLE IF NOT EXISTS tidegate.runs (
            id             BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            kind           VARCHAR(32) NOT NULL,
            spec           LONGTEXT NOT NULL,
            table_name     VARCHAR(300) NOT NULL,
            key_columns    TEXT NOT NULL,
            key_types      TEXT NOT NULL,
            key_min        TEXT,
            key_max        TEXT,
            frontier       TEXT,
            exhausted      BOOLEAN NOT NULL DEFAULT FALSE,
            next_chunk     INT NOT NULL DEFAULT 0,
            estimated_rows BIGINT,
            status         VARCHAR(16) NOT NULL
                CHECK (status IN ('running', 'throttled', 'paused', 'completed', 'failed', 'aborted')),
            status_reason  TEXT,
            control        VARCHAR(8) CHECK (control IN ('pause', 'abort')),
            started_at     DATETIME(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
            updated_at     DATETIME(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
            finished_at    DATETIME(6),
            last_error     TEXT,
            -- PostgreSQL's partial unique index: one unfinished run per spec (NULLs do not collide).
            unfinished_spec CHAR(32) AS (IF(status IN ('completed', 'aborted'), NULL, md5(spec))) STORED,
            UNIQUE KEY runs_one_unfinished_per_spec (unfinished_spec)
        ) ENGINE=InnoDB;
        CREATE TABLE IF NOT EXISTS tidegate.chunks (
            run_id       BIGINT NOT NULL,
            chunk_no     INT NOT NULL,
            lo           TEXT,
            hi           TEXT NOT NULL,
            `cursor`     TEXT,
            done         BOOLEAN NOT NULL DEFAULT FALSE,
            rows_done    BIGINT NOT NULL DEFAULT 0,
            rows_scanned BIGINT NOT NULL DEFAULT 0,
            batches      BIGINT NOT NULL DEFAULT 0,
            updated_at   DATETIME(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
            PRIMARY KEY (run_id, chunk_no),
            FOREIGN KEY (run_id) REFERENCES tidegate.runs (id) ON DELETE CASCADE
        ) ENGINE=InnoDB;
        CREATE TABLE IF NOT EXISTS tidegate.journal (
            id                BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            run_id            BIGINT,
            migration_version VARCHAR(255),
            at                DATETIME(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
            event             VARCHAR(64) NOT NULL,
            detail            LONGTEXT NOT NULL,
            KEY journal_by_run (run_id, id),
            KEY journal_by_migration (migration_version, id),
            FOREIGN KEY (run_id) REFERENCES tidegate.runs (id) ON DELETE CASCADE
        ) ENGINE=InnoDB;
        CREATE TABLE IF NOT EXISTS tidegate.migrations (
            version      VARCHAR(255) NOT NULL PRIMARY KEY,
            name         TEXT NOT NULL,
            checksum     TEXT NOT NULL,
            status       VARCHAR(16) NOT NULL CHECK (status IN ('running', 'applied', 'failed', 'baselined')),
            phases       LONGTEXT NOT NULL,
            phases_done  INT NOT NULL DEFAULT 0,
            started_at   DATETIME(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6)),
            applied_at   DATETIME(6),
            duration_ms  BIGINT,
            last_error   TEXT
        ) ENGINE=InnoDB
        "];

    pub const RECORD_VERSION: &str =
        "INSERT IGNORE INTO tidegate.schema_version (version) VALUES (?)";

    const RUN_COLUMNS: &str = "r.id, r.kind, r.spec, r.table_name, r.key_columns, r.key_types, \
        r.key_min, r.key_max, r.estimated_rows, r.status, r.status_reason, r.control, \
        DATE_FORMAT(r.started_at, '%Y-%m-%dT%H:%i:%sZ') AS started, \
        DATE_FORMAT(r.finished_at, '%Y-%m-%dT%H:%i:%sZ') AS finished, r.last_error, \
        CAST(coalesce((SELECT sum(c.rows_done) FROM tidegate.chunks c WHERE c.run_id = r.id), 0) AS SIGNED) AS rows_done, \
        CAST(coalesce((SELECT sum(c.rows_scanned) FROM tidegate.chunks c WHERE c.run_id = r.id), 0) AS SIGNED) AS rows_scanned, \
        CAST(coalesce((SELECT sum(c.batches) FROM tidegate.chunks c WHERE c.run_id = r.id), 0) AS SIGNED) AS batches, \
        TIMESTAMPDIFF(MICROSECOND, r.started_at, coalesce(r.finished_at, r.updated_at)) / 1e6 AS elapsed_seconds";

    /// Parameter: spec (json text).
    pub fn find_unfinished_by_spec() -> String {
        format!("SELECT {RUN_COLUMNS} FROM tidegate.runs r WHERE r.unfinished_spec = md5(?)")
    }

    pub fn find_by_id() -> String {
        format!("SELECT {RUN_COLUMNS} FROM tidegate.runs r WHERE r.id = ?")
    }

    pub fn list() -> String {
        format!("SELECT {RUN_COLUMNS} FROM tidegate.runs r ORDER BY r.id")
    }

    pub const LATEST_BY_SPEC: &str = "SELECT id, status FROM tidegate.runs \
        WHERE md5(spec) = md5(?) ORDER BY id DESC LIMIT 1";

    /// Parameters: kind, spec, table name, key columns, key types, key min, key max, estimated rows. A value
    /// list may read a column set earlier in it: `exhausted` is `key_max IS NULL`.
    pub const INSERT_RUN: &str =
        "INSERT INTO tidegate.runs (kind, spec, table_name, key_columns, key_types, \
        key_min, key_max, estimated_rows, status, exhausted) \
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', key_max IS NULL)";

    pub const LAST_INSERT_ID: &str = "SELECT CAST(LAST_INSERT_ID() AS SIGNED) AS id";

    pub const DISCARD_RUN: &str = "UPDATE tidegate.runs SET status = 'aborted', \
        status_reason = 'discarded by --restart', control = NULL, finished_at = UTC_TIMESTAMP(6), \
        updated_at = UTC_TIMESTAMP(6) WHERE id = ? AND status NOT IN ('completed', 'aborted')";

    /// Parameters: id, status, reason.
    pub const SET_STATUS: &str = "UPDATE tidegate.runs r \
        JOIN (SELECT ? AS id, ? AS status, ? AS reason) p ON r.id = p.id \
        SET r.status = p.status, r.status_reason = p.reason, r.updated_at = UTC_TIMESTAMP(6), \
        r.finished_at = CASE WHEN p.status IN ('completed', 'aborted', 'failed') THEN UTC_TIMESTAMP(6) ELSE NULL END \
        WHERE r.status NOT IN ('completed', 'aborted')";

    /// Parameters: id, error text.
    pub const SET_FAILED: &str =
        "UPDATE tidegate.runs r JOIN (SELECT ? AS id, ? AS error) p ON r.id = p.id \
        SET r.status = 'failed', r.status_reason = NULL, r.last_error = p.error, \
        r.updated_at = UTC_TIMESTAMP(6), r.finished_at = UTC_TIMESTAMP(6) \
        WHERE r.status NOT IN ('completed', 'aborted')";

    pub const SET_ABORTED: &str = "UPDATE tidegate.runs SET status = 'aborted', control = NULL, \
        updated_at = UTC_TIMESTAMP(6), finished_at = UTC_TIMESTAMP(6) \
        WHERE id = ? AND status NOT IN ('completed', 'aborted')";

    pub const ATTACH: &str = "UPDATE tidegate.runs SET status = 'running', status_reason = NULL, control = NULL, \
        finished_at = NULL, updated_at = UTC_TIMESTAMP(6) WHERE id = ? AND status NOT IN ('completed', 'aborted')";

    pub const TOUCH: &str = "UPDATE tidegate.runs SET updated_at = UTC_TIMESTAMP(6) WHERE id = ?";

    pub const READ_CONTROL: &str = "SELECT control, status FROM tidegate.runs WHERE id = ?";

    /// Parameters: id, control. No RETURNING: the status is read with READ_CONTROL after it.
    pub const SET_CONTROL: &str =
        "UPDATE tidegate.runs r JOIN (SELECT ? AS id, ? AS control) p ON r.id = p.id \
        SET r.control = p.control, r.updated_at = UTC_TIMESTAMP(6) \
        WHERE r.status NOT IN ('completed', 'aborted')";

    pub const CLEAR_PAUSE_STATUS: &str = "UPDATE tidegate.runs SET status = 'paused', \
        status_reason = 'paused; no engine attached', updated_at = UTC_TIMESTAMP(6) \
        WHERE id = ? AND status IN ('running', 'throttled')";

    /// The lock an engine holds while attached to a run. MySQL's named locks are exclusive (PostgreSQL's is
    /// shared): a second engine on the same run works on, unattached in this sense, and `pause` still finds the
    /// first. Parameter: id.
    pub const ATTACH_LOCK: &str =
        "SELECT coalesce(GET_LOCK(concat('tidegate:run:', ?), 0), 0) AS attached";
    pub const NO_ENGINE_ATTACHED: &str =
        "SELECT coalesce(IS_FREE_LOCK(concat('tidegate:run:', ?)), 1) = 1 AS no_engine";

    pub const JOURNAL: &str =
        "INSERT INTO tidegate.journal (run_id, event, detail) VALUES (?, ?, ?)";

    const JOURNAL_COLUMNS: &str = "concat(DATE_FORMAT(at, '%Y-%m-%dT%H:%i:%s.'), \
        LPAD(FLOOR(MICROSECOND(at) / 1000), 3, '0'), 'Z') AS at, \
        CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', at) DIV 1000 AS SIGNED) AS at_ms, \
        run_id, migration_version, event, detail";

    pub fn read_journal() -> String {
        format!("SELECT {JOURNAL_COLUMNS} FROM tidegate.journal WHERE run_id = ? ORDER BY id")
    }

    pub fn read_migration_journal() -> String {
        format!("SELECT {JOURNAL_COLUMNS} FROM tidegate.journal WHERE migration_version = ? ORDER BY id")
    }

    pub const FIND_MIGRATION: &str = "SELECT version, name, status, \
        DATE_FORMAT(started_at, '%Y-%m-%dT%H:%i:%sZ') AS started, \
        DATE_FORMAT(applied_at, '%Y-%m-%dT%H:%i:%sZ') AS applied, duration_ms, last_error, \
        CAST(CASE WHEN JSON_TYPE(phases) = 'ARRAY' THEN JSON_LENGTH(phases) ELSE 0 END AS SIGNED) AS phases, \
        CAST(phases_done AS SIGNED) AS phases_done FROM tidegate.migrations WHERE version = ?";

    pub const REQUESTER: &str = "SELECT SUBSTRING_INDEX(USER(), '@', 1) AS db_user, \
        CAST(NULL AS CHAR) AS application_name, SUBSTRING_INDEX(USER(), '@', -1) AS client_addr";

    pub const BEGIN_READ_ONLY: &str = "START TRANSACTION READ ONLY";

    pub const CLAIM_CANDIDATES: &str = "SELECT chunk_no, lo, hi, `cursor` FROM tidegate.chunks \
        WHERE run_id = ? AND NOT done ORDER BY chunk_no FOR UPDATE SKIP LOCKED";

    /// The session's claim on a chunk, gone the instant its connection dies. Parameters: run id, chunk no.
    pub const TRY_CLAIM: &str =
        "SELECT coalesce(GET_LOCK(concat('tidegate:chunk:', ?, ':', ?), 0), 0) AS claimed";
    pub const RELEASE_CLAIM: &str =
        "SELECT RELEASE_LOCK(concat('tidegate:chunk:', ?, ':', ?)) AS released";

    pub const LOCK_FRONTIER: &str =
        "SELECT frontier, key_max, exhausted, next_chunk FROM tidegate.runs WHERE id = ? FOR UPDATE";

    /// Parameters: run id, chunk no, lo, hi; the cursor starts at lo (a value list reads a column set earlier).
    pub const INSERT_CHUNK: &str =
        "INSERT INTO tidegate.chunks (run_id, chunk_no, lo, hi, `cursor`) VALUES (?, ?, ?, ?, lo)";

    /// Parameters: run id, new frontier, exhausted.
    pub const ADVANCE_FRONTIER: &str = "UPDATE tidegate.runs r \
        JOIN (SELECT ? AS id, ? AS frontier, ? AS exhausted) p ON r.id = p.id \
        SET r.frontier = p.frontier, r.exhausted = p.exhausted, r.next_chunk = r.next_chunk + 1, \
        r.updated_at = UTC_TIMESTAMP(6)";

    /// The checkpoint, in the batch's own transaction, guarded by the cursor the batch started from.
    /// Parameters: run id, chunk no, new cursor, rows changed, rows scanned, chunk done, expected cursor.
    pub const CHECKPOINT: &str = "UPDATE tidegate.chunks c \
        JOIN (SELECT ? AS run_id, ? AS chunk_no, ? AS new_cursor, ? AS changed, ? AS scanned, ? AS done, \
        ? AS expected) p ON c.run_id = p.run_id AND c.chunk_no = p.chunk_no \
        SET c.`cursor` = p.new_cursor, c.rows_done = c.rows_done + p.changed, \
        c.rows_scanned = c.rows_scanned + p.scanned, c.batches = c.batches + 1, c.done = p.done, \
        c.updated_at = UTC_TIMESTAMP(6) \
        WHERE c.`cursor` <=> p.expected AND NOT c.done";

    pub const REMAINING: &str = "SELECT r.exhausted, \
        (SELECT count(*) FROM tidegate.chunks c WHERE c.run_id = r.id AND NOT c.done) AS remaining \
        FROM tidegate.runs r WHERE r.id = ?";
}

/// MySQL's state statements.
pub static MYSQL_STATE: LazyLock<StateSql> = LazyLock::new(|| StateSql {
    schema_version: state::SCHEMA_VERSION,
    returning: false,
    last_insert_id: state::LAST_INSERT_ID,
    migrations: state::MIGRATIONS,
    begin: state::BEGIN,
    commit: state::COMMIT,
    rollback: state::ROLLBACK,
    migration_lock: state::MIGRATION_LOCK,
    create_schema: state::CREATE_SCHEMA,
    current_version: state::CURRENT_VERSION,
    schema_exists: state::SCHEMA_EXISTS,
    record_version: state::RECORD_VERSION,
    latest_by_spec: state::LATEST_BY_SPEC,
    insert_run: state::INSERT_RUN,
    discard_run: state::DISCARD_RUN,
    set_status: state::SET_STATUS,
    set_failed: state::SET_FAILED,
    set_aborted: state::SET_ABORTED,
    attach: state::ATTACH,
    touch: state::TOUCH,
    read_control: state::READ_CONTROL,
    set_control: state::SET_CONTROL,
    clear_pause_status: state::CLEAR_PAUSE_STATUS,
    attach_lock: state::ATTACH_LOCK,
    no_engine_attached: state::NO_ENGINE_ATTACHED,
    journal: state::JOURNAL,
    read_journal: state::read_journal(),
    read_migration_journal: state::read_migration_journal(),
    find_migration: state::FIND_MIGRATION,
    requester: state::REQUESTER,
    begin_read_only: state::BEGIN_READ_ONLY,
    claim_candidates: state::CLAIM_CANDIDATES,
    try_claim: state::TRY_CLAIM,
    release_claim: state::RELEASE_CLAIM,
    lock_frontier: state::LOCK_FRONTIER,
    insert_chunk: state::INSERT_CHUNK,
    advance_frontier: state::ADVANCE_FRONTIER,
    checkpoint: state::CHECKPOINT,
    remaining: state::REMAINING,
    find_unfinished_by_spec: state::find_unfinished_by_spec(),
    find_by_id: state::find_by_id(),
    list: state::list(),
});

#[cfg(test)]
mod tests {
    use super::*;

    fn status_row(columns: &[(&str, Value)]) -> Row {
        let names: std::sync::Arc<[String]> = columns.iter().map(|(n, _)| n.to_string()).collect();
        Row::new(names, columns.iter().map(|(_, v)| v.clone()).collect())
    }

    #[test]
    fn replica_status_reads_either_spelling_and_null_is_stopped() {
        assert_eq!(replica_state_of(&[]).unwrap(), ReplicaState::NotReplica);
        // MariaDB (and SHOW SLAVE STATUS): …Master; the binary protocol sends a number.
        let mariadb = status_row(&[
            ("Slave_IO_Running", Value::Text("Yes".into())),
            ("Slave_SQL_Running", Value::Text("Yes".into())),
            ("Seconds_Behind_Master", Value::Int(7)),
        ]);
        assert_eq!(
            replica_state_of(&[mariadb]).unwrap(),
            ReplicaState::Behind(Duration::from_secs(7))
        );
        // MySQL 8.0.22+'s SHOW REPLICA STATUS: …Source, as text; the largest channel counts.
        let mysql = |lag: &str| {
            status_row(&[
                ("Replica_IO_Running", Value::Text("Yes".into())),
                ("Replica_SQL_Running", Value::Text("Yes".into())),
                ("Seconds_Behind_Source", Value::Text(lag.into())),
            ])
        };
        assert_eq!(
            replica_state_of(&[mysql("2"), mysql("12")]).unwrap(),
            ReplicaState::Behind(Duration::from_secs(12))
        );
        // NULL on any channel: stopped, with the threads and the last error.
        let stopped = status_row(&[
            ("Slave_IO_Running", Value::Text("Yes".into())),
            ("Slave_SQL_Running", Value::Text("No".into())),
            ("Seconds_Behind_Master", Value::Null),
            ("Last_SQL_Error", Value::Text("Duplicate entry '1'".into())),
            ("Last_IO_Error", Value::Text(String::new())),
        ]);
        assert_eq!(
            replica_state_of(&[mysql("1"), stopped]).unwrap(),
            ReplicaState::Stopped {
                io_running: "Yes".into(),
                sql_running: "No".into(),
                last_error: "Duplicate entry '1'".into(),
            }
        );
        assert!(replica_state_of(&[mysql("soon")]).is_err());
    }

    fn shape(cols: &[&str], types: &[&str], predicate: Option<&str>) -> BatchShape {
        BatchShape {
            schema: "shop".into(),
            table: "Orders".into(),
            key_columns: cols.iter().map(|s| s.to_string()).collect(),
            key_types: types.iter().map(|s| s.to_string()).collect(),
            operation: Operation::Update {
                set: "n = n + 1".into(),
            },
            predicate: predicate.map(str::to_string),
        }
    }

    #[test]
    fn identifiers_are_backquoted() {
        assert_eq!(MySql.quote_ident("a`b"), "`a``b`");
    }

    #[test]
    fn single_key_batch_sql_casts_the_text_key() {
        let s = shape(&["id"], &["bigint(20)"], Some("n IS NOT NULL"));
        assert_eq!(
            MySql.batch_upper_bound(&s, true),
            "SELECT CAST(`id` AS CHAR) AS key_0 FROM `shop`.`Orders` WHERE `id` > CAST(? AS SIGNED) AND `id` <= CAST(? AS SIGNED) ORDER BY `id` LIMIT 1 OFFSET ?"
        );
        assert_eq!(
            MySql.batch_change(&s, false),
            "UPDATE `shop`.`Orders` SET\nn = n + 1\nWHERE `id` <= CAST(? AS SIGNED) AND (\nn IS NOT NULL\n)"
        );
        assert_eq!(
            MySql.bound_params(&s, Some(&["5".into()]), &["9".into()], Some(99)),
            vec![
                Value::Text("5".into()),
                Value::Text("9".into()),
                Value::Int(99)
            ]
        );
    }

    #[test]
    fn composite_keys_use_the_expanded_or_form_with_repeated_parameters() {
        let s = shape(
            &["tenant", "id"],
            &["int(10) unsigned", "varchar(20)"],
            None,
        );
        let change = MySql.batch_change(&s, true);
        assert!(
            change.contains(
                "WHERE (`tenant` > CAST(? AS UNSIGNED) OR (`tenant` = CAST(? AS UNSIGNED) AND `id` > ?)) \
                 AND (`tenant` < CAST(? AS UNSIGNED) OR (`tenant` = CAST(? AS UNSIGNED) AND `id` <= ?))"
            ),
            "{change}"
        );
        let params = MySql.bound_params(
            &s,
            Some(&["1".into(), "a".into()]),
            &["2".into(), "b".into()],
            None,
        );
        let texts: Vec<Value> = ["1", "1", "a", "2", "2", "b"]
            .iter()
            .map(|v| Value::Text(v.to_string()))
            .collect();
        assert_eq!(params, texts);
        assert_eq!(change.matches('?').count(), params.len());
        let three = shape(&["a", "b", "c"], &["int", "int", "int"], None);
        let probe = MySql.write_probe(&three);
        assert!(probe.contains("(`a` > CAST(? AS SIGNED) OR (`a` = CAST(? AS SIGNED) AND (`b` > CAST(? AS SIGNED) OR (`b` = CAST(? AS SIGNED) AND `c` >= CAST(? AS SIGNED)))))"), "{probe}");
        assert_eq!(
            MySql
                .probe_params(&three, &["1".into(), "2".into(), "3".into()])
                .len(),
            probe.matches('?').count()
        );
        assert!(MySql
            .key_max(&s)
            .contains("ORDER BY `tenant` DESC, `id` DESC"));
    }

    #[test]
    fn every_key_type_family_crosses_as_text() {
        for (ty, form) in [
            ("bigint(20) unsigned", KeyForm::Cast("UNSIGNED".into())),
            ("int", KeyForm::Cast("SIGNED".into())),
            ("decimal(10,2)", KeyForm::Cast("DECIMAL(10,2)".into())),
            ("datetime(6)", KeyForm::Cast("DATETIME(6)".into())),
            ("timestamp", KeyForm::Cast("DATETIME".into())),
            ("date", KeyForm::Cast("DATE".into())),
            ("time(3)", KeyForm::Cast("TIME(3)".into())),
            ("binary(16)", KeyForm::Hex),
            ("varbinary(64)", KeyForm::Hex),
            ("varchar(20)", KeyForm::Plain),
            ("char(36)", KeyForm::Plain),
        ] {
            assert_eq!(key_form(ty), form, "{ty}");
        }
    }

    #[test]
    fn table_names_split_like_mysql_reads_them() {
        assert_eq!(split_name("orders"), Some((None, "orders".into())));
        assert_eq!(
            split_name("shop.orders"),
            Some((Some("shop".into()), "orders".into()))
        );
        assert_eq!(
            split_name("`my shop`.`odd``name`"),
            Some((Some("my shop".into()), "odd`name".into()))
        );
        for bad in ["", "a.b.c", "a b", "`open", "a.", ".a"] {
            assert_eq!(split_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn executable_comments_in_user_text_are_refused() {
        let s = shape(&["id"], &["int"], Some("n > 0 /*! OR 1 = 1 */"));
        let error = MySql
            .check_change(&s, &MySql.batch_change(&s, true))
            .unwrap_err();
        assert!(error.contains("executable comments"), "{error}");
        let fine = shape(&["id"], &["int"], Some("n > 0 /* a note */"));
        for has_lower in [false, true] {
            MySql
                .check_change(&fine, &MySql.batch_change(&fine, has_lower))
                .unwrap();
        }
        let composite = shape(&["a", "b"], &["int", "varbinary(16)"], Some("n > 0 # why"));
        MySql
            .check_change(&composite, &MySql.batch_change(&composite, true))
            .unwrap();
    }

    #[test]
    fn sql_modes_that_change_how_text_is_read_are_named() {
        assert_eq!(
            sql_mode_mismatch("STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO"),
            None
        );
        assert_eq!(sql_mode_mismatch(""), None);
        let why = sql_mode_mismatch("STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES").unwrap();
        assert!(why.contains("NO_BACKSLASH_ESCAPES"), "{why}");
        let why = sql_mode_mismatch("PIPES_AS_CONCAT,ANSI_QUOTES,IGNORE_SPACE,ORACLE").unwrap();
        assert!(
            why.contains("ORACLE") && !why.contains("ANSI_QUOTES"),
            "{why}"
        );
    }

    #[test]
    fn lock_timeouts_are_whole_seconds_of_at_least_one() {
        assert_eq!(whole_seconds(Duration::from_millis(200)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert!(MySql
            .batch_settings(Duration::from_millis(1500), Duration::from_secs(3))
            .contains("innodb_lock_wait_timeout = 2"));
    }
}
