//! The `tidegate` state schema in the target database: versioned migrations, runs, the control flags that
//! `tidegate pause|resume|abort` set, and the append-only journal. The SQL lives in [`crate::dialect::state`].

use tokio_postgres::{Client, GenericClient};

use crate::dialect::state as sql;

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
    fn from_row(row: &tokio_postgres::Row) -> Self {
        let rows_done: i64 = row.get(15);
        let elapsed: Option<f64> = row.get(18);
        let elapsed = elapsed.unwrap_or(0.0);
        Self {
            id: row.get(0),
            kind: row.get(1),
            spec_json: row.get(2),
            table: row.get(3),
            key_columns: row.get(4),
            key_types: row.get(5),
            key_min: row.get(6),
            key_max: row.get(7),
            estimated_rows: row.get(8),
            status: RunStatus::from_db(row.get::<_, &str>(9)),
            status_reason: row.get(10),
            control: row.get::<_, Option<&str>>(11).and_then(Control::from_db),
            started: row.get(12),
            finished: row.get(13),
            last_error: row.get(14),
            rows_done,
            rows_scanned: row.get(16),
            batches: row.get(17),
            rows_per_second: if elapsed > 0.0 {
                rows_done as f64 / elapsed
            } else {
                0.0
            },
        }
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
pub async fn schema_exists(client: &Client) -> Result<bool, tokio_postgres::Error> {
    Ok(client.query_one(sql::SCHEMA_EXISTS, &[]).await?.get(0))
}

/// Creates or migrates the state schema to this build's version. Safe to race: an advisory lock serialises it.
/// Returns an error message when the schema is newer than this build understands.
pub async fn ensure_schema(client: &mut Client) -> Result<(), StateError> {
    let tx = client.transaction().await?;
    tx.execute(sql::MIGRATION_LOCK, &[]).await?;
    tx.batch_execute(sql::CREATE_SCHEMA).await?;
    let current: i32 = tx.query_one(sql::CURRENT_VERSION, &[]).await?.get(0);
    if current > sql::SCHEMA_VERSION {
        return Err(StateError::TooNew {
            found: current,
            supported: sql::SCHEMA_VERSION,
        });
    }
    for (index, migration) in sql::MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.batch_execute(migration).await?;
        tx.execute(sql::RECORD_VERSION, &[&(index as i32 + 1)])
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the tidegate state schema is version {found}, newer than this build understands ({supported}); upgrade tidegate")]
    TooNew { found: i32, supported: i32 },
    #[error("{}", tidegate_db::connect::describe(.0))]
    Db(#[from] tokio_postgres::Error),
}

pub async fn find_unfinished(
    client: &impl GenericClient,
    spec_json: &str,
) -> Result<Option<RunRow>, tokio_postgres::Error> {
    Ok(client
        .query_opt(&sql::find_unfinished_by_spec(), &[&spec_json])
        .await?
        .map(|r| RunRow::from_row(&r)))
}

pub async fn find_run(
    client: &impl GenericClient,
    id: i64,
) -> Result<Option<RunRow>, tokio_postgres::Error> {
    Ok(client
        .query_opt(&sql::find_by_id(), &[&id])
        .await?
        .map(|r| RunRow::from_row(&r)))
}

/// Every run, oldest first. An absent schema means no runs.
pub async fn list_runs(client: &Client) -> Result<Vec<RunRow>, tokio_postgres::Error> {
    if !schema_exists(client).await? {
        return Ok(Vec::new());
    }
    Ok(client
        .query(&sql::list(), &[])
        .await?
        .iter()
        .map(RunRow::from_row)
        .collect())
}

/// Appends a journal entry.
pub async fn journal(
    client: &impl GenericClient,
    run_id: i64,
    event: &str,
    detail: &serde_json::Value,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(sql::JOURNAL, &[&run_id, &event, &detail.to_string()])
        .await?;
    Ok(())
}

/// The journal of a run, oldest first.
pub async fn read_journal(
    client: &Client,
    run_id: i64,
) -> Result<Vec<JournalEntry>, tokio_postgres::Error> {
    Ok(client
        .query(sql::READ_JOURNAL, &[&run_id])
        .await?
        .iter()
        .map(|row| JournalEntry {
            at: row.get(0),
            event: row.get(1),
            detail: serde_json::from_str(row.get::<_, &str>(2)).unwrap_or(serde_json::Value::Null),
        })
        .collect())
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
    client: &Client,
    id: i64,
    control: Option<Control>,
) -> Result<ControlOutcome, tokio_postgres::Error> {
    if !schema_exists(client).await? {
        return Ok(ControlOutcome::NotFound);
    }
    let Some(row) = client
        .query_opt(sql::SET_CONTROL, &[&id, &control.map(Control::as_str)])
        .await?
    else {
        return Ok(ControlOutcome::NotFound);
    };
    let status = RunStatus::from_db(row.get::<_, &str>(0));
    let no_engine: bool = client
        .query_one(sql::NO_ENGINE_ATTACHED, &[&id])
        .await?
        .get(0);
    if no_engine {
        match control {
            Some(Control::Abort) => {
                client.execute(sql::SET_ABORTED, &[&id]).await?;
                journal(
                    client,
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
                client.execute(sql::CLEAR_PAUSE_STATUS, &[&id]).await?;
            }
            _ => {}
        }
        return Ok(ControlOutcome::NoEngine { status });
    }
    Ok(ControlOutcome::Signalled { status })
}
