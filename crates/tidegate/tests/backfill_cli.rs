//! `tidegate backfill`, `runs`, `pause`, `resume`, `abort` as a user runs them: the real binary against a real
//! PostgreSQL. Includes the crash test: kill -9 the process at random instants, then let it finish.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tidegate_testkit::TestDatabase;
use tokio_postgres::Client;

fn tidegate() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tidegate"));
    command.env_remove("DATABASE_URL").env("NO_COLOR", "1");
    command
}

fn run(args: &[&str]) -> Output {
    tidegate()
        .args(args)
        .output()
        .expect("the tidegate binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn make_items(client: &Client, rows: i64) {
    client
        .batch_execute(&format!(
            "create table items (id bigint primary key, n int not null default 0, note text);
             insert into items (id) select g from generate_series(1, {rows}) g;
             analyze items;"
        ))
        .await
        .unwrap();
}

async fn histogram(client: &Client) -> Vec<(i32, i64)> {
    client
        .query("select n, count(*) from items group by n order by n", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn has_state_schema(client: &Client) -> bool {
    client
        .query_one("select to_regnamespace('tidegate') is not null", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_at_random_instants_then_finish_exactly_once() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 40_000).await;
    let args = [
        "backfill",
        "--db",
        db.url(),
        "--table",
        "items",
        "--set",
        "n = n + 1",
        "--batch-size",
        "300",
        // Slow enough that the run outlives the kills even on a loaded machine (≥ 10 s of work).
        "--max-rows-per-second",
        "4000",
        "--format",
        "json",
    ];
    let seed = std::env::var("TIDEGATE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut kills = 0;
    // Kill until twelve processes have died mid-run (or the run finished under a survivor).
    for attempt in 0..40 {
        if kills >= 12 {
            break;
        }
        // Every other attempt runs three workers over small claimed ranges: the claim and frontier paths get
        // killed too, and processes of both shapes resume the same run.
        let workers: &[&str] = if attempt % 2 == 1 {
            &["--workers", "3", "--chunk-rows", "2000"]
        } else {
            &[]
        };
        let mut child = tidegate()
            .args(args)
            .args(workers)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.u64(20..600)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(
        kills >= 4,
        "the run ended too early to test crashes (seed {seed})"
    );
    // Finish it (a killed process may already have completed the run: then there is nothing left to do).
    let done = run(&args);
    assert!(done.status.success(), "seed {seed}: {}", text(&done.stderr));
    assert_eq!(
        histogram(&client).await,
        vec![(1, 40_000)],
        "seed {seed}: every row changed exactly once"
    );
    let stdout = text(&done.stdout);
    assert!(
        stdout
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"event\":\"completed\"") || stdout.contains("already completed"),
        "{stdout}"
    );
    // Once complete, the same command has nothing to do.
    let again = run(&args);
    assert!(again.status.success());
    assert!(
        text(&again.stdout).contains("already completed"),
        "{}",
        text(&again.stdout)
    );
    assert_eq!(histogram(&client).await, vec![(1, 40_000)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_pauses_prints_how_to_resume_and_exits_non_zero() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 20_000).await;
    let args = [
        "backfill",
        "--db",
        db.url(),
        "--table",
        "items",
        "--set",
        "n = n + 1",
        "--batch-size",
        "250",
        "--max-rows-per-second",
        "5000",
    ];
    let child = tidegate()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let row = client
            .query_opt(
                "select coalesce(sum(rows_done), 0)::int8 from tidegate.chunks",
                &[],
            )
            .await;
        if matches!(row, Ok(Some(ref r)) if r.get::<_, i64>(0) > 0) {
            break;
        }
        assert!(Instant::now() < until, "no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("paused"), "{stderr}");
    assert!(stderr.contains("--resume 1"), "{stderr}");
    let runs = run(&["runs", "--db", db.url(), "--format", "json"]);
    let listed: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    assert_eq!(listed[0]["status"], "paused");
    assert_eq!(listed[0]["status_reason"], "interrupted by SIGINT");
    for field in [
        "id",
        "kind",
        "table",
        "status",
        "rows_done",
        "batches",
        "rows_per_second",
        "started",
        "finished",
        "last_error",
    ] {
        assert!(
            listed[0].get(field).is_some(),
            "runs --format json lacks {field}: {listed}"
        );
    }
    let resumed = run(&["backfill", "--db", db.url(), "--resume", "1"]);
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    assert_eq!(histogram(&client).await, vec![(1, 20_000)]);
    let runs = run(&["runs", "--db", db.url()]);
    let table = text(&runs.stdout);
    assert!(
        table.contains("completed") && table.contains("20000"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_abort_commands_from_another_terminal() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 20_000).await;
    let mut child = tidegate()
        .args([
            "backfill",
            "--db",
            db.url(),
            "--table",
            "items",
            "--set",
            "n = n + 1",
            "--batch-size",
            "200",
            "--max-rows-per-second",
            "4000",
            "--format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    while !run(&["runs", "--db", db.url()]).stdout.starts_with(b"  id") {
        assert!(Instant::now() < until, "the run never appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
    let paused = run(&["pause", "1", "--db", db.url()]);
    assert!(paused.status.success(), "{}", text(&paused.stderr));
    assert!(text(&paused.stdout).contains("pause requested"));
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let status: String = client
            .query_one("select status from tidegate.runs where id = 1", &[])
            .await
            .unwrap()
            .get(0);
        if status == "paused" {
            break;
        }
        assert!(Instant::now() < until, "not paused: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(run(&["resume", "1", "--db", db.url()]).status.success());
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let status: String = client
            .query_one("select status from tidegate.runs where id = 1", &[])
            .await
            .unwrap()
            .get(0);
        if status == "running" {
            break;
        }
        assert!(Instant::now() < until, "not resumed: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let aborted = run(&["abort", "1", "--db", db.url()]);
    assert!(aborted.status.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "an aborted run exits non-zero");
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    for event in [
        "\"event\":\"paused\"",
        "\"event\":\"resumed\"",
        "\"event\":\"aborted\"",
    ] {
        assert!(out.contains(event), "{event} missing: {out}");
    }
    let again = run(&["abort", "1", "--db", db.url()]);
    assert_eq!(again.status.code(), Some(2), "no unfinished run 1 any more");
    let missing = run(&["pause", "99", "--db", db.url()]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("no unfinished run 99"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_plan_and_changes_nothing() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 1_000).await;
    let output = run(&[
        "backfill",
        "--db",
        db.url(),
        "--table",
        "items",
        "--set",
        "n = n + 1",
        "--where",
        "note IS NULL",
        "--dry-run",
    ]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    for expected in [
        "key:     (id) from index items_pkey",
        "SET LOCAL lock_timeout",
        "UPDATE \"public\".\"items\" SET",
        "note IS NULL",
        "UPDATE tidegate.chunks SET cursor",
        "sessions blocked by our backends",
        "replica lag",
        "about 1000",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing from:\n{stdout}"
        );
    }
    assert_eq!(histogram(&client).await, vec![(0, 1_000)]);
    assert!(
        !has_state_schema(&client).await,
        "a dry run creates nothing"
    );
    let json = run(&[
        "backfill",
        "--db",
        db.url(),
        "--table",
        "items",
        "--set",
        "n = 1",
        "--dry-run",
        "--format",
        "json",
    ]);
    let plan: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(plan["plan"]["key"][0], "id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_any_row_changes() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 100).await;
    client
        .batch_execute(
            "create table nokey (a int, b int); insert into nokey values (1, 1);
             create table nullable_unique (a int unique, b int); insert into nullable_unique values (1, 1);",
        )
        .await
        .unwrap();
    client
        .batch_execute("create database readonly_db")
        .await
        .unwrap();
    let url = db.url();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--table", "nope", "--set", "n = 1"],
            "table \"nope\" does not exist",
        ),
        (
            vec!["--table", "items", "--set", "missing = 1"],
            "does not have",
        ),
        (
            vec!["--table", "items", "--set", "n = missing + 1"],
            "column \"missing\" does not exist",
        ),
        (
            vec![
                "--table",
                "items",
                "--set",
                "n = 1",
                "--where",
                "missing > 0",
            ],
            "column \"missing\" does not exist",
        ),
        (
            vec!["--table", "items", "--set", "n = 'abc'::int + "],
            "does not parse as an assignment list",
        ),
        (
            vec!["--table", "items", "--set", "n = 1; drop table items"],
            "does not parse as an assignment list",
        ),
        (
            vec!["--table", "items", "--set", "n = 1 where true"],
            "WHERE clause",
        ),
        (
            vec![
                "--table",
                "items",
                "--set",
                "n = 1",
                "--where",
                "true) or (true",
            ],
            "does not parse as one expression",
        ),
        (
            vec![
                "--table",
                "items",
                "--set",
                "n = 1",
                "--where",
                "true; delete from items",
            ],
            "does not parse as one expression",
        ),
        (
            vec!["--table", "items", "--set", "id = id + 1"],
            "key column",
        ),
        (
            vec!["--table", "items", "--set", "n = 1", "--key", "note"],
            "does not name a unique index",
        ),
        (
            vec!["--table", "nokey", "--set", "a = 1"],
            "has no primary key",
        ),
        (
            vec!["--table", "nullable_unique", "--set", "b = 2"],
            "has no primary key",
        ),
        (
            vec![
                "--table",
                "items",
                "--set",
                "n = 1",
                "--window",
                "25:00-01:00",
            ],
            "HH:MM-HH:MM",
        ),
        (
            vec![
                "--table",
                "items",
                "--set",
                "n = 1",
                "--throttle-query",
                "delete from items",
            ],
            "exactly one SELECT",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["backfill", "--db", url];
        args.extend(extra.iter().copied());
        let output = run(&args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{extra:?}: expected {expected:?} in {stderr}"
        );
    }
    assert_eq!(histogram(&client).await, vec![(0, 100)]);

    // A read-only connection.
    let ro_url = tidegate_testkit::url_with_database(url, "readonly_db");
    let ro = tidegate_testkit::connect(&ro_url).await;
    ro.batch_execute("create table items (id int primary key, n int)")
        .await
        .unwrap();
    client
        .batch_execute("alter database readonly_db set default_transaction_read_only = on")
        .await
        .unwrap();
    let output = run(&[
        "backfill", "--db", &ro_url, "--table", "items", "--set", "n = 1",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("read-only"),
        "{}",
        text(&output.stderr)
    );

    // A bad URL, and a password that must never be printed.
    let output = run(&[
        "backfill",
        "--db",
        "postgresql://u:hunter2@localhost:notaport/x",
        "--table",
        "t",
        "--set",
        "a = 1",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("does not parse"),
        "{}",
        text(&output.stderr)
    );
    assert!(!text(&output.stderr).contains("hunter2"));
    let output = run(&[
        "backfill",
        "--db",
        "postgresql://u:hunter2@127.0.0.1:1/x",
        "--table",
        "t",
        "--set",
        "a = 1",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("cannot connect to postgresql://u:***@127.0.0.1:1/x"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2") && !text(&output.stdout).contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_url_and_libpq_variables_are_honoured() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 50).await;
    let output = tidegate()
        .env("DATABASE_URL", db.url())
        .args(["backfill", "--table", "items", "--set", "n = n + 1"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let parsed = tokio_postgres::Config::from_str_compat(db.url());
    let output = tidegate()
        .env("PGHOST", &parsed.0)
        .env("PGPORT", parsed.1.to_string())
        .env("PGUSER", "postgres")
        .env("PGDATABASE", db.name())
        .args(["runs"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("completed"),
        "{}",
        text(&output.stdout)
    );
    assert_eq!(histogram(&client).await, vec![(1, 50)]);
}

/// Host and port out of a test URL.
trait FromStrCompat {
    fn from_str_compat(url: &str) -> (String, u16);
}

impl FromStrCompat for tokio_postgres::Config {
    fn from_str_compat(url: &str) -> (String, u16) {
        let config: tokio_postgres::Config = url.parse().unwrap();
        let host = match &config.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        };
        (host, config.get_ports()[0])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_pauses_too() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 20_000).await;
    let child = tidegate()
        .args([
            "backfill",
            "--db",
            db.url(),
            "--table",
            "items",
            "--set",
            "n = n + 1",
            "--batch-size",
            "250",
            "--max-rows-per-second",
            "5000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let row = client
            .query_opt(
                "select coalesce(sum(rows_done), 0)::int8 from tidegate.chunks",
                &[],
            )
            .await;
        if matches!(row, Ok(Some(ref r)) if r.get::<_, i64>(0) > 0) {
            break;
        }
        assert!(Instant::now() < until, "no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let row = client
        .query_one(
            "select status, status_reason from tidegate.runs where id = 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "paused");
    assert_eq!(row.get::<_, String>(1), "interrupted by SIGTERM");
    // Every row counted by the checkpoint was changed once, and no other.
    let done: i64 = client
        .query_one("select sum(rows_done)::int8 from tidegate.chunks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        histogram(&client).await,
        vec![(0, 20_000 - done), (1, done)]
    );
}
