//! Ctrl-C during `apply`: once a stop is requested no further phase or migration starts, what committed stays
//! committed, and the next apply resumes where this one stopped.

use std::sync::Arc;

use tidegate_apply::{apply, ApplyError, ApplyEvent, ApplyOptions};
use tidegate_db::connect::ConnectionConfig;
use tidegate_testkit::TestDatabase;

#[tokio::test]
async fn a_stop_requested_during_a_phase_starts_no_further_phase_or_migration() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("0001_a.sql"),
        "CREATE TABLE a (id bigint PRIMARY KEY);\nCREATE INDEX CONCURRENTLY a_id ON a (id);\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("0002_b.sql"),
        "CREATE TABLE b (id bigint PRIMARY KEY);\n",
    )
    .unwrap();
    let config = ConnectionConfig::from_url(db.url()).unwrap();

    // The user presses Ctrl-C as phase 1 of 0001 commits.
    let options = ApplyOptions::default();
    let stop = options.stop.clone();
    let sink = Arc::new(move |event: &ApplyEvent| {
        if let ApplyEvent::PhaseDone { phase: 1, .. } = event {
            stop.request("interrupted by SIGINT");
        }
    });
    let error = apply(&config, dir.path(), options, sink).await.unwrap_err();
    assert!(
        matches!(&error, ApplyError::MigrationFailed { phase: 2, message, .. } if message.contains("SIGINT")),
        "{error}"
    );
    let client = db.connect().await;
    let tables: Vec<String> = client
        .query(
            "SELECT relname::text FROM pg_class WHERE relname IN ('a', 'a_id', 'b') ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(tables, ["a"], "phase 1 committed, nothing after it ran");

    // Stopped between migrations: the next one does not start.
    let options = ApplyOptions::default();
    let stop = options.stop.clone();
    let sink = Arc::new(move |event: &ApplyEvent| {
        if let ApplyEvent::MigrationApplied { .. } = event {
            stop.request("interrupted by SIGINT");
        }
    });
    let error = apply(&config, dir.path(), options, sink).await.unwrap_err();
    assert!(
        matches!(&error, ApplyError::Stopped { before, applied_now, .. }
            if before == "0002_b.sql" && applied_now == &["0001_a.sql".to_string()]),
        "{error}"
    );
    let b: bool = client
        .query_one("SELECT to_regclass('b') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!b);

    // Without a stop, the next apply finishes the job.
    let summary = apply(
        &config,
        dir.path(),
        ApplyOptions::default(),
        Arc::new(|_: &ApplyEvent| {}),
    )
    .await
    .unwrap();
    assert_eq!(summary.applied_now, ["0002_b.sql"]);
}

#[tokio::test]
async fn a_stop_ends_the_wait_for_the_window_and_starts_nothing() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("0001_a.sql"),
        "CREATE TABLE a (id bigint PRIMARY KEY);\n",
    )
    .unwrap();
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    // A one-minute window that opens in about two hours.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let opens = (now / 60 + 120) % (24 * 60);
    let window = format!(
        "{:02}:{:02}-{:02}:{:02}",
        opens / 60,
        opens % 60,
        (opens + 1) % (24 * 60) / 60,
        (opens + 1) % 60
    );
    let options = ApplyOptions {
        window: Some(window.parse().unwrap()),
        ..ApplyOptions::default()
    };
    let stop = options.stop.clone();
    let sink = Arc::new(move |event: &ApplyEvent| {
        if let ApplyEvent::WaitingForWindow { .. } = event {
            stop.request("interrupted by SIGINT");
        }
    });
    // Without the stop it would wait for the window, two hours away: the test would hang until nextest's timeout
    // fails it (no timed assertion needed).
    let error = apply(&config, dir.path(), options, sink).await.unwrap_err();
    assert!(
        matches!(&error, ApplyError::Stopped { before, applied_now, .. } if before == "0001_a.sql" && applied_now.is_empty()),
        "{error}"
    );
    let a: bool = db
        .connect()
        .await
        .query_one("SELECT to_regclass('a') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!a);
}
