//! `--metrics-addr` on `tidegate backfill` and `tidegate apply`: the real binary against a real PostgreSQL (and
//! apply against a throwaway MariaDB), its
//! endpoint scraped over HTTP while the run goes and parsed by the Prometheus project's own parsers (Python's
//! `prometheus_client`: the strict OpenMetrics one and the text-format one; `scripts/setup.sh` installs it).
//!
//! Nothing here is timed: each step waits (boundedly, so a hang fails instead of stalling CI) for a state the test
//! brought about itself — a throttle flag it set, a lock it holds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tidegate_testkit::TestDatabase;

mod common;
use common::{json_lines, wait_event, HANG};

const TIDEGATE: &str = env!("CARGO_BIN_EXE_tidegate");
/// How long any one wait may take before the test calls it a hang.

#[derive(Debug, Deserialize)]
struct Scrape {
    content_type: String,
    families: Vec<Family>,
}

#[derive(Debug, Deserialize)]
struct Family {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    unit: String,
    samples: Vec<Sample>,
}

#[derive(Debug, Deserialize)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn python() -> PathBuf {
    // Debian's python3-prometheus-client is for the system interpreter, whatever else is first on PATH.
    std::env::var_os("TIDEGATE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/python3"))
}

/// GETs `http://addr/metrics` and parses it (`openmetrics` or `text`).
fn scrape(addr: &str, format: &str) -> Scrape {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics/scrape.py");
    let output = Command::new(python())
        .arg(script)
        .arg(format!("http://{addr}/metrics"))
        .arg(format)
        .output()
        .expect("python3 runs (scripts/setup.sh installs python3-prometheus-client)");
    assert!(
        output.status.success(),
        "the scrape or its parse failed (is python3-prometheus-client installed? scripts/setup.sh does): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

impl Scrape {
    fn family(&self, name: &str) -> &Family {
        self.families
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| {
                panic!(
                    "no family {name} in {:?}",
                    self.families.iter().map(|f| &f.name).collect::<Vec<_>>()
                )
            })
    }

    /// The value of the one sample named `sample` whose labels include `labels`.
    fn value(&self, sample: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<f64> = self
            .families
            .iter()
            .flat_map(|f| &f.samples)
            .filter(|s| {
                s.name == sample
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .collect();
        assert!(found.len() <= 1, "{sample} {labels:?}: {found:?}");
        found.first().copied()
    }

    /// The run's state: checks that exactly one state is 1 and every other 0.
    fn state(&self, run: &[(&str, &str)]) -> String {
        let samples: Vec<&Sample> = self
            .family("tidegate_backfill_state")
            .samples
            .iter()
            .filter(|s| {
                run.iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        let names: Vec<&str> = samples.iter().map(|s| s.labels["state"].as_str()).collect();
        for state in [
            "running",
            "throttled",
            "waiting",
            "paused",
            "critical",
            "completed",
            "aborted",
            "failed",
        ] {
            assert!(names.contains(&state), "no state={state} in {names:?}");
        }
        assert!(
            samples.iter().all(|s| s.value == 0.0 || s.value == 1.0),
            "{samples:?}"
        );
        let on: Vec<&str> = samples
            .iter()
            .filter(|s| s.value == 1.0)
            .map(|s| s.labels["state"].as_str())
            .collect();
        assert_eq!(on.len(), 1, "exactly one state is 1: {samples:?}");
        on[0].to_string()
    }

    fn rows_done(&self, run: &[(&str, &str)]) -> f64 {
        self.value("tidegate_backfill_rows_done_total", run)
            .expect("rows_done for the run")
    }
}

/// The families, types and units every scrape of a started run shows, and its labels (no free text).
fn check_shape(scrape: &Scrape, run: &[(&str, &str)]) {
    assert_eq!(
        scrape.content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    for (name, kind, unit) in [
        ("tidegate_backfill_rows_done", "counter", ""),
        ("tidegate_backfill_rows_scanned", "counter", ""),
        ("tidegate_backfill_rows_estimated", "gauge", ""),
        ("tidegate_backfill_batch_seconds", "histogram", "seconds"),
        ("tidegate_backfill_state", "gauge", ""),
        ("tidegate_backfill_retries", "counter", ""),
    ] {
        let family = scrape.family(name);
        assert_eq!(family.kind, kind, "{name}");
        assert_eq!(family.unit, unit, "{name}");
    }
    for family in &scrape.families {
        for sample in &family.samples {
            for key in sample.labels.keys() {
                assert!(
                    [
                        "run_id",
                        "table",
                        "state",
                        "signal",
                        "level",
                        "le",
                        "migration",
                        "phase",
                        "kind"
                    ]
                    .contains(&key.as_str()),
                    "unexpected label {key} on {sample:?}"
                );
            }
        }
    }
    scrape.state(run);
}

/// Scrapes until `done` holds for a scrape, checking `each` on every one.
fn scrape_until(
    addr: &str,
    what: &str,
    mut each: impl FnMut(&Scrape),
    mut done: impl FnMut(&Scrape) -> bool,
) -> Scrape {
    let until = Instant::now() + HANG;
    loop {
        let scrape = scrape(addr, "openmetrics");
        each(&scrape);
        if done(&scrape) {
            return scrape;
        }
        assert!(Instant::now() < until, "never {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn interrupt_and_wait(mut child: Child) -> std::process::ExitStatus {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    child.wait().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_is_scraped_while_it_runs_through_a_throttle_to_its_end() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    client
        .batch_execute(
            "create table items (id bigint primary key, n int not null default 0);
             insert into items (id) select g from generate_series(1, 40000) g;
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
            "--metrics-addr",
            "127.0.0.1:0",
            "--metrics-linger",
            "5m",
            "--format",
            "json",
        ])
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = json_lines(&mut child);
    let listening = wait_event(&lines, "metrics_listening");
    let addr = listening["addr"].as_str().unwrap().to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let started = wait_event(&lines, "started");
    let run_id = started["run_id"].as_i64().unwrap().to_string();
    let table = started["table"].as_str().unwrap().to_string();
    let run = [("run_id", run_id.as_str()), ("table", table.as_str())];

    // Running: rows_done rises between scrapes.
    let first = scrape_until(
        &addr,
        "saw rows done",
        |s| check_shape(s, &run),
        |s| s.rows_done(&run) > 0.0,
    );
    assert_eq!(first.state(&run), "running");
    assert!(
        first
            .value("tidegate_backfill_rows_estimated", &run)
            .unwrap()
            > 0.0
    );
    let v1 = first.rows_done(&run);
    let mut last = v1;
    let second = scrape_until(
        &addr,
        "saw rows done rise",
        |s| {
            check_shape(s, &run);
            let now = s.rows_done(&run);
            assert!(now >= last, "a counter never goes down: {last} then {now}");
            last = now;
        },
        |s| s.rows_done(&run) > v1,
    );
    assert!(second.rows_done(&run) > v1);
    assert!(second.value("tidegate_backfill_batch_rows", &run).unwrap() >= 1.0);

    // The throttle query says wait: the state turns throttled and the onset counts under its signal.
    client
        .execute("update hold set engaged = true", &[])
        .await
        .unwrap();
    let throttled = scrape_until(
        &addr,
        "throttled",
        |s| check_shape(s, &run),
        |s| s.state(&run) == "throttled",
    );
    let throttle_events = [
        ("run_id", run_id.as_str()),
        ("signal", "throttle_query"),
        ("level", "throttle"),
    ];
    assert_eq!(
        throttled.value("tidegate_backfill_throttle_events_total", &throttle_events),
        Some(1.0)
    );
    assert_eq!(
        throttled.family("tidegate_backfill_throttle_events").kind,
        "counter"
    );
    // Held: later scrapes, while the throttle repeats its report, count it once.
    let held = scrape(&addr, "openmetrics");
    assert_eq!(held.state(&run), "throttled");
    assert_eq!(
        held.value("tidegate_backfill_throttle_events_total", &throttle_events),
        Some(1.0)
    );
    let during = held.rows_done(&run);
    assert!(
        during < 40_000.0,
        "the throttle held the run before its end"
    );

    // Scrapers that stall (a request head never finished, more connections than the endpoint serves at once)
    // while the run goes on from the throttle to its end: the endpoint's troubles never reach the batches.
    let stalled: Vec<std::net::TcpStream> = (0..24)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&addr).unwrap();
            std::io::Write::write_all(&mut stream, b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            stream
        })
        .collect();
    client
        .execute("update hold set engaged = false", &[])
        .await
        .unwrap();
    let completed = wait_event(&lines, "completed");
    drop(stalled);
    let end = scrape(&addr, "openmetrics");
    assert!(end.rows_done(&run) > during);
    check_shape(&end, &run);
    let updated: i64 = client
        .query_one("select count(*) from items where n = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(updated, 40_000);
    assert_eq!(end.rows_done(&run), updated as f64);
    assert_eq!(end.state(&run), "completed");
    assert_eq!(
        end.value("tidegate_backfill_batch_seconds_count", &run),
        completed["batches"].as_f64(),
        "one observation per batch"
    );
    assert_eq!(
        end.value(
            "tidegate_backfill_batch_seconds_bucket",
            &[("run_id", run_id.as_str()), ("le", "+Inf")]
        ),
        completed["batches"].as_f64()
    );
    assert_eq!(
        end.value("tidegate_backfill_throttle_events_total", &throttle_events),
        Some(1.0)
    );

    // The Prometheus text format, for scrapers that do not ask for OpenMetrics, parses too.
    let text = scrape(&addr, "text");
    assert_eq!(
        text.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(text.family("tidegate_backfill_rows_done").kind, "counter");
    assert_eq!(
        text.family("tidegate_backfill_batch_seconds").kind,
        "histogram"
    );
    assert_eq!(text.rows_done(&run), updated as f64);

    // Lingering, a Ctrl-C ends it; the run had completed, so the exit is clean.
    let status = interrupt_and_wait(child);
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_shows_its_phases_and_its_backfill_while_it_runs() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    // Above small_table_rows (10,000): the UPDATE becomes a backfill phase.
    client
        .batch_execute(
            "create table orders (id bigint primary key, status text not null default 'new', status_v2 text);
             insert into orders (id) select g from generate_series(1, 20000) g;
             analyze orders;
             create table audit (id bigint primary key);",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("0001_status_v2.sql"),
        "UPDATE orders SET status_v2 = status;\nALTER TABLE audit ADD COLUMN note text;\n",
    )
    .unwrap();
    // The schema phase after the backfill waits for this lock: the backfill's end is scraped meanwhile.
    let mut locker = db.connect().await;
    let lock = locker.transaction().await.unwrap();
    lock.batch_execute("lock table audit in access share mode")
        .await
        .unwrap();

    let mut child = Command::new(TIDEGATE)
        .args([
            "apply",
            dir.path().to_str().unwrap(),
            "--db",
            db.url(),
            "--max-rows-per-second",
            "4000",
            "--lock-timeout",
            "100ms",
            "--retries",
            "1000",
            "--metrics-addr",
            "127.0.0.1:0",
            "--format",
            "json",
        ])
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = json_lines(&mut child);
    let listening = wait_event(&lines, "metrics_listening");
    let addr = listening["addr"].as_str().unwrap().to_string();
    let version = wait_event(&lines, "migration_started")["version"]
        .as_str()
        .unwrap()
        .to_string();
    let phase = |number: &'static str, kind: &'static str, state: &'static str| {
        [
            ("migration", version.clone()),
            ("phase", number.to_string()),
            ("kind", kind.to_string()),
            ("state", state.to_string()),
        ]
    };
    let value = |s: &Scrape, labels: &[(&str, String)]| {
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        s.value("tidegate_apply_phase", &labels)
    };
    let started = loop {
        let event = wait_event(&lines, "backfill");
        if event["backfill"]["event"] == "started" {
            break event;
        }
    };
    let run_id = started["backfill"]["run_id"].as_i64().unwrap().to_string();
    let run = [("run_id", run_id.as_str())];

    let running = scrape_until(
        &addr,
        "saw the backfill phase's rows",
        |_| {},
        |s| {
            s.value("tidegate_backfill_rows_done_total", &run)
                .unwrap_or(0.0)
                > 0.0
        },
    );
    check_shape(&running, &run);
    assert_eq!(running.family("tidegate_apply_phase").kind, "gauge");
    assert_eq!(
        value(&running, &phase("1", "backfill", "running")),
        Some(1.0)
    );
    assert_eq!(value(&running, &phase("1", "backfill", "done")), Some(0.0));
    assert_eq!(
        running.value(
            "tidegate_apply_migration",
            &[("migration", version.as_str()), ("state", "running")]
        ),
        Some(1.0)
    );

    // The backfill ends; the schema phase after it waits on our lock, and the endpoint shows both.
    let waiting = scrape_until(
        &addr,
        "saw phase 2 start",
        |_| {},
        |s| value(s, &phase("2", "schema", "running")) == Some(1.0),
    );
    check_shape(&waiting, &run);
    assert_eq!(value(&waiting, &phase("1", "backfill", "done")), Some(1.0));
    assert_eq!(
        value(&waiting, &phase("1", "backfill", "running")),
        Some(0.0)
    );
    assert_eq!(waiting.state(&run), "completed");
    let updated: i64 = client
        .query_one("select count(*) from orders where status_v2 = status", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(updated, 20_000);
    assert_eq!(waiting.rows_done(&run), updated as f64);
    assert!(
        waiting
            .value(
                "tidegate_apply_phase_duration_seconds",
                &[
                    ("migration", version.as_str()),
                    ("phase", "1"),
                    ("kind", "backfill")
                ]
            )
            .unwrap()
            > 0.0
    );

    lock.rollback().await.unwrap();
    wait_event(&lines, "migration_applied");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// The same endpoint on MySQL/MariaDB: the phases and the backfill phase of an apply on a throwaway MariaDB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_on_mariadb_shows_its_phases_and_its_backfill_while_it_runs() {
    use tidegate_db::driver::{Driver, SessionExt};
    let server = tidegate_testkit::PrivateMariaDb::start();
    let url = server.url();
    let config = tidegate_db::mysql::MySqlConfig::from_url(&url).unwrap();
    let client = config.open().await.unwrap();
    // Above small_table_rows (10,000): the UPDATE becomes a backfill phase.
    client
        .batch_execute(
            "create table orders (id bigint primary key, status varchar(20) not null default 'new', \
             status_v2 varchar(20)) engine=innodb;
             insert into orders (id) select seq from seq_1_to_20000;
             analyze table orders;
             create table audit (id bigint primary key) engine=innodb;",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("0001_status_v2.sql"),
        "UPDATE orders SET status_v2 = status;\nALTER TABLE audit ADD COLUMN note TEXT;\n",
    )
    .unwrap();
    // The DDL phase after the backfill waits for this transaction's metadata lock: the backfill's end is
    // scraped meanwhile.
    let holder = config.open().await.unwrap();
    holder.batch_execute("BEGIN").await.unwrap();
    holder.rows("select * from audit", &[]).await.unwrap();

    let mut child = Command::new(TIDEGATE)
        .args([
            "apply",
            dir.path().to_str().unwrap(),
            "--db",
            url.as_str(),
            "--max-rows-per-second",
            "4000",
            "--lock-timeout",
            "1s",
            "--retries",
            "1000",
            "--metrics-addr",
            "127.0.0.1:0",
            "--format",
            "json",
        ])
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = json_lines(&mut child);
    let listening = wait_event(&lines, "metrics_listening");
    let addr = listening["addr"].as_str().unwrap().to_string();
    let version = wait_event(&lines, "migration_started")["version"]
        .as_str()
        .unwrap()
        .to_string();
    let phase = |number: &'static str, kind: &'static str, state: &'static str| {
        [
            ("migration", version.clone()),
            ("phase", number.to_string()),
            ("kind", kind.to_string()),
            ("state", state.to_string()),
        ]
    };
    let value = |s: &Scrape, labels: &[(&str, String)]| {
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        s.value("tidegate_apply_phase", &labels)
    };
    let started = loop {
        let event = wait_event(&lines, "backfill");
        if event["backfill"]["event"] == "started" {
            break event;
        }
    };
    let run_id = started["backfill"]["run_id"].as_i64().unwrap().to_string();
    let run = [("run_id", run_id.as_str())];

    let running = scrape_until(
        &addr,
        "saw the backfill phase's rows",
        |_| {},
        |s| {
            s.value("tidegate_backfill_rows_done_total", &run)
                .unwrap_or(0.0)
                > 0.0
        },
    );
    check_shape(&running, &run);
    assert_eq!(running.family("tidegate_apply_phase").kind, "gauge");
    assert_eq!(
        value(&running, &phase("1", "backfill", "running")),
        Some(1.0)
    );
    assert_eq!(value(&running, &phase("1", "backfill", "done")), Some(0.0));
    assert_eq!(
        running.value(
            "tidegate_apply_migration",
            &[("migration", version.as_str()), ("state", "running")]
        ),
        Some(1.0)
    );
    // The same series in the Prometheus text format.
    let text = scrape(&addr, "text");
    assert!(text
        .families
        .iter()
        .any(|f| f.name == "tidegate_apply_phase"));

    // The backfill ends; the DDL phase after it waits on the held metadata lock, and the endpoint shows both.
    let waiting = scrape_until(
        &addr,
        "saw phase 2 start",
        |_| {},
        |s| value(s, &phase("2", "schema_no_transaction", "running")) == Some(1.0),
    );
    check_shape(&waiting, &run);
    assert_eq!(value(&waiting, &phase("1", "backfill", "done")), Some(1.0));
    assert_eq!(
        value(&waiting, &phase("1", "backfill", "running")),
        Some(0.0)
    );
    assert_eq!(waiting.state(&run), "completed");
    let updated: i64 = client
        .query_one(
            "select count(*) as c from orders where status_v2 = status",
            &[],
        )
        .await
        .unwrap()
        .get("c")
        .unwrap();
    assert_eq!(updated, 20_000);
    assert_eq!(waiting.rows_done(&run), updated as f64);
    assert!(
        waiting
            .value(
                "tidegate_apply_phase_duration_seconds",
                &[
                    ("migration", version.as_str()),
                    ("phase", "1"),
                    ("kind", "backfill")
                ]
            )
            .unwrap()
            > 0.0
    );

    holder.batch_execute("COMMIT").await.unwrap();
    wait_event(&lines, "migration_applied");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_bad_metrics_address_is_a_usage_error_that_says_what_to_give() {
    for bad in ["metrics.example.com:9187", "127.0.0.1:99999", "9187:"] {
        let output = Command::new(TIDEGATE)
            .args([
                "backfill",
                "--db",
                "postgres://nobody@127.0.0.1:1/none",
                "--table",
                "items",
                "--set",
                "n = 1",
                "--metrics-addr",
                bad,
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("--metrics-addr"), "{bad}: {stderr}");
        assert!(stderr.contains("0.0.0.0:9187"), "{bad}: {stderr}");
    }
    // An IP address that is not this machine's: it cannot be listened on, and nothing runs.
    let output = Command::new(TIDEGATE)
        .args([
            "apply",
            "migrations-that-do-not-matter",
            "--db",
            "postgres://nobody@127.0.0.1:1/none",
            "--metrics-addr",
            "192.0.2.1:9187",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("could not serve metrics on 192.0.2.1:9187"),
        "{stderr}"
    );
}
