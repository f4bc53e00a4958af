//! `tidegate backfill`, `runs`, `pause`, `resume`, `abort` on MariaDB as a user runs them: the real binary against
//! a throwaway MariaDB. Includes the crash test (kill -9 the process at random instants, then let it finish:
//! every row changed exactly once), and the verbs that are PostgreSQL-only refusing a MySQL URL.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tidegate_db::driver::{Driver, Session, SessionExt};
use tidegate_db::mysql::MySqlConfig;
use tidegate_testkit::PrivateMariaDb;

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

async fn connect(url: &str) -> Box<dyn Session> {
    MySqlConfig::from_url(url).unwrap().open().await.unwrap()
}

async fn make_items(s: &dyn Session, rows: i64) {
    s.batch_execute(&format!(
        "create table items (id bigint primary key, n int not null default 0, note varchar(100)) engine=innodb;
         insert into items (id) select seq from seq_1_to_{rows}"
    ))
    .await
    .unwrap();
}

async fn histogram(s: &dyn Session) -> Vec<(i64, i64)> {
    s.rows(
        "select n, count(*) as c from items group by n order by n",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("n").unwrap(), r.get("c").unwrap()))
    .collect()
}

async fn run_status(s: &dyn Session, id: i64) -> String {
    s.query_one(
        "select status from tidegate.runs where id = ?",
        &[id.into()],
    )
    .await
    .unwrap()
    .get("status")
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_at_random_instants_then_finish_exactly_once() {
    let server = PrivateMariaDb::start();
    let url = server.url();
    let s = connect(&url).await;
    make_items(s.as_ref(), 40_000).await;
    let args = [
        "backfill",
        "--db",
        url.as_str(),
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
    let done = run(&args);
    assert!(done.status.success(), "seed {seed}: {}", text(&done.stderr));
    assert_eq!(
        histogram(s.as_ref()).await,
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
    assert_eq!(histogram(s.as_ref()).await, vec![(1, 40_000)]);
    // One run, completed, as `tidegate runs` lists it.
    let runs = run(&["runs", "--db", &url, "--format", "json"]);
    assert!(runs.status.success(), "{}", text(&runs.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["status"], "completed");
    assert_eq!(listed[0]["rows_done"], 40_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_abort_commands_from_another_terminal() {
    let server = PrivateMariaDb::start();
    let url = server.url();
    let s = connect(&url).await;
    make_items(s.as_ref(), 20_000).await;
    let mut child = tidegate()
        .args([
            "backfill",
            "--db",
            &url,
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
    let until = Instant::now() + Duration::from_secs(60);
    while !run(&["runs", "--db", &url]).stdout.starts_with(b"  id") {
        assert!(Instant::now() < until, "the run never appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
    let paused = run(&["pause", "1", "--db", &url]);
    assert!(paused.status.success(), "{}", text(&paused.stderr));
    assert!(text(&paused.stdout).contains("pause requested"));
    let until = Instant::now() + Duration::from_secs(10);
    while run_status(s.as_ref(), 1).await != "paused" {
        assert!(Instant::now() < until, "not paused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resumed = run(&["resume", "1", "--db", &url]);
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    let until = Instant::now() + Duration::from_secs(10);
    while run_status(s.as_ref(), 1).await != "running" {
        assert!(Instant::now() < until, "not resumed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let aborted = run(&["abort", "1", "--db", &url]);
    assert!(aborted.status.success(), "{}", text(&aborted.stderr));
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
    assert_eq!(run_status(s.as_ref(), 1).await, "aborted");
    let again = run(&["abort", "1", "--db", &url]);
    assert_eq!(again.status.code(), Some(2), "no unfinished run 1 any more");
    let missing = run(&["pause", "99", "--db", &url]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("no unfinished run 99"));
    // Rows the checkpoints count were changed once; the rest not at all.
    let done: i64 = s
        .query_one(
            "select cast(sum(rows_done) as signed) as d from tidegate.chunks where run_id = 1",
            &[],
        )
        .await
        .unwrap()
        .get("d")
        .unwrap();
    assert_eq!(
        histogram(s.as_ref()).await,
        vec![(0, 20_000 - done), (1, done)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_database_url_on_mariadb() {
    let server = PrivateMariaDb::start();
    let url = server.url();
    let s = connect(&url).await;
    make_items(s.as_ref(), 100).await;
    s.batch_execute("create table heap (a int, n int not null default 0) engine=innodb")
        .await
        .unwrap();
    for (args, expected) in [
        (
            vec!["--table", "no_such_table", "--set", "n = 1"],
            "does not exist",
        ),
        (
            vec!["--table", "heap", "--set", "n = n + 1"],
            "no primary key",
        ),
        (
            vec!["--table", "items", "--set", "n = no_such_function(n)"],
            "do not fit",
        ),
        (
            vec![
                "--table",
                "items",
                "--set",
                "n = n + 1",
                "--where",
                "1 = 1) OR (1 = 1",
            ],
            "--where",
        ),
    ] {
        let out = run(&[&["backfill", "--db", &url][..], &args[..]].concat());
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(expected),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(histogram(s.as_ref()).await, vec![(0, 100)]);
    // A URL that does not parse: refused, without its password.
    let bad = run(&[
        "backfill",
        "--db",
        "mysql://root:s3cret@127.0.0.1:notaport/scratch",
        "--table",
        "items",
        "--set",
        "n = n + 1",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let message = text(&bad.stderr);
    assert!(
        message.contains("mysql://user:password@host:port/dbname"),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
    // A wrong password: the server refuses, and the message does not repeat it.
    let wrong = url.replace("root@", "root:hunter2@");
    let refused = run(&["runs", "--db", &wrong]);
    assert_ne!(refused.status.code(), Some(0));
    assert!(
        !text(&refused.stderr).contains("hunter2"),
        "{}",
        text(&refused.stderr)
    );
    // DATABASE_URL reaches the MySQL driver too, for the dry run as for the run.
    let dry = tidegate()
        .env("DATABASE_URL", &url)
        .args([
            "backfill",
            "--table",
            "items",
            "--set",
            "n = n + 1",
            "--dry-run",
        ])
        .output()
        .unwrap();
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let plan = text(&dry.stdout);
    assert!(plan.contains("UPDATE `scratch`.`items` SET"), "{plan}");
    assert!(plan.contains("INNODB_LOCK_WAITS"), "{plan}");
    let done = tidegate()
        .env("DATABASE_URL", &url)
        .args(["backfill", "--table", "items", "--set", "n = n + 1"])
        .output()
        .unwrap();
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert!(
        text(&done.stdout).contains("100 rows"),
        "{}",
        text(&done.stdout)
    );
    assert_eq!(histogram(s.as_ref()).await, vec![(1, 100)]);
}

/// Every verb that speaks only PostgreSQL so far refuses a MySQL URL with what and why, before doing anything,
/// and never prints the password.
#[test]
fn postgres_only_verbs_refuse_a_mysql_url() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    std::fs::write(migrations.join("1_init.sql"), "create table t (id int);\n").unwrap();
    let migrations = migrations.to_str().unwrap();
    for url in [
        "mysql://app:s3cret@127.0.0.1:3306/shop",
        "mariadb://app:s3cret@127.0.0.1:3306/shop",
    ] {
        // `apply`, `status` and `report` speak MySQL/MariaDB (tests/apply_mysql_cli.rs, tests/report_mysql.rs).
        for verb in [
            vec!["plan", migrations],
            vec!["rehearse", migrations],
            vec!["baseline", migrations],
        ] {
            for via_env in [false, true] {
                let mut command = tidegate();
                command.args(&verb).current_dir(dir.path());
                if via_env {
                    command.env("DATABASE_URL", url);
                } else {
                    command.args(["--db", url]);
                }
                let out = command.output().unwrap();
                let stderr = text(&out.stderr);
                assert_eq!(out.status.code(), Some(2), "{verb:?} {url}: {stderr}");
                assert!(
                    stderr.contains("PostgreSQL-only for now") && stderr.contains("MySQL/MariaDB"),
                    "{verb:?}: {stderr}"
                );
                assert!(
                    stderr.contains(if via_env { "DATABASE_URL" } else { "--db" }),
                    "{verb:?}: {stderr}"
                );
                assert!(!stderr.contains("s3cret"), "{verb:?}: {stderr}");
            }
        }
    }
}

/// `--set`/`--where` are read with MySQL's grammar on a MySQL target: backticks, `#` comments, backslash escapes
/// and MySQL's operators run; text that is not one assignment list or one expression in that grammar (or that the
/// server's sql_mode would read otherwise) is refused before any row changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_grammar_set_and_where_run_and_bad_text_is_refused_first() {
    let server = PrivateMariaDb::start();
    let url = server.url();
    let s = connect(&url).await;
    make_items(s.as_ref(), 200).await;
    for (set, predicate, expected) in [
        ("`n` = `n` + 1 # one more", "1 = 1) OR (1 = 1", "--where"),
        ("n = 1; DELETE FROM items", "`id` > 0", "assignment list"),
        ("n = 1 LIMIT 5", "`id` > 0", "ORDER BY or LIMIT"),
        ("\"n\" = 1", "`id` > 0", "double-quoted"),
        ("n = 1", "\"note\" IS NULL", "double-quoted"),
        ("n = n + 1", "id > 0 ORDER BY id", "--where"),
        ("`ID` = `id` + 1000", "`id` > 0", "key column \"id\""),
    ] {
        let out = run(&[
            "backfill", "--db", &url, "--table", "items", "--set", set, "--where", predicate,
        ]);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{set:?} / {predicate:?}: {stderr}"
        );
        assert!(
            stderr.contains(expected),
            "{set:?} / {predicate:?}: {stderr}"
        );
    }
    assert_eq!(
        histogram(s.as_ref()).await,
        vec![(0, 200)],
        "nothing changed"
    );
    // The same server read the text otherwise under NO_BACKSLASH_ESCAPES: refused, nothing changed.
    let mode: String = s
        .query_one("SELECT @@GLOBAL.sql_mode AS m", &[])
        .await
        .unwrap()
        .get("m")
        .unwrap();
    s.batch_execute("SET GLOBAL sql_mode = CONCAT(@@GLOBAL.sql_mode, ',NO_BACKSLASH_ESCAPES')")
        .await
        .unwrap();
    let out = run(&[
        "backfill",
        "--db",
        &url,
        "--table",
        "items",
        "--set",
        "note = 'it\\'s'",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("NO_BACKSLASH_ESCAPES"), "{stderr}");
    s.execute("SET GLOBAL sql_mode = ?".into(), &[mode.into()])
        .await
        .unwrap();
    assert_eq!(
        histogram(s.as_ref()).await,
        vec![(0, 200)],
        "nothing changed"
    );
    // MySQL's own spelling runs: backticks, a backslash escape, `#` comments, DIV, <=>, &&.
    let out = run(&[
        "backfill",
        "--db",
        &url,
        "--table",
        "items",
        "--set",
        "`n` = `n` + 1, `note` = CONCAT('it\\'s ', `id` DIV 2) # why",
        "--where",
        "`id` <= 150 && `note` <=> NULL",
        "--batch-size",
        "40",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(histogram(s.as_ref()).await, vec![(0, 50), (1, 150)]);
    let note: String = s
        .query_one("select note from items where id = 7", &[])
        .await
        .unwrap()
        .get("note")
        .unwrap();
    assert_eq!(note, "it's 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_key_takes_backticks_and_any_case() {
    let server = PrivateMariaDb::start();
    let url = server.url();
    let s = connect(&url).await;
    make_items(s.as_ref(), 120).await;
    for (key, set, expected) in [
        ("`nope`", "n = n + 1", "does not have"),
        ("\"id\"", "n = n + 1", "--key"),
        ("id AS k", "n = n + 1", "--key"),
        // The key named in another case is still the key: assigning it is refused.
        ("ID", "`id` = `id` + 1000", "key column \"id\""),
    ] {
        let out = run(&[
            "backfill", "--db", &url, "--table", "items", "--set", set, "--key", key,
        ]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key:?}: {stderr}");
        assert!(stderr.contains(expected), "{key:?}: {stderr}");
    }
    assert_eq!(
        histogram(s.as_ref()).await,
        vec![(0, 120)],
        "nothing changed"
    );
    for key in ["`id`", "ID"] {
        let out = run(&[
            "backfill",
            "--db",
            &url,
            "--table",
            "items",
            "--set",
            "n = n + 1",
            "--key",
            key,
            "--batch-size",
            "50",
        ]);
        assert!(out.status.success(), "{key:?}: {}", text(&out.stderr));
    }
    assert_eq!(histogram(s.as_ref()).await, vec![(2, 120)]);
}

/// `--replica` as a user passes it: a replica on loopback watched through a whole run (the dry run names it), an
/// unreachable one refused before any row changes with its password hidden, a bad URL and a PostgreSQL `--db`
/// refused as usage errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_urls_are_watched_and_bad_ones_refused_before_any_row_changes() {
    let primary = PrivateMariaDb::start_primary();
    let replica = PrivateMariaDb::start_replica_of(&primary);
    let url = primary.url();
    let s = connect(&url).await;
    make_items(s.as_ref(), 2_000).await;
    let replica_url = replica.url();
    let base = [
        "backfill",
        "--db",
        &url,
        "--table",
        "items",
        "--set",
        "n = n + 1",
    ];
    let with = |extra: &[&str]| -> Output {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        run(&args)
    };
    let dry = with(&["--replica", &replica_url, "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let plan = text(&dry.stdout);
    assert!(
        plan.contains("SHOW REPLICA STATUS on mysql://root@127.0.0.1:"),
        "{plan}"
    );

    // Unreachable: exit 1, nothing written, the password never shown.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = format!("mysql://watcher:s3cret@127.0.0.1:{port}/");
    let refused = with(&["--replica", &replica_url, "--replica", &unreachable]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains(&format!("mysql://watcher@127.0.0.1:{port}/")),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
    assert_eq!(histogram(s.as_ref()).await, vec![(0, 2_000)]);

    // A bad URL and a PostgreSQL --db: usage errors.
    let bad = with(&["--replica", "postgresql://x@y/z"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
    assert!(
        text(&bad.stderr).contains("--replica"),
        "{}",
        text(&bad.stderr)
    );
    let postgres = run(&[
        "backfill",
        "--db",
        "postgresql://u@127.0.0.1:1/db",
        "--table",
        "items",
        "--set",
        "n = 1",
        "--replica",
        &replica_url,
    ]);
    assert_eq!(
        postgres.status.code(),
        Some(2),
        "{}",
        text(&postgres.stderr)
    );
    assert!(
        text(&postgres.stderr).contains("pg_stat_replication"),
        "{}",
        text(&postgres.stderr)
    );

    // Watched through a whole run: completes, every row once, on the replica too.
    let done = with(&[
        "--replica",
        &replica_url,
        "--format",
        "json",
        "--batch-size",
        "500",
    ]);
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert_eq!(histogram(s.as_ref()).await, vec![(1, 2_000)]);
    replica.wait_caught_up(&primary);
    assert_eq!(
        histogram(connect(&replica_url).await.as_ref()).await,
        vec![(1, 2_000)]
    );
}
