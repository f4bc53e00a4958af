//! `tidegate apply` on MySQL/MariaDB from the command line, against a private throwaway MariaDB (the test kit's):
//! the dry-run plan shows the statement as it will run, apply applies and a second run is a no-op, a bad URL and a
//! sub-second `--lock-timeout` are usage errors that never print the password; and the crash test: `kill -9` of
//! the apply process at random instants, then a run to the end, leaves the schema a plain run leaves and every
//! row of the backfill phase changed exactly once.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use tidegate_db::driver::{Driver, Session, SessionExt};
use tidegate_db::mysql::MySqlConfig;
use tidegate_testkit::PrivateMariaDb;

fn tidegate() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tidegate"));
    command.env_remove("DATABASE_URL").env("NO_COLOR", "1");
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn apply(args: &[&str]) -> Output {
    tidegate().arg("apply").args(args).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_plans_applies_and_reruns_as_a_no_op() {
    let server = PrivateMariaDb::start();
    let url = server.url();
    let s = MySqlConfig::from_url(&url).unwrap().open().await.unwrap();
    s.batch_execute(
        "create table items (id bigint primary key, n int not null default 0) engine=innodb;
         insert into items (id) select seq from seq_1_to_1000",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("0001_add.sql"),
        "ALTER TABLE items ADD COLUMN m INT;\nUPDATE items SET m = n + 1 WHERE m IS NULL;\n",
    )
    .unwrap();
    let migrations = dir.path().to_str().unwrap();

    let plan = apply(&["--db", &url, migrations, "--dry-run"]);
    let stdout = text(&plan.stdout);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stderr));
    assert!(stdout.contains("on MariaDB 10."), "{stdout}");
    assert!(
        stdout.contains("ddl: ALTER TABLE items ADD COLUMN m INT, ALGORITHM=INSTANT"),
        "{stdout}"
    );
    assert!(
        stdout.contains("backfill: backfill of items: SET m = n + 1 WHERE m IS NULL"),
        "{stdout}"
    );

    let run = apply(&["--db", &url, migrations, "--lock-timeout", "1s"]);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("ALGORITHM=INSTANT added from the online-DDL facts"),
        "{stderr}"
    );
    assert!(
        stderr.contains("applied 1 migration(s): 0001_add.sql"),
        "{stderr}"
    );
    let again = apply(&["--db", &url, migrations]);
    assert_eq!(again.status.code(), Some(0));
    assert!(
        text(&again.stderr).contains("nothing to apply"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn bad_urls_and_sub_second_lock_timeouts_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("1.sql"),
        "ALTER TABLE t ADD COLUMN x INT;\n",
    )
    .unwrap();
    let migrations = dir.path().to_str().unwrap();
    let bad = apply(&[
        "--db",
        "mysql://app:s3cret@127.0.0.1:notaport/shop",
        migrations,
    ]);
    let stderr = text(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("does not parse") && !stderr.contains("s3cret"),
        "{stderr}"
    );
    // Refused before connecting: the port is never tried.
    let sub_second = apply(&[
        "--db",
        "mariadb://app:s3cret@127.0.0.1:1/shop",
        migrations,
        "--lock-timeout",
        "500ms",
    ]);
    let stderr = text(&sub_second.stderr);
    assert_eq!(sub_second.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("whole seconds") && !stderr.contains("s3cret"),
        "{stderr}"
    );
}

/// `SHOW CREATE TABLE` of `table` in `database`, the text that decides whether two schemas are the same.
async fn create_table(s: &dyn Session, database: &str, table: &str) -> String {
    let rows = s
        .query_text(&format!("show create table `{database}`.`{table}`"))
        .await
        .unwrap();
    rows[0][1].clone().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_of_apply_at_random_instants_then_finish_as_a_plain_run_would() {
    let server = PrivateMariaDb::start();
    let url = server.url();
    let s = MySqlConfig::from_url(&url).unwrap().open().await.unwrap();
    let database: String = s
        .query_one("select database() as d", &[])
        .await
        .unwrap()
        .get("d")
        .unwrap();
    let table = "create table items (id bigint primary key, n int not null default 0, note varchar(40)) engine=innodb";
    s.batch_execute(&format!(
        "{table}; insert into items (id) select seq from seq_1_to_30000"
    ))
    .await
    .unwrap();
    let migrations = [
        (
            "0001_count.sql",
            // The UPDATE is not idempotent: a batch applied twice, or skipped, shows in the counts.
            "ALTER TABLE items ADD COLUMN m INT;\nCREATE INDEX items_n ON items (n);\nUPDATE items SET n = n + 1;\n",
        ),
        (
            "0002_more.sql",
            concat!(
                "ALTER TABLE items ADD COLUMN k INT NOT NULL DEFAULT 7;\nALTER TABLE items RENAME INDEX items_n TO items_by_n;\nALTER TABLE items DROP COLUMN m;\n",
                // A MODIFY of a column created before the migrations: judged from its live definition (a widening).
                "ALTER TABLE items MODIFY note varchar(80);\n",
            ),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (name, sql) in migrations {
        std::fs::write(dir.path().join(name), sql).unwrap();
    }
    // The same statements run plainly in another database: the schema every apply must end with.
    s.batch_execute(&format!(
        "create database plain; use plain; {table}; {} use `{database}`",
        migrations
            .iter()
            .map(|(_, sql)| sql.replace('\n', " "))
            .collect::<String>()
    ))
    .await
    .unwrap();
    let expected = create_table(s.as_ref(), "plain", "items").await;

    let path = dir.path().to_str().unwrap();
    // Slow enough that the backfill phase (30,000 rows) outlives several kills even on a loaded machine.
    let args = [
        "--db",
        url.as_str(),
        path,
        "--lock-timeout",
        "1s",
        "--max-rows-per-second",
        "3000",
        "--lock-wait",
        "10s",
    ];
    let seed = std::env::var("TIDEGATE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut kills = 0;
    for _ in 0..30 {
        if kills >= 10 {
            break;
        }
        let mut child = tidegate()
            .arg("apply")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.u64(50..1500)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL: no handler runs, the connections just drop
            kills += 1;
            child.wait().unwrap();
        } else {
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "seed {seed}: a run between kills failed: {}",
                text(&output.stderr)
            );
        }
    }
    assert!(
        kills >= 4,
        "apply ended too early to test crashes (seed {seed})"
    );
    eprintln!("seed {seed}: {kills} kills");
    let done = apply(&args);
    assert_eq!(
        done.status.code(),
        Some(0),
        "seed {seed}: {}",
        text(&done.stderr)
    );
    assert_eq!(
        create_table(s.as_ref(), &database, "items").await,
        expected,
        "seed {seed}: the schema differs from a plain run's"
    );
    let counts: Vec<(i64, i64)> = s
        .rows(
            "select n, count(*) as c from items group by n order by n",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("n").unwrap(), r.get("c").unwrap()))
        .collect();
    assert_eq!(
        counts,
        vec![(1, 30_000)],
        "seed {seed}: every row changed exactly once"
    );
    let history: Vec<(String, String)> = s
        .rows(
            "select version, status from tidegate.migrations order by version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("version").unwrap(), r.get("status").unwrap()))
        .collect();
    assert_eq!(
        history,
        vec![
            ("0001_count.sql".to_string(), "applied".to_string()),
            ("0002_more.sql".to_string(), "applied".to_string()),
        ],
        "seed {seed}"
    );
    let again = apply(&args);
    assert!(
        text(&again.stderr).contains("nothing to apply"),
        "{}",
        text(&again.stderr)
    );
}

/// A MariaDB with `items` and one pending migration adding `note`; the connection and the migrations directory.
async fn items_with_pending_note() -> (PrivateMariaDb, Box<dyn Session>, tempfile::TempDir) {
    let server = PrivateMariaDb::start();
    let s = MySqlConfig::from_url(&server.url())
        .unwrap()
        .open()
        .await
        .unwrap();
    s.batch_execute(
        "create table items (id bigint primary key, n int not null default 0) engine=innodb;
         insert into items (id) select seq from seq_1_to_100",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("0001_note.sql"),
        "ALTER TABLE items ADD COLUMN note VARCHAR(20);\n",
    )
    .unwrap();
    (server, s, dir)
}

async fn has_note(s: &dyn Session) -> bool {
    let rows = s
        .query_text(
            "select count(*) from information_schema.COLUMNS \
             where TABLE_SCHEMA = database() and TABLE_NAME = 'items' and COLUMN_NAME = 'note'",
        )
        .await
        .unwrap();
    rows[0][0].as_deref() == Some("1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_its_window_apply_waits_and_says_why() {
    let (server, s, dir) = items_with_pending_note().await;
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
    let mut child = tidegate()
        .args([
            "apply",
            "--db",
            &server.url(),
            dir.path().to_str().unwrap(),
            "--window",
            &window,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "apply must wait for its window, not run or give up"
    );
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let log = text(&output.stderr);
    assert!(
        log.contains("outside the --window") && log.contains("waiting"),
        "{log}"
    );
    assert!(
        !has_note(s.as_ref()).await,
        "nothing ran outside the window"
    );
    // A bad window is a usage error.
    let bad = apply(&[
        "--db",
        &server.url(),
        dir.path().to_str().unwrap(),
        "--window",
        "25:00-26:00",
    ]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_gate_waits_for_the_throttle_query_then_applies_or_refuses() {
    let (server, s, dir) = items_with_pending_note().await;
    let url = server.url();
    let path = dir.path().to_str().unwrap().to_string();
    s.batch_execute("create table ops_gate (busy boolean); insert into ops_gate values (true)")
        .await
        .unwrap();
    // Unhealthy for longer than --health-wait: refused, nothing changed.
    let refused = apply(&[
        "--db",
        &url,
        &path,
        "--throttle-query",
        "select busy from ops_gate",
        "--health-wait",
        "2s",
    ]);
    let log = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{log}");
    assert!(
        log.contains("was not healthy") && log.contains("--health-wait"),
        "{log}"
    );
    assert!(!has_note(s.as_ref()).await);
    // Healthy after 3 s: apply waits, says why, then applies.
    let clear = {
        let url = url.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let s = MySqlConfig::from_url(&url).unwrap().open().await.unwrap();
            s.batch_execute("update ops_gate set busy = false")
                .await
                .unwrap();
        })
    };
    let (url2, path2) = (url.clone(), path.clone());
    let output = tokio::task::spawn_blocking(move || {
        apply(&[
            "--db",
            &url2,
            &path2,
            "--throttle-query",
            "select busy from ops_gate",
            "--health-wait",
            "60s",
        ])
    })
    .await
    .unwrap();
    clear.await.unwrap();
    let log = text(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains("waiting before phase 1") && log.contains("not healthy"),
        "{log}"
    );
    assert!(has_note(s.as_ref()).await);
}

fn status_json(url: &str, dir: &std::path::Path) -> (Option<i32>, Vec<(String, String)>) {
    let output = tidegate()
        .args([
            "status",
            "--db",
            url,
            dir.to_str().unwrap(),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&output.stderr)));
    let states = report["migrations"]
        .as_array()
        .expect("a list of migrations")
        .iter()
        .map(|line| {
            (
                line["version"].as_str().unwrap().to_string(),
                line["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (output.status.code(), states)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reads_the_history_without_changing_anything() {
    let (server, s, dir) = items_with_pending_note().await;
    let url = server.url();
    let pair = |v: &str, st: &str| (v.to_string(), st.to_string());
    // Before any apply: pending, exit 1, and the tidegate database is not created.
    assert_eq!(
        status_json(&url, dir.path()),
        (Some(1), vec![pair("0001_note.sql", "pending")])
    );
    let databases = s
        .query_text("show databases like 'tidegate'")
        .await
        .unwrap();
    assert!(databases.is_empty(), "status created {databases:?}");
    let run = apply(&["--db", &url, dir.path().to_str().unwrap()]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(
        status_json(&url, dir.path()),
        (Some(0), vec![pair("0001_note.sql", "applied")])
    );
    // A new file is pending; an applied file edited afterwards is changed.
    std::fs::write(
        dir.path().join("0002_more.sql"),
        "ALTER TABLE items ADD COLUMN more INT;\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("0001_note.sql"),
        "ALTER TABLE items ADD COLUMN note VARCHAR(30);\n",
    )
    .unwrap();
    assert_eq!(
        status_json(&url, dir.path()),
        (
            Some(1),
            vec![
                pair("0001_note.sql", "changed"),
                pair("0002_more.sql", "pending")
            ]
        )
    );
    let text_out = tidegate()
        .args(["status", "--db", &url, dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let shown = text(&text_out.stdout);
    assert!(
        shown.contains("1 pending") && shown.contains("1 changed"),
        "{shown}"
    );
}

/// (whether the `tidegate` database exists, whether items has column m): 0 and 0 before any change.
async fn unchanged(s: &dyn Session) -> (i64, i64) {
    let count = |sql: &'static str| async move {
        s.query_one(sql, &[])
            .await
            .unwrap()
            .get::<i64>("c")
            .unwrap()
    };
    (
        count("select count(*) as c from information_schema.SCHEMATA where SCHEMA_NAME = 'tidegate'").await,
        count("select count(*) as c from information_schema.COLUMNS where TABLE_NAME = 'items' and COLUMN_NAME = 'm'")
            .await,
    )
}

/// `apply --replica`: an unreachable replica is refused before anything is written (no `tidegate` database, no
/// column added); a replica whose SQL thread is stopped holds the health gate until `--health-wait` runs out;
/// replicating again, the migration applies with its backfill phase watched and every row changed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_watches_its_replicas_and_refuses_an_unreachable_one_before_any_change() {
    let primary = PrivateMariaDb::start_primary();
    let replica = PrivateMariaDb::start_replica_of(&primary);
    let url = primary.url();
    let s = MySqlConfig::from_url(&url).unwrap().open().await.unwrap();
    s.batch_execute(
        "create table items (id bigint primary key, n int not null default 0) engine=innodb;
         insert into items (id) select seq from seq_1_to_1000",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("0001_add.sql"),
        "ALTER TABLE items ADD COLUMN m INT;\nUPDATE items SET m = n + 1 WHERE m IS NULL;\n",
    )
    .unwrap();
    let migrations = dir.path().to_str().unwrap().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = format!("mysql://watcher:s3cret@127.0.0.1:{port}/");
    let refused = apply(&["--db", &url, &migrations, "--replica", &unreachable]);
    let log = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!("mysql://watcher@127.0.0.1:{port}/")),
        "{log}"
    );
    assert!(!log.contains("s3cret"), "{log}");
    assert_eq!(unchanged(s.as_ref()).await, (0, 0));

    let replica_url = replica.url();
    let r = MySqlConfig::from_url(&replica_url)
        .unwrap()
        .open()
        .await
        .unwrap();
    r.batch_execute("STOP SLAVE SQL_THREAD").await.unwrap();
    let held = apply(&[
        "--db",
        &url,
        &migrations,
        "--replica",
        &replica_url,
        "--health-wait",
        "2s",
    ]);
    let log = text(&held.stderr);
    assert_eq!(held.status.code(), Some(1), "{log}");
    assert!(
        log.contains("was not healthy") && log.contains("replication is not running"),
        "{log}"
    );
    assert_eq!(unchanged(s.as_ref()).await.1, 0);

    r.batch_execute("START SLAVE SQL_THREAD").await.unwrap();
    let run = apply(&["--db", &url, &migrations, "--replica", &replica_url]);
    let log = text(&run.stderr);
    assert!(run.status.success(), "{log}");
    let wrong: i64 = s
        .query_one(
            "select count(*) as c from items where m is null or m <> n + 1",
            &[],
        )
        .await
        .unwrap()
        .get("c")
        .unwrap();
    assert_eq!(wrong, 0);
    replica.wait_caught_up(&primary);
    let on_replica: i64 = r
        .query_one("select count(*) as c from items where m = n + 1", &[])
        .await
        .unwrap()
        .get("c")
        .unwrap();
    assert_eq!(on_replica, 1000);
}
