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
}

impl Default for SchemaPhaseOptions {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(600),
            retry: RetryPolicy::schema_locks(),
            in_transaction: true,
            blocker_sample_every: Duration::from_millis(100),
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
    statements: &[String],
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
    let units: Vec<&[String]> = if options.in_transaction {
        vec![statements]
    } else {
        statements.chunks(1).collect()
    };
    let mut attempts = 0;
    for unit in units {
        let unit_started = Instant::now();
        let mut retry = RetryState::default();
        loop {
            attempts += 1;
            on_event(SchemaEvent::AttemptStarted { attempt: attempts });
            watch.clear();
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
                        RetryDecision::RetryAfter { delay, .. } => tokio::time::sleep(delay).await,
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

async fn run_attempt(
    client: &Client,
    statements: &[String],
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
    for statement in statements {
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
