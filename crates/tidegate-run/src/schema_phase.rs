//! Runs a migration's schema statements without ever queueing production behind a lock.
//!
//! Every attempt runs with `lock_timeout` (so no foreground query waits behind our queued lock request for longer
//! than that) and `statement_timeout`. An attempt that gives up on its lock (SQLSTATE 55P03) rolls back, reports who
//! held the lock, waits per its [`RetryPolicy`] and tries again; when the retries are used up the phase fails
//! with the blockers named. It never waits without a lock_timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tidegate_db::blockers::{Blocker, BlockerWatch};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::engine::StopHandle;
use crate::retry::{RetryDecision, RetryPolicy, RetryState};

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
        blockers: Vec<Blocker>,
        retry_in: Option<Duration>,
    },
    /// A failed concurrent build had left this index INVALID; it was dropped before the build runs again.
    DroppedInvalidIndex {
        index: String,
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
        blockers: Vec<Blocker>,
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
    #[error("stopped ({reason}) before `{statement}` ran; nothing of this phase was changed")]
    Stopped { statement: String, reason: String },
}

fn blockers_text(blockers: &[Blocker]) -> String {
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
    LockTimeout { statement: String },
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
        .query_one("select pg_backend_pid()", &[])
        .await
        .map_err(|source| SchemaPhaseError::Connection {
            statement: "select pg_backend_pid()".into(),
            source,
        })?
        .get(0);
    let watch = BlockerWatch::start(monitor, backend_pid, options.blocker_sample_every);
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
                for statement in unit {
                    if let Some(index) = &statement.invalid_index_to_clear {
                        if clear_invalid_index(client, index, options).await? {
                            on_event(SchemaEvent::DroppedInvalidIndex {
                                index: index.clone(),
                            });
                        }
                    }
                }
            }
            match run_attempt(client, unit, options).await {
                Ok(()) => break,
                Err(AttemptError::Fatal(error)) => return Err(error),
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
    const IS_INVALID: &str =
        "select not i.indisvalid from pg_index i where i.indexrelid = to_regclass($1)";
    let invalid = client
        .query_opt(IS_INVALID, &[&index])
        .await
        .map_err(|source| SchemaPhaseError::Connection {
            statement: IS_INVALID.into(),
            source,
        })?
        .is_some_and(|row| row.get::<_, bool>(0));
    if !invalid {
        return Ok(false);
    }
    // Three separate statements: several in one query string would run as one implicit transaction, which
    // DROP INDEX CONCURRENTLY refuses.
    let set = format!(
        "set lock_timeout = '{}ms'",
        options.lock_timeout.as_millis().max(1)
    );
    let drop = format!("drop index concurrently if exists {index}");
    let result = match client.batch_execute(&set).await {
        Ok(()) => client.batch_execute(&drop).await,
        Err(error) => Err(error),
    };
    let _ = client.batch_execute("reset lock_timeout").await;
    if let Err(error) = result {
        return Err(match classify(&drop, error, options) {
            AttemptError::Fatal(error) => error,
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

async fn run_attempt(
    client: &Client,
    statements: &[SchemaStatement],
    options: &SchemaPhaseOptions,
) -> Result<(), AttemptError> {
    let timeouts = format!(
        "lock_timeout = '{}ms', statement_timeout = '{}ms'",
        options.lock_timeout.as_millis().max(1),
        options.statement_timeout.as_millis().max(1)
    );
    // `SET LOCAL` inside the transaction; plain `SET` (reset after) when CONCURRENTLY needs no transaction.
    let (open, close, on_error) = if options.in_transaction {
        (
            format!(
                "begin; set local {}",
                timeouts.replace(", ", "; set local ")
            ),
            "commit",
            "rollback",
        )
    } else {
        (
            format!("set {}", timeouts.replace(", ", "; set ")),
            "reset lock_timeout; reset statement_timeout",
            "",
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
    let completion = options.completion_sql.iter().map(String::as_str);
    for statement in statements
        .iter()
        .map(|statement| statement.sql.as_str())
        .chain(completion)
    {
        if let Err(error) = client.batch_execute(statement).await {
            // Leave the session clean whatever happened; a failure here means the connection is gone anyway.
            if !on_error.is_empty() {
                let _ = client.batch_execute(on_error).await;
            } else {
                let _ = client
                    .batch_execute("reset lock_timeout; reset statement_timeout")
                    .await;
            }
            return Err(classify(statement, error, options));
        }
    }
    client
        .batch_execute(close)
        .await
        .map_err(|source| control(close, source))
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
