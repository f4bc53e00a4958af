//! `tidegate apply` as a user runs it, against real PostgreSQL: the real binary, real migration directories.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidegate_testkit::TestDatabase;

const TIDEGATE: &str = env!("CARGO_BIN_EXE_tidegate");

const CREATE_ORDERS: &str =
    "CREATE TABLE orders (\n    id bigint PRIMARY KEY,\n    order_status text NOT NULL\n);\n";
const POSTMORTEM: &str =
    "ALTER TABLE orders ADD COLUMN order_status_v2 VARCHAR(20);\nUPDATE orders SET order_status_v2 = order_status;\n";

fn write(dir: &Path, name: &str, sql: &str) {
    std::fs::write(dir.join(name), sql).unwrap();
}

fn tidegate(args: &[&str]) -> Output {
    Command::new(TIDEGATE).args(args).output().unwrap()
}

fn apply(dir: &Path, url: &str, extra: &[&str]) -> Output {
    let mut args = vec!["apply", dir.to_str().unwrap(), "--db", url];
    args.extend_from_slice(extra);
    tidegate(&args)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// A database where 0001 (create orders) is applied and the table holds `rows` rows.
async fn orders_applied(rows: i64) -> (TestDatabase, tempfile::TempDir) {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "0001_create_orders.sql", CREATE_ORDERS);
    let output = apply(dir.path(), db.url(), &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    db.connect()
        .await
        .execute(
            "INSERT INTO orders SELECT g, (ARRAY['new','paid','shipped'])[1 + g % 3] FROM generate_series(1, $1::bigint) g",
            &[&rows],
        )
        .await
        .unwrap();
    (db, dir)
}

#[tokio::test]
async fn the_postmortem_migration_runs_as_a_schema_phase_and_a_batched_backfill() {
    let (db, dir) = orders_applied(60_000).await;
    write(dir.path(), "0002_order_status_v2.sql", POSTMORTEM);

    let output = apply(dir.path(), db.url(), &["--batch-time", "20ms"]);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains("phase 1: schema") && log.contains("phase 2: backfill"),
        "{log}"
    );

    let client = db.connect().await;
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM orders WHERE order_status_v2 IS DISTINCT FROM order_status"
        )
        .await,
        0
    );

    let runs = tidegate(&["runs", "--db", db.url(), "--format", "json"]);
    assert!(runs.status.success(), "{}", stderr(&runs));
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    let runs = runs
        .as_array()
        .or_else(|| runs["runs"].as_array())
        .expect("a list of runs")
        .clone();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["status"], "completed");
    assert_eq!(runs[0]["rows_done"], 60_000);
    assert!(
        runs[0]["batches"].as_u64().unwrap() > 1,
        "the UPDATE ran in batches: {runs:?}"
    );

    let history = client
        .query(
            "SELECT version, status, phases_done FROM tidegate.migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    let history: Vec<(String, String, i32)> = history
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        history,
        [
            (
                "0001_create_orders.sql".to_string(),
                "applied".to_string(),
                1
            ),
            (
                "0002_order_status_v2.sql".to_string(),
                "applied".to_string(),
                2
            )
        ]
    );
    let journal = count(&client, "SELECT count(*) FROM tidegate.journal WHERE migration_version = '0002_order_status_v2.sql' AND event = 'phase_done'").await;
    assert_eq!(journal, 2, "every phase is in the journal");

    // Applying again does nothing and succeeds.
    let again = apply(dir.path(), db.url(), &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("nothing to apply"),
        "{}",
        stderr(&again)
    );
}

#[tokio::test]
async fn a_lock_held_by_a_long_transaction_never_queues_writers_for_longer_than_lock_timeout() {
    let (db, dir) = orders_applied(1_000).await;
    write(
        dir.path(),
        "0002_add_note.sql",
        "ALTER TABLE orders ADD COLUMN note text;\n",
    );

    let blocker = db.connect().await;
    blocker
        .batch_execute(
            "SET application_name = 'nightly-report'; BEGIN; SELECT count(*) FROM orders",
        )
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let worst_micros = Arc::new(AtomicU64::new(0));
    let writer = {
        let client = db.connect().await;
        let (stop, worst) = (stop.clone(), worst_micros.clone());
        tokio::spawn(async move {
            let mut id = 1_000_000i64;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                let started = Instant::now();
                client
                    .execute("INSERT INTO orders VALUES ($1, 'new')", &[&id])
                    .await
                    .unwrap();
                worst.fetch_max(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        blocker.batch_execute("COMMIT").await.unwrap();
    });

    let url = db.url().to_string();
    let path = dir.path().to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        apply(&path, &url, &["--lock-timeout", "200ms", "--retries", "30"])
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    release.await.unwrap();

    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains("lock not granted within lock_timeout"),
        "{log}"
    );
    assert!(
        log.contains("nightly-report") && log.contains("idle in transaction"),
        "the blocker is named: {log}"
    );
    let worst_ms = worst_micros.load(Ordering::Relaxed) / 1000;
    // 200 ms lock_timeout plus a generous margin for a loaded machine; without it writers wait the full 2.5 s.
    assert!(
        worst_ms < 1_200,
        "a writer queued {worst_ms} ms behind the waiting ALTER"
    );
    let client = db.connect().await;
    assert_eq!(count(&client, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'note'").await, 1);
}

#[tokio::test]
async fn a_changed_applied_migration_stops_the_apply() {
    let (db, dir) = orders_applied(10).await;
    write(
        dir.path(),
        "0001_create_orders.sql",
        &format!("{CREATE_ORDERS}-- edited after the fact\n"),
    );
    write(
        dir.path(),
        "0002_add_note.sql",
        "ALTER TABLE orders ADD COLUMN note text;\n",
    );
    let output = apply(dir.path(), db.url(), &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let log = stderr(&output);
    assert!(
        log.contains("0001_create_orders.sql") && log.contains("must not change"),
        "{log}"
    );
    let client = db.connect().await;
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'"
        )
        .await,
        0,
        "nothing after the changed file ran"
    );
}

#[tokio::test]
async fn a_failing_migration_leaves_a_clean_state_and_a_clear_error() {
    let (db, dir) = orders_applied(10).await;
    write(
        dir.path(),
        "0002_broken.sql",
        "ALTER TABLE orders ADD COLUMN note text;\nALTER TABLE no_such_table ADD COLUMN x int;\n",
    );
    let output = apply(dir.path(), db.url(), &[]);
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(
        log.contains("no_such_table") && log.contains("42P01"),
        "{log}"
    );
    let client = db.connect().await;
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'"
        )
        .await,
        0,
        "the phase rolled back as a whole"
    );
    let status: String = client
        .query_one(
            "SELECT status FROM tidegate.migrations WHERE version = '0002_broken.sql'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "failed");

    // Fixed, it applies.
    write(
        dir.path(),
        "0002_broken.sql",
        "ALTER TABLE orders ADD COLUMN note text;\n",
    );
    let output = apply(dir.path(), db.url(), &[]);
    assert!(output.status.success(), "{}", stderr(&output));

    // The history describes the file that ran, so applying again does nothing instead of calling it changed.
    let output = apply(dir.path(), db.url(), &[]);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("nothing to apply"), "{log}");
}

#[tokio::test]
async fn two_concurrent_applies_do_not_interleave() {
    let (db, dir) = orders_applied(40_000).await;
    write(dir.path(), "0002_order_status_v2.sql", POSTMORTEM);
    write(
        dir.path(),
        "0003_add_note.sql",
        "ALTER TABLE orders ADD COLUMN note text;\n",
    );
    let spawn =
        |url: String, path: std::path::PathBuf| std::thread::spawn(move || apply(&path, &url, &[]));
    let first = spawn(db.url().to_string(), dir.path().to_path_buf());
    let second = spawn(db.url().to_string(), dir.path().to_path_buf());
    let (first, second) = (first.join().unwrap(), second.join().unwrap());
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(second.status.success(), "{}", stderr(&second));
    let client = db.connect().await;
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM tidegate.migrations WHERE status = 'applied'"
        )
        .await,
        3
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM tidegate.runs").await,
        1,
        "the backfill ran once"
    );
    let started = count(
        &client,
        "SELECT count(*) FROM tidegate.journal WHERE event = 'migration_started'",
    )
    .await;
    assert_eq!(started, 3, "each migration started exactly once");
}

#[tokio::test]
async fn a_held_apply_lock_is_waited_for_then_reported() {
    let (db, dir) = orders_applied(10).await;
    write(
        dir.path(),
        "0002_add_note.sql",
        "ALTER TABLE orders ADD COLUMN note text;\n",
    );
    let holder = db.connect().await;
    holder
        .batch_execute("SET application_name = 'deploy-bot'; SELECT pg_advisory_lock(hashtextextended('tidegate:apply', 0))")
        .await
        .unwrap();
    let output = apply(dir.path(), db.url(), &["--lock-wait", "1s"]);
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(
        log.contains("another tidegate apply") && log.contains("deploy-bot"),
        "{log}"
    );
}

#[tokio::test]
async fn a_failed_concurrent_index_build_is_cleaned_up_and_rebuilt() {
    let (db, dir) = orders_applied(1_000).await;
    let client = db.connect().await;
    // A unique build over duplicate values fails and leaves its index INVALID, as a cancelled build would.
    let failed = client
        .batch_execute(
            "CREATE UNIQUE INDEX CONCURRENTLY orders_status_idx ON orders (order_status)",
        )
        .await;
    assert!(failed.is_err());
    assert_eq!(count(&client, "SELECT count(*) FROM pg_index WHERE indexrelid = 'orders_status_idx'::regclass AND NOT indisvalid").await, 1);

    write(
        dir.path(),
        "0002_index.sql",
        "CREATE INDEX CONCURRENTLY orders_status_idx ON orders (order_status);\n",
    );
    let output = apply(dir.path(), db.url(), &[]);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("dropped the INVALID index"), "{log}");
    assert_eq!(count(&client, "SELECT count(*) FROM pg_index WHERE indexrelid = 'orders_status_idx'::regclass AND indisvalid AND NOT indisunique").await, 1);
}

#[tokio::test]
async fn a_dry_run_prints_the_plan_and_changes_nothing() {
    let (db, dir) = orders_applied(20_000).await;
    write(dir.path(), "0002_order_status_v2.sql", POSTMORTEM);
    let output = apply(dir.path(), db.url(), &["--dry-run", "--format", "json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let phases = &plan["pending"][0]["phases"];
    assert_eq!(phases[0]["kind"], "schema");
    assert_eq!(phases[1]["kind"], "backfill");
    assert_eq!(phases[1]["spec"]["set"], "order_status_v2 = order_status");
    assert_eq!(phases[0]["steps"][0]["statement"], 0);
    assert_eq!(
        plan["pending"][0]["statements"][0]["locks"][0],
        "orders: ACCESS EXCLUSIVE"
    );
    assert_eq!(plan["pending"][0]["statements"][1]["runs"], "backfill");

    let text = apply(dir.path(), db.url(), &["--dry-run"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("backfill phase: batched, throttled UPDATE orders"),
        "{text}"
    );
    assert!(text.contains("not atomic"), "{text}");

    let client = db.connect().await;
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM information_schema.columns WHERE column_name = 'order_status_v2'"
        )
        .await,
        0
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM tidegate.migrations").await,
        1
    );
}

#[tokio::test]
async fn a_dry_run_on_a_fresh_database_changes_nothing_and_says_small_tables_run_as_written() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "0001_create_orders.sql", CREATE_ORDERS);
    write(dir.path(), "0002_order_status_v2.sql", POSTMORTEM);
    write(
        dir.path(),
        "0003_index.sql",
        "CREATE INDEX orders_status ON orders (order_status);\n",
    );
    let output = apply(dir.path(), db.url(), &["--dry-run"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", stderr(&output));
    // orders is created by this run: it is empty when 0002 and 0003 run.
    assert!(
        text.contains("runs as written: orders has 0 row(s), below small_table_rows = 10000 (unbatched-update)")
            && text.contains("(create-index-non-concurrently)"),
        "{text}"
    );
    let client = db.connect().await;
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'tidegate'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM pg_class WHERE relname = 'orders'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn an_update_that_cannot_be_batched_stops_the_apply_with_a_rewrite() {
    // Above small_table_rows (10,000): on a smaller table the UPDATE would run as written.
    let (db, dir) = orders_applied(20_000).await;
    write(dir.path(), "0002_join.sql", "CREATE TABLE tiers (id bigint PRIMARY KEY, tier text);\nUPDATE orders o SET order_status = t.tier FROM tiers t WHERE t.id = o.id;\n");
    let output = apply(dir.path(), db.url(), &[]);
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{log}");
    assert!(
        log.contains("0002_join.sql:2:1") && log.contains("UPDATE … FROM"),
        "{log}"
    );
    assert!(
        log.contains("--allow-unbatched") && log.contains("nothing was changed"),
        "{log}"
    );
    let client = db.connect().await;
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM pg_class WHERE relname = 'tiers'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn outside_its_window_apply_waits_and_says_why() {
    let (db, dir) = orders_applied(10).await;
    write(
        dir.path(),
        "0002_add_note.sql",
        "ALTER TABLE orders ADD COLUMN note text;\n",
    );
    // A one-minute window twelve hours from now: certainly closed.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let opens = (now / 60 + 12 * 60) % (24 * 60);
    let window = format!(
        "{:02}:{:02}-{:02}:{:02}",
        opens / 60,
        opens % 60,
        (opens + 1) / 60 % 24,
        (opens + 1) % 60
    );
    let mut child = Command::new(TIDEGATE)
        .args([
            "apply",
            dir.path().to_str().unwrap(),
            "--db",
            db.url(),
            "--window",
            &window,
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "apply must wait for its window, not run or give up"
    );
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let log = stderr(&output);
    assert!(
        log.contains("outside the --window") && log.contains("waiting"),
        "{log}"
    );
    let client = db.connect().await;
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'"
        )
        .await,
        0,
        "nothing ran outside the window"
    );
}

#[tokio::test]
async fn the_health_gate_waits_for_the_throttle_query_then_applies() {
    let (db, dir) = orders_applied(10).await;
    write(
        dir.path(),
        "0002_add_note.sql",
        "ALTER TABLE orders ADD COLUMN note text;\n",
    );
    let client = db.connect().await;
    client
        .batch_execute("CREATE TABLE ops_gate (busy boolean); INSERT INTO ops_gate VALUES (true)")
        .await
        .unwrap();
    let clear = {
        let client = db.connect().await;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            client
                .batch_execute("UPDATE ops_gate SET busy = false")
                .await
                .unwrap();
        })
    };
    let (url, path) = (db.url().to_string(), dir.path().to_path_buf());
    let output = tokio::task::spawn_blocking(move || {
        apply(
            &path,
            &url,
            &[
                "--throttle-query",
                "SELECT busy FROM ops_gate",
                "--health-wait",
                "60s",
            ],
        )
    })
    .await
    .unwrap();
    clear.await.unwrap();
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains("waiting before phase 1") && log.contains("not healthy"),
        "{log}"
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn the_health_gate_refuses_after_health_wait_and_changes_nothing() {
    let (db, dir) = orders_applied(10).await;
    write(
        dir.path(),
        "0002_add_note.sql",
        "ALTER TABLE orders ADD COLUMN note text;\n",
    );
    let output = apply(
        dir.path(),
        db.url(),
        &["--throttle-query", "SELECT true", "--health-wait", "2s"],
    );
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(
        log.contains("was not healthy") && log.contains("--health-wait"),
        "{log}"
    );
    let client = db.connect().await;
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn an_interrupted_migration_resumes_with_the_phases_it_started_with() {
    let (db, dir) = orders_applied(20_000).await;
    write(dir.path(), "0002_order_status_v2.sql", POSTMORTEM);
    // An earlier apply, run with --allow-unbatched, planned the UPDATE as written in phase 2, committed phase 1
    // and was interrupted. A new plan (without the flag) would make phase 2 a backfill; the resume keeps to the
    // phases it started with, so nothing is skipped or repeated.
    let client = db.connect().await;
    client
        .execute(
            "ALTER TABLE orders ADD COLUMN order_status_v2 VARCHAR(20)",
            &[],
        )
        .await
        .unwrap();
    let phases = serde_json::json!([
        {"kind": "schema", "in_transaction": true,
         "steps": [{"statement": 0, "sql": "ALTER TABLE orders ADD COLUMN order_status_v2 VARCHAR(20)"}]},
        {"kind": "data_as_written",
         "steps": [{"statement": 1, "sql": "UPDATE orders SET order_status_v2 = order_status"}]}
    ]);
    client
        .execute(
            "INSERT INTO tidegate.migrations (version, name, checksum, status, phases, phases_done) \
             VALUES ('0002_order_status_v2.sql', '0002_order_status_v2.sql', \
                     encode(sha256(convert_to($1, 'UTF8')), 'hex'), 'failed', $2::text::jsonb, 1)",
            &[&POSTMORTEM, &phases.to_string()],
        )
        .await
        .unwrap();
    let output = apply(dir.path(), db.url(), &[]);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains("phase 1: skipped") && log.contains("phase 2: data as written"),
        "{log}"
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM orders WHERE order_status_v2 IS DISTINCT FROM order_status"
        )
        .await,
        0
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM tidegate.runs").await,
        0,
        "the recorded phase ran, not a new plan's backfill"
    );
}

#[tokio::test]
async fn an_interrupted_migration_whose_recorded_phases_cannot_be_read_is_not_resumed() {
    let (db, dir) = orders_applied(10).await;
    write(dir.path(), "0002_order_status_v2.sql", POSTMORTEM);
    // Phases recorded by an older tidegate, in a shape this one does not read.
    let client = db.connect().await;
    client
        .execute(
            "INSERT INTO tidegate.migrations (version, name, checksum, status, phases, phases_done) \
             VALUES ('0002_order_status_v2.sql', '0002_order_status_v2.sql', \
                     encode(sha256(convert_to($1, 'UTF8')), 'hex'), 'failed', \
                     '[{\"kind\": \"schema\", \"in_transaction\": true, \"statements\": [{\"index\": 0}, {\"index\": 1}]}]', 1)",
            &[&POSTMORTEM],
        )
        .await
        .unwrap();
    let output = apply(dir.path(), db.url(), &[]);
    let log = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(
        log.contains("interrupted after 1 committed phase")
            && log.contains("another tidegate version"),
        "{log}"
    );
    let phases_done: i32 = client
        .query_one(
            "SELECT phases_done FROM tidegate.migrations WHERE version = '0002_order_status_v2.sql'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(phases_done, 1, "nothing ran");
}

#[tokio::test]
async fn an_enum_value_a_migration_adds_can_be_used_by_its_later_statements() {
    let (db, dir) = orders_applied(10).await;
    write(
        dir.path(),
        "0002_mood.sql",
        "CREATE TYPE mood AS ENUM ('sad');\nALTER TABLE orders ADD COLUMN m mood;\n",
    );
    // In one transaction PostgreSQL refuses the new value until it commits (55P04 unsafe use of new value).
    write(
        dir.path(),
        "0003_happy.sql",
        "ALTER TYPE mood ADD VALUE 'happy';\nALTER TABLE orders ALTER COLUMN m SET DEFAULT 'happy';\n",
    );
    let output = apply(dir.path(), db.url(), &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let default: String = db
        .connect()
        .await
        .query_one(
            "SELECT column_default FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'm'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(default.contains("happy"), "{default}");
}

#[test]
fn timeouts_apply_cannot_enforce_are_refused_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "0001_create_orders.sql", CREATE_ORDERS);
    // Nothing listens there: a refusal must come before any connection.
    let url = "postgresql://nobody@127.0.0.1:1/none";
    for (flag, value, says) in [
        ("--statement-timeout", "0", "more than zero"),
        ("--statement-timeout", "1000h", "at most"),
        ("--lock-timeout", "1000h", "at most"),
    ] {
        let output = apply(dir.path(), url, &[flag, value]);
        let log = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {log}");
        assert!(log.contains(flag) && log.contains(says), "{log}");
    }
}
