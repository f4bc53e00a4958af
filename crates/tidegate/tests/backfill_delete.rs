//! `tidegate backfill --delete` as a user runs it: the real binary against a real PostgreSQL. The crash test kills
//! the process with SIGKILL at random instants and then lets it finish: exactly the matching rows are gone, each
//! deleted once (an audit trigger logs every delete in the deleting transaction).

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

/// `items` 1..=rows, 30% of them doomed, with an audit log of deletes.
async fn make_items(client: &Client, rows: i64) {
    client
        .batch_execute(&format!(
            "create table items (id bigint primary key, doomed boolean not null);
             insert into items select g, g % 10 < 3 from generate_series(1, {rows}) g;
             create table deleted_log (id bigint not null);
             create function log_delete() returns trigger language plpgsql as $$
               begin insert into deleted_log values (old.id); return old; end $$;
             create trigger log_delete after delete on items for each row execute function log_delete();
             analyze items;"
        ))
        .await
        .unwrap();
}

/// (doomed rows left, spared rows left, log entries, distinct logged keys).
async fn tally(client: &Client) -> (i64, i64, i64, i64) {
    let row = client
        .query_one(
            "select (select count(*) from items where doomed), (select count(*) from items where not doomed),
                    (select count(*) from deleted_log), (select count(distinct id) from deleted_log)",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_at_random_instants_then_finish_deleting_exactly_once() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 40_000).await;
    let args = [
        "backfill",
        "--db",
        db.url(),
        "--table",
        "items",
        "--delete",
        "--where",
        "doomed",
        "--batch-size",
        "300",
        // 12,000 rows to delete at this rate: the run outlives the kills even on a loaded machine.
        "--max-rows-per-second",
        "1200",
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
        tally(&client).await,
        (0, 28_000, 12_000, 12_000),
        "seed {seed}: every doomed row deleted once, every other row kept"
    );
    let counted: i64 = client
        .query_one(
            "select sum(rows_done)::int8 from tidegate.chunks c join tidegate.runs r on r.id = c.run_id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        counted, 12_000,
        "seed {seed}: every committed delete has its checkpoint"
    );
    let again = run(&args);
    assert!(again.status.success());
    assert!(
        text(&again.stdout).contains("already completed"),
        "{}",
        text(&again.stdout)
    );
    let runs = run(&["runs", "--db", db.url(), "--format", "json"]);
    let listed: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["kind"], "delete");
    assert_eq!(listed[0]["status"], "completed");
    assert_eq!(listed[0]["rows_done"], 12_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_dry_run_and_an_everything_delete() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    make_items(&client, 1_000).await;
    let url = db.url();
    for (extra, expected) in [
        (
            vec!["--table", "items", "--delete", "--set", "doomed = false"],
            "cannot be used with",
        ),
        (vec!["--table", "items", "--delete"], "--all"),
        (
            vec!["--table", "items", "--all", "--set", "doomed = false"],
            "cannot be used with",
        ),
        (vec!["--table", "items", "--all"], "--set <SET>"),
        (
            vec!["--table", "items", "--delete", "--all", "--where", "doomed"],
            "cannot be used with",
        ),
        (
            vec!["--table", "items", "--delete", "--where", "missing"],
            "column \"missing\" does not exist",
        ),
        (
            vec![
                "--table",
                "items",
                "--delete",
                "--where",
                "true; drop table items",
            ],
            "does not parse as one expression",
        ),
    ] {
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
    assert_eq!(tally(&client).await, (300, 700, 0, 0));

    let output = run(&[
        "backfill",
        "--db",
        url,
        "--table",
        "items",
        "--delete",
        "--where",
        "doomed",
        "--dry-run",
    ]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    for expected in [
        "runs:    DELETE FROM items WHERE doomed (delete), in batches",
        "DELETE FROM \"public\".\"items\"",
        "UPDATE tidegate.chunks SET cursor",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing from:\n{stdout}"
        );
    }
    assert!(!stdout.contains("UPDATE \"public\""), "{stdout}");
    assert_eq!(tally(&client).await, (300, 700, 0, 0));

    let output = run(&[
        "backfill", "--db", url, "--table", "items", "--delete", "--where", "doomed",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("300 rows deleted"),
        "{}",
        text(&output.stdout)
    );
    let output = run(&[
        "backfill", "--db", url, "--table", "items", "--delete", "--all",
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(tally(&client).await, (0, 0, 1_000, 1_000));
    let table = text(&run(&["runs", "--db", url]).stdout);
    assert_eq!(
        table
            .lines()
            .filter(|l| l.contains("delete") && l.contains("completed"))
            .count(),
        2,
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_abort_commands_work_on_a_delete_run() {
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
            "--delete",
            "--where",
            "doomed",
            "--batch-size",
            "200",
            "--max-rows-per-second",
            "600",
            "--format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status_of = async || -> String {
        client
            .query_one("select status from tidegate.runs where id = 1", &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or_default()
    };
    let until = Instant::now() + Duration::from_secs(30);
    while status_of().await != "running" {
        assert!(Instant::now() < until, "the run never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let paused = run(&["pause", "1", "--db", db.url()]);
    assert!(paused.status.success(), "{}", text(&paused.stderr));
    let until = Instant::now() + Duration::from_secs(10);
    while status_of().await != "paused" {
        assert!(Instant::now() < until, "not paused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(run(&["resume", "1", "--db", db.url()]).status.success());
    let until = Instant::now() + Duration::from_secs(10);
    while status_of().await != "running" {
        assert!(Instant::now() < until, "not resumed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(run(&["abort", "1", "--db", db.url()]).status.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "an aborted run exits non-zero");
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    for event in [
        "\"kind\":\"delete\"",
        "\"event\":\"paused\"",
        "\"event\":\"resumed\"",
        "\"event\":\"aborted\"",
    ] {
        assert!(out.contains(event), "{event} missing: {out}");
    }
    assert_eq!(status_of().await, "aborted");
    let done: i64 = client
        .query_one("select sum(rows_done)::int8 from tidegate.chunks", &[])
        .await
        .unwrap()
        .get(0);
    let (doomed_left, spared, logged, distinct) = tally(&client).await;
    assert!(done < 6_000, "aborted before the end");
    assert_eq!(
        (doomed_left, spared, logged, distinct),
        (6_000 - done, 14_000, done, done)
    );
}
