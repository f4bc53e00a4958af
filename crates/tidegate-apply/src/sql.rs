//! Every SQL string `apply` sends (besides the migrations' own statements), in one place.

/// One apply at a time per database: a session advisory lock on a fixed key.
pub const TRY_APPLY_LOCK: &str =
    "SELECT pg_try_advisory_lock(hashtextextended('tidegate:apply', 0)) AS locked";
pub const RELEASE_APPLY_LOCK: &str =
    "SELECT pg_advisory_unlock(hashtextextended('tidegate:apply', 0)) AS unlocked";

/// Who holds the apply lock (an advisory lock's 64-bit key is split into classid:objid).
pub const APPLY_LOCK_HOLDER: &str = "
SELECT a.pid AS pid, coalesce(a.application_name, '') AS application,
       coalesce(a.client_addr::text, 'local') AS client,
       coalesce(extract(epoch FROM now() - a.backend_start), 0)::float8 AS connected_seconds
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
   AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('tidegate:apply', 0)
 LIMIT 1";

pub const READ_ONLY: &str = "SELECT current_setting('transaction_read_only') = 'on' AS read_only";

pub const HISTORY_EXISTS: &str = "SELECT to_regclass('tidegate.migrations') IS NOT NULL AS present";

pub const READ_HISTORY: &str =
    "SELECT version, checksum, status, phases_done FROM tidegate.migrations ORDER BY version";

/// Starts (or restarts, after an interruption) a migration's record. A restart records the file's current
/// checksum: the planner lets a failed migration whose phases all rolled back be fixed and run again, and the
/// record must then describe the file that ran, or the next apply would call the file changed.
pub const BEGIN_MIGRATION: &str = "
INSERT INTO tidegate.migrations (version, name, checksum, status, phases)
VALUES ($1, $2, $3, 'running', $4::text::jsonb)
ON CONFLICT (version) DO UPDATE SET status = 'running', last_error = NULL, phases = EXCLUDED.phases,
                                    name = EXCLUDED.name, checksum = EXCLUDED.checksum
RETURNING phases_done, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS started_at";

/// The phases recorded when a migration (re)started.
pub const RECORDED_PHASES: &str =
    "SELECT phases::text AS phases FROM tidegate.migrations WHERE version = $1";

/// Marks phase `$2` (1-based count of phases done) of version `$1`; for phases outside a transaction.
pub const PHASE_DONE: &str = "UPDATE tidegate.migrations SET phases_done = $2 WHERE version = $1";

/// The same, as a literal statement that runs inside a schema phase's own transaction.
pub fn phase_done_literal(version: &str, phases_done: usize) -> String {
    format!(
        "UPDATE tidegate.migrations SET phases_done = {phases_done} WHERE version = {}",
        quote_literal(version)
    )
}

pub const MIGRATION_APPLIED: &str = "
UPDATE tidegate.migrations
   SET status = 'applied', applied_at = now(), last_error = NULL,
       duration_ms = (extract(epoch FROM now() - started_at) * 1000)::bigint
 WHERE version = $1";

pub const MIGRATION_FAILED: &str =
    "UPDATE tidegate.migrations SET status = 'failed', last_error = $2 WHERE version = $1";

/// A backfill run of this spec that completed since the migration (re)started: its phase is done even if the
/// apply that ran it crashed before recording so.
pub const COMPLETED_RUN_FOR_SPEC: &str = "
SELECT r.id AS run_id FROM tidegate.runs r, tidegate.migrations m
 WHERE m.version = $1 AND r.spec = $2::text::jsonb AND r.status = 'completed' AND r.started_at >= m.started_at
 ORDER BY r.id DESC LIMIT 1";

pub const JOURNAL: &str =
    "INSERT INTO tidegate.journal (run_id, migration_version, event, detail) \
                           VALUES (NULL, $1, $2, $3::text::jsonb)";

/// A string as an SQL literal (standard_conforming_strings: only quotes need doubling).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// An identifier quoted for SQL (always quoted: correct for every name, keyword or not).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The same lock as [`TRY_APPLY_LOCK`], held until the transaction ends (baseline writes in one transaction).
/// Session and transaction advisory locks on one key exclude each other.
pub const TRY_APPLY_LOCK_FOR_TRANSACTION: &str =
    "SELECT pg_try_advisory_xact_lock(hashtextextended('tidegate:apply', 0)) AS locked";

/// The framework history tables (`$1`: their names) that resolve through the search_path, as each framework
/// resolves its own: name, schema-qualified quoted name, columns.
pub const FRAMEWORK_TABLES: &str = "
SELECT c.relname::text AS name, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS qualified,
       array_agg(a.attname::text ORDER BY a.attnum) AS columns
  FROM unnest($1::text[]) AS wanted(name)
  JOIN pg_class c ON c.oid = to_regclass(quote_ident(wanted.name))
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.relkind IN ('r', 'p', 'v')
 GROUP BY c.relname, n.nspname
 ORDER BY c.relname";

/// Reads a framework's history table; `table` is schema-qualified and quoted (from [`FRAMEWORK_TABLES`]).
pub fn read_framework_history(framework: crate::baseline::Framework, table: &str) -> String {
    use crate::baseline::Framework;
    match framework {
        Framework::GolangMigrate => format!("SELECT version::int8 AS version, dirty FROM {table}"),
        Framework::Sqlx => format!(
            "SELECT version::int8 AS version, description::text AS description, success FROM {table} \
             ORDER BY version"
        ),
        Framework::Diesel | Framework::Dbmate => {
            format!("SELECT version::text AS version FROM {table} ORDER BY version")
        }
        Framework::Prisma => format!(
            "SELECT migration_name::text AS migration_name, finished_at IS NOT NULL AS finished, \
             rolled_back_at IS NOT NULL AS rolled_back FROM {table} \
             ORDER BY started_at"
        ),
        Framework::Flyway => format!(
            "SELECT installed_rank::int4 AS installed_rank, version::text AS version, script::text AS script, \
             type::text AS kind, success FROM {table} \
             ORDER BY installed_rank"
        ),
    }
}

/// A migration another framework ran, recorded with the checksum of today's file. Parameters: version, name,
/// checksum.
pub const RECORD_BASELINED: &str = "
INSERT INTO tidegate.migrations (version, name, checksum, status, phases, phases_done)
VALUES ($1, $2, $3, 'baselined', '[]', 0)";

/// Every record, for `tidegate status`: the phase a running or failed migration is at (1-based), how many it
/// has, and that phase's kind.
pub const STATUS_HISTORY: &str = "
SELECT version, name, checksum, status, phases_done, jsonb_array_length(phases) AS phases,
       phases -> phases_done ->> 'kind' AS next_phase_kind, last_error,
       to_char(coalesce(applied_at, started_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS at
  FROM tidegate.migrations
 ORDER BY version";

/// The backfill run of the phase a running or failed migration is at: the latest run of that phase's spec
/// since the migration first started.
pub const BACKFILL_OF_CURRENT_PHASE: &str = "
SELECT m.version AS version, r.id AS run_id
  FROM tidegate.migrations m
  CROSS JOIN LATERAL (
        SELECT r.id FROM tidegate.runs r
         WHERE r.spec = m.phases -> m.phases_done -> 'spec' AND r.started_at >= m.started_at
         ORDER BY r.id DESC LIMIT 1) r
 WHERE m.status IN ('running', 'failed') AND m.phases -> m.phases_done ->> 'kind' = 'backfill'";

/// Whether `tidegate.migrations` has a record of version `$1` (an earlier apply started it).
pub const MIGRATION_RECORDED: &str = "SELECT status FROM tidegate.migrations WHERE version = $1";

/// Whether backend `$1` still holds the apply lock (in this database: advisory keys are per database).
pub const APPLY_LOCK_HELD_BY: &str = "
SELECT EXISTS (
  SELECT 1 FROM pg_locks l
   WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.pid = $1
     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
     AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('tidegate:apply', 0)) AS held";

/// Backfill runs of migrations not yet applied that an engine is still working on: a session holds the run's
/// attach lock or a chunk's claim (the engine's keys, `dialect.rs` `ATTACH_LOCK` and `TRY_CLAIM`). A run belongs
/// to a migration when its spec is the spec of one of the migration's recorded phases. Columns: run id, version,
/// the sessions' pids.
pub const LIVE_BACKFILLS_OF_UNAPPLIED_MIGRATIONS: &str = "
SELECT r.id AS run_id, m.version AS version, array_agg(DISTINCT l.pid ORDER BY l.pid)::text[] AS pids
  FROM tidegate.migrations m
 CROSS JOIN LATERAL jsonb_array_elements(m.phases) AS p(phase)
  JOIN tidegate.runs r ON r.spec = p.phase -> 'spec' AND r.status NOT IN ('completed', 'aborted')
  JOIN pg_locks l ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND ((l.classid::bigint << 32) | l.objid::bigint) IN (
         SELECT hashtextextended('tidegate:run:' || r.id::text, 0)
         UNION ALL
         SELECT hashtextextended('tidegate:chunk:' || r.id::text || ':' || c.chunk_no::text, 0)
           FROM tidegate.chunks c WHERE c.run_id = r.id)
 WHERE m.status <> 'applied' AND jsonb_typeof(m.phases) = 'array'
 GROUP BY r.id, m.version
 ORDER BY r.id";

// --- the schema phase -------------------------------------------------------------------------------------------

pub(crate) const BACKEND_PID: &str = "SELECT pg_backend_pid() AS pid";
pub(crate) const BEGIN: &str = "BEGIN";
pub(crate) const BEGIN_READ_ONLY: &str = "BEGIN READ ONLY";
pub(crate) const COMMIT: &str = "COMMIT";
pub(crate) const ROLLBACK: &str = "ROLLBACK";
pub(crate) const RESET_LOCK_TIMEOUT: &str = "RESET lock_timeout";
pub(crate) const RESET_TIMEOUTS: &str = "RESET lock_timeout; RESET statement_timeout";

/// Whether the index `$1` (a regclass literal) is INVALID (no row: no such index).
pub(crate) const INDEX_IS_INVALID: &str =
    "SELECT NOT i.indisvalid AS invalid FROM pg_index i WHERE i.indexrelid = to_regclass($1)";

fn milliseconds(duration: std::time::Duration) -> u128 {
    // 0 means "no limit" to PostgreSQL: never send it.
    duration.as_millis().max(1)
}

pub(crate) fn set_lock_timeout(lock_timeout: std::time::Duration) -> String {
    format!("SET lock_timeout = '{}ms'", milliseconds(lock_timeout))
}

/// A transaction whose lock and statement waits are bounded.
pub(crate) fn begin_with_timeouts(
    lock_timeout: std::time::Duration,
    statement_timeout: std::time::Duration,
) -> String {
    format!(
        "{BEGIN}; SET LOCAL lock_timeout = '{}ms'; SET LOCAL statement_timeout = '{}ms'",
        milliseconds(lock_timeout),
        milliseconds(statement_timeout)
    )
}

/// The same bounds for the session (statements that cannot run in a transaction); undone by [`RESET_TIMEOUTS`].
pub(crate) fn set_timeouts(
    lock_timeout: std::time::Duration,
    statement_timeout: std::time::Duration,
) -> String {
    format!(
        "SET lock_timeout = '{}ms'; SET statement_timeout = '{}ms'",
        milliseconds(lock_timeout),
        milliseconds(statement_timeout)
    )
}

/// `index` is a regclass literal the planner built (quoted identifiers).
pub(crate) fn drop_index_concurrently_if_exists(index: &str) -> String {
    format!("DROP INDEX CONCURRENTLY IF EXISTS {index}")
}

/// An empty copy of a table's columns, gone at commit: where apply asks PostgreSQL how it would define an index.
pub(crate) fn create_probe_table(probe: &str, table: &str) -> String {
    format!("CREATE TEMPORARY TABLE {probe} (LIKE {table}) ON COMMIT DROP")
}

/// True while the backend waits for a lock on a relation (not for an older transaction to end).
pub(crate) const WAITS_FOR_RELATION_LOCK: &str = "SELECT EXISTS (SELECT 1 FROM pg_locks \
     WHERE pid = $1 AND NOT granted AND locktype = 'relation') AS waiting";

pub(crate) const CANCEL_BACKEND: &str = "SELECT pg_cancel_backend($1) AS cancelled";

/// The relation named `$2` in the schema of table `$1` (where CREATE INDEX puts its index): whether it is a valid
/// index (NULL: not an index), whether it indexes that table, its definition and its qualified name.
pub(crate) const FIND_INDEX: &str = "
SELECT i.indisvalid AS valid, coalesce(i.indrelid = t.oid, false) AS on_table,
       coalesce(pg_get_indexdef(c.oid), '') AS definition, format('%I.%I', n.nspname, c.relname) AS qualified
  FROM pg_class t
  JOIN pg_class c ON c.relnamespace = t.relnamespace AND c.relname = $2
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_index i ON i.indexrelid = c.oid
 WHERE t.oid = to_regclass($1)";

/// The definition of the only index on a temporary probe table (parameter: the table, as a regclass literal).
pub(crate) const PROBE_INDEX_DEFINITION: &str =
    "SELECT pg_get_indexdef(indexrelid) AS definition FROM pg_index WHERE indrelid = to_regclass($1)";

/// Whether an index literal (`$1`, resolved like DROP INDEX resolves it) names an existing relation.
pub(crate) const RELATION_EXISTS: &str = "SELECT to_regclass($1) IS NOT NULL AS present";

// --- templates for PostgreSQL's deparser (parsed, never sent) ---------------------------------------------------

/// An expression is deparsed as the target of this SELECT.
pub(crate) const EXPRESSION_TEMPLATE: &str = "SELECT 1";
/// A predicate is deparsed as this SELECT's WHERE.
pub(crate) const PREDICATE_TEMPLATE: &str = "SELECT WHERE true";
