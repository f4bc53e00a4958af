//! Replica lag on MariaDB (`--replica`): a throwaway primary with a binary log and a replica of it (the test
//! kit's `start_primary` / `start_replica_of`, GTID replication on loopback). A replica whose SQL thread is
//! stopped reads NULL lag and holds the run (fail closed) until replication resumes; a replica delayed with
//! `MASTER_DELAY` reads a real, growing lag that throttles the run; a replica that cannot be reached, or a server
//! that is no replica, is refused before any row changes. Asserted on the engine's typed events and journal.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidegate_backfill::controller::ControllerConfig;
use tidegate_backfill::engine::{
    self, BackfillError, BackfillOptions, EventSink, Replica, RunEnd, RunTarget, StopHandle,
};
use tidegate_backfill::events::Event;
use tidegate_backfill::spec::BackfillSpec;
use tidegate_backfill::state;
use tidegate_backfill::throttle::{Signal, SignalReading, Thresholds};
use tidegate_db::driver::{Driver, Session, SessionExt};
use tidegate_db::mysql::MySqlConfig;
use tidegate_testkit::PrivateMariaDb;

fn options(batch: u64, replica: &PrivateMariaDb) -> BackfillOptions {
    let config = MySqlConfig::from_url(&replica.url()).unwrap();
    BackfillOptions {
        journal_sample_every: Duration::from_millis(200),
        controller: ControllerConfig {
            initial: batch,
            fixed: true,
            ..ControllerConfig::default()
        },
        thresholds: Thresholds {
            max_replica_lag: Duration::from_secs(1),
            // A delayed replica's lag tops out at its delay: keep it a throttle, never a critical pause.
            critical_factor: 10,
            ..Thresholds::default()
        },
        health_interval: Duration::from_millis(50),
        chunk_rows: 2_000,
        workers: 1,
        replicas: vec![Replica::new(config.redacted(), config)],
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

async fn session(url: &str) -> Box<dyn Session> {
    MySqlConfig::from_url(url).unwrap().open().await.unwrap()
}

async fn make_items(s: &dyn Session, rows: i64) {
    s.batch_execute(&format!(
        "create table items (id bigint primary key, n int not null default 0) engine=innodb;
         insert into items (id) select seq from seq_1_to_{rows}"
    ))
    .await
    .unwrap();
}

async fn histogram(s: &dyn Session) -> Vec<(i64, i64)> {
    s.rows(
        "select n, count(*) as c from items group by n order by n",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("n").unwrap(), r.get("c").unwrap()))
    .collect()
}

/// The replica-lag readings of the throttles the engine reported.
fn replica_lag_readings(events: &Mutex<Vec<Event>>) -> Vec<SignalReading> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Throttled {
                signals, readings, ..
            } if signals.contains(&Signal::ReplicaLag) => Some(readings.clone()),
            _ => None,
        })
        .flatten()
        .filter(|r| r.signal == Signal::ReplicaLag)
        .collect()
}

async fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn run_task(
    primary: &PrivateMariaDb,
    opts: BackfillOptions,
    sink: EventSink,
) -> tokio::task::JoinHandle<Result<engine::Outcome, BackfillError>> {
    let config = MySqlConfig::from_url(&primary.url()).unwrap();
    tokio::spawn(async move {
        engine::run(
            &config,
            RunTarget::Spec(BackfillSpec::update("items", "n = n + 1")),
            opts,
            sink,
            StopHandle::default(),
        )
        .await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_replica_holds_the_run_until_it_replicates_again() {
    let primary = PrivateMariaDb::start_primary();
    let replica = PrivateMariaDb::start_replica_of(&primary);
    let p = session(&primary.url()).await;
    let r = session(&replica.url()).await;
    make_items(p.as_ref(), 5_000).await;
    replica.wait_caught_up(&primary);
    assert_eq!(histogram(r.as_ref()).await, vec![(0, 5_000)]);

    // SQL thread stopped: Seconds_Behind_Master is NULL, which is no reading.
    r.batch_execute("STOP SLAVE SQL_THREAD").await.unwrap();
    let (sink, events) = collect();
    let task = run_task(&primary, options(500, &replica), sink);
    wait_for(
        "a throttle on the replica's lag",
        Duration::from_secs(30),
        || !replica_lag_readings(&events).is_empty(),
    )
    .await;
    let readings = replica_lag_readings(&events);
    // Fail closed: the reading is unknown (no value), not a lag of zero.
    assert!(readings.iter().all(|r| r.value.is_none()), "{readings:?}");
    // No progress while the replica is stopped: not one batch, not one row.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(histogram(p.as_ref()).await, vec![(0, 5_000)]);
    assert!(!events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::Batch { .. })));
    assert!(!task.is_finished());

    r.batch_execute("START SLAVE SQL_THREAD").await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("the run completes once the replica replicates")
        .unwrap()
        .unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    assert_eq!(outcome.rows_done, 5_000);
    assert_eq!(histogram(p.as_ref()).await, vec![(1, 5_000)]);
    assert!(events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::ThrottleLifted { .. })));
    // The journal keeps the throttle as types: the replica-lag signal, unread.
    let journal = state::read_journal(p.as_ref(), outcome.run_id)
        .await
        .unwrap();
    let throttled: Vec<SignalReading> = journal
        .iter()
        .filter(|e| e.event == "throttled")
        .flat_map(|e| {
            serde_json::from_value::<Vec<SignalReading>>(e.detail["readings"].clone())
                .unwrap_or_default()
        })
        .collect();
    assert!(
        throttled
            .iter()
            .any(|r| r.signal == Signal::ReplicaLag && r.value.is_none()),
        "{throttled:?}"
    );
    // Every row reached the replica exactly once too.
    replica.wait_caught_up(&primary);
    assert_eq!(histogram(r.as_ref()).await, vec![(1, 5_000)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_replica_throttles_on_its_real_lag() {
    let primary = PrivateMariaDb::start_primary();
    let replica = PrivateMariaDb::start_replica_of(&primary);
    let p = session(&primary.url()).await;
    let r = session(&replica.url()).await;
    make_items(p.as_ref(), 3_000).await;
    replica.wait_caught_up(&primary);
    // Every event applied 3 s after the primary wrote it: Seconds_Behind_Master climbs to 3 after each write.
    r.batch_execute("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 3; START SLAVE")
        .await
        .unwrap();
    let (sink, events) = collect();
    let opts = BackfillOptions {
        // Slow enough that the lag shows before the run is over.
        max_rows_per_second: Some(1_000),
        ..options(100, &replica)
    };
    let task = run_task(&primary, opts, sink);
    wait_for(
        "a throttle on a real replica lag over the 1 s limit",
        Duration::from_secs(60),
        || {
            replica_lag_readings(&events)
                .iter()
                .any(|r| r.value.is_some_and(|lag| lag > 1.0) && r.threshold == Some(1.0))
        },
    )
    .await;
    // The engine's own journal and status writes reach a delayed replica 3 s late too, so it stays 3 s behind
    // for as long as the run goes (a delayed replica is no replica to watch): the delay ends, and the run with it.
    assert!(!task.is_finished());
    r.batch_execute("STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 0; START SLAVE")
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("the run completes once the replica keeps up")
        .unwrap()
        .unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    assert_eq!(histogram(p.as_ref()).await, vec![(1, 3_000)]);
    replica.wait_caught_up(&primary);
    assert_eq!(histogram(r.as_ref()).await, vec![(1, 3_000)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_replica_or_a_server_that_is_no_replica_is_refused_before_any_row_changes() {
    let server = PrivateMariaDb::start();
    let s = session(&server.url()).await;
    make_items(s.as_ref(), 1_000).await;
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable =
        MySqlConfig::from_url(&format!("mysql://watcher:s3cret@127.0.0.1:{port}/")).unwrap();
    let not_a_replica = MySqlConfig::from_url(&server.url()).unwrap();
    for (replica, expected) in [
        (unreachable, "connecting to the replica"),
        (not_a_replica, "is not a replica"),
    ] {
        let (sink, events) = collect();
        let opts = BackfillOptions {
            replicas: vec![Replica::new(replica.redacted(), replica.clone())],
            ..BackfillOptions::default()
        };
        let config = MySqlConfig::from_url(&server.url()).unwrap();
        let error = engine::run(
            &config,
            RunTarget::Spec(BackfillSpec::update("items", "n = n + 1")),
            opts,
            sink,
            StopHandle::default(),
        )
        .await
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains(expected), "{message}");
        assert!(message.contains(&replica.redacted()), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
        match expected {
            "is not a replica" => assert!(matches!(error, BackfillError::Input(_)), "{error:?}"),
            _ => assert!(matches!(error, BackfillError::Database(_)), "{error:?}"),
        }
        // Nothing was written: no row, no state, no run.
        assert!(events.lock().unwrap().is_empty());
        assert_eq!(histogram(s.as_ref()).await, vec![(0, 1_000)]);
        assert!(!state::schema_exists(s.as_ref()).await.unwrap());
    }
}

/// The privilege the docs name: without SLAVE MONITOR the replica's status cannot be read, refused at start with
/// what to grant; with it (and nothing else on the replica) the run is watched and completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_replica_needs_slave_monitor_and_nothing_more() {
    let primary = PrivateMariaDb::start_primary();
    let replica = PrivateMariaDb::start_replica_of(&primary);
    let p = session(&primary.url()).await;
    make_items(p.as_ref(), 1_000).await;
    // Made on the replica itself (root may write there despite read_only); the primary never sees it.
    let r = session(&replica.url()).await;
    r.batch_execute("CREATE USER 'watcher'@'127.0.0.1' IDENTIFIED BY 'w4tch'")
        .await
        .unwrap();
    replica.wait_caught_up(&primary);
    let watcher = MySqlConfig::from_url(&format!(
        "mysql://watcher:w4tch@127.0.0.1:{}/",
        replica.port()
    ))
    .unwrap();
    let opts = || BackfillOptions {
        replicas: vec![Replica::new(watcher.redacted(), watcher.clone())],
        ..options(500, &replica)
    };
    let (sink, events) = collect();
    let config = MySqlConfig::from_url(&primary.url()).unwrap();
    let spec = || RunTarget::Spec(BackfillSpec::update("items", "n = n + 1"));
    let error = engine::run(&config, spec(), opts(), sink, StopHandle::default())
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, BackfillError::Input(_)), "{error:?}");
    assert!(
        message.contains("SLAVE MONITOR") && message.contains("error 1227"),
        "{message}"
    );
    assert!(!message.contains("w4tch"), "{message}");
    assert!(events.lock().unwrap().is_empty());
    assert_eq!(histogram(p.as_ref()).await, vec![(0, 1_000)]);

    r.batch_execute("GRANT SLAVE MONITOR ON *.* TO 'watcher'@'127.0.0.1'")
        .await
        .unwrap();
    let (sink, _) = collect();
    let outcome = engine::run(&config, spec(), opts(), sink, StopHandle::default())
        .await
        .unwrap();
    assert_eq!(outcome.end, RunEnd::Completed);
    assert_eq!(histogram(p.as_ref()).await, vec![(1, 1_000)]);
}
