//! `tidegate plan` end to end: the real binary against a real PostgreSQL (tidegate-testkit), on migration
//! directories in temporary directories. Verdicts, blockers, write rates, `tidegate.migrations`, the stats file
//! that `tidegate lint --stats` reads, exit codes, and that plan writes nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use tidegate_testkit::TestDatabase;
use tokio_postgres::Client;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("not JSON ({error}):\n{}\n{}", self.stdout, self.stderr))
    }
}

struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(migrations: &[(&str, &str)]) -> Self {
        let project = Self {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        std::fs::create_dir_all(project.path("migrations")).expect("mkdir");
        for (name, sql) in migrations {
            std::fs::write(project.path("migrations").join(name), sql).expect("write");
        }
        project
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Runs the binary off the async runtime (the test's own connections keep being driven meanwhile).
    async fn run(&self, args: &[&str]) -> Run {
        let dir = self.dir.path().to_path_buf();
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        tokio::task::spawn_blocking(move || run_in(&dir, &args))
            .await
            .expect("run tidegate")
    }
}

fn run_in(dir: &Path, args: &[String]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_tidegate"))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        // A calibration left on this machine by a user must not change these tests' estimates.
        .env("TIDEGATE_CALIBRATION", dir.join("no-calibration-here.json"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run tidegate");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `orders` with 50,000 rows (about 3 MiB: read whole, so counted exactly) and a 12-row `feature_flags`.
async fn seeded() -> (TestDatabase, Client) {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    client
        .batch_execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, status text NOT NULL, amount int NOT NULL);
             INSERT INTO orders SELECT g, 'new', g FROM generate_series(1, 50000) g;
             CREATE TABLE feature_flags (name text PRIMARY KEY, enabled boolean);
             INSERT INTO feature_flags SELECT 'flag' || g, true FROM generate_series(1, 12) g;
             ANALYZE;",
        )
        .await
        .expect("seed");
    (db, client)
}

/// The statements of a `--format json` plan, flattened: (sql, verdict, statement JSON).
fn statements(json: &serde_json::Value) -> Vec<(String, String, serde_json::Value)> {
    json["migrations"]
        .as_array()
        .expect("migrations")
        .iter()
        .flat_map(|m| m["statements"].as_array().expect("statements").clone())
        .map(|s| {
            (
                s["sql"].as_str().expect("sql").to_string(),
                s["verdict"].as_str().expect("verdict").to_string(),
                s,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_against_a_real_table() {
    let (db, _client) = seeded().await;
    let project = Project::new(&[
        (
            "001_add_note.sql",
            "ALTER TABLE orders ADD COLUMN note text;\n",
        ),
        (
            "002_widen_amount.sql",
            "ALTER TABLE orders ALTER COLUMN amount TYPE bigint;\n",
        ),
        ("003_backfill.sql", "UPDATE orders SET note = status;\n"),
        (
            "004_items.sql",
            "CREATE TABLE items (id bigint PRIMARY KEY, order_id bigint);\n\
             CREATE INDEX items_order ON items (order_id);\n\
             INSERT INTO items VALUES (1, 1);\n",
        ),
    ]);
    let run = project
        .run(&[
            "plan",
            "--db",
            db.url(),
            "--sample",
            "0s",
            "--format",
            "json",
        ])
        .await;
    assert_eq!(run.code, 1, "not every statement is safe\n{}", run.stderr);
    let json = run.json();
    let found = statements(&json);
    let verdicts: Vec<(&str, &str)> = found
        .iter()
        .map(|(sql, verdict, _)| (sql.as_str(), verdict.as_str()))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("ALTER TABLE orders ADD COLUMN note text", "safe"),
            (
                "ALTER TABLE orders ALTER COLUMN amount TYPE bigint",
                "dangerous"
            ),
            ("UPDATE orders SET note = status", "needs_batching"),
            (
                "CREATE TABLE items (id bigint PRIMARY KEY, order_id bigint)",
                "safe"
            ),
            ("CREATE INDEX items_order ON items (order_id)", "safe"),
            ("INSERT INTO items VALUES (1, 1)", "safe"),
        ]
    );
    // The rewrite's estimate comes from the measured read rate of this very table.
    let rewrite = &found[1].2;
    let estimate = rewrite["estimate_seconds"].as_f64().expect("estimate");
    assert!(estimate > 0.0, "{rewrite}");
    assert_eq!(rewrite["effects"][0]["rate_assumed"], false);
    assert_eq!(rewrite["effects"][0]["lock"], "ACCESS_EXCLUSIVE");
    assert!(rewrite["reasons"][0]
        .as_str()
        .unwrap()
        .contains("rewrites 50,000 rows"));
    let orders = json["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.orders")
        .expect("orders probed");
    assert_eq!(orders["rows"], 50_000);
    assert_eq!(orders["rows_exact"], true);
    assert!(orders["total_bytes"].as_u64().unwrap() > orders["heap_bytes"].as_u64().unwrap());
    assert!(orders["scan_bytes_per_second"].as_f64().unwrap() > 0.0);
    assert!(
        json["tables"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["table"] != "public.items"),
        "a table created by the migration is not probed"
    );

    // A directory of only safe statements exits 0, in every format.
    let safe = Project::new(&[(
        "001_add_note.sql",
        "ALTER TABLE orders ADD COLUMN note text;\n",
    )]);
    for format in ["text", "json", "markdown"] {
        let run = safe
            .run(&[
                "plan",
                "--db",
                db.url(),
                "--sample",
                "0s",
                "--format",
                format,
            ])
            .await;
        assert_eq!(run.code, 0, "{format}: {}{}", run.stdout, run.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_on_a_written_table_needs_a_window_and_the_write_rate_is_measured() {
    let (db, client) = seeded().await;
    let writer = db.connect().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writing = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut id = 1_000_000i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                id += 1;
                writer
                    .execute("INSERT INTO orders VALUES ($1, 'new', 1)", &[&id])
                    .await
                    .expect("insert");
            }
        })
    };
    // Wait until the writer's inserts reach the statistics (backends flush them about once a second).
    for attempt in 0.. {
        assert!(
            attempt < 300,
            "the writer's inserts never reached pg_stat_user_tables"
        );
        let row = client
            .query_one(
                "SELECT coalesce((SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'orders'), 0) \
                 FROM pg_stat_clear_snapshot()",
                &[],
            )
            .await
            .expect("stats");
        if row.get::<_, i64>(0) > 50_000 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let project = Project::new(&[(
        "001_index.sql",
        "CREATE INDEX orders_status ON orders (status);\n",
    )]);
    let run = project
        .run(&[
            "plan",
            "--db",
            db.url(),
            "--sample",
            "2500ms",
            "--format",
            "json",
        ])
        .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writing.await.expect("writer");
    assert_eq!(run.code, 1, "{}", run.stderr);
    let json = run.json();
    let found = statements(&json);
    let (_, verdict, statement) = &found[0];
    assert!(
        verdict == "needs_window" || verdict == "dangerous",
        "{statement}"
    );
    assert!(statement["actions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a == "use_concurrently"));
    let writes = json["tables"][0]["writes_per_second"]
        .as_f64()
        .expect("write rate sampled");
    assert!(writes > 0.0, "the writer inserted throughout the sample");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_holding_the_table_is_reported_as_a_blocker() {
    let (db, _client) = seeded().await;
    let holder = db.connect().await;
    holder
        .batch_execute(
            "SET application_name = 'report-job'; BEGIN; SELECT count(*) FROM orders WHERE id < 10;",
        )
        .await
        .expect("hold");
    let pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    let project = Project::new(&[(
        "001_add_note.sql",
        "ALTER TABLE orders ADD COLUMN note text;\n",
    )]);
    let run = project
        .run(&[
            "plan",
            "--db",
            db.url(),
            "--sample",
            "0s",
            "--format",
            "json",
        ])
        .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let json = run.json();
    let found = statements(&json);
    let (_, verdict, statement) = &found[0];
    assert_eq!(verdict, "needs_window", "{statement}");
    let blocker = &statement["effects"][0]["blockers"][0];
    assert_eq!(blocker["pid"], pid);
    assert_eq!(blocker["application_name"], "report-job");
    assert_eq!(blocker["state"], "idle in transaction");
    assert_eq!(blocker["mode"], "ACCESS_SHARE");

    let text = project
        .run(&["plan", "--db", db.url(), "--sample", "0s"])
        .await;
    assert!(
        text.stdout.contains(&format!(
            "would queue behind pid {pid} (report-job, idle in transaction"
        )),
        "{}",
        text.stdout
    );
    // Once the transaction ends, the same change is safe.
    holder.batch_execute("COMMIT").await.expect("commit");
    let run = project
        .run(&["plan", "--db", db.url(), "--sample", "0s"])
        .await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exclusive_lock_on_the_table_does_not_hang_the_plan() {
    let (db, _client) = seeded().await;
    let holder = db.connect().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE;")
        .await
        .expect("lock");
    let project = Project::new(&[(
        "001_add_note.sql",
        "ALTER TABLE orders ADD COLUMN note text;\n",
    )]);
    // The plan's own reads of orders wait at most lock_timeout (1 s), then fall back to the catalog.
    let run = project
        .run(&[
            "plan",
            "--db",
            db.url(),
            "--sample",
            "0s",
            "--format",
            "json",
        ])
        .await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let json = run.json();
    let statement = &statements(&json)[0].2;
    assert_eq!(statement["verdict"], "needs_window", "{statement}");
    assert_eq!(
        statement["effects"][0]["blockers"][0]["mode"],
        "ACCESS_EXCLUSIVE"
    );
    assert!(json["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|note| note.as_str().unwrap().contains("public.orders: not read")));
    assert_eq!(
        json["tables"][0]["scan_bytes_per_second"],
        serde_json::Value::Null
    );
    assert_eq!(
        json["tables"][0]["rows"], 50_000,
        "reltuples, from the ANALYZE"
    );
    holder.batch_execute("ROLLBACK").await.expect("unlock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_recorded_by_apply_are_skipped_and_their_absence_is_fine() {
    let (db, client) = seeded().await;
    let project = Project::new(&[
        (
            "001_widen_amount.sql",
            "ALTER TABLE orders ALTER COLUMN amount TYPE bigint;\n",
        ),
        (
            "002_add_note.sql",
            "ALTER TABLE orders ADD COLUMN note text;\n",
        ),
    ]);
    let run = project
        .run(&[
            "plan",
            "--db",
            db.url(),
            "--sample",
            "0s",
            "--format",
            "json",
        ])
        .await;
    assert_eq!(run.code, 1);
    let json = run.json();
    assert_eq!(json["history_table"], false);
    assert_eq!(statements(&json).len(), 2);
    assert!(json["notes"][0]
        .as_str()
        .unwrap()
        .contains("no tidegate.migrations table"));

    client
        .batch_execute(
            "CREATE SCHEMA tidegate;
             CREATE TABLE tidegate.migrations (version text PRIMARY KEY, name text, checksum text,
                                               status text NOT NULL, applied_at timestamptz);
             INSERT INTO tidegate.migrations (version, name, checksum, status, applied_at)
                  VALUES ('001_widen_amount.sql', 'widen_amount', 'x', 'applied', now()),
                         -- a migration that failed part-way is still pending
                         ('002_add_note.sql', 'add_note', 'y', 'failed', NULL);",
        )
        .await
        .expect("history");
    let run = project
        .run(&[
            "plan",
            "--db",
            db.url(),
            "--sample",
            "0s",
            "--format",
            "json",
        ])
        .await;
    assert_eq!(
        run.code, 0,
        "only the safe migration is pending: {}",
        run.stdout
    );
    let json = run.json();
    assert_eq!(json["history_table"], true);
    assert_eq!(json["applied"], 1);
    let found = statements(&json);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, "ALTER TABLE orders ADD COLUMN note text");
}

/// The counters a write would move, for this database.
async fn write_counters(client: &Client) -> (i64, i64, i64, i64) {
    let row = client
        .query_one(
            "SELECT tup_inserted, tup_updated, tup_deleted, xact_rollback \
               FROM pg_stat_database, pg_stat_clear_snapshot() WHERE datname = current_database()",
            &[],
        )
        .await
        .expect("pg_stat_database");
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_writes_nothing() {
    let (db, client) = seeded().await;
    let relations = "SELECT count(*) FROM pg_class";
    let relations_before: i64 = client.query_one(relations, &[]).await.unwrap().get(0);
    // Let the seeding's own statistics settle, then take the baseline.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before = write_counters(&client).await;

    let project = Project::new(&[(
        "001_everything.sql",
        "ALTER TABLE orders ALTER COLUMN amount TYPE bigint;\n\
             CREATE INDEX orders_status ON orders (status);\n\
             UPDATE orders SET status = 'done';\n\
             DELETE FROM feature_flags;\n\
             CREATE TABLE items (id bigint);\n",
    )]);
    let stats = project.path("stats.json");
    let run = project
        .run(&[
            "plan",
            "--db",
            db.url(),
            "--sample",
            "200ms",
            "--write-stats",
            stats.to_str().unwrap(),
        ])
        .await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);

    // plan ends every transaction with a rollback; once its backend is gone (a backend flushes its statistics
    // as it exits) and its rollbacks are counted, the row counters must not have moved.
    let mut attempts = 0;
    let after = loop {
        attempts += 1;
        assert!(
            attempts < 300,
            "plan's backend never ended or its statistics never arrived"
        );
        let others: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                  WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let now = write_counters(&client).await;
        if others == 0 && now.3 > before.3 {
            break now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!((after.0, after.1, after.2), (before.0, before.1, before.2));
    let relations_after: i64 = client.query_one(relations, &[]).await.unwrap().get(0);
    assert_eq!(
        relations_after, relations_before,
        "no table, index or schema created"
    );
    let schema: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'tidegate')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!schema);
    let columns: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.columns \
              WHERE table_name = 'orders' AND column_name = 'amount' AND data_type = 'integer'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(columns, 1, "the migration itself was not run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_transaction_refuses_writes() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    tidegate_db::table_stats::begin_read_only(
        &client,
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(10),
    )
    .await
    .expect("begin");
    assert!(tidegate_db::table_stats::transaction_is_read_only(&client)
        .await
        .unwrap());
    let error = client
        .batch_execute("CREATE TABLE should_fail (id int)")
        .await
        .expect_err("a read-only transaction refuses DDL");
    assert_eq!(tidegate_db::connect::sqlstate(&error), Some("25006"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_stats_is_what_lint_reads() {
    let (db, _client) = seeded().await;
    let project = Project::new(&[(
        "001_flags_index.sql",
        "CREATE INDEX feature_flags_enabled ON feature_flags (enabled);\n",
    )]);
    let stats = project.path("stats.json");
    let run = project
        .run(&[
            "plan",
            "--db",
            db.url(),
            "--sample",
            "0s",
            "--write-stats",
            stats.to_str().unwrap(),
        ])
        .await;
    assert_eq!(run.code, 0, "a 12-row table: {}{}", run.stdout, run.stderr);
    let text = std::fs::read_to_string(&stats).expect("stats written");
    let parsed = tidegate_lint::TableStats::from_json(&text).expect("lint's format");
    let flags = parsed
        .get(&tidegate_sql::TableName::new(
            Some("public"),
            "feature_flags",
        ))
        .expect("feature_flags");
    assert_eq!(flags.rows, 12);
    assert!(flags.total_bytes.unwrap() > 0);
    assert_eq!(
        parsed
            .get(&tidegate_sql::TableName::new(None, "orders"))
            .expect("every table of the database")
            .rows,
        50_000
    );

    // lint without the stats flags the index build; with plan's stats it is info on a 12-row table.
    let without = project
        .run(&["lint", "--format", "json", "migrations"])
        .await;
    let with = project
        .run(&[
            "lint",
            "--format",
            "json",
            "migrations",
            "--stats",
            stats.to_str().unwrap(),
        ])
        .await;
    assert_ne!(with.code, 2, "{}", with.stderr);
    let index_finding = |run: &Run| -> String {
        run.json()["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == "create-index-non-concurrently")
            .map(|f| f["severity"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no index finding: {}", run.stdout))
    };
    assert_ne!(index_finding(&without), "info", "{}", without.stdout);
    assert_eq!(index_finding(&with), "info", "{}", with.stdout);
    assert!(with.stdout.contains("rows per the stats file"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_errors_exit_2_with_what_to_do_and_no_password() {
    let db = TestDatabase::create().await;
    let project = Project::new(&[("001_a.sql", "SELECT 1;\n")]);

    let bad_url = project
        .run(&[
            "plan",
            "--db",
            "postgresql://app:s3cret@localhost:notaport/db",
        ])
        .await;
    assert_eq!(bad_url.code, 2);
    assert!(
        bad_url.stderr.contains("does not parse"),
        "{}",
        bad_url.stderr
    );
    assert!(!bad_url.stderr.contains("s3cret") && !bad_url.stdout.contains("s3cret"));

    // Nothing listens on port 1.
    let unreachable = project
        .run(&["plan", "--db", "postgresql://app:s3cret@127.0.0.1:1/db"])
        .await;
    assert_eq!(unreachable.code, 2);
    assert!(
        unreachable.stderr.contains("cannot connect"),
        "{}",
        unreachable.stderr
    );
    assert!(unreachable.stderr.contains("--db, DATABASE_URL"));
    assert!(!unreachable.stderr.contains("s3cret"));

    let missing = project.run(&["plan", "--db", db.url(), "nowhere"]).await;
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("nowhere does not exist"),
        "{}",
        missing.stderr
    );

    std::fs::create_dir_all(project.path("empty")).unwrap();
    let empty = project.run(&["plan", "--db", db.url(), "empty"]).await;
    assert_eq!(empty.code, 2);
    assert!(
        empty.stderr.contains("no migrations found in empty"),
        "{}",
        empty.stderr
    );

    let version = project
        .run(&["plan", "--db", db.url(), "--pg-version", "9"])
        .await;
    assert_eq!(version.code, 2);
    assert!(version.stderr.contains("--pg-version 9"));

    let sample = project
        .run(&["plan", "--db", db.url(), "--sample", "soon"])
        .await;
    assert_eq!(sample.code, 2, "clap's usage error");

    // A statement touching no table is safe: exit 0 and the target printed without a password.
    let ok = project
        .run(&["plan", "--db", db.url(), "--sample", "0s"])
        .await;
    assert_eq!(ok.code, 0, "{}{}", ok.stdout, ok.stderr);
}

/// Rates chosen so the estimates are easy to check by hand.
fn calibration_json(update_row: f64, read_bytes_per_second: f64) -> String {
    serde_json::json!({
        "version": 1,
        "server_version_num": 150020,
        "measured_at": "2026-12-02T15:00:00Z",
        "rows_measured": [100000, 400000],
        "rates": {
            "update_row": update_row,
            "update_index_entry": 1e-4,
            "delete_row": 1e-5,
            "index_build_row": 1e-5,
            "scan_byte": 1e-7,
            "rewrite_byte": 1e-7,
            "read_bytes_per_second": read_bytes_per_second
        }
    })
    .to_string()
}

fn estimate_of(json: &serde_json::Value, sql_start: &str) -> f64 {
    statements(json)
        .into_iter()
        .find(|(sql, _, _)| sql.starts_with(sql_start))
        .unwrap_or_else(|| panic!("no statement {sql_start}"))
        .2["estimate_seconds"]
        .as_f64()
        .expect("estimate_seconds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calibration_file_prices_each_statement_and_plan_says_where_its_estimates_come_from() {
    let (db, _client) = seeded().await;
    let project = Project::new(&[
        ("001_touch.sql", "UPDATE orders SET amount = amount + 1;\n"),
        (
            "002_index.sql",
            "CREATE INDEX orders_amount ON orders (amount);\n",
        ),
    ]);
    let uncalibrated = project
        .run(&[
            "plan",
            "--db",
            db.url(),
            "--sample",
            "0s",
            "--format",
            "json",
        ])
        .await;
    let uncalibrated_json = uncalibrated.json();
    assert!(
        uncalibrated_json["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("tidegate plan --calibrate")),
        "{}",
        uncalibrated.stdout
    );

    std::fs::write(project.path("rates.json"), calibration_json(1e-3, 1e12)).unwrap();
    let calibrated = project
        .run(&[
            "plan",
            "--db",
            db.url(),
            "--sample",
            "0s",
            "--format",
            "json",
            "--calibration",
            "rates.json",
        ])
        .await;
    assert_eq!(calibrated.code, 1, "{}", calibrated.stderr);
    let json = calibrated.json();
    // 50,000 rows × (1 ms + one index, the primary key, × 0.1 ms); an UPDATE is not scaled by the read rate.
    let update = estimate_of(&json, "UPDATE orders");
    assert!((update - 55.0).abs() < 0.01, "{update}");
    assert_ne!(update, estimate_of(&uncalibrated_json, "UPDATE orders"));
    // 50,000 rows × 10 µs, scaled by the read rates: the file's 1e12 bytes/s is far faster than this server, so
    // the estimate is the most the scale allows, ten times the calibrated one.
    let index = estimate_of(&json, "CREATE INDEX");
    assert!((index - 5.0).abs() < 0.01, "{index}");
    assert!(
        json["notes"].as_array().unwrap().iter().any(|n| n
            .as_str()
            .unwrap()
            .contains("rates measured on PostgreSQL 150020")),
        "{}",
        calibrated.stdout
    );

    // Bad files are input errors that say what to do; an explicit path must exist.
    std::fs::write(project.path("bad.json"), "{\"version\": 1}").unwrap();
    for file in ["bad.json", "missing.json"] {
        let run = project
            .run(&["plan", "--db", db.url(), "--calibration", file])
            .await;
        assert_eq!(run.code, 2, "{file}: {}", run.stderr);
        assert!(run.stderr.contains("--calibrate"), "{file}: {}", run.stderr);
        assert!(run.stderr.contains(file), "{file}: {}", run.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calibrate_measures_every_rate_on_a_scratch_server_and_plan_reads_what_it_wrote() {
    let project = Project::new(&[]);
    let run = project
        .run(&["plan", "--calibrate", "--calibration", "measured.json"])
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("written to measured.json"),
        "{}",
        run.stdout
    );
    let text = std::fs::read_to_string(project.path("measured.json")).unwrap();
    let file = tidegate_plan::cost::CalibrationFile::parse(&text).expect("plan reads it");
    let r = file.rates;
    for (name, value) in [
        ("update_row", r.update_row),
        ("delete_row", r.delete_row),
        ("index_build_row", r.index_build_row),
        ("scan_byte", r.scan_byte),
        ("rewrite_byte", r.rewrite_byte),
    ] {
        assert!(value.is_finite() && value > 0.0, "{name} = {value}: {text}");
    }
    assert!(r.update_index_entry >= 0.0, "{text}");
    assert!(
        r.read_bytes_per_second.is_some_and(|rate| rate > 0.0),
        "{text}"
    );
    assert!(file.server_version_num >= 100000);
    // The scratch server is gone: nothing of it is left in the temporary directory.
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("tidegate-calibrate-")
        })
        .filter(|e| e.path().join("data").exists())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
