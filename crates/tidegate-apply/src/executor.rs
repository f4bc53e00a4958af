//! Runs an [`ApplyPlan`](crate::ApplyPlan) against a database: the I/O edge of `apply`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tidegate_db::blockers::LockHolder;
use tidegate_db::connect::{ConnectionConfig, DbError};
use tidegate_db::driver::{Driver, Session, SessionExt};
use tidegate_lint::Config;
use tidegate_sql::discovery::Layout;

use crate::phases::{Disposition, Phase, PhaseClass, PhaseKind, PlanOptions};
use crate::schema_phase::{
    run_schema_phase, sleep_unless_stopped, SchemaEvent, SchemaPhaseOptions, SchemaStatement,
};
use crate::{
    baseline, load, plan, sql, tables_to_read, AppliedRecord, ApplyError, ApplyPlan,
    MigrationStatus, PlannedMigration, TargetSnapshot,
};
use tidegate_backfill::engine::{self, BackfillOptions, EventSink, RunEnd, RunTarget, StopHandle};
use tidegate_backfill::pacing::{utc_second_of_day, Window};
use tidegate_backfill::retry::RetryPolicy;
use tidegate_backfill::state;
use tidegate_backfill::throttle::Level;

/// Everything that shapes an apply besides the directory.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// How long any schema statement may wait for its lock. Never unbounded.
    pub lock_timeout: Duration,
    pub statement_timeout: Duration,
    /// How long a CONCURRENTLY statement may run, its waits for older transactions included; its request for
    /// the table's lock is still bounded by `lock_timeout`.
    pub concurrent_wait: Duration,
    /// Retries of a schema phase after a lock timeout.
    pub retries: u32,
    /// How long to wait for another apply's lock before failing.
    pub lock_wait: Duration,
    /// Start migrations only inside this daily UTC window.
    pub window: Option<Window>,
    pub allow_unbatched: bool,
    /// MySQL/MariaDB: run an ALTER that can only COPY a table of at least `small_table_rows` rows
    /// (`--allow-copy`); refused otherwise.
    pub allow_copy: bool,
    /// Run dangerous statements in their safe form (the default); `false` refuses them (`--no-rewrite`).
    pub rewrite: bool,
    pub dry_run: bool,
    pub layout: Option<Layout>,
    pub lint: Config,
    pub backfill: BackfillOptions,
    /// Ctrl-C: a running backfill phase stops after its batch and stays resumable.
    pub stop: StopHandle,
    /// How long to wait for the backfill's health signals (`backfill.thresholds`, `backfill.throttle_query`,
    /// `backfill.probe_sql`) to be healthy before a migration or a phase starts; then apply refuses.
    pub health_wait: Duration,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(600),
            concurrent_wait: Duration::from_secs(3600),
            retries: 10,
            lock_wait: Duration::from_secs(30),
            window: None,
            allow_unbatched: false,
            allow_copy: false,
            rewrite: true,
            dry_run: false,
            layout: None,
            lint: Config::default(),
            backfill: BackfillOptions::default(),
            stop: StopHandle::default(),
            health_wait: Duration::from_secs(300),
        }
    }
}

/// What apply reports as it goes.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ApplyEvent {
    Planned {
        applied: usize,
        pending: usize,
    },
    /// A backfill run of an unfinished migration is still attached to an engine (an apply that lost its lock):
    /// nothing starts until it stops.
    WaitingForBackfill {
        run_id: i64,
        version: String,
        pids: Vec<i32>,
        waited_s: u64,
    },
    WaitingForWindow {
        opens_in_s: u64,
    },
    WaitingForHealth {
        version: String,
        before_phase: usize,
        level: Level,
        reason: String,
        waited_s: u64,
    },
    MigrationStarted {
        version: String,
        name: String,
        phases: usize,
    },
    PhaseStarted {
        version: String,
        phase: usize,
        /// For people: `schema (no transaction)`.
        kind: &'static str,
        /// The same as a type.
        class: PhaseClass,
        statements: usize,
    },
    PhaseSkipped {
        version: String,
        phase: usize,
        class: PhaseClass,
        reason: String,
    },
    LockTimedOut {
        version: String,
        phase: usize,
        attempt: u32,
        statement: String,
        blockers: Vec<LockHolder>,
        retry_in_ms: Option<u64>,
    },
    /// MySQL/MariaDB: open transactions that may hold the metadata lock a DDL needs, named before an attempt
    /// and after one gave up on its `lock_wait_timeout` (error 1205).
    TransactionsOpen {
        version: String,
        phase: usize,
        attempt: u32,
        table: Option<String>,
        transactions: Vec<crate::mysql::OpenTransaction>,
        after_lock_timeout: bool,
    },
    /// MySQL/MariaDB: the DDL as it runs, with the `ALGORITHM=`/`LOCK=` apply added from the facts table.
    DdlRunning {
        version: String,
        phase: usize,
        statement: String,
        added_clause: Option<String>,
    },
    DroppedInvalidIndex {
        version: String,
        phase: usize,
        index: String,
    },
    /// Resuming: the statement had committed before an earlier apply recorded its phase; recorded, not run again.
    StatementAlreadyDone {
        version: String,
        phase: usize,
        statement: String,
        reason: String,
    },
    /// What the backfill engine reported while it ran a backfill phase.
    Backfill {
        version: String,
        phase: usize,
        backfill: tidegate_backfill::events::Event,
    },
    PhaseDone {
        version: String,
        phase: usize,
        elapsed_ms: u64,
    },
    MigrationApplied {
        version: String,
        name: String,
        duration_ms: u64,
    },
    MigrationFailed {
        version: String,
        phase: usize,
        error: String,
    },
}

pub type ApplySink = Arc<dyn Fn(&ApplyEvent) + Send + Sync>;

/// How an apply ended well.
#[derive(Debug, Clone, Serialize)]
pub struct ApplySummary {
    pub plan: ApplyPlan,
    /// Versions applied by this run (empty for a dry run, or when nothing was pending).
    pub applied_now: Vec<String>,
    pub dry_run: bool,
}

fn database(context: &str) -> impl Fn(DbError) -> ApplyError + '_ {
    move |error| ApplyError::Database(error.context(context))
}

/// Plans, then (unless a dry run) applies every pending migration of `dir`.
pub async fn apply(
    config: &ConnectionConfig,
    dir: &Path,
    options: ApplyOptions,
    sink: ApplySink,
) -> Result<ApplySummary, ApplyError> {
    let (layout, sources) = load(dir, options.layout)?;
    let session = config.open().await.map_err(ApplyError::Database)?;
    let client = session.as_ref();

    if options.dry_run {
        // Changes nothing: reads the history if there is one, plans, returns.
        let history = read_history(client).await?;
        baseline::refuse_unadopted(client, &history, dir).await?;
        let target = read_target(client, &sources, &history, &options).await?;
        let plan = plan(
            dir,
            layout,
            &sources,
            &history,
            &options.lint,
            &plan_options(&options),
            &target,
        )?;
        sink(&ApplyEvent::Planned {
            applied: plan.applied.len(),
            pending: plan.pending.len(),
        });
        return Ok(ApplySummary {
            plan,
            applied_now: Vec::new(),
            dry_run: true,
        });
    }

    let read_only: bool = client
        .query_one(sql::READ_ONLY, &[])
        .await
        .map_err(database("checking the connection"))?
        .get("read_only")?;
    if read_only {
        return Err(ApplyError::ReadOnly);
    }
    // Before the state schema exists: a refused apply changes nothing.
    let history = read_history(client).await?;
    baseline::refuse_unadopted(client, &history, dir).await?;
    state::ensure_schema(client)
        .await
        .map_err(|error| crate::state_error("preparing the tidegate schema", error))?;
    let lock_started = Instant::now();
    take_apply_lock(client, options.lock_wait).await?;
    let lock_pid = backend_pids(&[client]).await?[0];
    let guard = ApplyLockGuard::start(config.clone(), lock_pid, options.stop.clone());
    let result = match wait_for_orphaned_backfills(client, &options, lock_started, &sink).await {
        Ok(()) => {
            apply_locked(
                config, client, dir, layout, &sources, &options, &sink, &guard,
            )
            .await
        }
        Err(error) => Err(error),
    };
    guard.finish();
    // The lock is a session lock: released here, or by the server when the connection ends.
    let _ = client.query_one(sql::RELEASE_APPLY_LOCK, &[]).await;
    result
}

/// Watches, from a connection of its own, that the apply lock's session still holds the lock. The lock dies with
/// its session (pg_terminate_backend, a network failure), and then a second apply could start while this one's
/// backfill still runs on the engine's own connections; so once the lock is gone, or cannot be confirmed on
/// [`ApplyLockGuard::UNCONFIRMED_CHECKS`] checks in a row, the guard requests a stop: no further phase starts and
/// a running backfill stops after its batch, resumable.
struct ApplyLockGuard {
    lost: Arc<std::sync::Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ApplyLockGuard {
    const CHECK_EVERY: Duration = Duration::from_millis(250);
    const UNCONFIRMED_CHECKS: u32 = 3;

    fn start(config: ConnectionConfig, lock_pid: i32, stop: StopHandle) -> Self {
        let lost = Arc::new(std::sync::Mutex::new(None));
        let task = {
            let lost = lost.clone();
            tokio::spawn(async move {
                let config = config.with_application_name("tidegate apply lock guard");
                let mut watcher: Option<Box<dyn Session>> = None;
                let mut unconfirmed = 0;
                loop {
                    tokio::time::sleep(Self::CHECK_EVERY).await;
                    if watcher.as_ref().is_none_or(|session| session.is_closed()) {
                        watcher = config.open().await.ok();
                    }
                    let held = match &watcher {
                        Some(client) => client
                            .query_one(sql::APPLY_LOCK_HELD_BY, &[lock_pid.into()])
                            .await
                            .and_then(|row| Ok(row.get::<bool>("held")?))
                            .map_err(|error| error.message),
                        None => Err("cannot connect".to_string()),
                    };
                    let reason = match held {
                        Ok(true) => {
                            unconfirmed = 0;
                            continue;
                        }
                        Ok(false) => format!(
                            "the session holding the apply lock (pid {lock_pid}) ended, so the lock is gone"
                        ),
                        Err(error) => {
                            unconfirmed += 1;
                            if unconfirmed < Self::UNCONFIRMED_CHECKS {
                                continue;
                            }
                            format!(
                                "could not confirm that this apply still holds its lock (session pid {lock_pid}): \
                                 {error}"
                            )
                        }
                    };
                    *lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
                    stop.request(&reason);
                    return;
                }
            })
        };
        Self { lost, task }
    }

    /// Why the lock was lost, once it was.
    fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn finish(self) {
        self.task.abort();
    }
}

/// A backfill run of an unfinished migration that an engine still works on belongs to an apply that lost its
/// lock (or to a `tidegate resume`): running migrations now would interleave with it. Waits for it to stop, up to
/// what is left of `--lock-wait`, then refuses.
async fn wait_for_orphaned_backfills(
    client: &dyn Session,
    options: &ApplyOptions,
    started: Instant,
    sink: &ApplySink,
) -> Result<(), ApplyError> {
    let exists: bool = client
        .query_one(sql::HISTORY_EXISTS, &[])
        .await
        .map_err(database("reading the history"))?
        .get("present")?;
    if !exists {
        return Ok(());
    }
    loop {
        let live = client
            .query_opt(sql::LIVE_BACKFILLS_OF_UNAPPLIED_MIGRATIONS, &[])
            .await
            .map_err(database("looking for backfills still running"))?;
        let Some(row) = live else {
            return Ok(());
        };
        let (run_id, version): (i64, String) = (row.get("run_id")?, row.get("version")?);
        let pids = row
            .get::<Vec<String>>("pids")?
            .iter()
            .filter_map(|pid| pid.parse::<i32>().ok())
            .collect::<Vec<i32>>();
        let waited = started.elapsed();
        if waited >= options.lock_wait || options.stop.requested().is_some() {
            return Err(ApplyError::BackfillStillRunning {
                run_id,
                version,
                pids,
                waited_s: waited.as_secs_f64(),
            });
        }
        sink(&ApplyEvent::WaitingForBackfill {
            run_id,
            version,
            pids,
            waited_s: waited.as_secs(),
        });
        sleep_unless_stopped(Duration::from_millis(250), Some(&options.stop)).await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn apply_locked(
    config: &ConnectionConfig,
    client: &dyn Session,
    dir: &Path,
    layout: Layout,
    sources: &[crate::MigrationSource],
    options: &ApplyOptions,
    sink: &ApplySink,
    guard: &ApplyLockGuard,
) -> Result<ApplySummary, ApplyError> {
    // Read the history under the lock: another apply may have just finished.
    let history = read_history(client).await?;
    let target = read_target(client, sources, &history, options).await?;
    let plan = plan(
        dir,
        layout,
        sources,
        &history,
        &options.lint,
        &plan_options(options),
        &target,
    )?;
    sink(&ApplyEvent::Planned {
        applied: plan.applied.len(),
        pending: plan.pending.len(),
    });
    let monitor: Arc<dyn Session> = Arc::from(config.open().await.map_err(ApplyError::Database)?);
    let own_pids = backend_pids(&[client, monitor.as_ref()]).await?;
    let mut applied_now = Vec::new();
    for migration in &plan.pending {
        // Ctrl-C: checked before each wait (they end early on a stop) and after them.
        let stopped = |applied_now: &Vec<String>| {
            options.stop.requested().map(|reason| ApplyError::Stopped {
                reason,
                before: migration.version.clone(),
                applied_now: applied_now.clone(),
            })
        };
        if let Some(detail) = guard.lost() {
            return Err(ApplyError::LockLost {
                version: migration.version.clone(),
                phase: migration.phases_done + 1,
                detail,
            });
        }
        if let Some(error) = stopped(&applied_now) {
            return Err(error);
        }
        wait_for_window(options.window.as_ref(), &options.stop, sink).await;
        if let Some(error) = stopped(&applied_now) {
            return Err(error);
        }
        let first_phase = migration.phases_done + 1;
        wait_until_healthy(
            client,
            &own_pids,
            &migration.version,
            first_phase,
            options,
            sink,
            &mut tidegate_backfill::engine::ReplicaWatch::none(),
        )
        .await
        .map_err(ApplyError::Unhealthy)?;
        if let Some(error) = stopped(&applied_now) {
            return Err(error);
        }
        // A table an earlier migration of this run created was planned as empty; seed rows may have made it large
        // since. Such a migration is planned again with the sizes of now.
        let replanned;
        let migration = if !applied_now.is_empty()
            && !migration.resumes_recorded_phases
            && runs_small_table_hazards(migration)
        {
            replanned = replan(
                client,
                dir,
                layout,
                sources,
                options,
                migration,
                &applied_now,
            )
            .await?;
            &replanned
        } else {
            migration
        };
        run_migration(
            config,
            client,
            monitor.clone(),
            &own_pids,
            migration,
            options,
            sink,
            guard,
        )
        .await?;
        applied_now.push(migration.version.clone());
    }
    Ok(ApplySummary {
        plan,
        applied_now,
        dry_run: false,
    })
}

/// Whether the plan runs a statement as written because its table was small.
fn runs_small_table_hazards(migration: &PlannedMigration) -> bool {
    migration.plan.statements.iter().any(|statement| {
        matches!(
            statement.disposition,
            Disposition::AsWrittenSmallTable { .. }
        )
    })
}

/// Plans `migration` again from the history and the sizes of now (the migrations before it in this run applied).
#[allow(clippy::too_many_arguments)]
async fn replan(
    client: &dyn Session,
    dir: &Path,
    layout: Layout,
    sources: &[crate::MigrationSource],
    options: &ApplyOptions,
    migration: &PlannedMigration,
    applied_now: &[String],
) -> Result<PlannedMigration, ApplyError> {
    let history = read_history(client).await?;
    let target = read_target(client, sources, &history, options).await?;
    let replanned = match plan(
        dir,
        layout,
        sources,
        &history,
        &options.lint,
        &plan_options(options),
        &target,
    ) {
        Ok(plan) => plan,
        Err(ApplyError::Obstacles(obstacles)) => {
            let own: Vec<_> = obstacles
                .into_iter()
                .filter(|(path, _)| *path == migration.path)
                .collect();
            return Err(ApplyError::ObstaclesNow {
                version: migration.version.clone(),
                applied_now: applied_now.to_vec(),
                obstacles: own,
            });
        }
        Err(error) => return Err(error),
    };
    replanned
        .pending
        .into_iter()
        .find(|pending| pending.version == migration.version)
        .ok_or_else(|| {
            ApplyError::Database(DbError::other(
                format!("planning {} again", migration.version),
                "another apply recorded it meanwhile",
            ))
        })
}

fn plan_options(options: &ApplyOptions) -> PlanOptions {
    PlanOptions {
        allow_unbatched: options.allow_unbatched,
        rewrite: options.rewrite,
        pg_version: options.lint.pg_version,
        small_table_rows: options.lint.small_table_rows,
    }
}

/// Reads, in a READ ONLY transaction with bounded waits, what planning needs from the target: the size of every
/// table the pending migrations touch (counted exactly up to `small_table_rows`), the names in use and the
/// schema unqualified names are created in.
async fn read_target(
    client: &dyn Session,
    sources: &[crate::MigrationSource],
    history: &[AppliedRecord],
    options: &ApplyOptions,
) -> Result<TargetSnapshot, ApplyError> {
    use tidegate_db::table_stats;
    let tables = tables_to_read(sources, history, &options.lint);
    let reading = database("reading the sizes of the tables the migrations touch");
    table_stats::begin_read_only(client, options.lock_timeout, options.statement_timeout)
        .await
        .map_err(&reading)?;
    let read = async {
        let mut snapshot = TargetSnapshot {
            default_schema: table_stats::creation_schema(client).await?,
            names: table_stats::names_in_use(client).await?,
            ..TargetSnapshot::default()
        };
        for table in &tables {
            let name = match &table.schema {
                Some(schema) => format!(
                    "{}.{}",
                    sql::quote_ident(schema),
                    sql::quote_ident(&table.name)
                ),
                None => sql::quote_ident(&table.name),
            };
            if let Some(live) =
                table_stats::live_table(client, &name, options.lint.small_table_rows).await?
            {
                snapshot.tables.insert(table.key(), live);
            }
        }
        Ok::<_, DbError>(snapshot)
    }
    .await;
    let _ = table_stats::end_read_only(client).await;
    read.map_err(reading)
}

async fn take_apply_lock(client: &dyn Session, wait: Duration) -> Result<(), ApplyError> {
    let started = Instant::now();
    loop {
        let locked: bool = client
            .query_one(sql::TRY_APPLY_LOCK, &[])
            .await
            .map_err(database("taking the apply lock"))?
            .get("locked")?;
        if locked {
            return Ok(());
        }
        if started.elapsed() >= wait {
            let holder = client
                .query_opt(sql::APPLY_LOCK_HOLDER, &[])
                .await
                .map_err(database("finding the apply lock's holder"))?
                .map(|row| -> Result<String, ApplyError> {
                    let application: String = row.get("application")?;
                    Ok(format!(
                        "pid {}, application '{}', from {}, connected {:.0} s ago",
                        row.get::<i64>("pid")?,
                        application,
                        row.get::<String>("client")?,
                        row.get::<f64>("connected_seconds")?
                    ))
                })
                .transpose()?
                .unwrap_or_else(|| "a session that has just released it".into());
            return Err(ApplyError::Busy {
                holder,
                waited_s: started.elapsed().as_secs_f64(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn backend_pids(clients: &[&dyn Session]) -> Result<Vec<i32>, ApplyError> {
    let mut pids = Vec::with_capacity(clients.len());
    for client in clients {
        let row = client
            .query_one(sql::BACKEND_PID, &[])
            .await
            .map_err(database("reading the backend pid"))?;
        pids.push(row.get("pid")?);
    }
    Ok(pids)
}

/// The health gate: waits (saying why) until the backfill's signals are healthy, or refuses after
/// `options.health_wait`. Unknown is not healthy.
pub(crate) async fn wait_until_healthy(
    client: &dyn Session,
    own_pids: &[i32],
    version: &str,
    before_phase: usize,
    options: &ApplyOptions,
    sink: &ApplySink,
    replicas: &mut tidegate_backfill::engine::ReplicaWatch,
) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let decision = tidegate_backfill::engine::check_health_with(
            client,
            own_pids,
            &options.backfill.thresholds,
            options.backfill.probe_sql.as_deref(),
            options.backfill.throttle_query.as_deref(),
            replicas,
        )
        .await
        .map_err(|error| format!("reading the health signals: {}", error.message))?;
        // A stop ends the wait; the caller checks for it next and starts nothing.
        if decision.level == Level::Healthy || options.stop.requested().is_some() {
            return Ok(());
        }
        if started.elapsed() >= options.health_wait {
            return Err(format!(
                "the database was not healthy for {:.0} s before phase {before_phase} of {version} ({}); nothing \
                 more was started. Run apply again when it has recovered, or raise --health-wait",
                started.elapsed().as_secs_f64(),
                decision.reason
            ));
        }
        sink(&ApplyEvent::WaitingForHealth {
            version: version.to_string(),
            before_phase,
            level: decision.level,
            reason: decision.describe(),
            waited_s: started.elapsed().as_secs(),
        });
        sleep_unless_stopped(Duration::from_secs(1), Some(&options.stop)).await;
    }
}

/// The rows of `tidegate.migrations`; none when the state schema does not exist yet.
pub(crate) async fn read_history(client: &dyn Session) -> Result<Vec<AppliedRecord>, ApplyError> {
    let exists: bool = client
        .query_one(sql::HISTORY_EXISTS, &[])
        .await
        .map_err(database("reading the history"))?
        .get("present")?;
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .rows(sql::READ_HISTORY, &[])
        .await
        .map_err(database("reading tidegate.migrations"))?;
    rows.iter()
        .map(|row| {
            let version: String = row.get("version")?;
            let status: String = row.get("status")?;
            let status = MigrationStatus::recorded(&version, &status)?;
            Ok(AppliedRecord {
                version,
                checksum: row.get("checksum")?,
                status,
                phases_done: row.get("phases_done")?,
            })
        })
        .collect()
}

pub(crate) async fn wait_for_window(window: Option<&Window>, stop: &StopHandle, sink: &ApplySink) {
    let Some(window) = window else { return };
    while stop.requested().is_none() {
        let now = utc_second_of_day();
        if window.contains(now) {
            return;
        }
        let wait = window.until_open(now);
        sink(&ApplyEvent::WaitingForWindow {
            opens_in_s: wait.as_secs(),
        });
        sleep_unless_stopped(wait.min(Duration::from_secs(60)), Some(stop)).await;
    }
}

async fn journal(client: &dyn Session, version: &str, event: &str, detail: serde_json::Value) {
    // The journal is a record, not a gate: a failure to write it must not fail the migration.
    if let Err(error) = client
        .run(
            sql::JOURNAL,
            &[version.into(), event.into(), detail.to_string().into()],
        )
        .await
    {
        tracing::warn!(%error, "could not write the journal");
    }
}

fn phase_kind(phase: &Phase) -> &'static str {
    phase.kind.class().describe()
}

#[allow(clippy::too_many_arguments)]
async fn run_migration(
    config: &ConnectionConfig,
    client: &dyn Session,
    monitor: Arc<dyn Session>,
    own_pids: &[i32],
    migration: &PlannedMigration,
    options: &ApplyOptions,
    sink: &ApplySink,
    guard: &ApplyLockGuard,
) -> Result<(), ApplyError> {
    let started = Instant::now();
    let version = migration.version.clone();
    // An interrupted migration resumes with the phases it started with, not a new plan: the sizes, the names in
    // use (an index its first phase built) or tidegate.toml may have changed since, and a new plan could split
    // the same file differently. The file itself is the same (its checksum was checked).
    let recorded;
    let phases: &[Phase] = match migration.resumes_recorded_phases {
        true => match recorded_phases(client, migration).await {
            Ok(phases) => {
                recorded = phases;
                &recorded
            }
            // Nothing was recorded done, and the record is in a shape this build does not read: plan anew.
            Err(ApplyError::PhasesUnreadable { .. }) if migration.phases_done == 0 => {
                &migration.plan.phases
            }
            Err(error) => return Err(error),
        },
        false => &migration.plan.phases,
    };
    let phases_json = serde_json::to_string(phases).unwrap_or_else(|_| "[]".into());
    // An unfinished record means an earlier apply ran this migration: its first unrecorded phase may have
    // committed without being recorded (a crash between a statement outside a transaction and its record).
    let recorded_before = client
        .query_opt(sql::MIGRATION_RECORDED, &[version.as_str().into()])
        .await
        .map_err(database("reading the migration's record"))?
        .is_some();
    let row = client
        .query_one(
            sql::BEGIN_MIGRATION,
            &[
                version.as_str().into(),
                migration.name.as_str().into(),
                migration.checksum.as_str().into(),
                phases_json.into(),
            ],
        )
        .await
        .map_err(database("recording the migration"))?;
    let phases_done = row.get::<i64>("phases_done")?.max(0) as usize;
    sink(&ApplyEvent::MigrationStarted {
        version: version.clone(),
        name: migration.name.clone(),
        phases: phases.len(),
    });
    journal(client, &version, "migration_started", serde_json::json!({ "name": migration.name, "phases": phases.len(), "resuming_at_phase": phases_done + 1 })).await;
    if phases_done == 0 {
        // What apply runs instead of a statement as written, so the timeline shows the SQL that really ran.
        for statement in &migration.plan.statements {
            let (Disposition::Rewritten { rules } | Disposition::AsWrittenSmallTable { rules, .. }) =
                &statement.disposition
            else {
                continue;
            };
            let steps: Vec<&str> = phases
                .iter()
                .flat_map(|phase| phase.steps.iter())
                .filter(|step| step.statement == statement.index)
                .map(|step| step.sql.as_str())
                .collect();
            let event = match statement.disposition {
                Disposition::Rewritten { .. } => "statement_rewritten",
                _ => "statement_as_written_small_table",
            };
            journal(
                client,
                &version,
                event,
                serde_json::json!({
                    "line": statement.line,
                    "statement": statement.text,
                    "rules": rules,
                    "runs_as": steps,
                    "disposition": statement.disposition,
                }),
            )
            .await;
        }
    }

    for (index, phase) in phases.iter().enumerate() {
        let number = index + 1;
        if index < phases_done {
            sink(&ApplyEvent::PhaseSkipped {
                version: version.clone(),
                phase: number,
                class: phase.kind.class(),
                reason: "done by an earlier apply".into(),
            });
            continue;
        }
        // Between phases the window and the gate are checked again: a long backfill may have run past the window's
        // end, and the database may have become busy meanwhile.
        let gate = if index > phases_done {
            wait_for_window(options.window.as_ref(), &options.stop, sink).await;
            wait_until_healthy(
                client,
                own_pids,
                &version,
                number,
                options,
                sink,
                &mut tidegate_backfill::engine::ReplicaWatch::none(),
            )
            .await
        } else {
            Ok(())
        };
        let phase_started = Instant::now();
        // Ctrl-C: no phase starts after a stop was requested; the committed ones stay and the next apply
        // resumes here.
        let gate = gate.and_then(|()| match options.stop.requested() {
            Some(reason) => Err(format!(
                "stopped ({reason}) before this phase started; phases 1 to {index} are committed and \
                 `tidegate apply` resumes at phase {number}"
            )),
            None => Ok(()),
        });
        let outcome = match gate {
            Err(message) => Err(message),
            Ok(()) => {
                sink(&ApplyEvent::PhaseStarted {
                    version: version.clone(),
                    phase: number,
                    kind: phase_kind(phase),
                    class: phase.kind.class(),
                    statements: phase.steps.len(),
                });
                journal(
                    client,
                    &version,
                    "phase_started",
                    serde_json::json!({
                        "phase": number,
                        "kind": phase_kind(phase),
                        "class": phase.kind.class(),
                        "statements": phase.steps.len(),
                    }),
                )
                .await;
                let monitor = monitor.clone();
                let resuming = recorded_before && index == phases_done;
                run_phase(
                    config, client, monitor, &version, number, phase, resuming, options, sink,
                )
                .await
            }
        };
        // Checked before anything is recorded: without the lock another apply may already be running.
        if let Some(detail) = guard.lost() {
            let detail = match outcome {
                Err(message) => format!("{detail} ({message})"),
                Ok(()) => format!("{detail} (phase {number} had finished and is recorded)"),
            };
            sink(&ApplyEvent::MigrationFailed {
                version: version.clone(),
                phase: number,
                error: detail.clone(),
            });
            return Err(ApplyError::LockLost {
                version,
                phase: number,
                detail,
            });
        }
        if let Err(message) = outcome {
            let _ = client
                .run(
                    sql::MIGRATION_FAILED,
                    &[version.as_str().into(), message.as_str().into()],
                )
                .await;
            journal(
                client,
                &version,
                "migration_failed",
                serde_json::json!({ "phase": number, "error": message }),
            )
            .await;
            sink(&ApplyEvent::MigrationFailed {
                version: version.clone(),
                phase: number,
                error: message.clone(),
            });
            return Err(ApplyError::MigrationFailed {
                version,
                name: migration.name.clone(),
                phase: number,
                phases: phases.len(),
                message,
            });
        }
        let elapsed_ms = phase_started.elapsed().as_millis() as u64;
        journal(client, &version, "phase_done", serde_json::json!({ "phase": number, "kind": phase_kind(phase), "elapsed_ms": elapsed_ms })).await;
        sink(&ApplyEvent::PhaseDone {
            version: version.clone(),
            phase: number,
            elapsed_ms,
        });
    }
    client
        .run(sql::MIGRATION_APPLIED, &[version.as_str().into()])
        .await
        .map_err(database("recording the migration as applied"))?;
    let duration_ms = started.elapsed().as_millis() as u64;
    journal(
        client,
        &version,
        "migration_applied",
        serde_json::json!({ "duration_ms": duration_ms }),
    )
    .await;
    sink(&ApplyEvent::MigrationApplied {
        version,
        name: migration.name.clone(),
        duration_ms,
    });
    Ok(())
}

/// The phases an interrupted migration was started with (recorded in `tidegate.migrations.phases`).
async fn recorded_phases(
    client: &dyn Session,
    migration: &PlannedMigration,
) -> Result<Vec<Phase>, ApplyError> {
    let recorded: Option<String> = client
        .query_opt(sql::RECORDED_PHASES, &[migration.version.as_str().into()])
        .await
        .map_err(database("reading the migration's recorded phases"))?
        .map(|row| row.get("phases"))
        .transpose()?;
    let recorded = recorded.unwrap_or_default();
    serde_json::from_str(&recorded).map_err(|error| ApplyError::PhasesUnreadable {
        version: migration.version.clone(),
        phases_done: migration.phases_done,
        reason: error.to_string(),
    })
}

#[allow(clippy::too_many_arguments)]
async fn run_phase(
    config: &ConnectionConfig,
    client: &dyn Session,
    monitor: Arc<dyn Session>,
    version: &str,
    number: usize,
    phase: &Phase,
    resuming: bool,
    options: &ApplyOptions,
    sink: &ApplySink,
) -> Result<(), String> {
    match &phase.kind {
        PhaseKind::Schema { in_transaction } => {
            run_statements(
                client,
                monitor,
                version,
                number,
                phase,
                *in_transaction,
                resuming,
                options,
                sink,
            )
            .await
        }
        PhaseKind::DataAsWritten => {
            run_statements(
                client, monitor, version, number, phase, true, resuming, options, sink,
            )
            .await
        }
        PhaseKind::Backfill { spec } => {
            let spec_json = serde_json::to_string(spec).map_err(|error| error.to_string())?;
            let finished: Option<i64> = client
                .query_opt(
                    sql::COMPLETED_RUN_FOR_SPEC,
                    &[version.into(), spec_json.into()],
                )
                .await
                .map_err(|error| error.message.clone())?
                .map(|row| row.get("run_id"))
                .transpose()
                .map_err(|error| error.to_string())?;
            if let Some(run_id) = finished {
                // The run completed but the apply that ran it stopped before recording so.
                sink(&ApplyEvent::PhaseSkipped {
                    version: version.into(),
                    phase: number,
                    class: PhaseClass::Backfill,
                    reason: format!("backfill run {run_id} already completed"),
                });
            } else {
                let events: EventSink = {
                    let sink = sink.clone();
                    let version = version.to_string();
                    Arc::new(move |event| {
                        sink(&ApplyEvent::Backfill {
                            version: version.clone(),
                            phase: number,
                            backfill: event.clone(),
                        })
                    })
                };
                let outcome = engine::run(
                    config,
                    RunTarget::Spec(spec.clone()),
                    // A later migration may repeat an earlier one's data change: that is a new run.
                    BackfillOptions {
                        rerun_finished: true,
                        ..options.backfill.clone()
                    },
                    events,
                    options.stop.clone(),
                )
                .await;
                // Which run did this phase's work: `tidegate report` draws the run's timeline inside the
                // migration's.
                let run_id = match &outcome {
                    Ok(outcome) => Some(outcome.run_id),
                    Err(engine::BackfillError::RunFailed { run_id, .. }) => Some(*run_id),
                    Err(_) => None,
                };
                if let Some(run_id) = run_id {
                    journal(
                        client,
                        version,
                        "backfill_run",
                        serde_json::json!({ "phase": number, "run_id": run_id }),
                    )
                    .await;
                }
                let outcome = outcome.map_err(|error| error.to_string())?;
                match outcome.end {
                    RunEnd::Completed => {}
                    RunEnd::Interrupted { reason } => {
                        return Err(format!(
                            "backfill run {} stopped ({reason}); it is resumable: run `tidegate apply` again",
                            outcome.run_id
                        ))
                    }
                    RunEnd::Aborted { reason } => {
                        return Err(format!("backfill run {} was aborted ({reason})", outcome.run_id))
                    }
                }
            }
            client
                .run(sql::PHASE_DONE, &[version.into(), (number as i32).into()])
                .await
                .map_err(|error| error.message.clone())?;
            Ok(())
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_statements(
    client: &dyn Session,
    monitor: Arc<dyn Session>,
    version: &str,
    number: usize,
    phase: &Phase,
    in_transaction: bool,
    resuming: bool,
    options: &ApplyOptions,
    sink: &ApplySink,
) -> Result<(), String> {
    let statements: Vec<SchemaStatement> = phase
        .steps
        .iter()
        .map(|step| SchemaStatement {
            sql: step.sql.clone(),
            invalid_index_to_clear: step.concurrent_index.clone(),
        })
        .collect();
    let schema_options = SchemaPhaseOptions {
        lock_timeout: options.lock_timeout,
        statement_timeout: options.statement_timeout,
        retry: RetryPolicy {
            max_attempts: options.retries,
            ..RetryPolicy::schema_locks()
        },
        in_transaction,
        blocker_sample_every: Duration::from_millis(100),
        completion_sql: Some(sql::phase_done_literal(version, number)),
        stop: Some(options.stop.clone()),
        concurrent_wait: options.concurrent_wait,
        resuming,
    };
    let mut lock_events = Vec::new();
    let result = run_schema_phase(
        client,
        monitor,
        &statements,
        &schema_options,
        |event| match event {
            SchemaEvent::LockTimedOut {
                attempt,
                statement,
                blockers,
                retry_in,
            } => {
                let event = ApplyEvent::LockTimedOut {
                    version: version.into(),
                    phase: number,
                    attempt,
                    statement,
                    blockers,
                    retry_in_ms: retry_in.map(|wait| wait.as_millis() as u64),
                };
                sink(&event);
                lock_events.push(event);
            }
            SchemaEvent::DroppedInvalidIndex { index } => sink(&ApplyEvent::DroppedInvalidIndex {
                version: version.into(),
                phase: number,
                index,
            }),
            SchemaEvent::AlreadyDone { statement, reason } => {
                let event = ApplyEvent::StatementAlreadyDone {
                    version: version.into(),
                    phase: number,
                    statement,
                    reason,
                };
                sink(&event);
                lock_events.push(event);
            }
            SchemaEvent::AttemptStarted { .. } | SchemaEvent::Committed { .. } => {}
        },
    )
    .await;
    for event in lock_events {
        let name = match event {
            ApplyEvent::StatementAlreadyDone { .. } => "statement_already_done",
            _ => "lock_timed_out",
        };
        journal(
            client,
            version,
            name,
            serde_json::to_value(&event).unwrap_or_default(),
        )
        .await;
    }
    result.map(|_| ()).map_err(|error| error.to_string())
}
