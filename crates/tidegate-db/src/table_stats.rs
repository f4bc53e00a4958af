//! Read-only catalog and statistics queries for `tidegate plan`: a table's size, its write counters, a timed
//! bounded read (the sequential scan rate), the sessions holding locks on it, long transactions, and which
//! migrations `tidegate apply` recorded.
//!
//! **Invariant:** nothing here writes. Every function expects to run inside a transaction the caller opened with
//! [`begin_read_only`] (so PostgreSQL itself refuses any write), and the ones that may fail on a single table
//! (a lock it cannot get, a statement timeout) run inside a savepoint so the transaction survives.

use std::time::{Duration, Instant};

use serde::Serialize;
use tidegate_sql::TableSize;

use crate::connect::DbError;
use crate::driver::{Session, SessionExt};

/// Opens a `READ ONLY` transaction with bounded waits: `lock_timeout` (a plan never queues behind, or in front
/// of, an exclusive lock for long) and `statement_timeout`.
pub async fn begin_read_only(
    client: &dyn Session,
    lock_timeout: Duration,
    statement_timeout: Duration,
) -> Result<(), DbError> {
    client
        .batch_execute(&format!(
            "BEGIN TRANSACTION READ ONLY; \
             SET LOCAL lock_timeout = '{}ms'; \
             SET LOCAL statement_timeout = '{}ms'",
            lock_timeout.as_millis().max(1),
            statement_timeout.as_millis().max(1)
        ))
        .await
}

/// Ends the read-only transaction (a rollback: there is nothing to keep).
pub async fn end_read_only(client: &dyn Session) -> Result<(), DbError> {
    client.batch_execute("ROLLBACK").await
}

/// Whether the current transaction is read-only, as the server sees it (`transaction_read_only`).
pub async fn transaction_is_read_only(client: &dyn Session) -> Result<bool, DbError> {
    let row = client
        .query_one(
            "SELECT current_setting('transaction_read_only') AS read_only",
            &[],
        )
        .await?;
    Ok(row.get::<String>("read_only")? == "on")
}

/// The server's major version (`15` for 15.4), from `server_version_num`.
pub async fn server_major_version(client: &dyn Session) -> Result<u32, DbError> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int AS version_num",
            &[],
        )
        .await?;
    Ok((row.get::<i64>("version_num")?.max(0) as u32) / 10_000)
}

/// One table as plan's probe reads it from the catalog: its [`TableSize`] and what reading it further needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableReading {
    /// `pg_class.oid`.
    pub oid: u32,
    /// `pg_class.relkind` (`r` table, `p` partitioned table, `m` materialized view, …).
    pub relkind: String,
    /// Rows from `pg_class.reltuples` (an estimate; 0 when the table was never vacuumed or analysed, see
    /// `analysed`); heap bytes from `pg_relation_size` (what a sequential scan reads); total bytes from
    /// `pg_total_relation_size` (heap, TOAST and indexes: what a rewrite rebuilds).
    pub size: TableSize,
    /// Whether `pg_class.reltuples` is known (-1 since PostgreSQL 14 until the first VACUUM or ANALYZE).
    pub analysed: bool,
    /// The server's block size (`block_size`, 8192 unless compiled otherwise).
    pub block_size: u64,
    /// The sizes are `pg_class.relpages` estimates: a conflicting lock kept the exact functions from running.
    pub from_catalog: bool,
}

impl TableReading {
    /// `pg_class.reltuples`, when the table was ever vacuumed or analysed.
    pub fn reltuples(&self) -> Option<u64> {
        self.analysed.then_some(self.size.rows)
    }

    /// Bytes of the main fork.
    pub fn heap_bytes(&self) -> u64 {
        self.size.heap_bytes.unwrap_or(0)
    }

    /// Pages of the main fork.
    pub fn heap_pages(&self) -> u64 {
        self.heap_bytes() / self.block_size.max(1)
    }
}

// A partitioned table has no storage of its own: its size is the sum of its leaf partitions'. `{heap}` and
// `{total}` are the size expressions: pg_relation_size / pg_total_relation_size (exact, but they take ACCESS
// SHARE on the table) or pg_class.relpages (as of the last VACUUM/ANALYZE, but no lock).
const TABLE_SIZE: &str = "
WITH target AS (
    SELECT c.oid, c.relkind
      FROM pg_class c
     WHERE c.oid = to_regclass(format('%I.%I', $1::text, $2::text))
), parts AS (
    SELECT p.oid, p.reltuples, p.relpages, p.reltoastrelid
      FROM target t
      JOIN pg_class p
        ON p.oid = t.oid AND t.relkind <> 'p'
        OR t.relkind = 'p' AND p.oid IN (SELECT relid FROM pg_partition_tree(t.oid) WHERE isleaf)
)
SELECT t.oid::oid AS oid,
       t.relkind::text AS relkind,
       CASE WHEN bool_or(p.reltuples < 0) THEN -1 ELSE coalesce(sum(p.reltuples), 0) END::float8 AS reltuples,
       coalesce(sum({heap}), 0)::bigint AS heap_bytes,
       coalesce(sum({total}), 0)::bigint AS total_bytes,
       current_setting('block_size')::bigint AS block_size
  FROM target t LEFT JOIN parts p ON true
 GROUP BY t.oid, t.relkind";

const EXACT_HEAP: &str = "pg_relation_size(p.oid)";
const EXACT_TOTAL: &str = "pg_total_relation_size(p.oid)";
const CATALOG_HEAP: &str = "p.relpages::bigint * current_setting('block_size')::bigint";
const CATALOG_TOTAL: &str = "(p.relpages::bigint \
    + coalesce((SELECT relpages FROM pg_class WHERE oid = p.reltoastrelid), 0) \
    + coalesce((SELECT sum(i.relpages) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
                 WHERE x.indrelid = p.oid), 0)) * current_setting('block_size')::bigint";

/// The size of `schema.name`, or `None` when no such relation exists. For a partitioned table, the sums over
/// its leaf partitions. When another session holds ACCESS EXCLUSIVE (so the exact sizes cannot be read within
/// `lock_timeout`), the sizes come from `pg_class.relpages` and [`TableReading::from_catalog`] says so. Runs in a
/// savepoint of the caller's transaction.
pub async fn table_size(
    client: &dyn Session,
    schema: &str,
    name: &str,
) -> Result<Option<TableReading>, DbError> {
    let exact = TABLE_SIZE
        .replace("{heap}", EXACT_HEAP)
        .replace("{total}", EXACT_TOTAL);
    client.batch_execute("SAVEPOINT tidegate_plan_size").await?;
    let params = [schema.into(), name.into()];
    let (row, from_catalog) = match client.query_opt(&exact, &params).await {
        Ok(row) => {
            client
                .batch_execute("RELEASE SAVEPOINT tidegate_plan_size")
                .await?;
            (row, false)
        }
        Err(error) if error.code() == Some("55P03") => {
            client
                .batch_execute("ROLLBACK TO SAVEPOINT tidegate_plan_size")
                .await?;
            let catalog = TABLE_SIZE
                .replace("{heap}", CATALOG_HEAP)
                .replace("{total}", CATALOG_TOTAL);
            (client.query_opt(&catalog, &params).await?, true)
        }
        Err(error) => return Err(error),
    };
    let Some(row) = row else {
        return Ok(None);
    };
    let reltuples: f64 = row.get("reltuples")?;
    Ok(Some(TableReading {
        oid: row.get("oid")?,
        relkind: row.get("relkind")?,
        size: TableSize::estimated(reltuples.max(0.0) as u64)
            .with_heap_bytes(row.get::<i64>("heap_bytes")?.max(0) as u64)
            .with_total_bytes(row.get::<i64>("total_bytes")?.max(0) as u64),
        analysed: reltuples >= 0.0,
        block_size: row.get::<i64>("block_size")?.max(1) as u64,
        from_catalog,
    }))
}

/// A timed read of the first pages of a table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScanSample {
    /// Pages the read covered (`min(max_pages, pages of the table)`).
    pub pages: u64,
    /// Rows found in those pages.
    pub rows: u64,
    /// Time the read took, in seconds (client-measured, round trip subtracted).
    pub seconds: f64,
    /// Whether the read covered the whole table (then `rows` is an exact count).
    pub whole_table: bool,
}

/// Why a bounded read did not happen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ScanSkipped {
    /// Another session holds or waits for a lock that conflicts with ACCESS SHARE (55P03 on `lock_timeout`).
    Locked,
    /// The read exceeded `statement_timeout` (57014).
    TimedOut,
    /// Any other server error, described.
    Failed(String),
    /// Not an ordinary table or materialized view (a partitioned table, a view, …): no pages of its own to read.
    NotATable,
}

/// Times `SELECT count(*)` over the first `max_pages` pages of the table: a TID range scan (PostgreSQL 14 and
/// later) reads exactly those pages in order, so its time is that of a sequential scan of that many pages. Before
/// 14 a `TABLESAMPLE SYSTEM` read of the same fraction of pages stands in (block sampling: closer to random
/// reads, so a pessimistic rate). The time is measured by the client around the read, minus the fastest of three
/// `SELECT 1` round trips, so the network is not counted as scan time. Runs in a savepoint: a lock or timeout
/// error leaves the caller's transaction usable.
pub async fn timed_bounded_read(
    client: &dyn Session,
    size: &TableReading,
    max_pages: u64,
    server_major: u32,
) -> Result<Result<ScanSample, ScanSkipped>, DbError> {
    if !matches!(size.relkind.as_str(), "r" | "m") {
        return Ok(Err(ScanSkipped::NotATable));
    }
    let table_pages = size.heap_pages();
    let pages = table_pages.min(max_pages.max(1));
    let whole_table = pages >= table_pages;
    // The server quotes the name from the oid: nothing user-written is interpolated into the read.
    let name: String = client
        .query_one("SELECT $1::oid::regclass::text AS name", &[size.oid.into()])
        .await?
        .get("name")?;
    let read = if whole_table {
        format!("SELECT count(*) AS rows FROM {name}")
    } else if server_major >= 14 {
        format!("SELECT count(*) AS rows FROM {name} WHERE ctid < '({pages},0)'::tid")
    } else {
        let percent = (pages as f64 / table_pages.max(1) as f64 * 100.0).clamp(0.0001, 100.0);
        format!("SELECT count(*) AS rows FROM {name} TABLESAMPLE SYSTEM ({percent:.6})")
    };
    let mut round_trip = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        client.query_one("SELECT 1", &[]).await?;
        round_trip = round_trip.min(started.elapsed());
    }
    client.batch_execute("SAVEPOINT tidegate_plan_read").await?;
    let started = Instant::now();
    let counted = client.query_one(&read, &[]).await;
    let elapsed = started.elapsed();
    let result = match counted {
        Ok(row) => {
            client
                .batch_execute("RELEASE SAVEPOINT tidegate_plan_read")
                .await?;
            Ok(ScanSample {
                pages,
                rows: row.get::<i64>("rows")?.max(0) as u64,
                seconds: elapsed.saturating_sub(round_trip).as_secs_f64().max(1e-6),
                whole_table,
            })
        }
        Err(error) => {
            client
                .batch_execute("ROLLBACK TO SAVEPOINT tidegate_plan_read")
                .await?;
            Err(match error.code() {
                Some("55P03") => ScanSkipped::Locked,
                Some("57014") => ScanSkipped::TimedOut,
                _ => ScanSkipped::Failed(error.message),
            })
        }
    };
    Ok(result)
}

/// `n_tup_ins + n_tup_upd + n_tup_del` of each table in `oids` (pg_stat_user_tables). Tables without a row
/// there (no statistics yet) are absent. Call it in two separate transactions to get a rate: statistics are
/// read once per transaction.
pub async fn write_counters(
    client: &dyn Session,
    oids: &[u32],
) -> Result<Vec<(u32, u64)>, DbError> {
    let rows = client
        .rows(
            "SELECT relid::oid AS oid, (n_tup_ins + n_tup_upd + n_tup_del)::bigint AS writes \
               FROM pg_stat_user_tables WHERE relid = ANY($1::text[]::oid[])",
            &[oids.iter().map(u32::to_string).collect::<Vec<_>>().into()],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.get::<u32>("oid")?,
                row.get::<i64>("writes")?.max(0) as u64,
            ))
        })
        .collect()
}

/// The server's `server_version_num` (150020 for 15.20) and its clock now, as RFC 3339 UTC: what a
/// measurement records about where and when it was taken.
pub async fn server_version_and_time(client: &dyn Session) -> Result<(i32, String), DbError> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int4 AS version, \
                    to_char(now() AT TIME ZONE 'utc', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS measured_at",
            &[],
        )
        .await?;
    Ok((row.get("version")?, row.get("measured_at")?))
}

/// How many indexes the table with `oid` has (valid or not: an invalid one is still maintained by writes), the
/// primary key included: each is one more entry for every non-HOT row version a write makes.
pub async fn index_count(client: &dyn Session, oid: u32) -> Result<u32, DbError> {
    let row = client
        .query_one(
            "SELECT count(*)::int8 AS indexes FROM pg_index WHERE indrelid = $1::text::oid",
            &[oid.to_string().into()],
        )
        .await?;
    Ok(row.get::<i64>("indexes")?.clamp(0, i64::from(u32::MAX)) as u32)
}

pub use crate::blockers::LockHolder;

const LOCK_HOLDERS: &str = "
SELECT a.pid AS pid,
       coalesce(a.application_name, '') AS application_name,
       coalesce(a.usename::text, '') AS user_name,
       coalesce(a.state, '') AS state,
       extract(epoch FROM (now() - a.xact_start))::float8 AS transaction_age_seconds,
       left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 200) AS query,
       l.mode AS mode,
       l.granted AS granted
  FROM pg_locks l
  JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'relation'
   AND l.relation = $1::oid
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND l.pid <> pg_backend_pid()
 ORDER BY a.xact_start NULLS LAST, a.pid, l.mode";

/// The sessions holding or waiting for a lock on the table with `oid` (other than this one).
pub async fn lock_holders(client: &dyn Session, oid: u32) -> Result<Vec<LockHolder>, DbError> {
    let rows = client.rows(LOCK_HOLDERS, &[oid.into()]).await?;
    rows.iter()
        .map(|row| {
            let mode: String = row.get("mode")?;
            Ok(LockHolder {
                mode: tidegate_sql::LockLevel::from_pg_mode(&mode),
                granted: row.get("granted")?,
                ..LockHolder::from_activity_row(row)?
            })
        })
        .collect()
}

const LONG_TRANSACTIONS: &str = "
SELECT a.pid AS pid,
       coalesce(a.application_name, '') AS application_name,
       coalesce(a.usename::text, '') AS user_name,
       coalesce(a.state, '') AS state,
       extract(epoch FROM (now() - a.xact_start))::float8 AS transaction_age_seconds,
       left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 200) AS query
  FROM pg_stat_activity a
 WHERE a.xact_start < now() - make_interval(secs => $1::float8)
   AND a.pid <> pg_backend_pid()
   AND a.datname = current_database()
 ORDER BY a.xact_start, a.pid";

/// Sessions of this database whose transaction has been open longer than `older_than`.
pub async fn long_transactions(
    client: &dyn Session,
    older_than: Duration,
) -> Result<Vec<LockHolder>, DbError> {
    let rows = client
        .rows(LONG_TRANSACTIONS, &[older_than.as_secs_f64().into()])
        .await?;
    rows.iter()
        .map(|row| {
            Ok(LockHolder {
                granted: false,
                ..LockHolder::from_activity_row(row)?
            })
        })
        .collect()
}

/// The versions `tidegate.migrations` records as in the schema — applied by `tidegate apply`, or baselined by
/// `tidegate baseline` (another framework ran them) — or `None` when that table does not exist (nothing was ever
/// applied by tidegate: everything is pending). A migration that failed or was interrupted part-way is still
/// pending.
pub async fn applied_versions(client: &dyn Session) -> Result<Option<Vec<String>>, DbError> {
    let exists = client
        .query_one(
            "SELECT to_regclass('tidegate.migrations') IS NOT NULL AS present",
            &[],
        )
        .await?;
    if !exists.get::<bool>("present")? {
        return Ok(None);
    }
    let rows = client
        .rows(
            "SELECT version::text AS version FROM tidegate.migrations WHERE status IN ('applied', 'baselined')",
            &[],
        )
        .await?;
    Ok(Some(
        rows.iter()
            .map(|row| row.get("version"))
            .collect::<Result<_, _>>()?,
    ))
}

/// One table's size for a statistics file: rows from `reltuples` (tables never analysed are left out: their
/// size is unknown, not zero) and total bytes from `pg_total_relation_size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogTableSize {
    pub schema: String,
    pub name: String,
    pub size: TableSize,
}

/// The sizes of every ordinary, partitioned and materialized table outside the system schemas.
pub async fn all_table_sizes(client: &dyn Session) -> Result<Vec<CatalogTableSize>, DbError> {
    let rows = client
        .rows(
            "SELECT n.nspname::text AS schema, c.relname::text AS name, c.reltuples::float8 AS reltuples, \
                    pg_total_relation_size(c.oid)::bigint AS bytes \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE c.relkind IN ('r', 'p', 'm') \
                AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
              ORDER BY 1, 2",
            &[],
        )
        .await?;
    let mut sizes = Vec::new();
    for row in &rows {
        let reltuples: f64 = row.get("reltuples")?;
        if reltuples >= 0.0 {
            sizes.push(CatalogTableSize {
                schema: row.get("schema")?,
                name: row.get("name")?,
                size: TableSize::estimated(reltuples as u64)
                    .with_total_bytes(row.get::<i64>("bytes")?.max(0) as u64),
            });
        }
    }
    Ok(sizes)
}

/// What `apply` reads of a table before planning a migration that touches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LiveTable {
    /// Rows: exact when `rows_exact`, else at least `limit` (the catalog's estimate, or `limit` itself when the
    /// table could not be counted within the lock and statement timeouts — unknown counts as large).
    pub size: TableSize,
    /// `relkind = 'p'`: CREATE INDEX CONCURRENTLY does not work on it.
    pub partitioned: bool,
}

const LIVE_TABLE: &str = "
SELECT c.relkind = 'p' AS partitioned,
       CASE WHEN c.relkind = 'p'
            THEN (SELECT CASE WHEN bool_or(p.reltuples < 0) THEN -1 ELSE coalesce(sum(p.reltuples), 0) END
                    FROM pg_partition_tree(c.oid) t JOIN pg_class p ON p.oid = t.relid WHERE t.isleaf)
            ELSE c.reltuples END::float8 AS reltuples,
       format('%I.%I', n.nspname, c.relname) AS qualified
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = to_regclass($1::text) AND c.relkind IN ('r', 'p', 'm')";

/// Whether `table` (a qualified, quoted name as SQL spells it; unqualified follows `search_path`) exists and how
/// many rows it has, counted exactly up to `limit`: the catalog's estimate (`reltuples`) can be stale or missing
/// on a table nobody has analysed, so when it is below `limit` the rows are counted with `LIMIT limit`, which
/// reads at most that many. Runs in a savepoint of the caller's read-only transaction; a lock or statement
/// timeout makes the size unknown, reported as `limit` rows (not exact): unknown is not small.
pub async fn live_table(
    client: &dyn Session,
    table: &str,
    limit: u64,
) -> Result<Option<LiveTable>, DbError> {
    let Some(row) = client.query_opt(LIVE_TABLE, &[table.into()]).await? else {
        return Ok(None);
    };
    let partitioned: bool = row.get("partitioned")?;
    let reltuples: f64 = row.get("reltuples")?;
    let qualified: String = row.get("qualified")?;
    if reltuples >= limit as f64 {
        return Ok(Some(LiveTable {
            size: TableSize::estimated(reltuples as u64),
            partitioned,
        }));
    }
    client.batch_execute("SAVEPOINT tidegate_live_rows").await?;
    let counted = client
        .query_one(
            &format!("SELECT count(*) AS rows FROM (SELECT FROM {qualified} LIMIT $1) bounded"),
            &[(limit.min(i64::MAX as u64) as i64).into()],
        )
        .await;
    match counted {
        Ok(row) => {
            client
                .batch_execute("RELEASE SAVEPOINT tidegate_live_rows")
                .await?;
            let rows = row.get::<i64>("rows")?.max(0) as u64;
            Ok(Some(LiveTable {
                size: TableSize {
                    rows_exact: rows < limit,
                    ..TableSize::estimated(rows)
                },
                partitioned,
            }))
        }
        Err(error) if matches!(error.code(), Some("55P03") | Some("57014")) => {
            client
                .batch_execute("ROLLBACK TO SAVEPOINT tidegate_live_rows")
                .await?;
            Ok(Some(LiveTable {
                size: TableSize::estimated(limit),
                partitioned,
            }))
        }
        Err(error) => Err(error),
    }
}

/// Names in use outside the system schemas: relations (tables, indexes, sequences, views) and constraints, each
/// as (schema, name). PostgreSQL picks a name for an unnamed index or constraint that none of these has, and
/// apply must pick the same one when it runs the statement in another form.
pub async fn names_in_use(client: &dyn Session) -> Result<NamesInUse, DbError> {
    let rows = client
        .rows(
            "SELECT true AS relation, n.nspname::text AS schema, c.relname::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' \
             UNION ALL \
             SELECT false, n.nspname::text, o.conname::text FROM pg_constraint o JOIN pg_namespace n ON n.oid = o.connamespace \
              WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')",
            &[],
        )
        .await?;
    let mut names = NamesInUse::default();
    for row in &rows {
        let name = (row.get::<String>("schema")?, row.get::<String>("name")?);
        if row.get::<bool>("relation")? {
            names.relations.push(name);
        } else {
            names.constraints.push(name);
        }
    }
    Ok(names)
}

/// Relation and constraint names, each as (schema, name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamesInUse {
    pub relations: Vec<(String, String)>,
    pub constraints: Vec<(String, String)>,
}

/// The first schema of `search_path` that exists: where an unqualified CREATE puts its object.
pub async fn creation_schema(client: &dyn Session) -> Result<String, DbError> {
    let row = client
        .query_one(
            "SELECT coalesce(current_schema(), 'public')::text AS schema",
            &[],
        )
        .await?;
    Ok(row.get("schema")?)
}
