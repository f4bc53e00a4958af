//! The backfill engine on MariaDB (a throwaway server from the machine's binaries, through the test kit): every row
//! changed exactly once with a non-idempotent SET, composite keys, a server killed and restarted mid-run,
//! foreground inserts at the table's end that never wait out a lock timeout, control flags, and bad input refused
//! before any row changes. Behaviour is asserted, never timings.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidegate_backfill::controller::ControllerConfig;
use tidegate_backfill::engine::{
    self, BackfillError, BackfillOptions, EventSink, RunEnd, RunTarget, StopHandle,
};
use tidegate_backfill::events::Event;
use tidegate_backfill::spec::BackfillSpec;
use tidegate_backfill::state;
use tidegate_db::driver::{Driver, Session, SessionExt};
use tidegate_db::mysql::MySqlConfig;
use tidegate_testkit::PrivateMariaDb;

fn options(batch: u64) -> BackfillOptions {
    BackfillOptions {
        journal_sample_every: Duration::from_millis(200),
        controller: ControllerConfig {
            initial: batch,
            fixed: true,
            ..ControllerConfig::default()
        },
        health_interval: Duration::from_millis(50),
        chunk_rows: 2_000,
        ..BackfillOptions::default()
    }
}

fn collect() -> (EventSink, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink_events = events.clone();
    (
        Arc::new(move |e: &Event| sink_events.lock().unwrap().push(e.clone())),
        events,
    )
}

async fn session(config: &MySqlConfig) -> Box<dyn Session> {
    config.open().await.unwrap()
}

async fn make_items(s: &dyn Session, rows: i64) {
    s.batch_execute(&format!(
        "create table items (id bigint primary key, n int not null default 0, note varchar(200)) engine=innodb;
         insert into items (id) select seq from seq_1_to_{rows};
         analyze table items"
    ))
    .await
    .unwrap();
}

/// (n, count) pairs: how many rows were changed how many times.
async fn histogram(s: &dyn Session, table: &str) -> Vec<(i64, i64)> {
    s.rows(
        &format!("select n, count(*) as c from {table} group by n order by n"),
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("n").unwrap(), r.get("c").unwrap()))
    .collect()
}

async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn rows_done(s: &dyn Session, id: i64) -> i64 {
    state::find_run(s, id).await.unwrap().unwrap().rows_done
}

fn run_task(
    config: &MySqlConfig,
    spec: BackfillSpec,
    opts: BackfillOptions,
    sink: EventSink,
) -> tokio::task::JoinHandle<Result<engine::Outcome, BackfillError>> {
    let config = config.clone();
    tokio::spawn(async move {
        engine::run(
            &config,
            RunTarget::Spec(spec),
            opts,
            sink,
            StopHandle::default(),
        )
        .await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_every_row_exactly_once_and_records_the_run() {
    let server = PrivateMariaDb::start();
    let config = MySqlConfig::from_url(&server.url()).unwrap();
    let s = session(&config).await;
    make_items(s.as_ref(), 20_000).await;
    let (sink, events) = collect();
    let opts = BackfillOptions {
        workers: 2,
        ..options(500)
    };
    let outcome = run_task(
        &config,
        BackfillSpec::update("items", "n = n + 1"),
        opts,
        sink,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    assert_eq!(outcome.rows_done, 20_000);
    assert_eq!(histogram(s.as_ref(), "items").await, vec![(1, 20_000)]);
    let runs = state::list_runs(s.as_ref()).await.unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.status, state::RunStatus::Completed);
    assert_eq!(run.key_columns, vec!["id".to_string()]);
    assert_eq!(run.key_min, Some(vec!["1".to_string()]));
    assert_eq!(run.key_max, Some(vec!["20000".to_string()]));
    assert_eq!((run.rows_done, run.rows_scanned), (20_000, 20_000));
    assert!(run.finished.as_deref().is_some_and(|f| f.ends_with('Z')));
    let journal: Vec<String> = state::read_journal(s.as_ref(), run.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    for expected in ["started", "batch_stats", "completed"] {
        assert!(
            journal.iter().any(|e| e == expected),
            "{expected}: {journal:?}"
        );
    }
    assert!(events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::Batch { .. })));
    // The same finished spec again is refused: a non-idempotent SET would apply twice.
    let (sink, _) = collect();
    let again = run_task(
        &config,
        BackfillSpec::update("items", "n = n + 1"),
        options(500),
        sink,
    )
    .await
    .unwrap();
    assert!(
        matches!(again, Err(BackfillError::AlreadyFinished { .. })),
        "{again:?}"
    );
    assert_eq!(histogram(s.as_ref(), "items").await, vec![(1, 20_000)]);
    // The engine's sessions run READ COMMITTED; the state lives in the `tidegate` database, InnoDB.
    let engines = s
        .rows(
            "select table_name as t, engine as e from information_schema.tables where table_schema = 'tidegate' order by 1",
            &[],
        )
        .await
        .unwrap();
    let names: Vec<String> = engines.iter().map(|r| r.get("t").unwrap()).collect();
    assert_eq!(
        names,
        ["chunks", "journal", "migrations", "runs", "schema_version"]
    );
    assert!(engines
        .iter()
        .all(|r| r.get::<String>("e").unwrap() == "InnoDB"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_primary_key_with_a_where_and_a_delete() {
    let server = PrivateMariaDb::start();
    let config = MySqlConfig::from_url(&server.url()).unwrap();
    let s = session(&config).await;
    // Tenants as text, ids repeating across tenants: the expanded OR bounds must walk both columns.
    s.batch_execute(
        "create table order_lines (tenant varchar(10) not null, id int unsigned not null, n int not null default 0, \
         kind char(1) not null, primary key (tenant, id)) engine=innodb;
         insert into order_lines (tenant, id, kind) select concat('t', s1.seq), s2.seq, if(s2.seq % 3 = 0, 'x', 'y') \
         from seq_1_to_7 s1 join seq_1_to_1500 s2",
    )
    .await
    .unwrap();
    let (sink, _) = collect();
    let spec = BackfillSpec {
        predicate: Some("kind = 'x'".into()),
        ..BackfillSpec::update("order_lines", "n = n + 1")
    };
    let opts = BackfillOptions {
        chunk_rows: 700,
        workers: 2,
        ..options(97)
    };
    let outcome = run_task(&config, spec, opts, sink).await.unwrap().unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    assert_eq!(outcome.rows_done, 7 * 500);
    let changed = s
        .rows(
            "select kind, n, count(*) as c from order_lines group by kind, n order by kind, n",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get::<String>("kind").unwrap(),
                r.get::<i64>("n").unwrap(),
                r.get::<i64>("c").unwrap(),
            )
        })
        .collect::<Vec<_>>();
    assert_eq!(
        changed,
        vec![("x".to_string(), 1, 3_500), ("y".to_string(), 0, 7_000)]
    );
    let run = state::find_run(s.as_ref(), outcome.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        run.key_columns,
        vec!["tenant".to_string(), "id".to_string()]
    );
    assert_eq!(run.rows_scanned, 10_500);
    // A batched delete on the same key.
    let (sink, _) = collect();
    let delete = BackfillSpec::delete("order_lines", Some("kind = 'y' and id > 1000".into()));
    let outcome = run_task(&config, delete, options(113), sink)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    assert_eq!(outcome.rows_done, 7 * 333);
    let left: i64 = s
        .query_one("select count(*) as c from order_lines", &[])
        .await
        .unwrap()
        .get("c")
        .unwrap();
    assert_eq!(left, 10_500 - 7 * 333);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_server_kill_and_a_restart() {
    let server = PrivateMariaDb::start();
    let config = MySqlConfig::from_url(&server.url()).unwrap();
    let s = session(&config).await;
    make_items(s.as_ref(), 20_000).await;
    drop(s);
    let (sink, events) = collect();
    let opts = BackfillOptions {
        max_rows_per_second: Some(8_000),
        ..options(400)
    };
    let task = run_task(
        &config,
        BackfillSpec::update("items", "n = n + 1"),
        opts,
        sink,
    );
    let seen = events.clone();
    wait_for("progress", Duration::from_secs(60), async || {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Event::Batch { .. }))
            .count()
            > 2
    })
    .await;
    server.kill9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.start_again();
    let seen = events.clone();
    wait_for(
        "progress after the kill",
        Duration::from_secs(90),
        async || {
            let events = seen.lock().unwrap();
            let reconnect = events
                .iter()
                .position(|e| matches!(e, Event::Reconnecting { .. }));
            reconnect.is_some_and(|at| {
                events[at..]
                    .iter()
                    .filter(|e| matches!(e, Event::Batch { .. }))
                    .count()
                    > 2
            })
        },
    )
    .await;
    let outcome = task.await.unwrap().unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    let s = session(&config).await;
    // InnoDB's crash recovery kept every committed batch with its checkpoint, and nothing else.
    assert_eq!(histogram(s.as_ref(), "items").await, vec![(1, 20_000)]);
    let journal: Vec<String> = state::read_journal(s.as_ref(), outcome.run_id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert!(journal.iter().any(|e| e == "reconnecting"), "{journal:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_inserts_at_the_end_never_wait_out_a_lock_timeout() {
    let server = PrivateMariaDb::start();
    let config = MySqlConfig::from_url(&server.url()).unwrap();
    let s = session(&config).await;
    make_items(s.as_ref(), 30_000).await;
    // An application session as the server's defaults make it: REPEATABLE READ, a 1 s lock wait.
    let app = session(&config).await;
    app.batch_execute("set session innodb_lock_wait_timeout = 1")
        .await
        .unwrap();
    let isolation: String = app
        .query_one("select @@tx_isolation as i", &[])
        .await
        .unwrap()
        .get("i")
        .unwrap();
    assert_eq!(isolation, "REPEATABLE-READ");
    let (sink, events) = collect();
    let opts = BackfillOptions {
        max_rows_per_second: Some(10_000),
        ..options(1_000)
    };
    let task = run_task(
        &config,
        BackfillSpec::update("items", "n = n + 1, note = repeat('x', 150)"),
        opts,
        sink,
    );
    // The key range is fixed once the run has started: appends from then on lie past its end.
    let seen = events.clone();
    wait_for("the run to start", Duration::from_secs(60), async || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Started { .. }))
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let inserted = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, inserted) = (stop.clone(), inserted.clone());
        tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut next = 1_000_000i64;
            while !stop.load(Ordering::Relaxed) {
                // Appends past the end of the key range, as an application's inserts do.
                let result = app
                    .run("insert into items (id, n) values (?, 100)", &[next.into()])
                    .await;
                match result {
                    Ok(_) => {
                        inserted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failures.push(e),
                }
                next += 1;
            }
            failures
        })
    };
    let seen = events.clone();
    wait_for("batches", Duration::from_secs(60), async || {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Event::Batch { .. }))
            .count()
            > 5
    })
    .await;
    let outcome = task.await.unwrap().unwrap();
    stop.store(true, Ordering::Relaxed);
    let failures = writer.await.unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    assert!(
        failures.is_empty(),
        "foreground inserts failed: {:?}",
        failures
            .iter()
            .map(|e| (e.server_code, e.message.clone()))
            .collect::<Vec<_>>()
    );
    let inserted = inserted.load(Ordering::Relaxed) as i64;
    assert!(inserted > 0);
    // Rows past the range fixed at start are not chased; every row in it changed once.
    assert_eq!(
        histogram(s.as_ref(), "items").await,
        vec![(1, 30_000), (100, inserted)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_abort_from_another_connection() {
    let server = PrivateMariaDb::start();
    let config = MySqlConfig::from_url(&server.url()).unwrap();
    let s = session(&config).await;
    make_items(s.as_ref(), 20_000).await;
    let (sink, _) = collect();
    let opts = BackfillOptions {
        max_rows_per_second: Some(4_000),
        ..options(200)
    };
    let task = run_task(
        &config,
        BackfillSpec::update("items", "n = n + 1"),
        opts,
        sink,
    );
    let c = s.as_ref();
    wait_for("the run to exist", Duration::from_secs(60), async || {
        state::list_runs(c)
            .await
            .map(|r| !r.is_empty())
            .unwrap_or(false)
    })
    .await;
    let id = state::list_runs(c).await.unwrap()[0].id;
    wait_for("some progress", Duration::from_secs(30), async || {
        rows_done(c, id).await > 0
    })
    .await;
    let outcome = state::set_control(c, id, Some(state::Control::Pause))
        .await
        .unwrap();
    assert!(
        matches!(outcome, state::ControlOutcome::Signalled { .. }),
        "{outcome:?}"
    );
    wait_for("status paused", Duration::from_secs(10), async || {
        state::find_run(c, id).await.unwrap().unwrap().status == state::RunStatus::Paused
    })
    .await;
    let frozen = rows_done(c, id).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rows_done(c, id).await, frozen, "no batch runs while paused");
    state::set_control(c, id, None).await.unwrap();
    wait_for(
        "progress after resume",
        Duration::from_secs(30),
        async || rows_done(c, id).await > frozen,
    )
    .await;
    state::set_control(c, id, Some(state::Control::Abort))
        .await
        .unwrap();
    let outcome = task.await.unwrap().unwrap();
    assert!(
        matches!(outcome.end, RunEnd::Aborted { .. }),
        "{:?}",
        outcome.end
    );
    let run = state::find_run(c, id).await.unwrap().unwrap();
    assert_eq!(run.status, state::RunStatus::Aborted);
    assert!(run.rows_done < 20_000);
    // Exactly the rows the checkpoints count were changed, once.
    assert_eq!(
        histogram(c, "items").await,
        vec![(0, 20_000 - run.rows_done), (1, run.rows_done)]
    );
    let requested = state::read_journal(c, id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event == "control_requested")
        .count();
    assert_eq!(requested, 3);
    // No engine attached any more: pausing a finished run finds nothing.
    assert_eq!(
        state::set_control(c, id, Some(state::Control::Pause))
            .await
            .unwrap(),
        state::ControlOutcome::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_any_row_changes() {
    let server = PrivateMariaDb::start();
    let config = MySqlConfig::from_url(&server.url()).unwrap();
    let s = session(&config).await;
    make_items(s.as_ref(), 100).await;
    s.batch_execute(
        "create table heap (a int, b int) engine=innodb; insert into heap values (1, 1), (2, 2);
         create table nullable_unique (a int null, n int not null default 0, unique key (a)) engine=innodb;
         insert into nullable_unique (a) values (1), (2);
         create table old_engine (id int primary key, n int not null default 0) engine=myisam;
         insert into old_engine (id) values (1)",
    )
    .await
    .unwrap();
    let cases: Vec<(BackfillSpec, &str)> = vec![
        (
            BackfillSpec::update("no_such_table", "n = 1"),
            "does not exist",
        ),
        (BackfillSpec::update("heap", "b = b + 1"), "no primary key"),
        (
            BackfillSpec::update("nullable_unique", "n = n + 1"),
            "no primary key",
        ),
        (BackfillSpec::update("old_engine", "n = n + 1"), "InnoDB"),
        (BackfillSpec::update("items", "missing = 1"), "missing"),
        // Parses, but the server cannot resolve it: refused when the statement is prepared.
        (
            BackfillSpec::update("items", "n = no_such_function(n)"),
            "do not fit",
        ),
        (
            BackfillSpec {
                predicate: Some("no_such_column > 0".into()),
                ..BackfillSpec::update("items", "n = n + 1")
            },
            "no_such_column",
        ),
        (
            BackfillSpec::update("items", "n = n + 1 WHERE true"),
            "WHERE clause",
        ),
        (
            BackfillSpec {
                predicate: Some("n > 0 /*! OR 1 = 1 */".into()),
                ..BackfillSpec::update("items", "n = n + 1")
            },
            "executable comments",
        ),
        (BackfillSpec::update("items", "id = id + 1"), "key column"),
    ];
    for (spec, expected) in cases {
        let (sink, _) = collect();
        let result = run_task(&config, spec.clone(), options(10), sink)
            .await
            .unwrap();
        match result {
            Err(BackfillError::Input(message)) => {
                assert!(message.contains(expected), "{spec:?}: {message}")
            }
            other => panic!("{spec:?}: expected an input error, got {other:?}"),
        }
    }
    assert_eq!(histogram(s.as_ref(), "items").await, vec![(0, 100)]);
    let heap: i64 = s
        .query_one("select sum(b) as s from heap", &[])
        .await
        .unwrap()
        .get("s")
        .unwrap_or(3);
    assert_eq!(heap, 3);
    // Nothing was recorded either: no run exists.
    assert!(state::list_runs(s.as_ref()).await.unwrap().is_empty());
}

/// The claim behind READ COMMITTED: a batch's UPDATE held open at the end of the key range lets an application
/// INSERT past the end through at once; the same UPDATE under REPEATABLE READ holds the gap to the end of the
/// index and the INSERT waits out its lock timeout (error 1205).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_batches_take_no_gap_locks_where_repeatable_read_does() {
    use tidegate_backfill::dialect::{BatchShape, Dialect};
    use tidegate_backfill::dialect_mysql::MySql;
    use tidegate_backfill::spec::Operation;
    let server = PrivateMariaDb::start();
    let config = MySqlConfig::from_url(&server.url()).unwrap();
    let s = session(&config).await;
    make_items(s.as_ref(), 1_000).await;
    let shape = BatchShape {
        schema: "scratch".into(),
        table: "items".into(),
        key_columns: vec!["id".into()],
        key_types: vec!["bigint(20)".into()],
        operation: Operation::Update {
            set: "n = n + 1".into(),
        },
        predicate: None,
    };
    let app = session(&config).await;
    app.batch_execute("set session innodb_lock_wait_timeout = 1")
        .await
        .unwrap();
    let batch = session(&config).await;
    // The server's default first, then the dialect's own: both insert the table's next key.
    for (isolation, new_id, expect_wait) in [
        ("REPEATABLE READ", 1_001i64, true),
        ("READ COMMITTED", 1_001, false),
    ] {
        batch
            .batch_execute(&format!(
                "set session transaction isolation level {isolation}"
            ))
            .await
            .unwrap();
        batch
            .batch_execute(&format!(
                "BEGIN; {}",
                MySql.batch_settings(Duration::from_secs(1), Duration::from_secs(30))
            ))
            .await
            .unwrap();
        let params = MySql.bound_params(&shape, Some(&["900".into()]), &["1000".into()], None);
        let changed = batch
            .run(&MySql.batch_change(&shape, true), &params)
            .await
            .unwrap();
        assert_eq!(changed, 100);
        let inserted = app
            .run("insert into items (id) values (?)", &[new_id.into()])
            .await;
        batch.batch_execute("ROLLBACK").await.unwrap();
        match (expect_wait, inserted) {
            (false, Ok(1)) => {}
            (true, Err(e)) => assert_eq!(e.server_code, Some(1205), "{e:?}"),
            (_, other) => panic!("isolation {isolation:?}: {other:?}"),
        }
    }
    // And the dialect's session settings are READ COMMITTED.
    batch
        .batch_execute(&MySql.session_settings(Duration::from_secs(1), Duration::from_secs(30)))
        .await
        .unwrap();
    let level: String = batch
        .query_one("select @@tx_isolation as i", &[])
        .await
        .unwrap()
        .get("i")
        .unwrap();
    assert_eq!(level, "READ-COMMITTED");
}
