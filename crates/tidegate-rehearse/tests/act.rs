//! An act against a real PostgreSQL: the naive migration under the workload.

use std::sync::Arc;
use std::time::Duration;

use tidegate_rehearse::act::{run_act, ActConfig, ActPhase};
use tidegate_rehearse::demo::{
    rebuild_orders, run_naive_migration, run_tidegate_migration, TidegateActOptions,
};
use tidegate_rehearse::orders::OrdersWorkload;
use tidegate_rehearse::report::{render_html, render_table};
use tidegate_rehearse::workload::WorkloadConfig;
use tidegate_testkit::TestDatabase;

const ROWS: u64 = 30_000;

#[tokio::test]
async fn the_naive_act_backfills_every_row_and_measures_three_phases() {
    let db = TestDatabase::create().await;
    rebuild_orders(db.url(), ROWS, 5).await.unwrap();
    let config = ActConfig {
        workload: WorkloadConfig {
            rate_per_second: 100.0,
            connections: 4,
            ..WorkloadConfig::default()
        },
        before: Duration::from_millis(1200),
        after: Duration::from_millis(2200),
    };
    let url = db.url().to_string();
    let mut phases = Vec::new();
    let act = run_act(
        "naive",
        db.url(),
        &config,
        Arc::new(OrdersWorkload::new(ROWS)),
        || run_naive_migration(&url),
        |progress| phases.push(progress.phase),
    )
    .await
    .unwrap();
    assert!(
        phases.contains(&ActPhase::Baseline) && phases.contains(&ActPhase::Recovery),
        "{phases:?}"
    );

    assert_eq!(act.migration_error, None);
    let client = db.connect().await;
    let missing: i64 = client
        .query_one(
            "select count(*) from orders where order_status_v2 is distinct from order_status",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // The workload's own updates after the backfill can differ; none of the loaded rows may be missing.
    let loaded_missing: i64 = client
        .query_one(
            "select count(*) from orders where id <= $1 and order_status_v2 is null",
            &[&(ROWS as i64)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        loaded_missing, 0,
        "the naive UPDATE left rows unfilled ({missing} differ in all)"
    );

    assert!(
        act.before.requests > 0 && act.during.requests > 0 && act.after.requests > 0,
        "{act:#?}"
    );
    assert!(act.migration_finished_s > act.migration_started_s);
    let labels: Vec<&str> = act
        .events
        .iter()
        .map(|event| event.label.as_str())
        .collect();
    assert_eq!(labels.first(), Some(&"migration starts"));
    assert_eq!(labels.last(), Some(&"migration ends"));
    assert!(
        labels.iter().any(|label| label.contains("COMMIT")),
        "{labels:?}"
    );
    assert!(act.longest_wait_ms >= act.max_ms);

    let table = render_table(std::slice::from_ref(&act));
    assert!(table.contains("naive"));
    let html = render_html("demo", std::slice::from_ref(&act));
    assert!(html.contains("<svg") && html.contains("COMMIT: locks released"));
}

#[tokio::test]
async fn the_tidegate_act_splits_schema_and_data_and_backfills_every_row() {
    let db = TestDatabase::create().await;
    rebuild_orders(db.url(), ROWS, 5).await.unwrap();
    let config = ActConfig {
        workload: WorkloadConfig {
            rate_per_second: 100.0,
            connections: 4,
            ..WorkloadConfig::default()
        },
        before: Duration::from_millis(1000),
        after: Duration::from_millis(1000),
    };
    let url = db.url().to_string();
    let act = run_act(
        "tidegate",
        db.url(),
        &config,
        Arc::new(OrdersWorkload::new(ROWS)),
        || run_tidegate_migration(&url, TidegateActOptions::default()),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(act.migration_error, None, "{act:#?}");

    let client = db.connect().await;
    let unfilled: i64 = client
        .query_one(
            "select count(*) from orders where id <= $1 and order_status_v2 is null",
            &[&(ROWS as i64)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(unfilled, 0, "the backfill left loaded rows unfilled");
    let labels: Vec<&str> = act
        .events
        .iter()
        .map(|event| event.label.as_str())
        .collect();
    let schema = labels
        .iter()
        .position(|l| l.starts_with("phase 1 committed"));
    let backfill = labels.iter().position(|l| l.starts_with("backfill run"));
    assert!(
        matches!((schema, backfill), (Some(s), Some(b)) if s < b),
        "the schema phase commits before the backfill starts: {labels:?}"
    );
    assert!(
        labels.iter().any(|l| l.contains("rows backfilled in")),
        "{labels:?}"
    );
    // The backfill ran as a recorded run, like `tidegate backfill` would.
    let runs: i64 = client
        .query_one(
            "select count(*) from tidegate.runs where status = 'completed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(runs, 1);
}
