//! An act against a real PostgreSQL: the naive migration under the workload.

use std::sync::Arc;
use std::time::Duration;

use tidegate_rehearse::act::{run_act, ActConfig};
use tidegate_rehearse::demo::{rebuild_orders, run_naive_migration};
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
    let act = run_act(
        "naive",
        db.url(),
        &config,
        Arc::new(OrdersWorkload::new(ROWS)),
        || run_naive_migration(&url),
    )
    .await
    .unwrap();

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
