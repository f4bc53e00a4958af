//! Every SQL string `apply` sends (besides the migrations' own statements), in one place.

/// One apply at a time per database: a session advisory lock on a fixed key.
pub const TRY_APPLY_LOCK: &str =
    "SELECT pg_try_advisory_lock(hashtextextended('tidegate:apply', 0))";
pub const RELEASE_APPLY_LOCK: &str =
    "SELECT pg_advisory_unlock(hashtextextended('tidegate:apply', 0))";

/// Who holds the apply lock (an advisory lock's 64-bit key is split into classid:objid).
pub const APPLY_LOCK_HOLDER: &str = "
SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.client_addr::text, 'local'),
       coalesce(extract(epoch FROM now() - a.backend_start), 0)::float8
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
   AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('tidegate:apply', 0)
 LIMIT 1";

pub const READ_ONLY: &str = "SELECT current_setting('transaction_read_only') = 'on'";

pub const HISTORY_EXISTS: &str = "SELECT to_regclass('tidegate.migrations') IS NOT NULL";

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
RETURNING phases_done, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";

/// The phases recorded when a migration (re)started.
pub const RECORDED_PHASES: &str = "SELECT phases::text FROM tidegate.migrations WHERE version = $1";

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
SELECT r.id FROM tidegate.runs r, tidegate.migrations m
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
    "SELECT pg_try_advisory_xact_lock(hashtextextended('tidegate:apply', 0))";

/// The framework history tables (`$1`: their names) that resolve through the search_path, as each framework
/// resolves its own: name, schema-qualified quoted name, columns.
pub const FRAMEWORK_TABLES: &str = "
SELECT c.relname::text, quote_ident(n.nspname) || '.' || quote_ident(c.relname),
       array_agg(a.attname::text ORDER BY a.attnum)
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
        Framework::GolangMigrate => format!("SELECT version::int8, dirty FROM {table}"),
        Framework::Sqlx => format!(
            "SELECT version::int8, description::text, success FROM {table} ORDER BY version"
        ),
        Framework::Diesel | Framework::Dbmate => {
            format!("SELECT version::text FROM {table} ORDER BY version")
        }
        Framework::Prisma => format!(
            "SELECT migration_name::text, finished_at IS NOT NULL, rolled_back_at IS NOT NULL FROM {table} \
             ORDER BY started_at"
        ),
        Framework::Flyway => format!(
            "SELECT installed_rank::int4, version::text, script::text, type::text, success FROM {table} \
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
SELECT version, name, checksum, status, phases_done, jsonb_array_length(phases),
       phases -> phases_done ->> 'kind', last_error,
       to_char(coalesce(applied_at, started_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
  FROM tidegate.migrations
 ORDER BY version";

/// The backfill run of the phase a running or failed migration is at: the latest run of that phase's spec
/// since the migration first started.
pub const BACKFILL_OF_CURRENT_PHASE: &str = "
SELECT m.version, r.id
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
     AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('tidegate:apply', 0))";

/// Backfill runs of migrations not yet applied that an engine is still working on: a session holds the run's
/// attach lock or a chunk's claim (the engine's keys, `dialect.rs` `ATTACH_LOCK` and `TRY_CLAIM`). A run belongs
/// to a migration when its spec is the spec of one of the migration's recorded phases. Columns: run id, version,
/// the sessions' pids.
pub const LIVE_BACKFILLS_OF_UNAPPLIED_MIGRATIONS: &str = "
SELECT r.id, m.version, array_agg(DISTINCT l.pid ORDER BY l.pid)
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
