//! `tidegate report` against real PostgreSQL: a real backfill driven through a throttle (its throttle query,
//! flipped by the test) and a pause (`tidegate pause` from another process), a real apply, then the report of
//! each in every format, checked against the journal and the table; the HTML page rendered by headless Chromium
//! (Debian's `chromium`, which scripts/setup.sh installs) with the network unreachable.
//!
//! Nothing is timed: each step waits (boundedly) for an event the test brought about itself.

use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tidegate_testkit::{chromium_dom, TestDatabase};

mod common;
use common::{json_lines, wait_event};

const TIDEGATE: &str = env!("CARGO_BIN_EXE_tidegate");

fn tidegate(args: &[&str]) -> Output {
    Command::new(TIDEGATE)
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn report(id: &str, url: &str, format: &str) -> String {
    let output = tidegate(&["report", id, "--db", url, "--format", format]);
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_through_a_throttle_and_a_pause_reports_its_timeline() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    client
        .batch_execute(
            "create table items (id bigint primary key, n int not null default 0);
             insert into items (id) select g from generate_series(1, 20000) g;
             analyze items;
             create table hold (engaged bool not null);
             insert into hold values (false);",
        )
        .await
        .unwrap();
    let mut child = Command::new(TIDEGATE)
        .args([
            "backfill",
            "--db",
            db.url(),
            "--table",
            "items",
            "--set",
            "n = n + 1",
            "--batch-size",
            "500",
            "--max-rows-per-second",
            "4000",
            "--throttle-query",
            "select engaged from hold",
            // Only the test's throttle: a busy machine's slow probe must not add one.
            "--max-probe-latency",
            "10s",
            "--format",
            "json",
        ])
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = json_lines(&mut child);
    let started = wait_event(&lines, "started");
    let run_id = started["run_id"].as_i64().unwrap();
    let id = run_id.to_string();
    wait_event(&lines, "batch");

    // A throttle the test sets and clears.
    client
        .execute("update hold set engaged = true", &[])
        .await
        .unwrap();
    wait_event(&lines, "throttled");
    client
        .execute("update hold set engaged = false", &[])
        .await
        .unwrap();
    wait_event(&lines, "throttle_lifted");
    wait_event(&lines, "batch");

    // A pause from another process, then a resume.
    let pause = tidegate(&["pause", &id, "--db", db.url()]);
    assert!(pause.status.success(), "{}", stderr(&pause));
    wait_event(&lines, "paused");
    let resume = tidegate(&["resume", &id, "--db", db.url()]);
    assert!(resume.status.success(), "{}", stderr(&resume));
    wait_event(&lines, "resumed");
    let completed = wait_event(&lines, "completed");
    assert!(child.wait().unwrap().success());

    // JSON: the typed report, consistent with the journal and the table.
    let json: Value = serde_json::from_str(&report(&id, db.url(), "json")).unwrap();
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["subject"]["kind"], "backfill");
    assert_eq!(json["subject"]["run_id"], run_id);
    assert_eq!(json["subject"]["table"], "public.items");
    assert_eq!(json["outcome"], "completed");
    let updated: i64 = client
        .query_one("select count(*) from items where n = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(updated, 20_000);
    let figures = &json["figures"];
    assert_eq!(figures["rows"], updated);
    assert_eq!(figures["batches"], completed["batches"]);
    // Every batch's statement time is in the journal's samples: the percentiles are over all of them.
    assert_eq!(figures["batch_times"], completed["batches"]);
    let p50 = figures["batch_ms_p50"].as_f64().unwrap();
    let p99 = figures["batch_ms_p99"].as_f64().unwrap();
    assert!(0.0 < p50 && p50 <= p99 && p99 <= figures["batch_ms_max"].as_f64().unwrap());
    assert!(figures["wal_bytes"].as_u64().unwrap() > 0, "{figures}");

    let throttles = json["throttles"].as_array().unwrap();
    assert_eq!(throttles.len(), 1, "{throttles:?}");
    let throttle = &throttles[0];
    assert_eq!(throttle["signals"], serde_json::json!(["throttle_query"]));
    assert_eq!(throttle["readings"][0]["signal"], "throttle_query");
    assert_eq!(throttle["readings"][0]["value"], 1.0);
    assert_eq!(throttle["readings"][0]["unit"], "flag");
    assert_eq!(throttle["ended_by"], "throttle_lifted");
    assert_eq!(throttle["open"], false);
    assert!(throttle["duration_s"].as_f64().unwrap() > 0.0);
    assert_eq!(figures["throttled_s"], throttle["duration_s"]);

    let pauses = json["pauses"].as_array().unwrap();
    assert_eq!(pauses.len(), 1, "{pauses:?}");
    assert_eq!(pauses[0]["cause"]["kind"], "requested");
    let by = &pauses[0]["cause"]["by"];
    let role: String = client
        .query_one("select session_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(by["db_user"], role.as_str());
    assert!(by["host"].as_str().is_some_and(|h| !h.is_empty()), "{by}");
    assert!(pauses[0]["duration_s"].as_f64().unwrap() > 0.0);

    // The journal's own times: the throttle begins and ends where its entries are.
    let journal = client
        .query(
            "select event, (extract(epoch from date_trunc('milliseconds', at)) * 1000)::int8 \
             from tidegate.journal where run_id = $1 order by id",
            &[&run_id],
        )
        .await
        .unwrap();
    let at = |event: &str| -> i64 {
        journal
            .iter()
            .find(|r| r.get::<_, String>(0) == event)
            .unwrap_or_else(|| panic!("no {event} in the journal"))
            .get(1)
    };
    let expected = (at("throttle_lifted") - at("throttled")) as f64 / 1000.0;
    assert_eq!(throttle["duration_s"].as_f64().unwrap(), expected);

    let phases: Vec<&str> = json["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["running", "throttled", "running", "paused", "running"],
        "{}",
        json["phases"]
    );
    let series = json["series"].as_array().unwrap();
    assert_eq!(series.first().unwrap()["rows_done"], 0);
    assert_eq!(series.last().unwrap()["rows_done"], updated);
    let events: Vec<&str> = json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for event in [
        "started",
        "throttled",
        "throttle_lifted",
        "control_requested",
        "paused",
        "resumed",
        "completed",
    ] {
        assert!(events.contains(&event), "{event} in {events:?}");
    }

    // Markdown: ready to paste.
    let markdown = report(&format!("run:{id}"), db.url(), "markdown");
    assert!(
        markdown.starts_with(&format!("## Backfill run {id} on public.items: completed")),
        "{markdown}"
    );
    assert!(markdown.contains("| Rows changed | 20000 |"), "{markdown}");
    assert!(markdown.contains("| throttle_query | true |"), "{markdown}");
    assert!(markdown.contains("`tidegate pause` by "), "{markdown}");
    assert!(markdown.contains(&format!("role {role}")), "{markdown}");

    // HTML: one self-contained page; Chromium builds the chart without the network.
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let output = tidegate(&[
        "report",
        &id,
        "--db",
        db.url(),
        "--format",
        "html",
        "--output",
        page.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let dom = chromium_dom(&page);
    assert!(dom.contains("<svg id=\"rows-over-time\""), "{dom}");
    assert!(dom.contains("class=\"rows\""), "{dom}");
    assert_eq!(dom.matches("class=\"throttled\"").count(), 1);
    assert_eq!(dom.matches("class=\"paused\"").count(), 1);
    assert!(dom.contains("Time throttled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_reports_its_phases_and_its_backfill_run() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("0001_create_orders.sql"),
        "CREATE TABLE orders (id bigint PRIMARY KEY, order_status text NOT NULL);\n",
    )
    .unwrap();
    let first = tidegate(&["apply", dir.path().to_str().unwrap(), "--db", db.url()]);
    assert!(first.status.success(), "{}", stderr(&first));
    let client = db.connect().await;
    client
        .batch_execute(
            "INSERT INTO orders SELECT g, (ARRAY['new','paid','shipped'])[1 + g % 3] FROM generate_series(1, 30000) g;
             ANALYZE orders;",
        )
        .await
        .unwrap();
    std::fs::write(
        dir.path().join("0002_order_status_v2.sql"),
        "ALTER TABLE orders ADD COLUMN order_status_v2 VARCHAR(20);\nUPDATE orders SET order_status_v2 = order_status;\n",
    )
    .unwrap();
    let applied = tidegate(&[
        "apply",
        dir.path().to_str().unwrap(),
        "--db",
        db.url(),
        "--batch-time",
        "20ms",
        "--max-rows-per-second",
        "10000",
    ]);
    assert!(applied.status.success(), "{}", stderr(&applied));

    let json: Value = serde_json::from_str(&report(
        "migration:0002_order_status_v2.sql",
        db.url(),
        "json",
    ))
    .unwrap();
    assert_eq!(json["subject"]["kind"], "migration");
    assert_eq!(json["outcome"], "applied");
    let runs = json["subject"]["backfill_runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{}", json["subject"]);
    let phases = json["phases"].as_array().unwrap();
    let classes: Vec<&str> = phases
        .iter()
        .map(|p| p["class"].as_str().unwrap())
        .collect();
    assert_eq!(classes, ["schema", "backfill"], "{phases:?}");
    assert_eq!(phases[1]["run_id"], runs[0]);
    assert!(phases
        .iter()
        .all(|p| p["open"] == false && p["failed"] == false));
    assert_eq!(json["figures"]["rows"], 30_000);
    assert_eq!(
        json["series"].as_array().unwrap().last().unwrap()["rows_done"],
        30_000
    );
    // The phases lie within the apply, in order.
    let end = json["duration_s"].as_f64().unwrap();
    assert!(phases[0]["offset_s"].as_f64().unwrap() <= phases[1]["offset_s"].as_f64().unwrap());
    assert!(
        phases[1]["offset_s"].as_f64().unwrap() + phases[1]["duration_s"].as_f64().unwrap() <= end
    );
    let events: Vec<&str> = json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.first(), Some(&"migration_started"), "{events:?}");
    assert_eq!(events.last(), Some(&"migration_applied"), "{events:?}");
    // The run's own entries sit inside the backfill phase.
    let position = |name: &str| events.iter().position(|e| *e == name).unwrap();
    assert!(
        events.iter().filter(|e| **e == "phase_started").count() == 2
            && position("started") > position("phase_started")
            && position("completed") < position("migration_applied"),
        "{events:?}"
    );

    // A version that is not a number needs no prefix; the markdown names both phases and the run.
    let markdown = report("0002_order_status_v2.sql", db.url(), "markdown");
    assert!(
        markdown.starts_with("## Migration 0002_order_status_v2.sql"),
        "{markdown}"
    );
    assert!(
        markdown.contains("phase 1: schema") && markdown.contains("phase 2: backfill"),
        "{markdown}"
    );
    assert!(
        markdown.contains(&format!("Backfill phases ran as run {}", runs[0])),
        "{markdown}"
    );
    let html = report("migration:0002_order_status_v2.sql", db.url(), "html");
    assert!(html.contains("<svg id=\"rows-over-time\""));
}

#[tokio::test]
async fn unknown_and_malformed_ids_say_what_to_do() {
    let db = TestDatabase::create().await;
    // No tidegate schema at all.
    let none = tidegate(&["report", "5", "--db", db.url()]);
    assert_eq!(none.status.code(), Some(1), "{}", stderr(&none));
    assert!(
        stderr(&none).contains("no tidegate journal"),
        "{}",
        stderr(&none)
    );
    // A schema, but no such run.
    db.connect()
        .await
        .batch_execute("create table t (id bigint primary key, n int)")
        .await
        .unwrap();
    let made = tidegate(&[
        "backfill",
        "--db",
        db.url(),
        "--table",
        "t",
        "--set",
        "n = 1",
    ]);
    assert!(made.status.success(), "{}", stderr(&made));
    let missing = tidegate(&["report", "run:999", "--db", db.url()]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("no backfill run 999")
            && stderr(&missing).contains("tidegate runs")
    );
    let missing = tidegate(&["report", "999", "--db", db.url()]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("tidegate status"),
        "{}",
        stderr(&missing)
    );
    // Not an id at all: a usage error.
    let bad = tidegate(&["report", "run:abc", "--db", db.url()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("migration:"), "{}", stderr(&bad));
}
