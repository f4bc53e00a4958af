//! The workload and the dataset against a real PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use tidegate_rehearse::measure::ErrorClass;
use tidegate_rehearse::orders::{self, OrdersWorkload, STATUS_WEIGHTS};
use tidegate_rehearse::workload::{Workload, WorkloadConfig, WorkloadError};
use tidegate_testkit::TestDatabase;

const ROWS: u64 = 20_000;

async fn orders_database() -> TestDatabase {
    let db = TestDatabase::create().await;
    orders::create_orders(&db.connect().await, ROWS, 11)
        .await
        .unwrap();
    db
}

#[tokio::test]
async fn loads_orders_with_realistic_distributions() {
    let db = orders_database().await;
    let client = db.connect().await;
    let row = client
        .query_one(
            "select count(*), min(id), max(id), count(distinct customer_id) from orders",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), ROWS as i64);
    assert_eq!(row.get::<_, i64>(1), 1);
    assert_eq!(row.get::<_, i64>(2), ROWS as i64);
    let customers: i64 = row.get(3);
    assert!(
        customers > 500 && customers < ROWS as i64 / 2,
        "customers {customers}"
    );

    for (status, weight) in STATUS_WEIGHTS {
        let count: i64 = client
            .query_one(
                "select count(*) from orders where order_status = $1",
                &[&status],
            )
            .await
            .unwrap()
            .get(0);
        let share = count as f64 / ROWS as f64 * 100.0;
        assert!(
            (share - weight as f64).abs() < 2.0,
            "{status}: {share:.1}% of rows, expected about {weight}%"
        );
    }
    // Later inserts must not collide with loaded ids.
    let next: i64 = client
        .query_one(
            "insert into orders (customer_id, order_status, amount_cents, shipping_country, created_at, updated_at) \
             values (1, 'pending', 100, 'US', now(), now()) returning id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(next, ROWS as i64 + 1);
    // The planner knows the table's size (it was analyzed).
    let estimate: f32 = client
        .query_one(
            "select reltuples from pg_class where relname = 'orders'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(estimate > ROWS as f32 * 0.9, "reltuples {estimate}");
}

#[tokio::test]
async fn every_scheduled_request_is_measured() {
    let db = orders_database().await;
    let config = WorkloadConfig {
        rate_per_second: 200.0,
        connections: 4,
        ..WorkloadConfig::default()
    };
    let workload = Workload::start(db.url(), config, Arc::new(OrdersWorkload::new(ROWS)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let report = workload.stop().await;
    let summary = report.recorder.summary();
    assert!(
        report.dispatched > 50,
        "only {} requests were scheduled",
        report.dispatched
    );
    assert_eq!(
        summary.requests, report.dispatched,
        "a scheduled request went unmeasured"
    );
    assert_eq!(summary.errors, 0, "{summary:?}");
    assert!(
        summary.p50_ms > 0.0
            && summary.p50_ms <= summary.p99_ms
            && summary.p99_ms <= summary.max_ms
    );
    // The writes really happened.
    let inserted: i64 = db
        .connect()
        .await
        .query_one(
            "select count(*) from orders where id > $1",
            &[&(ROWS as i64)],
        )
        .await
        .unwrap()
        .get(0);
    assert!(inserted > 0, "the workload's inserts did not land");
}

#[tokio::test]
async fn a_lock_shows_as_queueing_latency_and_classified_timeouts() {
    let db = orders_database().await;
    // The application's request timeout is 300 ms; a migration holds ACCESS EXCLUSIVE on orders for 1.5 s.
    let config = WorkloadConfig {
        rate_per_second: 100.0,
        connections: 2,
        request_timeout: Duration::from_millis(300),
        ..WorkloadConfig::default()
    };
    let workload = Workload::start(db.url(), config, Arc::new(OrdersWorkload::new(ROWS)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let blocker = db.connect().await;
    blocker
        .batch_execute("begin; lock table orders in access exclusive mode")
        .await
        .unwrap();
    let locked_at = workload.elapsed();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    blocker.batch_execute("commit").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = workload.stop().await;

    let during = report
        .recorder
        .summary_of_seconds(locked_at.as_secs()..locked_at.as_secs() + 2);
    let errors = report.recorder.summary().errors_by_class;
    assert!(
        errors.get(&ErrorClass::StatementTimeout).copied().unwrap_or(0) > 0,
        "requests blocked in the database past their timeout count as statement timeouts: {errors:?}"
    );
    // Two connections, 100 requests/s, each stuck for 300 ms: requests queue for a connection, and those whose
    // deadline (300 ms from their scheduled start) passes in the queue are given up, as an application would.
    // A closed-loop client would report neither: it would just send fewer requests.
    assert!(
        errors.get(&ErrorClass::QueueTimeout).copied().unwrap_or(0) > 0,
        "requests that waited past their deadline for a connection must count: {errors:?}"
    );
    assert!(
        during.max_ms >= 300.0,
        "queueing behind the lock went unmeasured: {during:?}"
    );
    assert_eq!(report.recorder.summary().requests, report.dispatched);
}

#[tokio::test]
async fn a_bad_configuration_is_refused() {
    let db = TestDatabase::create().await;
    let config = WorkloadConfig {
        rate_per_second: 0.0,
        ..WorkloadConfig::default()
    };
    let error = Workload::start(db.url(), config, Arc::new(OrdersWorkload::new(1)))
        .await
        .err()
        .unwrap();
    assert!(matches!(error, WorkloadError::BadConfig { .. }), "{error}");
    // No orders table: preparing the statements fails with the SQL named.
    let error = Workload::start(
        db.url(),
        WorkloadConfig::default(),
        Arc::new(OrdersWorkload::new(1)),
    )
    .await
    .err()
    .unwrap();
    assert!(
        error.to_string().contains("could not prepare `select id"),
        "{error}"
    );
}

#[tokio::test]
async fn rates_the_scheduler_cannot_keep_are_refused_not_panicked_on() {
    // Refused before connecting: nothing listens at this address.
    for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-300, 1e12] {
        let config = WorkloadConfig {
            rate_per_second: rate,
            ..WorkloadConfig::default()
        };
        let result = Workload::start(
            "postgresql://nobody@127.0.0.1:1/none",
            config,
            Arc::new(OrdersWorkload::new(10)),
        )
        .await;
        assert!(
            matches!(result, Err(WorkloadError::BadConfig { .. })),
            "rate {rate}: {:?}",
            result.err()
        );
    }
}
