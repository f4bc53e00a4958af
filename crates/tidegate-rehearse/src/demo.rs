//! The incident, replayed: the postmortem's migration as it shipped, on a rebuilt `orders` table.
//!
//! The CLI's `tidegate demo` runs two acts on the same starting state — [`run_naive_migration`] and tidegate's way —
//! under the same workload, and renders them side by side.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tidegate_apply::executor::ApplySink;
use tidegate_apply::{apply, ApplyEvent, ApplyOptions};
use tidegate_backfill::events::Event as BackfillEvent;
use tidegate_db::connect::ConnectionConfig;

use crate::act::MigrationLog;
use crate::orders;

/// The migration exactly as the release shipped it: a schema change and a whole-table backfill in one file.
pub const POSTMORTEM_MIGRATION: &str = "\
ALTER TABLE orders ADD COLUMN order_status_v2 VARCHAR(20);
UPDATE orders SET order_status_v2 = order_status;
";

/// Through tidegate's one connect path, so the demo's own sessions start with lock and statement bounds too.
async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    ConnectionConfig::resolve(Some(url))
        .map_err(|error| error.to_string())?
        .connect()
        .await
        .map_err(|error| error.to_string())
}

/// Drops and recreates `orders` with `rows` rows from `seed`: every act starts from the same state.
pub async fn rebuild_orders(url: &str, rows: u64, seed: u64) -> Result<(), String> {
    let client = connect(url).await?;
    client
        .batch_execute("drop table if exists orders")
        .await
        .map_err(|error| error.to_string())?;
    orders::create_orders(&client, rows, seed)
        .await
        .map_err(|error| format!("loading orders: {error}"))
}

/// The `orders` table the target already has, if any: the demo creates and drops its own, so it refuses such a
/// target.
pub async fn existing_orders(url: &str) -> Result<Option<String>, String> {
    let client = connect(url).await?;
    Ok(client
        .query_one("SELECT to_regclass('orders')::text", &[])
        .await
        .map_err(|error| error.to_string())?
        .get(0))
}

/// Drops what the demo created in the target database (`orders`); the `tidegate` schema keeps the history of the
/// backfill run, as it would for any run.
pub async fn drop_demo_objects(url: &str) -> Result<(), String> {
    let client = connect(url).await?;
    client
        .batch_execute("drop table if exists orders")
        .await
        .map_err(|error| error.to_string())
}

/// Act 1: the migration as shipped, in one transaction, as a framework that wraps each file in one would run it.
pub async fn run_naive_migration(url: &str) -> (MigrationLog, Result<(), String>) {
    let mut log = MigrationLog::default();
    let started = Instant::now();
    let client = match connect(url).await {
        Ok(client) => client,
        Err(error) => return (log, Err(error)),
    };
    let result = async {
        client.batch_execute("begin").await?;
        client
            .batch_execute("alter table orders add column order_status_v2 varchar(20)")
            .await?;
        log.note(
            started.elapsed(),
            "ALTER TABLE done: ACCESS EXCLUSIVE held until commit",
        );
        client
            .batch_execute("update orders set order_status_v2 = order_status")
            .await?;
        log.note(started.elapsed(), "whole-table UPDATE done");
        client.batch_execute("commit").await
    }
    .await
    .map_err(|error| error.to_string());
    if result.is_ok() {
        log.note(started.elapsed(), "COMMIT: locks released");
    }
    (log, result)
}

/// How tidegate's act runs the migration: `tidegate apply`'s options.
#[derive(Debug, Clone, Default)]
pub struct TidegateActOptions {
    pub apply: ApplyOptions,
}

/// Act 2: the same migration file run by `tidegate apply` — the schema change alone, in its own short
/// transaction with lock_timeout and retries, then the UPDATE as a batched, throttled, checkpointed backfill run.
pub async fn run_tidegate_migration(
    url: &str,
    options: TidegateActOptions,
) -> (MigrationLog, Result<(), String>) {
    let log = Arc::new(Mutex::new(MigrationLog::default()));
    let started = Instant::now();
    let note = {
        let log = log.clone();
        move |label: String| {
            log.lock()
                .expect("the log lock is never poisoned")
                .note(started.elapsed(), label)
        }
    };
    let result = async {
        let config = ConnectionConfig::from_url(url).map_err(|error| error.to_string())?;
        // A directory holding just the postmortem's file; a version of its own per run, so a demo repeated on
        // the same --db database is not taken for already applied.
        let dir = tempfile::tempdir()
            .map_err(|error| format!("creating a migrations directory: {error}"))?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_millis())
            .unwrap_or_default();
        std::fs::write(
            dir.path().join(format!("{stamp}_order_status_v2.sql")),
            POSTMORTEM_MIGRATION,
        )
        .map_err(|error| format!("writing the migration: {error}"))?;
        let sink: ApplySink = Arc::new(move |event: &ApplyEvent| {
            if let Some(label) = describe_apply_event(event) {
                note(label);
            }
        });
        apply(&config, dir.path(), options.apply.clone(), sink)
            .await
            .map(|_| ())
            .map_err(|error| error.to_string())
    }
    .await;
    let log = log.lock().expect("the log lock is never poisoned").clone();
    (log, result)
}

/// The timeline label of an apply event, for those worth a mark on the chart.
fn describe_apply_event(event: &ApplyEvent) -> Option<String> {
    Some(match event {
        ApplyEvent::PhaseStarted { phase, kind, .. } => format!("phase {phase} ({kind}) starts"),
        ApplyEvent::PhaseDone {
            phase, elapsed_ms, ..
        } => format!("phase {phase} committed after {elapsed_ms} ms"),
        ApplyEvent::LockTimedOut {
            attempt, blockers, ..
        } => {
            format!(
                "attempt {attempt} hit lock_timeout ({} blocker(s)); retrying",
                blockers.len()
            )
        }
        ApplyEvent::Backfill { backfill, .. } => match backfill {
            BackfillEvent::Started { run_id, .. } => format!("backfill run {run_id} starts"),
            // The engine re-reports a throttle while it recovers; the timeline marks only its onset.
            BackfillEvent::Throttled {
                recovering: Some(_),
                ..
            } => return None,
            BackfillEvent::Throttled { reason, .. } => format!("backfill throttled: {reason}"),
            BackfillEvent::ThrottleLifted { .. } => "backfill throttle lifted".to_string(),
            BackfillEvent::Completed {
                rows_done, batches, ..
            } => format!("{rows_done} rows backfilled in {batches} batches"),
            _ => return None,
        },
        ApplyEvent::MigrationApplied { duration_ms, .. } => {
            format!("migration applied in {duration_ms} ms")
        }
        _ => return None,
    })
}

/// The demo on MySQL/MariaDB (`tidegate demo --engine mariadb`): the same two acts over tidegate-db's session
/// seam. MySQL commits each DDL by itself, so "as shipped" is the ALTER, then the whole-table UPDATE as one
/// autocommit statement under the server's default REPEATABLE READ: the form the postmortem's team ran.
pub mod mysql {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use tidegate_apply::executor::ApplySink;
    use tidegate_apply::{ApplyEvent, ApplyOptions};
    use tidegate_db::driver::{Driver, Session};
    use tidegate_db::mysql::MySqlConfig;

    use super::{describe_apply_event, TidegateActOptions, POSTMORTEM_MIGRATION};
    use crate::act::MigrationLog;
    use crate::orders;

    pub const NAIVE_ALTER: &str = "ALTER TABLE orders ADD COLUMN order_status_v2 VARCHAR(20)";
    pub const NAIVE_UPDATE: &str = "UPDATE orders SET order_status_v2 = order_status";
    const DROP_ORDERS: &str = "DROP TABLE IF EXISTS orders";
    const EXISTING_ORDERS: &str = "SELECT TABLE_NAME AS name FROM information_schema.TABLES \
        WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'orders'";

    /// The driver the demo's sessions (and its workload's) come from.
    pub fn driver(url: &str) -> Result<Arc<dyn Driver>, String> {
        MySqlConfig::from_url(url)
            .map(|config| Arc::new(config) as Arc<dyn Driver>)
            .map_err(|error| error.to_string())
    }

    async fn open(url: &str) -> Result<Box<dyn Session>, String> {
        driver(url)?.open().await.map_err(|error| error.to_string())
    }

    /// Drops and recreates `orders` with `rows` rows from `seed`.
    pub async fn rebuild_orders(url: &str, rows: u64, seed: u64) -> Result<(), String> {
        let session = open(url).await?;
        session
            .batch_execute(DROP_ORDERS)
            .await
            .map_err(|error| error.to_string())?;
        orders::create_orders_mysql(session.as_ref(), rows, seed)
            .await
            .map_err(|error| format!("loading orders: {error}"))
    }

    /// The `orders` table the target database already has, if any.
    pub async fn existing_orders(url: &str) -> Result<Option<String>, String> {
        use tidegate_db::driver::SessionExt;
        let session = open(url).await?;
        let row = session
            .query_opt(EXISTING_ORDERS, &[])
            .await
            .map_err(|error| error.to_string())?;
        row.map(|row| row.get::<String>("name"))
            .transpose()
            .map_err(|error| error.to_string())
    }

    pub async fn drop_demo_objects(url: &str) -> Result<(), String> {
        open(url)
            .await?
            .batch_execute(DROP_ORDERS)
            .await
            .map_err(|error| error.to_string())
    }

    /// Act 1: the ALTER, then the whole-table UPDATE in one statement.
    pub async fn run_naive_migration(url: &str) -> (MigrationLog, Result<(), String>) {
        let mut log = MigrationLog::default();
        let started = Instant::now();
        let session = match open(url).await {
            Ok(session) => session,
            Err(error) => return (log, Err(error)),
        };
        let result = async {
            session.batch_execute(NAIVE_ALTER).await?;
            log.note(started.elapsed(), "ALTER TABLE done (committed by itself)");
            session.batch_execute(NAIVE_UPDATE).await?;
            log.note(
                started.elapsed(),
                "whole-table UPDATE committed: row locks released",
            );
            Ok::<(), tidegate_db::connect::DbError>(())
        }
        .await
        .map_err(|error| error.to_string());
        (log, result)
    }

    /// Act 2: the same file through `tidegate apply` on MySQL/MariaDB — the ALTER with `ALGORITHM=`/`LOCK=`
    /// and a short `lock_wait_timeout`, then the UPDATE as a batched, throttled, checkpointed backfill.
    pub async fn run_tidegate_migration(
        url: &str,
        options: TidegateActOptions,
    ) -> (MigrationLog, Result<(), String>) {
        let log = Arc::new(Mutex::new(MigrationLog::default()));
        let started = Instant::now();
        let note = {
            let log = log.clone();
            move |label: String| {
                log.lock()
                    .expect("the log lock is never poisoned")
                    .note(started.elapsed(), label)
            }
        };
        let result = async {
            let config = MySqlConfig::from_url(url).map_err(|error| error.to_string())?;
            let dir = tempfile::tempdir()
                .map_err(|error| format!("creating a migrations directory: {error}"))?;
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|since| since.as_millis())
                .unwrap_or_default();
            std::fs::write(
                dir.path().join(format!("{stamp}_order_status_v2.sql")),
                POSTMORTEM_MIGRATION,
            )
            .map_err(|error| format!("writing the migration: {error}"))?;
            let sink: ApplySink = Arc::new(move |event: &ApplyEvent| {
                if let Some(label) = describe_apply_event(event) {
                    note(label);
                }
            });
            let options: ApplyOptions = options.apply.clone();
            tidegate_apply::mysql::apply_mysql(&config, dir.path(), options, sink)
                .await
                .map(|_| ())
                .map_err(|error| error.to_string())
        }
        .await;
        let log = log.lock().expect("the log lock is never poisoned").clone();
        (log, result)
    }
}
