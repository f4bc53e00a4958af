//! The `tidegate` state schema in the target database: versioned migrations, runs, the control flags that
//! `tidegate pause|resume|abort` set, and the append-only journal. Every function takes any
//! [`Session`]; the SQL is the session's dialect's ([`crate::dialect::StateSql`]).

use tidegate_db::connect::DbError;
use tidegate_db::driver::{Row, RowError, Session, SessionExt, Value};

use crate::dialect::for_family;

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
    pub at: String,
    pub event: String,
    pub detail: serde_json::Value,
}

/// Whether the state schema exists (without creating it: `runs` and `--dry-run` change nothing).
pub async fn schema_exists(session: &dyn Session) -> Result<bool, DbError> {
    let sql = for_family(session.family()).state();
    Ok(session
        .query_one(sql.schema_exists, &[])
        .await?
        .get("present")?)
}

/// Creates or migrates the state schema to this build's version. Safe to race: an advisory lock serialises it.
/// Returns an error message when the schema is newer than this build understands.
pub async fn ensure_schema(session: &dyn Session) -> Result<(), StateError> {
    let sql = for_family(session.family()).state();
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
    let sql = for_family(session.family()).state();
    let rows = session
        .rows(&sql.find_unfinished_by_spec, &[spec_json.into()])
        .await?;
    Ok(runs(&rows)?.into_iter().next())
}

pub async fn find_run(session: &dyn Session, id: i64) -> Result<Option<RunRow>, DbError> {
    let sql = for_family(session.family()).state();
    let rows = session.rows(&sql.find_by_id, &[id.into()]).await?;
    Ok(runs(&rows)?.into_iter().next())
}

/// Every run, oldest first. An absent schema means no runs.
pub async fn list_runs(session: &dyn Session) -> Result<Vec<RunRow>, DbError> {
    if !schema_exists(session).await? {
        return Ok(Vec::new());
    }
    let sql = for_family(session.family()).state();
    runs(&session.rows(&sql.list, &[]).await?)
}

/// Appends a journal entry.
pub async fn journal(
    session: &dyn Session,
    run_id: i64,
    event: &str,
    detail: &serde_json::Value,
) -> Result<(), DbError> {
    let sql = for_family(session.family()).state();
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
    let sql = for_family(session.family()).state();
    session
        .rows(sql.read_journal, &[run_id.into()])
        .await?
        .iter()
        .map(|row| {
            Ok(JournalEntry {
                at: row.get("at")?,
                event: row.get("event")?,
                detail: serde_json::from_str(&row.get::<String>("detail")?)
                    .unwrap_or(serde_json::Value::Null),
            })
        })
        .collect()
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

/// Sets the control flag of a run: pause, abort, or `None` (resume).
pub async fn set_control(
    session: &dyn Session,
    id: i64,
    control: Option<Control>,
) -> Result<ControlOutcome, DbError> {
    if !schema_exists(session).await? {
        return Ok(ControlOutcome::NotFound);
    }
    let sql = for_family(session.family()).state();
    let Some(row) = session
        .query_opt(
            sql.set_control,
            &[id.into(), control.map(Control::as_str).into()],
        )
        .await?
    else {
        return Ok(ControlOutcome::NotFound);
    };
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
