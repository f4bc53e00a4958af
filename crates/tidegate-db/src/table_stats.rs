//! Read-only catalog and statistics queries for `tidegate plan`: a table's size, its write counters, a timed
//! bounded read (the sequential scan rate), the sessions holding locks on it, long transactions, and which
//! migrations `tidegate apply` recorded.
//!
//! **Invariant:** nothing here writes. Every function expects to run inside a transaction the caller opened with
//! [`begin_read_only`] (so PostgreSQL itself refuses any write), and the ones that may fail on a single table
//! (a lock it cannot get, a statement timeout) run inside a savepoint so the transaction survives.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::Client;

/// Opens a `READ ONLY` transaction with bounded waits: `lock_timeout` (a plan never queues behind, or in front
/// of, an exclusive lock for long) and `statement_timeout`.
pub async fn begin_read_only(
    client: &Client,
    lock_timeout: Duration,
    statement_timeout: Duration,
) -> Result<(), tokio_postgres::Error> {
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
pub async fn end_read_only(client: &Client) -> Result<(), tokio_postgres::Error> {
    client.batch_execute("ROLLBACK").await
}

/// Whether the current transaction is read-only, as the server sees it (`transaction_read_only`).
pub async fn transaction_is_read_only(client: &Client) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one("SELECT current_setting('transaction_read_only')", &[])
        .await?;
    Ok(row.get::<_, String>(0) == "on")
}

/// The server's major version (`15` for 15.4), from `server_version_num`.
pub async fn server_major_version(client: &Client) -> Result<u32, tokio_postgres::Error> {
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await?;
    Ok((row.get::<_, i32>(0).max(0) as u32) / 10_000)
}

/// The size of one table as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableSize {
    /// `pg_class.oid`.
    pub oid: u32,
    /// `pg_class.relkind` (`r` table, `p` partitioned table, `m` materialized view, …).
    pub relkind: String,
    /// `pg_class.reltuples`; `None` when the table was never vacuumed or analysed (-1 since PostgreSQL 14).
    pub reltuples: Option<u64>,
    /// Bytes of the main fork (`pg_relation_size`): what a sequential scan reads.
    pub heap_bytes: u64,
    /// Heap, TOAST and indexes (`pg_total_relation_size`): what a rewrite rebuilds.
    pub total_bytes: u64,
    /// The server's block size (`block_size`, 8192 unless compiled otherwise).
    pub block_size: u64,
    /// The sizes are `pg_class.relpages` estimates: a conflicting lock kept the exact functions from running.
    pub from_catalog: bool,
}

impl TableSize {
    /// Pages of the main fork.
    pub fn heap_pages(&self) -> u64 {
        self.heap_bytes / self.block_size.max(1)
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
SELECT t.oid::oid,
       t.relkind::text,
       CASE WHEN bool_or(p.reltuples < 0) THEN -1 ELSE coalesce(sum(p.reltuples), 0) END::float8,
       coalesce(sum({heap}), 0)::bigint,
       coalesce(sum({total}), 0)::bigint,
       current_setting('block_size')::bigint
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
/// `lock_timeout`), the sizes come from `pg_class.relpages` and [`TableSize::from_catalog`] says so. Runs in a
/// savepoint of the caller's transaction.
pub async fn table_size(
    client: &Client,
    schema: &str,
    name: &str,
) -> Result<Option<TableSize>, tokio_postgres::Error> {
    let exact = TABLE_SIZE
        .replace("{heap}", EXACT_HEAP)
        .replace("{total}", EXACT_TOTAL);
    client.batch_execute("SAVEPOINT tidegate_plan_size").await?;
    let (row, from_catalog) = match client.query_opt(&exact, &[&schema, &name]).await {
        Ok(row) => {
            client
                .batch_execute("RELEASE SAVEPOINT tidegate_plan_size")
                .await?;
            (row, false)
        }
        Err(error) if crate::connect::sqlstate(&error) == Some("55P03") => {
            client
                .batch_execute("ROLLBACK TO SAVEPOINT tidegate_plan_size")
                .await?;
            let catalog = TABLE_SIZE
                .replace("{heap}", CATALOG_HEAP)
                .replace("{total}", CATALOG_TOTAL);
            (client.query_opt(&catalog, &[&schema, &name]).await?, true)
        }
        Err(error) => return Err(error),
    };
    let Some(row) = row else {
        return Ok(None);
    };
    let reltuples: f64 = row.get(2);
    Ok(Some(TableSize {
        oid: row.get(0),
        relkind: row.get(1),
        reltuples: (reltuples >= 0.0).then_some(reltuples as u64),
        heap_bytes: row.get::<_, i64>(3).max(0) as u64,
        total_bytes: row.get::<_, i64>(4).max(0) as u64,
        block_size: row.get::<_, i64>(5).max(1) as u64,
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
    client: &Client,
    size: &TableSize,
    max_pages: u64,
    server_major: u32,
) -> Result<Result<ScanSample, ScanSkipped>, tokio_postgres::Error> {
    if !matches!(size.relkind.as_str(), "r" | "m") {
        return Ok(Err(ScanSkipped::NotATable));
    }
    let table_pages = size.heap_pages();
    let pages = table_pages.min(max_pages.max(1));
    let whole_table = pages >= table_pages;
    // The server quotes the name from the oid: nothing user-written is interpolated into the read.
    let name: String = client
        .query_one("SELECT $1::oid::regclass::text", &[&size.oid])
        .await?
        .get(0);
    let read = if whole_table {
        format!("SELECT count(*) FROM {name}")
    } else if server_major >= 14 {
        format!("SELECT count(*) FROM {name} WHERE ctid < '({pages},0)'::tid")
    } else {
        let percent = (pages as f64 / table_pages.max(1) as f64 * 100.0).clamp(0.0001, 100.0);
        format!("SELECT count(*) FROM {name} TABLESAMPLE SYSTEM ({percent:.6})")
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
                rows: row.get::<_, i64>(0).max(0) as u64,
                seconds: elapsed.saturating_sub(round_trip).as_secs_f64().max(1e-6),
                whole_table,
            })
        }
        Err(error) => {
            client
                .batch_execute("ROLLBACK TO SAVEPOINT tidegate_plan_read")
                .await?;
            Err(match crate::connect::sqlstate(&error) {
                Some("55P03") => ScanSkipped::Locked,
                Some("57014") => ScanSkipped::TimedOut,
                _ => ScanSkipped::Failed(crate::connect::describe(&error)),
            })
        }
    };
    Ok(result)
}

/// `n_tup_ins + n_tup_upd + n_tup_del` of each table in `oids` (pg_stat_user_tables). Tables without a row
/// there (no statistics yet) are absent. Call it in two separate transactions to get a rate: statistics are
/// read once per transaction.
pub async fn write_counters(
    client: &Client,
    oids: &[u32],
) -> Result<Vec<(u32, u64)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT relid::oid, (n_tup_ins + n_tup_upd + n_tup_del)::bigint \
               FROM pg_stat_user_tables WHERE relid = ANY($1::oid[])",
            &[&oids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get::<_, u32>(0), row.get::<_, i64>(1).max(0) as u64))
        .collect())
}

pub use crate::blockers::LockHolder;

const LOCK_HOLDERS: &str = "
SELECT a.pid,
       coalesce(a.application_name, ''),
       coalesce(a.usename::text, ''),
       coalesce(a.state, ''),
       extract(epoch FROM (now() - a.xact_start))::float8,
       left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 200),
       l.mode,
       l.granted
  FROM pg_locks l
  JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'relation'
   AND l.relation = $1::oid
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND l.pid <> pg_backend_pid()
 ORDER BY a.xact_start NULLS LAST, a.pid, l.mode";

/// The sessions holding or waiting for a lock on the table with `oid` (other than this one).
pub async fn lock_holders(
    client: &Client,
    oid: u32,
) -> Result<Vec<LockHolder>, tokio_postgres::Error> {
    let rows = client.query(LOCK_HOLDERS, &[&oid]).await?;
    Ok(rows
        .iter()
        .map(|row| LockHolder {
            pid: row.get(0),
            application_name: row.get(1),
            user: row.get(2),
            state: row.get(3),
            transaction_age_seconds: row.get(4),
            query: row.get(5),
            mode: tidegate_sql::LockLevel::from_pg_mode(row.get(6)),
            granted: row.get(7),
        })
        .collect())
}

const LONG_TRANSACTIONS: &str = "
SELECT a.pid,
       coalesce(a.application_name, ''),
       coalesce(a.usename::text, ''),
       coalesce(a.state, ''),
       extract(epoch FROM (now() - a.xact_start))::float8,
       left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 200)
  FROM pg_stat_activity a
 WHERE a.xact_start < now() - make_interval(secs => $1::float8)
   AND a.pid <> pg_backend_pid()
   AND a.datname = current_database()
 ORDER BY a.xact_start, a.pid";

/// Sessions of this database whose transaction has been open longer than `older_than`.
pub async fn long_transactions(
    client: &Client,
    older_than: Duration,
) -> Result<Vec<LockHolder>, tokio_postgres::Error> {
    let rows = client
        .query(LONG_TRANSACTIONS, &[&older_than.as_secs_f64()])
        .await?;
    Ok(rows
        .iter()
        .map(|row| LockHolder {
            pid: row.get(0),
            application_name: row.get(1),
            user: row.get(2),
            state: row.get(3),
            transaction_age_seconds: row.get(4),
            query: row.get(5),
            mode: None,
            granted: false,
        })
        .collect())
}

/// The versions `tidegate.migrations` records as in the schema — applied by `tidegate apply`, or baselined by
/// `tidegate baseline` (another framework ran them) — or `None` when that table does not exist (nothing was ever
/// applied by tidegate: everything is pending). A migration that failed or was interrupted part-way is still
/// pending.
pub async fn applied_versions(
    client: &Client,
) -> Result<Option<Vec<String>>, tokio_postgres::Error> {
    let exists = client
        .query_one("SELECT to_regclass('tidegate.migrations') IS NOT NULL", &[])
        .await?;
    if !exists.get::<_, bool>(0) {
        return Ok(None);
    }
    let rows = client
        .query(
            "SELECT version::text FROM tidegate.migrations WHERE status IN ('applied', 'baselined')",
            &[],
        )
        .await?;
    Ok(Some(rows.iter().map(|row| row.get(0)).collect()))
}

/// One table's size for a statistics file: `reltuples` (tables never analysed are left out: their size is
/// unknown, not zero) and `pg_total_relation_size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogTableSize {
    pub schema: String,
    pub name: String,
    pub rows: u64,
    pub bytes: u64,
}

/// The sizes of every ordinary, partitioned and materialized table outside the system schemas.
pub async fn all_table_sizes(
    client: &Client,
) -> Result<Vec<CatalogTableSize>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text, c.reltuples::float8, \
                    pg_total_relation_size(c.oid)::bigint \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE c.relkind IN ('r', 'p', 'm') \
                AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
              ORDER BY 1, 2",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .filter(|row| row.get::<_, f64>(2) >= 0.0)
        .map(|row| CatalogTableSize {
            schema: row.get(0),
            name: row.get(1),
            rows: row.get::<_, f64>(2) as u64,
            bytes: row.get::<_, i64>(3).max(0) as u64,
        })
        .collect())
}

/// What `apply` reads of a table before planning a migration that touches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LiveTable {
    /// Rows: exact when `exact`, else at least `limit` (the catalog's estimate, or `limit` itself when the table
    /// could not be counted within the lock and statement timeouts — unknown counts as large).
    pub rows: u64,
    pub exact: bool,
    /// `relkind = 'p'`: CREATE INDEX CONCURRENTLY does not work on it.
    pub partitioned: bool,
}

const LIVE_TABLE: &str = "
SELECT c.relkind = 'p',
       CASE WHEN c.relkind = 'p'
            THEN (SELECT CASE WHEN bool_or(p.reltuples < 0) THEN -1 ELSE coalesce(sum(p.reltuples), 0) END
                    FROM pg_partition_tree(c.oid) t JOIN pg_class p ON p.oid = t.relid WHERE t.isleaf)
            ELSE c.reltuples END::float8,
       format('%I.%I', n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = to_regclass($1::text) AND c.relkind IN ('r', 'p', 'm')";

/// Whether `table` (a qualified, quoted name as SQL spells it; unqualified follows `search_path`) exists and how
/// many rows it has, counted exactly up to `limit`: the catalog's estimate (`reltuples`) can be stale or missing
/// on a table nobody has analysed, so when it is below `limit` the rows are counted with `LIMIT limit`, which
/// reads at most that many. Runs in a savepoint of the caller's read-only transaction; a lock or statement
/// timeout makes the size unknown, reported as `limit` rows (not exact): unknown is not small.
pub async fn live_table(
    client: &Client,
    table: &str,
    limit: u64,
) -> Result<Option<LiveTable>, tokio_postgres::Error> {
    let Some(row) = client.query_opt(LIVE_TABLE, &[&table]).await? else {
        return Ok(None);
    };
    let partitioned: bool = row.get(0);
    let reltuples: f64 = row.get(1);
    let qualified: String = row.get(2);
    if reltuples >= limit as f64 {
        return Ok(Some(LiveTable {
            rows: reltuples as u64,
            exact: false,
            partitioned,
        }));
    }
    client.batch_execute("SAVEPOINT tidegate_live_rows").await?;
    let counted = client
        .query_one(
            &format!("SELECT count(*) FROM (SELECT FROM {qualified} LIMIT $1) bounded"),
            &[&(limit.min(i64::MAX as u64) as i64)],
        )
        .await;
    match counted {
        Ok(row) => {
            client
                .batch_execute("RELEASE SAVEPOINT tidegate_live_rows")
                .await?;
            let rows = row.get::<_, i64>(0).max(0) as u64;
            Ok(Some(LiveTable {
                rows,
                exact: rows < limit,
                partitioned,
            }))
        }
        Err(error)
            if matches!(
                crate::connect::sqlstate(&error),
                Some("55P03") | Some("57014")
            ) =>
        {
            client
                .batch_execute("ROLLBACK TO SAVEPOINT tidegate_live_rows")
                .await?;
            Ok(Some(LiveTable {
                rows: limit,
                exact: false,
                partitioned,
            }))
        }
        Err(error) => Err(error),
    }
}

/// Names in use outside the system schemas: relations (tables, indexes, sequences, views) and constraints, each
/// as (schema, name). PostgreSQL picks a name for an unnamed index or constraint that none of these has, and
/// apply must pick the same one when it runs the statement in another form.
pub async fn names_in_use(client: &Client) -> Result<NamesInUse, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT true, n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' \
             UNION ALL \
             SELECT false, n.nspname::text, o.conname::text FROM pg_constraint o JOIN pg_namespace n ON n.oid = o.connamespace \
              WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')",
            &[],
        )
        .await?;
    let mut names = NamesInUse::default();
    for row in &rows {
        let name = (row.get::<_, String>(1), row.get::<_, String>(2));
        if row.get::<_, bool>(0) {
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
pub async fn creation_schema(client: &Client) -> Result<String, tokio_postgres::Error> {
    let row = client
        .query_one("SELECT coalesce(current_schema(), 'public')::text", &[])
        .await?;
    Ok(row.get(0))
}
