//! The backfill engine against a real PostgreSQL: exactly-once, resume, lock conflicts, control flags, health
//! signals, lost servers, workers. Behaviour is asserted, never timings (bounds only where the issue demands one,
//! with wide margins).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidegate_backfill::controller::ControllerConfig;
use tidegate_backfill::engine::{self, BackfillOptions, EventSink, RunEnd, RunTarget, StopHandle};
use tidegate_backfill::events::Event;
use tidegate_backfill::spec::BackfillSpec;
use tidegate_backfill::state;
use tidegate_backfill::throttle::Signal;
use tidegate_db::connect::ConnectionConfig;
use tidegate_testkit::{PrivateCluster, TestDatabase};
use tokio_postgres::Client;

fn spec(set: &str) -> BackfillSpec {
    BackfillSpec::update("items", set)
}

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

async fn make_items(client: &Client, rows: i64) {
    client
        .batch_execute(&format!(
            "create table items (id bigint primary key, n int not null default 0, note text);
             insert into items (id) select g from generate_series(1, {rows}) g;
             analyze items;"
        ))
        .await
        .unwrap();
}

/// (n, count) pairs: the histogram of how many times each row was updated.
async fn histogram(client: &Client) -> Vec<(i32, i64)> {
    client
        .query("select n, count(*) from items group by n order by n", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn journal_events(client: &Client, run_id: i64) -> Vec<String> {
    state::read_journal(client, run_id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
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
    panic!("timed out after {limit:?} waiting for {what}");
}

async fn rows_done(client: &Client, id: i64) -> i64 {
    state::find_run(client, id)
        .await
        .unwrap()
        .unwrap()
        .rows_done
}

async fn status(client: &Client, id: i64) -> state::RunStatus {
    state::find_run(client, id).await.unwrap().unwrap().status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_every_row_exactly_once_and_records_the_run() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 5_000).await;
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let (sink, events) = collect();
    let outcome = engine::run(
        &config,
        RunTarget::Spec(spec("n = n + 1, note = 'x' || id")),
        options(700),
        sink,
        StopHandle::default(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    assert_eq!(outcome.rows_done, 5_000);
    assert_eq!(histogram(&client).await, vec![(1, 5_000)]);
    let bad: i64 = client
        .query_one("select count(*) from items where note <> 'x' || id", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(bad, 0);
    let run = state::find_run(&client, outcome.run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, state::RunStatus::Completed);
    assert_eq!(run.rows_done, 5_000);
    assert!(run.finished.is_some());
    let journal = journal_events(&client, outcome.run_id).await;
    assert_eq!(journal.first().map(String::as_str), Some("started"));
    assert_eq!(journal.last().map(String::as_str), Some("completed"));
    assert!(events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::Batch { .. })));

    // The same spec again: nothing to do; `--restart` runs it again.
    let (sink, _) = collect();
    let refused = engine::run(
        &config,
        RunTarget::Spec(spec("n = n + 1, note = 'x' || id")),
        options(700),
        sink,
        StopHandle::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(refused, engine::BackfillError::AlreadyFinished { run_id, .. } if run_id == outcome.run_id),
        "{refused}"
    );
    assert_eq!(histogram(&client).await, vec![(1, 5_000)]);
    let (sink, _) = collect();
    let opts = BackfillOptions {
        restart: true,
        ..options(700)
    };
    let again = engine::run(
        &config,
        RunTarget::Spec(spec("n = n + 1, note = 'x' || id")),
        opts,
        sink,
        StopHandle::default(),
    )
    .await
    .unwrap();
    assert_ne!(again.run_id, outcome.run_id);
    assert_eq!(histogram(&client).await, vec![(2, 5_000)]);
    let versions: i32 = client
        .query_one("select max(version) from tidegate.schema_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(versions, tidegate_backfill::dialect::state::SCHEMA_VERSION);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_predicate_and_composite_key() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    client
        .batch_execute(
            "create table items (tenant int not null, id int not null, n int not null default 0, status text, v2 text,
                                 primary key (tenant, id));
             insert into items (tenant, id, status) select t, i, case when i % 3 = 0 then null else 's' || i end
               from generate_series(1, 7) t, generate_series(1, 500) i;
             analyze items;",
        )
        .await
        .unwrap();
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let (sink, _) = collect();
    let s = BackfillSpec {
        predicate: Some("status IS NOT NULL AND id > 0".into()),
        ..spec("v2 = status, n = n + 1")
    };
    let outcome = engine::run(
        &config,
        RunTarget::Spec(s),
        options(333),
        sink,
        StopHandle::default(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    let row = client
        .query_one(
            "select count(*) filter (where n = 1 and v2 = status), count(*) filter (where n = 0 and status is null),
                    count(*) from items",
            &[],
        )
        .await
        .unwrap();
    let (updated, skipped, total): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        updated + skipped,
        total,
        "every row updated once or skipped by the predicate"
    );
    assert_eq!(outcome.rows_done as i64, updated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_inserted_after_start_are_not_chased() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 3_000).await;
    // Inserts land above the key bound taken at start; the run still ends.
    client
        .batch_execute(
            "create function grow() returns trigger language plpgsql as $$
             begin if new.id < 1000000 then insert into items (id) values (new.id + 1000000) on conflict do nothing; end if; return new; end $$;
             create trigger grow after update on items for each row execute function grow();",
        )
        .await
        .unwrap();
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let (sink, _) = collect();
    let outcome = engine::run(
        &config,
        RunTarget::Spec(spec("n = n + 1")),
        options(500),
        sink,
        StopHandle::default(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    assert_eq!(outcome.rows_done, 3_000);
    let late: i64 = client
        .query_one(
            "select count(*) from items where id > 1000000 and n = 0",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(late, 3_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_timeouts_shrink_retry_and_never_keep_others_waiting() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 4_000).await;
    // Another session holds row locks in the middle of the table.
    let holder = db.connect().await;
    holder
        .batch_execute("begin; select * from items where id between 2500 and 2510 for update")
        .await
        .unwrap();
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let (sink, events) = collect();
    let opts = BackfillOptions {
        lock_timeout: Duration::from_millis(100),
        ..options(1_000)
    };
    let engine_task = tokio::spawn(async move {
        engine::run(
            &config,
            RunTarget::Spec(spec("n = n + 1")),
            opts,
            sink,
            StopHandle::default(),
        )
        .await
    });
    // A third session keeps updating rows of the batch that waits on the holder. It allows itself 3s of lock
    // wait (30x our lock_timeout): the backfill must always let go first.
    let victim = db.connect().await;
    victim
        .batch_execute("set lock_timeout = '3s'")
        .await
        .unwrap();
    let events_seen = events.clone();
    wait_for(
        "a lock_timeout retry",
        Duration::from_secs(30),
        async || {
            events_seen
                .lock()
                .unwrap()
                .iter()
                .any(|e| matches!(e, Event::Retry { cause, .. } if cause == "lock_timeout"))
        },
    )
    .await;
    for _ in 0..20 {
        victim
            .execute("update items set note = 'victim' where id = 2100", &[])
            .await
            .expect("the other session was kept waiting past its lock_timeout");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    holder.batch_execute("commit").await.unwrap();
    let outcome = engine_task.await.unwrap().unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    assert_eq!(histogram(&client).await, vec![(1, 4_000)]);
    let retries: Vec<u64> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Retry {
                next_batch_size, ..
            } => Some(*next_batch_size),
            _ => None,
        })
        .collect();
    assert!(!retries.is_empty());
    assert!(
        retries[0] < 1_000,
        "the batch shrank after a lock timeout: {retries:?}"
    );
    let journal = journal_events(&client, outcome.run_id).await;
    assert!(journal.iter().any(|e| e == "retry"), "{journal:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_abort_from_another_connection() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 20_000).await;
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let (sink, _) = collect();
    let opts = BackfillOptions {
        max_rows_per_second: Some(4_000),
        ..options(200)
    };
    let run_config = config.clone();
    let task = tokio::spawn(async move {
        engine::run(
            &run_config,
            RunTarget::Spec(spec("n = n + 1")),
            opts,
            sink,
            StopHandle::default(),
        )
        .await
    });
    wait_for("the run to exist", Duration::from_secs(30), async || {
        state::list_runs(&client)
            .await
            .map(|r| !r.is_empty())
            .unwrap_or(false)
    })
    .await;
    let id = state::list_runs(&client).await.unwrap()[0].id;
    wait_for("some progress", Duration::from_secs(30), async || {
        rows_done(&client, id).await > 0
    })
    .await;

    let outcome = state::set_control(&client, id, Some(state::Control::Pause))
        .await
        .unwrap();
    assert!(
        matches!(outcome, state::ControlOutcome::Signalled { .. }),
        "{outcome:?}"
    );
    wait_for("status paused", Duration::from_secs(10), async || {
        status(&client, id).await == state::RunStatus::Paused
    })
    .await;
    let frozen = rows_done(&client, id).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        rows_done(&client, id).await,
        frozen,
        "no batch runs while paused"
    );

    state::set_control(&client, id, None).await.unwrap();
    wait_for(
        "progress after resume",
        Duration::from_secs(30),
        async || rows_done(&client, id).await > frozen,
    )
    .await;

    state::set_control(&client, id, Some(state::Control::Abort))
        .await
        .unwrap();
    let outcome = task.await.unwrap().unwrap();
    assert!(
        matches!(outcome.end, RunEnd::Aborted { .. }),
        "{:?}",
        outcome.end
    );
    assert_eq!(status(&client, id).await, state::RunStatus::Aborted);
    let done = rows_done(&client, id).await;
    assert!(done < 20_000);
    // Exactly the rows the checkpoints count were changed, once.
    let hist = histogram(&client).await;
    assert_eq!(hist, vec![(0, 20_000 - done), (1, done)]);
    let journal = journal_events(&client, id).await;
    for expected in ["started", "batch_stats", "paused", "resumed", "aborted"] {
        assert!(
            journal.iter().any(|e| e == expected),
            "{expected} missing from {journal:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_run_resumes_by_spec_and_by_id() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 10_000).await;
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let stop = StopHandle::default();
    let (sink, _) = collect();
    let opts = BackfillOptions {
        max_rows_per_second: Some(5_000),
        ..options(250)
    };
    let (run_config, run_stop, run_opts) = (config.clone(), stop.clone(), opts.clone());
    let task = tokio::spawn(async move {
        engine::run(
            &run_config,
            RunTarget::Spec(spec("n = n + 1")),
            run_opts,
            sink,
            run_stop,
        )
        .await
    });
    wait_for("progress", Duration::from_secs(30), async || {
        state::list_runs(&client)
            .await
            .map(|r| r.first().is_some_and(|r| r.rows_done > 0))
            .unwrap_or(false)
    })
    .await;
    stop.request("interrupted by SIGINT");
    let first = task.await.unwrap().unwrap();
    assert!(matches!(first.end, RunEnd::Interrupted { .. }));
    assert_eq!(
        status(&client, first.run_id).await,
        state::RunStatus::Paused
    );

    // By id.
    let (sink, _) = collect();
    let stop = StopHandle::default();
    let (run_config, run_stop) = (config.clone(), stop.clone());
    let task = tokio::spawn(async move {
        engine::run(
            &run_config,
            RunTarget::Resume(first.run_id),
            opts,
            sink,
            run_stop,
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.request("interrupted by SIGTERM");
    let second = task.await.unwrap().unwrap();
    assert_eq!(second.run_id, first.run_id);

    // By spec, to the end.
    let (sink, events) = collect();
    let third = engine::run(
        &config,
        RunTarget::Spec(spec("n = n + 1")),
        options(1_000),
        sink,
        StopHandle::default(),
    )
    .await
    .unwrap();
    assert_eq!(third.run_id, first.run_id);
    assert_eq!(third.end, RunEnd::Completed);
    assert!(events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::Started { resumed: true, .. })));
    assert_eq!(histogram(&client).await, vec![(1, 10_000)]);
    assert_eq!(rows_done(&client, first.run_id).await, 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_discards_the_unfinished_run() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 3_000).await;
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let stop = StopHandle::default();
    stop.request("stopped before the first batch");
    let (sink, _) = collect();
    let first = engine::run(
        &config,
        RunTarget::Spec(spec("n = n + 1")),
        options(500),
        sink,
        stop,
    )
    .await
    .unwrap();
    assert!(matches!(first.end, RunEnd::Interrupted { .. }));
    let (sink, _) = collect();
    let opts = BackfillOptions {
        restart: true,
        ..options(500)
    };
    let second = engine::run(
        &config,
        RunTarget::Spec(spec("n = n + 1")),
        opts,
        sink,
        StopHandle::default(),
    )
    .await
    .unwrap();
    assert_ne!(second.run_id, first.run_id);
    assert_eq!(
        status(&client, first.run_id).await,
        state::RunStatus::Aborted
    );
    assert_eq!(second.end, RunEnd::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_query_stops_batches_then_they_resume() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 20_000).await;
    client
        .batch_execute(
            "create table brake (on_ boolean not null); insert into brake values (false);",
        )
        .await
        .unwrap();
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let (sink, events) = collect();
    let opts = BackfillOptions {
        max_rows_per_second: Some(5_000),
        throttle_query: Some("select on_ from brake".into()),
        ..options(250)
    };
    let run_config = config.clone();
    let task = tokio::spawn(async move {
        engine::run(
            &run_config,
            RunTarget::Spec(spec("n = n + 1")),
            opts,
            sink,
            StopHandle::default(),
        )
        .await
    });
    let seen = events.clone();
    wait_for("progress", Duration::from_secs(30), async || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Batch { .. }))
    })
    .await;
    client
        .execute("update brake set on_ = true", &[])
        .await
        .unwrap();
    let seen = events.clone();
    wait_for("the throttle", Duration::from_secs(10), async || {
        seen.lock().unwrap().iter().any(|e| matches!(e, Event::Throttled { reason, signals, .. } if reason.contains("throttle query returned true") && *signals == [Signal::ThrottleQuery]))
    })
    .await;
    // The batch in flight may finish; then nothing moves.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = state::list_runs(&client).await.unwrap()[0].id;
    let frozen = rows_done(&client, id).await;
    assert_eq!(status(&client, id).await, state::RunStatus::Throttled);
    let run = state::find_run(&client, id).await.unwrap().unwrap();
    assert!(
        run.status_reason
            .unwrap_or_default()
            .contains("throttle query"),
        "reason recorded"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        rows_done(&client, id).await,
        frozen,
        "no batch starts while throttled"
    );
    client
        .execute("update brake set on_ = false", &[])
        .await
        .unwrap();
    let outcome = task.await.unwrap().unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    assert_eq!(histogram(&client).await, vec![(1, 20_000)]);
    let journal = state::read_journal(&client, id).await.unwrap();
    assert!(journal.iter().any(|e| e.event == "throttled"
        && e.detail["reason"]
            .as_str()
            .unwrap_or("")
            .contains("throttle query returned true")));
    assert!(journal.iter().any(|e| e.event == "throttle_lifted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_slowed_by_a_held_lock_pauses_the_run_until_it_recovers() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 20_000).await;
    client
        .batch_execute("create table side (x int); insert into side values (1);")
        .await
        .unwrap();
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let (sink, events) = collect();
    let mut opts = BackfillOptions {
        max_rows_per_second: Some(5_000),
        probe_sql: Some("select count(*) from side".into()),
        ..options(250)
    };
    opts.thresholds.max_probe_latency = Duration::from_millis(100);
    opts.thresholds.critical_recovery = Duration::from_millis(500);
    let run_config = config.clone();
    let task = tokio::spawn(async move {
        engine::run(
            &run_config,
            RunTarget::Spec(spec("n = n + 1")),
            opts,
            sink,
            StopHandle::default(),
        )
        .await
    });
    let seen = events.clone();
    wait_for("progress", Duration::from_secs(30), async || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Batch { .. }))
    })
    .await;
    let locker = db.connect().await;
    locker
        .batch_execute("begin; lock table side in access exclusive mode")
        .await
        .unwrap();
    let seen = events.clone();
    wait_for(
        "the probe to pause the run",
        Duration::from_secs(10),
        async || {
            seen.lock()
                .unwrap()
                .iter()
                .any(|e| matches!(e, Event::Paused { reason, critical, .. } if reason.contains("probe") && *critical == [Signal::ProbeLatency]))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = state::list_runs(&client).await.unwrap()[0].id;
    let frozen = rows_done(&client, id).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        rows_done(&client, id).await,
        frozen,
        "no batch starts while critical"
    );
    assert_eq!(status(&client, id).await, state::RunStatus::Paused);
    locker.batch_execute("commit").await.unwrap();
    let outcome = task.await.unwrap().unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    assert_eq!(histogram(&client).await, vec![(1, 20_000)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_share_the_key_space_exactly_once() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 20_000).await;
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let opts = BackfillOptions {
        workers: 3,
        chunk_rows: 1_000,
        // Batches of at most a quarter of chunk_rows: every chunk is cut to chunk_rows keys.
        ..options(250)
    };
    // Two processes' worth of engines on the same spec, three workers each.
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (sink, _) = collect();
        let (c, o) = (config.clone(), opts.clone());
        tasks.push(tokio::spawn(async move {
            engine::run(
                &c,
                RunTarget::Spec(spec("n = n + 1")),
                o,
                sink,
                StopHandle::default(),
            )
            .await
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        let outcome = t.await.unwrap().unwrap();
        assert_eq!(outcome.end, RunEnd::Completed);
        ids.push(outcome.run_id);
    }
    assert_eq!(ids[0], ids[1], "both engines worked on one run");
    assert_eq!(histogram(&client).await, vec![(1, 20_000)]);
    assert_eq!(rows_done(&client, ids[0]).await, 20_000);
    let chunks: i64 = client
        .query_one(
            "select count(*) from tidegate.chunks where run_id = $1",
            &[&ids[0]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(chunks, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_grow_to_hold_four_batches_so_no_batch_is_cut_short() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 20_000).await;
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let (sink, _) = collect();
    let opts = BackfillOptions {
        chunk_rows: 1_000,
        ..options(2_000)
    };
    let outcome = engine::run(
        &config,
        RunTarget::Spec(spec("n = n + 1")),
        opts,
        sink,
        StopHandle::default(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    assert_eq!(histogram(&client).await, vec![(1, 20_000)]);
    let per_chunk: Vec<i64> = client
        .query(
            "select rows_done from tidegate.chunks where run_id = $1 order by chunk_no",
            &[&outcome.run_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    // 2,000-key batches, four to a chunk: 8,000 + 8,000 + the 4,000 left.
    assert_eq!(per_chunk, vec![8_000, 8_000, 4_000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_server_crash_and_a_restart() {
    let cluster = PrivateCluster::start();
    let url = cluster.create_database("shop").await;
    let client = tidegate_testkit::connect(&url).await;
    make_items(&client, 20_000).await;
    drop(client);
    let config = ConnectionConfig::from_url(&url).unwrap();
    let (sink, events) = collect();
    let opts = BackfillOptions {
        max_rows_per_second: Some(8_000),
        ..options(400)
    };
    let task = tokio::spawn(async move {
        engine::run(
            &config,
            RunTarget::Spec(spec("n = n + 1")),
            opts,
            sink,
            StopHandle::default(),
        )
        .await
    });
    let seen = events.clone();
    wait_for("progress", Duration::from_secs(30), async || {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Event::Batch { .. }))
            .count()
            > 2
    })
    .await;
    cluster.kill9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.start_again();
    let seen = events.clone();
    wait_for(
        "progress after the crash",
        Duration::from_secs(60),
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
    cluster.restart();
    let outcome = task.await.unwrap().unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    let client = tidegate_testkit::connect(&url).await;
    assert_eq!(histogram(&client).await, vec![(1, 20_000)]);
    let journal = journal_events(&client, outcome.run_id).await;
    assert!(journal.iter().any(|e| e == "reconnecting"), "{journal:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_the_window_nothing_runs_and_the_reason_is_recorded() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 1_000).await;
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    // A one-hour window starting two hours from now (UTC): closed now, whatever the time of day.
    let minute = tidegate_backfill::pacing::utc_second_of_day() / 60;
    let start = (minute + 120) % 1440;
    let end = (start + 60) % 1440;
    let window = format!(
        "{:02}:{:02}-{:02}:{:02}",
        start / 60,
        start % 60,
        end / 60,
        end % 60
    );
    let opts = BackfillOptions {
        window: Some(window.parse().unwrap()),
        ..options(100)
    };
    let (sink, events) = collect();
    let stop = StopHandle::default();
    let (run_config, run_stop) = (config.clone(), stop.clone());
    let task = tokio::spawn(async move {
        engine::run(
            &run_config,
            RunTarget::Spec(spec("n = n + 1")),
            opts,
            sink,
            run_stop,
        )
        .await
    });
    let seen = events.clone();
    wait_for(
        "the window to hold the run",
        Duration::from_secs(10),
        async || {
            seen.lock().unwrap().iter().any(
                |e| matches!(e, Event::Waiting { reason, .. } if reason.contains("outside window")),
            )
        },
    )
    .await;
    let id = state::list_runs(&client).await.unwrap()[0].id;
    let run = state::find_run(&client, id).await.unwrap().unwrap();
    assert_eq!(run.status, state::RunStatus::Throttled);
    assert!(run
        .status_reason
        .unwrap_or_default()
        .contains("outside window"));
    stop.request("interrupted by SIGINT");
    let outcome = task.await.unwrap().unwrap();
    assert!(matches!(outcome.end, RunEnd::Interrupted { .. }));
    assert_eq!(histogram(&client).await, vec![(0, 1_000)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_abort_stops_the_run_for_good() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 5_000).await;
    client
        .batch_execute("create table side (x int); insert into side values (1);")
        .await
        .unwrap();
    let locker = db.connect().await;
    locker
        .batch_execute("begin; lock table side in access exclusive mode")
        .await
        .unwrap();
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let mut opts = BackfillOptions {
        probe_sql: Some("select count(*) from side".into()),
        critical_abort: true,
        ..options(100)
    };
    opts.thresholds.max_probe_latency = Duration::from_millis(100);
    let (sink, _) = collect();
    let outcome = engine::run(
        &config,
        RunTarget::Spec(spec("n = n + 1")),
        opts,
        sink,
        StopHandle::default(),
    )
    .await
    .unwrap();
    match &outcome.end {
        RunEnd::Aborted { reason } => assert!(
            reason.contains("critical") && reason.contains("probe"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        status(&client, outcome.run_id).await,
        state::RunStatus::Aborted
    );
    assert_eq!(histogram(&client).await, vec![(0, 5_000)]);
    locker.batch_execute("commit").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_retries_end_in_an_error_naming_the_blocker() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 2_000).await;
    let holder = db.connect().await;
    holder
        .batch_execute("set application_name = 'the_blocker'; begin; select * from items where id = 10 for update")
        .await
        .unwrap();
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let mut opts = BackfillOptions {
        lock_timeout: Duration::from_millis(50),
        ..options(500)
    };
    opts.lock_retry.max_attempts = 3;
    opts.lock_retry.base = Duration::from_millis(10);
    let (sink, _) = collect();
    let error = engine::run(
        &config,
        RunTarget::Spec(spec("n = n + 1")),
        opts,
        sink,
        StopHandle::default(),
    )
    .await
    .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("lock_timeout") && message.contains("the_blocker"),
        "{message}"
    );
    let run = state::list_runs(&client).await.unwrap().remove(0);
    assert_eq!(run.status, state::RunStatus::Failed);
    assert!(run.last_error.unwrap_or_default().contains("the_blocker"));
    assert_eq!(histogram(&client).await, vec![(0, 2_000)]);
    // Resumable once the blocker is gone.
    holder.batch_execute("commit").await.unwrap();
    let (sink, _) = collect();
    let outcome = engine::run(
        &config,
        RunTarget::Spec(spec("n = n + 1")),
        options(500),
        sink,
        StopHandle::default(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.run_id, run.id);
    assert_eq!(histogram(&client).await, vec![(1, 2_000)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_unique_key_and_an_empty_table() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    client
        .batch_execute(
            "create table accounts (email text not null, n int not null default 0);
             create unique index accounts_email on accounts (email);
             insert into accounts (email) select 'user' || g || '@example.com' from generate_series(1, 3000) g;
             create table empty (id int primary key, n int);
             analyze;",
        )
        .await
        .unwrap();
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let (sink, _) = collect();
    let accounts = BackfillSpec {
        table: "accounts".into(),
        key: Some(vec!["email".into()]),
        ..spec("n = n + 1")
    };
    let outcome = engine::run(
        &config,
        RunTarget::Spec(accounts),
        options(400),
        sink,
        StopHandle::default(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    let counts: Vec<(i32, i64)> = client
        .query("select n, count(*) from accounts group by n", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(counts, vec![(1, 3_000)]);
    let (sink, _) = collect();
    let empty = BackfillSpec {
        table: "empty".into(),
        ..spec("n = 1")
    };
    let outcome = engine::run(
        &config,
        RunTarget::Spec(empty),
        options(400),
        sink,
        StopHandle::default(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    assert_eq!(outcome.rows_done, 0);
}
