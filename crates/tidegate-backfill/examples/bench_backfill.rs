//! Benchmark: one UPDATE vs the postmortem's loop vs tidegate's backfill on a 1M-row table, then foreground latency
//! (pgbench at a fixed rate doing primary-key reads and writes on the same table) during each.
//! `--mode delete`: one DELETE of ~30% of the rows vs tidegate's batched delete with default settings, each
//! with its time and the WAL it wrote (`pg_current_wal_lsn()` before and after).
//!
//! ```text
//! cargo run --release -p tidegate-run --example bench_backfill -- [--rows 1000000] [--loop-limit 120] [--rate 200]
//!     [--mode update|delete] [--db postgresql://...]   # default: a private throwaway cluster from the machine's binaries
//! ```
//! It prints figures; it asserts nothing. Results and the exact command go in docs/benchmarks.md.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidegate_backfill::engine::{self, BackfillOptions, RunEnd, RunTarget, StopHandle};
use tidegate_backfill::spec::BackfillSpec;
use tidegate_db::connect::ConnectionConfig;
use tokio_postgres::Client;

struct Args {
    rows: i64,
    loop_limit: Duration,
    rate: u32,
    db: Option<String>,
    delete: bool,
}

fn args() -> Args {
    let mut args = Args {
        rows: 1_000_000,
        loop_limit: Duration::from_secs(120),
        rate: 200,
        db: None,
        delete: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--rows" => args.rows = value.parse().expect("--rows N"),
            "--loop-limit" => {
                args.loop_limit = Duration::from_secs(value.parse().expect("--loop-limit SECONDS"))
            }
            "--rate" => args.rate = value.parse().expect("--rate TPS"),
            "--db" => args.db = Some(value),
            "--mode" => {
                args.delete = match value.as_str() {
                    "update" => false,
                    "delete" => true,
                    other => panic!("--mode update|delete, not {other}"),
                }
            }
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

async fn fresh_table(client: &Client, rows: i64) {
    client
        .batch_execute(&format!(
            "drop table if exists orders;
             create table orders (id bigint primary key, customer_id bigint not null, order_status text not null,
                                  order_status_v2 varchar(20), n int not null default 0, note text);
             insert into orders (id, customer_id, order_status, note)
               select g, g % 9973, (array['new','paid','shipped','delivered','returned'])[1 + g % 5], md5(g::text)
               from generate_series(1, {rows}) g;"
        ))
        .await
        .expect("creating the benchmark table");
    // One statement each: VACUUM refuses to run inside the implicit transaction of a multi-statement string.
    for sql in ["vacuum analyze orders", "checkpoint"] {
        client.batch_execute(sql).await.expect(sql);
    }
}

async fn check_done(client: &Client, rows: i64) {
    let done: i64 = client
        .query_one(
            "select count(*) from orders where order_status_v2 = order_status",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(done, rows, "every row backfilled");
}

async fn one_update(client: &Client) -> Duration {
    let started = Instant::now();
    client
        .execute("update orders set order_status_v2 = order_status", &[])
        .await
        .unwrap();
    started.elapsed()
}

/// The postmortem's loop in PostgreSQL form. Returns (elapsed, rows done, finished).
async fn postmortem_loop(client: &Client, limit: Duration) -> (Duration, u64, bool) {
    let started = Instant::now();
    let mut done = 0;
    loop {
        let n = client
            .execute(
                "update orders set order_status_v2 = order_status where id in \
                 (select id from orders where order_status_v2 is null limit 1000)",
                &[],
            )
            .await
            .unwrap();
        done += n;
        if n == 0 {
            return (started.elapsed(), done, true);
        }
        if started.elapsed() > limit {
            return (started.elapsed(), done, false);
        }
    }
}

async fn tidegate(url: &str) -> (Duration, u64, u64) {
    let config = ConnectionConfig::from_url(url).unwrap();
    let spec = BackfillSpec {
        predicate: Some("order_status_v2 IS NULL".into()),
        ..BackfillSpec::update("orders", "order_status_v2 = order_status")
    };
    let options = BackfillOptions {
        restart: true,
        ..BackfillOptions::default()
    };
    let started = Instant::now();
    let outcome = engine::run(
        &config,
        RunTarget::Spec(spec),
        options,
        Arc::new(|_| {}),
        StopHandle::default(),
    )
    .await
    .expect("the backfill runs");
    assert_eq!(outcome.end, RunEnd::Completed);
    (started.elapsed(), outcome.rows_done, outcome.batches)
}

/// The delete benchmark's predicate: customers whose id ends in 0, 1 or 2, about 30% of the rows.
const DELETE_PREDICATE: &str = "customer_id % 10 < 3";

async fn wal_lsn(client: &Client) -> String {
    client
        .query_one("select pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get(0)
}

/// Bytes of WAL written since `since`.
async fn wal_since(client: &Client, since: &str) -> i64 {
    client
        .query_one(
            "select pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::int8",
            &[&since],
        )
        .await
        .unwrap()
        .get(0)
}

async fn rows_left(client: &Client) -> (i64, i64) {
    let row = client
        .query_one(
            &format!("select count(*) filter (where {DELETE_PREDICATE}), count(*) from orders"),
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

fn mib(bytes: i64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

async fn delete_benchmark(client: &Client, url: &str, rows: i64) {
    println!(
        "
delete WHERE {DELETE_PREDICATE}, no load:"
    );
    fresh_table(client, rows).await;
    let (matching, total) = rows_left(client).await;
    println!(
        "  {matching} of {total} rows match ({:.1}%)",
        100.0 * matching as f64 / total as f64
    );
    let before = wal_lsn(client).await;
    let started = Instant::now();
    let deleted = client
        .execute(&format!("delete from orders where {DELETE_PREDICATE}"), &[])
        .await
        .unwrap();
    let a = started.elapsed();
    let a_wal = wal_since(client, &before).await;
    assert_eq!(rows_left(client).await, (0, total - matching));
    println!(
        "  (a) one DELETE                {:>8.2} s  WAL {:>8.1} MiB  ({deleted} rows)",
        a.as_secs_f64(),
        mib(a_wal)
    );

    fresh_table(client, rows).await;
    let config = ConnectionConfig::from_url(url).unwrap();
    let spec = BackfillSpec::delete("orders", Some(DELETE_PREDICATE.into()));
    let options = BackfillOptions {
        restart: true,
        ..BackfillOptions::default()
    };
    let before = wal_lsn(client).await;
    let started = Instant::now();
    let outcome = engine::run(
        &config,
        RunTarget::Spec(spec),
        options,
        Arc::new(|_| {}),
        StopHandle::default(),
    )
    .await
    .expect("the batched delete runs");
    let c = started.elapsed();
    let c_wal = wal_since(client, &before).await;
    assert_eq!(outcome.end, RunEnd::Completed);
    assert_eq!(rows_left(client).await, (0, total - matching));
    println!(
        "  (c) tidegate batched delete   {:>8.2} s  WAL {:>8.1} MiB  ({} rows, {} batches; {:.2}x the time, {:.2}x the WAL of (a))",
        c.as_secs_f64(),
        mib(c_wal),
        outcome.rows_done,
        outcome.batches,
        c.as_secs_f64() / a.as_secs_f64(),
        c_wal as f64 / a_wal.max(1) as f64
    );
}

fn pgbench_path() -> String {
    std::env::var("PGBENCH").unwrap_or_else(|_| {
        for dir in [
            "/usr/lib/postgresql/17/bin",
            "/usr/lib/postgresql/16/bin",
            "/usr/lib/postgresql/15/bin",
        ] {
            let path = format!("{dir}/pgbench");
            if std::path::Path::new(&path).exists() {
                return path;
            }
        }
        "pgbench".into()
    })
}

struct Load {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

/// Starts pgbench at a fixed rate: a primary-key read and a primary-key write per transaction.
fn start_load(url: &str, rate: u32, seconds: u64, rows: i64) -> Load {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("fg.sql");
    std::fs::write(
        &script,
        format!(
            "\\set id random(1, {rows})\nselect order_status from orders where id = :id;\nupdate orders set n = n + 1 where id = :id;\n"
        ),
    )
    .unwrap();
    let child = Command::new(pgbench_path())
        .current_dir(dir.path())
        .args([
            "-n",
            "-c",
            "4",
            "-j",
            "2",
            "-R",
            &rate.to_string(),
            "-T",
            &seconds.to_string(),
            "-l",
            "-f",
        ])
        .arg(&script)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pgbench runs (set PGBENCH to its path)");
    Load { child, dir }
}

struct Latency {
    transactions: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    failed: String,
}

fn finish_load(load: Load) -> Latency {
    let output = load.child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let failed = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|l| l.contains("failed") || l.contains("aborted") || l.contains("error"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    let mut latencies = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    for entry in std::fs::read_dir(load.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("pgbench_log")
        {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            // client_id transaction_no time script_no time_epoch time_us [schedule_lag]
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let Some(us) = fields.get(2).and_then(|f| f.parse::<u64>().ok()) {
                let lag = fields
                    .get(6)
                    .and_then(|f| f.parse::<u64>().ok())
                    .unwrap_or(0);
                latencies.record((us + lag).max(1)).unwrap();
            }
        }
    }
    Latency {
        transactions: latencies.len() as usize,
        p50_ms: latencies.value_at_quantile(0.50) as f64 / 1000.0,
        p99_ms: latencies.value_at_quantile(0.99) as f64 / 1000.0,
        max_ms: latencies.max() as f64 / 1000.0,
        failed: if failed.is_empty() {
            "none reported".into()
        } else {
            failed
        },
    }
}

fn show(label: &str, l: &Latency) {
    println!(
        "  {label:<26} txns {:>6}  p50 {:>8.2} ms  p99 {:>9.2} ms  max {:>9.2} ms  pgbench: {}",
        l.transactions, l.p50_ms, l.p99_ms, l.max_ms, l.failed
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let cluster = args
        .db
        .is_none()
        .then(tidegate_testkit::PrivateCluster::start);
    let url = match (&args.db, &cluster) {
        (Some(db), _) => db.clone(),
        (None, Some(cluster)) => cluster.create_database("bench").await,
        _ => unreachable!(),
    };
    let client = tidegate_testkit::connect(&url).await;
    let version: String = client
        .query_one("show server_version", &[])
        .await
        .unwrap()
        .get(0);
    println!(
        "bench_backfill: {} rows, PostgreSQL {version}, {} CPUs",
        args.rows,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    if args.delete {
        delete_benchmark(&client, &url, args.rows).await;
        drop(cluster);
        return;
    }

    println!("\nno load:");
    fresh_table(&client, args.rows).await;
    let a = one_update(&client).await;
    check_done(&client, args.rows).await;
    println!("  (a) one UPDATE                {:>8.2} s", a.as_secs_f64());

    fresh_table(&client, args.rows).await;
    let (c, rows, batches) = tidegate(&url).await;
    check_done(&client, args.rows).await;
    println!(
        "  (c) tidegate backfill         {:>8.2} s  ({rows} rows, {batches} batches, {:.2}x of (a))",
        c.as_secs_f64(),
        c.as_secs_f64() / a.as_secs_f64()
    );

    fresh_table(&client, args.rows).await;
    let (b, done, finished) = postmortem_loop(&client, args.loop_limit).await;
    if finished {
        println!(
            "  (b) postmortem loop           {:>8.2} s  ({:.1}x of (a))",
            b.as_secs_f64(),
            b.as_secs_f64() / a.as_secs_f64()
        );
    } else {
        println!(
            "  (b) postmortem loop           stopped at the {:.0} s limit with {done} of {} rows done ({:.1}%); each batch rescans from the start",
            b.as_secs_f64(),
            args.rows,
            100.0 * done as f64 / args.rows as f64
        );
    }

    // The loop above benefits from synchronized sequential scans (each scan starts where the last one stopped,
    // on tables over a quarter of shared_buffers). Without them every batch rescans from the start: the
    // quadratic form the postmortem's loop takes on smaller tables or when scans do not line up.
    fresh_table(&client, args.rows).await;
    client
        .batch_execute("set synchronize_seqscans = off")
        .await
        .unwrap();
    let (b2, done2, finished2) = postmortem_loop(&client, args.loop_limit).await;
    client
        .batch_execute("reset synchronize_seqscans")
        .await
        .unwrap();
    if finished2 {
        println!(
            "  (b') loop, no syncscan        {:>8.2} s  ({:.1}x of (a))",
            b2.as_secs_f64(),
            b2.as_secs_f64() / a.as_secs_f64()
        );
    } else {
        println!(
            "  (b') loop, no syncscan        stopped at the {:.0} s limit with {done2} of {} rows done ({:.1}%)",
            b2.as_secs_f64(),
            args.rows,
            100.0 * done2 as f64 / args.rows as f64
        );
    }

    println!("\nforeground load: pgbench -R {} (4 clients; each transaction = PK read + PK write on orders):", args.rate);
    fresh_table(&client, args.rows).await;
    let baseline = start_load(&url, args.rate, 15, args.rows);
    let baseline = finish_load(baseline);
    show("baseline (no backfill)", &baseline);

    let seconds = (a.as_secs_f64() * 2.0).ceil() as u64 + 6;
    let load = start_load(&url, args.rate, seconds, args.rows);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let a_load = one_update(&client).await;
    let during_a = finish_load(load);
    show("during (a) one UPDATE", &during_a);
    println!(
        "  {:<26} (a) took {:.2} s under load",
        "",
        a_load.as_secs_f64()
    );

    fresh_table(&client, args.rows).await;
    let seconds = (c.as_secs_f64() * 3.0).ceil() as u64 + 6;
    let load = start_load(&url, args.rate, seconds, args.rows);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (c_load, _, c_batches) = tidegate(&url).await;
    let during_c = finish_load(load);
    show("during (c) tidegate", &during_c);
    println!(
        "  {:<26} (c) took {:.2} s under load ({c_batches} batches); p99 {:.2}x baseline",
        "",
        c_load.as_secs_f64(),
        during_c.p99_ms / baseline.p99_ms.max(0.001)
    );
    drop(cluster);
}
