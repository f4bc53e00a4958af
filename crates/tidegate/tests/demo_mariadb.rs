//! `tidegate demo --engine mariadb` end to end, small enough for a test: on its own scratch MariaDB (text: both
//! acts' figures side by side, the server removed afterwards) and on a user's MariaDB database (`--db`, JSON:
//! both migrations completed, the demo's table gone, a user's `orders` never taken).

use std::path::PathBuf;
use std::process::Command;

use tidegate_db::driver::{Driver, SessionExt};
use tidegate_db::mysql::MySqlConfig;
use tidegate_testkit::PrivateMariaDb;

const TIDEGATE: &str = env!("CARGO_BIN_EXE_tidegate");

fn small_demo() -> Command {
    let mut command = Command::new(TIDEGATE);
    command
        .env_remove("DATABASE_URL")
        .env("NO_COLOR", "1")
        .args([
            "demo",
            "--engine",
            "mariadb",
            "--rows",
            "5000",
            "--rate",
            "100",
            "--connections",
            "4",
            "--settle",
            "1s",
        ]);
    command
}

/// Words per figure in a row: a value and its unit ("0.3 s", "2.1 ms"), or a bare count.
fn row_words(row: &str) -> usize {
    if row.starts_with("errors") || row.starts_with("requests") {
        1
    } else {
        2
    }
}

#[test]
fn the_mariadb_demo_prints_both_acts_side_by_side_and_cleans_up() {
    let output = small_demo().output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the demo failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let header = stdout
        .lines()
        .find(|line| line.contains("naive") && line.contains("tidegate"))
        .unwrap_or_else(|| panic!("no side-by-side table:\n{stdout}"));
    assert!(header.find("naive") < header.find("tidegate"), "{header}");
    for row in [
        "migration duration",
        "p99 during",
        "max during",
        "errors during",
        "requests measured",
    ] {
        let line = stdout
            .lines()
            .find(|line| line.starts_with(row))
            .unwrap_or_else(|| panic!("{row:?} missing:\n{stdout}"));
        assert_eq!(
            line[row.len()..].split_whitespace().count(),
            2 * row_words(row),
            "{line}"
        );
    }
    let outcome = stdout
        .lines()
        .find(|line| line.starts_with("migration ") && !line.starts_with("migration duration"))
        .unwrap();
    assert_eq!(
        outcome.split_whitespace().collect::<Vec<_>>(),
        ["migration", "ok", "ok"],
        "{stdout}"
    );
    assert!(stdout.contains("the naive way"), "{stdout}");
    let dir = stderr
        .lines()
        .find_map(|line| line.strip_prefix("scratch MariaDB started in "))
        .map(|rest| PathBuf::from(rest.split(" (").next().unwrap().trim()))
        .unwrap_or_else(|| panic!("the demo did not say where its server is:\n{stderr}"));
    assert!(
        !dir.exists(),
        "the demo left its scratch MariaDB in {}",
        dir.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_users_mariadb_the_demo_reports_both_acts_and_leaves_no_orders_table() {
    let server = PrivateMariaDb::start();
    let url = server.url();
    let output = small_demo()
        .args(["--db", &url, "--format", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the demo failed:\n{stderr}");
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON document");
    assert_eq!(json["engine"], "mariadb");
    for act in ["naive", "tidegate"] {
        assert!(
            json[act]["migration_error"].is_null(),
            "{act} failed: {}",
            json[act]["migration_error"]
        );
        for key in ["duration_s", "p50_ms", "p99_ms", "max_ms", "errors"] {
            assert!(json[act][key].is_number(), "{act}.{key} missing in {json}");
        }
        assert!(
            json[act]["during"]["requests"].as_u64().unwrap_or(0)
                + json[act]["before"]["requests"].as_u64().unwrap_or(0)
                > 0,
            "{act}: the workload measured nothing"
        );
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
            .any(|label| label.contains("rows backfilled in")),
        "{labels:?}"
    );
    let s = MySqlConfig::from_url(&url).unwrap().open().await.unwrap();
    let left: i64 = s
        .query_one(
            "select count(*) as n from information_schema.TABLES where TABLE_SCHEMA = 'scratch' and TABLE_NAME = 'orders'",
            &[],
        )
        .await
        .unwrap()
        .get("n")
        .unwrap();
    assert_eq!(left, 0, "the demo left its orders table");
    // The backfill run stays in the journal, as any run's does.
    let runs: i64 = s
        .query_one(
            "select count(*) as n from tidegate.runs where status = 'completed'",
            &[],
        )
        .await
        .unwrap()
        .get("n")
        .unwrap();
    assert_eq!(runs, 1);

    // A user's own `orders`: refused before anything runs, and left as it was.
    s.batch_execute(
        "create table orders (id int primary key) engine=innodb; insert into orders values (7)",
    )
    .await
    .unwrap();
    let refused = small_demo().args(["--db", &url]).output().unwrap();
    assert_eq!(
        refused.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already has a table orders"));
    let kept: i64 = s
        .query_one("select count(*) as n from orders where id = 7", &[])
        .await
        .unwrap()
        .get("n")
        .unwrap();
    assert_eq!(kept, 1);
}
