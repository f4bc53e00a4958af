//! Who holds the lock a statement waits for: the sessions `pg_blocking_pids` names, with what an operator needs to
//! decide what to do about them (application, state, transaction age, query).
//!
//! A statement that gave up on `lock_timeout` no longer waits, so asking afterwards finds nobody: [`BlockerWatch`]
//! samples from a second connection *while* the statement waits and keeps the last sighting.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tidegate_sql::LockLevel;
use tokio_postgres::Client;

/// A session holding (or waiting for) a lock on a table, blocking another, or with a long transaction open: the
/// one type for "who is in the way" that apply's blocker messages, plan's risk model and the backfill engine's
/// give-up message all use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LockHolder {
    pub pid: i32,
    pub application_name: String,
    pub user: String,
    /// `active`, `idle in transaction`, …
    pub state: String,
    /// Seconds since its transaction began; `None` outside a transaction.
    pub transaction_age_seconds: Option<f64>,
    /// Its current or last query, shortened to 200 characters, whitespace collapsed.
    pub query: String,
    /// The table lock it holds or waits for (`pg_locks.mode`, read with [`LockLevel::from_pg_mode`]); `None` when
    /// the lock is not the point (a long transaction, a session `pg_blocking_pids` names).
    pub mode: Option<LockLevel>,
    /// Whether the lock is held (false: waiting for it).
    pub granted: bool,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let application = if self.application_name.is_empty() {
            "no application_name"
        } else {
            &self.application_name
        };
        write!(
            f,
            "pid {} ({application}, user {}, {}, transaction open {:.1} s",
            self.pid,
            self.user,
            self.state,
            self.transaction_age_seconds.unwrap_or(0.0),
        )?;
        if let Some(mode) = self.mode {
            let verb = if self.granted { "holds" } else { "waits for" };
            write!(f, ", {verb} {mode}")?;
        }
        write!(f, "): {}", self.query)
    }
}

const BLOCKERS_OF: &str = "
select a.pid,
       coalesce(a.application_name, ''),
       coalesce(a.usename::text, ''),
       coalesce(a.state, ''),
       extract(epoch from (clock_timestamp() - a.xact_start))::float8,
       left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 200)
  from pg_stat_activity a
 where a.pid = any(pg_blocking_pids($1))
 order by a.xact_start nulls last, a.pid";

/// The sessions blocking backend `pid` right now.
pub async fn blockers_of(
    client: &Client,
    pid: i32,
) -> Result<Vec<LockHolder>, tokio_postgres::Error> {
    let rows = client.query(BLOCKERS_OF, &[&pid]).await?;
    Ok(rows
        .into_iter()
        .map(|row| LockHolder {
            pid: row.get(0),
            application_name: row.get(1),
            user: row.get(2),
            state: row.get(3),
            transaction_age_seconds: row.get(4),
            query: row.get(5),
            mode: None,
            granted: true,
        })
        .collect())
}

/// Samples the blockers of one backend in the background until dropped or stopped.
pub struct BlockerWatch {
    seen: Arc<Mutex<Vec<LockHolder>>>,
    task: tokio::task::JoinHandle<()>,
}

impl BlockerWatch {
    /// Starts sampling `watched_pid`'s blockers every `every` on `monitor` (a connection other than the watched one).
    pub fn start(monitor: Arc<Client>, watched_pid: i32, every: Duration) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                match blockers_of(&monitor, watched_pid).await {
                    Ok(blockers) if !blockers.is_empty() => {
                        *sink
                            .lock()
                            .expect("the blocker list lock is never poisoned") = blockers;
                    }
                    Ok(_) => {}
                    // The monitor connection is gone; the watched statement's own error will say why.
                    Err(_) => break,
                }
            }
        });
        Self { seen, task }
    }

    /// The blockers seen most recently (empty when the statement never had to wait).
    pub fn last_seen(&self) -> Vec<LockHolder> {
        self.seen
            .lock()
            .expect("the blocker list lock is never poisoned")
            .clone()
    }

    /// Forgets what was seen (before the next attempt).
    pub fn clear(&self) {
        self.seen
            .lock()
            .expect("the blocker list lock is never poisoned")
            .clear();
    }
}

impl Drop for BlockerWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
