//! The `tidegate` state schema in the target database: versioned migrations, runs, the control flags that
//! `tidegate pause|resume|abort` set, and the append-only journal. Every function takes any
//! [`Session`]; the SQL is the session's dialect's ([`crate::dialect::StateSql`]).

use tidegate_db::connect::DbError;
use tidegate_db::driver::{Row, RowError, Session, SessionExt, Value};

use crate::dialect::dialect_for;

/// Where a run is (`tidegate.runs.status`; the column's CHECK allows exactly these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Throttled,
    Paused,
    Completed,
    Failed,
    Aborted,
}

impl RunStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Throttled => "throttled",
            RunStatus::Paused => "paused",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Aborted => "aborted",
        }
    }

    /// The status stored in the state schema. An unknown value (a newer tidegate's) reads as failed: it is not
    /// resumed blindly, and `tidegate runs` still lists the run.
    pub fn from_db(text: &str) -> RunStatus {
        match text {
            "running" => RunStatus::Running,
            "throttled" => RunStatus::Throttled,
            "paused" => RunStatus::Paused,
            "completed" => RunStatus::Completed,
            "aborted" => RunStatus::Aborted,
            _ => RunStatus::Failed,
        }
    }

    /// Completed and aborted runs are finished; every other status can be resumed.
    pub fn is_finished(self) -> bool {
        matches!(self, RunStatus::Completed | RunStatus::Aborted)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `tidegate pause` / `abort` ask of a run (`tidegate.runs.control`); resume clears it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    Pause,
    Abort,
}

impl Control {
    pub const fn as_str(self) -> &'static str {
        match self {
            Control::Pause => "pause",
            Control::Abort => "abort",
        }
    }

    pub fn from_db(text: &str) -> Option<Control> {
        match text {
            "pause" => Some(Control::Pause),
            "abort" => Some(Control::Abort),
            _ => None,
        }
    }
}

impl std::fmt::Display for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run as `tidegate runs` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunRow {
    pub id: i64,
    pub kind: String,
    /// The spec as stored (JSON text).
    #[serde(skip)]
    pub spec_json: String,
    pub table: String,
    pub key_columns: Vec<String>,
    #[serde(skip)]
    pub key_types: Vec<String>,
    #[serde(skip)]
    pub key_min: Option<Vec<String>>,
    #[serde(skip)]
    pub key_max: Option<Vec<String>>,
    pub estimated_rows: Option<i64>,
    pub status: RunStatus,
    pub status_reason: Option<String>,
    pub control: Option<Control>,
    pub started: String,
    pub finished: Option<String>,
    pub last_error: Option<String>,
    pub rows_done: i64,
    pub rows_scanned: i64,
    pub batches: i64,
    pub rows_per_second: f64,
}

impl RunRow {
    /// A row of the run queries, read by column name.
    fn from_row(row: &Row) -> Result<Self, RowError> {
        let rows_done: i64 = row.get("rows_done")?;
        let elapsed = row.get::<Option<f64>>("elapsed_seconds")?.unwrap_or(0.0);
        Ok(Self {
            id: row.get("id")?,
            kind: row.get("kind")?,
            spec_json: row.get("spec")?,
            table: row.get("table_name")?,
            key_columns: row.get("key_columns")?,
            key_types: row.get("key_types")?,
            key_min: row.get("key_min")?,
            key_max: row.get("key_max")?,
            estimated_rows: row.get("estimated_rows")?,
            status: RunStatus::from_db(&row.get::<String>("status")?),
            status_reason: row.get("status_reason")?,
            control: row
                .get::<Option<String>>("control")?
                .as_deref()
                .and_then(Control::from_db),
            started: row.get("started")?,
            finished: row.get("finished")?,
            last_error: row.get("last_error")?,
            rows_done,
            rows_scanned: row.get("rows_scanned")?,
            batches: row.get("batches")?,
            rows_per_second: if elapsed > 0.0 {
                rows_done as f64 / elapsed
            } else {
                0.0
            },
        })
    }

    /// Completed and aborted runs are finished; every other status can be resumed.
    pub fn is_finished(&self) -> bool {
        self.status.is_finished()
    }
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JournalEntry {
    /// When, in UTC to the millisecond (`2026-01-02T03:04:05.678Z`).
    pub at: String,
    /// The same instant in milliseconds since the Unix epoch: what durations are computed from.
    pub at_ms: i64,
    /// The backfill run it belongs to; `None` for an apply's own entries.
    pub run_id: Option<i64>,
    /// The migration it belongs to (apply's entries); `None` for a backfill run's.
    pub migration_version: Option<String>,
    pub event: String,
    pub detail: serde_json::Value,
}

impl JournalEntry {
    fn from_row(row: &Row) -> Result<Self, RowError> {
        Ok(JournalEntry {
            at: row.get("at")?,
            at_ms: row.get("at_ms")?,
            run_id: row.get("run_id")?,
            migration_version: row.get("migration_version")?,
            event: row.get("event")?,
            detail: serde_json::from_str(&row.get::<String>("detail")?)
                .unwrap_or(serde_json::Value::Null),
        })
    }
}

/// A migration as `tidegate.migrations` records it (what `tidegate report` heads an apply's timeline with).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MigrationRecord {
    pub version: String,
    pub name: String,
    /// `running`, `applied`, `failed` or `baselined`, as stored.
    pub status: String,
    pub started: String,
    pub applied: Option<String>,
    pub duration_ms: Option<i64>,
    pub last_error: Option<String>,
    pub phases: i64,
    pub phases_done: i64,
}

/// Who asked for a pause, a resume or an abort: what `tidegate pause|resume|abort` journals beside its request.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Requester {
    /// The database role of the session that asked.
    #[serde(default)]
    pub db_user: Option<String>,
    /// Its `application_name`.
    #[serde(default)]
    pub application_name: Option<String>,
    /// Its client address as the server saw it (`local` over a Unix socket).
    #[serde(default)]
    pub client_addr: Option<String>,
    /// The operating-system user and host of the process that asked.
    #[serde(default)]
    pub os_user: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
}

impl Requester {
    /// The operating-system side of this process: `$USER` (or `$LOGNAME`) and the kernel's host name.
    pub fn of_this_process() -> Requester {
        let os_user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .filter(|u| !u.is_empty());
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty());
        Requester {
            os_user,
            host,
            ..Requester::default()
        }
    }
}

/// Whether the state schema exists (without creating it: `runs` and `--dry-run` change nothing).
pub async fn schema_exists(session: &dyn Session) -> Result<bool, DbError> {
    let sql = dialect_for(session.family())?.state();
    Ok(session
        .query_one(sql.schema_exists, &[])
        .await?
        .get("present")?)
}

/// Creates or migrates the state schema to this build's version. Safe to race: an advisory lock serialises it.
/// Returns an error message when the schema is newer than this build understands.
pub async fn ensure_schema(session: &dyn Session) -> Result<(), StateError> {
    let sql = dialect_for(session.family())?.state();
    session.batch_execute(sql.begin).await?;
    let migrated = async {
        session.run(sql.migration_lock, &[]).await?;
        session.batch_execute(sql.create_schema).await?;
        let current: i32 = session
            .query_one(sql.current_version, &[])
            .await?
            .get("version")?;
        if current > sql.schema_version {
            return Err(StateError::TooNew {
                found: current,
                supported: sql.schema_version,
            });
        }
        for (index, migration) in sql.migrations.iter().enumerate().skip(current as usize) {
            session.batch_execute(migration).await?;
            session
                .run(sql.record_version, &[Value::Int(index as i64 + 1)])
                .await?;
        }
        Ok(())
    }
    .await;
    match migrated {
        Ok(()) => {
            session.batch_execute(sql.commit).await?;
            Ok(())
        }
        Err(error) => {
            let _ = session.batch_execute(sql.rollback).await;
            Err(error)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the tidegate state schema is version {found}, newer than this build understands ({supported}); upgrade tidegate")]
    TooNew { found: i32, supported: i32 },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<RowError> for StateError {
    fn from(error: RowError) -> Self {
        StateError::Db(error.into())
    }
}

fn runs(rows: &[Row]) -> Result<Vec<RunRow>, DbError> {
    rows.iter()
        .map(|r| RunRow::from_row(r).map_err(DbError::from))
        .collect()
}

pub async fn find_unfinished(
    session: &dyn Session,
    spec_json: &str,
) -> Result<Option<RunRow>, DbError> {
    let sql = dialect_for(session.family())?.state();
    let rows = session
        .rows(&sql.find_unfinished_by_spec, &[spec_json.into()])
        .await?;
    Ok(runs(&rows)?.into_iter().next())
}

pub async fn find_run(session: &dyn Session, id: i64) -> Result<Option<RunRow>, DbError> {
    let sql = dialect_for(session.family())?.state();
    let rows = session.rows(&sql.find_by_id, &[id.into()]).await?;
    Ok(runs(&rows)?.into_iter().next())
}

/// Every run, oldest first. An absent schema means no runs.
pub async fn list_runs(session: &dyn Session) -> Result<Vec<RunRow>, DbError> {
    if !schema_exists(session).await? {
        return Ok(Vec::new());
    }
    let sql = dialect_for(session.family())?.state();
    runs(&session.rows(&sql.list, &[]).await?)
}

/// Appends a journal entry.
pub async fn journal(
    session: &dyn Session,
    run_id: i64,
    event: &str,
    detail: &serde_json::Value,
) -> Result<(), DbError> {
    let sql = dialect_for(session.family())?.state();
    session
        .run(
            sql.journal,
            &[run_id.into(), event.into(), detail.to_string().into()],
        )
        .await?;
    Ok(())
}

/// The journal of a run, oldest first.
pub async fn read_journal(
    session: &dyn Session,
    run_id: i64,
) -> Result<Vec<JournalEntry>, DbError> {
    let sql = dialect_for(session.family())?.state();
    session
        .rows(&sql.read_journal, &[run_id.into()])
        .await?
        .iter()
        .map(|row| JournalEntry::from_row(row).map_err(DbError::from))
        .collect()
}

/// The journal of a migration's applies (apply's own entries, not its backfill runs'), oldest first.
pub async fn read_migration_journal(
    session: &dyn Session,
    version: &str,
) -> Result<Vec<JournalEntry>, DbError> {
    let sql = dialect_for(session.family())?.state();
    session
        .rows(&sql.read_migration_journal, &[version.into()])
        .await?
        .iter()
        .map(|row| JournalEntry::from_row(row).map_err(DbError::from))
        .collect()
}

/// A migration's record, or `None` when `tidegate.migrations` has none (or the schema does not exist).
pub async fn find_migration(
    session: &dyn Session,
    version: &str,
) -> Result<Option<MigrationRecord>, DbError> {
    if !schema_exists(session).await? {
        return Ok(None);
    }
    let sql = dialect_for(session.family())?.state();
    let Some(row) = session
        .query_opt(sql.find_migration, &[version.into()])
        .await?
    else {
        return Ok(None);
    };
    let read = || -> Result<MigrationRecord, RowError> {
        Ok(MigrationRecord {
            version: row.get("version")?,
            name: row.get("name")?,
            status: row.get("status")?,
            started: row.get("started")?,
            applied: row.get("applied")?,
            duration_ms: row.get("duration_ms")?,
            last_error: row.get("last_error")?,
            phases: row.get("phases")?,
            phases_done: row.get("phases_done")?,
        })
    };
    Ok(Some(read()?))
}

/// Opens a read-only transaction (what `tidegate report` reads in: one consistent view, no writes).
pub async fn begin_read_only(session: &dyn Session) -> Result<(), DbError> {
    let sql = dialect_for(session.family())?.state();
    session.batch_execute(sql.begin_read_only).await
}

/// Ends the transaction [`begin_read_only`] opened.
pub async fn end_read_only(session: &dyn Session) -> Result<(), DbError> {
    let sql = dialect_for(session.family())?.state();
    session.batch_execute(sql.rollback).await
}

/// What a control request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlOutcome {
    /// The flag is set; an engine is attached and will obey within one batch.
    Signalled { status: RunStatus },
    /// The flag is set but no engine is attached: it takes effect when one attaches (pause/abort), or the
    /// user must start one (resume).
    NoEngine { status: RunStatus },
    /// No unfinished run with that id.
    NotFound,
}

/// Sets the control flag of a run: pause, abort, or `None` (resume), and journals who asked
/// (`control_requested`: the session's role, application and address, this process's user and host).
pub async fn set_control(
    session: &dyn Session,
    id: i64,
    control: Option<Control>,
) -> Result<ControlOutcome, DbError> {
    if !schema_exists(session).await? {
        return Ok(ControlOutcome::NotFound);
    }
    let sql = dialect_for(session.family())?.state();
    let params = [id.into(), control.map(Control::as_str).into()];
    let found = if sql.returning {
        session.query_opt(sql.set_control, &params).await?
    } else if session.run(sql.set_control, &params).await? == 0 {
        None
    } else {
        session.query_opt(sql.read_control, &[id.into()]).await?
    };
    let Some(row) = found else {
        return Ok(ControlOutcome::NotFound);
    };
    let identity = session.query_one(sql.requester, &[]).await?;
    let requester = Requester {
        db_user: identity.get("db_user")?,
        application_name: identity.get("application_name")?,
        client_addr: identity.get("client_addr")?,
        ..Requester::of_this_process()
    };
    journal(
        session,
        id,
        "control_requested",
        &serde_json::json!({
            "control": control.map_or("resume", Control::as_str),
            "requested_by": requester,
        }),
    )
    .await?;
    let status = RunStatus::from_db(&row.get::<String>("status")?);
    let no_engine: bool = session
        .query_one(sql.no_engine_attached, &[id.into()])
        .await?
        .get("no_engine")?;
    if no_engine {
        match control {
            Some(Control::Abort) => {
                session.run(sql.set_aborted, &[id.into()]).await?;
                journal(
                    session,
                    id,
                    "aborted",
                    &serde_json::json!({"by": "tidegate abort", "engine_attached": false}),
                )
                .await?;
                return Ok(ControlOutcome::NoEngine {
                    status: RunStatus::Aborted,
                });
            }
            Some(Control::Pause) => {
                session.run(sql.clear_pause_status, &[id.into()]).await?;
            }
            _ => {}
        }
        return Ok(ControlOutcome::NoEngine { status });
    }
    Ok(ControlOutcome::Signalled { status })
}
