//! The observer against a real server: a lock held for a known time from another connection is seen for that
//! long, within the sampling resolution; a writer queued behind it is seen waiting; marks see WAL and size grow.

use std::time::{Duration, Instant};

use tidegate_db::connect::ConnectionConfig;
use tidegate_db::observe;
use tidegate_rehearse::locks::summarize;
use tidegate_rehearse::observer::Observer;
use tidegate_sql::LockLevel;
use tidegate_testkit::TestDatabase;

async fn table_with_rows(db: &TestDatabase) -> u32 {
    let client = db.connect().await;
    client
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'x' FROM generate_series(1, 1000) g")
        .await
        .unwrap();
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let session = config.connect().await.unwrap();
    observe::table_oid(&session, "public.t")
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_exclusive_lock_is_seen_for_as_long_as_it_is_held_and_the_writer_behind_it_waiting(
) {
    let db = TestDatabase::create().await;
    let oid = table_with_rows(&db).await;
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let observer = Observer::start(&config, vec![oid], Observer::DEFAULT_PERIOD)
        .await
        .unwrap();

    let holder = db.connect().await;
    let lock_sent = Instant::now();
    holder
        .batch_execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let locked = Instant::now();
    // A writer queues behind the lock and proceeds once it is released.
    let writer = db.connect().await;
    let write = tokio::spawn(async move {
        writer
            .batch_execute("UPDATE t SET v = 'y' WHERE id = 1")
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let commit_sent = Instant::now();
    holder.batch_execute("COMMIT").await.unwrap();
    let released = Instant::now();
    write.await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let samples = observer.stop().await.unwrap();

    let summary = summarize(&samples, Observer::DEFAULT_PERIOD);
    let blocking = summary.longest_blocking.clone().expect("the lock was seen");
    assert_eq!(blocking.relation, "t");
    assert_eq!(blocking.strongest_mode, LockLevel::AccessExclusive);
    // It was held at least from the LOCK's reply to the COMMIT's sending, at most from sending LOCK to COMMIT's
    // reply; the sampler's bounds must contain that.
    let held_at_least = (commit_sent - locked).as_secs_f64() * 1000.0;
    let held_at_most = (released - lock_sent).as_secs_f64() * 1000.0;
    assert!(
        blocking.stretch.upper_ms >= held_at_least,
        "{blocking:?} vs at least {held_at_least} ms"
    );
    assert!(
        blocking.stretch.lower_ms <= held_at_most,
        "{blocking:?} vs at most {held_at_most} ms"
    );
    // And its estimate is within the resolution the samples achieved.
    let resolution = 2.0 * summary.widest_gap_ms;
    assert!(
        blocking.stretch.estimated_ms >= held_at_least - resolution
            && blocking.stretch.estimated_ms <= held_at_most + resolution,
        "{blocking:?}: held {held_at_least}–{held_at_most} ms, resolution {resolution} ms"
    );
    // Every mode seen is listed: the granted ACCESS EXCLUSIVE and the writer's waiting ROW EXCLUSIVE.
    let seen: Vec<(LockLevel, bool)> = summary
        .locks
        .iter()
        .filter(|lock| lock.relation == "t")
        .map(|lock| (lock.mode, lock.granted))
        .collect();
    assert!(
        seen.contains(&(LockLevel::AccessExclusive, true)),
        "{seen:?}"
    );
    assert!(seen.contains(&(LockLevel::RowExclusive, false)), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marks_see_the_wal_and_the_table_grow() {
    let db = TestDatabase::create().await;
    let oid = table_with_rows(&db).await;
    let config = ConnectionConfig::from_url(db.url()).unwrap();
    let observer = Observer::start(&config, vec![oid], Observer::DEFAULT_PERIOD)
        .await
        .unwrap();
    let before = observer.mark().await.unwrap();
    let client = db.connect().await;
    client
        .batch_execute(
            "INSERT INTO t SELECT g, repeat('z', 100) FROM generate_series(1001, 21000) g",
        )
        .await
        .unwrap();
    let marker = observer.marker();
    let after = tokio::task::spawn_blocking(move || marker.mark_blocking())
        .await
        .unwrap()
        .unwrap();
    observer.stop().await.unwrap();
    // 20,000 rows of about 130 bytes: well over a megabyte of heap, and the WAL that wrote it.
    assert!(
        after.wal_position - before.wal_position > 2_000_000,
        "{before:?} → {after:?}"
    );
    assert_eq!(after.sizes.len(), 1);
    assert!(after.sizes[0].total_bytes - before.sizes[0].total_bytes > 2_000_000);
    assert!(after.sizes[0].index_bytes > before.sizes[0].index_bytes);
    assert!(after.at > before.at);
}
