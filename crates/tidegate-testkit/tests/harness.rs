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

/// `mariadb -h 127.0.0.1 -P PORT -u root scratch -e SQL` (no MySQL driver is needed to check the harness).
fn mariadb(port: u16, sql: &str) -> String {
    let output = Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "-u",
            "root",
            "-N",
            "-B",
            "scratch",
            "-e",
            sql,
        ])
        .output()
        .expect("the mariadb client is installed beside the server (scripts/setup.sh)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn a_private_mariadb_survives_kill_9_and_restart() {
    let server = tidegate_testkit::PrivateMariaDb::start();
    mariadb(
        server.port(),
        "create table t (id int primary key) engine=innodb; insert into t values (1), (2)",
    );
    server.kill9();
    assert!(!server.is_running());
    server.start_again();
    assert_eq!(mariadb(server.port(), "select count(*) from t"), "2");
    server.restart();
    assert_eq!(mariadb(server.port(), "select sum(id) from t"), "3");
    let dir = server.server().dir.clone();
    drop(server);
    assert!(!dir.exists(), "{} survived the drop", dir.display());
}

/// Not a test on its own: `a_mariadb_is_cleaned_up_when_its_test_process_dies` runs it in a child process.
#[test]
#[ignore = "run as a child process by a_mariadb_is_cleaned_up_when_its_test_process_dies"]
fn child_starts_a_mariadb_then_aborts() {
    let server = tidegate_testkit::PrivateMariaDb::start();
    let pid = std::fs::read_to_string(server.server().dir.join("mariadbd.pid")).unwrap();
    println!("MARIADB_DIR={}", server.server().dir.display());
    println!("MARIADB_PID={}", pid.trim());
    // No unwinding, no Drop: only the watchdog can clean up.
    std::process::abort();
}

#[test]
fn a_mariadb_is_cleaned_up_when_its_test_process_dies() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_starts_a_mariadb_then_aborts",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "the child was meant to abort:\n{stdout}"
    );
    let find = |key: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .unwrap_or_else(|| panic!("the child did not print {key}:\n{stdout}"))
            .to_string()
    };
    let dir = PathBuf::from(find("MARIADB_DIR="));
    let pid: i32 = find("MARIADB_PID=").parse().unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while (dir.exists() || tidegate_db::scratch::process_alive(pid))
        && std::time::Instant::now() < until
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!dir.exists(), "{} survived its test process", dir.display());
    assert!(
        !tidegate_db::scratch::process_alive(pid),
        "mariadbd {pid} still runs"
    );
}
