//! `tidegate demo` end to end on its embedded default (a scratch server), small enough for a test.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TIDEGATE: &str = env!("CARGO_BIN_EXE_tidegate");

fn scratch_dir_from(stderr: &str) -> PathBuf {
    let line = stderr
        .lines()
        .find(|line| line.starts_with("scratch PostgreSQL"))
        .unwrap_or_else(|| panic!("the demo did not say where its scratch server is:\n{stderr}"));
    let after = line.split(" started in ").nth(1).unwrap();
    PathBuf::from(after.split(" (").next().unwrap().trim())
}

#[test]
fn the_demo_compares_both_acts_and_cleans_up() {
    let report = tempfile::Builder::new().suffix(".html").tempfile().unwrap();
    let output = Command::new(TIDEGATE)
        .args([
            "demo",
            "--rows",
            "20000",
            "--rate",
            "100",
            "--connections",
            "4",
            "--settle",
            "1s",
        ])
        .args(["--format", "json", "--report"])
        .arg(report.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the demo failed:\n{stderr}");

    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON document");
    for act in ["naive", "tidegate"] {
        for key in ["duration_s", "p50_ms", "p99_ms", "max_ms", "errors"] {
            assert!(json[act][key].is_number(), "{act}.{key} missing in {json}");
        }
        assert!(
            json[act]["migration_error"].is_null(),
            "{act} failed: {}",
            json[act]["migration_error"]
        );
        assert!(json[act]["per_second"]
            .as_array()
            .is_some_and(|seconds| !seconds.is_empty()));
    }
    let labels: Vec<&str> = json["tidegate"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|event| event["label"].as_str())
        .collect();
    assert!(
        labels
            .iter()
            .any(|label| label.starts_with("phase 1 committed")),
        "{labels:?}"
    );
    assert!(
        labels
            .iter()
            .any(|label| label.contains("rows backfilled in")),
        "{labels:?}"
    );

    let html = std::fs::read_to_string(report.path()).unwrap();
    assert_eq!(html.matches("<svg").count(), 2, "one chart per act");
    assert!(html.contains("phase 1 committed"));

    let dir = scratch_dir_from(&stderr);
    assert!(
        !dir.exists(),
        "the demo left its scratch server in {}",
        dir.display()
    );
}

#[test]
fn ctrl_c_stops_the_demo_and_removes_its_server() {
    let mut child = Command::new(TIDEGATE)
        .args([
            "demo", "--rows", "300000", "--rate", "50", "--settle", "10s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    // Wait for the first act to start, then interrupt it as a user would.
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("the demo ended before its first act:\n{seen}");
        }
        seen.push_str(&line);
        if line.contains("ALTER TABLE + whole-table UPDATE") {
            break;
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not stop after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    seen.push_str(&rest);
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(seen.contains("interrupted"), "{seen}");
    let dir = scratch_dir_from(&seen);
    assert!(
        !dir.exists(),
        "Ctrl-C left the scratch server in {}",
        dir.display()
    );
}

/// On `--db` the database is the user's: the demo refuses their `orders`, and however it ends it drops its own.
#[tokio::test]
async fn on_a_users_database_the_demo_never_leaves_or_takes_an_orders_table() {
    let db = tidegate_testkit::TestDatabase::create().await;
    let client = db.connect().await;
    client
        .batch_execute("CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders VALUES (7)")
        .await
        .unwrap();
    let output = Command::new(TIDEGATE)
        .args(["demo", "--rows", "1000", "--db", db.url()])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{log}");
    assert!(log.contains("already has a table orders"), "{log}");
    let kept: i64 = client
        .query_one("SELECT count(*) FROM orders WHERE id = 7", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, 1, "the user's table is untouched");
    client.batch_execute("DROP TABLE orders").await.unwrap();

    // Interrupted in its first act, the demo drops the table it created.
    let mut child = Command::new(TIDEGATE)
        .args([
            "demo", "--rows", "200000", "--rate", "50", "--settle", "10s", "--db",
        ])
        .arg(db.url())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("the demo ended before its first act:\n{seen}");
        }
        seen.push_str(&line);
        if line.contains("ALTER TABLE + whole-table UPDATE") {
            break;
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    seen.push_str(&rest);
    assert_eq!(status.code(), Some(130), "{seen}");
    let left: bool = client
        .query_one("SELECT to_regclass('orders') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!left, "Ctrl-C left the demo's orders table behind:\n{seen}");
}
