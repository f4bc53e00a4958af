//! Replica lag read on the replicas themselves (`--replica`, MySQL/MariaDB: a primary cannot see its replicas'
//! lag). The engine connects to every replica before the run is created, refusing one it cannot reach or that
//! does not replicate, and the monitor reads each one every tick on its own session, reconnecting as needed. A
//! replica that cannot be read, or whose lag is NULL (replication stopped), is an unknown reading: the run waits
//! (fail closed) and says which replica and why.

use std::sync::Arc;
use std::time::Duration;

use tidegate_db::connect::DbError;
use tidegate_db::driver::{Driver, Session};

use super::BackfillError;
use crate::dialect::{Dialect, ReplicaState};
use crate::throttle::Reading;

/// One replica to watch: where it is (without its password) and how to open a session on it.
#[derive(Clone)]
pub struct Replica {
    /// The replica's URL without the password: what every message names.
    pub name: String,
    pub driver: Arc<dyn Driver>,
}

impl Replica {
    pub fn new(name: impl Into<String>, driver: impl Driver + 'static) -> Self {
        Self {
            name: name.into(),
            driver: Arc::new(driver),
        }
    }
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica").field("name", &self.name).finish()
    }
}

/// How long connecting to a replica, or reading its status, may take before the reading counts as unknown: a
/// replica that hangs must not hold up the monitor's control flags and other signals for long.
const REPLICA_READ_TIMEOUT: Duration = Duration::from_secs(2);

struct Watched {
    replica: Replica,
    session: Option<Box<dyn Session>>,
}

/// The replicas of a run, with a session on each.
pub struct ReplicaWatch {
    watched: Vec<Watched>,
}

/// Why one replica gives no reading.
fn describe(state: &ReplicaState) -> Option<String> {
    match state {
        ReplicaState::Behind(_) => None,
        ReplicaState::NotReplica => Some(
            "it is not a replica (SHOW REPLICA STATUS returned no row)".to_string(),
        ),
        ReplicaState::Stopped {
            io_running,
            sql_running,
            last_error,
        } => Some(format!(
            "replication is not running (IO thread: {}, SQL thread: {}{}), so Seconds_Behind_Master is NULL",
            if io_running.is_empty() { "?" } else { io_running },
            if sql_running.is_empty() { "?" } else { sql_running },
            if last_error.is_empty() {
                String::new()
            } else {
                format!("; last error: {last_error}")
            }
        )),
    }
}

async fn bounded<T>(
    what: &str,
    work: impl std::future::Future<Output = Result<T, DbError>>,
) -> Result<T, DbError> {
    match tokio::time::timeout(REPLICA_READ_TIMEOUT, work).await {
        Ok(result) => result,
        Err(_) => Err(DbError::other(
            what,
            format!("no answer within {} s", REPLICA_READ_TIMEOUT.as_secs_f64()),
        )),
    }
}

impl ReplicaWatch {
    /// No replicas.
    pub fn none() -> Self {
        Self {
            watched: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.watched.is_empty()
    }

    /// Connects to every replica and reads it once, before anything changes: a replica that cannot be reached
    /// is a database error, one that is no replica or that this family does not read is bad input. A replica
    /// that is a replica but stopped is accepted: the run starts waiting on it.
    pub async fn connect(d: &dyn Dialect, replicas: &[Replica]) -> Result<Self, BackfillError> {
        if !replicas.is_empty() && !d.reads_lag_on_replicas() {
            return Err(BackfillError::Input(
                "--replica is for MySQL/MariaDB, whose primary cannot see its replicas' lag; a PostgreSQL primary \
                 reports it in pg_stat_replication, which tidegate reads already: leave --replica out"
                    .into(),
            ));
        }
        let mut watched = Vec::new();
        for replica in replicas {
            let context = format!(
                "connecting to the replica {} (--replica; check the URL and that the replica is up, or leave it \
                 out)",
                replica.name
            );
            let session = bounded(&context, replica.driver.open())
                .await
                .map_err(|e| BackfillError::Database(e.context(context.clone())))?;
            if session.family() != d.family() {
                return Err(BackfillError::Input(format!(
                    "--replica {} is a {:?} server, the primary a {:?} one",
                    replica.name,
                    session.family(),
                    d.family()
                )));
            }
            let state = bounded("reading the replica's status", d.replica_state(session.as_ref()))
                .await
                .map_err(|e| {
                    if e.is_connection_lost() {
                        BackfillError::Database(e.context(context.clone()))
                    } else {
                        BackfillError::Input(format!(
                            "--replica {}: cannot read its replication status ({}); the role needs REPLICATION \
                             CLIENT (MySQL) or SLAVE MONITOR (MariaDB 10.5+) on the replica",
                            replica.name, e.message
                        ))
                    }
                })?;
            if state == ReplicaState::NotReplica {
                return Err(BackfillError::Input(format!(
                    "--replica {}: {}; point --replica at a replica of the primary",
                    replica.name,
                    describe(&state).unwrap_or_default()
                )));
            }
            watched.push(Watched {
                replica: replica.clone(),
                session: Some(session),
            });
        }
        Ok(Self { watched })
    }

    /// The largest lag over every replica, or why one could not be read (the first such replica names it).
    pub async fn read(&mut self, d: &dyn Dialect) -> Reading<Option<Duration>> {
        let mut largest: Option<Duration> = None;
        let mut unknown: Vec<String> = Vec::new();
        for w in &mut self.watched {
            if w.session.is_none() {
                match bounded("connecting", w.replica.driver.open()).await {
                    Ok(session) => w.session = Some(session),
                    Err(e) => {
                        unknown.push(format!("{}: unreachable ({})", w.replica.name, e.message));
                        continue;
                    }
                }
            }
            let Some(session) = w.session.as_deref() else {
                continue;
            };
            match bounded("reading the status", d.replica_state(session)).await {
                Ok(state) => match (&state, describe(&state)) {
                    (ReplicaState::Behind(lag), _) => {
                        largest = Some(largest.map_or(*lag, |l| l.max(*lag)));
                    }
                    (_, why) => {
                        unknown.push(format!("{}: {}", w.replica.name, why.unwrap_or_default()))
                    }
                },
                Err(e) => {
                    // A lost or hung session is opened afresh at the next reading.
                    if e.is_connection_lost() || e.sqlstate.is_none() {
                        w.session = None;
                    }
                    unknown.push(format!("{}: {}", w.replica.name, e.message));
                }
            }
        }
        if unknown.is_empty() {
            Reading::Value(largest)
        } else {
            Reading::Unknown(unknown.join("; "))
        }
    }
}

/// The primary's reading of its replicas joined with the replicas' own: unknown when either is, else the
/// largest lag.
pub(super) fn merge(
    primary: Reading<Option<Duration>>,
    replicas: Reading<Option<Duration>>,
) -> Reading<Option<Duration>> {
    match (primary, replicas) {
        (Reading::Unknown(a), Reading::Unknown(b)) => Reading::Unknown(format!("{a}; {b}")),
        (Reading::Unknown(why), _) | (_, Reading::Unknown(why)) => Reading::Unknown(why),
        (Reading::Value(a), Reading::Value(b)) => Reading::Value(match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }),
        (Reading::Value(v), Reading::NotWatched) | (Reading::NotWatched, Reading::Value(v)) => {
            Reading::Value(v)
        }
        (Reading::NotWatched, Reading::NotWatched) => Reading::NotWatched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_replica_wins_and_lags_take_the_largest() {
        let s = Duration::from_secs;
        assert_eq!(
            merge(Reading::Value(None), Reading::Value(Some(s(3)))),
            Reading::Value(Some(s(3)))
        );
        assert_eq!(
            merge(Reading::Value(Some(s(5))), Reading::Value(Some(s(3)))),
            Reading::Value(Some(s(5)))
        );
        assert_eq!(
            merge(
                Reading::Value(Some(s(5))),
                Reading::Unknown("stopped".into())
            ),
            Reading::Unknown("stopped".into())
        );
        assert_eq!(
            merge(Reading::Value(None), Reading::Value(None)),
            Reading::Value(None)
        );
    }
}
