//! The dialect: every SQL string the backfill engine sends, behind a small trait so another database
//! (MySQL/MariaDB) can plug in without touching the engine. [`Postgres`] is the PostgreSQL implementation.
//!
//! Key values travel as text and are cast back to the key column's type in SQL (`$1::text::bigint`): the text
//! form of every btree-orderable PostgreSQL type round-trips exactly, so a cursor stored as `text[]` in the state
//! schema means the same row on every reconnect. Identifiers are always quoted.
//!
//! The engine reaches batch SQL, catalog queries, health probes and the state schema's statements ([`StateSql`])
//! only through `&dyn Dialect` ([`dialect_for`] picks it from the session's family), and the database only through
//! `tidegate_db::driver::Session`; catalog and health queries return typed rows read by column name. A MySQL
//! dialect implements the same trait beside [`Postgres`].
//!
//! Architecture invariant: no other module of the backfill engine contains SQL text (apply keeps its own in
//! `apply/sql.rs`).

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use tidegate_db::connect::DbError;
use tidegate_db::driver::{Family, Session, SessionExt, Value};
use tidegate_db::table_stats::LockHolder;

use crate::spec::Operation;

/// The resolved shape of a batch: the table, its key, the operation (an update's SET, or a delete) and the
/// user's WHERE.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BatchShape {
    pub schema: String,
    pub table: String,
    /// Key columns in index order.
    pub key_columns: Vec<String>,
    /// Their types as the catalog formats them (`bigint`, `character varying(20)`).
    pub key_types: Vec<String>,
    pub operation: Operation,
    pub predicate: Option<String>,
}

/// A table as the catalog resolves a name.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRef {
    /// The catalog's id for the table (PostgreSQL: its oid).
    pub id: i64,
    pub schema: String,
    pub name: String,
    pub kind: TableKind,
    /// The planner's row estimate; `None` when the table was never analysed.
    pub estimated_rows: Option<i64>,
    pub may_update: bool,
    pub may_delete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableKind {
    Table,
    Partitioned,
    /// A view, a sequence, a foreign table…: the catalog's own code for it.
    Other(String),
}

/// A column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    /// As the catalog formats it (`bigint`, `character varying(20)`).
    pub type_name: String,
    pub not_null: bool,
}

/// A unique index of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueIndex {
    pub name: String,
    pub primary: bool,
    /// Column names in index order; an expression's entry is empty.
    pub columns: Vec<String>,
    pub all_not_null: bool,
    /// Valid, btree, no predicate, no expressions: a key batches can walk.
    pub usable: bool,
}

/// Whether a session may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writability {
    /// A standby in recovery.
    pub in_recovery: bool,
    /// The session's transactions are read-only by default.
    pub read_only: bool,
}

/// Replicas as the primary sees them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplicaLag {
    pub replicas: u32,
    /// Replicas this role may not see into (missing privilege).
    pub hidden: u32,
    /// The largest replay lag.
    pub max_lag: Duration,
}

/// A replica's own account of how far behind it is, read on the replica (MySQL/MariaDB `SHOW REPLICA STATUS`,
/// for each `--replica`).
#[derive(Debug, Clone, PartialEq)]
pub enum ReplicaState {
    /// The server replicates from nothing (the status has no row): not a replica.
    NotReplica,
    /// Replicating, this far behind (the largest over its replication channels).
    Behind(Duration),
    /// A channel's lag is NULL: its I/O or SQL thread is not running (stopped, or stopped by an error).
    Stopped {
        io_running: String,
        sql_running: String,
        last_error: String,
    },
}

/// The oldest open transaction other than ours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OldestTransaction {
    pub pid: i32,
    pub age: Duration,
}

/// Where a family's health signals come from (what `--dry-run` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSources {
    pub blocked: &'static str,
    /// `None`: replica lag is not watched on this family.
    pub replica_lag: Option<&'static str>,
    pub active: &'static str,
}

/// SQL generation, catalog queries and health probes of one database family. Catalog and health queries run on
/// the session given and return typed rows; batch SQL is text the engine prepares once per connection.
#[async_trait]
pub trait Dialect: Send + Sync {
    fn family(&self) -> Family;
    /// Quotes an identifier.
    fn quote_ident(&self, ident: &str) -> String;
    /// `SET LOCAL` statements opening a batch transaction.
    fn batch_settings(&self, lock_timeout: Duration, statement_timeout: Duration) -> String;
    /// The batch's upper key: the key `offset` positions after the lower bound, within the upper bound.
    /// Parameters: lower key (if `has_lower`), upper key, offset, all as text.
    fn batch_upper_bound(&self, shape: &BatchShape, has_lower: bool) -> String;
    /// The number of keys in (lower, upper]: what the last batch of a chunk covers when fewer keys than its size
    /// remain, so rows scanned stays exact beside rows changed. Parameters: lower key (if `has_lower`), upper
    /// key, as text.
    fn batch_key_count(&self, shape: &BatchShape, has_lower: bool) -> String;
    /// The batch's data change — the UPDATE (an update's SET) or the DELETE — bounded by (lower, upper] on the
    /// key and the user's predicate evaluated on the table alone, never on a joined relation that could capture
    /// its column names. Parameters: lower key (if `has_lower`), upper key, as text.
    fn batch_change(&self, shape: &BatchShape, has_lower: bool) -> String;
    /// The parameters of [`Dialect::batch_upper_bound`] (with `offset`), [`Dialect::batch_key_count`] and
    /// [`Dialect::batch_change`] (without), in the order the statement's text reads them. PostgreSQL's numbered
    /// parameters take the lower key, the upper key and the offset once each, as text; a dialect whose
    /// placeholders are positional (MySQL's `?`) repeats a key column where its text compares it twice.
    fn bound_params(
        &self,
        _shape: &BatchShape,
        lower: Option<&[String]>,
        upper: &[String],
        offset: Option<u64>,
    ) -> Vec<Value> {
        let mut params: Vec<Value> = Vec::new();
        if let Some(lower) = lower {
            params.extend(lower.iter().cloned().map(Value::Text));
        }
        params.extend(upper.iter().cloned().map(Value::Text));
        if let Some(offset) = offset {
            params.push(Value::Text(offset.to_string()));
        }
        params
    }
    /// The parameters of [`Dialect::default_probe`] and [`Dialect::write_probe`] for one key, in the order
    /// their text reads them.
    fn probe_params(&self, _shape: &BatchShape, key: &[String]) -> Vec<Value> {
        key.iter().cloned().map(Value::Text).collect()
    }
    /// Checks a generated batch change before the server sees it: that the user's SET and WHERE left it one
    /// statement of the expected kind, bounded as generated. Returns why not.
    fn check_change(&self, shape: &BatchShape, sql: &str) -> Result<(), String>;
    /// Where this family's health signals come from, for the `--dry-run` plan.
    fn health_sources(&self) -> HealthSources {
        HealthSources {
            blocked: "pg_blocking_pids",
            replica_lag: Some("pg_stat_replication"),
            active: "active backends",
        }
    }
    /// The smallest and largest key (two queries' worth of index ends, as text).
    fn key_min(&self, shape: &BatchShape) -> String;
    fn key_max(&self, shape: &BatchShape) -> String;
    /// The default probe: a key lookup. Parameters: a key, as text.
    fn default_probe(&self, shape: &BatchShape) -> String;
    /// The write-path probe: locks the first row at or after a key the way an application's UPDATE of it
    /// would (waiting on the same row locks), inside a transaction the engine rolls back, so nothing changes.
    /// Parameters: a key, as text.
    fn write_probe(&self, shape: &BatchShape) -> String;
    /// The statements around the write-path probe: opening its transaction (with the lock timeout that bounds
    /// how long it may wait) and rolling it back.
    fn write_probe_begin(&self, lock_timeout: Duration) -> String;
    fn write_probe_end(&self) -> &'static str;
    /// Holding one snapshot open beside the workers (see the engine's horizon holder); `None` where the family
    /// gains nothing from it.
    fn horizon(&self) -> Option<&'static HorizonSql>;
    /// Settings every engine session starts with.
    fn session_settings(&self, lock_timeout: Duration, statement_timeout: Duration) -> String;
    /// The state schema's statements in this family's SQL.
    fn state(&self) -> &StateSql;

    /// Resolves a table name the way the server's SQL does (search path, quoting); `None` when there is none.
    async fn resolve_table(&self, s: &dyn Session, name: &str)
        -> Result<Option<TableRef>, DbError>;
    async fn columns(&self, s: &dyn Session, table: &TableRef) -> Result<Vec<ColumnInfo>, DbError>;
    /// Primary key first.
    async fn unique_indexes(
        &self,
        s: &dyn Session,
        table: &TableRef,
    ) -> Result<Vec<UniqueIndex>, DbError>;
    async fn writable(&self, s: &dyn Session) -> Result<Writability, DbError>;
    /// Why the server would read `--set`/`--where` text otherwise than the grammar it was checked with (a
    /// session setting that changes how strings or names are read); `None` when it reads it the same.
    async fn grammar_mismatch(&self, _s: &dyn Session) -> Result<Option<String>, DbError> {
        Ok(None)
    }
    /// The session's id on the server (what other sessions' lock waits name).
    async fn backend_pid(&self, s: &dyn Session) -> Result<i32, DbError>;
    /// Other sessions waiting on a lock one of `ours` holds.
    async fn blocked_by_us(&self, s: &dyn Session, ours: &[i32]) -> Result<u32, DbError>;
    async fn replica_lag(&self, s: &dyn Session) -> Result<ReplicaLag, DbError>;
    /// Whether replica lag is read on the replicas themselves, given with `--replica` (MySQL/MariaDB: a primary
    /// cannot see its replicas' lag), rather than on the primary (PostgreSQL's pg_stat_replication).
    fn reads_lag_on_replicas(&self) -> bool {
        false
    }
    /// One replica's state, on a session to the replica.
    async fn replica_state(&self, _s: &dyn Session) -> Result<ReplicaState, DbError> {
        Err(DbError::other(
            "reading replica lag",
            "this database reports its replicas' lag on the primary; there is nothing to read on a replica",
        ))
    }
    /// Active client sessions other than `ours` and this one.
    async fn active_backends(&self, s: &dyn Session, ours: &[i32]) -> Result<u32, DbError>;
    async fn oldest_transaction(
        &self,
        s: &dyn Session,
        ours: &[i32],
    ) -> Result<Option<OldestTransaction>, DbError>;
    /// The server's current write-ahead-log position as text (PostgreSQL: an LSN, `16/B374D848`); `None` where
    /// the server writes none of its own (a standby). The journal samples it so a report can say how much WAL
    /// the server wrote while the run went.
    async fn wal_position(&self, s: &dyn Session) -> Result<Option<String>, DbError>;
    /// Other sessions holding granted locks on the table, oldest transaction first (at most three): the likely
    /// blockers named when lock retries give up.
    async fn lock_holders(
        &self,
        s: &dyn Session,
        shape: &BatchShape,
        ours: &[i32],
    ) -> Result<Vec<LockHolder>, DbError>;
}

/// The dialect of a session's database family, or an error saying that family has none yet.
pub fn dialect_for(family: Family) -> Result<&'static dyn Dialect, DbError> {
    match family {
        Family::Postgres => Ok(&Postgres),
        Family::MySql => Ok(&crate::dialect_mysql::MySql),
    }
}

/// PostgreSQL.
#[derive(Debug, Clone, Copy, Default)]
pub struct Postgres;

impl Postgres {
    fn qualified(&self, shape: &BatchShape) -> String {
        format!(
            "{}.{}",
            self.quote_ident(&shape.schema),
            self.quote_ident(&shape.table)
        )
    }

    fn key_list(&self, shape: &BatchShape) -> String {
        shape
            .key_columns
            .iter()
            .map(|c| self.quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn key_text_list(&self, shape: &BatchShape) -> String {
        shape
            .key_columns
            .iter()
            .enumerate()
            // Aliased, so ORDER BY "col" means the column, not the text output of the same name.
            .map(|(i, c)| format!("{}::text AS key_{i}", self.quote_ident(c)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn key_desc_list(&self, shape: &BatchShape) -> String {
        shape
            .key_columns
            .iter()
            .map(|c| format!("{} DESC", self.quote_ident(c)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `($first::text::type1, $first+1::text::type2)`.
    fn params(&self, shape: &BatchShape, first: usize) -> String {
        let items: Vec<String> = shape
            .key_types
            .iter()
            .enumerate()
            .map(|(i, ty)| format!("${}::text::{ty}", first + i))
            .collect();
        format!("({})", items.join(", "))
    }

    fn range(&self, shape: &BatchShape, has_lower: bool) -> (String, usize) {
        let n = shape.key_columns.len();
        let key = format!("({})", self.key_list(shape));
        if has_lower {
            (
                format!(
                    "{key} > {} AND {key} <= {}",
                    self.params(shape, 1),
                    self.params(shape, 1 + n)
                ),
                1 + 2 * n,
            )
        } else {
            (format!("{key} <= {}", self.params(shape, 1)), 1 + n)
        }
    }
}

#[async_trait]
impl Dialect for Postgres {
    fn quote_ident(&self, ident: &str) -> String {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }

    fn batch_settings(&self, lock_timeout: Duration, statement_timeout: Duration) -> String {
        format!(
            "SET LOCAL lock_timeout = '{}ms'; SET LOCAL statement_timeout = '{}ms'",
            lock_timeout.as_millis().max(1),
            statement_timeout.as_millis().max(1)
        )
    }

    fn batch_upper_bound(&self, shape: &BatchShape, has_lower: bool) -> String {
        let (range, next) = self.range(shape, has_lower);
        format!(
            "SELECT {} FROM {} WHERE {range} ORDER BY {} LIMIT 1 OFFSET ${next}::text::int8",
            self.key_text_list(shape),
            self.qualified(shape),
            self.key_list(shape)
        )
    }

    fn batch_key_count(&self, shape: &BatchShape, has_lower: bool) -> String {
        let (range, _) = self.range(shape, has_lower);
        format!(
            "SELECT count(*)::int8 AS keys FROM {} WHERE {range}",
            self.qualified(shape)
        )
    }

    fn batch_change(&self, shape: &BatchShape, has_lower: bool) -> String {
        let (range, _) = self.range(shape, has_lower);
        // The user's text sits on lines of its own so a trailing `--` comment cannot swallow the bound.
        let predicate = match &shape.predicate {
            Some(p) => format!(" AND (\n{p}\n)"),
            None => String::new(),
        };
        match &shape.operation {
            Operation::Update { set } => format!(
                "UPDATE {} SET\n{set}\nWHERE {range}{predicate}",
                self.qualified(shape)
            ),
            // The same bound as the update's: rows earlier batches deleted are simply absent from the next
            // range, and the upper bound query walks the key index from the cursor, so it never rescans them.
            Operation::Delete => format!(
                "DELETE FROM {}\nWHERE {range}{predicate}",
                self.qualified(shape)
            ),
        }
    }

    fn check_change(&self, shape: &BatchShape, sql: &str) -> Result<(), String> {
        match shape.operation {
            Operation::Update { .. } => crate::spec::check_generated_update(sql),
            Operation::Delete => crate::spec::check_generated_delete(sql),
        }
    }

    fn key_min(&self, shape: &BatchShape) -> String {
        format!(
            "SELECT {} FROM {} ORDER BY {} LIMIT 1",
            self.key_text_list(shape),
            self.qualified(shape),
            self.key_list(shape)
        )
    }

    fn key_max(&self, shape: &BatchShape) -> String {
        format!(
            "SELECT {} FROM {} ORDER BY {} LIMIT 1",
            self.key_text_list(shape),
            self.qualified(shape),
            self.key_desc_list(shape)
        )
    }

    fn default_probe(&self, shape: &BatchShape) -> String {
        format!(
            "SELECT 1 FROM {} WHERE ({}) = {}",
            self.qualified(shape),
            self.key_list(shape),
            self.params(shape, 1)
        )
    }

    fn write_probe(&self, shape: &BatchShape) -> String {
        format!(
            "SELECT 1 AS locked FROM {} WHERE ({}) >= {} ORDER BY {} LIMIT 1 FOR NO KEY UPDATE",
            self.qualified(shape),
            self.key_list(shape),
            self.params(shape, 1),
            self.key_list(shape)
        )
    }

    fn write_probe_begin(&self, lock_timeout: Duration) -> String {
        format!(
            "BEGIN; SET LOCAL lock_timeout = '{}ms'",
            lock_timeout.as_millis().max(1)
        )
    }

    fn write_probe_end(&self) -> &'static str {
        "ROLLBACK"
    }

    fn horizon(&self) -> Option<&'static HorizonSql> {
        Some(&POSTGRES_HORIZON)
    }

    fn session_settings(&self, lock_timeout: Duration, statement_timeout: Duration) -> String {
        catalog::session_settings(lock_timeout.as_millis(), statement_timeout.as_millis())
    }

    fn family(&self) -> Family {
        Family::Postgres
    }

    fn state(&self) -> &StateSql {
        &POSTGRES_STATE
    }

    async fn resolve_table(
        &self,
        s: &dyn Session,
        name: &str,
    ) -> Result<Option<TableRef>, DbError> {
        let Some(row) = s.query_opt(catalog::RESOLVE_TABLE, &[name.into()]).await? else {
            return Ok(None);
        };
        let relkind: String = row.get("relkind")?;
        let reltuples: f64 = row.get("reltuples")?;
        Ok(Some(TableRef {
            id: row.get("oid")?,
            schema: row.get("schema")?,
            name: row.get("name")?,
            kind: match relkind.as_str() {
                "r" => TableKind::Table,
                "p" => TableKind::Partitioned,
                _ => TableKind::Other(relkind),
            },
            // PostgreSQL 14+ says -1 for a table never analysed or vacuumed.
            estimated_rows: (reltuples >= 0.0).then_some(reltuples as i64),
            may_update: row.get("may_update")?,
            may_delete: row.get("may_delete")?,
        }))
    }

    async fn columns(&self, s: &dyn Session, table: &TableRef) -> Result<Vec<ColumnInfo>, DbError> {
        s.rows(catalog::COLUMNS, &[Value::Int(table.id)])
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
        s.rows(catalog::UNIQUE_INDEXES, &[Value::Int(table.id)])
            .await?
            .iter()
            .map(|r| {
                Ok(UniqueIndex {
                    name: r.get("name")?,
                    primary: r.get("is_primary")?,
                    columns: r.get("columns")?,
                    all_not_null: r.get("all_not_null")?,
                    usable: r.get("usable")?,
                })
            })
            .collect()
    }

    async fn writable(&self, s: &dyn Session) -> Result<Writability, DbError> {
        let row = s.query_one(catalog::WRITABLE, &[]).await?;
        Ok(Writability {
            in_recovery: row.get("in_recovery")?,
            read_only: row.get::<bool>("read_only")? || row.get::<bool>("default_read_only")?,
        })
    }

    async fn backend_pid(&self, s: &dyn Session) -> Result<i32, DbError> {
        Ok(s.query_one(catalog::BACKEND_PID, &[]).await?.get("pid")?)
    }

    async fn blocked_by_us(&self, s: &dyn Session, ours: &[i32]) -> Result<u32, DbError> {
        let row = s
            .query_one(health::BLOCKED_BY_US, &[pid_list(ours)])
            .await?;
        Ok(row.get::<i64>("blocked")?.max(0) as u32)
    }

    async fn replica_lag(&self, s: &dyn Session) -> Result<ReplicaLag, DbError> {
        let row = s.query_one(health::REPLICA_LAG, &[]).await?;
        Ok(ReplicaLag {
            replicas: row.get::<i64>("replicas")?.max(0) as u32,
            hidden: row.get::<i64>("hidden")?.max(0) as u32,
            max_lag: Duration::from_secs_f64(row.get::<f64>("max_lag_seconds")?.max(0.0)),
        })
    }

    async fn active_backends(&self, s: &dyn Session, ours: &[i32]) -> Result<u32, DbError> {
        let row = s
            .query_one(health::ACTIVE_BACKENDS, &[pid_list(ours)])
            .await?;
        Ok(row.get::<i64>("active")?.max(0) as u32)
    }

    async fn oldest_transaction(
        &self,
        s: &dyn Session,
        ours: &[i32],
    ) -> Result<Option<OldestTransaction>, DbError> {
        let Some(row) = s
            .query_opt(health::OLDEST_TRANSACTION, &[pid_list(ours)])
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(OldestTransaction {
            pid: row.get("pid")?,
            age: Duration::from_secs_f64(row.get::<f64>("age_seconds")?.max(0.0)),
        }))
    }

    async fn wal_position(&self, s: &dyn Session) -> Result<Option<String>, DbError> {
        Ok(s.query_one(health::WAL_POSITION, &[]).await?.get("lsn")?)
    }

    async fn lock_holders(
        &self,
        s: &dyn Session,
        shape: &BatchShape,
        ours: &[i32],
    ) -> Result<Vec<LockHolder>, DbError> {
        s.rows(
            health::LOCK_HOLDERS,
            &[self.qualified(shape).into(), pid_list(ours)],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(LockHolder {
                pid: r.get("pid")?,
                application_name: r.get("application_name")?,
                user: r.get("user_name")?,
                state: r.get("state")?,
                transaction_age_seconds: r.get("transaction_age_seconds")?,
                query: r.get("query")?,
                mode: r
                    .get::<Option<String>>("mode")?
                    .as_deref()
                    .and_then(tidegate_sql::LockLevel::from_pg_mode),
                granted: true,
            })
        })
        .collect()
    }
}

/// Backend pids as the `int4[]` the health queries take (as text: the seam carries arrays of text).
fn pid_list(pids: &[i32]) -> Value {
    Value::TextList(pids.iter().map(i32::to_string).collect())
}

/// Catalog queries (PostgreSQL). Each column is named: [`Postgres`] reads them by name.
pub mod catalog {
    /// Resolves a table name the way SQL does (search_path, quoting). Parameter: the name.
    pub const RESOLVE_TABLE: &str = "SELECT c.oid::int8 AS oid, n.nspname::text AS schema, c.relname::text AS name, \
        c.relkind::text AS relkind, c.reltuples::float8 AS reltuples, \
        has_table_privilege(c.oid, 'UPDATE') AS may_update, has_table_privilege(c.oid, 'DELETE') AS may_delete \
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)";

    /// Columns of a table. Parameter: oid.
    pub const COLUMNS: &str = "SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS type, \
        a.attnotnull AS not_null \
        FROM pg_attribute a WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum";

    /// Unique indexes of a table. Parameter: oid. `columns` has an empty entry for an expression; `usable` means
    /// valid, btree, no predicate, no expressions.
    pub const UNIQUE_INDEXES: &str = "SELECT i.indexrelid::regclass::text AS name, i.indisprimary AS is_primary, \
        array(SELECT coalesce(a.attname::text, '') FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord) \
              LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.ord) AS columns, \
        coalesce((SELECT bool_and(a.attnotnull) FROM unnest(i.indkey::int2[]) k(attnum) \
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum), false) AS all_not_null, \
        i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL \
              AND (SELECT am.amname FROM pg_class ic JOIN pg_am am ON am.oid = ic.relam WHERE ic.oid = i.indexrelid) = 'btree' \
              AS usable \
        FROM pg_index i WHERE i.indrelid = $1::int8::oid AND i.indisunique ORDER BY i.indisprimary DESC, i.indexrelid";

    /// Whether this connection can write: in recovery, read-only transaction default.
    pub const WRITABLE: &str = "SELECT pg_is_in_recovery() AS in_recovery, \
        current_setting('transaction_read_only') = 'on' AS read_only, \
        current_setting('default_transaction_read_only') = 'on' AS default_read_only";

    /// This backend's pid.
    pub const BACKEND_PID: &str = "SELECT pg_backend_pid() AS pid";

    /// Session settings for every engine connection. Parameters are inlined by [`session_settings`].
    pub fn session_settings(lock_timeout_ms: u128, statement_timeout_ms: u128) -> String {
        format!(
            "SET lock_timeout = '{}ms'; SET statement_timeout = '{}ms'; SET idle_in_transaction_session_timeout = '60s'",
            lock_timeout_ms.max(1),
            statement_timeout_ms.max(1)
        )
    }
}

/// The statements of the horizon holder: one read-only snapshot held open beside the workers.
///
/// Why: with every row version a batch leaves behind already invisible to all snapshots, each batch's index
/// insertions trigger btree bottom-up deletion passes that visit the heap to prove the old versions dead
/// (`heap_index_delete_tuples`): measured, 37.7% of the backend's CPU against 18.1% while a snapshot is held,
/// and batches at half the rate of one UPDATE over the same rows (docs/benchmarks.md). One UPDATE holds its own
/// snapshot to the end; holding one beside short batches gives them the same behaviour, for a bounded time.
#[derive(Debug)]
pub struct HorizonSql {
    /// Session settings: how long the held transaction may sit idle (parameter inlined: milliseconds).
    pub idle_timeout: fn(u128) -> String,
    /// Opens the transaction and takes its snapshot.
    pub begin: &'static str,
    pub take_snapshot: &'static str,
    /// Sessions waiting for this one's transaction to end (CREATE INDEX CONCURRENTLY, REINDEX CONCURRENTLY
    /// and DETACH PARTITION CONCURRENTLY wait for older snapshots): `waiting`.
    pub waiters: &'static str,
    pub end: &'static str,
}

pub static POSTGRES_HORIZON: HorizonSql = HorizonSql {
    idle_timeout: |ms| format!("SET idle_in_transaction_session_timeout = '{}ms'", ms.max(1)),
    begin: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    take_snapshot: "SELECT 1 AS held",
    waiters: "SELECT count(*)::int8 AS waiting FROM pg_locks w \
        WHERE w.locktype = 'virtualxid' AND NOT w.granted AND w.virtualxid = \
        (SELECT o.virtualxid FROM pg_locks o WHERE o.pid = pg_backend_pid() AND o.locktype = 'virtualxid' \
        AND o.granted LIMIT 1)",
    end: "COMMIT",
};

/// Health probes (PostgreSQL). Our own backends are a `text[]` of pids, cast in SQL.
pub mod health {
    /// Other sessions waiting on a lock held by one of the given backends (our own workers waiting on each other
    /// for a moment over the state tables do not count). Parameter: our pids.
    pub const BLOCKED_BY_US: &str = "SELECT count(*)::int8 AS blocked FROM pg_stat_activity \
        WHERE cardinality($1::text[]::int4[]) > 0 \
        AND pg_blocking_pids(pid) && $1::text[]::int4[] AND NOT (pid = ANY($1::text[]::int4[])) AND pid <> pg_backend_pid()";

    /// Replicas, replicas we may not see into (NULL state: missing privilege), the largest replay lag in seconds.
    pub const REPLICA_LAG: &str = "SELECT count(*)::int8 AS replicas, \
        count(*) FILTER (WHERE state IS NULL)::int8 AS hidden, \
        coalesce(max(extract(epoch FROM replay_lag)), 0)::float8 AS max_lag_seconds FROM pg_stat_replication";

    /// Active client backends other than ours. Parameter: our pids.
    pub const ACTIVE_BACKENDS: &str = "SELECT count(*)::int8 AS active FROM pg_stat_activity WHERE state = 'active' \
        AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND NOT (pid = ANY($1::text[]::int4[]))";

    /// Other sessions holding granted locks on a table, oldest transaction first: the likely blockers named when
    /// lock retries give up. Parameters: the quoted qualified table name, our pids.
    pub const LOCK_HOLDERS: &str =
        "SELECT l.pid, coalesce(a.application_name, '') AS application_name, \
        coalesce(a.usename::text, '') AS user_name, coalesce(a.state, '') AS state, \
        extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS transaction_age_seconds, \
        left(coalesce(a.query, ''), 120) AS query, l.mode \
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
        WHERE l.relation = $1::text::regclass AND l.granted AND l.pid <> pg_backend_pid() \
        AND NOT (l.pid = ANY($2::text[]::int4[])) ORDER BY a.xact_start LIMIT 3";

    /// The current WAL insert position; NULL on a standby (which writes none of its own).
    pub const WAL_POSITION: &str = "SELECT CASE WHEN pg_is_in_recovery() THEN NULL \
        ELSE pg_current_wal_lsn()::text END AS lsn";

    /// The oldest open transaction other than ours. Parameter: our pids.
    pub const OLDEST_TRANSACTION: &str =
        "SELECT pid, extract(epoch FROM clock_timestamp() - xact_start)::float8 AS age_seconds \
        FROM pg_stat_activity WHERE xact_start IS NOT NULL AND backend_type = 'client backend' \
        AND pid <> pg_backend_pid() AND NOT (pid = ANY($1::text[]::int4[])) ORDER BY xact_start LIMIT 1";
}

/// The `tidegate` state schema: versioned migrations and every statement on runs, chunks and the journal.
pub mod state {
    pub const BEGIN: &str = "BEGIN";
    pub const COMMIT: &str = "COMMIT";
    pub const ROLLBACK: &str = "ROLLBACK";

    /// The schema version this build writes.
    pub const SCHEMA_VERSION: i32 = 3;

    /// Serialises concurrent first uses (an advisory lock on a fixed key, released at commit).
    pub const MIGRATION_LOCK: &str =
        "SELECT pg_advisory_xact_lock(hashtextextended('tidegate:schema', 0))";

    pub const CREATE_SCHEMA: &str = "CREATE SCHEMA IF NOT EXISTS tidegate; \
        CREATE TABLE IF NOT EXISTS tidegate.schema_version (version int NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())";

    pub const CURRENT_VERSION: &str =
        "SELECT coalesce(max(version), 0) AS version FROM tidegate.schema_version";

    pub const SCHEMA_EXISTS: &str =
        "SELECT to_regclass('tidegate.schema_version') IS NOT NULL AS present";

    /// Migrations by version: migration `i` brings the schema from version `i` to `i + 1`.
    pub const MIGRATIONS: &[&str] = &["
        CREATE TABLE tidegate.runs (
            id            bigserial PRIMARY KEY,
            kind          text NOT NULL,
            spec          jsonb NOT NULL,
            table_name    text NOT NULL,
            key_columns   text[] NOT NULL,
            key_types     text[] NOT NULL,
            key_min       text[],
            key_max       text[],
            frontier      text[],
            exhausted     boolean NOT NULL DEFAULT false,
            next_chunk    int NOT NULL DEFAULT 0,
            estimated_rows bigint,
            status        text NOT NULL CHECK (status IN ('running', 'throttled', 'paused', 'completed', 'failed', 'aborted')),
            status_reason text,
            control       text CHECK (control IN ('pause', 'abort')),
            started_at    timestamptz NOT NULL DEFAULT now(),
            updated_at    timestamptz NOT NULL DEFAULT now(),
            finished_at   timestamptz,
            last_error    text
        );
        CREATE UNIQUE INDEX runs_one_unfinished_per_spec ON tidegate.runs (md5(spec::text))
            WHERE status NOT IN ('completed', 'aborted');
        CREATE TABLE tidegate.chunks (
            run_id       bigint NOT NULL REFERENCES tidegate.runs (id) ON DELETE CASCADE,
            chunk_no     int NOT NULL,
            lo           text[],
            hi           text[] NOT NULL,
            cursor       text[],
            done         boolean NOT NULL DEFAULT false,
            rows_done    bigint NOT NULL DEFAULT 0,
            rows_scanned bigint NOT NULL DEFAULT 0,
            batches      bigint NOT NULL DEFAULT 0,
            updated_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (run_id, chunk_no)
        );
        CREATE TABLE tidegate.journal (
            id      bigserial PRIMARY KEY,
            run_id  bigint NOT NULL REFERENCES tidegate.runs (id) ON DELETE CASCADE,
            at      timestamptz NOT NULL DEFAULT clock_timestamp(),
            event   text NOT NULL,
            detail  jsonb NOT NULL DEFAULT '{}'
        );
        CREATE INDEX journal_by_run ON tidegate.journal (run_id, id);
        ", "
        CREATE TABLE tidegate.migrations (
            version      text PRIMARY KEY,
            name         text NOT NULL,
            checksum     text NOT NULL,
            status       text NOT NULL CHECK (status IN ('running', 'applied', 'failed')),
            phases       jsonb NOT NULL,
            phases_done  int NOT NULL DEFAULT 0,
            started_at   timestamptz NOT NULL DEFAULT now(),
            applied_at   timestamptz,
            duration_ms  bigint,
            last_error   text
        );
        ALTER TABLE tidegate.journal ALTER COLUMN run_id DROP NOT NULL,
            ADD COLUMN migration_version text;
        CREATE INDEX journal_by_migration ON tidegate.journal (migration_version, id)
            WHERE migration_version IS NOT NULL;
        ", "
        -- 'baselined': recorded by `tidegate baseline` for a migration another framework ran.
        ALTER TABLE tidegate.migrations DROP CONSTRAINT migrations_status_check,
            ADD CONSTRAINT migrations_status_check
                CHECK (status IN ('running', 'applied', 'failed', 'baselined'));
        "];

    pub const RECORD_VERSION: &str = "INSERT INTO tidegate.schema_version (version) VALUES ($1)";

    /// Columns every run query returns, in [`crate::state::RunRow`] order.
    const RUN_COLUMNS: &str = "r.id, r.kind, r.spec::text AS spec, r.table_name, r.key_columns, r.key_types, \
        r.key_min, r.key_max, r.estimated_rows, r.status, r.status_reason, r.control, \
        to_char(r.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS started, \
        to_char(r.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS finished, r.last_error, \
        coalesce((SELECT sum(c.rows_done) FROM tidegate.chunks c WHERE c.run_id = r.id), 0)::int8 AS rows_done, \
        coalesce((SELECT sum(c.rows_scanned) FROM tidegate.chunks c WHERE c.run_id = r.id), 0)::int8 AS rows_scanned, \
        coalesce((SELECT sum(c.batches) FROM tidegate.chunks c WHERE c.run_id = r.id), 0)::int8 AS batches, \
        extract(epoch FROM coalesce(r.finished_at, r.updated_at) - r.started_at)::float8 AS elapsed_seconds";

    pub fn find_unfinished_by_spec() -> String {
        format!(
            "SELECT {RUN_COLUMNS} FROM tidegate.runs r WHERE md5(r.spec::text) = md5($1::text::jsonb::text) \
             AND r.status NOT IN ('completed', 'aborted')"
        )
    }

    pub fn find_by_id() -> String {
        format!("SELECT {RUN_COLUMNS} FROM tidegate.runs r WHERE r.id = $1")
    }

    pub fn list() -> String {
        format!("SELECT {RUN_COLUMNS} FROM tidegate.runs r ORDER BY r.id")
    }

    /// The latest run of a spec (all unfinished ones were handled first). Parameter: spec (json text).
    pub const LATEST_BY_SPEC: &str = "SELECT id, status FROM tidegate.runs \
        WHERE md5(spec::text) = md5($1::text::jsonb::text) ORDER BY id DESC LIMIT 1";

    /// Parameters: kind, spec (json text), table name, key columns, key types, key min, key max, estimated rows.
    pub const INSERT_RUN: &str = "INSERT INTO tidegate.runs (kind, spec, table_name, key_columns, key_types, key_min, \
        key_max, estimated_rows, status, exhausted) \
        VALUES ($1, $2::text::jsonb, $3, $4::text[], $5::text[], $6::text[], $7::text[], $8::int8, 'running', $7::text[] IS NULL) RETURNING id";

    /// Discards an unfinished run (for `--restart`). Parameter: id.
    pub const DISCARD_RUN: &str = "UPDATE tidegate.runs SET status = 'aborted', status_reason = 'discarded by --restart', \
        control = NULL, finished_at = now(), updated_at = now() WHERE id = $1 AND status NOT IN ('completed', 'aborted')";

    /// Parameters: id, status, reason.
    pub const SET_STATUS: &str =
        "UPDATE tidegate.runs SET status = $2, status_reason = $3, updated_at = now(), \
        finished_at = CASE WHEN $2 IN ('completed', 'aborted', 'failed') THEN now() ELSE NULL END \
        WHERE id = $1 AND status NOT IN ('completed', 'aborted')";

    /// Parameters: id, error text.
    pub const SET_FAILED: &str = "UPDATE tidegate.runs SET status = 'failed', status_reason = NULL, last_error = $2, \
        updated_at = now(), finished_at = now() WHERE id = $1 AND status NOT IN ('completed', 'aborted')";

    /// Completes an abort request: parameter id.
    pub const SET_ABORTED: &str =
        "UPDATE tidegate.runs SET status = 'aborted', control = NULL, updated_at = now(), \
        finished_at = now() WHERE id = $1 AND status NOT IN ('completed', 'aborted')";

    /// Marks a run resumed by a new engine: clears a pause request. Parameter: id.
    pub const ATTACH: &str = "UPDATE tidegate.runs SET status = 'running', status_reason = NULL, control = NULL, \
        finished_at = NULL, updated_at = now() WHERE id = $1 AND status NOT IN ('completed', 'aborted')";

    /// Touches the run (keeps rows/s honest while running). Parameter: id.
    pub const TOUCH: &str = "UPDATE tidegate.runs SET updated_at = now() WHERE id = $1";

    /// The control flag and status. Parameter: id.
    pub const READ_CONTROL: &str = "SELECT control, status FROM tidegate.runs WHERE id = $1";

    /// Parameters: id, control ('pause', 'abort' or NULL). Returns the status when the run exists and is unfinished.
    pub const SET_CONTROL: &str = "UPDATE tidegate.runs SET control = $2, updated_at = now() \
        WHERE id = $1 AND status NOT IN ('completed', 'aborted') RETURNING status";

    /// A paused run with no engine attached is marked running again by `tidegate resume` only via its flag.
    pub const CLEAR_PAUSE_STATUS: &str = "UPDATE tidegate.runs SET status = 'paused', status_reason = 'paused; no engine attached', \
        updated_at = now() WHERE id = $1 AND status IN ('running', 'throttled')";

    /// The key of the advisory lock an engine holds (shared) while attached to a run. Parameter: id.
    pub const ATTACH_LOCK: &str =
        "SELECT pg_advisory_lock_shared(hashtextextended('tidegate:run:' || $1::int8::text, 0))";
    /// True when no engine is attached (takes and releases the lock at once). Parameter: id.
    pub const NO_ENGINE_ATTACHED: &str = "SELECT CASE WHEN pg_try_advisory_lock(hashtextextended('tidegate:run:' || $1::int8::text, 0)) \
        THEN pg_advisory_unlock(hashtextextended('tidegate:run:' || $1::int8::text, 0)) ELSE false END AS no_engine";

    /// Parameters: run id, event, detail (json text).
    pub const JOURNAL: &str =
        "INSERT INTO tidegate.journal (run_id, event, detail) VALUES ($1, $2, $3::text::jsonb)";

    /// Columns every journal query returns, read by [`crate::state::JournalEntry`].
    const JOURNAL_COLUMNS: &str =
        "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS at, \
        (extract(epoch FROM date_trunc('milliseconds', at)) * 1000)::int8 AS at_ms, run_id, migration_version, \
        event, detail::text AS detail";

    /// Parameter: run id.
    pub fn read_journal() -> String {
        format!("SELECT {JOURNAL_COLUMNS} FROM tidegate.journal WHERE run_id = $1 ORDER BY id")
    }

    /// A migration's own entries (apply's). Parameter: version.
    pub fn read_migration_journal() -> String {
        format!(
            "SELECT {JOURNAL_COLUMNS} FROM tidegate.journal WHERE migration_version = $1 ORDER BY id"
        )
    }

    /// A migration's record. Parameter: version.
    pub const FIND_MIGRATION: &str = "SELECT version, name, status, \
        to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS started, \
        to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS applied, \
        duration_ms, last_error, \
        (CASE WHEN jsonb_typeof(phases) = 'array' THEN jsonb_array_length(phases) ELSE 0 END)::int8 AS phases, \
        phases_done::int8 AS phases_done \
        FROM tidegate.migrations WHERE version = $1";

    /// Who this session is, for the journal of a control request.
    pub const REQUESTER: &str = "SELECT session_user::text AS db_user, \
        current_setting('application_name') AS application_name, \
        coalesce(host(inet_client_addr()), 'local') AS client_addr";

    pub const BEGIN_READ_ONLY: &str = "BEGIN READ ONLY";

    /// Unfinished chunks, skipping those another claimer is looking at. Parameter: run id.
    pub const CLAIM_CANDIDATES: &str = "SELECT chunk_no, lo, hi, cursor FROM tidegate.chunks \
        WHERE run_id = $1 AND NOT done ORDER BY chunk_no FOR UPDATE SKIP LOCKED";

    /// Takes the session-level claim on a chunk: held by our connection, gone the instant it dies.
    /// Parameters: run id, chunk no.
    pub const TRY_CLAIM: &str =
        "SELECT pg_try_advisory_lock(hashtextextended('tidegate:chunk:' || $1::int8::text || ':' || $2::int4::text, 0)) AS claimed";
    pub const RELEASE_CLAIM: &str =
        "SELECT pg_advisory_unlock(hashtextextended('tidegate:chunk:' || $1::int8::text || ':' || $2::int4::text, 0))";

    /// The run's frontier, locked for extending it. Parameter: run id.
    pub const LOCK_FRONTIER: &str =
        "SELECT frontier, key_max, exhausted, next_chunk FROM tidegate.runs WHERE id = $1 FOR UPDATE";

    /// Parameters: run id, chunk no, lo, hi.
    pub const INSERT_CHUNK: &str =
        "INSERT INTO tidegate.chunks (run_id, chunk_no, lo, hi, cursor) VALUES ($1, $2, $3, $4, $3)";

    /// Parameters: run id, new frontier, exhausted.
    pub const ADVANCE_FRONTIER: &str = "UPDATE tidegate.runs SET frontier = $2, exhausted = $3, \
        next_chunk = next_chunk + 1, updated_at = now() WHERE id = $1";

    /// The checkpoint, in the batch's own transaction. Guarded by the cursor we started from: if anything
    /// else moved it, no row matches and the batch rolls back. Parameters: run id, chunk no, new cursor,
    /// rows changed, rows scanned, chunk done, expected cursor.
    pub const CHECKPOINT: &str = "UPDATE tidegate.chunks SET cursor = $3, rows_done = rows_done + $4, \
        rows_scanned = rows_scanned + $5, batches = batches + 1, done = $6, updated_at = clock_timestamp() \
        WHERE run_id = $1 AND chunk_no = $2 AND cursor IS NOT DISTINCT FROM $7 AND NOT done";

    /// Unfinished chunks and whether the frontier is exhausted. Parameter: run id.
    pub const REMAINING: &str = "SELECT r.exhausted, \
        (SELECT count(*) FROM tidegate.chunks c WHERE c.run_id = r.id AND NOT c.done)::int8 AS remaining \
        FROM tidegate.runs r WHERE r.id = $1";
}

/// The state schema's statements of one family: what [`crate::state`] and the engine send about runs, chunks
/// and the journal. Parameters and columns are documented on PostgreSQL's constants in [`state`].
#[derive(Debug)]
pub struct StateSql {
    /// The schema version this build writes.
    pub schema_version: i32,
    /// Whether `insert_run` and `set_control` return their row (`RETURNING`). When false (MySQL), the caller
    /// runs them for their row count and reads the new run's id with `last_insert_id` and the run's status
    /// with `read_control`, on the same session.
    pub returning: bool,
    /// The id the session's last INSERT generated (`id`); used only when `returning` is false.
    pub last_insert_id: &'static str,
    /// Migrations by version: migration `i` brings the schema from version `i` to `i + 1`.
    pub migrations: &'static [&'static str],
    pub begin: &'static str,
    pub commit: &'static str,
    pub rollback: &'static str,
    pub migration_lock: &'static str,
    pub create_schema: &'static str,
    pub current_version: &'static str,
    pub schema_exists: &'static str,
    pub record_version: &'static str,
    pub latest_by_spec: &'static str,
    pub insert_run: &'static str,
    pub discard_run: &'static str,
    pub set_status: &'static str,
    pub set_failed: &'static str,
    pub set_aborted: &'static str,
    pub attach: &'static str,
    pub touch: &'static str,
    pub read_control: &'static str,
    pub set_control: &'static str,
    pub clear_pause_status: &'static str,
    pub attach_lock: &'static str,
    pub no_engine_attached: &'static str,
    pub journal: &'static str,
    pub read_journal: String,
    pub read_migration_journal: String,
    pub find_migration: &'static str,
    pub requester: &'static str,
    pub begin_read_only: &'static str,
    pub claim_candidates: &'static str,
    pub try_claim: &'static str,
    pub release_claim: &'static str,
    pub lock_frontier: &'static str,
    pub insert_chunk: &'static str,
    pub advance_frontier: &'static str,
    pub checkpoint: &'static str,
    pub remaining: &'static str,
    pub find_unfinished_by_spec: String,
    pub find_by_id: String,
    pub list: String,
}

/// PostgreSQL's state statements.
pub static POSTGRES_STATE: LazyLock<StateSql> = LazyLock::new(|| StateSql {
    schema_version: state::SCHEMA_VERSION,
    returning: true,
    last_insert_id: "",
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

    fn shape(cols: &[&str], types: &[&str], predicate: Option<&str>) -> BatchShape {
        BatchShape {
            schema: "public".into(),
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
    fn quotes_identifiers() {
        assert_eq!(Postgres.quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn single_key_batch_sql() {
        let s = shape(&["id"], &["bigint"], Some("n IS NOT NULL"));
        assert_eq!(
            Postgres.batch_upper_bound(&s, true),
            "SELECT \"id\"::text AS key_0 FROM \"public\".\"Orders\" WHERE (\"id\") > ($1::text::bigint) AND (\"id\") <= ($2::text::bigint) ORDER BY \"id\" LIMIT 1 OFFSET $3::text::int8"
        );
        assert_eq!(
            Postgres.batch_change(&s, false),
            "UPDATE \"public\".\"Orders\" SET\nn = n + 1\nWHERE (\"id\") <= ($1::text::bigint) AND (\nn IS NOT NULL\n)"
        );
        crate::spec::check_generated_update(&Postgres.batch_change(&s, true)).unwrap();
        Postgres
            .check_change(&s, &Postgres.batch_change(&s, true))
            .unwrap();
    }

    #[test]
    fn delete_batch_sql_is_bounded_like_the_update() {
        let s = BatchShape {
            operation: Operation::Delete,
            ..shape(&["id"], &["bigint"], Some("created_at < now() -- old"))
        };
        let sql = Postgres.batch_change(&s, true);
        assert_eq!(
            sql,
            "DELETE FROM \"public\".\"Orders\"\nWHERE (\"id\") > ($1::text::bigint) AND (\"id\") <= ($2::text::bigint) AND (\ncreated_at < now() -- old\n)"
        );
        crate::spec::check_generated_delete(&sql).unwrap();
        let everything = BatchShape {
            predicate: None,
            ..s
        };
        assert_eq!(
            Postgres.batch_change(&everything, false),
            "DELETE FROM \"public\".\"Orders\"\nWHERE (\"id\") <= ($1::text::bigint)"
        );
    }

    #[test]
    fn composite_keys_compare_as_rows() {
        let s = shape(&["tenant", "id"], &["integer", "uuid"], None);
        let sql = Postgres.batch_change(&s, true);
        assert!(
            sql.contains("(\"tenant\", \"id\") > ($1::text::integer, $2::text::uuid) AND (\"tenant\", \"id\") <= ($3::text::integer, $4::text::uuid)"),
            "{sql}"
        );
        assert!(Postgres
            .key_max(&s)
            .contains("ORDER BY \"tenant\" DESC, \"id\" DESC"));
    }
}
