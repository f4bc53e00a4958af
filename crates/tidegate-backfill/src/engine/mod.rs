//! The backfill engine: the I/O edge around the pure pieces (controller, throttle, retry, pacing).
//!
//! A run is split into chunks of the key space, created lazily from a frontier fixed by the key's upper bound
//! taken at start. A worker claims a chunk (candidates read with `FOR UPDATE SKIP LOCKED`, ownership held as a
//! session-level advisory lock that dies with the worker's connection), then walks it in batches: one short
//! transaction each, with `SET LOCAL lock_timeout`/`statement_timeout`, the UPDATE (or, for a delete run, the
//! DELETE) bounded by the key range, and the chunk's checkpoint written in the same transaction (guarded by the cursor it started from). A crash at any
//! instant therefore loses nothing and applies nothing twice. A monitor task, on its own connection, reads the
//! control flags and health signals every `health_interval` and opens or closes the gate the workers pass
//! before each batch.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidegate_db::connect::DbError;
use tidegate_db::driver::{Driver, ErrorClass, Session, SessionExt, Value};

use crate::controller::ControllerConfig;
use crate::dialect::{dialect_for, BatchShape, Dialect, TableKind};
use crate::events::Event;
use crate::pacing::{RateLimit, Window};
use crate::retry::{RetryDecision, RetryPolicy, RetryState};
use crate::spec::{self, BackfillSpec, Operation};
use crate::state::{self, RunRow, RunStatus};
use crate::throttle::Thresholds;

mod horizon;
mod monitor;
mod replicas;
mod worker;

use monitor::monitor_loop;
pub use monitor::{check_health, check_health_with};
pub use replicas::{Replica, ReplicaWatch};
use worker::{worker_loop, WorkerEnd};

/// Everything that shapes a run besides the spec.
#[derive(Debug, Clone)]
pub struct BackfillOptions {
    pub controller: ControllerConfig,
    /// `SET LOCAL lock_timeout` of every batch.
    pub lock_timeout: Duration,
    /// `SET LOCAL statement_timeout` of every batch; `None` = 10× the batch time, at least 1 s.
    pub statement_timeout: Option<Duration>,
    pub thresholds: Thresholds,
    /// `--probe-sql`; `None` = a key lookup on the table.
    pub probe_sql: Option<String>,
    /// `--throttle-query`: true means wait.
    pub throttle_query: Option<String>,
    pub max_rows_per_second: Option<u64>,
    pub window: Option<Window>,
    /// Workers in this process (with `scale_workers`: the count to start with).
    pub workers: u32,
    /// `--workers auto`: grow and shrink the worker count by measured throughput and the throttle; `None`: keep
    /// `workers` throughout.
    pub scale_workers: Option<crate::scaling::ScalerConfig>,
    /// Keys per chunk at least (the unit workers claim); a new chunk is cut to hold a few batches of the claiming
    /// worker's current size when that is more.
    pub chunk_rows: u64,
    /// Abort instead of pausing when a signal turns critical.
    pub critical_abort: bool,
    /// Discard an unfinished run of the same spec and start over.
    pub restart: bool,
    /// When the latest run of this spec is completed or aborted, start a new run instead of refusing with
    /// [`BackfillError::AlreadyFinished`]. The CLI leaves it off (running a finished non-idempotent spec twice is
    /// a mistake); apply turns it on, since a later migration may repeat an earlier one's data change.
    pub rerun_finished: bool,
    /// How often the monitor reads control flags and health signals.
    pub health_interval: Duration,
    /// How often batch statistics are sampled into the journal.
    pub journal_sample_every: Duration,
    pub lock_retry: RetryPolicy,
    pub reconnect: RetryPolicy,
    /// `--hold-horizon`: hold one read-only snapshot beside the workers for at most this long at a time (then a
    /// fresh one), so batches run at one UPDATE's speed; `None` = never.
    pub hold_horizon: Option<Duration>,
    /// `--max-fg-latency`: the foreground budget the write-path probe is judged against.
    pub foreground: ForegroundBudget,
    /// `--replica`: replicas whose lag is read on the replica itself (MySQL/MariaDB), against
    /// `thresholds.max_replica_lag`.
    pub replicas: Vec<Replica>,
}

/// `--max-fg-latency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForegroundBudget {
    /// Three times the write-path probe's median latency measured before the run, at least 10 ms
    /// ([`crate::throttle::foreground_limit`]).
    Auto,
    /// A fixed budget.
    Limit(Duration),
    /// No write-path probe.
    Off,
}

impl Default for BackfillOptions {
    fn default() -> Self {
        Self {
            controller: ControllerConfig::default(),
            lock_timeout: Duration::from_secs(1),
            statement_timeout: None,
            thresholds: Thresholds::default(),
            probe_sql: None,
            throttle_query: None,
            max_rows_per_second: None,
            window: None,
            workers: 1,
            scale_workers: None,
            chunk_rows: 20_000,
            critical_abort: false,
            restart: false,
            rerun_finished: false,
            health_interval: Duration::from_millis(250),
            journal_sample_every: Duration::from_secs(5),
            lock_retry: RetryPolicy::lock_conflicts(),
            reconnect: RetryPolicy::reconnect(),
            hold_horizon: Some(DEFAULT_HOLD_HORIZON),
            foreground: ForegroundBudget::Auto,
            replicas: Vec::new(),
        }
    }
}

/// Write-path probes taken before the run to set `--max-fg-latency auto`.
const FOREGROUND_BASELINE_SAMPLES: usize = 20;

/// `--hold-horizon`'s default: long enough that a run's batches keep one UPDATE's speed, short enough that
/// vacuum is never held back longer than a minute at a time.
pub const DEFAULT_HOLD_HORIZON: Duration = Duration::from_secs(60);

impl BackfillOptions {
    pub fn effective_statement_timeout(&self) -> Duration {
        self.statement_timeout
            .unwrap_or_else(|| (self.controller.target * 10).max(Duration::from_secs(1)))
    }
}

/// Why a backfill did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// Bad input, found before any row changed. Exit 2.
    #[error("{0}")]
    Input(String),
    /// The database could not be reached or answered with an error before the run started (its SQLSTATE kept).
    /// Exit 1.
    #[error("{0}")]
    Database(#[from] DbError),
    /// The latest run of this spec already completed (or was aborted); `--restart` runs it again.
    #[error("run {run_id} of this spec is already {status}; nothing to do. Pass --restart to run it again (a non-idempotent SET would apply twice)")]
    AlreadyFinished { run_id: i64, status: RunStatus },
    /// The run started and then failed; its state is consistent and resumable. Exit 1.
    #[error("run {run_id} failed: {message}")]
    RunFailed { run_id: i64, message: String },
}

impl From<tidegate_db::connect::ConnectError> for BackfillError {
    fn from(error: tidegate_db::connect::ConnectError) -> Self {
        match error {
            tidegate_db::connect::ConnectError::Connect { .. } => {
                BackfillError::Database(error.into())
            }
            other => BackfillError::Input(other.to_string()),
        }
    }
}

fn db_error(context: &str, error: DbError) -> BackfillError {
    BackfillError::Database(error.context(context))
}

/// What to run: a spec (resumes its unfinished run, if any) or a run by id.
#[derive(Debug, Clone)]
pub enum RunTarget {
    Spec(BackfillSpec),
    Resume(i64),
}

/// The table, key and statements a spec resolves to against the live catalog. Read-only to obtain.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Prepared {
    /// The database family the spec was resolved against.
    pub family: tidegate_db::driver::Family,
    pub spec: BackfillSpec,
    pub shape: BatchShape,
    /// The index the key comes from.
    pub key_index: String,
    pub estimated_rows: Option<i64>,
    pub key_min: Option<Vec<String>>,
    pub key_max: Option<Vec<String>>,
}

/// The `--dry-run` plan.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    pub table: String,
    /// `backfill` (an update) or `delete`: the run's kind in `tidegate runs`.
    pub kind: &'static str,
    /// The statement the run stands for, as one line.
    pub statement: String,
    pub key: Vec<String>,
    pub key_index: String,
    pub estimated_rows: Option<i64>,
    pub initial_batch_size: u64,
    pub estimated_batches: Option<u64>,
    pub batch_time_ms: u128,
    pub lock_timeout_ms: u128,
    pub statement_timeout_ms: u128,
    /// The exact statements of the first batch, with their parameters.
    pub batch_sql: Vec<String>,
    pub batch_parameters: Vec<String>,
    pub health_signals: Vec<String>,
    pub existing_run: Option<i64>,
}

impl Prepared {
    /// The plan `--dry-run` prints.
    pub fn plan(&self, options: &BackfillOptions, existing_run: Option<i64>) -> Plan {
        // A Prepared exists only for a family that has a dialect (prepare chose it).
        let d = dialect_for(self.family).expect("prepare resolved this family's dialect");
        let size = options.controller.initial.max(1);
        let mut parameters = Vec::new();
        if let Some(max) = &self.key_max {
            parameters.push(format!(
                "upper key bound (fixed at start) = ({})",
                max.join(", ")
            ));
        }
        parameters.push(format!("offset = {}", size - 1));
        let t = &options.thresholds;
        let sources = d.health_sources();
        let mut signals = vec![
            format!(
                "sessions blocked by our backends ({}): throttle at once",
                sources.blocked
            ),
            match sources.replica_lag {
                Some(_) if d.reads_lag_on_replicas() && options.replicas.is_empty() => {
                    "replica lag: not watched (a MySQL/MariaDB primary cannot see it); pass --replica URL for each \
                     replica, or use --throttle-query on a heartbeat table"
                        .to_string()
                }
                Some(_) if d.reads_lag_on_replicas() => format!(
                    "replica lag (SHOW REPLICA STATUS on {}; NULL, replication stopped, waits): throttle over \
                     {:.1}s, critical over {}x",
                    options
                        .replicas
                        .iter()
                        .map(|r| r.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    t.max_replica_lag.as_secs_f64(),
                    t.critical_factor
                ),
                Some(source) => format!(
                    "replica lag ({source}): throttle over {:.1}s, critical over {}x",
                    t.max_replica_lag.as_secs_f64(),
                    t.critical_factor
                ),
                None => {
                    "replica lag: not watched on this database (the primary cannot see it); use \
                         --throttle-query on a heartbeat table"
                        .to_string()
                }
            },
            match t.max_active {
                Some(max) => format!("{}: throttle over {max}", sources.active),
                None => format!("{}: reported (no --max-active)", sources.active),
            },
            format!(
                "probe latency ({}): throttle over {} ms",
                options
                    .probe_sql
                    .as_deref()
                    .unwrap_or("primary-key lookup on the table"),
                t.max_probe_latency.as_millis()
            ),
            format!(
                "transactions open longer than {}s: reported",
                t.long_transaction.as_secs()
            ),
        ];
        if let Some(q) = &options.throttle_query {
            signals.push(format!("throttle query (true = wait): {q}"));
        }
        if let Some(w) = &options.window {
            signals.push(format!("window: batches only during {w}"));
        }
        if let Some(r) = options.max_rows_per_second {
            signals.push(format!("rate: at most {r} rows/s"));
        }
        Plan {
            table: format!("{}.{}", self.shape.schema, self.shape.table),
            kind: self.spec.operation.kind(),
            statement: self.spec.describe(),
            key: self.shape.key_columns.clone(),
            key_index: self.key_index.clone(),
            estimated_rows: self.estimated_rows,
            initial_batch_size: size,
            estimated_batches: self
                .estimated_rows
                .map(|r| (r.max(0) as u64).div_ceil(size)),
            batch_time_ms: options.controller.target.as_millis(),
            lock_timeout_ms: options.lock_timeout.as_millis(),
            statement_timeout_ms: options.effective_statement_timeout().as_millis(),
            batch_sql: vec![
                "BEGIN".into(),
                d.batch_settings(options.lock_timeout, options.effective_statement_timeout()),
                d.batch_upper_bound(&self.shape, false),
                d.batch_change(&self.shape, false),
                format!(
                    "{} -- the checkpoint, same transaction",
                    d.state().checkpoint
                ),
                "COMMIT".into(),
            ],
            batch_parameters: parameters,
            health_signals: signals,
            existing_run,
        }
    }
}

/// Validates the spec against the live catalog and returns what a run would do. Changes nothing.
pub async fn prepare(
    session: &dyn Session,
    spec: &BackfillSpec,
) -> Result<Prepared, BackfillError> {
    prepare_with(dialect_for(session.family())?, session, spec).await
}

/// As [`prepare`], through the given dialect.
pub async fn prepare_with(
    d: &dyn Dialect,
    session: &dyn Session,
    spec: &BackfillSpec,
) -> Result<Prepared, BackfillError> {
    if spec.table.trim().is_empty() {
        return Err(BackfillError::Input(
            spec::SpecError::EmptyTable.to_string(),
        ));
    }
    let set_columns = match &spec.operation {
        Operation::Update { set } => spec::validate_set_for(d.family(), set)
            .map_err(|e| BackfillError::Input(e.to_string()))?,
        Operation::Delete => Vec::new(),
    };
    // Catalog reads and statement checks never wait long behind another session's lock.
    session
        .batch_execute(&d.session_settings(Duration::from_secs(5), Duration::from_secs(30)))
        .await
        .map_err(|e| db_error("configuring the session", e))?;
    if let Some(p) = &spec.predicate {
        spec::validate_where_for(d.family(), p).map_err(|e| BackfillError::Input(e.to_string()))?;
    }
    if let Some(why) = d
        .grammar_mismatch(session)
        .await
        .map_err(|e| db_error("reading how the server reads SQL text", e))?
    {
        return Err(BackfillError::Input(why));
    }
    let writable = d
        .writable(session)
        .await
        .map_err(|e| db_error("checking the connection is writable", e))?;
    if writable.in_recovery || writable.read_only {
        return Err(BackfillError::Input(format!(
            "the connection is read-only ({}); point --db at the primary with a role that may write",
            if writable.in_recovery { "the server is a standby in recovery" } else { "default_transaction_read_only is on" }
        )));
    }
    let table = match d.resolve_table(session, &spec.table).await {
        Ok(Some(table)) => table,
        Ok(None) => {
            return Err(BackfillError::Input(format!(
            "table {:?} does not exist (or is not on the search_path); name it as `schema.table`",
            spec.table
        )))
        }
        Err(e) if e.sqlstate.is_some() && !e.is_connection_lost() => {
            return Err(BackfillError::Input(format!(
                "--table {:?} is not a table name: {}",
                spec.table, e.message
            )))
        }
        Err(e) => return Err(db_error("looking up the table", e)),
    };
    let (schema, name) = (table.schema.clone(), table.name.clone());
    if let TableKind::Other(relkind) = &table.kind {
        return Err(BackfillError::Input(format!(
            "{schema}.{name} is not a table (relkind {relkind}); a backfill changes the rows of a table"
        )));
    }
    let (privilege, allowed) = match spec.operation {
        Operation::Update { .. } => ("UPDATE", table.may_update),
        Operation::Delete => ("DELETE", table.may_delete),
    };
    if !allowed {
        return Err(BackfillError::Input(format!(
            "the connected role may not {privilege} {schema}.{name}; grant it {privilege} or connect as the table's owner"
        )));
    }
    let columns = d
        .columns(session, &table)
        .await
        .map_err(|e| db_error("reading the table's columns", e))?;
    // MySQL matches column names without regard to case (`SET ID = …` assigns `id`): the assigned columns are
    // taken as the catalog spells them, so the key check below cannot be dodged by case.
    let mut set_columns = set_columns;
    for column in &mut set_columns {
        let found = columns.iter().find(|c| match d.family() {
            tidegate_db::driver::Family::Postgres => c.name == *column,
            tidegate_db::driver::Family::MySql => c.name.eq_ignore_ascii_case(column),
        });
        match found {
            Some(c) => *column = c.name.clone(),
            None => {
                return Err(BackfillError::Input(format!(
                    "--set assigns column {column:?}, which {schema}.{name} does not have (columns: {})",
                    columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                )))
            }
        }
    }
    let indexes = d
        .unique_indexes(session, &table)
        .await
        .map_err(|e| db_error("reading the table's indexes", e))?;
    let usable = |ix: &&crate::dialect::UniqueIndex| ix.usable && (ix.primary || ix.all_not_null);
    let chosen = match &spec.key {
        None => indexes
            .iter()
            .find(|ix| ix.primary && usable(ix))
            .or_else(|| indexes.iter().find(usable)),
        Some(asked) => {
            // As for --set: on MySQL `--key ID` names column `id`, so it is taken as the catalog spells it.
            let mut wanted = asked.clone();
            for column in &mut wanted {
                let found = columns.iter().find(|c| match d.family() {
                    tidegate_db::driver::Family::Postgres => c.name == *column,
                    tidegate_db::driver::Family::MySql => c.name.eq_ignore_ascii_case(column),
                });
                match found {
                    Some(c) => *column = c.name.clone(),
                    None => {
                        return Err(BackfillError::Input(format!(
                            "--key names column {column:?}, which {schema}.{name} does not have"
                        )))
                    }
                }
            }
            let wanted = &wanted;
            match indexes.iter().find(|ix| &ix.columns == wanted) {
                Some(ix) if usable(&ix) => Some(ix),
                Some(ix) => {
                    return Err(BackfillError::Input(format!(
                        "--key {} matches index {}, which is not usable for batching: it must be a valid btree index \
                         without predicate or expressions on NOT NULL columns",
                        wanted.join(","),
                        ix.name
                    )))
                }
                None => {
                    return Err(BackfillError::Input(format!(
                        "--key {} does not name a unique index of {schema}.{name}; create one (CREATE UNIQUE INDEX \
                         CONCURRENTLY ... ({})) with NOT NULL columns, or omit --key to use the primary key",
                        wanted.join(","),
                        wanted.join(", ")
                    )))
                }
            }
        }
    };
    let Some(chosen) = chosen.cloned() else {
        return Err(BackfillError::Input(format!(
            "{schema}.{name} has no primary key and no unique index on NOT NULL columns, so it cannot be walked in \
             batches safely; add a primary key (or a unique NOT NULL index and pass it with --key)"
        )));
    };
    let (index_name, key_columns) = (chosen.name, chosen.columns);
    for column in &set_columns {
        if key_columns.contains(column) {
            return Err(BackfillError::Input(format!(
                "--set assigns key column {column:?}; a backfill cannot change the key it walks. Use another key (--key) or a migration"
            )));
        }
    }
    let key_types = key_columns
        .iter()
        .map(|k| {
            columns
                .iter()
                .find(|c| &c.name == k)
                .map(|c| c.type_name.clone())
                .unwrap_or_default()
        })
        .collect();
    let shape = BatchShape {
        schema: schema.clone(),
        table: name.clone(),
        key_columns,
        key_types,
        operation: spec.operation.clone(),
        predicate: spec.predicate.clone(),
    };
    let flags = match spec.operation {
        Operation::Update { .. } => "--set/--where",
        Operation::Delete => "--where",
    };
    for has_lower in [false, true] {
        let sql = d.batch_change(&shape, has_lower);
        d.check_change(&shape, &sql)
            .map_err(|why| BackfillError::Input(format!("{flags} rejected: {why}")))?;
        // The server analyses the statement without running it: unknown columns and type errors surface here.
        if let Err(e) = session.prepare(&sql).await {
            if matches!(
                e.class,
                ErrorClass::ConnectionLost | ErrorClass::LockTimeout | ErrorClass::StatementTimeout
            ) {
                return Err(db_error(
                    "checking the batch statement (another session may hold a lock on the table)",
                    e,
                ));
            }
            return Err(BackfillError::Input(format!(
                "{flags} do not fit {schema}.{name}: {}",
                e.message
            )));
        }
        session
            .prepare(&d.batch_upper_bound(&shape, has_lower))
            .await
            .map_err(|e| db_error("checking the batch bound query", e))?;
    }
    let key_min = first_key(session, &d.key_min(&shape)).await?;
    let key_max = first_key(session, &d.key_max(&shape)).await?;
    Ok(Prepared {
        family: d.family(),
        spec: spec.clone(),
        shape,
        key_index: index_name,
        estimated_rows: table.estimated_rows,
        key_min,
        key_max,
    })
}

/// The run identity: the spec as given (table, operation, WHERE, key), as JSON. Naming the table differently
/// (`orders` vs `public.orders`) makes a different run: apply's executor looks runs up by this same text.
pub fn identity_json(prepared: &Prepared) -> String {
    serde_json::to_string(&prepared.spec).unwrap_or_default()
}

async fn first_key(session: &dyn Session, sql: &str) -> Result<Option<Vec<String>>, BackfillError> {
    let row = session
        .query_opt(sql, &[])
        .await
        .map_err(|e| db_error("reading the key range", e))?;
    row.map(|r| r.texts())
        .transpose()
        .map_err(|e| db_error("reading the key range", e.into()))
}

/// Asks a running engine to stop between batches (SIGINT/SIGTERM). Cloneable.
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<Mutex<Option<String>>>);

impl StopHandle {
    pub fn request(&self, reason: &str) {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(reason.to_string());
        }
    }

    pub fn requested(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// How a run ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    Completed,
    /// Stopped by a signal: paused, resumable.
    Interrupted {
        reason: String,
    },
    Aborted {
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub run_id: i64,
    /// `backfill` (an update) or `delete`.
    pub kind: &'static str,
    pub end: RunEnd,
    pub rows_done: u64,
    pub batches: u64,
}

/// Receives events as they happen.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

#[derive(Debug, Clone, PartialEq)]
enum Gate {
    Go,
    Wait(WaitReason),
    Paused(String),
    Stop(String),
    Abort(String),
}

/// Why no new batch starts for now (the run goes on by itself when it clears).
#[derive(Debug, Clone, PartialEq)]
enum WaitReason {
    /// The monitor has not read the signals yet.
    Starting,
    /// The health signals are over their thresholds (or held there while they recover).
    Throttled {
        reason: String,
        signals: Vec<crate::throttle::Signal>,
        recovering: Option<crate::throttle::Recovery>,
    },
    OutsideWindow {
        window: String,
        opens_in_minutes: u64,
    },
    MonitorReconnecting,
    MonitorQueryFailed {
        error: String,
    },
}

impl WaitReason {
    /// The reason without the recovery countdown: a change of this is a new throttle worth journaling.
    fn cause(&self) -> String {
        match self {
            WaitReason::Throttled { reason, .. } => reason.clone(),
            other => other.to_string(),
        }
    }
}

impl std::fmt::Display for WaitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitReason::Starting => f.write_str("starting"),
            WaitReason::Throttled {
                reason,
                recovering: Some(recovery),
                ..
            } => write!(f, "{reason} ({recovery})"),
            WaitReason::Throttled { reason, .. } => f.write_str(reason),
            WaitReason::OutsideWindow {
                window,
                opens_in_minutes,
            } => write!(f, "outside window {window}; opens in {opens_in_minutes}m"),
            WaitReason::MonitorReconnecting => f.write_str("monitor connection lost; reconnecting"),
            WaitReason::MonitorQueryFailed { error } => write!(f, "monitor query failed: {error}"),
        }
    }
}

struct Ctx {
    /// Opens the workers' and the monitor's sessions (and reopens them after a loss).
    driver: Arc<dyn Driver>,
    /// Every statement the engine sends comes from here (batch SQL, catalog, health, state).
    dialect: &'static dyn Dialect,
    options: BackfillOptions,
    shape: BatchShape,
    run_id: i64,
    estimated_rows: Option<i64>,
    origin: Instant,
    gate: Mutex<Gate>,
    throttle_epoch: AtomicU64,
    /// Set once every worker has returned: the monitor hands its connection back for the final write.
    finishing: AtomicBool,
    /// The same, for tasks sleeping between checks: they wake at once instead of after their interval (the
    /// monitor's 250 ms were the last quarter-second of every run).
    finishing_signal: tokio::sync::watch::Sender<bool>,
    /// The write-path probe's median now and before the run, in microseconds (0: not measured), for the
    /// worker scaler.
    fg_now_us: AtomicU64,
    fg_before_us: AtomicU64,
    /// How many workers should run: a worker whose number is not below it retires between chunks.
    worker_target: std::sync::atomic::AtomicU32,
    limiter: Option<Mutex<RateLimit>>,
    pids: Mutex<Vec<i32>>,
    rows_done: AtomicU64,
    rows_scanned: AtomicU64,
    batches: AtomicU64,
    /// Rows done before this process attached: rates and ETAs count only this process's work.
    initial_done: u64,
    last_batch_size: AtomicU64,
    last_statement_us: AtomicU64,
    /// Every batch statement's time (ms) since the last journal sample: the sample keeps them all, so a report
    /// computes exact percentiles from the journal alone.
    batch_ms: Mutex<Vec<f64>>,
    /// Rows scanned over time, for the ETA.
    rates: Mutex<crate::eta::RateHistory>,
    journal: tokio::sync::mpsc::UnboundedSender<Event>,
    sink: EventSink,
}

impl Ctx {
    /// Sleeps `interval`, or less when the run starts finishing.
    async fn idle(&self, interval: Duration) {
        let mut finishing = self.finishing_signal.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = finishing.wait_for(|finishing| *finishing) => {}
        }
    }

    fn gate(&self) -> Gate {
        self.gate.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_gate(&self, gate: Gate) {
        *self.gate.lock().unwrap_or_else(|e| e.into_inner()) = gate;
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// The journal's `batch_stats` sample: the counters now, the batch times since the last sample (taken out
    /// of the buffer) and the server's WAL position when known.
    fn take_sample(&self, wal_lsn: Option<String>) -> serde_json::Value {
        let batch_ms =
            std::mem::take(&mut *self.batch_ms.lock().unwrap_or_else(|e| e.into_inner()));
        serde_json::json!({
            "rows_done": self.rows_done.load(Ordering::Relaxed),
            "rows_scanned": self.rows_scanned.load(Ordering::Relaxed),
            "batches": self.batches.load(Ordering::Relaxed),
            "batch_size": self.last_batch_size.load(Ordering::Relaxed),
            "statement_ms": self.last_statement_us.load(Ordering::Relaxed) as f64 / 1000.0,
            "batch_ms": batch_ms,
            "wal_lsn": wal_lsn,
        })
    }

    /// Reports an event and, unless it is a batch, journals it.
    fn emit(&self, event: Event) {
        (self.sink)(&event);
        if event.journal_name().is_some() {
            let _ = self.journal.send(event);
        }
    }
}

/// Runs (or resumes) a backfill to its end. Returns how it ended; a failure is an error whose run stays
/// resumable.
pub async fn run<D: Driver + Clone + 'static>(
    driver: &D,
    target: RunTarget,
    options: BackfillOptions,
    sink: EventSink,
    stop: StopHandle,
) -> Result<Outcome, BackfillError> {
    let session = driver.open().await.map_err(|e| {
        if e.class == ErrorClass::Other && e.sqlstate.is_none() {
            // The settings themselves are wrong (an unsupported option): the user's input.
            BackfillError::Input(e.message)
        } else {
            BackfillError::Database(e)
        }
    })?;
    let client = session.as_ref();
    let (spec, resume_row) = match &target {
        RunTarget::Spec(spec) => (spec.clone(), None),
        RunTarget::Resume(id) => {
            if !state::schema_exists(client)
                .await
                .map_err(|e| db_error("reading runs", e))?
            {
                return Err(BackfillError::Input(format!(
                    "there is no run {id} (no tidegate state in this database)"
                )));
            }
            let row = state::find_run(client, *id)
                .await
                .map_err(|e| db_error("reading the run", e))?
                .ok_or_else(|| {
                    BackfillError::Input(format!(
                        "there is no run {id}; `tidegate runs` lists them"
                    ))
                })?;
            if row.is_finished() {
                return Err(BackfillError::Input(format!(
                    "run {id} is {}; nothing to resume",
                    row.status
                )));
            }
            let spec: BackfillSpec = serde_json::from_str(&row.spec_json).map_err(|e| {
                BackfillError::Database(DbError::other(
                    format!("reading run {id}"),
                    format!("its spec is one this build cannot read: {e}"),
                ))
            })?;
            (spec, Some(row))
        }
    };
    let prepared = prepare(client, &spec).await?;
    if let Some(q) = &options.probe_sql {
        spec::validate_select(q, "--probe-sql").map_err(BackfillError::Input)?;
    }
    if let Some(q) = &options.throttle_query {
        spec::validate_select(q, "--throttle-query").map_err(BackfillError::Input)?;
    }
    // The foreground budget, resolved before the run is created or attached (a `tidegate pause` meanwhile finds
    // no engine it could not reach) and before the first batch, so `auto` measures an undisturbed write path.
    let mut options = options;
    let dialect = dialect_for(session.family())?;
    let write_probe = monitor::ProbeKeys::from_range(
        &prepared.shape.key_types,
        prepared.key_min.as_ref(),
        prepared.key_max.as_ref(),
    )
    .map(|keys| monitor::WriteProbe::new(dialect, &prepared.shape, keys, &options.thresholds));
    let mut notes = Vec::new();
    let mut fg_before = None;
    options.thresholds.max_fg_latency = match (options.foreground, &write_probe) {
        (ForegroundBudget::Off, _) | (_, None) => None,
        (ForegroundBudget::Limit(limit), Some(_)) => Some(limit),
        (ForegroundBudget::Auto, Some(probe)) => {
            match monitor::measure_write_probe(client, dialect, probe, FOREGROUND_BASELINE_SAMPLES)
                .await
            {
                Ok(samples) => {
                    fg_before = crate::throttle::median(&samples);
                    let limit = crate::throttle::foreground_limit(&samples);
                    if let Some(limit) = limit {
                        notes.push(format!(
                            "foreground budget {:.1} ms: 3x the write-path probe's median of {:.2} ms over {} \
                             probes before the run, at least {} ms (--max-fg-latency)",
                            limit.as_secs_f64() * 1000.0,
                            crate::throttle::median(&samples)
                                .unwrap_or_default()
                                .as_secs_f64()
                                * 1000.0,
                            samples.len(),
                            crate::throttle::FOREGROUND_FLOOR.as_millis()
                        ));
                    }
                    limit
                }
                Err(e) if e.is_connection_lost() => {
                    return Err(db_error("probing the write path", e))
                }
                Err(e) => {
                    notes.push(format!(
                        "the foreground budget is not watched: the write-path probe failed before the run ({})",
                        e.message
                    ));
                    None
                }
            }
        }
    };

    // Every replica is reached and read before anything is written, the state schema included.
    let replica_watch = ReplicaWatch::connect(dialect, &options.replicas).await?;

    state::ensure_schema(client).await.map_err(|e| match e {
        state::StateError::Db(error) => db_error("creating the tidegate state schema", error),
        other => BackfillError::Database(DbError::other(
            "creating the tidegate state schema",
            other.to_string(),
        )),
    })?;
    let spec_json = identity_json(&prepared);
    let (run, resumed) = attach_or_create(
        client,
        &prepared,
        &spec_json,
        resume_row,
        options.restart,
        options.rerun_finished,
    )
    .await?;
    let run_id = run.id;

    let initial_workers = options.workers.max(1);
    let (journal_tx, journal_rx) = tokio::sync::mpsc::unbounded_channel();
    let ctx = Arc::new(Ctx {
        driver: Arc::new(driver.clone()),
        dialect: dialect_for(session.family())?,
        limiter: options
            .max_rows_per_second
            .map(|r| Mutex::new(RateLimit::new(r))),
        options,
        shape: prepared.shape.clone(),
        run_id,
        estimated_rows: run.estimated_rows,
        origin: Instant::now(),
        gate: Mutex::new(Gate::Wait(WaitReason::Starting)),
        throttle_epoch: AtomicU64::new(0),
        finishing: AtomicBool::new(false),
        finishing_signal: tokio::sync::watch::channel(false).0,
        worker_target: std::sync::atomic::AtomicU32::new(initial_workers),
        fg_now_us: AtomicU64::new(0),
        fg_before_us: AtomicU64::new(fg_before.map_or(0, |d| d.as_micros() as u64)),
        pids: Mutex::new(Vec::new()),
        rows_done: AtomicU64::new(run.rows_done.max(0) as u64),
        rows_scanned: AtomicU64::new(run.rows_scanned.max(0) as u64),
        batches: AtomicU64::new(run.batches.max(0) as u64),
        initial_done: run.rows_done.max(0) as u64,
        last_batch_size: AtomicU64::new(0),
        last_statement_us: AtomicU64::new(0),
        batch_ms: Mutex::new(Vec::new()),
        rates: Mutex::new(crate::eta::RateHistory::new()),
        journal: journal_tx,
        sink,
    });
    ctx.emit(Event::Started {
        run_id,
        kind: run.kind.clone(),
        resumed,
        table: run.table.clone(),
        key: run.key_columns.clone(),
        estimated_rows: run.estimated_rows,
        rows_done: run.rows_done.max(0) as u64,
        workers: ctx.options.workers.max(1),
    });

    for message in notes {
        ctx.emit(Event::Note { run_id, message });
    }

    let probe_key = run.key_min.clone();
    let mut workers = tokio::task::JoinSet::new();
    let mut live = std::collections::BTreeSet::new();
    let spawn_up_to = |workers: &mut tokio::task::JoinSet<(u32, WorkerEnd)>,
                       live: &mut std::collections::BTreeSet<u32>,
                       target: u32| {
        for worker in 0..target.max(1) {
            if live.insert(worker) {
                let ctx = ctx.clone();
                workers.spawn(async move { (worker, worker_loop(ctx, worker).await) });
            }
        }
    };
    spawn_up_to(&mut workers, &mut live, ctx.options.workers);
    let mut scaler = ctx
        .options
        .scale_workers
        .clone()
        .map(crate::scaling::WorkerScaler::new);
    let monitor = tokio::spawn(monitor_loop(
        ctx.clone(),
        session,
        journal_rx,
        probe_key,
        write_probe,
        replica_watch,
        stop.clone(),
    ));
    let holder = ctx
        .options
        .hold_horizon
        .filter(|hold| !hold.is_zero())
        .map(|hold| tokio::spawn(horizon::horizon_loop(ctx.clone(), hold)));

    let mut failure: Option<String> = None;
    let mut all_done = true;
    let mut finished_seen = false;
    loop {
        let joined = tokio::select! {
            joined = workers.join_next() => joined,
            _ = tokio::time::sleep(ctx.options.health_interval), if scaler.is_some() => {
                let healthy = matches!(ctx.gate(), Gate::Go);
                let scanned = ctx.rows_scanned.load(Ordering::Relaxed);
                let micros = |v: &AtomicU64| match v.load(Ordering::Relaxed) {
                    0 => None,
                    us => Some(Duration::from_micros(us)),
                };
                let foreground = micros(&ctx.fg_now_us).zip(micros(&ctx.fg_before_us));
                if let Some(scale) = scaler
                    .as_mut()
                    .and_then(|s| s.observe_with(ctx.now(), scanned, healthy, foreground))
                {
                    ctx.worker_target.store(scale.workers, Ordering::Relaxed);
                    ctx.rates.lock().unwrap_or_else(|e| e.into_inner()).restart();
                    ctx.emit(Event::Note {
                        run_id,
                        message: format!("workers: {} ({})", scale.workers, scale.reason),
                    });
                    if !finished_seen && healthy {
                        spawn_up_to(&mut workers, &mut live, scale.workers);
                    }
                }
                continue;
            }
        };
        let Some(joined) = joined else { break };
        let end = match joined {
            Ok((worker, end)) => {
                live.remove(&worker);
                end
            }
            Err(e) => WorkerEnd::Failed(format!("a worker panicked: {e}")),
        };
        match end {
            WorkerEnd::Done => finished_seen = true,
            WorkerEnd::Retired => {}
            WorkerEnd::Stopped => all_done = false,
            WorkerEnd::Failed(message) => {
                all_done = false;
                if failure.is_none() {
                    failure = Some(message.clone());
                    // The other workers finish their batch in flight and stop.
                    ctx.set_gate(Gate::Stop(format!("another worker failed: {message}")));
                }
            }
        }
    }
    let gate = ctx.gate();
    let end = if let Some(message) = failure {
        Err(message)
    } else if all_done {
        Ok(RunEnd::Completed)
    } else {
        match gate {
            Gate::Abort(reason) => Ok(RunEnd::Aborted { reason }),
            Gate::Stop(reason) => Ok(RunEnd::Interrupted { reason }),
            other => Ok(RunEnd::Interrupted {
                reason: format!("stopped ({other:?})"),
            }),
        }
    };
    // The monitor writes the final status and drains the journal.
    ctx.finishing.store(true, Ordering::Relaxed);
    ctx.finishing_signal.send_replace(true);
    ctx.set_gate(Gate::Stop("finishing".into()));
    let final_state = FinalState { end: end.clone() };
    let monitor_client = monitor.await.ok().flatten();
    if let Some(holder) = holder {
        let _ = holder.await;
    }
    let rows_done = ctx.rows_done.load(Ordering::Relaxed);
    let batches = ctx.batches.load(Ordering::Relaxed);
    finish(&ctx, monitor_client, &final_state).await;
    match end {
        Ok(end) => Ok(Outcome {
            run_id,
            kind: ctx.shape.operation.kind(),
            end,
            rows_done,
            batches,
        }),
        Err(message) => Err(BackfillError::RunFailed { run_id, message }),
    }
}

struct FinalState {
    end: Result<RunEnd, String>,
}

/// Writes the run's final status and journal entry, reconnecting if it must.
async fn finish(
    ctx: &Ctx,
    client: Option<(
        Box<dyn Session>,
        tokio::sync::mpsc::UnboundedReceiver<Event>,
    )>,
    final_state: &FinalState,
) {
    let elapsed = ctx.now().as_secs_f64();
    let event = match &final_state.end {
        Ok(RunEnd::Completed) => Event::Completed {
            run_id: ctx.run_id,
            kind: ctx.shape.operation.kind().to_string(),
            rows_done: ctx.rows_done.load(Ordering::Relaxed),
            batches: ctx.batches.load(Ordering::Relaxed),
            seconds: elapsed,
        },
        Ok(RunEnd::Interrupted { reason }) => Event::Paused {
            run_id: ctx.run_id,
            reason: reason.clone(),
            cause: crate::events::PauseCause::Stopped,
            critical: Vec::new(),
            readings: Vec::new(),
        },
        Ok(RunEnd::Aborted { reason }) => Event::Aborted {
            run_id: ctx.run_id,
            reason: reason.clone(),
        },
        Err(message) => Event::Failed {
            run_id: ctx.run_id,
            error: message.clone(),
        },
    };
    (ctx.sink)(&event);
    // The last sample, taken once: the batches since the monitor's last one, whatever reconnects follow.
    let mut sample = ctx.take_sample(None);
    let (mut client, mut rx) = match client {
        Some((c, rx)) => (Some(c), Some(rx)),
        None => (None, None),
    };
    let mut retry = RetryState::default();
    loop {
        if client.is_none() {
            client = ctx.driver.open().await.ok();
        }
        if let Some(c) = &client {
            let mut pending = Vec::new();
            if let Some(rx) = rx.as_mut() {
                while let Ok(e) = rx.try_recv() {
                    pending.push(e);
                }
            }
            pending.push(event.clone());
            let result = write_final(
                c.as_ref(),
                ctx.run_id,
                &final_state.end,
                &mut sample,
                &pending,
            )
            .await;
            match result {
                Ok(()) => return,
                Err(e) if e.is_connection_lost() => client = None,
                Err(e) => {
                    tracing::warn!(error = %e, "could not record the run's final status");
                    return;
                }
            }
        }
        match retry.on_failure(&ctx.options.reconnect, ctx.now(), fastrand::f64()) {
            RetryDecision::RetryAfter { delay, .. } => tokio::time::sleep(delay).await,
            RetryDecision::GiveUp { .. } => {
                tracing::warn!("could not reach the database to record the run's final status");
                return;
            }
        }
    }
}

async fn write_final(
    session: &dyn Session,
    run_id: i64,
    end: &Result<RunEnd, String>,
    sample: &mut serde_json::Value,
    events: &[Event],
) -> Result<(), DbError> {
    let dialect = dialect_for(session.family())?;
    let sql = dialect.state();
    // Before the final event, so the report's series ends with the run's last counts.
    match dialect.wal_position(session).await {
        Ok(lsn) => sample["wal_lsn"] = lsn.into(),
        Err(e) if e.is_connection_lost() => return Err(e),
        Err(_) => {}
    }
    state::journal(session, run_id, "batch_stats", sample).await?;
    for event in events {
        if let Some(name) = event.journal_name() {
            state::journal(session, run_id, name, &event.to_json()).await?;
        }
    }
    match end {
        Ok(RunEnd::Completed) => {
            session
                .run(
                    sql.set_status,
                    &[
                        run_id.into(),
                        RunStatus::Completed.as_str().into(),
                        Value::Null,
                    ],
                )
                .await?;
        }
        Ok(RunEnd::Interrupted { reason }) => {
            session
                .run(
                    sql.set_status,
                    &[
                        run_id.into(),
                        RunStatus::Paused.as_str().into(),
                        reason.as_str().into(),
                    ],
                )
                .await?;
        }
        Ok(RunEnd::Aborted { .. }) => {
            session.run(sql.set_aborted, &[run_id.into()]).await?;
        }
        Err(message) => {
            session
                .run(sql.set_failed, &[run_id.into(), message.as_str().into()])
                .await?;
        }
    }
    Ok(())
}

async fn attach_or_create(
    session: &dyn Session,
    prepared: &Prepared,
    spec_json: &str,
    resume_row: Option<RunRow>,
    restart: bool,
    rerun_finished: bool,
) -> Result<(RunRow, bool), BackfillError> {
    let sql = dialect_for(session.family())?.state();
    if let Some(row) = resume_row {
        if restart {
            return Err(BackfillError::Input(
                "--resume and --restart contradict each other; pick one".into(),
            ));
        }
        session
            .run(sql.attach, &[row.id.into()])
            .await
            .map_err(|e| db_error("attaching to the run", e))?;
        return Ok((row, true));
    }
    for _ in 0..3 {
        let existing = state::find_unfinished(session, spec_json)
            .await
            .map_err(|e| db_error("reading runs", e))?;
        if let Some(row) = existing {
            if restart {
                session
                    .run(sql.discard_run, &[row.id.into()])
                    .await
                    .map_err(|e| db_error("discarding the old run", e))?;
                state::journal(
                    session,
                    row.id,
                    "aborted",
                    &serde_json::json!({"reason": "discarded by --restart"}),
                )
                .await
                .map_err(|e| db_error("journaling", e))?;
            } else {
                session
                    .run(sql.attach, &[row.id.into()])
                    .await
                    .map_err(|e| db_error("attaching to the run", e))?;
                return Ok((row, true));
            }
        } else if !restart && !rerun_finished {
            // Running a finished spec again would apply a non-idempotent SET twice: refuse unless asked.
            let latest = session
                .query_opt(sql.latest_by_spec, &[spec_json.into()])
                .await
                .map_err(|e| db_error("reading runs", e))?;
            if let Some(latest) = latest {
                let read = || -> Result<(i64, RunStatus), tidegate_db::driver::RowError> {
                    Ok((
                        latest.get("id")?,
                        RunStatus::from_db(&latest.get::<String>("status")?),
                    ))
                };
                let (id, status) = read().map_err(|e| db_error("reading runs", e.into()))?;
                if !status.is_finished() {
                    // Another process created the run a moment ago: attach to it.
                    continue;
                }
                return Err(BackfillError::AlreadyFinished { run_id: id, status });
            }
        }
        let table = format!("{}.{}", prepared.shape.schema, prepared.shape.table);
        let params = [
            prepared.spec.operation.kind().into(),
            spec_json.into(),
            table.into(),
            prepared.shape.key_columns.clone().into(),
            prepared.shape.key_types.clone().into(),
            prepared.key_min.clone().into(),
            prepared.key_max.clone().into(),
            prepared.estimated_rows.into(),
        ];
        let inserted = if sql.returning {
            session.query_one(sql.insert_run, &params).await
        } else {
            // LAST_INSERT_ID() is the session's own: another session's insert in between cannot change it.
            match session.run(sql.insert_run, &params).await {
                Ok(_) => session.query_one(sql.last_insert_id, &[]).await,
                Err(e) => Err(e),
            }
        };
        match inserted {
            Ok(row) => {
                let id: i64 = row
                    .get("id")
                    .map_err(|e| db_error("creating the run", e.into()))?;
                let run = state::find_run(session, id)
                    .await
                    .map_err(|e| db_error("reading the new run", e))?
                    .ok_or_else(|| {
                        BackfillError::Database(DbError::other(
                            "creating the run",
                            "the new run vanished",
                        ))
                    })?;
                return Ok((run, false));
            }
            // Another process created the same run a moment ago: attach to it.
            Err(e) if e.class == ErrorClass::UniqueViolation => continue,
            Err(e) => return Err(db_error("creating the run", e)),
        }
    }
    Err(BackfillError::Database(DbError::other(
        "creating the run",
        "could not create or find the run (concurrent starts kept racing)",
    )))
}
