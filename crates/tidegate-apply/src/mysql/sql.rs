//! Every SQL string `apply` sends to a MySQL/MariaDB server (besides the migrations' own statements), in one
//! place. Placeholders are MySQL's positional `?`.

/// What apply reads of the server before planning.
pub const SERVER: &str = "SELECT VERSION() AS version, coalesce(DATABASE(), '') AS db, \
    CAST(@@read_only AS SIGNED) AS read_only, CAST(CONNECTION_ID() AS SIGNED) AS id";

/// Longer than the default 1024 bytes: the definition fingerprint concatenates a whole table's columns.
pub const SESSION_SETUP: &str = "SET SESSION group_concat_max_len = 1048576";

pub const HISTORY_EXISTS: &str = "SELECT count(*) > 0 AS present FROM information_schema.TABLES \
    WHERE TABLE_SCHEMA = 'tidegate' AND TABLE_NAME = 'migrations'";

pub const READ_HISTORY: &str =
    "SELECT version, checksum, status, CAST(phases_done AS SIGNED) AS phases_done \
    FROM tidegate.migrations ORDER BY version";

/// A table's size as the server estimates it. Parameters: schema, table.
pub const TABLE_SIZE: &str = "SELECT CAST(coalesce(TABLE_ROWS, 0) AS SIGNED) AS table_rows, \
    CAST(coalesce(DATA_LENGTH, 0) + coalesce(INDEX_LENGTH, 0) AS SIGNED) AS total_bytes \
    FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?";

/// Counts a table's rows up to `limit`: InnoDB's TABLE_ROWS is an estimate that lags behind fresh inserts, and
/// a table judged small must really be small. `table` is quoted by [`quote_table`].
pub fn count_rows_up_to(table: &str, limit: u64) -> String {
    format!("SELECT CAST(count(*) AS SIGNED) AS counted FROM (SELECT 1 FROM {table} LIMIT {limit}) AS bounded")
}

/// The table's definition as the server prints it; `table` is quoted by [`quote_table`].
pub fn show_create_table(table: &str) -> String {
    format!("SHOW CREATE TABLE {table}")
}

/// `schema`.`table`, each part quoted with backticks.
pub fn quote_table(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// One apply at a time per server (`tidegate.migrations` is the server's): a named lock, released when the
/// session ends.
pub const TRY_APPLY_LOCK: &str = "SELECT coalesce(GET_LOCK('tidegate:apply', 0), 0) AS locked";
pub const RELEASE_APPLY_LOCK: &str = "SELECT RELEASE_LOCK('tidegate:apply') AS released";
pub const APPLY_LOCK_HOLDER: &str =
    "SELECT CAST(coalesce(IS_USED_LOCK('tidegate:apply'), 0) AS SIGNED) AS holder";

/// The record of version `?`, when an earlier apply started it.
pub const MIGRATION_RECORD: &str =
    "SELECT checksum, status, phases, CAST(phases_done AS SIGNED) AS phases_done \
    FROM tidegate.migrations WHERE version = ?";

/// Starts (or restarts) a migration's record. Parameters: version, name, checksum, phases (JSON text).
pub const BEGIN_MIGRATION: &str =
    "INSERT INTO tidegate.migrations (version, name, checksum, status, phases) \
    VALUES (?, ?, ?, 'running', ?) \
    ON DUPLICATE KEY UPDATE status = 'running', last_error = NULL, phases = VALUES(phases), \
    name = VALUES(name), checksum = VALUES(checksum)";

/// Parameters: phases done, version.
pub const PHASE_DONE: &str = "UPDATE tidegate.migrations SET phases_done = ? WHERE version = ?";

pub const MIGRATION_APPLIED: &str = "UPDATE tidegate.migrations SET status = 'applied', \
    applied_at = UTC_TIMESTAMP(6), last_error = NULL, \
    duration_ms = TIMESTAMPDIFF(MICROSECOND, started_at, UTC_TIMESTAMP(6)) DIV 1000 WHERE version = ?";

/// Parameters: error, version.
pub const MIGRATION_FAILED: &str =
    "UPDATE tidegate.migrations SET status = 'failed', last_error = ? WHERE version = ?";

/// Parameters: version, event, detail (JSON text).
pub const JOURNAL: &str =
    "INSERT INTO tidegate.journal (run_id, migration_version, event, detail) VALUES (NULL, ?, ?, ?)";

/// The `ddl_started` entries of a version, newest first: what a resumed apply compares the table with.
pub const DDL_STARTED: &str = "SELECT detail FROM tidegate.journal \
    WHERE migration_version = ? AND event = 'ddl_started' ORDER BY id DESC LIMIT 50";

/// A completed backfill run of this spec since the migration started. Parameters: version, spec (JSON text).
pub const COMPLETED_RUN_FOR_SPEC: &str = "SELECT r.id AS run_id FROM tidegate.runs r \
    JOIN tidegate.migrations m ON m.version = ? \
    WHERE md5(r.spec) = md5(?) AND r.status = 'completed' AND r.started_at >= m.started_at \
    ORDER BY r.id DESC LIMIT 1";

pub const BEGIN: &str = "BEGIN";
pub const COMMIT: &str = "COMMIT";
pub const ROLLBACK: &str = "ROLLBACK";

/// Bounds every wait of the statements after it: metadata locks (`lock_wait_timeout`, what an ALTER queues
/// for) and row locks (`innodb_lock_wait_timeout`). Whole seconds, at least 1 (0 would mean "fail at once" on
/// some versions and is never what `--lock-timeout` asks for).
pub fn set_lock_waits(seconds: u64) -> String {
    let seconds = seconds.max(1);
    format!(
        "SET SESSION lock_wait_timeout = {seconds}; SET SESSION innodb_lock_wait_timeout = {seconds}"
    )
}

/// A digest of a table's definition: columns, indexes, constraints, table options and creation time (a
/// rebuild or TRUNCATE recreates the table), from information_schema; an absent table digests to the empty
/// text's md5. AUTO_INCREMENT is left out: inserts move it. Parameters: schema and table, four times.
pub const DEFINITION_FINGERPRINT: &str = "SELECT md5(concat_ws('|', \
    (SELECT group_concat(concat_ws(',', COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, IS_NULLABLE, \
        coalesce(COLUMN_DEFAULT, '~'), EXTRA, coalesce(COLLATION_NAME, '~'), COLUMN_COMMENT) \
        ORDER BY ORDINAL_POSITION SEPARATOR ';') \
        FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?), \
    (SELECT group_concat(concat_ws(',', INDEX_NAME, SEQ_IN_INDEX, coalesce(COLUMN_NAME, '~'), NON_UNIQUE, \
        INDEX_TYPE, coalesce(SUB_PART, '~')) ORDER BY INDEX_NAME, SEQ_IN_INDEX SEPARATOR ';') \
        FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?), \
    (SELECT group_concat(concat_ws(',', CONSTRAINT_NAME, CONSTRAINT_TYPE) ORDER BY CONSTRAINT_NAME SEPARATOR ';') \
        FROM information_schema.TABLE_CONSTRAINTS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?), \
    (SELECT concat_ws(',', ENGINE, ROW_FORMAT, TABLE_COLLATION, CREATE_OPTIONS, TABLE_COMMENT, CREATE_TIME) \
        FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?))) AS fingerprint";

/// Open transactions other than apply's own sessions (parameter: their connection ids, comma-separated),
/// oldest first: any of them that touched the table holds its metadata lock until it ends, and MariaDB without
/// performance_schema cannot say which did. An idle transaction has no current statement: `query` is empty.
pub const OPEN_TRANSACTIONS: &str = "SELECT CAST(t.trx_mysql_thread_id AS SIGNED) AS id, \
    coalesce(p.USER, '') AS user_name, coalesce(p.HOST, '') AS host, \
    concat(coalesce(p.COMMAND, ''), IF(coalesce(p.STATE, '') = '', '', concat(': ', p.STATE))) AS state, \
    TIMESTAMPDIFF(MICROSECOND, t.trx_started, NOW(6)) / 1e6 AS transaction_age_seconds, \
    LEFT(coalesce(t.trx_query, p.INFO, ''), 200) AS query \
    FROM information_schema.INNODB_TRX t \
    LEFT JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id \
    WHERE FIND_IN_SET(t.trx_mysql_thread_id, ?) = 0 \
    ORDER BY t.trx_started, t.trx_mysql_thread_id LIMIT 5";

/// `tidegate status` reads in one of these: nothing it runs writes.
pub const BEGIN_READ_ONLY: &str = "START TRANSACTION READ ONLY";

/// Every recorded migration, for `tidegate status`; `at` in UTC (the table stores UTC_TIMESTAMP).
pub const STATUS_HISTORY: &str = "SELECT version, name, checksum, status, \
    CAST(phases_done AS SIGNED) AS phases_done, phases, last_error, \
    DATE_FORMAT(coalesce(applied_at, started_at), '%Y-%m-%dT%H:%i:%sZ') AS at \
    FROM tidegate.migrations ORDER BY version";
