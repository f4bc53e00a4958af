//! The engine's speed and foreground machinery against a real PostgreSQL: the snapshot held for speed and let go
//! for a session that waits on it, the write-path probe against the foreground budget, and `--workers auto`.
//! Behaviour is asserted, never timings.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidegate_backfill::controller::ControllerConfig;
use tidegate_backfill::engine::{
    self, BackfillOptions, EventSink, ForegroundBudget, RunEnd, RunTarget, StopHandle,
};
use tidegate_backfill::events::Event;
use tidegate_backfill::scaling::ScalerConfig;
use tidegate_backfill::spec::BackfillSpec;
use tidegate_backfill::state;
use tidegate_backfill::throttle::Signal;
use tidegate_db::connect::ConnectionConfig;
use tidegate_testkit::TestDatabase;
use tokio_postgres::Client;

fn options(batch: u64) -> BackfillOptions {
    BackfillOptions {
        journal_sample_every: Duration::from_millis(200),
        controller: ControllerConfig {
            initial: batch,
            fixed: true,
            ..ControllerConfig::default()
        },
        health_interval: Duration::from_millis(50),
        chunk_rows: 1_000,
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
            "create table items (id bigint primary key, n int not null default 0);
             insert into items (id) select g from generate_series(1, {rows}) g;
             create table side (flag boolean not null); insert into side values (false);
             analyze items;"
        ))
        .await
        .unwrap();
}

async fn histogram(client: &Client) -> Vec<(i32, i64)> {
    client
        .query("select n, count(*) from items group by n order by n", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
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

fn notes(events: &Mutex<Vec<Event>>) -> Vec<String> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Note { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn spawn_run(
    url: &str,
    options: BackfillOptions,
    sink: EventSink,
) -> tokio::task::JoinHandle<Result<engine::Outcome, engine::BackfillError>> {
    let config = ConnectionConfig::from_url(url).unwrap();
    tokio::spawn(async move {
        engine::run(
            &config,
            RunTarget::Spec(BackfillSpec::update("items", "n = n + 1")),
            options,
            sink,
            StopHandle::default(),
        )
        .await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_held_for_speed_is_let_go_for_a_concurrent_index_build() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 20_000).await;
    let (sink, events) = collect();
    let task = spawn_run(
        db.url(),
        BackfillOptions {
            max_rows_per_second: Some(1_000),
            hold_horizon: Some(Duration::from_secs(600)),
            ..options(200)
        },
        sink,
    );
    // The holder: an idle read-only transaction of ours with a snapshot (backend_xmin) while batches run.
    wait_for(
        "the snapshot to be held",
        Duration::from_secs(30),
        async || {
            client
                .query_one(
                    "select count(*) from pg_stat_activity where query = 'SELECT 1 AS held' \
                 and state = 'idle in transaction' and backend_xmin is not null",
                    &[],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
                == 1
        },
    )
    .await;
    // CREATE INDEX CONCURRENTLY waits for every older snapshot: it finishes while the run still goes only if the
    // holder lets go of its snapshot for it (it would hold it for ten minutes otherwise).
    let builder = db.connect().await;
    builder
        .batch_execute("set statement_timeout = '60s'")
        .await
        .unwrap();
    builder
        .batch_execute("create index concurrently items_n on items (n)")
        .await
        .unwrap();
    let id = state::list_runs(&client).await.unwrap()[0].id;
    let run = state::find_run(&client, id).await.unwrap().unwrap();
    assert!(
        !run.is_finished() && run.rows_done < 20_000,
        "the index was built while the run went on ({run:?})"
    );
    let valid: bool = client
        .query_one(
            "select indisvalid from pg_index where indexrelid = 'items_n'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(valid);
    let outcome = task.await.unwrap().unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    assert_eq!(histogram(&client).await, vec![(1, 20_000)]);
    assert!(
        notes(&events)
            .iter()
            .any(|n| n.contains("let go of the snapshot") && n.contains("1 session(s) waited")),
        "{:?}",
        notes(&events)
    );
    // Nothing of ours stays behind once the run has ended.
    let ours: i64 = client
        .query_one(
            "select count(*) from pg_stat_activity where query = 'SELECT 1 AS held' and state <> 'idle'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(ours, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_writes_over_the_foreground_budget_hold_the_run_back() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 20_000).await;
    let (sink, events) = collect();
    let mut opts = BackfillOptions {
        max_rows_per_second: Some(4_000),
        foreground: ForegroundBudget::Limit(Duration::from_millis(30)),
        ..options(200)
    };
    opts.thresholds.critical_recovery = Duration::from_millis(500);
    let task = spawn_run(db.url(), opts, sink);
    let seen = events.clone();
    wait_for("progress", Duration::from_secs(30), async || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Batch { .. }))
    })
    .await;
    // Another session share-locks every row: an application UPDATE of any row would wait now.
    let locker = db.connect().await;
    locker
        .batch_execute("begin; select count(*) from (select id from items for share) locked")
        .await
        .unwrap();
    let seen = events.clone();
    wait_for(
        "the foreground budget to hold the run back",
        Duration::from_secs(20),
        async || {
            seen.lock().unwrap().iter().any(|e| match e {
                Event::Throttled { signals, .. } => signals.contains(&Signal::ForegroundLatency),
                Event::Paused { critical, .. } => critical.contains(&Signal::ForegroundLatency),
                _ => false,
            })
        },
    )
    .await;
    locker.batch_execute("commit").await.unwrap();
    let outcome = task.await.unwrap().unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    // The probe locked rows and rolled back: every row changed exactly once, by the batches alone.
    assert_eq!(histogram(&client).await, vec![(1, 20_000)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_automatic_budget_is_measured_before_the_run_and_said() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 3_000).await;
    let (sink, events) = collect();
    let outcome = spawn_run(db.url(), options(500), sink)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    let budget = notes(&events)
        .into_iter()
        .find(|n| n.starts_with("foreground budget "))
        .expect("the budget is said");
    assert!(budget.contains("over 20 probes before the run"), "{budget}");
    // Off means no write-path probe at all.
    client
        .batch_execute("update items set n = 0")
        .await
        .unwrap();
    let (sink, events) = collect();
    let outcome = spawn_run(
        db.url(),
        BackfillOptions {
            foreground: ForegroundBudget::Off,
            restart: true,
            rerun_finished: true,
            ..options(500)
        },
        sink,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    assert!(!notes(&events)
        .iter()
        .any(|n| n.contains("foreground budget")));
    assert_eq!(histogram(&client).await, vec![(1, 3_000)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_workers_grow_shrink_under_a_throttle_and_change_every_row_once() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 60_000).await;
    let (sink, events) = collect();
    let task = spawn_run(
        db.url(),
        BackfillOptions {
            max_rows_per_second: Some(6_000),
            throttle_query: Some("select flag from side".into()),
            // Every added worker is kept while healthy, so the count depends on the throttle alone.
            scale_workers: Some(ScalerConfig {
                max: 3,
                window: Duration::from_millis(300),
                warmup: Duration::ZERO,
                first_window: Duration::from_millis(300),
                min_gain: -1.0,
                max_fg_slowdown: f64::INFINITY,
            }),
            ..options(200)
        },
        sink,
    );
    let seen = events.clone();
    // Three workers, and the third has run a batch: the throttle comes after, whatever the machine's pace.
    wait_for("three workers", Duration::from_secs(30), async || {
        notes(&seen).iter().any(|n| n.starts_with("workers: 3"))
            && seen
                .lock()
                .unwrap()
                .iter()
                .any(|e| matches!(e, Event::Batch { worker: 2, .. }))
    })
    .await;
    client
        .batch_execute("update side set flag = true")
        .await
        .unwrap();
    let seen = events.clone();
    wait_for(
        "a worker removed by the throttle",
        Duration::from_secs(30),
        async || {
            notes(&seen)
                .iter()
                .any(|n| n.starts_with("workers: 2 (throttled with 3 workers"))
        },
    )
    .await;
    client
        .batch_execute("update side set flag = false")
        .await
        .unwrap();
    let outcome = task.await.unwrap().unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    assert_eq!(histogram(&client).await, vec![(1, 60_000)]);
    let workers: std::collections::BTreeSet<u32> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Batch { worker, .. } => Some(*worker),
            _ => None,
        })
        .collect();
    assert_eq!(workers, [0, 1, 2].into_iter().collect());
    // The lowered ceiling holds: no third worker again after the throttle.
    let after: Vec<String> = notes(&events)
        .into_iter()
        .skip_while(|n| !n.starts_with("workers: 2 (throttled"))
        .collect();
    assert!(
        !after.iter().any(|n| n.starts_with("workers: 3")),
        "{after:?}"
    );
}
