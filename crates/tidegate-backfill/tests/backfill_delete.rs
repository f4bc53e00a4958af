//! Batched deletes on the backfill engine against a real PostgreSQL: exactly the rows matching the predicate within
//! the key range fixed at start are deleted, once, whatever dies on the way (the server, a run stopped mid-way,
//! several workers racing); rows inserted later are handled as documented in README ("Batched deletes").
//!
//! Every table here has an audit trigger that writes each deleted key into `deleted_log` in the deleting
//! transaction: a batch rolled back leaves no entry, a batch applied twice would leave two.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidegate_backfill::controller::ControllerConfig;
use tidegate_backfill::engine::{self, BackfillOptions, EventSink, RunEnd, RunTarget, StopHandle};
use tidegate_backfill::events::Event;
use tidegate_backfill::spec::BackfillSpec;
use tidegate_backfill::state;
use tidegate_db::connect::ConnectionConfig;
use tidegate_testkit::{PrivateCluster, TestDatabase};
use tokio_postgres::Client;

/// The predicate of most tests: 30% of the rows.
const DOOMED: &str = "doomed";

fn delete_doomed() -> BackfillSpec {
    BackfillSpec::delete("items", Some(DOOMED.into()))
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

/// `items` with keys `step, 2·step, …, rows·step`; a row is doomed when `(id / step) % 10 < 3`.
async fn make_items(client: &Client, rows: i64, step: i64) {
    client
        .batch_execute(&format!(
            "create table items (id bigint primary key, doomed boolean not null, note text);
             insert into items (id, doomed) select g * {step}, g % 10 < 3 from generate_series(1, {rows}) g;
             create table deleted_log (id bigint not null);
             create function log_delete() returns trigger language plpgsql as $$
               begin insert into deleted_log values (old.id); return old; end $$;
             create trigger log_delete after delete on items for each row execute function log_delete();
             analyze items;"
        ))
        .await
        .unwrap();
}

/// (doomed rows left, spared rows left, deleted log entries, distinct keys in the log).
async fn tally(client: &Client) -> (i64, i64, i64, i64) {
    let row = client
        .query_one(
            "select (select count(*) from items where doomed), (select count(*) from items where not doomed),
                    (select count(*) from deleted_log), (select count(distinct id) from deleted_log)",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
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

async fn run_row(client: &Client, id: i64) -> state::RunRow {
    state::find_run(client, id).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_exactly_the_matching_rows_once_and_records_a_delete_run() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 10_000, 1).await;
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let (sink, events) = collect();
    let outcome = engine::run(
        &config,
        RunTarget::Spec(delete_doomed()),
        options(700),
        sink,
        StopHandle::default(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    assert_eq!(outcome.kind, "delete");
    assert_eq!(outcome.rows_done, 3_000);
    assert_eq!(tally(&client).await, (0, 7_000, 3_000, 3_000));
    let run = run_row(&client, outcome.run_id).await;
    assert_eq!(run.kind, "delete");
    assert_eq!(run.status, state::RunStatus::Completed);
    assert_eq!(run.rows_done, 3_000, "rows deleted");
    assert_eq!(run.rows_scanned, 10_000, "keys walked, deleted or not");
    let stored: serde_json::Value = serde_json::from_str(&run.spec_json).unwrap();
    assert_eq!(stored["operation"], "delete");
    assert!(stored.get("set").is_none(), "{stored}");
    let events = events.lock().unwrap().clone();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Started { kind, .. } if kind == "delete")),
        "{events:?}"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Completed { kind, rows_done: 3_000, .. } if kind == "delete")));
    let batch_rows: u64 = events
        .iter()
        .filter_map(|e| match e {
            Event::Batch { rows, .. } => Some(*rows),
            _ => None,
        })
        .sum();
    assert_eq!(batch_rows, 3_000);

    // The same delete again: the run is finished; a new run of it (`--restart`) finds nothing left to delete.
    let (sink, _) = collect();
    let refused = engine::run(
        &config,
        RunTarget::Spec(delete_doomed()),
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
    let (sink, _) = collect();
    let again = engine::run(
        &config,
        RunTarget::Spec(delete_doomed()),
        BackfillOptions {
            restart: true,
            ..options(700)
        },
        sink,
        StopHandle::default(),
    )
    .await
    .unwrap();
    assert_eq!(again.rows_done, 0);
    assert_eq!(tally(&client).await, (0, 7_000, 3_000, 3_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_and_a_delete_of_the_same_table_and_predicate_are_different_runs() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 2_000, 1).await;
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let update = BackfillSpec {
        predicate: Some(DOOMED.into()),
        ..BackfillSpec::update("items", "note = 'seen'")
    };
    let (sink, _) = collect();
    let first = engine::run(
        &config,
        RunTarget::Spec(update),
        options(500),
        sink,
        StopHandle::default(),
    )
    .await
    .unwrap();
    assert_eq!(first.kind, "backfill");
    let (sink, _) = collect();
    let second = engine::run(
        &config,
        RunTarget::Spec(delete_doomed()),
        options(500),
        sink,
        StopHandle::default(),
    )
    .await
    .unwrap();
    assert_ne!(first.run_id, second.run_id);
    assert_eq!(second.rows_done, 600);
    let kinds: Vec<String> = state::list_runs(&client)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(kinds, ["backfill", "delete"]);
    assert_eq!(tally(&client).await, (0, 1_400, 600, 600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_paused_and_aborted_runs_deleted_exactly_what_their_checkpoints_say() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 20_000, 1).await;
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let opts = BackfillOptions {
        max_rows_per_second: Some(1_000),
        ..options(300)
    };
    // Stopped (SIGINT in the CLI) mid-run, then resumed by id to the end.
    let stop = StopHandle::default();
    let (sink, _) = collect();
    let (run_config, run_stop, run_opts) = (config.clone(), stop.clone(), opts.clone());
    let task = tokio::spawn(async move {
        engine::run(
            &run_config,
            RunTarget::Spec(delete_doomed()),
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
    let run = run_row(&client, first.run_id).await;
    assert_eq!(run.status, state::RunStatus::Paused);
    let (doomed_left, spared, logged, distinct) = tally(&client).await;
    assert!(run.rows_done < 6_000, "stopped mid-run");
    assert_eq!(logged, run.rows_done, "the checkpoint counts every delete");
    assert_eq!(
        (doomed_left, spared, distinct),
        (6_000 - logged, 14_000, logged)
    );

    // Pause and resume from another connection while an engine is attached; then abort.
    let (sink, _) = collect();
    let (run_config, run_opts) = (config.clone(), opts.clone());
    let id = first.run_id;
    let task = tokio::spawn(async move {
        engine::run(
            &run_config,
            RunTarget::Resume(id),
            run_opts,
            sink,
            StopHandle::default(),
        )
        .await
    });
    let before = run.rows_done;
    wait_for(
        "progress after resume",
        Duration::from_secs(30),
        async || run_row(&client, id).await.rows_done > before,
    )
    .await;
    state::set_control(&client, id, Some(state::Control::Pause))
        .await
        .unwrap();
    wait_for("status paused", Duration::from_secs(10), async || {
        run_row(&client, id).await.status == state::RunStatus::Paused
    })
    .await;
    let frozen = run_row(&client, id).await.rows_done;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        run_row(&client, id).await.rows_done,
        frozen,
        "nothing deleted while paused"
    );
    state::set_control(&client, id, None).await.unwrap();
    wait_for(
        "progress after the pause",
        Duration::from_secs(30),
        async || run_row(&client, id).await.rows_done > frozen,
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
    let run = run_row(&client, id).await;
    assert_eq!(run.status, state::RunStatus::Aborted);
    let (doomed_left, spared, logged, distinct) = tally(&client).await;
    assert!(logged < 6_000);
    assert_eq!(logged, run.rows_done);
    assert_eq!(
        (doomed_left, spared, distinct),
        (6_000 - logged, 14_000, logged)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_with_three_workers_each_delete_every_row_once() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 20_000, 1).await;
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let opts = BackfillOptions {
        workers: 3,
        chunk_rows: 1_000,
        ..options(300)
    };
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (sink, _) = collect();
        let (c, o) = (config.clone(), opts.clone());
        tasks.push(tokio::spawn(async move {
            engine::run(
                &c,
                RunTarget::Spec(delete_doomed()),
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
    assert_eq!(tally(&client).await, (0, 14_000, 6_000, 6_000));
    let run = run_row(&client, ids[0]).await;
    assert_eq!((run.rows_done, run.rows_scanned), (6_000, 20_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_server_crash_and_a_restart_deleting_each_row_once() {
    let cluster = PrivateCluster::start();
    let url = cluster.create_database("shop").await;
    let client = tidegate_testkit::connect(&url).await;
    make_items(&client, 30_000, 1).await;
    drop(client);
    let config = ConnectionConfig::from_url(&url).unwrap();
    let (sink, events) = collect();
    let opts = BackfillOptions {
        max_rows_per_second: Some(2_500),
        ..options(400)
    };
    let task = tokio::spawn(async move {
        engine::run(
            &config,
            RunTarget::Spec(delete_doomed()),
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
    assert_eq!(tally(&client).await, (0, 21_000, 9_000, 9_000));
    let run = run_row(&client, outcome.run_id).await;
    assert_eq!(
        run.rows_done, 9_000,
        "no committed delete lost its checkpoint"
    );
    let journal: Vec<String> = state::read_journal(&client, outcome.run_id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert!(journal.iter().any(|e| e == "reconnecting"), "{journal:?}");
}

/// The documented choice for rows inserted while a delete runs: above the key range fixed at start, never
/// deleted (and the run still ends under a steady stream of them); inside the range, deleted when they match and
/// their key is ahead of the walk, kept when the walk has passed their key. One plain DELETE would delete none of
/// them (they are not in its snapshot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_inserted_during_the_run_follow_the_key_range_rule() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    // Even keys 2..=40_000, so odd keys can be inserted inside the range later.
    make_items(&client, 20_000, 2).await;
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let opts = BackfillOptions {
        max_rows_per_second: Some(1_500),
        ..options(300)
    };
    let stop = StopHandle::default();
    let (sink, _) = collect();
    let (run_config, run_stop, run_opts) = (config.clone(), stop.clone(), opts.clone());
    let task = tokio::spawn(async move {
        engine::run(
            &run_config,
            RunTarget::Spec(delete_doomed()),
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
    // A writer inserting matching rows above the range from the moment the run has fixed its range
    // until the test ends.
    let writer = db.connect().await;
    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let keep_writing = writing.clone();
    let inserter = tokio::spawn(async move {
        let mut next = 1_000_000i64;
        let mut inserted = 0i64;
        while keep_writing.load(std::sync::atomic::Ordering::Relaxed) {
            writer
                .execute("insert into items (id, doomed) values ($1, true)", &[&next])
                .await
                .unwrap();
            next += 1;
            inserted += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        inserted
    });

    stop.request("interrupted by SIGINT");
    let first = task.await.unwrap().unwrap();
    assert!(matches!(first.end, RunEnd::Interrupted { .. }));
    // One worker walks the keys in order: the run is stopped somewhere past its first batch and before the end.
    let walked: i64 = client
        .query_one(
            "select max(cursor[1]::int8) from tidegate.chunks where run_id = $1",
            &[&first.run_id],
        )
        .await
        .unwrap()
        .get(0);
    assert!((2..39_000).contains(&walked), "walked to {walked}");
    // Inside the range: key 1 is behind the walk, key 39_999 ahead of it; key 39_997 ahead but not matching.
    client
        .batch_execute(
            "insert into items (id, doomed) values (1, true), (39999, true), (39997, false)",
        )
        .await
        .unwrap();

    let (sink, _) = collect();
    let outcome = engine::run(
        &config,
        RunTarget::Resume(first.run_id),
        opts,
        sink,
        StopHandle::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        outcome.end,
        RunEnd::Completed,
        "the run ends while rows keep arriving"
    );
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    let inserted_above = inserter.await.unwrap();
    assert!(inserted_above > 0);
    let survivors: Vec<i64> = client
        .query(
            "select id from items where id < 1000000 and (doomed or id % 2 = 1) order by id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        survivors,
        [1, 39_997],
        "behind the walk kept; ahead deleted when matching"
    );
    let above: i64 = client
        .query_one("select count(*) from items where id >= 1000000", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        above, inserted_above,
        "nothing above the range fixed at start is touched"
    );
    let run = run_row(&client, first.run_id).await;
    assert_eq!(
        run.rows_done,
        6_000 + 1,
        "the original doomed rows and key 39_999"
    );
    let spared: i64 = client
        .query_one(
            "select count(*) from items where id <= 40000 and id % 2 = 0",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(spared, 14_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_refused_by_a_foreign_key_deletes_nothing_and_the_run_resumes_once_fixed() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 5_000, 1).await;
    client
        .batch_execute(
            "create table refs (item_id bigint references items (id));
             insert into refs values (4001);",
        )
        .await
        .unwrap();
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let (sink, _) = collect();
    let error = engine::run(
        &config,
        RunTarget::Spec(delete_doomed()),
        options(500),
        sink,
        StopHandle::default(),
    )
    .await
    .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("23503") || message.contains("foreign key"),
        "{message}"
    );
    let run = state::list_runs(&client).await.unwrap().remove(0);
    assert_eq!(run.status, state::RunStatus::Failed);
    let (_, _, logged, _) = tally(&client).await;
    assert_eq!(logged, run.rows_done, "the refused batch deleted nothing");
    assert!(logged < 1_500);
    client.batch_execute("delete from refs").await.unwrap();
    let (sink, _) = collect();
    let outcome = engine::run(
        &config,
        RunTarget::Spec(delete_doomed()),
        options(500),
        sink,
        StopHandle::default(),
    )
    .await
    .unwrap();
    assert_eq!(outcome.run_id, run.id);
    assert_eq!(tally(&client).await, (0, 3_500, 1_500, 1_500));
}
