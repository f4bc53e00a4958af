//! Runs a [`MyApplyPlan`] against a MySQL/MariaDB server: the I/O edge of `apply` for that family.
//!
//! **Resume without running a DDL twice or skipping one.** MySQL commits every DDL on its own, so a DDL and the
//! record of its phase cannot commit together. Before a DDL's first attempt apply journals `ddl_started` with a
//! fingerprint of its table's definition (columns, indexes, constraints, options, creation time from
//! information_schema); right after the DDL it records the phase done. A crash between the two leaves the
//! phase unrecorded; the next apply (same file: same checksum) finds the `ddl_started` entry and compares the
//! table's fingerprint now with the one journalled: changed, the DDL ran (InnoDB DDL is atomic, so it ran
//! whole) and the phase is recorded without running it; unchanged, it did not, and it runs. A statement with no
//! table to fingerprint (CREATE VIEW, GRANT…) interrupted in that window is not guessed at: apply stops and says
//! what to check. Data phases commit in one transaction with their record: exactly once.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tidegate_backfill::engine::{
    self, BackfillOptions, EventSink, ReplicaWatch, RunEnd, RunTarget,
};
use tidegate_backfill::retry::{RetryDecision, RetryPolicy, RetryState};
use tidegate_backfill::state;
use tidegate_db::connect::DbError;
use tidegate_db::driver::{Session, SessionExt};
use tidegate_db::mysql::{MySqlConfig, MySqlSession};
use tidegate_sql::mysql::MySqlTarget;
use tidegate_sql::TableSize;

use super::plan::{
    self, split_name, MyApplyPlan, MyLiveTable, MyPhase, MyPlanOptions, MyTargetSnapshot,
};
use super::sql;
use crate::executor::{ApplyEvent, ApplyOptions, ApplySink};
use crate::schema_phase::sleep_unless_stopped;
use crate::{load, AppliedRecord, ApplyError, MigrationStatus};

/// An open transaction other than apply's: it may hold the metadata lock a DDL waits for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenTransaction {
    /// The connection id (`KILL id` ends it).
    pub id: i64,
    pub user: String,
    pub host: String,
    /// The process list's command and state (`Sleep`: idle in its transaction).
    pub state: String,
    pub transaction_age_seconds: f64,
    /// Its current statement; empty when idle (MariaDB without performance_schema keeps no last statement).
    pub query: String,
}

impl std::fmt::Display for OpenTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "connection {} ({}@{}, {}, transaction open {:.1} s): {}",
            self.id,
            self.user,
            self.host,
            self.state,
            self.transaction_age_seconds,
            if self.query.is_empty() {
                "idle, no current statement"
            } else {
                &self.query
            }
        )
    }
}

/// How a MySQL/MariaDB apply ended well.
#[derive(Debug, Clone, Serialize)]
pub struct MyApplySummary {
    pub plan: MyApplyPlan,
    pub applied_now: Vec<String>,
    pub dry_run: bool,
}

fn database(context: &str) -> impl Fn(DbError) -> ApplyError + '_ {
    move |error| ApplyError::Database(error.context(context))
}

/// The server's flavour and version from `SELECT VERSION()` (`10.11.19-MariaDB-0+deb12u1`, `8.0.36`).
pub fn target_of(version: &str) -> Result<MySqlTarget, String> {
    MySqlTarget::from_server_version(version)
}

struct Connected {
    session: MySqlSession,
    database: String,
    target: MySqlTarget,
    read_only: bool,
}

async fn connect(config: &MySqlConfig) -> Result<Connected, ApplyError> {
    let session = config.connect().await.map_err(ApplyError::Database)?;
    let row = session
        .query_one(sql::SERVER, &[])
        .await
        .map_err(database("reading the server's version"))?;
    let version: String = row.get("version")?;
    let database_name: String = row.get("db")?;
    if database_name.is_empty() {
        return Err(ApplyError::Unhealthy(format!(
            "{} names no database: apply needs one (mysql://user@host:port/DATABASE), where the migrations' \
             unqualified tables live; nothing was changed",
            config.redacted()
        )));
    }
    let target = target_of(&version)
        .map_err(|reason| ApplyError::Unhealthy(format!("{reason}; nothing was changed")))?;
    session
        .batch_execute(sql::SESSION_SETUP)
        .await
        .map_err(database("configuring the session"))?;
    Ok(Connected {
        read_only: row.get::<i64>("read_only")? != 0,
        session,
        database: database_name,
        target,
    })
}

async fn read_history(client: &dyn Session) -> Result<Vec<AppliedRecord>, ApplyError> {
    let exists: bool = client
        .query_one(sql::HISTORY_EXISTS, &[])
        .await
        .map_err(database("looking for the history"))?
        .get("present")?;
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .rows(sql::READ_HISTORY, &[])
        .await
        .map_err(database("reading the history"))?;
    rows.iter()
        .map(|row| {
            let version: String = row.get("version")?;
            let status: String = row.get("status")?;
            Ok(AppliedRecord {
                status: MigrationStatus::recorded(&version, &status)?,
                version,
                checksum: row.get("checksum")?,
                phases_done: row.get("phases_done")?,
            })
        })
        .collect()
}

async fn read_snapshot(
    client: &dyn Session,
    connected: &Connected,
    sources: &[crate::MigrationSource],
    history: &[AppliedRecord],
    small_table_rows: u64,
) -> Result<MyTargetSnapshot, ApplyError> {
    let mut tables = HashMap::new();
    for name in plan::tables_to_read(sources, history, connected.target) {
        let (schema, table) = split_name(&name, &connected.database);
        let Some(row) = client
            .query_opt(
                sql::TABLE_SIZE,
                &[schema.as_str().into(), table.as_str().into()],
            )
            .await
            .map_err(database("reading table sizes"))?
        else {
            continue;
        };
        let estimated = row.get::<i64>("table_rows")?.max(0) as u64;
        let bytes = row.get::<i64>("total_bytes")?.max(0) as u64;
        // TABLE_ROWS lags behind fresh inserts: a table judged small is counted (never past the threshold).
        let size = if estimated < small_table_rows {
            let counted: i64 = client
                .query_one(
                    &sql::count_rows_up_to(&sql::quote_table(&schema, &table), small_table_rows),
                    &[],
                )
                .await
                .map_err(database("counting a small table's rows"))?
                .get("counted")?;
            let counted = counted.max(0) as u64;
            TableSize {
                rows: counted,
                rows_exact: counted < small_table_rows,
                heap_bytes: None,
                total_bytes: Some(bytes),
            }
        } else {
            TableSize {
                rows: estimated,
                rows_exact: false,
                heap_bytes: None,
                total_bytes: Some(bytes),
            }
        };
        let definition = client
            .query_text(&sql::show_create_table(&sql::quote_table(&schema, &table)))
            .await
            .map_err(database("reading a table's definition"))?
            .into_iter()
            .next()
            .and_then(|row| row.into_iter().nth(1).flatten());
        tables.insert(name, MyLiveTable { size, definition });
    }
    Ok(MyTargetSnapshot {
        target: connected.target,
        database: connected.database.clone(),
        tables,
    })
}

fn plan_options(options: &ApplyOptions) -> MyPlanOptions {
    MyPlanOptions {
        small_table_rows: options.lint.small_table_rows,
        allow_unbatched: options.allow_unbatched,
        allow_copy: options.allow_copy,
    }
}

/// `--lock-timeout` in MySQL's whole seconds (at least 1).
pub fn lock_wait_seconds(lock_timeout: Duration) -> u64 {
    lock_timeout.as_secs().max(1)
}

/// Plans, then (unless a dry run) applies every pending migration of `dir` on a MySQL/MariaDB server.
pub async fn apply_mysql(
    config: &MySqlConfig,
    dir: &Path,
    options: ApplyOptions,
    sink: ApplySink,
) -> Result<MyApplySummary, ApplyError> {
    let (layout, sources) = load(dir, options.layout)?;
    let connected = connect(config).await?;
    let client: &dyn Session = &connected.session;
    let history = read_history(client).await?;
    let snapshot = read_snapshot(
        client,
        &connected,
        &sources,
        &history,
        options.lint.small_table_rows,
    )
    .await?;
    let planned = plan::plan(
        dir,
        layout.name(),
        &sources,
        &history,
        &options.lint,
        &plan_options(&options),
        &snapshot,
    )?;
    sink(&ApplyEvent::Planned {
        applied: planned.applied.len(),
        pending: planned.pending.len(),
    });
    if options.dry_run {
        return Ok(MyApplySummary {
            plan: planned,
            applied_now: Vec::new(),
            dry_run: true,
        });
    }
    if connected.read_only {
        return Err(ApplyError::ReadOnly);
    }
    if planned.pending.is_empty() {
        return Ok(MyApplySummary {
            plan: planned,
            applied_now: Vec::new(),
            dry_run: false,
        });
    }
    // Every --replica reached and read before anything is written: the health gate and the backfill phases
    // watch them.
    let mut replicas = ReplicaWatch::connect(
        &tidegate_backfill::dialect_mysql::MySql,
        &options.backfill.replicas,
    )
    .await
    .map_err(|error| match error {
        tidegate_backfill::engine::BackfillError::Database(error) => ApplyError::Database(error),
        other => ApplyError::Unhealthy(format!("{other}; nothing was changed")),
    })?;
    state::ensure_schema(client)
        .await
        .map_err(|error| crate::state_error("preparing the tidegate database", error))?;
    take_apply_lock(client, options.lock_wait).await?;
    let result = async {
        // Under the lock: another apply may have just finished.
        let history = read_history(client).await?;
        let planned = plan::plan(
            dir,
            layout.name(),
            &sources,
            &history,
            &options.lint,
            &plan_options(&options),
            &snapshot,
        )?;
        let monitor = config.connect().await.map_err(ApplyError::Database)?;
        let own_ids = format!(
            "{},{}",
            connected.session.connection_id(),
            monitor.connection_id()
        );
        // Our sessions, which the health gate does not count as the application's.
        let own_connection_ids: Vec<i32> =
            [connected.session.connection_id(), monitor.connection_id()]
                .into_iter()
                .filter_map(|id| i32::try_from(id).ok())
                .collect();
        let mut applied_now = Vec::new();
        for migration in &planned.pending {
            if let Some(reason) = options.stop.requested() {
                return Err(ApplyError::Stopped {
                    reason,
                    before: migration.version.clone(),
                    applied_now,
                });
            }
            let outcome = run_migration(
                config,
                client,
                &monitor,
                &own_ids,
                &own_connection_ids,
                migration,
                &options,
                &sink,
                &mut replicas,
            )
            .await;
            match outcome {
                Err(ApplyError::Stopped { reason, before, .. }) => {
                    return Err(ApplyError::Stopped {
                        reason,
                        before,
                        applied_now,
                    })
                }
                other => other?,
            }
            applied_now.push(migration.version.clone());
        }
        Ok(MyApplySummary {
            plan: planned,
            applied_now,
            dry_run: false,
        })
    }
    .await;
    let _ = client.query_one(sql::RELEASE_APPLY_LOCK, &[]).await;
    result
}

async fn take_apply_lock(client: &dyn Session, lock_wait: Duration) -> Result<(), ApplyError> {
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
        if started.elapsed() >= lock_wait {
            let holder: i64 = client
                .query_one(sql::APPLY_LOCK_HOLDER, &[])
                .await
                .map_err(database("reading who holds the apply lock"))?
                .get("holder")?;
            return Err(ApplyError::Busy {
                holder: format!("connection {holder}"),
                waited_s: started.elapsed().as_secs_f64(),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn journal(client: &dyn Session, version: &str, event: &str, detail: serde_json::Value) {
    // The journal is for people: a failed write must not fail the migration.
    let _ = client
        .run(
            sql::JOURNAL,
            &[version.into(), event.into(), detail.to_string().into()],
        )
        .await;
}

#[allow(clippy::too_many_arguments)]
async fn run_migration(
    config: &MySqlConfig,
    client: &dyn Session,
    monitor: &MySqlSession,
    own_ids: &str,
    own_connection_ids: &[i32],
    migration: &plan::MyPlannedMigration,
    options: &ApplyOptions,
    sink: &ApplySink,
    replicas: &mut ReplicaWatch,
) -> Result<(), ApplyError> {
    let started = Instant::now();
    let version = migration.version.clone();
    // An interrupted run of the same file resumes with the phases it was started with.
    let record = client
        .query_opt(sql::MIGRATION_RECORD, &[version.as_str().into()])
        .await
        .map_err(database("reading the migration's record"))?;
    let mut resuming = false;
    let mut phases = migration.phases.clone();
    let mut phases_done = 0usize;
    if let Some(record) = &record {
        let checksum: String = record.get("checksum")?;
        if checksum == migration.checksum {
            let recorded: String = record.get("phases")?;
            phases =
                serde_json::from_str(&recorded).map_err(|error| ApplyError::PhasesUnreadable {
                    version: version.clone(),
                    phases_done: migration.phases_done,
                    reason: error.to_string(),
                })?;
            phases_done = record.get::<i64>("phases_done")?.max(0) as usize;
            resuming = true;
        }
    }
    let phases_json = serde_json::to_string(&phases).map_err(|error| {
        ApplyError::Database(DbError::other("recording the migration", error.to_string()))
    })?;
    client
        .run(
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
    sink(&ApplyEvent::MigrationStarted {
        version: version.clone(),
        name: migration.name.clone(),
        phases: phases.len(),
    });
    journal(
        client,
        &version,
        "migration_started",
        serde_json::json!({ "name": migration.name, "phases": phases.len(), "resuming_at_phase": phases_done + 1 }),
    )
    .await;
    for (index, phase) in phases.iter().enumerate() {
        let number = index + 1;
        if index < phases_done {
            sink(&ApplyEvent::PhaseSkipped {
                version: version.clone(),
                phase: number,
                class: class_of(phase),
                reason: "done by an earlier apply".into(),
            });
            continue;
        }
        // Before each phase, as on PostgreSQL: the window (a long backfill may have run past its end) and the
        // health gate (the database may have become busy meanwhile). What is committed stays; a stop or an
        // unhealthy database leaves the migration to resume at this phase.
        crate::executor::wait_for_window(options.window.as_ref(), &options.stop, sink).await;
        if options.stop.requested().is_none() {
            crate::executor::wait_until_healthy(
                client,
                own_connection_ids,
                &version,
                number,
                options,
                sink,
                replicas,
            )
            .await
            .map_err(ApplyError::Unhealthy)?;
        }
        if let Some(reason) = options.stop.requested() {
            return Err(ApplyError::Stopped {
                reason,
                before: format!("phase {number} of {version}"),
                applied_now: Vec::new(),
            });
        }
        let statements = match phase {
            MyPhase::Data { statements, .. } => statements.len(),
            _ => 1,
        };
        sink(&ApplyEvent::PhaseStarted {
            version: version.clone(),
            phase: number,
            kind: phase.class(),
            class: class_of(phase),
            statements,
        });
        // As PostgreSQL's executor journals it: `tidegate report` draws the phase from here to `phase_done`.
        journal(
            client,
            &version,
            "phase_started",
            serde_json::json!({
                "phase": number,
                "kind": phase.class(),
                "class": class_of(phase),
                "statements": statements,
            }),
        )
        .await;
        let phase_started = Instant::now();
        let context = PhaseContext {
            config,
            client,
            monitor,
            own_ids,
            version: &version,
            checksum: &migration.checksum,
            number,
            options,
            sink,
        };
        let outcome = match phase {
            MyPhase::Ddl {
                sql: statement,
                added_clause,
                table,
                session,
                ..
            } => {
                context
                    .run_ddl(
                        statement,
                        added_clause.as_deref(),
                        table.as_ref(),
                        session,
                        resuming && index == phases_done,
                    )
                    .await
            }
            MyPhase::Data {
                statements,
                session,
            } => context.run_data(statements, session).await,
            MyPhase::Backfill { spec } => context.run_backfill(spec).await,
        };
        if let Err(message) = outcome {
            let _ = client
                .run(
                    sql::MIGRATION_FAILED,
                    &[message.as_str().into(), version.as_str().into()],
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
        journal(
            client,
            &version,
            "phase_done",
            serde_json::json!({ "phase": number, "kind": phase.class(), "elapsed_ms": elapsed_ms }),
        )
        .await;
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

fn class_of(phase: &MyPhase) -> crate::phases::PhaseClass {
    use crate::phases::PhaseClass;
    match phase {
        MyPhase::Ddl { .. } => PhaseClass::SchemaNoTransaction,
        MyPhase::Data { .. } => PhaseClass::DataAsWritten,
        MyPhase::Backfill { .. } => PhaseClass::Backfill,
    }
}

struct PhaseContext<'a> {
    config: &'a MySqlConfig,
    client: &'a dyn Session,
    monitor: &'a MySqlSession,
    own_ids: &'a str,
    version: &'a str,
    checksum: &'a str,
    number: usize,
    options: &'a ApplyOptions,
    sink: &'a ApplySink,
}

/// What one attempt of a statement came to.
enum Attempt {
    Done,
    LockTimeout,
    Failed(String),
}

impl PhaseContext<'_> {
    async fn fingerprint(&self, table: &(String, String)) -> Result<String, String> {
        let (schema, name) = table;
        let params: Vec<tidegate_db::driver::Value> = (0..4)
            .flat_map(|_| [schema.as_str().into(), name.as_str().into()])
            .collect();
        self.client
            .query_one(sql::DEFINITION_FINGERPRINT, &params)
            .await
            .and_then(|row| Ok(row.get::<String>("fingerprint")?))
            .map_err(|error| {
                format!(
                    "reading the definition of {schema}.{name}: {}",
                    error.message
                )
            })
    }

    async fn open_transactions(&self) -> Vec<OpenTransaction> {
        let rows = match self
            .monitor
            .rows(sql::OPEN_TRANSACTIONS, &[self.own_ids.into()])
            .await
        {
            Ok(rows) => rows,
            // Without the PROCESS privilege nothing can be named; the statement's own result still decides.
            Err(_) => return Vec::new(),
        };
        rows.iter()
            .filter_map(|row| {
                Some(OpenTransaction {
                    id: row.get("id").ok()?,
                    user: row.get("user_name").ok()?,
                    host: row.get("host").ok()?,
                    state: row.get("state").ok()?,
                    transaction_age_seconds: row
                        .get::<Option<f64>>("transaction_age_seconds")
                        .ok()?
                        .unwrap_or(0.0),
                    query: row.get("query").ok()?,
                })
            })
            .collect()
    }

    async fn set_session(&self, session: &[String]) -> Result<(), String> {
        for statement in session {
            self.client
                .batch_execute(statement)
                .await
                .map_err(|error| format!("`{statement}` failed: {}", error.message))?;
        }
        self.client
            .batch_execute(&sql::set_lock_waits(lock_wait_seconds(
                self.options.lock_timeout,
            )))
            .await
            .map_err(|error| format!("setting lock_wait_timeout failed: {}", error.message))
    }

    /// Runs `attempt` until it is done, retrying a lock timeout (error 1205) per the schema-lock policy with
    /// jitter, naming the open transactions before every attempt and after every timeout.
    async fn with_retries<F, Fut>(
        &self,
        statement: &str,
        table: Option<&(String, String)>,
        mut attempt: F,
    ) -> Result<(), String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Attempt>,
    {
        let policy = RetryPolicy {
            max_attempts: self.options.retries,
            ..RetryPolicy::schema_locks()
        };
        let mut retry = RetryState::default();
        let mut rng = fastrand::Rng::new();
        let started = Instant::now();
        let table_name = table.map(|(schema, name)| format!("{schema}.{name}"));
        let mut attempts = 0u32;
        loop {
            if let Some(reason) = self.options.stop.requested() {
                return Err(format!("stopped ({reason}) before `{statement}` ran"));
            }
            attempts += 1;
            let open = self.open_transactions().await;
            if !open.is_empty() {
                (self.sink)(&ApplyEvent::TransactionsOpen {
                    version: self.version.into(),
                    phase: self.number,
                    attempt: attempts,
                    table: table_name.clone(),
                    transactions: open,
                    after_lock_timeout: false,
                });
            }
            match attempt().await {
                Attempt::Done => return Ok(()),
                Attempt::Failed(message) => return Err(message),
                Attempt::LockTimeout => {
                    let open = self.open_transactions().await;
                    let decision = retry.on_failure(&policy, started.elapsed(), rng.f64());
                    let retry_in = match decision {
                        RetryDecision::RetryAfter { delay, .. } => Some(delay),
                        RetryDecision::GiveUp { .. } => None,
                    };
                    let event = ApplyEvent::TransactionsOpen {
                        version: self.version.into(),
                        phase: self.number,
                        attempt: attempts,
                        table: table_name.clone(),
                        transactions: open.clone(),
                        after_lock_timeout: true,
                    };
                    (self.sink)(&event);
                    journal(
                        self.client,
                        self.version,
                        "lock_timed_out",
                        serde_json::json!({
                            "phase": self.number, "attempt": attempts, "statement": statement,
                            "transactions": open, "retry_in_ms": retry_in.map(|d| d.as_millis() as u64),
                        }),
                    )
                    .await;
                    match retry_in {
                        Some(delay) => sleep_unless_stopped(delay, Some(&self.options.stop)).await,
                        None => {
                            let named = if open.is_empty() {
                                " No open transaction was seen (it may have been brief)."
                                    .to_string()
                            } else {
                                format!(
                                    " Open transactions:{}",
                                    open.iter()
                                        .map(|t| format!("\n  - {t}"))
                                        .collect::<String>()
                                )
                            };
                            return Err(format!(
                                "could not take the metadata lock for `{statement}` in {attempts} attempt(s) over \
                                 {:.1} s (lock_wait_timeout {} s each, error 1205); it did not run.{named}\nEnd \
                                 those transactions (KILL id), or retry with a larger --retries or --lock-timeout",
                                started.elapsed().as_secs_f64(),
                                lock_wait_seconds(self.options.lock_timeout)
                            ));
                        }
                    }
                }
            }
        }
    }

    async fn run_ddl(
        &self,
        statement: &str,
        added_clause: Option<&str>,
        table: Option<&(String, String)>,
        session: &[String],
        resuming: bool,
    ) -> Result<(), String> {
        if resuming {
            if let Some(started) = self.ddl_started().await? {
                let before = started
                    .get("fingerprint")
                    .and_then(|f| f.as_str())
                    .map(str::to_string);
                match (table, before) {
                    (Some(table), Some(before)) => {
                        if self.fingerprint(table).await? != before {
                            let reason = format!(
                                "{}.{} changed since an earlier apply started this statement: it ran, and that \
                                 apply stopped before recording it",
                                table.0, table.1
                            );
                            (self.sink)(&ApplyEvent::StatementAlreadyDone {
                                version: self.version.into(),
                                phase: self.number,
                                statement: statement.into(),
                                reason: reason.clone(),
                            });
                            journal(
                                self.client,
                                self.version,
                                "statement_already_done",
                                serde_json::json!({ "phase": self.number, "statement": statement, "reason": reason }),
                            )
                            .await;
                            return self.record_phase().await;
                        }
                    }
                    _ => {
                        return Err(format!(
                            "an earlier apply started `{statement}` and stopped before recording whether it ran, \
                             and it changes no table whose definition tells. Check whether it ran; if it did, \
                             record it with `UPDATE tidegate.migrations SET phases_done = {} WHERE version = '{}'`, \
                             then run apply again",
                            self.number, self.version
                        ))
                    }
                }
            }
        }
        let fingerprint = match table {
            Some(table) => Some(self.fingerprint(table).await?),
            None => None,
        };
        journal(
            self.client,
            self.version,
            "ddl_started",
            serde_json::json!({
                "phase": self.number, "checksum": self.checksum, "statement": statement,
                "added_clause": added_clause, "table": table, "fingerprint": fingerprint,
            }),
        )
        .await;
        (self.sink)(&ApplyEvent::DdlRunning {
            version: self.version.into(),
            phase: self.number,
            statement: statement.into(),
            added_clause: added_clause.map(str::to_string),
        });
        self.with_retries(statement, table, || async {
            if let Err(message) = self.set_session(session).await {
                return Attempt::Failed(message);
            }
            match self.client.batch_execute(statement).await {
                Ok(()) => Attempt::Done,
                Err(error) if error.server_code == Some(1205) => Attempt::LockTimeout,
                Err(error) if matches!(error.server_code, Some(1845 | 1846)) => Attempt::Failed(format!(
                    "`{statement}` was refused by the server ({}): the online-DDL facts said {} would do, the \
                     server cannot; nothing was changed, and apply does not fall back to a copy. Run it with \
                     another ALGORITHM= in the migration, or as expand/contract",
                    error.message,
                    added_clause.unwrap_or("the algorithm written")
                )),
                Err(error) => Attempt::Failed(format!("`{statement}` failed: {}", error.message)),
            }
        })
        .await?;
        self.record_phase().await.map_err(|reason| {
            format!(
                "`{statement}` committed, but recording its phase failed ({reason}); run apply again: it finds \
                 the table changed and records it"
            )
        })
    }

    /// The newest `ddl_started` entry of this phase for this file.
    async fn ddl_started(&self) -> Result<Option<serde_json::Value>, String> {
        let rows = self
            .client
            .rows(sql::DDL_STARTED, &[self.version.into()])
            .await
            .map_err(|error| format!("reading the journal: {}", error.message))?;
        for row in rows {
            let detail: String = row.get("detail").map_err(|e| e.to_string())?;
            let Ok(detail) = serde_json::from_str::<serde_json::Value>(&detail) else {
                continue;
            };
            if detail.get("phase").and_then(|p| p.as_u64()) == Some(self.number as u64)
                && detail.get("checksum").and_then(|c| c.as_str()) == Some(self.checksum)
            {
                return Ok(Some(detail));
            }
        }
        Ok(None)
    }

    async fn record_phase(&self) -> Result<(), String> {
        self.client
            .run(
                sql::PHASE_DONE,
                &[(self.number as i64).into(), self.version.into()],
            )
            .await
            .map(|_| ())
            .map_err(|error| error.message)
    }

    async fn run_data(&self, statements: &[String], session: &[String]) -> Result<(), String> {
        let described = statements.join("; ");
        self.with_retries(&described, None, || async {
            if let Err(message) = self.set_session(session).await {
                return Attempt::Failed(message);
            }
            let result = async {
                self.client.batch_execute(sql::BEGIN).await?;
                for statement in statements {
                    self.client.batch_execute(statement).await?;
                }
                self.client
                    .run(
                        sql::PHASE_DONE,
                        &[(self.number as i64).into(), self.version.into()],
                    )
                    .await?;
                self.client.batch_execute(sql::COMMIT).await
            }
            .await;
            match result {
                Ok(()) => Attempt::Done,
                Err(error) => {
                    let _ = self.client.batch_execute(sql::ROLLBACK).await;
                    if error.server_code == Some(1205) {
                        Attempt::LockTimeout
                    } else {
                        Attempt::Failed(format!(
                            "{}; the phase's transaction was rolled back",
                            error.message
                        ))
                    }
                }
            }
        })
        .await
    }

    async fn run_backfill(
        &self,
        spec: &tidegate_backfill::spec::BackfillSpec,
    ) -> Result<(), String> {
        let spec_json = serde_json::to_string(spec).map_err(|error| error.to_string())?;
        let finished: Option<i64> = self
            .client
            .query_opt(
                sql::COMPLETED_RUN_FOR_SPEC,
                &[self.version.into(), spec_json.into()],
            )
            .await
            .map_err(|error| error.message.clone())?
            .map(|row| row.get("run_id"))
            .transpose()
            .map_err(|error| error.to_string())?;
        if let Some(run_id) = finished {
            (self.sink)(&ApplyEvent::PhaseSkipped {
                version: self.version.into(),
                phase: self.number,
                class: crate::phases::PhaseClass::Backfill,
                reason: format!("backfill run {run_id} already completed"),
            });
        } else {
            let events: EventSink = {
                let sink = self.sink.clone();
                let version = self.version.to_string();
                let number = self.number;
                Arc::new(move |event| {
                    sink(&ApplyEvent::Backfill {
                        version: version.clone(),
                        phase: number,
                        backfill: event.clone(),
                    })
                })
            };
            let outcome = engine::run(
                self.config,
                RunTarget::Spec(spec.clone()),
                BackfillOptions {
                    rerun_finished: true,
                    ..self.options.backfill.clone()
                },
                events,
                self.options.stop.clone(),
            )
            .await;
            if let Ok(outcome) = &outcome {
                journal(
                    self.client,
                    self.version,
                    "backfill_run",
                    serde_json::json!({ "phase": self.number, "run_id": outcome.run_id }),
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
                    return Err(format!(
                        "backfill run {} was aborted ({reason})",
                        outcome.run_id
                    ))
                }
            }
        }
        self.record_phase().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidegate_sql::mysql::{Flavour, ServerVersion};

    #[test]
    fn the_servers_version_text_gives_flavour_and_version() {
        let mariadb = target_of("10.11.19-MariaDB-0+deb12u1").unwrap();
        assert_eq!(mariadb.flavour, Flavour::MariaDb);
        assert_eq!(mariadb.version, ServerVersion(10, 11, 19));
        let mysql = target_of("8.0.36").unwrap();
        assert_eq!(mysql.flavour, Flavour::MySql);
        assert!(target_of("banana").is_err());
        assert!(
            target_of("5.7.44").is_err(),
            "older than the facts table covers"
        );
    }

    #[test]
    fn lock_waits_are_whole_seconds_and_never_zero() {
        assert_eq!(lock_wait_seconds(Duration::from_millis(300)), 1);
        assert_eq!(lock_wait_seconds(Duration::from_secs(2)), 2);
        assert_eq!(sql::set_lock_waits(0), sql::set_lock_waits(1));
    }
}
