//! The backfill engine: the I/O edge around the pure pieces (controller, throttle, retry, pacing).
//!
//! A run is split into chunks of the key space, created lazily from a frontier fixed by the key's upper bound
//! taken at start. A worker claims a chunk (candidates read with `FOR UPDATE SKIP LOCKED`, ownership held as a
//! session-level advisory lock that dies with the worker's connection), then walks it in batches: one short
//! transaction each, with `SET LOCAL lock_timeout`/`statement_timeout`, the UPDATE bounded by the key range, and the
//! chunk's checkpoint written in the same transaction (guarded by the cursor it started from). A crash at any
//! instant therefore loses nothing and applies nothing twice. A monitor task, on its own connection, reads the
//! control flags and health signals every `health_interval` and opens or closes the gate the workers pass
//! before each batch.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidegate_db::connect::{describe, is_connection_lost, sqlstate, ConnectionConfig};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use crate::controller::{BatchController, ControllerConfig};
use crate::dialect::{catalog, health, state as state_sql, BatchShape, Dialect, Postgres};
use crate::events::Event;
use crate::pacing::{utc_second_of_day, RateLimit, Window};
use crate::retry::{RetryDecision, RetryPolicy, RetryState};
use crate::spec::{self, BackfillSpec};
use crate::state::{self, RunRow};
use crate::throttle::{Level, Observation, Reading, Thresholds, ThrottlePolicy};

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
    /// Workers in this process.
    pub workers: u32,
    /// Keys per chunk (the unit workers claim).
    pub chunk_rows: u64,
    /// Abort instead of pausing when a signal turns critical.
    pub critical_abort: bool,
    /// Discard an unfinished run of the same spec and start over.
    pub restart: bool,
    /// How often the monitor reads control flags and health signals.
    pub health_interval: Duration,
    pub lock_retry: RetryPolicy,
    pub reconnect: RetryPolicy,
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
            chunk_rows: 20_000,
            critical_abort: false,
            restart: false,
            health_interval: Duration::from_millis(250),
            lock_retry: RetryPolicy::lock_conflicts(),
            reconnect: RetryPolicy::reconnect(),
        }
    }
}

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
    /// The database could not be reached or answered with an error before the run started. Exit 1.
    #[error("{0}")]
    Database(String),
    /// The latest run of this spec already completed (or was aborted); `--restart` runs it again.
    #[error("run {run_id} of this spec is already {status}; nothing to do. Pass --restart to run it again (a non-idempotent SET would apply twice)")]
    AlreadyFinished { run_id: i64, status: String },
    /// The run started and then failed; its state is consistent and resumable. Exit 1.
    #[error("run {run_id} failed: {message}")]
    RunFailed { run_id: i64, message: String },
}

impl From<tidegate_db::connect::ConnectError> for BackfillError {
    fn from(error: tidegate_db::connect::ConnectError) -> Self {
        match error {
            tidegate_db::connect::ConnectError::Connect { .. } => {
                BackfillError::Database(error.to_string())
            }
            other => BackfillError::Input(other.to_string()),
        }
    }
}

fn db_error(context: &str, error: &tokio_postgres::Error) -> BackfillError {
    BackfillError::Database(format!("{context}: {}", describe(error)))
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
        let d = Postgres;
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
        let mut signals = vec![
            "sessions blocked by our backends (pg_blocking_pids): throttle at once".to_string(),
            format!(
                "replica lag (pg_stat_replication): throttle over {:.1}s, critical over {}x",
                t.max_replica_lag.as_secs_f64(),
                t.critical_factor
            ),
            match t.max_active {
                Some(max) => format!("active backends: throttle over {max}"),
                None => "active backends: reported (no --max-active)".to_string(),
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
                d.batch_update(&self.shape, false),
                format!(
                    "{} -- the checkpoint, same transaction",
                    state_sql::CHECKPOINT
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
pub async fn prepare(client: &Client, spec: &BackfillSpec) -> Result<Prepared, BackfillError> {
    let d = Postgres;
    if spec.table.trim().is_empty() {
        return Err(BackfillError::Input(
            spec::SpecError::EmptyTable.to_string(),
        ));
    }
    let set_columns =
        spec::validate_set(&spec.set).map_err(|e| BackfillError::Input(e.to_string()))?;
    // Catalog reads and statement checks never wait long behind another session's lock.
    client
        .batch_execute(&catalog::session_settings(5_000, 30_000))
        .await
        .map_err(|e| db_error("configuring the session", &e))?;
    if let Some(p) = &spec.predicate {
        spec::validate_where(p).map_err(|e| BackfillError::Input(e.to_string()))?;
    }
    let writable = client
        .query_one(catalog::WRITABLE, &[])
        .await
        .map_err(|e| db_error("checking the connection is writable", &e))?;
    let (in_recovery, read_only_tx, default_read_only): (bool, bool, bool) =
        (writable.get(0), writable.get(1), writable.get(2));
    if in_recovery || read_only_tx || default_read_only {
        return Err(BackfillError::Input(format!(
            "the connection is read-only ({}); point --db at the primary with a role that may write",
            if in_recovery { "the server is a standby in recovery" } else { "default_transaction_read_only is on" }
        )));
    }
    let table = match client
        .query_opt(catalog::RESOLVE_TABLE, &[&spec.table])
        .await
    {
        Ok(Some(row)) => row,
        Ok(None) => {
            return Err(BackfillError::Input(format!(
            "table {:?} does not exist (or is not on the search_path); name it as `schema.table`",
            spec.table
        )))
        }
        Err(e) if e.code().is_some() && !is_connection_lost(&e) => {
            return Err(BackfillError::Input(format!(
                "--table {:?} is not a table name: {}",
                spec.table,
                describe(&e)
            )))
        }
        Err(e) => return Err(db_error("looking up the table", &e)),
    };
    let oid: u32 = table.get(0);
    let schema: String = table.get(1);
    let name: String = table.get(2);
    let relkind: String = table.get(3);
    let reltuples: f64 = table.get(4);
    let may_update: bool = table.get(5);
    if relkind != "r" && relkind != "p" {
        return Err(BackfillError::Input(format!(
            "{schema}.{name} is not a table (relkind {relkind}); backfill updates tables"
        )));
    }
    if !may_update {
        return Err(BackfillError::Input(format!(
            "the connected role may not UPDATE {schema}.{name}; grant it UPDATE or connect as the table's owner"
        )));
    }
    let columns: Vec<(String, String, bool)> = client
        .query(catalog::COLUMNS, &[&oid])
        .await
        .map_err(|e| db_error("reading the table's columns", &e))?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    for column in &set_columns {
        if !columns.iter().any(|(n, _, _)| n == column) {
            return Err(BackfillError::Input(format!(
                "--set assigns column {column:?}, which {schema}.{name} does not have (columns: {})",
                columns.iter().map(|c| c.0.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let indexes: Vec<(String, bool, Vec<String>, bool, bool)> = client
        .query(catalog::UNIQUE_INDEXES, &[&oid])
        .await
        .map_err(|e| db_error("reading the table's indexes", &e))?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    let usable = |ix: &&(String, bool, Vec<String>, bool, bool)| ix.4 && (ix.1 || ix.3);
    let chosen = match &spec.key {
        None => indexes
            .iter()
            .find(|ix| ix.1 && usable(ix))
            .or_else(|| indexes.iter().find(usable)),
        Some(wanted) => {
            for column in wanted {
                if !columns.iter().any(|(n, _, _)| n == column) {
                    return Err(BackfillError::Input(format!(
                        "--key names column {column:?}, which {schema}.{name} does not have"
                    )));
                }
            }
            match indexes.iter().find(|ix| &ix.2 == wanted) {
                Some(ix) if usable(&ix) => Some(ix),
                Some(ix) => {
                    return Err(BackfillError::Input(format!(
                        "--key {} matches index {}, which is not usable for batching: it must be a valid btree index \
                         without predicate or expressions on NOT NULL columns",
                        wanted.join(","),
                        ix.0
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
    let Some((index_name, _, key_columns, _, _)) = chosen.cloned() else {
        return Err(BackfillError::Input(format!(
            "{schema}.{name} has no primary key and no unique index on NOT NULL columns, so it cannot be walked in \
             batches safely; add a primary key (or a unique NOT NULL index and pass it with --key)"
        )));
    };
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
                .find(|(n, _, _)| n == k)
                .map(|c| c.1.clone())
                .unwrap_or_default()
        })
        .collect();
    let shape = BatchShape {
        schema: schema.clone(),
        table: name.clone(),
        key_columns,
        key_types,
        set: spec.set.clone(),
        predicate: spec.predicate.clone(),
    };
    for has_lower in [false, true] {
        let sql = d.batch_update(&shape, has_lower);
        spec::check_generated_update(&sql)
            .map_err(|why| BackfillError::Input(format!("--set/--where rejected: {why}")))?;
        // The server analyses the statement without running it: unknown columns and type errors surface here.
        if let Err(e) = client.prepare(&sql).await {
            if is_connection_lost(&e)
                || sqlstate(&e) == Some("55P03")
                || sqlstate(&e) == Some("57014")
            {
                return Err(db_error(
                    "checking the batch statement (another session may hold a lock on the table)",
                    &e,
                ));
            }
            return Err(BackfillError::Input(format!(
                "--set/--where do not fit {schema}.{name}: {}",
                describe(&e)
            )));
        }
        client
            .prepare(&d.batch_upper_bound(&shape, has_lower))
            .await
            .map_err(|e| db_error("checking the batch bound query", &e))?;
    }
    let key_min = first_key(client, &d.key_min(&shape)).await?;
    let key_max = first_key(client, &d.key_max(&shape)).await?;
    Ok(Prepared {
        spec: spec.clone(),
        shape,
        key_index: index_name,
        estimated_rows: if reltuples >= 0.0 {
            Some(reltuples as i64)
        } else {
            None
        },
        key_min,
        key_max,
    })
}

/// The run identity: the spec with the table resolved to its quoted qualified name, so `orders` and
/// `public.orders` are the same run.
pub fn identity_json(prepared: &Prepared) -> String {
    let d = Postgres;
    let spec = BackfillSpec {
        table: format!(
            "{}.{}",
            d.quote_ident(&prepared.shape.schema),
            d.quote_ident(&prepared.shape.table)
        ),
        ..prepared.spec.clone()
    };
    serde_json::to_string(&spec).unwrap_or_default()
}

async fn first_key(client: &Client, sql: &str) -> Result<Option<Vec<String>>, BackfillError> {
    let row = client
        .query_opt(sql, &[])
        .await
        .map_err(|e| db_error("reading the key range", &e))?;
    Ok(row.map(|r| (0..r.len()).map(|i| r.get::<_, String>(i)).collect()))
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
    pub end: RunEnd,
    pub rows_done: u64,
    pub batches: u64,
}

/// Receives events as they happen.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

#[derive(Debug, Clone, PartialEq)]
enum Gate {
    Go,
    Wait(String),
    Paused(String),
    Stop(String),
    Abort(String),
}

struct Ctx {
    config: ConnectionConfig,
    options: BackfillOptions,
    shape: BatchShape,
    run_id: i64,
    estimated_rows: Option<i64>,
    origin: Instant,
    gate: Mutex<Gate>,
    throttle_epoch: AtomicU64,
    /// Set once every worker has returned: the monitor hands its connection back for the final write.
    finishing: AtomicBool,
    limiter: Option<Mutex<RateLimit>>,
    pids: Mutex<Vec<i32>>,
    rows_done: AtomicU64,
    rows_scanned: AtomicU64,
    batches: AtomicU64,
    /// Rows done before this process attached: rates and ETAs count only this process's work.
    initial_done: u64,
    initial_scanned: u64,
    last_batch_size: AtomicU64,
    last_statement_us: AtomicU64,
    journal: tokio::sync::mpsc::UnboundedSender<Event>,
    sink: EventSink,
}

impl Ctx {
    fn gate(&self) -> Gate {
        self.gate.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_gate(&self, gate: Gate) {
        *self.gate.lock().unwrap_or_else(|e| e.into_inner()) = gate;
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
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
pub async fn run(
    config: &ConnectionConfig,
    target: RunTarget,
    options: BackfillOptions,
    sink: EventSink,
    stop: StopHandle,
) -> Result<Outcome, BackfillError> {
    let mut client = config.connect().await?;
    let (spec, resume_row) = match &target {
        RunTarget::Spec(spec) => (spec.clone(), None),
        RunTarget::Resume(id) => {
            if !state::schema_exists(&client)
                .await
                .map_err(|e| db_error("reading runs", &e))?
            {
                return Err(BackfillError::Input(format!(
                    "there is no run {id} (no tidegate state in this database)"
                )));
            }
            let row = state::find_run(&client, *id)
                .await
                .map_err(|e| db_error("reading the run", &e))?
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
                BackfillError::Database(format!("run {id} has a spec this build cannot read: {e}"))
            })?;
            (spec, Some(row))
        }
    };
    let prepared = prepare(&client, &spec).await?;
    if let Some(q) = &options.probe_sql {
        spec::validate_select(q, "--probe-sql").map_err(BackfillError::Input)?;
    }
    if let Some(q) = &options.throttle_query {
        spec::validate_select(q, "--throttle-query").map_err(BackfillError::Input)?;
    }
    state::ensure_schema(&mut client)
        .await
        .map_err(|e| BackfillError::Database(format!("creating the tidegate state schema: {e}")))?;
    let spec_json = identity_json(&prepared);
    let (run, resumed) =
        attach_or_create(&client, &prepared, &spec_json, resume_row, options.restart).await?;
    let run_id = run.id;

    let (journal_tx, journal_rx) = tokio::sync::mpsc::unbounded_channel();
    let ctx = Arc::new(Ctx {
        config: config.clone(),
        limiter: options
            .max_rows_per_second
            .map(|r| Mutex::new(RateLimit::new(r))),
        options,
        shape: prepared.shape.clone(),
        run_id,
        estimated_rows: run.estimated_rows,
        origin: Instant::now(),
        gate: Mutex::new(Gate::Wait("starting".into())),
        throttle_epoch: AtomicU64::new(0),
        finishing: AtomicBool::new(false),
        pids: Mutex::new(Vec::new()),
        rows_done: AtomicU64::new(run.rows_done.max(0) as u64),
        rows_scanned: AtomicU64::new(run.rows_scanned.max(0) as u64),
        batches: AtomicU64::new(run.batches.max(0) as u64),
        initial_done: run.rows_done.max(0) as u64,
        initial_scanned: run.rows_scanned.max(0) as u64,
        last_batch_size: AtomicU64::new(0),
        last_statement_us: AtomicU64::new(0),
        journal: journal_tx,
        sink,
    });
    ctx.emit(Event::Started {
        run_id,
        resumed,
        table: run.table.clone(),
        key: run.key_columns.clone(),
        estimated_rows: run.estimated_rows,
        rows_done: run.rows_done.max(0) as u64,
        workers: ctx.options.workers.max(1),
    });

    let probe_key = run.key_min.clone();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..ctx.options.workers.max(1) {
        let ctx = ctx.clone();
        workers.spawn(async move { worker_loop(ctx, worker).await });
    }
    let monitor = tokio::spawn(monitor_loop(
        ctx.clone(),
        client,
        journal_rx,
        probe_key,
        stop.clone(),
    ));

    let mut failure: Option<String> = None;
    let mut all_done = true;
    while let Some(joined) = workers.join_next().await {
        let end = joined.unwrap_or_else(|e| WorkerEnd::Failed(format!("a worker panicked: {e}")));
        match end {
            WorkerEnd::Done => {}
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
    ctx.set_gate(Gate::Stop("finishing".into()));
    let final_state = FinalState { end: end.clone() };
    let monitor_client = monitor.await.ok().flatten();
    let rows_done = ctx.rows_done.load(Ordering::Relaxed);
    let batches = ctx.batches.load(Ordering::Relaxed);
    finish(&ctx, monitor_client, &final_state).await;
    match end {
        Ok(end) => Ok(Outcome {
            run_id,
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
    client: Option<(Client, tokio::sync::mpsc::UnboundedReceiver<Event>)>,
    final_state: &FinalState,
) {
    let elapsed = ctx.now().as_secs_f64();
    let event = match &final_state.end {
        Ok(RunEnd::Completed) => Event::Completed {
            run_id: ctx.run_id,
            rows_done: ctx.rows_done.load(Ordering::Relaxed),
            batches: ctx.batches.load(Ordering::Relaxed),
            seconds: elapsed,
        },
        Ok(RunEnd::Interrupted { reason }) => Event::Paused {
            run_id: ctx.run_id,
            reason: reason.clone(),
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
    let (mut client, mut rx) = match client {
        Some((c, rx)) => (Some(c), Some(rx)),
        None => (None, None),
    };
    let mut retry = RetryState::default();
    loop {
        if client.is_none() {
            client = ctx.config.connect().await.ok();
        }
        if let Some(c) = &client {
            let mut pending = Vec::new();
            if let Some(rx) = rx.as_mut() {
                while let Ok(e) = rx.try_recv() {
                    pending.push(e);
                }
            }
            pending.push(event.clone());
            let result = write_final(c, ctx.run_id, &final_state.end, &pending).await;
            match result {
                Ok(()) => return,
                Err(e) if is_connection_lost(&e) => client = None,
                Err(e) => {
                    tracing::warn!(error = %describe(&e), "could not record the run's final status");
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
    client: &Client,
    run_id: i64,
    end: &Result<RunEnd, String>,
    events: &[Event],
) -> Result<(), tokio_postgres::Error> {
    for event in events {
        if let Some(name) = event.journal_name() {
            state::journal(client, run_id, name, &event.to_json()).await?;
        }
    }
    match end {
        Ok(RunEnd::Completed) => {
            client
                .execute(
                    state_sql::SET_STATUS,
                    &[&run_id, &"completed", &None::<String>],
                )
                .await?;
        }
        Ok(RunEnd::Interrupted { reason }) => {
            client
                .execute(
                    state_sql::SET_STATUS,
                    &[&run_id, &"paused", &Some(reason.as_str())],
                )
                .await?;
        }
        Ok(RunEnd::Aborted { .. }) => {
            client.execute(state_sql::SET_ABORTED, &[&run_id]).await?;
        }
        Err(message) => {
            client
                .execute(state_sql::SET_FAILED, &[&run_id, &message.as_str()])
                .await?;
        }
    }
    Ok(())
}

async fn attach_or_create(
    client: &Client,
    prepared: &Prepared,
    spec_json: &str,
    resume_row: Option<RunRow>,
    restart: bool,
) -> Result<(RunRow, bool), BackfillError> {
    if let Some(row) = resume_row {
        if restart {
            return Err(BackfillError::Input(
                "--resume and --restart contradict each other; pick one".into(),
            ));
        }
        client
            .execute(state_sql::ATTACH, &[&row.id])
            .await
            .map_err(|e| db_error("attaching to the run", &e))?;
        return Ok((row, true));
    }
    for _ in 0..3 {
        let existing = state::find_unfinished(client, spec_json)
            .await
            .map_err(|e| db_error("reading runs", &e))?;
        if let Some(row) = existing {
            if restart {
                client
                    .execute(state_sql::DISCARD_RUN, &[&row.id])
                    .await
                    .map_err(|e| db_error("discarding the old run", &e))?;
                state::journal(
                    client,
                    row.id,
                    "aborted",
                    &serde_json::json!({"reason": "discarded by --restart"}),
                )
                .await
                .map_err(|e| db_error("journaling", &e))?;
            } else {
                client
                    .execute(state_sql::ATTACH, &[&row.id])
                    .await
                    .map_err(|e| db_error("attaching to the run", &e))?;
                return Ok((row, true));
            }
        } else if !restart {
            // Running a finished spec again would apply a non-idempotent SET twice: refuse unless asked.
            let latest = client
                .query_opt(state_sql::LATEST_BY_SPEC, &[&spec_json])
                .await
                .map_err(|e| db_error("reading runs", &e))?;
            if let Some(latest) = latest {
                let (id, status): (i64, String) = (latest.get(0), latest.get(1));
                if !matches!(status.as_str(), "completed" | "aborted") {
                    // Another process created the run a moment ago: attach to it.
                    continue;
                }
                return Err(BackfillError::AlreadyFinished { run_id: id, status });
            }
        }
        let table = format!("{}.{}", prepared.shape.schema, prepared.shape.table);
        let inserted = client
            .query_one(
                state_sql::INSERT_RUN,
                &[
                    &"backfill",
                    &spec_json,
                    &table,
                    &prepared.shape.key_columns,
                    &prepared.shape.key_types,
                    &prepared.key_min,
                    &prepared.key_max,
                    &prepared.estimated_rows,
                ],
            )
            .await;
        match inserted {
            Ok(row) => {
                let id: i64 = row.get(0);
                let run = state::find_run(client, id)
                    .await
                    .map_err(|e| db_error("reading the new run", &e))?
                    .ok_or_else(|| BackfillError::Database("the new run vanished".into()))?;
                return Ok((run, false));
            }
            // Another process created the same run a moment ago: attach to it.
            Err(e) if sqlstate(&e) == Some("23505") => continue,
            Err(e) => return Err(db_error("creating the run", &e)),
        }
    }
    Err(BackfillError::Database(
        "could not create or find the run (concurrent starts kept racing)".into(),
    ))
}

// ---------------------------------------------------------------------------------------------------------------
// The monitor: control flags, health, window, status and journal.

async fn monitor_loop(
    ctx: Arc<Ctx>,
    client: Client,
    mut journal_rx: tokio::sync::mpsc::UnboundedReceiver<Event>,
    probe_key: Option<Vec<String>>,
    stop: StopHandle,
) -> Option<(Client, tokio::sync::mpsc::UnboundedReceiver<Event>)> {
    let d = Postgres;
    let mut client = Some(client);
    let mut attached = false;
    let mut policy = ThrottlePolicy::new(ctx.options.thresholds.clone());
    let mut reconnect = RetryState::default();
    let mut status = String::from("running");
    let mut last_gate = Gate::Wait("starting".into());
    let mut last_sample = Instant::now();
    let mut last_note = String::new();
    let probe = match &ctx.options.probe_sql {
        Some(sql) => Probe::Custom(sql.clone()),
        None => match probe_key {
            Some(key) => Probe::Key(d.default_probe(&ctx.shape), key),
            None => Probe::None,
        },
    };
    loop {
        // Workers finished (or are finishing): hand the connection back for the final write.
        if ctx.finishing.load(Ordering::Relaxed) {
            return client.map(|c| (c, journal_rx));
        }
        if client.is_none() {
            match ctx.config.connect().await {
                Ok(c) => {
                    reconnect.on_success();
                    client = Some(c);
                    attached = false;
                    ctx.emit(Event::Reconnected {
                        run_id: ctx.run_id,
                        worker: None,
                    });
                }
                Err(e) => {
                    ctx.set_gate(Gate::Wait("monitor connection lost; reconnecting".into()));
                    match reconnect.on_failure(&ctx.options.reconnect, ctx.now(), fastrand::f64()) {
                        RetryDecision::RetryAfter { delay, attempt } => {
                            if attempt == 1 || attempt % 10 == 0 {
                                (ctx.sink)(&Event::Reconnecting {
                                    run_id: ctx.run_id,
                                    worker: None,
                                    attempt,
                                    reason: e.to_string(),
                                });
                            }
                            tokio::time::sleep(delay).await;
                        }
                        RetryDecision::GiveUp { .. } => {
                            ctx.set_gate(Gate::Stop(format!(
                                "lost the database and could not reconnect: {e}"
                            )));
                            tokio::time::sleep(ctx.options.health_interval).await;
                        }
                    }
                    continue;
                }
            }
        }
        let Some(c) = client.as_ref() else { continue };
        let tick = async {
            if !attached {
                let settings = catalog::session_settings(
                    ctx.options.lock_timeout.as_millis(),
                    probe_timeout(&ctx.options.thresholds).as_millis(),
                );
                c.batch_execute(&settings).await?;
                c.execute(state_sql::ATTACH_LOCK, &[&ctx.run_id]).await?;
            }
            // Journal what the workers reported.
            while let Ok(event) = journal_rx.try_recv() {
                if let Some(name) = event.journal_name() {
                    state::journal(c, ctx.run_id, name, &event.to_json()).await?;
                }
            }
            if last_sample.elapsed() >= Duration::from_secs(5) {
                last_sample = Instant::now();
                let detail = serde_json::json!({
                    "rows_done": ctx.rows_done.load(Ordering::Relaxed),
                    "rows_scanned": ctx.rows_scanned.load(Ordering::Relaxed),
                    "batches": ctx.batches.load(Ordering::Relaxed),
                    "batch_size": ctx.last_batch_size.load(Ordering::Relaxed),
                    "statement_ms": ctx.last_statement_us.load(Ordering::Relaxed) as f64 / 1000.0,
                });
                state::journal(c, ctx.run_id, "batch_stats", &detail).await?;
                c.execute(state_sql::TOUCH, &[&ctx.run_id]).await?;
            }
            let control_row = c.query_opt(state_sql::READ_CONTROL, &[&ctx.run_id]).await?;
            let (control, db_status): (Option<String>, String) = match &control_row {
                Some(r) => (r.get(0), r.get(1)),
                None => (Some("abort".into()), "aborted".into()),
            };
            let pids = ctx.pids.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let obs = observe(
                c,
                &pids,
                &probe,
                ctx.options.throttle_query.as_deref(),
                ctx.now(),
            )
            .await?;
            Ok::<_, tokio_postgres::Error>((control, db_status, obs))
        };
        let (control, db_status, obs) = match tick.await {
            Ok(v) => {
                attached = true;
                v
            }
            Err(e) if is_connection_lost(&e) => {
                client = None;
                ctx.set_gate(Gate::Wait("monitor connection lost; reconnecting".into()));
                ctx.emit(Event::Reconnecting {
                    run_id: ctx.run_id,
                    worker: None,
                    attempt: 0,
                    reason: describe(&e),
                });
                continue;
            }
            Err(e) => {
                // A state query failed for another reason: fail closed and say so.
                ctx.set_gate(Gate::Wait(format!(
                    "monitor query failed: {}",
                    describe(&e)
                )));
                tokio::time::sleep(ctx.options.health_interval).await;
                continue;
            }
        };
        let decision = policy.decide(&obs);
        for note in &decision.notes {
            if *note != last_note {
                last_note = note.clone();
                ctx.emit(Event::Note {
                    run_id: ctx.run_id,
                    message: note.clone(),
                });
            }
        }
        if decision.changed && decision.level > Level::Healthy {
            ctx.throttle_epoch.fetch_add(1, Ordering::Relaxed);
        }
        let gate = if let Some(reason) = stop.requested() {
            Gate::Stop(reason)
        } else if control.as_deref() == Some("abort") || db_status == "aborted" {
            Gate::Abort("aborted by tidegate abort".into())
        } else if control.as_deref() == Some("pause") {
            Gate::Paused("paused by tidegate pause".into())
        } else if decision.level == Level::Critical && ctx.options.critical_abort {
            Gate::Abort(format!("critical: {} (--critical-abort)", decision.reason))
        } else if decision.level == Level::Critical {
            Gate::Paused(format!("critical: {}", decision.reason))
        } else if decision.level == Level::Throttle {
            Gate::Wait(decision.reason.clone())
        } else if let Some(window) = ctx
            .options
            .window
            .filter(|w| !w.contains(utc_second_of_day()))
        {
            let wait = window.until_open(utc_second_of_day());
            Gate::Wait(format!(
                "outside window {window}; opens in {}m",
                wait.as_secs().div_ceil(60)
            ))
        } else {
            Gate::Go
        };
        if gate != last_gate {
            let (new_status, reason) = match &gate {
                Gate::Go => ("running", None),
                Gate::Wait(r) => ("throttled", Some(r.clone())),
                Gate::Paused(r) => ("paused", Some(r.clone())),
                Gate::Stop(_) | Gate::Abort(_) => (status.as_str(), None),
            };
            let new_status = new_status.to_string();
            match &gate {
                Gate::Go if matches!(last_gate, Gate::Paused(_)) => {
                    ctx.emit(Event::Resumed { run_id: ctx.run_id })
                }
                Gate::Go if matches!(last_gate, Gate::Wait(ref r) if r != "starting") => {
                    ctx.emit(Event::ThrottleLifted { run_id: ctx.run_id })
                }
                Gate::Wait(r) if r.starts_with("outside window") => ctx.emit(Event::Waiting {
                    run_id: ctx.run_id,
                    reason: r.clone(),
                }),
                Gate::Wait(r) => {
                    // The recovering countdown changes every tick; journal only real changes.
                    let base = |g: &Gate| match g {
                        Gate::Wait(r) => r.split(" (recovering").next().unwrap_or("").to_string(),
                        _ => String::new(),
                    };
                    if base(&gate) != base(&last_gate) {
                        ctx.emit(Event::Throttled {
                            run_id: ctx.run_id,
                            level: Level::Throttle,
                            reason: r.clone(),
                        });
                    } else {
                        (ctx.sink)(&Event::Throttled {
                            run_id: ctx.run_id,
                            level: Level::Throttle,
                            reason: r.clone(),
                        });
                    }
                }
                Gate::Paused(r) if !matches!(last_gate, Gate::Paused(_)) => {
                    ctx.emit(Event::Paused {
                        run_id: ctx.run_id,
                        reason: r.clone(),
                    })
                }
                _ => {}
            }
            if new_status != status || matches!(gate, Gate::Wait(_) | Gate::Paused(_)) {
                let base_reason =
                    reason.map(|r| r.split(" (recovering").next().unwrap_or("").to_string());
                if let Err(e) = c
                    .execute(
                        state_sql::SET_STATUS,
                        &[&ctx.run_id, &new_status, &base_reason],
                    )
                    .await
                {
                    if is_connection_lost(&e) {
                        client = None;
                        continue;
                    }
                }
                status = new_status;
            }
            last_gate = gate.clone();
            // Never reopen the gate over a stop or an abort.
            if !matches!(ctx.gate(), Gate::Stop(_) | Gate::Abort(_))
                || matches!(gate, Gate::Stop(_) | Gate::Abort(_))
            {
                ctx.set_gate(gate);
            }
        } else if !matches!(ctx.gate(), Gate::Stop(_) | Gate::Abort(_)) {
            ctx.set_gate(gate);
        }
        tokio::time::sleep(ctx.options.health_interval).await;
    }
}

fn probe_timeout(t: &Thresholds) -> Duration {
    (t.max_probe_latency * t.critical_factor.max(1) + Duration::from_millis(100))
        .max(Duration::from_millis(500))
}

enum Probe {
    None,
    Key(String, Vec<String>),
    Custom(String),
}

/// Reads every health signal once. A connection loss is an error; any other failure is an unknown reading.
async fn observe(
    client: &Client,
    pids: &[i32],
    probe: &Probe,
    throttle_query: Option<&str>,
    at: Duration,
) -> Result<Observation, tokio_postgres::Error> {
    fn reading<T>(
        result: Result<T, tokio_postgres::Error>,
    ) -> Result<Reading<T>, tokio_postgres::Error> {
        match result {
            Ok(v) => Ok(Reading::Value(v)),
            Err(e) if is_connection_lost(&e) => Err(e),
            Err(e) => Ok(Reading::Unknown(describe(&e))),
        }
    }
    let pids = pids.to_vec();
    let blocked = reading(
        client
            .query_one(health::BLOCKED_BY_US, &[&pids])
            .await
            .map(|r| r.get::<_, i64>(0) as u32),
    )?;
    let lag = match client.query_one(health::REPLICA_LAG, &[]).await {
        Ok(r) => {
            let (replicas, hidden, lag): (i64, i64, f64) = (r.get(0), r.get(1), r.get(2));
            if replicas == 0 {
                Reading::Value(None)
            } else if hidden > 0 {
                Reading::Unknown(format!(
                    "{hidden} replica(s) hidden from this role; grant pg_monitor or pass a higher --max-replica-lag"
                ))
            } else {
                Reading::Value(Some(Duration::from_secs_f64(lag.max(0.0))))
            }
        }
        Err(e) if is_connection_lost(&e) => return Err(e),
        Err(e) => Reading::Unknown(describe(&e)),
    };
    let active = reading(
        client
            .query_one(health::ACTIVE_BACKENDS, &[&pids])
            .await
            .map(|r| r.get::<_, i64>(0) as u32),
    )?;
    let oldest = reading(
        client
            .query_opt(health::OLDEST_TRANSACTION, &[&pids])
            .await
            .map(|r| {
                r.map(|r| {
                    let age: f64 = r.get(1);
                    (r.get::<_, i32>(0), Duration::from_secs_f64(age.max(0.0)))
                })
            }),
    )?;
    let started = Instant::now();
    let probe_result = match probe {
        Probe::None => None,
        Probe::Key(sql, key) => {
            let params: Vec<&(dyn ToSql + Sync)> =
                key.iter().map(|k| k as &(dyn ToSql + Sync)).collect();
            Some(client.query(sql.as_str(), &params).await.map(|_| ()))
        }
        Probe::Custom(sql) => Some(client.simple_query(sql).await.map(|_| ())),
    };
    let probe_latency = match probe_result {
        None => Reading::NotWatched,
        Some(Ok(())) => Reading::Value(started.elapsed()),
        Some(Err(e)) if is_connection_lost(&e) => return Err(e),
        // A probe stopped by its timeout or by a lock timeout was at least that slow.
        Some(Err(e)) if matches!(sqlstate(&e), Some("57014") | Some("55P03")) => {
            Reading::Value(started.elapsed())
        }
        Some(Err(e)) => Reading::Unknown(describe(&e)),
    };
    let throttle = match throttle_query {
        None => Reading::NotWatched,
        Some(sql) => match client.simple_query(sql).await {
            Ok(messages) => {
                let first = messages.iter().find_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(row) => {
                        Some(row.get(0).map(str::to_string))
                    }
                    _ => None,
                });
                match first {
                    Some(Some(v)) => {
                        Reading::Value(matches!(v.as_str(), "t" | "true" | "1" | "on" | "yes"))
                    }
                    Some(None) => Reading::Value(false),
                    None => Reading::Unknown("the throttle query returned no row".into()),
                }
            }
            Err(e) if is_connection_lost(&e) => return Err(e),
            Err(e) => Reading::Unknown(describe(&e)),
        },
    };
    Ok(Observation {
        at,
        blocked_by_us: blocked,
        replica_lag: lag,
        active_backends: active,
        probe_latency,
        throttle_query: throttle,
        oldest_transaction: oldest,
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Workers: claim a chunk, walk it in batches.

enum WorkerEnd {
    Done,
    Stopped,
    Failed(String),
}

struct WorkerConn {
    client: Client,
    pid: i32,
    bound: [Statement; 2],
    update: [Statement; 2],
    checkpoint: Statement,
}

#[derive(Debug, Clone)]
struct Chunk {
    no: i32,
    hi: Vec<String>,
    cursor: Option<Vec<String>>,
}

enum Failure {
    LockConflict(&'static str),
    StatementTimeout,
    ConnectionLost(String),
    ClaimLost,
    Fatal(String),
}

fn classify(error: &tokio_postgres::Error) -> Failure {
    if is_connection_lost(error) {
        return Failure::ConnectionLost(describe(error));
    }
    match sqlstate(error) {
        Some("55P03") => Failure::LockConflict("lock_timeout"),
        Some("40P01") => Failure::LockConflict("deadlock"),
        Some("40001") => Failure::LockConflict("serialization_failure"),
        Some("57014") => Failure::StatementTimeout,
        _ => Failure::Fatal(describe(error)),
    }
}

async fn worker_loop(ctx: Arc<Ctx>, worker: u32) -> WorkerEnd {
    let mut conn: Option<WorkerConn> = None;
    let mut chunk: Option<Chunk> = None;
    let mut controller = BatchController::new(ctx.options.controller.clone());
    if let Some(limiter) = &ctx.limiter {
        let cap = limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .batch_cap();
        if controller.size() > cap {
            controller = BatchController::new(ControllerConfig {
                initial: cap,
                max: cap,
                ..ctx.options.controller.clone()
            });
        }
    }
    let mut lock_retry = RetryState::default();
    let mut reconnect = RetryState::default();
    let mut epoch_seen = ctx.throttle_epoch.load(Ordering::Relaxed);
    loop {
        match ctx.gate() {
            Gate::Go => {}
            Gate::Wait(_) | Gate::Paused(_) => {
                tokio::time::sleep(Duration::from_millis(25)).await;
                continue;
            }
            Gate::Stop(_) | Gate::Abort(_) => return WorkerEnd::Stopped,
        }
        let epoch = ctx.throttle_epoch.load(Ordering::Relaxed);
        if epoch != epoch_seen {
            epoch_seen = epoch;
            controller.on_throttle();
        }
        if let Some(limiter) = &ctx.limiter {
            let wait = limiter
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .wait_at(ctx.now());
            if !wait.is_zero() {
                tokio::time::sleep(wait.min(Duration::from_millis(50))).await;
                continue;
            }
        }
        if conn.is_none() {
            match connect_worker_checked(&ctx).await {
                Ok(c) => {
                    if reconnect.attempts() > 0 {
                        ctx.emit(Event::Reconnected {
                            run_id: ctx.run_id,
                            worker: Some(worker),
                        });
                    }
                    reconnect.on_success();
                    ctx.pids.lock().unwrap_or_else(|e| e.into_inner()).push(c.pid);
                    conn = Some(c);
                }
                Err(message) => match reconnect.on_failure(&ctx.options.reconnect, ctx.now(), fastrand::f64()) {
                    RetryDecision::RetryAfter { delay, attempt } => {
                        if attempt == 1 || attempt % 10 == 0 {
                            ctx.emit(Event::Reconnecting {
                                run_id: ctx.run_id,
                                worker: Some(worker),
                                attempt,
                                reason: message,
                            });
                        }
                        sleep_unless_stopped(&ctx, delay).await;
                        continue;
                    }
                    RetryDecision::GiveUp { attempts } => {
                        return WorkerEnd::Failed(format!(
                            "lost the database and could not reconnect after {attempts} attempts: {message}"
                        ))
                    }
                },
            }
        }
        let Some(c) = conn.as_ref() else { continue };
        if chunk.is_none() {
            match claim_chunk(&ctx, c).await {
                Ok(Claim::Chunk(found)) => chunk = Some(found),
                Ok(Claim::Finished) => return WorkerEnd::Done,
                Ok(Claim::OthersBusy) => {
                    sleep_unless_stopped(&ctx, Duration::from_millis(200)).await;
                    continue;
                }
                Err(e) => match classify(&e) {
                    Failure::ConnectionLost(_) => {
                        drop_conn(&ctx, &mut conn, &mut chunk);
                        continue;
                    }
                    Failure::LockConflict(_) | Failure::StatementTimeout | Failure::ClaimLost => {
                        sleep_unless_stopped(&ctx, Duration::from_millis(100)).await;
                        continue;
                    }
                    Failure::Fatal(message) => {
                        return WorkerEnd::Failed(format!("claiming work: {message}"))
                    }
                },
            }
        }
        let Some(current) = chunk.clone() else {
            continue;
        };
        let size = controller.size();
        let started_at = ctx.now();
        match run_batch(&ctx, c, &current, size).await {
            Ok(batch) => {
                lock_retry.on_success();
                controller.observe(
                    batch.scanned.max(if batch.done { 0 } else { size }),
                    batch.statement_time,
                );
                if let Some(limiter) = &ctx.limiter {
                    limiter
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .record(started_at, batch.changed.max(1));
                }
                let rows_done =
                    ctx.rows_done.fetch_add(batch.changed, Ordering::Relaxed) + batch.changed;
                let rows_scanned =
                    ctx.rows_scanned.fetch_add(batch.scanned, Ordering::Relaxed) + batch.scanned;
                let batches = ctx.batches.fetch_add(1, Ordering::Relaxed) + 1;
                ctx.last_batch_size.store(size, Ordering::Relaxed);
                ctx.last_statement_us
                    .store(batch.statement_time.as_micros() as u64, Ordering::Relaxed);
                let elapsed = ctx.now().as_secs_f64().max(0.001);
                let scan_rate = rows_scanned.saturating_sub(ctx.initial_scanned) as f64 / elapsed;
                let eta = ctx.estimated_rows.and_then(|est| {
                    (scan_rate > 0.0)
                        .then(|| ((est as f64 - rows_scanned as f64).max(0.0)) / scan_rate)
                });
                (ctx.sink)(&Event::Batch {
                    run_id: ctx.run_id,
                    worker,
                    rows: batch.changed,
                    scanned: batch.scanned,
                    batch_size: size,
                    next_batch_size: controller.size(),
                    statement_ms: batch.statement_time.as_secs_f64() * 1000.0,
                    rows_done,
                    rows_scanned,
                    batches,
                    rows_per_second: rows_done.saturating_sub(ctx.initial_done) as f64 / elapsed,
                    estimated_rows: ctx.estimated_rows,
                    eta_seconds: eta,
                });
                if batch.done {
                    let _ = c
                        .client
                        .execute(state_sql::RELEASE_CLAIM, &[&ctx.run_id, &current.no])
                        .await;
                    chunk = None;
                } else {
                    chunk = Some(Chunk {
                        cursor: Some(batch.new_cursor),
                        ..current
                    });
                }
            }
            Err(failure) => match failure {
                Failure::LockConflict(_) | Failure::StatementTimeout => {
                    let cause = match failure {
                        Failure::LockConflict(cause) => {
                            controller.on_lock_conflict();
                            cause
                        }
                        _ => {
                            controller.on_statement_timeout();
                            "statement_timeout"
                        }
                    };
                    match lock_retry.on_failure(&ctx.options.lock_retry, ctx.now(), fastrand::f64())
                    {
                        RetryDecision::RetryAfter { delay, attempt } => {
                            ctx.emit(Event::Retry {
                                run_id: ctx.run_id,
                                worker,
                                cause: cause.to_string(),
                                attempt,
                                backoff_ms: delay.as_millis() as u64,
                                next_batch_size: controller.size(),
                            });
                            sleep_unless_stopped(&ctx, delay).await;
                        }
                        RetryDecision::GiveUp { attempts } => {
                            let blockers = lock_holders(&ctx, c).await;
                            return WorkerEnd::Failed(format!(
                                "batches on {}.{} kept failing with {cause} ({attempts} attempts in a row); {blockers}. \
                                 End or wait for that session, then run the same command to resume",
                                ctx.shape.schema, ctx.shape.table
                            ));
                        }
                    }
                }
                Failure::ConnectionLost(message) => {
                    ctx.emit(Event::Reconnecting {
                        run_id: ctx.run_id,
                        worker: Some(worker),
                        attempt: 0,
                        reason: message,
                    });
                    drop_conn(&ctx, &mut conn, &mut chunk);
                }
                Failure::ClaimLost => {
                    // Someone else moved this chunk's cursor: let go of it and claim again from the database.
                    let _ = c
                        .client
                        .execute(state_sql::RELEASE_CLAIM, &[&ctx.run_id, &current.no])
                        .await;
                    chunk = None;
                }
                Failure::Fatal(message) => {
                    let range = match &current.cursor {
                        Some(lo) => format!(
                            "({}) > ({}) up to {size} rows",
                            ctx.shape.key_columns.join(", "),
                            lo.join(", ")
                        ),
                        None => format!("the first {size} rows of chunk {}", current.no),
                    };
                    return WorkerEnd::Failed(format!(
                        "the batch over {range} failed: {message}. Nothing of that batch was applied; fix the cause \
                         and run the same command to resume"
                    ));
                }
            },
        }
    }
}

async fn connect_worker_checked(ctx: &Ctx) -> Result<WorkerConn, String> {
    let d = Postgres;
    let client = ctx.config.connect().await.map_err(|e| e.to_string())?;
    let setup = async {
        client
            .batch_execute(&catalog::session_settings(
                ctx.options.lock_timeout.as_millis(),
                ctx.options.effective_statement_timeout().as_millis(),
            ))
            .await?;
        let pid: i32 = client.query_one(catalog::BACKEND_PID, &[]).await?.get(0);
        let bound = [
            client
                .prepare(&d.batch_upper_bound(&ctx.shape, false))
                .await?,
            client
                .prepare(&d.batch_upper_bound(&ctx.shape, true))
                .await?,
        ];
        let update = [
            client.prepare(&d.batch_update(&ctx.shape, false)).await?,
            client.prepare(&d.batch_update(&ctx.shape, true)).await?,
        ];
        let checkpoint = client.prepare(state_sql::CHECKPOINT).await?;
        Ok::<_, tokio_postgres::Error>((pid, bound, update, checkpoint))
    };
    match setup.await {
        Ok((pid, bound, update, checkpoint)) => Ok(WorkerConn {
            client,
            pid,
            bound,
            update,
            checkpoint,
        }),
        Err(e) => Err(describe(&e)),
    }
}

/// Names the sessions holding locks on the table (the likely blockers), for the give-up message.
async fn lock_holders(ctx: &Ctx, conn: &WorkerConn) -> String {
    let d = Postgres;
    let table = format!(
        "{}.{}",
        d.quote_ident(&ctx.shape.schema),
        d.quote_ident(&ctx.shape.table)
    );
    let pids = ctx.pids.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match conn
        .client
        .query(health::LOCK_HOLDERS, &[&table, &pids])
        .await
    {
        Ok(rows) if !rows.is_empty() => {
            let named: Vec<String> =
                rows.iter()
                    .map(|r| {
                        let (pid, app, state, age, query): (i32, String, String, f64, String) =
                            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
                        format!(
                        "pid {pid} ({}{state}, transaction open {age:.0}s, last query: {query})",
                        if app.is_empty() { String::new() } else { format!("{app}, ") }
                    )
                    })
                    .collect();
            format!("sessions holding locks on the table: {}", named.join("; "))
        }
        Ok(_) => "no session holds a lock on the table any more".into(),
        Err(e) => format!("could not list the lock holders ({})", describe(&e)),
    }
}

fn drop_conn(ctx: &Ctx, conn: &mut Option<WorkerConn>, chunk: &mut Option<Chunk>) {
    if let Some(c) = conn.take() {
        ctx.pids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| *p != c.pid);
    }
    // The claim died with the connection; the cursor is re-read from the database on the next claim.
    *chunk = None;
}

async fn sleep_unless_stopped(ctx: &Ctx, total: Duration) {
    let until = Instant::now() + total;
    while Instant::now() < until {
        if matches!(ctx.gate(), Gate::Stop(_) | Gate::Abort(_)) {
            return;
        }
        tokio::time::sleep((until - Instant::now()).min(Duration::from_millis(50))).await;
    }
}

enum Claim {
    Chunk(Chunk),
    /// Every chunk is done and the frontier is exhausted.
    Finished,
    /// Work remains but other workers hold it.
    OthersBusy,
}

async fn claim_chunk(ctx: &Ctx, conn: &WorkerConn) -> Result<Claim, tokio_postgres::Error> {
    let d = Postgres;
    let client = &conn.client;
    // 1. An unfinished chunk nobody holds (left by a dead or stopped worker).
    client.batch_execute(state_sql::BEGIN).await?;
    let claimed = async {
        let candidates = client
            .query(state_sql::CLAIM_CANDIDATES, &[&ctx.run_id])
            .await?;
        for row in candidates {
            let no: i32 = row.get(0);
            let ok: bool = client
                .query_one(state_sql::TRY_CLAIM, &[&ctx.run_id, &no])
                .await?
                .get(0);
            if ok {
                return Ok::<_, tokio_postgres::Error>(Some(Chunk {
                    no,
                    hi: row.get(2),
                    cursor: row.get(3),
                }));
            }
        }
        Ok(None)
    }
    .await;
    match claimed {
        Ok(found) => {
            client.batch_execute(state_sql::COMMIT).await?;
            if let Some(chunk) = found {
                return Ok(Claim::Chunk(chunk));
            }
        }
        Err(e) => {
            let _ = client.batch_execute(state_sql::ROLLBACK).await;
            return Err(e);
        }
    }
    // 2. Extend the frontier by one chunk.
    client.batch_execute(state_sql::BEGIN).await?;
    let extended = async {
        let row = client
            .query_one(state_sql::LOCK_FRONTIER, &[&ctx.run_id])
            .await?;
        let frontier: Option<Vec<String>> = row.get(0);
        let key_max: Option<Vec<String>> = row.get(1);
        let exhausted: bool = row.get(2);
        let next_no: i32 = row.get(3);
        let Some(key_max) = key_max.filter(|_| !exhausted) else {
            return Ok::<_, tokio_postgres::Error>(None);
        };
        let mut params: Vec<String> = Vec::new();
        if let Some(f) = &frontier {
            params.extend(f.iter().cloned());
        }
        params.extend(key_max.iter().cloned());
        params.push((ctx.options.chunk_rows.max(1) - 1).to_string());
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let bound = client
            .query_opt(&d.batch_upper_bound(&ctx.shape, frontier.is_some()), &refs)
            .await?
            .map(|r| {
                (0..r.len())
                    .map(|i| r.get::<_, String>(i))
                    .collect::<Vec<String>>()
            });
        let (hi, exhausted) = match bound {
            Some(hi) if hi != key_max => (hi, false),
            _ => (key_max, true),
        };
        client
            .execute(
                state_sql::INSERT_CHUNK,
                &[&ctx.run_id, &next_no, &frontier, &hi],
            )
            .await?;
        let _: bool = client
            .query_one(state_sql::TRY_CLAIM, &[&ctx.run_id, &next_no])
            .await?
            .get(0);
        client
            .execute(
                state_sql::ADVANCE_FRONTIER,
                &[&ctx.run_id, &Some(hi.clone()), &exhausted],
            )
            .await?;
        Ok(Some(Chunk {
            no: next_no,
            hi,
            cursor: frontier,
        }))
    }
    .await;
    match extended {
        Ok(Some(chunk)) => {
            client.batch_execute(state_sql::COMMIT).await?;
            Ok(Claim::Chunk(chunk))
        }
        Ok(None) => {
            client.batch_execute(state_sql::COMMIT).await?;
            let row = client
                .query_one(state_sql::REMAINING, &[&ctx.run_id])
                .await?;
            let (exhausted, remaining): (bool, i64) = (row.get(0), row.get(1));
            if exhausted && remaining == 0 {
                Ok(Claim::Finished)
            } else {
                Ok(Claim::OthersBusy)
            }
        }
        Err(e) => {
            let _ = client.batch_execute(state_sql::ROLLBACK).await;
            Err(e)
        }
    }
}

struct BatchDone {
    changed: u64,
    scanned: u64,
    statement_time: Duration,
    new_cursor: Vec<String>,
    done: bool,
}

/// One batch: bound, UPDATE and checkpoint in one short transaction.
async fn run_batch(
    ctx: &Ctx,
    conn: &WorkerConn,
    chunk: &Chunk,
    size: u64,
) -> Result<BatchDone, Failure> {
    let d = Postgres;
    let client = &conn.client;
    let has_lower = chunk.cursor.is_some();
    let which = usize::from(has_lower);
    let fail = |e: tokio_postgres::Error| classify(&e);
    client
        .batch_execute(&format!(
            "{}; {}",
            state_sql::BEGIN,
            d.batch_settings(
                ctx.options.lock_timeout,
                ctx.options.effective_statement_timeout()
            )
        ))
        .await
        .map_err(fail)?;
    let body = async {
        let mut params: Vec<String> = Vec::new();
        if let Some(lo) = &chunk.cursor {
            params.extend(lo.iter().cloned());
        }
        params.extend(chunk.hi.iter().cloned());
        params.push((size.max(1) - 1).to_string());
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let bound = client
            .query_opt(&conn.bound[which], &refs)
            .await
            .map_err(fail)?
            .map(|r| {
                (0..r.len())
                    .map(|i| r.get::<_, String>(i))
                    .collect::<Vec<String>>()
            });
        let (upper, done, scanned) = match bound {
            Some(b) if b != chunk.hi => (b, false, size),
            Some(b) => (b, true, size),
            None => (chunk.hi.clone(), true, 0),
        };
        let mut update_params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if let Some(lo) = &chunk.cursor {
            update_params.extend(lo.iter().map(|p| p as &(dyn ToSql + Sync)));
        }
        update_params.extend(upper.iter().map(|p| p as &(dyn ToSql + Sync)));
        let started = Instant::now();
        let changed = client
            .execute(&conn.update[which], &update_params)
            .await
            .map_err(fail)?;
        let statement_time = started.elapsed();
        let scanned = if scanned == 0 { changed } else { scanned };
        let moved = client
            .execute(
                &conn.checkpoint,
                &[
                    &ctx.run_id,
                    &chunk.no,
                    &Some(upper.clone()),
                    &(changed as i64),
                    &(scanned as i64),
                    &done,
                    &chunk.cursor,
                ],
            )
            .await
            .map_err(fail)?;
        if moved != 1 {
            return Err(Failure::ClaimLost);
        }
        Ok(BatchDone {
            changed,
            scanned,
            statement_time,
            new_cursor: upper,
            done,
        })
    }
    .await;
    match body {
        Ok(batch) => {
            client
                .batch_execute(state_sql::COMMIT)
                .await
                .map_err(fail)?;
            Ok(batch)
        }
        Err(failure) => {
            let _ = client.batch_execute(state_sql::ROLLBACK).await;
            Err(failure)
        }
    }
}
