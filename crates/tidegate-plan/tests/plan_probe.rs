//! The read-only probe against a real PostgreSQL: the bounded read covers exactly the pages it says, sizes of
//! partitioned tables are summed over their partitions, and missing tables are reported as missing.

use std::time::Duration;

use tidegate_db::table_stats::{self, ScanSkipped};
use tidegate_plan::probe::{probe_tables, server_facts, ProbeOptions};
use tidegate_testkit::TestDatabase;

fn options() -> ProbeOptions {
    ProbeOptions {
        sample: Duration::ZERO,
        ..ProbeOptions::default()
    }
}

#[tokio::test]
async fn the_bounded_read_covers_the_first_pages_only() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    client
        .batch_execute(
            "CREATE TABLE events (id bigint, payload text);
             INSERT INTO events SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g;
             ANALYZE events;",
        )
        .await
        .unwrap();
    let major = server_facts(&client, &options())
        .await
        .unwrap()
        .major_version;
    // The table_stats functions run inside a read-only transaction (they use savepoints).
    table_stats::begin_read_only(&client, Duration::from_secs(1), Duration::from_secs(10))
        .await
        .unwrap();
    let size = table_stats::table_size(&client, "public", "events")
        .await
        .unwrap()
        .expect("exists");
    assert!(size.heap_pages() > 20, "{size:?}");
    assert_eq!(size.reltuples(), Some(20_000));

    let partial = table_stats::timed_bounded_read(&client, &size, 10, major)
        .await
        .unwrap()
        .expect("read");
    assert_eq!(partial.pages, 10);
    assert!(!partial.whole_table);
    let on_first_pages: i64 = client
        .query_one(
            "SELECT count(*) FROM events WHERE (ctid::text::point)[0] < 10",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(partial.rows, on_first_pages as u64);
    assert!(partial.seconds > 0.0);

    let whole = table_stats::timed_bounded_read(&client, &size, 1_000_000, major)
        .await
        .unwrap()
        .expect("read");
    assert!(whole.whole_table);
    assert_eq!(whole.rows, 20_000);
    table_stats::end_read_only(&client).await.unwrap();

    // Through the probe with a small read budget: rows come from reltuples and are marked estimated.
    let small_budget = ProbeOptions {
        read_pages: 10,
        ..options()
    };
    let key = ("public".to_string(), "events".to_string());
    let (facts, notes) = probe_tables(&client, std::slice::from_ref(&key), major, &small_budget)
        .await
        .unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    let events = &facts[&key];
    assert!(events.exists);
    assert_eq!(events.rows(), 20_000);
    assert!(!events.size.rows_exact);
    assert!(events.scan_bytes_per_second.unwrap() > 0.0);
    assert_eq!(
        events.writes_per_second, None,
        "a zero sample skips the rate"
    );
}

#[tokio::test]
async fn partitioned_tables_sum_their_partitions_and_missing_tables_are_missing() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    client
        .batch_execute(
            "CREATE TABLE measurements (id bigint, at date) PARTITION BY RANGE (at);
             CREATE TABLE measurements_2025 PARTITION OF measurements
                 FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
             CREATE TABLE measurements_2026 PARTITION OF measurements
                 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
             INSERT INTO measurements SELECT g, date '2025-06-01' + (g % 400) FROM generate_series(1, 4000) g;
             ANALYZE measurements;",
        )
        .await
        .unwrap();
    let major = server_facts(&client, &options())
        .await
        .unwrap()
        .major_version;
    let parent = ("public".to_string(), "measurements".to_string());
    let missing = ("public".to_string(), "not_there".to_string());
    let (facts, notes) = probe_tables(
        &client,
        &[parent.clone(), missing.clone()],
        major,
        &options(),
    )
    .await
    .unwrap();
    let measurements = &facts[&parent];
    assert_eq!(measurements.rows(), 4_000);
    assert!(measurements.heap_bytes() > 0);
    assert_eq!(measurements.scan_bytes_per_second, None);
    assert!(notes[0].contains("partitioned"), "{notes:?}");
    assert!(!facts[&missing].exists);

    table_stats::begin_read_only(&client, Duration::from_secs(1), Duration::from_secs(10))
        .await
        .unwrap();
    let size = table_stats::table_size(&client, "public", "measurements")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        table_stats::timed_bounded_read(&client, &size, 10, major)
            .await
            .unwrap(),
        Err(ScanSkipped::NotATable)
    );
}
