//! `tidegate status` as a user runs it: the real binary against real PostgreSQL.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use tidegate_testkit::TestDatabase;
use tokio_postgres::Client;

const TIDEGATE: &str = env!("CARGO_BIN_EXE_tidegate");

fn tidegate(args: &[&str]) -> Output {
    Command::new(TIDEGATE).args(args).output().unwrap()
}

fn run(verb: &str, dir: &Path, url: &str, extra: &[&str]) -> Output {
    let mut args = vec![verb, dir.to_str().unwrap(), "--db", url];
    args.extend_from_slice(extra);
    tidegate(&args)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn write(dir: &Path, name: &str, sql: &str) {
    std::fs::write(dir.join(name), sql).unwrap();
}

fn status_json(dir: &Path, url: &str) -> (Option<i32>, serde_json::Value) {
    let output = run("status", dir, url, &["--format", "json"]);
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}{}", stdout(&output), stderr(&output)));
    (output.status.code(), report)
}

fn states(report: &serde_json::Value) -> Vec<(String, String)> {
    report["migrations"]
        .as_array()
        .expect("a list of migrations")
        .iter()
        .map(|line| {
            (
                line["version"].as_str().unwrap().to_string(),
                line["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

async fn tidegate_schema_exists(client: &Client) -> bool {
    client
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'tidegate')",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn status_reads_a_fresh_database_without_creating_anything() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "0001_a.sql",
        "CREATE TABLE a (id bigint PRIMARY KEY);\n",
    );
    write(
        dir.path(),
        "0002_b.sql",
        "CREATE TABLE b (id bigint PRIMARY KEY);\n",
    );

    let (code, report) = status_json(dir.path(), db.url());
    assert_eq!(code, Some(1), "pending migrations: exit 1");
    assert_eq!(report["state_schema"], false);
    assert_eq!(report["all_applied"], false);
    assert_eq!(report["counts"], serde_json::json!({"pending": 2}));
    assert_eq!(
        states(&report),
        pairs(&[("0001_a.sql", "pending"), ("0002_b.sql", "pending")])
    );
    let client = db.connect().await;
    assert!(
        !tidegate_schema_exists(&client).await,
        "status created nothing"
    );

    let text = run("status", dir.path(), db.url(), &[]);
    assert_eq!(text.status.code(), Some(1));
    let out = stdout(&text);
    assert!(
        out.contains("2 pending") && out.contains("no tidegate schema"),
        "{out}"
    );

    // Applied, it is clean; and it still only reads: it works on a database that refuses writes, as a hot
    // standby does.
    let applied = run("apply", dir.path(), db.url(), &[]);
    assert!(applied.status.success(), "{}", stderr(&applied));
    client
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" SET default_transaction_read_only = on",
            db.name()
        ))
        .await
        .unwrap();
    let (code, report) = status_json(dir.path(), db.url());
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["all_applied"], true);
    assert_eq!(
        states(&report),
        pairs(&[("0001_a.sql", "applied"), ("0002_b.sql", "applied")])
    );
    let text = run("status", dir.path(), db.url(), &[]);
    assert_eq!(text.status.code(), Some(0), "{}", stderr(&text));
    assert!(stdout(&text).contains("2 applied"), "{}", stdout(&text));
}

#[tokio::test]
async fn status_tells_baselined_applied_changed_failed_and_pending_apart() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let client = db.connect().await;
    client
        .batch_execute("CREATE TABLE users (id bigint PRIMARY KEY)")
        .await
        .unwrap();
    write(
        dir.path(),
        "0001_users.sql",
        "CREATE TABLE users (id bigint PRIMARY KEY);\n",
    );
    write(
        dir.path(),
        "0002_email.sql",
        "ALTER TABLE users ADD COLUMN email text;\n",
    );
    let baselined = run("baseline", dir.path(), db.url(), &["--to", "0001"]);
    assert!(baselined.status.success(), "{}", stderr(&baselined));
    let applied = run("apply", dir.path(), db.url(), &[]);
    assert!(applied.status.success(), "{}", stderr(&applied));

    write(
        dir.path(),
        "0003_broken.sql",
        "CREATE TABLE dup (id bigint PRIMARY KEY);\nCREATE TABLE dup (id bigint PRIMARY KEY);\n",
    );
    write(
        dir.path(),
        "0004_later.sql",
        "CREATE TABLE later (id bigint PRIMARY KEY);\n",
    );
    let failed = run("apply", dir.path(), db.url(), &[]);
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    // Someone edits a migration that already ran.
    write(
        dir.path(),
        "0002_email.sql",
        "ALTER TABLE users ADD COLUMN email text NOT NULL DEFAULT '';\n",
    );

    let (code, report) = status_json(dir.path(), db.url());
    assert_eq!(code, Some(1));
    assert_eq!(
        states(&report),
        pairs(&[
            ("0001_users.sql", "baselined"),
            ("0002_email.sql", "changed"),
            ("0003_broken.sql", "failed"),
            ("0004_later.sql", "pending"),
        ])
    );
    let lines = report["migrations"].as_array().unwrap();
    assert_ne!(lines[1]["recorded_checksum"], lines[1]["file_checksum"]);
    assert_eq!(
        (lines[2]["phase"].as_u64(), lines[2]["phases"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(
        lines[2]["last_error"]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{report}"
    );

    let text = run("status", dir.path(), db.url(), &[]);
    assert_eq!(text.status.code(), Some(1));
    let out = stdout(&text);
    for expected in [
        "1 baselined",
        "1 pending",
        "1 failed",
        "1 changed",
        "the file changed since it was applied",
        "at phase 1 of 1",
        "already exists",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
}

#[tokio::test]
async fn status_points_at_baseline_when_a_framework_history_is_unadopted() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "000001_a.up.sql",
        "CREATE TABLE a (id bigint PRIMARY KEY);\n",
    );
    let client = db.connect().await;
    client
        .batch_execute(
            "CREATE TABLE a (id bigint PRIMARY KEY);
             CREATE TABLE IF NOT EXISTS \"public\".\"schema_migrations\" (version bigint not null primary key, dirty boolean not null);
             INSERT INTO \"public\".\"schema_migrations\" (version, dirty) VALUES (1, false);",
        )
        .await
        .unwrap();
    let output = run("status", dir.path(), db.url(), &[]);
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    assert!(
        out.contains("golang-migrate") && out.contains("tidegate baseline"),
        "{out}"
    );
    assert!(!tidegate_schema_exists(&client).await);
}

/// A backfill phase in progress shows its rows while apply runs; once apply is killed, the migration shows as
/// interrupted at that phase, and the next apply finishes it.
#[tokio::test]
async fn a_running_backfill_shows_its_progress_then_its_interruption() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "0001_orders.sql",
        "CREATE TABLE orders (id bigint PRIMARY KEY, order_status text NOT NULL);\n",
    );
    let first = run("apply", dir.path(), db.url(), &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let client = db.connect().await;
    client
        .batch_execute(
            "INSERT INTO orders SELECT g, 'new' FROM generate_series(1, 20000) g; ANALYZE orders",
        )
        .await
        .unwrap();
    write(
        dir.path(),
        "0002_status_v2.sql",
        "ALTER TABLE orders ADD COLUMN order_status_v2 text;\nUPDATE orders SET order_status_v2 = order_status;\n",
    );
    let mut apply = Command::new(TIDEGATE)
        .args([
            "apply",
            dir.path().to_str().unwrap(),
            "--db",
            db.url(),
            "--max-rows-per-second",
            "500",
            "--batch-time",
            "20ms",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let mut running = None;
    for _ in 0..300 {
        let (code, report) = status_json(dir.path(), db.url());
        let line = report["migrations"][1].clone();
        if line["state"] == "running" && line["backfill"]["rows_done"].as_i64().unwrap_or(0) > 0 {
            assert_eq!(code, Some(1), "a running migration is not applied yet");
            running = Some(line);
            break;
        }
        assert!(apply.try_wait().unwrap().is_none(), "apply ended early");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let running = running.expect("status showed the backfill running");
    assert_eq!(
        (running["phase"].as_u64(), running["phases"].as_u64()),
        (Some(2), Some(2))
    );
    assert!(
        running["backfill"]["estimated_rows"].as_i64().unwrap() > 0,
        "{running}"
    );
    let text = stdout(&run("status", dir.path(), db.url(), &[]));
    assert!(
        text.contains("an apply is running") && text.contains("phase 2 of 2; backfill run"),
        "{text}"
    );

    apply.kill().unwrap();
    apply.wait().unwrap();
    let mut interrupted = None;
    for _ in 0..300 {
        let (code, report) = status_json(dir.path(), db.url());
        if report["migrations"][1]["state"] == "interrupted" {
            assert_eq!(code, Some(1));
            interrupted = Some(report);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = interrupted.expect("status showed the migration interrupted once apply died");
    let line = &report["migrations"][1];
    assert_eq!(line["phase"].as_u64(), Some(2));
    assert!(
        line["backfill"]["rows_done"].as_i64().unwrap() > 0,
        "{line}"
    );
    let text = stdout(&run("status", dir.path(), db.url(), &[]));
    assert!(
        text.contains("interrupted") && text.contains("`tidegate apply` resumes it"),
        "{text}"
    );

    let resumed = run("apply", dir.path(), db.url(), &[]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let (code, report) = status_json(dir.path(), db.url());
    assert_eq!(code, Some(0), "{report}");
}
