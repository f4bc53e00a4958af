//! `tidegate report` on MariaDB: the timeline of a backfill run and of an apply, read from the journal in the
//! `tidegate` database of a throwaway MariaDB, in markdown and JSON.

use std::process::{Command, Output};

use serde_json::Value;
use tidegate_db::driver::Driver;
use tidegate_db::mysql::MySqlConfig;
use tidegate_testkit::PrivateMariaDb;

fn tidegate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidegate"))
        .env_remove("DATABASE_URL")
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("the tidegate binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn report(id: &str, url: &str, format: &str) -> String {
    let out = tidegate(&["report", id, "--db", url, "--format", format]);
    assert!(out.status.success(), "report {id}: {}", text(&out.stderr));
    text(&out.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_backfill_and_apply_report_their_phases_rows_and_end() {
    let server = PrivateMariaDb::start();
    let url = server.url();
    let s = MySqlConfig::from_url(&url).unwrap().open().await.unwrap();
    s.batch_execute(
        "create table items (id bigint primary key, n int not null default 0) engine=innodb;
         insert into items (id) select seq from seq_1_to_3000",
    )
    .await
    .unwrap();
    let ran = tidegate(&[
        "backfill",
        "--db",
        &url,
        "--table",
        "items",
        "--set",
        "`n` = `n` + 1",
        "--batch-size",
        "250",
    ]);
    assert!(ran.status.success(), "{}", text(&ran.stderr));

    let markdown = report("1", &url, "markdown");
    assert!(
        markdown.starts_with("## Backfill run 1 on scratch.items: completed"),
        "{markdown}"
    );
    for expected in [
        "| Rows changed | 3000 |",
        "| Batches | 12 |",
        "### Phases",
        "| running |",
        "completed: 3000 rows in 12 batches",
    ] {
        assert!(
            markdown.contains(expected),
            "{expected:?} missing:\n{markdown}"
        );
    }
    assert!(!markdown.contains("-0.0"), "{markdown}");
    let json: Value = serde_json::from_str(&report("run:1", &url, "json")).unwrap();
    assert_eq!(json["subject"]["kind"], "backfill");
    assert_eq!(json["subject"]["table"], "scratch.items");
    assert_eq!(json["outcome"], "completed");
    assert_eq!(json["figures"]["rows"], 3000);
    assert_eq!(json["figures"]["batches"], 12);
    assert!(json["ended_at"].is_string(), "{json}");
    let phases = json["phases"].as_array().unwrap();
    assert!(
        !phases.is_empty() && phases.iter().all(|p| p["open"] == false),
        "{phases:?}"
    );

    // An apply whose UPDATE became a backfill phase: the migration's report has the schema phase, the backfill
    // phase and that run's rows.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("0001_status_v2.sql"),
        "ALTER TABLE items ADD COLUMN n2 INT NULL;\nUPDATE items SET n2 = n;\n",
    )
    .unwrap();
    let applied = tidegate(&["apply", dir.path().to_str().unwrap(), "--db", &url]);
    assert!(applied.status.success(), "{}", text(&applied.stderr));
    let json: Value =
        serde_json::from_str(&report("migration:0001_status_v2.sql", &url, "json")).unwrap();
    assert_eq!(json["subject"]["kind"], "migration", "{json}");
    assert_eq!(json["outcome"], "applied");
    let classes: Vec<&str> = json["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["class"].as_str())
        .collect();
    assert_eq!(
        classes,
        ["schema_no_transaction", "backfill"],
        "{}",
        json["phases"]
    );
    let runs = json["subject"]["backfill_runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{}", json["subject"]);
    assert_eq!(json["phases"][1]["run_id"], runs[0]);
    assert_eq!(json["figures"]["rows"], 3000);
    assert!(json["ended_at"].is_string(), "{json}");
    let markdown = report("migration:0001_status_v2.sql", &url, "markdown");
    assert!(markdown.contains("applied"), "{markdown}");

    // An id the journal does not have: exit 1 with what to do.
    let missing = tidegate(&["report", "run:99", "--db", &url]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("tidegate runs"),
        "{}",
        text(&missing.stderr)
    );
}
