//! The harness itself, against real clusters: fresh databases, fault handles, clean-up after a panic.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use tidegate_testkit::{PrivateCluster, TestDatabase};

#[tokio::test]
async fn each_test_database_is_fresh_and_separate() {
    let first = TestDatabase::create().await;
    let second = TestDatabase::create().await;
    assert_ne!(first.name(), second.name());
    let client = first.connect().await;
    client
        .batch_execute("create table only_in_first (id int)")
        .await
        .unwrap();
    let other = second.connect().await;
    let tables: i64 = other
        .query_one(
            "select count(*) from pg_tables where tablename = 'only_in_first'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        tables, 0,
        "a table created in one test database leaked into another"
    );
    let current: String = client
        .query_one("select current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(current, first.name());
}

#[tokio::test]
async fn a_private_cluster_survives_kill_9_and_restart() {
    let cluster = PrivateCluster::start();
    let url = cluster.create_database("faults").await;
    let client = tidegate_testkit::connect(&url).await;
    client
        .batch_execute("create table t (id int); insert into t select generate_series(1, 1000)")
        .await
        .unwrap();

    cluster.kill9();
    assert!(!cluster.is_running(), "the postmaster survived SIGKILL");
    assert!(
        client.query_one("select 1", &[]).await.is_err(),
        "a connection to a killed server still answered"
    );

    cluster.start_again();
    let client = tidegate_testkit::connect(&url).await;
    let rows: i64 = client
        .query_one("select count(*) from t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1000, "committed rows were lost in crash recovery");

    cluster.restart();
    let client = tidegate_testkit::connect(&url).await;
    let rows: i64 = client
        .query_one("select count(*) from t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1000);
}

#[tokio::test]
async fn dropping_a_private_cluster_removes_it() {
    let cluster = PrivateCluster::start();
    let dir = cluster.dir().to_path_buf();
    let pid = cluster.scratch().postmaster_pid().expect("the server runs");
    drop(cluster);
    assert!(!dir.exists(), "{} is still there", dir.display());
    assert!(
        !tidegate_db::scratch::process_alive(pid),
        "postmaster {pid} still runs"
    );
}

/// Not a test on its own: `clusters_are_cleaned_up_after_a_panic` runs it in a child process.
#[tokio::test]
#[ignore = "run as a child process by clusters_are_cleaned_up_after_a_panic"]
async fn child_starts_clusters_then_panics() {
    let db = TestDatabase::create().await;
    let shared_dir: String = db
        .connect()
        .await
        .query_one("select current_setting('data_directory')", &[])
        .await
        .unwrap()
        .get(0);
    let private = PrivateCluster::start();
    println!("SHARED_DATA_DIR={shared_dir}");
    println!("PRIVATE_DIR={}", private.dir().display());
    panic!("a test failing while it holds clusters");
}

#[test]
fn clusters_are_cleaned_up_after_a_panic() {
    if std::env::var_os(tidegate_testkit::TEST_DATABASE_URL_ENV).is_some() {
        eprintln!("skipped: the shared cluster is an external server here");
        return;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_starts_clusters_then_panics",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "the child was meant to panic:\n{stdout}"
    );
    let find = |key: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("the child did not print {key}:\n{stdout}"))
    };
    let shared_cluster_dir = find("SHARED_DATA_DIR=").parent().unwrap().to_path_buf();
    let private_dir = find("PRIVATE_DIR=");
    // The private cluster is removed as the panic unwinds; the shared one by the watchdog once the child is gone.
    assert!(
        !private_dir.exists(),
        "{} survived the panic",
        private_dir.display()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while shared_cluster_dir.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !shared_cluster_dir.exists(),
        "the watchdog left {} behind",
        shared_cluster_dir.display()
    );
}
