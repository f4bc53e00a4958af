//! The apply lock dies with its session. When that happens during a backfill phase (whose batches run on the
//! engine's own connections), the first apply stops its backfill and fails clearly, and a second apply that takes
//! the lock meanwhile waits for (or refuses) the backfill still attached to the first's engine instead of
//! interleaving with it. Against a real PostgreSQL.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidegate_apply::{apply, ApplyError, ApplyEvent, ApplyOptions};
use tidegate_backfill::engine::{self, BackfillOptions, RunTarget, StopHandle};
use tidegate_db::connect::ConnectionConfig;
use tidegate_testkit::TestDatabase;
use tokio_postgres::Client;

const ROWS: i64 = 20_000;

async fn items(client: &Client) {
    client
        .batch_execute(&format!(
            "CREATE TABLE items (id bigint PRIMARY KEY, n int NOT NULL DEFAULT 0);
             INSERT INTO items (id) SELECT g FROM generate_series(1, {ROWS}) g;
             ANALYZE items;"
        ))
        .await
        .unwrap();
}

/// A migration whose UPDATE becomes a backfill (not idempotent: a row changed twice shows), and a later one.
fn migrations() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("0001_fill.sql"),
        "UPDATE items SET n = n + 1;\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("0002_later.sql"),
        "CREATE TABLE later (id int);\n",
    )
    .unwrap();
    dir
}

fn slow_backfill() -> ApplyOptions {
    ApplyOptions {
        backfill: BackfillOptions {
            max_rows_per_second: Some(2_000),
            ..BackfillOptions::default()
        },
        ..ApplyOptions::default()
    }
}

async fn apply_lock_holder(client: &Client) -> Option<i32> {
    client
        .query_opt(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND ((classid::bigint << 32) | objid::bigint) = hashtextextended('tidegate:apply', 0)",
            &[],
        )
        .await
        .unwrap()
        .map(|row| row.get(0))
}

async fn rows_not_changed_exactly_once(client: &Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM items WHERE n <> 1", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_apply_lock_stops_the_backfill_and_a_second_apply_does_not_interleave() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    items(&client).await;
    let dir = migrations();
    let config = ConnectionConfig::from_url(db.url()).unwrap();

    // One log for both applies, in the order things happened in this process.
    let log: Arc<Mutex<Vec<(char, String)>>> = Arc::default();
    let sink_for = |who: char| {
        let log = log.clone();
        Arc::new(move |event: &ApplyEvent| {
            let name = match event {
                ApplyEvent::Backfill { backfill, .. } => {
                    format!(
                        "backfill {}",
                        backfill.to_json()["event"].as_str().unwrap_or("?")
                    )
                }
                other => serde_json::to_value(other).unwrap()["event"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string(),
            };
            log.lock().unwrap().push((who, name));
        })
    };
    let first = {
        let (config, path, sink) = (config.clone(), dir.path().to_path_buf(), sink_for('A'));
        tokio::spawn(async move { apply(&config, &path, slow_backfill(), sink).await })
    };
    // Some batches in, the lock's session is terminated (as a DBA's pg_terminate_backend or a network cut would).
    while !log
        .lock()
        .unwrap()
        .iter()
        .any(|(who, name)| *who == 'A' && name == "backfill batch")
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let holder = apply_lock_holder(&client)
        .await
        .expect("the first apply holds the lock");
    client
        .execute("SELECT pg_terminate_backend($1)", &[&holder])
        .await
        .unwrap();
    // A second apply starts at once and can take the lock.
    let second = {
        let (config, path, sink) = (config.clone(), dir.path().to_path_buf(), sink_for('B'));
        tokio::spawn(async move { apply(&config, &path, ApplyOptions::default(), sink).await })
    };

    let error = first.await.unwrap().unwrap_err();
    assert!(
        matches!(&error, ApplyError::LockLost { version, phase: 1, .. } if version == "0001_fill.sql"),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.contains("apply lock") && text.contains("resumable"),
        "{text}"
    );
    let summary = second.await.unwrap().unwrap();
    assert_eq!(summary.applied_now, ["0001_fill.sql", "0002_later.sql"]);

    // Nothing of the second apply ran before the first one's backfill had stopped.
    let log = log.lock().unwrap().clone();
    let last_of_first = log
        .iter()
        .rposition(|(who, name)| *who == 'A' && name.starts_with("backfill"))
        .unwrap();
    let first_of_second = log
        .iter()
        .position(|(who, name)| *who == 'B' && name == "migration_started")
        .unwrap();
    assert!(
        last_of_first < first_of_second,
        "the second apply started a migration while the first's backfill ran: {log:?}"
    );
    // The migration completed exactly once: every row changed once, by one run that the second apply resumed.
    assert_eq!(rows_not_changed_exactly_once(&client).await, 0);
    let runs: Vec<(i64, String)> = client
        .query("SELECT id, status FROM tidegate.runs", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].1, "completed");
    let statuses: Vec<String> = client
        .query(
            "SELECT status FROM tidegate.migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(statuses, ["applied", "applied"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_refuses_to_run_a_migration_whose_backfill_is_still_attached_to_an_engine() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    items(&client).await;
    let dir = migrations();
    let config = ConnectionConfig::from_url(db.url()).unwrap();

    // An apply that stops during the backfill (Ctrl-C) leaves the migration unfinished and its run resumable.
    let options = slow_backfill();
    let stop = options.stop.clone();
    let sink = Arc::new(move |event: &ApplyEvent| {
        if matches!(
            event,
            ApplyEvent::Backfill {
                backfill: tidegate_backfill::events::Event::Batch { .. },
                ..
            }
        ) {
            stop.request("interrupted by SIGINT");
        }
    });
    apply(&config, dir.path(), options, sink).await.unwrap_err();
    let run_id: i64 = client
        .query_one("SELECT id FROM tidegate.runs", &[])
        .await
        .unwrap()
        .get(0);

    // An engine works on that run again — as the engine of an apply that lost its lock would still be.
    let engine_stop = StopHandle::default();
    let engine = {
        let (config, stop) = (config.clone(), engine_stop.clone());
        tokio::spawn(async move {
            let options = BackfillOptions {
                max_rows_per_second: Some(500),
                ..BackfillOptions::default()
            };
            engine::run(
                &config,
                RunTarget::Resume(run_id),
                options,
                Arc::new(|_| {}),
                stop,
            )
            .await
        })
    };
    loop {
        let attached: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                   AND ((classid::bigint << 32) | objid::bigint) = hashtextextended('tidegate:run:' || $1::int8::text, 0))",
                &[&run_id],
            )
            .await
            .unwrap()
            .get(0);
        let batches: i64 = client
            .query_one(
                "SELECT coalesce(sum(batches), 0)::int8 FROM tidegate.chunks WHERE run_id = $1",
                &[&run_id],
            )
            .await
            .unwrap()
            .get(0);
        if attached && batches > 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let waited = Arc::new(Mutex::new(0));
    let sink = {
        let waited = waited.clone();
        Arc::new(move |event: &ApplyEvent| {
            if let ApplyEvent::WaitingForBackfill { .. } = event {
                *waited.lock().unwrap() += 1;
            }
        })
    };
    let options = ApplyOptions {
        lock_wait: Duration::from_secs(1),
        ..ApplyOptions::default()
    };
    let error = apply(&config, dir.path(), options, sink).await.unwrap_err();
    assert!(
        matches!(&error, ApplyError::BackfillStillRunning { run_id: id, version, pids, .. }
            if *id == run_id && version == "0001_fill.sql" && !pids.is_empty()),
        "{error}"
    );
    assert!(*waited.lock().unwrap() > 0, "it waited before refusing");
    let later: bool = client
        .query_one("SELECT to_regclass('later') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!later, "no later migration ran");

    // Once that engine stops, apply finishes the migration, each row changed exactly once.
    engine_stop.request("stopped by the test");
    engine.await.unwrap().unwrap();
    let summary = apply(
        &config,
        dir.path(),
        ApplyOptions::default(),
        Arc::new(|_: &ApplyEvent| {}),
    )
    .await
    .unwrap();
    assert_eq!(summary.applied_now, ["0001_fill.sql", "0002_later.sql"]);
    assert_eq!(rows_not_changed_exactly_once(&client).await, 0);
}
