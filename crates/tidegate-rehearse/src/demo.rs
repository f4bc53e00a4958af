//! The incident, replayed: the postmortem's migration as it shipped, on a rebuilt `orders` table.
//!
//! The CLI's `tidegate demo` runs two acts on the same starting state — [`run_naive_migration`] and tidegate's way —
//! under the same workload, and renders them side by side.

use std::time::Instant;

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
