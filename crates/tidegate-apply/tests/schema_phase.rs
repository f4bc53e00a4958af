//! The schema phase against a real PostgreSQL: lock_timeout bounds the lock queue, retries end, blockers are named.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidegate_apply::schema_phase::{
    run_schema_phase, SchemaEvent, SchemaPhaseError, SchemaPhaseOptions,
};
use tidegate_backfill::retry::RetryPolicy;
use tidegate_testkit::TestDatabase;

async fn table_with_rows(db: &TestDatabase) {
    db.connect()
        .await
        .batch_execute(
            "create table accounts (id bigserial primary key, balance bigint not null default 0); \
                        insert into accounts (balance) select g from generate_series(1, 1000) g",
        )
        .await
        .unwrap();
}

fn options(lock_timeout_ms: u64, retries: u32) -> SchemaPhaseOptions {
    SchemaPhaseOptions {
        lock_timeout: Duration::from_millis(lock_timeout_ms),
        retry: RetryPolicy {
            max_attempts: retries,
            max_elapsed: Duration::from_secs(60),
            base: Duration::from_millis(100),
            max_delay: Duration::from_millis(400),
        },
        blocker_sample_every: Duration::from_millis(25),
        ..SchemaPhaseOptions::default()
    }
}

/// Inserts every 10 ms until stopped; returns the worst insert latency in microseconds.
fn spawn_writer(
    client: tokio_postgres::Client,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(u64, u64)> {
    tokio::spawn(async move {
        let worst = AtomicU64::new(0);
        let mut writes = 0;
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            client
                .execute("insert into accounts (balance) values (1)", &[])
                .await
                .unwrap();
            worst.fetch_max(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            writes += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (worst.load(Ordering::Relaxed), writes)
    })
}

#[tokio::test]
async fn a_long_transaction_never_queues_writers_for_longer_than_lock_timeout() {
    let db = TestDatabase::create().await;
    table_with_rows(&db).await;

    // A report holds ACCESS SHARE in an open transaction, as a long analytics query would.
    let blocker = db.connect().await;
    blocker
        .batch_execute(
            "set application_name = 'nightly-report'; begin; select count(*) from accounts",
        )
        .await
        .unwrap();
    let blocker_pid: i32 = blocker
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);

    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(db.connect().await, stop.clone());

    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        blocker.batch_execute("commit").await.unwrap();
        blocker
    });

    let client = db.connect().await;
    let monitor = Arc::new(db.connect().await);
    let mut events = Vec::new();
    let outcome = run_schema_phase(
        &client,
        monitor,
        &["alter table accounts add column note text".into()],
        &options(200, 20),
        |event| events.push(event),
    )
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let (worst_micros, writes) = writer.await.unwrap();
    let _ = release.await.unwrap();

    assert!(
        outcome.attempts >= 2,
        "the ALTER should have waited for the report: {events:?}"
    );
    let timed_out: Vec<_> = events
        .iter()
        .filter_map(|event| match event {
            SchemaEvent::LockTimedOut { blockers, .. } => Some(blockers),
            _ => None,
        })
        .collect();
    assert!(!timed_out.is_empty());
    assert!(
        timed_out
            .iter()
            .any(|blockers| blockers.iter().any(|b| b.pid == blocker_pid
                && b.application_name == "nightly-report"
                && b.state == "idle in transaction")),
        "the blocker was not named: {timed_out:?}"
    );
    // The writer queued behind our waiting ALTER at most for lock_timeout (200 ms) each time; allow a generous
    // margin for a loaded machine, far below the 1.5 s it would have waited without lock_timeout.
    assert!(writes > 10);
    assert!(
        worst_micros < 1_000_000,
        "a writer waited {} ms behind the queued ALTER",
        worst_micros / 1000
    );

    let column: i64 = db
        .connect()
        .await
        .query_one("select count(*) from information_schema.columns where table_name = 'accounts' and column_name = 'note'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(column, 1, "the ALTER was applied once the blocker ended");
}

#[tokio::test]
async fn retries_end_in_an_error_that_names_the_blocker_and_change_nothing() {
    let db = TestDatabase::create().await;
    table_with_rows(&db).await;
    let blocker = db.connect().await;
    blocker
        .batch_execute(
            "set application_name = 'stuck-worker'; begin; select 1 from accounts limit 1",
        )
        .await
        .unwrap();

    let client = db.connect().await;
    let mut lock_timeouts = 0;
    let error = run_schema_phase(
        &client,
        Arc::new(db.connect().await),
        &[
            "create table audit (id bigint)".into(),
            "alter table accounts add column note text".into(),
        ],
        &options(100, 2),
        |event| {
            if matches!(event, SchemaEvent::LockTimedOut { .. }) {
                lock_timeouts += 1
            }
        },
    )
    .await
    .unwrap_err();
    assert_eq!(lock_timeouts, 3);
    let SchemaPhaseError::LockNotAcquired {
        attempts,
        ref blockers,
        ..
    } = error
    else {
        panic!("expected LockNotAcquired, got {error}")
    };
    assert_eq!(attempts, 3);
    assert!(
        blockers
            .iter()
            .any(|b| b.application_name == "stuck-worker"),
        "{blockers:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("stuck-worker") && message.contains("nothing was changed"),
        "{message}"
    );

    // All or nothing: the CREATE TABLE that preceded the blocked ALTER rolled back with it.
    let audit: Option<String> = client
        .query_one("select to_regclass('audit')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(audit, None);
    // The session is clean: no transaction left open, no timeout left set.
    let timeout: String = client
        .query_one("show lock_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(timeout, "0");
    blocker.batch_execute("commit").await.unwrap();
}

#[tokio::test]
async fn a_failing_statement_rolls_back_the_phase_and_says_why() {
    let db = TestDatabase::create().await;
    table_with_rows(&db).await;
    let client = db.connect().await;
    let error = run_schema_phase(
        &client,
        Arc::new(db.connect().await),
        &[
            "alter table accounts add column note text".into(),
            "alter table accounts drop column nope".into(),
        ],
        &options(1000, 3),
        |_| {},
    )
    .await
    .unwrap_err();
    let SchemaPhaseError::StatementFailed {
        ref statement,
        ref code,
        ..
    } = error
    else {
        panic!("{error}")
    };
    assert_eq!(statement, "alter table accounts drop column nope");
    assert_eq!(code, "42703");
    assert!(error.to_string().contains("does not exist"), "{error}");
    let note: i64 = client
        .query_one("select count(*) from information_schema.columns where table_name = 'accounts' and column_name = 'note'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        note, 0,
        "the first statement must roll back with the second"
    );
}

#[tokio::test]
async fn without_a_transaction_each_statement_commits_and_is_not_run_twice() {
    let db = TestDatabase::create().await;
    table_with_rows(&db).await;
    let blocker = db.connect().await;
    // Blocks only the second statement's table for a while.
    blocker
        .batch_execute("create table other (id int)")
        .await
        .unwrap();
    blocker
        .batch_execute("begin; lock table other in access share mode")
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        blocker.batch_execute("commit").await.unwrap();
    });
    let client = db.connect().await;
    let outcome = run_schema_phase(
        &client,
        Arc::new(db.connect().await),
        &[
            "create index concurrently accounts_balance_idx on accounts (balance)".into(),
            "alter table other add column note text".into(),
        ],
        &SchemaPhaseOptions {
            in_transaction: false,
            ..options(150, 20)
        },
        |_| {},
    )
    .await
    .unwrap();
    release.await.unwrap();
    assert!(
        outcome.attempts >= 3,
        "the second statement should have retried: {outcome:?}"
    );
    let valid: bool = client
        .query_one(
            "select indisvalid from pg_index where indexrelid = 'accounts_balance_idx'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(valid);
    let timeout: String = client
        .query_one("show lock_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        timeout, "0",
        "session settings are reset after a statement outside a transaction"
    );
}

/// Ctrl-C while the phase waits out a blocker: the wait ends and no further attempt starts; nothing was changed.
#[tokio::test]
async fn a_stop_request_ends_the_retries_at_once() {
    let db = TestDatabase::create().await;
    table_with_rows(&db).await;
    let blocker = db.connect().await;
    blocker
        .batch_execute("begin; select count(*) from accounts")
        .await
        .unwrap();

    let stop = tidegate_backfill::engine::StopHandle::default();
    let client = db.connect().await;
    let mut attempts_started = 0;
    let error = run_schema_phase(
        &client,
        Arc::new(db.connect().await),
        &["alter table accounts add column note text".into()],
        &SchemaPhaseOptions {
            stop: Some(stop.clone()),
            // Without the stop cutting the backoff short this would sleep for an hour before the next attempt: the
            // test would hang until nextest's timeout fails it (no timed assertion needed).
            retry: RetryPolicy {
                max_attempts: 1000,
                max_elapsed: Duration::from_secs(7200),
                base: Duration::from_secs(3600),
                max_delay: Duration::from_secs(3600),
            },
            ..options(100, 1000)
        },
        |event| match event {
            SchemaEvent::AttemptStarted { .. } => attempts_started += 1,
            SchemaEvent::LockTimedOut { .. } => stop.request("interrupted by SIGINT"),
            _ => {}
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, SchemaPhaseError::Stopped { reason, .. } if reason.contains("SIGINT")),
        "{error}"
    );
    assert_eq!(attempts_started, 1);
    blocker.batch_execute("rollback").await.unwrap();
    let column: i64 = client
        .query_one("select count(*) from information_schema.columns where table_name = 'accounts' and column_name = 'note'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(column, 0);
}
