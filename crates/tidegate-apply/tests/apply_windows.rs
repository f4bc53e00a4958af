//! The windows an apply could fall through, closed, against a real PostgreSQL:
//! - a CONCURRENTLY statement that committed before its phase was recorded is recognised on resume;
//! - CONCURRENTLY statements wait for older transactions up to `concurrent_wait`, while their table lock request
//!   stays bounded by `lock_timeout`;
//! - every session tidegate opens starts with a lock_timeout and a statement_timeout.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidegate_apply::schema_phase::{
    run_schema_phase, SchemaEvent, SchemaPhaseError, SchemaPhaseOptions, SchemaStatement,
};
use tidegate_apply::{apply, ApplyError, ApplyEvent, ApplyOptions};
use tidegate_backfill::retry::RetryPolicy;
use tidegate_db::connect::ConnectionConfig;
use tidegate_testkit::TestDatabase;
use tokio_postgres::Client;

async fn table_t(client: &Client) {
    client
        .batch_execute(
            "CREATE TABLE t (id bigint PRIMARY KEY, a int, b int, status text, email text);
             INSERT INTO t SELECT g, g % 97, g % 13, CASE WHEN g % 3 = 0 THEN 'open' ELSE 'closed' END,
                                  'User' || g || '@Example.com'
               FROM generate_series(1, 5000) g;
             CREATE TABLE other (x int); INSERT INTO other VALUES (1);",
        )
        .await
        .unwrap();
}

/// A session holding a snapshot older than anything started after it, as an idle-in-transaction report would.
async fn old_snapshot(db: &TestDatabase) -> Client {
    let session = db.connect().await;
    session
        .batch_execute(
            "SET application_name = 'old-snapshot'; BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT * FROM other",
        )
        .await
        .unwrap();
    session
}

/// Waits until a backend running `query_prefix` waits for another transaction to end (not for a table lock).
async fn wait_until_waiting_for_older_transactions(observer: &Client, query_prefix: &str) {
    loop {
        let waiting: bool = observer
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query ILIKE $1 || '%' \
                   AND wait_event_type = 'Lock' AND wait_event IN ('virtualxid', 'transactionid'))",
                &[&query_prefix],
            )
            .await
            .unwrap()
            .get(0);
        if waiting {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn index_oid(client: &Client, name: &str) -> Option<u32> {
    client
        .query_one("SELECT to_regclass($1)::oid", &[&name])
        .await
        .unwrap()
        .get(0)
}

async fn index_valid(client: &Client, name: &str) -> Option<bool> {
    client
        .query_opt(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)",
            &[&name],
        )
        .await
        .unwrap()
        .map(|row| row.get(0))
}

fn phase_options(
    lock_timeout_ms: u64,
    statement_timeout_ms: u64,
    concurrent_wait_ms: u64,
) -> SchemaPhaseOptions {
    SchemaPhaseOptions {
        lock_timeout: Duration::from_millis(lock_timeout_ms),
        statement_timeout: Duration::from_millis(statement_timeout_ms),
        concurrent_wait: Duration::from_millis(concurrent_wait_ms),
        retry: RetryPolicy {
            max_attempts: 1,
            max_elapsed: Duration::from_secs(60),
            base: Duration::from_millis(50),
            max_delay: Duration::from_millis(100),
        },
        in_transaction: false,
        blocker_sample_every: Duration::from_millis(25),
        ..SchemaPhaseOptions::default()
    }
}

fn statement(sql: &str, index: Option<&str>) -> SchemaStatement {
    SchemaStatement {
        sql: sql.into(),
        invalid_index_to_clear: index.map(|name| format!("\"{name}\"")),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// (b) --concurrent-wait

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_build_waits_for_an_old_snapshot_past_statement_timeout_within_concurrent_wait(
) {
    let db = TestDatabase::create().await;
    let setup = db.connect().await;
    table_t(&setup).await;
    let snapshot = old_snapshot(&db).await;

    let client = db.connect().await;
    let monitor = Arc::new(db.connect().await);
    // statement_timeout 300 ms and lock_timeout 200 ms: either would end the build while it waits for the
    // old snapshot; concurrent_wait (60 s) is its bound instead.
    let build = tokio::spawn(async move {
        let options = phase_options(200, 300, 60_000);
        run_schema_phase(
            &client,
            monitor,
            &[statement(
                "CREATE INDEX CONCURRENTLY t_a ON t (a)",
                Some("t_a"),
            )],
            &options,
            |_| {},
        )
        .await
    });
    wait_until_waiting_for_older_transactions(&setup, "CREATE INDEX CONCURRENTLY").await;
    // Well past both timeouts, the build still waits.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !build.is_finished(),
        "the build gave up while waiting for the old snapshot"
    );
    snapshot.batch_execute("COMMIT").await.unwrap();
    build
        .await
        .unwrap()
        .expect("the build finishes once the old snapshot is gone");
    assert_eq!(index_valid(&setup, "t_a").await, Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_build_whose_wait_expires_fails_clearly_and_leaves_no_invalid_index() {
    let db = TestDatabase::create().await;
    let setup = db.connect().await;
    table_t(&setup).await;
    let _snapshot = old_snapshot(&db).await;

    let client = db.connect().await;
    let monitor = Arc::new(db.connect().await);
    let events = Mutex::new(Vec::new());
    let error = run_schema_phase(
        &client,
        monitor,
        &[statement(
            "CREATE INDEX CONCURRENTLY t_a ON t (a)",
            Some("t_a"),
        )],
        &phase_options(200, 60_000, 1_000),
        |event| events.lock().unwrap().push(event),
    )
    .await
    .unwrap_err();
    let SchemaPhaseError::ConcurrentWaitExpired { leftover, .. } = &error else {
        panic!("expected the concurrent wait to expire, got {error}");
    };
    assert!(error.to_string().contains("--concurrent-wait"), "{error}");
    assert!(leftover.contains("was dropped"), "{leftover}");
    assert!(events.lock().unwrap().iter().any(
        |event| matches!(event, SchemaEvent::DroppedInvalidIndex { index } if index.contains("t_a"))
    ));
    assert_eq!(
        index_oid(&setup, "t_a").await,
        None,
        "no INVALID index is left behind"
    );
    // The session is usable and back to its own settings (this test connection started with the server's).
    assert_eq!(show(&client, "lock_timeout").await, "0");
    assert_eq!(show(&client, "statement_timeout").await, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_lock_request_of_a_concurrent_build_is_still_bounded_by_lock_timeout() {
    let db = TestDatabase::create().await;
    let setup = db.connect().await;
    table_t(&setup).await;
    // SHARE conflicts with the build's SHARE UPDATE EXCLUSIVE: the build queues for the table lock itself.
    let holder = db.connect().await;
    holder
        .batch_execute("SET application_name = 'share-holder'; BEGIN; LOCK TABLE t IN SHARE MODE")
        .await
        .unwrap();
    let holder_pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);

    let client = db.connect().await;
    let monitor = Arc::new(db.connect().await);
    let timed_out = Mutex::new(0);
    let error = run_schema_phase(
        &client,
        monitor,
        &[statement(
            "CREATE INDEX CONCURRENTLY t_a ON t (a)",
            Some("t_a"),
        )],
        // concurrent_wait is an hour: only the lock watch can end this.
        &phase_options(300, 60_000, 3_600_000),
        |event| {
            if let SchemaEvent::LockTimedOut { .. } = event {
                *timed_out.lock().unwrap() += 1;
            }
        },
    )
    .await
    .unwrap_err();
    let SchemaPhaseError::LockNotAcquired {
        blockers, attempts, ..
    } = &error
    else {
        panic!("expected the lock request to time out, got {error}");
    };
    assert_eq!(*attempts, 2, "one retry");
    assert_eq!(*timed_out.lock().unwrap(), 2);
    assert!(
        blockers.iter().any(|blocker| blocker.pid == holder_pid),
        "the SHARE holder is named: {error}"
    );
    assert_eq!(
        index_oid(&setup, "t_a").await,
        None,
        "cancelled before it created anything"
    );

    // Once the holder is gone the same statement builds, and the connection was left clean by the cancels.
    holder.batch_execute("COMMIT").await.unwrap();
    run_schema_phase(
        &client,
        Arc::new(db.connect().await),
        &[statement(
            "CREATE INDEX CONCURRENTLY t_a ON t (a)",
            Some("t_a"),
        )],
        &phase_options(300, 60_000, 3_600_000),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(index_valid(&setup, "t_a").await, Some(true));
}

// ---------------------------------------------------------------------------------------------------------------
// (a) a CONCURRENTLY statement committed before its phase was recorded

/// Runs `apply` on `dir` so that its CONCURRENTLY statement commits and recording the phase then fails, as a crash
/// between the two would leave it: the build is held back by an old snapshot until another session has locked
/// the migration's record, so the record's UPDATE runs into the session's own lock_timeout.
async fn apply_crashing_after_the_statement(
    db: &TestDatabase,
    dir: &std::path::Path,
    version: &str,
) {
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let observer = db.connect().await;
    let snapshot = old_snapshot(db).await;
    let dir_owned = dir.to_path_buf();
    let run = tokio::spawn(async move {
        apply(
            &config,
            &dir_owned,
            ApplyOptions::default(),
            Arc::new(|_: &ApplyEvent| {}),
        )
        .await
    });
    wait_until_waiting_for_older_transactions(&observer, "CREATE INDEX CONCURRENTLY").await;
    let record_lock = db.connect().await;
    record_lock
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM tidegate.migrations WHERE version = '{version}' FOR UPDATE"
        ))
        .await
        .unwrap();
    snapshot.batch_execute("COMMIT").await.unwrap();
    let error = run.await.unwrap().unwrap_err();
    assert!(
        matches!(&error, ApplyError::MigrationFailed { phase: 1, message, .. } if message.contains("55P03")),
        "recording the phase timed out on the held row lock: {error}"
    );
    record_lock.batch_execute("ROLLBACK").await.unwrap();
    let phases_done: i32 = observer
        .query_one(
            "SELECT phases_done FROM tidegate.migrations WHERE version = $1",
            &[&version],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        phases_done, 0,
        "the statement committed, its phase is unrecorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_built_before_a_crash_is_recorded_on_resume_not_built_again() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    table_t(&client).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("0001_index.sql"),
        "CREATE INDEX CONCURRENTLY t_status_open ON t (lower(email)) WHERE status = 'open';\n",
    )
    .unwrap();
    apply_crashing_after_the_statement(&db, dir.path(), "0001_index.sql").await;
    let built = index_oid(&client, "t_status_open")
        .await
        .expect("the build committed");
    assert_eq!(index_valid(&client, "t_status_open").await, Some(true));

    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let events = events.clone();
        Arc::new(move |event: &ApplyEvent| events.lock().unwrap().push(event.clone()))
    };
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let summary = apply(&config, dir.path(), ApplyOptions::default(), sink)
        .await
        .unwrap();
    assert_eq!(summary.applied_now, ["0001_index.sql"]);
    assert_eq!(
        index_oid(&client, "t_status_open").await,
        Some(built),
        "not built again"
    );
    assert!(events
        .lock()
        .unwrap()
        .iter()
        .any(|event| matches!(event, ApplyEvent::StatementAlreadyDone { phase: 1, .. })));
    let (status, phases_done): (String, i32) = {
        let row = client
            .query_one(
                "SELECT status, phases_done FROM tidegate.migrations WHERE version = '0001_index.sql'",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!((status.as_str(), phases_done), ("applied", 1));
    let journaled: i64 = client
        .query_one(
            "SELECT count(*) FROM tidegate.journal WHERE migration_version = '0001_index.sql' \
               AND event = 'statement_already_done'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(journaled, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_of_that_name_with_another_definition_is_a_clear_error_and_nothing_is_dropped() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    table_t(&client).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("0001_index.sql"),
        "CREATE INDEX CONCURRENTLY t_b ON t (b);\n",
    )
    .unwrap();
    apply_crashing_after_the_statement(&db, dir.path(), "0001_index.sql").await;
    // Meanwhile someone replaced it by an index of the same name on another column.
    client
        .batch_execute("DROP INDEX t_b; CREATE INDEX t_b ON t (a)")
        .await
        .unwrap();
    let theirs = index_oid(&client, "t_b").await.unwrap();

    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let error = apply(
        &config,
        dir.path(),
        ApplyOptions::default(),
        Arc::new(|_: &ApplyEvent| {}),
    )
    .await
    .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("already exists with another definition")
            && text.contains("Nothing was dropped"),
        "{text}"
    );
    assert!(
        text.contains("(a)") && text.contains("(b)"),
        "both definitions shown: {text}"
    );
    assert_eq!(
        index_oid(&client, "t_b").await,
        Some(theirs),
        "nothing dropped"
    );
}

/// The comparison is PostgreSQL's own: defaults the statement leaves out (access method, sort order, casts) and
/// the way it spells expressions do not make an index look different, and a real difference does.
#[tokio::test]
async fn resuming_compares_definitions_as_postgresql_resolves_them() {
    let db = TestDatabase::create().await;
    let setup = db.connect().await;
    table_t(&setup).await;
    setup
        .batch_execute(
            "CREATE SCHEMA app; CREATE TABLE app.u (id int, name text collate \"C\", n numeric)",
        )
        .await
        .unwrap();
    let client = db.connect().await;
    let resuming = SchemaPhaseOptions {
        resuming: true,
        ..phase_options(1000, 60_000, 60_000)
    };
    let same = [
        ("i1", "t (a)"),
        ("i2", "t USING btree (a DESC NULLS LAST, b)"),
        ("i3", "t (lower(email)) WHERE status = 'open'"),
        ("i4", "t (a) INCLUDE (b) WHERE a > 10 AND b IS NOT NULL"),
        ("i5", "t USING hash (status)"),
        ("i6", "app.u (name, (n + 1))"),
    ];
    for (name, rest) in same {
        setup
            .batch_execute(&format!("CREATE INDEX {name} ON {rest}"))
            .await
            .unwrap();
        let oid = index_oid(
            &setup,
            if rest.starts_with("app.") {
                "app.i6"
            } else {
                name
            },
        )
        .await;
        let events = Mutex::new(Vec::new());
        run_schema_phase(
            &client,
            Arc::new(db.connect().await),
            &[statement(
                &format!("CREATE INDEX CONCURRENTLY {name} ON {rest}"),
                Some(name),
            )],
            &resuming,
            |event| events.lock().unwrap().push(event),
        )
        .await
        .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert!(
            events
                .lock()
                .unwrap()
                .iter()
                .any(|event| matches!(event, SchemaEvent::AlreadyDone { .. })),
            "{name} recognised as already built"
        );
        assert_eq!(
            index_oid(
                &setup,
                if rest.starts_with("app.") {
                    "app.i6"
                } else {
                    name
                }
            )
            .await,
            oid,
            "{name} not rebuilt"
        );
    }
    // A UNIQUE, a different predicate, another column order: each a different index.
    let different = [
        (
            "d1",
            "t (a)",
            "CREATE UNIQUE INDEX CONCURRENTLY d1 ON t (id)",
        ),
        (
            "d2",
            "t (a) WHERE status = 'closed'",
            "CREATE INDEX CONCURRENTLY d2 ON t (a) WHERE status = 'open'",
        ),
        ("d3", "t (a, b)", "CREATE INDEX CONCURRENTLY d3 ON t (b, a)"),
    ];
    for (name, existing, statement_sql) in different {
        setup
            .batch_execute(&format!("CREATE INDEX {name} ON {existing}"))
            .await
            .unwrap();
        let error = run_schema_phase(
            &client,
            Arc::new(db.connect().await),
            &[statement(statement_sql, Some(name))],
            &resuming,
            |_| {},
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error, SchemaPhaseError::IndexDiffers { .. }),
            "{name}: {error}"
        );
        assert!(index_valid(&setup, name).await == Some(true), "{name} kept");
    }
    // The probe left nothing behind in the session.
    let temp_tables: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relpersistence = 't'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(temp_tables, 0);
}

#[tokio::test]
async fn an_index_dropped_concurrently_before_a_crash_does_not_fail_the_resume() {
    let db = TestDatabase::create().await;
    let setup = db.connect().await;
    table_t(&setup).await;
    let client = db.connect().await;
    let drop = [statement("DROP INDEX CONCURRENTLY t_gone", None)];

    // First run: psql's semantics, the missing index is an error.
    let error = run_schema_phase(
        &client,
        Arc::new(db.connect().await),
        &drop,
        &phase_options(1000, 60_000, 60_000),
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, SchemaPhaseError::StatementFailed { code, .. } if code == "42704"),
        "{error}"
    );

    // Resuming: the drop committed before the crash; recorded, not failed.
    setup
        .batch_execute("CREATE TABLE done (n int); INSERT INTO done VALUES (0)")
        .await
        .unwrap();
    let events = Mutex::new(Vec::new());
    run_schema_phase(
        &client,
        Arc::new(db.connect().await),
        &drop,
        &SchemaPhaseOptions {
            resuming: true,
            completion_sql: Some("UPDATE done SET n = n + 1".into()),
            ..phase_options(1000, 60_000, 60_000)
        },
        |event| events.lock().unwrap().push(event),
    )
    .await
    .unwrap();
    assert!(events
        .lock()
        .unwrap()
        .iter()
        .any(|event| matches!(event, SchemaEvent::AlreadyDone { .. })));
    let recorded: i32 = setup
        .query_one("SELECT n FROM done", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, 1, "the phase is recorded");

    // Resuming while the index still exists: it is dropped.
    setup
        .batch_execute("CREATE INDEX t_gone ON t (a)")
        .await
        .unwrap();
    run_schema_phase(
        &client,
        Arc::new(db.connect().await),
        &drop,
        &SchemaPhaseOptions {
            resuming: true,
            ..phase_options(1000, 60_000, 60_000)
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(index_oid(&setup, "t_gone").await, None);
}

// ---------------------------------------------------------------------------------------------------------------
// (d) every session starts bounded

fn with_options(url: &str, options: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options={options}")
}

async fn show(client: &Client, setting: &str) -> String {
    client
        .query_one(&format!("SHOW {setting}"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn every_session_tidegate_opens_starts_with_lock_and_statement_timeouts() {
    let db = TestDatabase::create().await;
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let client = config.connect().await.unwrap();
    assert_eq!(show(&client, "lock_timeout").await, "5s");
    assert_eq!(show(&client, "statement_timeout").await, "5min");
    // A statement's own SET is undone by RESET back to the session's bound, not to "no limit".
    client
        .batch_execute("SET lock_timeout = '100ms'; RESET lock_timeout")
        .await
        .unwrap();
    assert_eq!(show(&client, "lock_timeout").await, "5s");
    // Copies made for other databases and applications keep them (the engine's workers use those).
    let copy = config
        .with_application_name("tidegate-worker")
        .connect()
        .await
        .unwrap();
    assert_eq!(show(&copy, "statement_timeout").await, "5min");

    // The user's options stay, and their value of the same setting wins.
    let url = with_options(
        db.url(),
        "-c%20lock_timeout%3D250ms%20-c%20search_path%3Dapp,public",
    );
    let client = ConnectionConfig::from_url(&url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert_eq!(show(&client, "lock_timeout").await, "250ms");
    assert_eq!(show(&client, "statement_timeout").await, "5min");
    assert_eq!(show(&client, "search_path").await, "app,public");
}

#[tokio::test]
async fn apply_fails_fast_on_a_locked_history_table_instead_of_hanging() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("0001_a.sql"), "CREATE TABLE a (id int);\n").unwrap();
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let quiet = || Arc::new(|_: &ApplyEvent| {});
    apply(&config, dir.path(), ApplyOptions::default(), quiet())
        .await
        .unwrap();
    std::fs::write(dir.path().join("0002_b.sql"), "CREATE TABLE b (id int);\n").unwrap();
    let holder = db.connect().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE tidegate.migrations IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let error = apply(&config, dir.path(), ApplyOptions::default(), quiet())
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("SQLSTATE 55P03"),
        "reading the history ran into the session's lock_timeout: {error}"
    );
    holder.batch_execute("ROLLBACK").await.unwrap();
    let summary = apply(&config, dir.path(), ApplyOptions::default(), quiet())
        .await
        .unwrap();
    assert_eq!(summary.applied_now, ["0002_b.sql"]);
}
