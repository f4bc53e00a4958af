//! The incident, replayed: the postmortem's migration as it shipped, on a rebuilt `orders` table.
//!
//! The CLI's `tidegate demo` runs two acts on the same starting state — [`run_naive_migration`] and tidegate's way —
//! under the same workload, and renders them side by side.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tidegate_db::connect::ConnectionConfig;
use tidegate_run::engine::{
    self as backfill, BackfillOptions, EventSink, RunEnd, RunTarget, StopHandle,
};
use tidegate_run::events::Event;
use tidegate_run::schema_phase::{run_schema_phase, SchemaEvent, SchemaPhaseOptions};
use tidegate_run::spec::BackfillSpec;
use tokio_postgres::NoTls;

use crate::act::MigrationLog;
use crate::orders;

/// The migration exactly as the release shipped it: a schema change and a whole-table backfill in one file.
pub const POSTMORTEM_MIGRATION: &str = "\
ALTER TABLE orders ADD COLUMN order_status_v2 VARCHAR(20);
UPDATE orders SET order_status_v2 = order_status;
";

async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|error| error.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
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

/// How tidegate's act runs the migration.
#[derive(Debug, Clone, Default)]
pub struct TidegateActOptions {
    pub schema: SchemaPhaseOptions,
    pub backfill: BackfillOptions,
}

/// Act 2: the same migration the way tidegate runs it — the schema change alone, in its own short transaction
/// with lock_timeout and retries, then the data change as a batched, throttled, checkpointed backfill run.
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
        let client = connect(url).await?;
        let monitor = Arc::new(connect(url).await?);
        let schema = run_schema_phase(
            &client,
            monitor,
            &["ALTER TABLE orders ADD COLUMN order_status_v2 VARCHAR(20)".into()],
            &options.schema,
            |event| match event {
                SchemaEvent::LockTimedOut {
                    attempt, blockers, ..
                } => note(format!(
                    "schema phase: attempt {attempt} hit lock_timeout ({} blocker(s)); retrying",
                    blockers.len()
                )),
                SchemaEvent::Committed { attempts, elapsed } => note(format!(
                    "schema phase committed: ADD COLUMN in {:.0} ms ({attempts} attempt(s))",
                    elapsed.as_secs_f64() * 1000.0
                )),
                SchemaEvent::AttemptStarted { .. } | SchemaEvent::DroppedInvalidIndex { .. } => {}
            },
        )
        .await;
        schema.map_err(|error| error.to_string())?;

        let config = ConnectionConfig::from_url(url).map_err(|error| error.to_string())?;
        let spec = BackfillSpec {
            table: "orders".into(),
            set: "order_status_v2 = order_status".into(),
            predicate: None,
            key: None,
        };
        let sink: EventSink = {
            let note = note.clone();
            Arc::new(move |event: &Event| match event {
                Event::Started {
                    run_id,
                    estimated_rows,
                    ..
                } => note(format!(
                    "backfill run {run_id} starts (about {} rows)",
                    estimated_rows.unwrap_or(0)
                )),
                Event::Throttled { reason, .. } => note(format!("backfill throttled: {reason}")),
                Event::ThrottleLifted { .. } => note("backfill throttle lifted".into()),
                Event::Retry {
                    cause,
                    next_batch_size,
                    ..
                } => note(format!(
                    "batch retried ({cause}); next batch {next_batch_size} rows"
                )),
                Event::Completed { .. } => note("backfill completed".into()),
                _ => {}
            })
        };
        let outcome = backfill::run(
            &config,
            RunTarget::Spec(spec),
            options.backfill.clone(),
            sink,
            StopHandle::default(),
        )
        .await
        .map_err(|error| error.to_string())?;
        match outcome.end {
            RunEnd::Completed => {
                note(format!(
                    "{} rows backfilled in {} batches",
                    outcome.rows_done, outcome.batches
                ));
                Ok(())
            }
            RunEnd::Interrupted { reason } | RunEnd::Aborted { reason } => {
                Err(format!("backfill run {} stopped: {reason}", outcome.run_id))
            }
        }
    }
    .await;
    let log = log.lock().expect("the log lock is never poisoned").clone();
    (log, result)
}
