//! What a rehearsal watches on its scratch server while a migration runs there: the relation locks on some
//! tables (with the sessions holding or waiting for them), the WAL insert position, and the tables' sizes; and
//! the SQL of the key-lookup workload `tidegate rehearse --workload auto` runs when there is nothing better to
//! replay; and the settings a rehearsal reads from the source and sets on its scratch server.
//!
//! Reads only (but for [`alter_system_set`], [`reload_config`] and [`checkpoint`], for the scratch server); every function takes a [`Session`] the caller opened (a connection of its own, so sampling never
//! queues behind the migration it watches).

use tidegate_sql::LockLevel;

use crate::connect::DbError;
use crate::driver::{Session, SessionExt};

/// A table's oid from its (qualified, quoted) name; 0 when there is none.
const TABLE_OID: &str = "SELECT coalesce(to_regclass($1)::oid::int8, 0) AS oid";

/// The relation locks on the watched tables (oids resolved once, so renames and rewrites keep them) and on every
/// index on them at the moment of the sample, granted or waiting, with who holds or wants them.
const SAMPLE_LOCKS: &str = "
SELECT l.relation::int8 AS relation_oid,
       coalesce(c.relname::text, l.relation::text) AS relation,
       coalesce(tc.relname::text, c.relname::text, l.relation::text) AS table_name,
       l.mode AS mode,
       l.granted AS granted,
       coalesce(l.pid, 0) AS pid,
       coalesce(a.application_name, '') AS application_name,
       coalesce(a.backend_type, '') AS backend_type
  FROM pg_locks l
  LEFT JOIN pg_class c ON c.oid = l.relation
  LEFT JOIN pg_index ix ON ix.indexrelid = l.relation
  LEFT JOIN pg_class tc ON tc.oid = ix.indrelid
  LEFT JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'relation'
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND l.pid IS DISTINCT FROM pg_backend_pid()
   AND (l.relation = ANY($1::text[]::oid[])
        OR l.relation IN (SELECT indexrelid FROM pg_index WHERE indrelid = ANY($1::text[]::oid[])))";

/// The WAL insert position as a byte offset.
const WAL_POSITION: &str = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8 AS lsn";

/// Each watched table's total size (heap, TOAST, indexes) and its indexes' size; 0 for a table that is gone.
const RELATION_SIZES: &str = "
SELECT t.oid::int8 AS oid,
       coalesce(pg_total_relation_size(t.oid), 0)::int8 AS total_bytes,
       coalesce(pg_indexes_size(t.oid), 0)::int8 AS index_bytes
  FROM unnest($1::text[]::oid[]) AS t(oid)";

/// One row of `pg_locks` on a watched relation, as a sample saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedLock {
    pub relation_oid: u32,
    /// The relation's name at the time of the sample (its oid as text once it is gone).
    pub relation: String,
    /// The table the relation is, or (for an index) belongs to: writers to that table wait for its locks.
    pub table: String,
    pub mode: LockLevel,
    pub granted: bool,
    /// 0 for a prepared transaction.
    pub pid: i32,
    pub application_name: String,
    /// `client backend`, `autovacuum worker`, `parallel worker`, …
    pub backend_type: String,
}

/// One table's size at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelationSize {
    pub oid: u32,
    pub total_bytes: i64,
    pub index_bytes: i64,
}

fn oid_list(oids: &[u32]) -> Vec<String> {
    oids.iter().map(u32::to_string).collect()
}

/// The oid of a table (qualified and quoted as SQL spells it); `None` when it does not exist.
pub async fn table_oid(client: &dyn Session, qualified: &str) -> Result<Option<u32>, DbError> {
    let row = client.query_one(TABLE_OID, &[qualified.into()]).await?;
    let oid: i64 = row.get("oid")?;
    Ok(u32::try_from(oid).ok().filter(|oid| *oid != 0))
}

/// The relation locks held and waited for on `tables` and their indexes, by every session but this one.
pub async fn relation_locks(
    client: &dyn Session,
    tables: &[u32],
) -> Result<Vec<ObservedLock>, DbError> {
    let rows = client
        .rows(SAMPLE_LOCKS, &[oid_list(tables).into()])
        .await?;
    let mut locks = Vec::with_capacity(rows.len());
    for row in &rows {
        let mode: String = row.get("mode")?;
        // A relation lock's mode is always a table lock mode; anything else (a future mode) is not one we rank.
        let Some(mode) = LockLevel::from_pg_mode(&mode) else {
            continue;
        };
        let oid: i64 = row.get("relation_oid")?;
        locks.push(ObservedLock {
            relation_oid: u32::try_from(oid).unwrap_or_default(),
            relation: row.get("relation")?,
            table: row.get("table_name")?,
            mode,
            granted: row.get("granted")?,
            pid: row.get("pid")?,
            application_name: row.get("application_name")?,
            backend_type: row.get("backend_type")?,
        });
    }
    Ok(locks)
}

/// The WAL insert position, in bytes since the start of WAL.
pub async fn wal_position(client: &dyn Session) -> Result<u64, DbError> {
    let lsn: i64 = client.query_one(WAL_POSITION, &[]).await?.get("lsn")?;
    Ok(u64::try_from(lsn).unwrap_or_default())
}

/// The sizes of `tables`, in their order.
pub async fn relation_sizes(
    client: &dyn Session,
    tables: &[u32],
) -> Result<Vec<RelationSize>, DbError> {
    let rows = client
        .rows(RELATION_SIZES, &[oid_list(tables).into()])
        .await?;
    rows.iter()
        .map(|row| {
            let oid: i64 = row.get("oid")?;
            Ok(RelationSize {
                oid: u32::try_from(oid).unwrap_or_default(),
                total_bytes: row.get("total_bytes")?,
                index_bytes: row.get("index_bytes")?,
            })
        })
        .collect()
}

/// The statements of a key-lookup workload on one table with a single integer key: a lookup of the first row at
/// or above a drawn key, and an update of that row that sets its key to itself (a new row version and its WAL,
/// no change of data). Both take one `int8` parameter and name only the key, so a column the migration adds or
/// drops does not change their result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyWorkloadSql {
    pub lookup: String,
    pub update: String,
}

/// The key-lookup workload's SQL for `table` (qualified, quoted) and its integer `key` (quoted).
pub fn key_workload_sql(table: &str, key: &str) -> KeyWorkloadSql {
    KeyWorkloadSql {
        lookup: format!("SELECT {key} FROM {table} WHERE {key} >= $1::int8 ORDER BY {key} LIMIT 1"),
        update: format!(
            "UPDATE {table} SET {key} = {key} WHERE {key} = \
             (SELECT {key} FROM {table} WHERE {key} >= $1::int8 ORDER BY {key} LIMIT 1)"
        ),
    }
}

/// The smallest and largest key of `table` (qualified, quoted), as `int8`; `None` for an empty table.
pub async fn key_range(
    client: &dyn Session,
    table: &str,
    key: &str,
) -> Result<Option<(i64, i64)>, DbError> {
    let sql = format!(
        "SELECT coalesce(min({key})::int8, 0) AS low, coalesce(max({key})::int8, -1) AS high FROM {table}"
    );
    let row = client.query_one(sql.as_str(), &[]).await?;
    let (low, high): (i64, i64) = (row.get("low")?, row.get("high")?);
    Ok((low <= high).then_some((low, high)))
}

/// `shared_buffers` and `maintenance_work_mem` in bytes.
const MEMORY_SETTINGS: &str = "
SELECT pg_size_bytes(current_setting('shared_buffers'))::int8 AS shared_buffers,
       pg_size_bytes(current_setting('maintenance_work_mem'))::int8 AS maintenance_work_mem";

/// The server's `shared_buffers` and `maintenance_work_mem`, in bytes. Reads settings only (no table), so it may
/// run inside the source's read-only transaction.
pub async fn memory_settings(client: &dyn Session) -> Result<(u64, u64), DbError> {
    let row = client.query_one(MEMORY_SETTINGS, &[]).await?;
    let shared: i64 = row.get("shared_buffers")?;
    let maintenance: i64 = row.get("maintenance_work_mem")?;
    Ok((
        u64::try_from(shared).unwrap_or_default(),
        u64::try_from(maintenance).unwrap_or_default(),
    ))
}

/// Creates an empty database `name` (an identifier the caller chose, quoted here) on a scratch server.
pub async fn create_database(client: &dyn Session, name: &str) -> Result<(), DbError> {
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    client
        .batch_execute(&format!("CREATE DATABASE {quoted}"))
        .await
}

/// One row of `pg_settings`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerSetting {
    pub name: String,
    /// As `current_setting` shows it (`128MB`, `on`, `5min`).
    pub value: String,
    /// When a change takes effect: `postmaster` (a restart), `sighup` (a reload), `superuser`, `user`, ….
    pub context: String,
}

const SERVER_SETTINGS: &str = "\
SELECT name, current_setting(name) AS value, context FROM pg_settings WHERE name = ANY($1::text[]) ORDER BY name";

/// The settings named `names` that the server knows (an unknown name is left out). Reads `pg_settings` only, so
/// it may run inside the source's read-only transaction.
pub async fn server_settings(
    client: &dyn Session,
    names: &[&str],
) -> Result<Vec<ServerSetting>, DbError> {
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    let rows = client.rows(SERVER_SETTINGS, &[names.into()]).await?;
    rows.iter()
        .map(|row| {
            Ok(ServerSetting {
                name: row.get("name")?,
                value: row.get("value")?,
                context: row.get("context")?,
            })
        })
        .collect()
}

/// `ALTER SYSTEM SET name = 'value'` on a scratch server (the server validates the value: an unknown method or
/// a value out of range is its error). It takes effect at the next [`reload_config`] (or restart, for a setting
/// of context `postmaster`). `name` must be a setting's name as `pg_settings` spells it.
pub async fn alter_system_set(
    client: &dyn Session,
    name: &str,
    value: &str,
) -> Result<(), DbError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return Err(DbError::other(
            "setting a scratch server's configuration",
            format!("`{name}` is not a setting's name"),
        ));
    }
    client
        .batch_execute(&format!(
            "ALTER SYSTEM SET {name} = '{}'",
            value.replace('\'', "''")
        ))
        .await
}

/// `CHECKPOINT` on a scratch server: a copy just loaded has every page newer than the last checkpoint, so its first
/// changes would log no full-page images, unlike a production table whose pages a checkpoint long since wrote.
pub async fn checkpoint(client: &dyn Session) -> Result<(), DbError> {
    client.batch_execute("CHECKPOINT").await
}

/// When this session last loaded the configuration files, as text (only compared for a change).
const CONF_LOAD_TIME: &str = "SELECT pg_conf_load_time()::text AS loaded";

/// Asks the server to reload its configuration and waits (up to `wait`) until this session has: `pg_reload_conf`
/// only signals the postmaster, which re-reads the files and signals every backend, each applying them before
/// its next command; reading the settings back before that would read the old values. Returns whether the
/// reload was seen in time.
pub async fn reload_config(
    client: &dyn Session,
    wait: std::time::Duration,
) -> Result<bool, DbError> {
    let loaded = |row: crate::driver::Row| -> Result<String, DbError> { Ok(row.get("loaded")?) };
    let before = loaded(client.query_one(CONF_LOAD_TIME, &[]).await?)?;
    client.batch_execute("SELECT pg_reload_conf()").await?;
    let deadline = std::time::Instant::now() + wait;
    loop {
        if loaded(client.query_one(CONF_LOAD_TIME, &[]).await?)? != before {
            return Ok(true);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
