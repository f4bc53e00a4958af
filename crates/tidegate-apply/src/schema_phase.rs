//! Runs a migration's schema statements without ever queueing production behind a lock.
//!
//! Every attempt runs with `lock_timeout` (so no foreground query waits behind our queued lock request for longer
//! than that) and `statement_timeout`. An attempt that gives up on its lock (SQLSTATE 55P03) rolls back, reports who
//! held the lock, waits per its [`RetryPolicy`] and tries again; when the retries are used up the phase fails
//! with the blockers named. It never waits without a lock_timeout.
//!
//! A CONCURRENTLY statement (`CREATE INDEX`, `DROP INDEX`, `REINDEX`, `DETACH PARTITION`) waits, after taking its
//! SHARE UPDATE EXCLUSIVE lock, for every older transaction to end. Those waits queue no traffic, but PostgreSQL
//! counts each one against `lock_timeout`, so one idle-in-transaction session would fail every build. Such a
//! statement therefore runs with `lock_timeout` and `statement_timeout` both set to its own bound,
//! [`SchemaPhaseOptions::concurrent_wait`], while a watch on the second connection cancels it when it has queued
//! for a *relation* lock for longer than `lock_timeout`: that request is the one that can hold up other sessions,
//! and it stays bounded (and retried, blockers named) exactly like every other statement's.
//!
//! Outside a transaction a statement commits before its phase is recorded done, so a crash in between leaves it
//! done but unrecorded. When [`SchemaPhaseOptions::resuming`] says this may have happened, a `CREATE INDEX
//! CONCURRENTLY` whose index already exists, valid and with the definition PostgreSQL would give the statement's
//! index, is recorded without building it again, and a `DROP INDEX CONCURRENTLY` whose index is already gone is
//! recorded without running.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::sql;
use std::time::{Duration, Instant};

use pg_query::protobuf::{self, ObjectType};
use pg_query::NodeEnum;
use tidegate_db::blockers::{BlockerWatch, LockHolder};
use tidegate_db::connect::describe;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use tidegate_backfill::engine::StopHandle;
use tidegate_backfill::retry::{RetryDecision, RetryPolicy, RetryState};

/// How the schema phase runs its statements.
#[derive(Debug, Clone)]
pub struct SchemaPhaseOptions {
    /// How long one statement may wait for its lock. Never unbounded.
    pub lock_timeout: Duration,
    /// How long one statement may run.
    pub statement_timeout: Duration,
    /// Retries after a lock timeout: `max_attempts` is the number of retries.
    pub retry: RetryPolicy,
    /// Run the statements in one transaction (all or nothing). CONCURRENTLY statements need `false`.
    pub in_transaction: bool,
    /// How often the blocker watch samples `pg_blocking_pids` while a statement waits.
    pub blocker_sample_every: Duration,
    /// SQL run after the statements, inside their transaction (so progress is recorded exactly when they
    /// commit), or right after them when there is no transaction.
    pub completion_sql: Option<String>,
    /// Ctrl-C: no new attempt starts once a stop is requested, and a wait between retries ends early.
    pub stop: Option<StopHandle>,
    /// How long a CONCURRENTLY statement may run, its waits for older transactions included (they queue no
    /// traffic); its request for the table's lock is still bounded by `lock_timeout`.
    pub concurrent_wait: Duration,
    /// This phase may already have committed without being recorded (an earlier apply ran it and stopped before
    /// recording it): statements outside a transaction whose effect is already there are recorded, not run again.
    pub resuming: bool,
}

impl Default for SchemaPhaseOptions {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(600),
            retry: RetryPolicy::schema_locks(),
            in_transaction: true,
            blocker_sample_every: Duration::from_millis(100),
            completion_sql: None,
            stop: None,
            concurrent_wait: Duration::from_secs(3600),
            resuming: false,
        }
    }
}

/// One statement of a schema phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatement {
    pub sql: String,
    /// For `CREATE INDEX CONCURRENTLY`: the index (as a regclass literal) that a failed earlier build may have
    /// left INVALID. It is dropped before the build is attempted again; a valid index is never touched.
    pub invalid_index_to_clear: Option<String>,
}

impl From<&str> for SchemaStatement {
    fn from(sql: &str) -> Self {
        Self {
            sql: sql.to_string(),
            invalid_index_to_clear: None,
        }
    }
}

impl From<String> for SchemaStatement {
    fn from(sql: String) -> Self {
        Self {
            sql,
            invalid_index_to_clear: None,
        }
    }
}

/// What the phase reports as it goes (for the progress line and the journal).
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaEvent {
    AttemptStarted {
        attempt: u32,
    },
    LockTimedOut {
        attempt: u32,
        statement: String,
        blockers: Vec<LockHolder>,
        retry_in: Option<Duration>,
    },
    /// A failed concurrent build had left this index INVALID; it was dropped before the build runs again.
    DroppedInvalidIndex {
        index: String,
    },
    /// Resuming: the statement had committed before the phase was recorded; it is recorded, not run again.
    AlreadyDone {
        statement: String,
        reason: String,
    },
    Committed {
        attempts: u32,
        elapsed: Duration,
    },
}

/// How the phase ended well.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaPhaseOutcome {
    pub attempts: u32,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaPhaseError {
    #[error(
        "could not take the lock for `{statement}` in {attempts} attempt(s) over {:.1} s; nothing was \
         changed.{blockers_text}\nEnd or wait out those sessions, or retry with a larger --retries or --lock-timeout",
        elapsed.as_secs_f64(),
        blockers_text = blockers_text(blockers)
    )]
    LockNotAcquired {
        statement: String,
        attempts: u32,
        elapsed: Duration,
        blockers: Vec<LockHolder>,
    },
    #[error("`{statement}` failed (SQLSTATE {code}): {message}; the transaction was rolled back")]
    StatementFailed {
        statement: String,
        code: String,
        message: String,
    },
    #[error("the connection failed while running `{statement}`: {source}")]
    Connection {
        statement: String,
        source: tokio_postgres::Error,
    },
    #[error("`{statement}` was not applied in {statement_timeout_ms} ms (statement_timeout) and was cancelled")]
    StatementTimedOut {
        statement: String,
        statement_timeout_ms: u128,
    },
    #[error(
        "`{statement}` did not finish within --concurrent-wait ({concurrent_wait_ms} ms) and was cancelled; it \
         waits for every transaction older than itself, so look for long or idle-in-transaction sessions \
         (pg_stat_activity), end them or raise --concurrent-wait. {leftover}"
    )]
    ConcurrentWaitExpired {
        statement: String,
        concurrent_wait_ms: u128,
        /// What became of the INVALID index a cancelled build leaves.
        leftover: String,
    },
    #[error(
        "`{statement}` cannot be resumed: the index {index} already exists with another definition \
         ({existing}; the statement asks for {expected}). Nothing was dropped. Drop or rename that index \
         (DROP INDEX CONCURRENTLY {index}) or change the migration, then run apply again"
    )]
    IndexDiffers {
        statement: String,
        index: String,
        existing: String,
        expected: String,
    },
    #[error(
        "`{statement}` committed, but recording its phase failed ({reason}); run apply again: it finds the \
         statement's effect in place and records it"
    )]
    NotRecorded { statement: String, reason: String },
    #[error("stopped ({reason}) before `{statement}` ran; nothing of this phase was changed")]
    Stopped { statement: String, reason: String },
}

fn blockers_text(blockers: &[LockHolder]) -> String {
    if blockers.is_empty() {
        return " No blocking session was caught in the act (it may have been brief).".into();
    }
    let mut text = String::from(" Blocked by:");
    for blocker in blockers {
        text.push_str("\n  - ");
        text.push_str(&blocker.to_string());
    }
    text
}

enum AttemptError {
    LockTimeout {
        statement: String,
    },
    /// A CONCURRENTLY statement was cancelled by its own `concurrent_wait`.
    ConcurrentWaitExpired {
        statement: String,
    },
    Fatal(SchemaPhaseError),
}

/// Runs `statements` on `client`; `monitor` is a second connection used to see who blocks us.
pub async fn run_schema_phase(
    client: &Client,
    monitor: Arc<Client>,
    statements: &[SchemaStatement],
    options: &SchemaPhaseOptions,
    mut on_event: impl FnMut(SchemaEvent),
) -> Result<SchemaPhaseOutcome, SchemaPhaseError> {
    let started = Instant::now();
    let backend_pid: i32 = client
        .query_one(sql::BACKEND_PID, &[])
        .await
        .map_err(|source| SchemaPhaseError::Connection {
            statement: sql::BACKEND_PID.into(),
            source,
        })?
        .get(0);
    let watch = BlockerWatch::start(monitor.clone(), backend_pid, options.blocker_sample_every);
    let mut rng = fastrand::Rng::new();
    // In a transaction the statements stand or fall together; without one (CONCURRENTLY) each commits on its own,
    // so a retry must not run again what already committed.
    let units: Vec<&[SchemaStatement]> = if options.in_transaction {
        vec![statements]
    } else {
        statements.chunks(1).collect()
    };
    let mut attempts = 0;
    for unit in units {
        let unit_started = Instant::now();
        let mut retry = RetryState::default();
        // Outside a transaction a unit is one statement; inside one, nothing commits without its record.
        let concurrent = match unit {
            [statement] if !options.in_transaction => concurrent_statement(&statement.sql),
            _ => None,
        };
        let mut to_run = unit;
        if options.resuming {
            if let (Some(concurrent), [statement]) = (&concurrent, unit) {
                if let Some(reason) =
                    already_done(client, &statement.sql, concurrent, options).await?
                {
                    on_event(SchemaEvent::AlreadyDone {
                        statement: statement.sql.clone(),
                        reason,
                    });
                    to_run = &[];
                }
            }
        }
        let attempt = Attempt {
            client,
            monitor: &monitor,
            backend_pid,
            concurrent: concurrent.as_ref(),
            options,
        };
        loop {
            if let Some(reason) = options.stop.as_ref().and_then(StopHandle::requested) {
                return Err(SchemaPhaseError::Stopped {
                    statement: unit.first().map(|s| s.sql.clone()).unwrap_or_default(),
                    reason,
                });
            }
            attempts += 1;
            on_event(SchemaEvent::AttemptStarted { attempt: attempts });
            watch.clear();
            if !options.in_transaction {
                for statement in to_run {
                    if let Some(index) = &statement.invalid_index_to_clear {
                        if clear_invalid_index(client, index, options).await? {
                            on_event(SchemaEvent::DroppedInvalidIndex {
                                index: index.clone(),
                            });
                        }
                    }
                }
            }
            match attempt.run(to_run).await {
                Ok(()) => break,
                Err(AttemptError::Fatal(error)) => return Err(error),
                Err(AttemptError::ConcurrentWaitExpired { statement }) => {
                    return Err(attempt
                        .after_concurrent_wait(statement, &mut on_event)
                        .await)
                }
                Err(AttemptError::LockTimeout { statement }) => {
                    let blockers = watch.last_seen();
                    let decision =
                        retry.on_failure(&options.retry, unit_started.elapsed(), rng.f64());
                    let retry_in = match decision {
                        RetryDecision::RetryAfter { delay, .. } => Some(delay),
                        RetryDecision::GiveUp { .. } => None,
                    };
                    on_event(SchemaEvent::LockTimedOut {
                        attempt: attempts,
                        statement: statement.clone(),
                        blockers: blockers.clone(),
                        retry_in,
                    });
                    match decision {
                        RetryDecision::RetryAfter { delay, .. } => {
                            sleep_unless_stopped(delay, options.stop.as_ref()).await
                        }
                        RetryDecision::GiveUp { attempts } => {
                            return Err(SchemaPhaseError::LockNotAcquired {
                                statement,
                                attempts,
                                elapsed: unit_started.elapsed(),
                                blockers,
                            })
                        }
                    }
                }
            }
        }
    }
    let elapsed = started.elapsed();
    on_event(SchemaEvent::Committed { attempts, elapsed });
    Ok(SchemaPhaseOutcome { attempts, elapsed })
}

/// Sleeps `delay`, or less when a stop is requested meanwhile (checked every 100 ms).
pub(crate) async fn sleep_unless_stopped(delay: Duration, stop: Option<&StopHandle>) {
    let Some(stop) = stop else {
        return tokio::time::sleep(delay).await;
    };
    let until = tokio::time::Instant::now() + delay;
    while stop.requested().is_none() {
        let now = tokio::time::Instant::now();
        if now >= until {
            return;
        }
        tokio::time::sleep((until - now).min(Duration::from_millis(100))).await;
    }
}

/// Drops `index` if it exists and is INVALID (what a failed or cancelled CONCURRENTLY build leaves behind).
async fn clear_invalid_index(
    client: &Client,
    index: &str,
    options: &SchemaPhaseOptions,
) -> Result<bool, SchemaPhaseError> {
    let invalid = client
        .query_opt(sql::INDEX_IS_INVALID, &[&index])
        .await
        .map_err(|source| SchemaPhaseError::Connection {
            statement: sql::INDEX_IS_INVALID.into(),
            source,
        })?
        .is_some_and(|row| row.get::<_, bool>(0));
    if !invalid {
        return Ok(false);
    }
    // Three separate statements: several in one query string would run as one implicit transaction, which
    // DROP INDEX CONCURRENTLY refuses.
    let set = sql::set_lock_timeout(options.lock_timeout);
    let drop = sql::drop_index_concurrently_if_exists(index);
    let result = match client.batch_execute(&set).await {
        Ok(()) => client.batch_execute(&drop).await,
        Err(error) => Err(error),
    };
    let _ = client.batch_execute(sql::RESET_LOCK_TIMEOUT).await;
    if let Err(error) = result {
        return Err(match classify(&drop, error, options) {
            AttemptError::Fatal(error) => error,
            AttemptError::ConcurrentWaitExpired { statement } => {
                SchemaPhaseError::StatementTimedOut {
                    statement,
                    statement_timeout_ms: options.statement_timeout.as_millis(),
                }
            }
            AttemptError::LockTimeout { statement } => SchemaPhaseError::LockNotAcquired {
                statement,
                attempts: 1,
                elapsed: options.lock_timeout,
                blockers: Vec::new(),
            },
        });
    }
    Ok(true)
}

/// One try at a unit of statements, with what it needs to bound and watch them.
struct Attempt<'a> {
    client: &'a Client,
    monitor: &'a Arc<Client>,
    backend_pid: i32,
    /// The unit's statement, when it is a CONCURRENTLY one.
    concurrent: Option<&'a ConcurrentStatement>,
    options: &'a SchemaPhaseOptions,
}

impl Attempt<'_> {
    async fn run(&self, statements: &[SchemaStatement]) -> Result<(), AttemptError> {
        let options = self.options;
        let client = self.client;
        let (lock_timeout, statement_timeout) = match self.concurrent {
            // The relation lock is bounded by the watch below; the waits for older transactions by this.
            Some(_) => (options.concurrent_wait, options.concurrent_wait),
            None => (options.lock_timeout, options.statement_timeout),
        };
        // `SET LOCAL` inside the transaction; plain `SET` (reset after) when CONCURRENTLY needs no transaction. The
        // reset comes before the completion record: that statement runs with the session's own bounds.
        const RESET: &str = sql::RESET_TIMEOUTS;
        let (open, close, on_error) = if options.in_transaction {
            (
                sql::begin_with_timeouts(lock_timeout, statement_timeout),
                sql::COMMIT,
                sql::ROLLBACK,
            )
        } else {
            (
                sql::set_timeouts(lock_timeout, statement_timeout),
                "",
                RESET,
            )
        };
        let control = |statement: &str, source| {
            AttemptError::Fatal(SchemaPhaseError::Connection {
                statement: statement.to_string(),
                source,
            })
        };
        client
            .batch_execute(&open)
            .await
            .map_err(|source| control(&open, source))?;
        for statement in statements {
            let watch = self.concurrent.map(|_| {
                LockQueueWatch::start(
                    self.monitor.clone(),
                    self.backend_pid,
                    options.lock_timeout,
                    options.blocker_sample_every,
                )
            });
            let result = client.batch_execute(&statement.sql).await;
            let cancelled_for_lock = match watch {
                Some(watch) => watch.finish().await,
                None => false,
            };
            if let Err(error) = result {
                // Leave the session clean whatever happened; a failure here means the connection is gone anyway.
                let _ = client.batch_execute(on_error).await;
                let canceled = error.code() == Some(&SqlState::QUERY_CANCELED);
                return Err(match self.concurrent {
                    Some(_) if canceled && cancelled_for_lock => AttemptError::LockTimeout {
                        statement: statement.sql.clone(),
                    },
                    Some(_) if canceled => AttemptError::ConcurrentWaitExpired {
                        statement: statement.sql.clone(),
                    },
                    _ => classify(&statement.sql, error, options),
                });
            }
        }
        if !options.in_transaction {
            client
                .batch_execute(RESET)
                .await
                .map_err(|source| control(RESET, source))?;
        }
        if let Some(completion) = &options.completion_sql {
            if let Err(error) = client.batch_execute(completion).await {
                if options.in_transaction {
                    let _ = client.batch_execute(on_error).await;
                    return Err(classify(completion, error, options));
                }
                // The statement has committed: retrying the unit would run it a second time.
                return Err(AttemptError::Fatal(SchemaPhaseError::NotRecorded {
                    statement: statements
                        .first()
                        .map(|statement| statement.sql.clone())
                        .unwrap_or_default(),
                    reason: describe(&error),
                }));
            }
        }
        if close.is_empty() {
            return Ok(());
        }
        client
            .batch_execute(close)
            .await
            .map_err(|source| control(close, source))
    }

    /// A CONCURRENTLY statement ran out of `concurrent_wait`. A cancelled build leaves an INVALID index that every
    /// write keeps maintaining: drop it now if possible, else say so (the next apply drops it before building).
    async fn after_concurrent_wait(
        &self,
        statement: String,
        on_event: &mut impl FnMut(SchemaEvent),
    ) -> SchemaPhaseError {
        let leftover = match self.concurrent {
            Some(ConcurrentStatement::CreateIndex { table, index, .. }) => {
                match find_index(self.client, table, index).await {
                    Ok(Some(found)) if found.valid == Some(false) => {
                        match clear_invalid_index(self.client, &found.qualified, self.options).await {
                            Ok(_) => {
                                on_event(SchemaEvent::DroppedInvalidIndex {
                                    index: found.qualified.clone(),
                                });
                                format!("The INVALID index {} it left was dropped.", found.qualified)
                            }
                            Err(error) => format!(
                                "It left the INVALID index {}, which could not be dropped now ({error}); the next \
                                 apply drops it before building again",
                                found.qualified
                            ),
                        }
                    }
                    Ok(_) => "It left no index behind.".to_string(),
                    Err(error) => format!(
                        "Whether it left an INVALID index {index} could not be read ({error}); the next apply drops \
                         one before building again"
                    ),
                }
            }
            _ => "A REINDEX CONCURRENTLY cancelled part-way leaves INVALID copies named *_ccnew; drop them with \
                  DROP INDEX CONCURRENTLY."
                .to_string(),
        };
        SchemaPhaseError::ConcurrentWaitExpired {
            statement,
            concurrent_wait_ms: self.options.concurrent_wait.as_millis(),
            leftover,
        }
    }
}

/// Watches a backend running a CONCURRENTLY statement from a second connection and cancels it once it has been
/// queued for a relation lock for `lock_timeout`. Waits for older transactions (virtualxid/transactionid locks)
/// are left alone: nobody queues behind them.
struct LockQueueWatch {
    stop: Arc<AtomicBool>,
    cancelled: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl LockQueueWatch {
    fn start(
        monitor: Arc<Client>,
        backend_pid: i32,
        lock_timeout: Duration,
        every: Duration,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let cancelled = Arc::new(AtomicBool::new(false));
        let task = {
            let (stop, cancelled) = (stop.clone(), cancelled.clone());
            tokio::spawn(async move {
                let mut queued_since: Option<Instant> = None;
                while !stop.load(Ordering::SeqCst) {
                    // An unreadable sample cancels nothing: the statement is still bounded by concurrent_wait.
                    let queued = monitor
                        .query_one(sql::WAITS_FOR_RELATION_LOCK, &[&backend_pid])
                        .await
                        .is_ok_and(|row| row.get::<_, bool>(0));
                    queued_since = if queued {
                        queued_since.or_else(|| Some(Instant::now()))
                    } else {
                        None
                    };
                    if queued_since.is_some_and(|since| since.elapsed() >= lock_timeout)
                        && !stop.load(Ordering::SeqCst)
                    {
                        cancelled.store(true, Ordering::SeqCst);
                        let _ = monitor
                            .query_one(sql::CANCEL_BACKEND, &[&backend_pid])
                            .await;
                        return;
                    }
                    tokio::time::sleep(every).await;
                }
            })
        };
        Self {
            stop,
            cancelled,
            task,
        }
    }

    /// Stops the watch and waits for it, so that no cancel can reach a later statement (a cancel that arrives
    /// while the backend is idle is discarded by PostgreSQL). True when it cancelled the statement.
    async fn finish(self) -> bool {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
        self.cancelled.load(Ordering::SeqCst)
    }
}

fn classify(
    statement: &str,
    error: tokio_postgres::Error,
    options: &SchemaPhaseOptions,
) -> AttemptError {
    match error.code() {
        Some(code) if *code == SqlState::LOCK_NOT_AVAILABLE => AttemptError::LockTimeout {
            statement: statement.to_string(),
        },
        Some(code) if *code == SqlState::QUERY_CANCELED => {
            AttemptError::Fatal(SchemaPhaseError::StatementTimedOut {
                statement: statement.to_string(),
                statement_timeout_ms: options.statement_timeout.as_millis(),
            })
        }
        Some(code) => {
            let message = error
                .as_db_error()
                .map(|db| db.message().to_string())
                .unwrap_or_else(|| error.to_string());
            AttemptError::Fatal(SchemaPhaseError::StatementFailed {
                statement: statement.to_string(),
                code: code.code().to_string(),
                message,
            })
        }
        None => AttemptError::Fatal(SchemaPhaseError::Connection {
            statement: statement.to_string(),
            source: error,
        }),
    }
}

/// A statement that runs outside a transaction and waits for older transactions (so gets `concurrent_wait`).
#[derive(Debug, Clone)]
enum ConcurrentStatement {
    /// `CREATE INDEX CONCURRENTLY name ON table …` without IF NOT EXISTS (with it, running it again is harmless).
    CreateIndex {
        /// The statement's parse tree.
        tree: Box<protobuf::IndexStmt>,
        /// The table, as a regclass literal.
        table: String,
        /// The index name, unquoted.
        index: String,
    },
    /// `DROP INDEX CONCURRENTLY name` without IF EXISTS, as a regclass literal.
    DropIndex { index: String },
    /// Any other: REINDEX … CONCURRENTLY, DETACH PARTITION … CONCURRENTLY, the IF [NOT] EXISTS forms, an unnamed
    /// CREATE INDEX.
    Other,
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn range_var_literal(relation: &protobuf::RangeVar) -> String {
    if relation.schemaname.is_empty() {
        quote_identifier(&relation.relname)
    } else {
        format!(
            "{}.{}",
            quote_identifier(&relation.schemaname),
            quote_identifier(&relation.relname)
        )
    }
}

/// Classifies a statement by its parse tree; `None` when it is not a CONCURRENTLY statement.
fn concurrent_statement(sql: &str) -> Option<ConcurrentStatement> {
    let parsed = pg_query::parse(sql, 0).ok()?;
    let node = parsed
        .protobuf
        .stmts
        .first()?
        .stmt
        .as_ref()?
        .node
        .as_ref()?;
    match node {
        NodeEnum::IndexStmt(index) if index.concurrent => Some(
            match (&index.relation, index.idxname.is_empty() || index.if_not_exists) {
                (Some(relation), false) => ConcurrentStatement::CreateIndex {
                    tree: index.clone(),
                    table: range_var_literal(relation),
                    index: index.idxname.clone(),
                },
                _ => ConcurrentStatement::Other,
            },
        ),
        NodeEnum::DropStmt(drop) if drop.concurrent => {
            let names: Option<Vec<String>> = match drop.objects.as_slice() {
                [object] if drop.remove_type == ObjectType::ObjectIndex as i32 && !drop.missing_ok => {
                    match &object.node {
                        Some(NodeEnum::List(list)) => list
                            .items
                            .iter()
                            .map(|item| match &item.node {
                                Some(NodeEnum::String(name)) => Some(quote_identifier(&name.sval)),
                                _ => None,
                            })
                            .collect(),
                        _ => None,
                    }
                }
                _ => None,
            };
            Some(match names {
                Some(names) if !names.is_empty() => ConcurrentStatement::DropIndex {
                    index: names.join("."),
                },
                _ => ConcurrentStatement::Other,
            })
        }
        NodeEnum::ReindexStmt(reindex)
            if reindex.params.iter().any(|param| {
                matches!(&param.node, Some(NodeEnum::DefElem(option)) if option.defname == "concurrently")
            }) =>
        {
            Some(ConcurrentStatement::Other)
        }
        NodeEnum::AlterTableStmt(alter)
            if alter.cmds.iter().any(|command| {
                matches!(&command.node, Some(NodeEnum::AlterTableCmd(cmd))
                    if matches!(cmd.def.as_deref().and_then(|def| def.node.as_ref()),
                        Some(NodeEnum::PartitionCmd(partition)) if partition.concurrent))
            }) =>
        {
            Some(ConcurrentStatement::Other)
        }
        _ => None,
    }
}

/// An index found by [`sql::FIND_INDEX`].
struct FoundIndex {
    /// `None`: a relation of that name that is not an index.
    valid: Option<bool>,
    on_table: bool,
    definition: String,
    qualified: String,
}

async fn find_index(
    client: &Client,
    table: &str,
    index: &str,
) -> Result<Option<FoundIndex>, SchemaPhaseError> {
    let row = client
        .query_opt(sql::FIND_INDEX, &[&table, &index])
        .await
        .map_err(|source| SchemaPhaseError::Connection {
            statement: sql::FIND_INDEX.trim().into(),
            source,
        })?;
    Ok(row.map(|row| FoundIndex {
        valid: row.get(0),
        on_table: row.get(1),
        definition: row.get(2),
        qualified: row.get(3),
    }))
}

/// Resuming: `Some(reason)` when the statement's effect is already in the database, so that running it again
/// would fail (the index exists, or is gone) although the phase only needs recording.
async fn already_done(
    client: &Client,
    sql: &str,
    concurrent: &ConcurrentStatement,
    options: &SchemaPhaseOptions,
) -> Result<Option<String>, SchemaPhaseError> {
    match concurrent {
        ConcurrentStatement::DropIndex { index } => {
            let exists: bool = client
                .query_one(sql::RELATION_EXISTS, &[index])
                .await
                .map_err(|source| SchemaPhaseError::Connection {
                    statement: sql::RELATION_EXISTS.into(),
                    source,
                })?
                .get(0);
            Ok((!exists).then(|| format!("the index {index} is already dropped")))
        }
        ConcurrentStatement::CreateIndex { tree, table, index } => {
            let Some(found) = find_index(client, table, index).await? else {
                return Ok(None);
            };
            // Not an index, or INVALID (dropped and rebuilt by the caller): the statement runs as usual.
            if found.valid != Some(true) {
                return Ok(None);
            }
            let expected = expected_index_definition(client, tree, options).await?;
            if found.on_table && same_index_definition(&found.definition, &expected) {
                return Ok(Some(format!(
                    "the index {} already exists, valid and as the statement defines it",
                    found.qualified
                )));
            }
            Err(SchemaPhaseError::IndexDiffers {
                statement: sql.to_string(),
                index: found.qualified,
                existing: found.definition,
                expected,
            })
        }
        ConcurrentStatement::Other => Ok(None),
    }
}

/// What `pg_get_indexdef` says of the index the statement would build, without building it on the real table:
/// the same statement runs (not concurrently) on an empty temporary copy of the table's columns (`LIKE`: names,
/// types, collations) inside a transaction that is rolled back. PostgreSQL itself then resolves the defaults the
/// statement leaves out (access method, operator classes, sort order, casts in expressions and predicates).
async fn expected_index_definition(
    client: &Client,
    tree: &protobuf::IndexStmt,
    options: &SchemaPhaseOptions,
) -> Result<String, SchemaPhaseError> {
    let relation = tree.relation.clone().unwrap_or_default();
    let probe_table = format!("pg_temp.{}", quote_identifier(&relation.relname));
    let mut probe = tree.clone();
    probe.concurrent = false;
    probe.if_not_exists = false;
    probe.table_space.clear();
    // Same table name, in pg_temp: expressions that name the table by its name still resolve.
    probe.relation = Some(protobuf::RangeVar {
        schemaname: "pg_temp".into(),
        relname: relation.relname.clone(),
        inh: true,
        relpersistence: "t".into(),
        ..protobuf::RangeVar::default()
    });
    let failed = |statement: &str, message: String| SchemaPhaseError::StatementFailed {
        statement: statement.to_string(),
        code: "XX000".into(),
        message,
    };
    let create_index = NodeEnum::IndexStmt(Box::new(probe))
        .deparse(Default::default())
        .map_err(|error| failed("deparsing the index definition", error.to_string()))?;
    let steps = [
        sql::begin_with_timeouts(options.lock_timeout, options.statement_timeout),
        sql::create_probe_table(&probe_table, &range_var_literal(&relation)),
        create_index,
    ];
    let mut result = Ok(String::new());
    for step in &steps {
        if let Err(error) = client.batch_execute(step).await {
            result = Err(match classify(step, error, options) {
                AttemptError::Fatal(error) => error,
                AttemptError::LockTimeout { statement }
                | AttemptError::ConcurrentWaitExpired { statement } => failed(
                    &statement,
                    "timed out while reading the table's columns to compare the existing index with the \
                     statement's"
                        .into(),
                ),
            });
            break;
        }
    }
    if result.is_ok() {
        result = client
            .query_one(sql::PROBE_INDEX_DEFINITION, &[&probe_table])
            .await
            .map(|row| row.get(0))
            .map_err(|source| SchemaPhaseError::Connection {
                statement: sql::PROBE_INDEX_DEFINITION.into(),
                source,
            });
    }
    let _ = client.batch_execute(sql::ROLLBACK).await;
    result
}

/// Two `pg_get_indexdef` outputs describe the same index when their parse trees agree with the index's name and
/// table set aside (locations are not part of a deparsed tree).
fn same_index_definition(existing: &str, expected: &str) -> bool {
    let normalised = |definition: &str| -> Option<String> {
        let parsed = pg_query::parse(definition, 0).ok()?;
        let node = parsed
            .protobuf
            .stmts
            .first()?
            .stmt
            .as_ref()?
            .node
            .as_ref()?;
        let NodeEnum::IndexStmt(index) = node else {
            return None;
        };
        let mut index = index.clone();
        index.idxname.clear();
        index.relation = Some(protobuf::RangeVar {
            relname: "t".into(),
            inh: index.relation.as_ref().is_none_or(|relation| relation.inh),
            relpersistence: "p".into(),
            ..protobuf::RangeVar::default()
        });
        NodeEnum::IndexStmt(index).deparse(Default::default()).ok()
    };
    match (normalised(existing), normalised(expected)) {
        (Some(existing), Some(expected)) => existing == expected,
        _ => false,
    }
}
