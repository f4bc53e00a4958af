//! Benchmark: one UPDATE vs the postmortem's loop vs tidegate's backfill on a 1M-row table, then foreground latency
//! (pgbench at a fixed rate doing primary-key reads and writes on the same table) during each.
//! `--mode delete`: one DELETE of ~30% of the rows vs tidegate's batched delete with default settings, each
//! with its time and the WAL it wrote (`pg_current_wal_lsn()` before and after).
//!
//! ```text
//! cargo run --release -p tidegate-backfill --example bench_backfill -- [--rows 1000000] [--rate 200]
//!     [--fg-seconds 15] [--with-loop [--loop-limit 120]] [--mode update|delete] [--db postgresql://...]   # default: a private throwaway cluster from the machine's binaries
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
    /// Also run the postmortem's loop (slow; the figures are in docs/benchmarks.md).
    with_loop: bool,
    /// Seconds of foreground load for the baseline.
    fg_seconds: u64,
}

fn args() -> Args {
    let mut args = Args {
        rows: 1_000_000,
        loop_limit: Duration::from_secs(120),
        rate: 200,
        db: None,
        delete: false,
        with_loop: false,
        fg_seconds: 15,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--with-loop" {
            args.with_loop = true;
            continue;
        }
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--rows" => args.rows = value.parse().expect("--rows N"),
            "--loop-limit" => {
                args.loop_limit = Duration::from_secs(value.parse().expect("--loop-limit SECONDS"))
            }
            "--rate" => args.rate = value.parse().expect("--rate TPS"),
            "--db" => args.db = Some(value),
            "--fg-seconds" => args.fg_seconds = value.parse().expect("--fg-seconds N"),
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

/// The benchmark's table: the issue's `orders` (bigint primary key, a secondary index on customer, a numeric
/// amount, two text columns), or the same without the secondary index.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Indexed,
    Plain,
}

impl Shape {
    fn describe(self) -> &'static str {
        match self {
            Shape::Indexed => "orders with a secondary index on customer_id",
            Shape::Plain => "orders without secondary indexes",
        }
    }
}

async fn fresh_table(client: &Client, rows: i64) {
    fresh_shape(client, rows, Shape::Plain).await
}

async fn fresh_shape(client: &Client, rows: i64, shape: Shape) {
    // The secondary index exists before the rows arrive, as in production, where an index grows with its table:
    // its leaves split as rows come and sit about 70% full. An index built after the load packs every leaf to
    // 90%, and the first tenth of any non-HOT update then splits all of them at once, a one-off slow stretch
    // no long-lived table shows (it made the ETA at 10% read +290–450%).
    let index = match shape {
        Shape::Indexed => "create index orders_customer_id on orders (customer_id);",
        Shape::Plain => "",
    };
    client
        .batch_execute(&format!(
            "drop table if exists orders;
             create table orders (id bigint primary key, customer_id bigint not null, amount numeric(12,2) not null,
                                  order_status text not null, order_status_v2 varchar(20), n int not null default 0,
                                  note text);
             {index}
             insert into orders (id, customer_id, amount, order_status, note)
               select g, g % 9973, (g % 100000) / 100.0,
                      (array['new','paid','shipped','delivered','returned'])[1 + g % 5], md5(g::text)
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

/// What one tidegate run did, from its events.
struct TidegateRun {
    elapsed: Duration,
    rows: u64,
    batches: u64,
    /// Every batch's statement time, in order.
    statement_ms: Vec<f64>,
    /// (seconds since the start, rows scanned, estimated rows, ETA seconds) of every batch.
    progress: Vec<(f64, u64, Option<i64>, Option<f64>)>,
    notes: Vec<String>,
    throttles: usize,
}

impl TidegateRun {
    /// Batch statement time p90 after the first 15 batches, and the slowest batch, in ms.
    fn batch_times(&self) -> (f64, f64) {
        let mut settled: Vec<f64> = self.statement_ms.iter().skip(15).copied().collect();
        if settled.is_empty() {
            settled = self.statement_ms.clone();
        }
        settled.sort_by(|a, b| a.total_cmp(b));
        let p90 = settled
            .get(((settled.len() as f64 * 0.9).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0.0);
        let max = self.statement_ms.iter().copied().fold(0.0, f64::max);
        (p90, max)
    }

    /// The ETA's error against the real finish at 10%, 25% and 50% of the estimated rows scanned (a positive
    /// error: the ETA said longer than it took).
    fn eta_errors(&self) -> Vec<(u32, f64)> {
        let end = self.elapsed.as_secs_f64();
        [10u32, 25, 50]
            .into_iter()
            .filter_map(|percent| {
                let (at, _, _, eta) = self.progress.iter().find(|(_, scanned, est, eta)| {
                    eta.is_some()
                        && est.is_some_and(|e| {
                            *scanned as f64 >= e as f64 * f64::from(percent) / 100.0
                        })
                })?;
                let actual = (end - at).max(0.001);
                Some((percent, (eta.unwrap() - actual) / actual * 100.0))
            })
            .collect()
    }

    fn workers(&self) -> String {
        let changes: Vec<&str> = self
            .notes
            .iter()
            .filter_map(|n| n.strip_prefix("workers: "))
            .filter_map(|n| n.split_whitespace().next())
            .collect();
        if changes.is_empty() {
            "1".into()
        } else {
            format!("1 -> {}", changes.join(" -> "))
        }
    }
}

async fn tidegate_with(url: &str, options: BackfillOptions) -> TidegateRun {
    use tidegate_backfill::events::Event;
    let config = ConnectionConfig::from_url(url).unwrap();
    let spec = BackfillSpec {
        predicate: Some("order_status_v2 IS NULL".into()),
        ..BackfillSpec::update("orders", "order_status_v2 = order_status")
    };
    let options = BackfillOptions {
        restart: true,
        ..options
    };
    let started = Instant::now();
    let seen: Arc<std::sync::Mutex<TidegateRun>> = Arc::new(std::sync::Mutex::new(TidegateRun {
        elapsed: Duration::ZERO,
        rows: 0,
        batches: 0,
        statement_ms: Vec::new(),
        progress: Vec::new(),
        notes: Vec::new(),
        throttles: 0,
    }));
    let sink = {
        let seen = seen.clone();
        Arc::new(move |event: &Event| {
            let mut seen = seen.lock().unwrap();
            match event {
                Event::Batch {
                    statement_ms,
                    rows_scanned,
                    estimated_rows,
                    eta_seconds,
                    ..
                } => {
                    seen.statement_ms.push(*statement_ms);
                    seen.progress.push((
                        started.elapsed().as_secs_f64(),
                        *rows_scanned,
                        *estimated_rows,
                        *eta_seconds,
                    ));
                }
                Event::Note { message, .. } => seen.notes.push(message.clone()),
                Event::Throttled { .. } | Event::Paused { .. } => seen.throttles += 1,
                _ => {}
            }
        })
    };
    let outcome = engine::run(
        &config,
        RunTarget::Spec(spec),
        options,
        sink,
        StopHandle::default(),
    )
    .await
    .expect("the backfill runs");
    assert_eq!(outcome.end, RunEnd::Completed);
    let mut run = std::mem::replace(
        &mut *seen.lock().unwrap(),
        TidegateRun {
            elapsed: Duration::ZERO,
            rows: 0,
            batches: 0,
            statement_ms: Vec::new(),
            progress: Vec::new(),
            notes: Vec::new(),
            throttles: 0,
        },
    );
    run.elapsed = started.elapsed();
    if std::env::var_os("TIDEGATE_BENCH_TRACE").is_some() {
        // Every batch: when, rows scanned, its statement time and the ETA then, for reading the ramp by eye.
        for ((at, scanned, _, eta), ms) in run.progress.iter().zip(&run.statement_ms) {
            eprintln!("      trace: {at:7.3} s {scanned:>8} rows  {ms:6.1} ms  eta {eta:?}");
        }
    }
    run.rows = outcome.rows_done;
    run.batches = outcome.batches;
    run
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

    // The CLI's defaults: --workers auto, --hold-horizon 1m, --max-fg-latency auto, --batch-time 100ms.
    let defaults = || BackfillOptions {
        scale_workers: Some(tidegate_backfill::scaling::ScalerConfig::default()),
        ..BackfillOptions::default()
    };
    let target_ms = BackfillOptions::default().controller.target.as_secs_f64() * 1000.0;
    let mut unloaded_update = Duration::ZERO;
    for shape in [Shape::Indexed, Shape::Plain] {
        println!("\nno load, {}:", shape.describe());
        fresh_shape(&client, args.rows, shape).await;
        let before = wal_lsn(&client).await;
        let a = one_update(&client).await;
        let a_wal = wal_since(&client, &before).await;
        check_done(&client, args.rows).await;
        if shape == Shape::Indexed {
            unloaded_update = a;
        }
        println!(
            "  (a) one UPDATE                      {:>7.2} s  WAL {:>7.1} MiB",
            a.as_secs_f64(),
            mib(a_wal)
        );

        fresh_shape(&client, args.rows, shape).await;
        let before = wal_lsn(&client).await;
        let c = tidegate_with(&url, defaults()).await;
        let c_wal = wal_since(&client, &before).await;
        check_done(&client, args.rows).await;
        let (p90, max) = c.batch_times();
        println!(
            "  (c) tidegate backfill, defaults     {:>7.2} s  WAL {:>7.1} MiB  {:.2}x the time, {:.2}x the WAL of (a); \
             {} rows, {} batches, workers {}, {} throttle(s)",
            c.elapsed.as_secs_f64(),
            mib(c_wal),
            c.elapsed.as_secs_f64() / a.as_secs_f64(),
            c_wal as f64 / a_wal.max(1) as f64,
            c.rows,
            c.batches,
            c.workers(),
            c.throttles
        );
        println!(
            "      batch statement time after 15 batches: p90 {p90:.1} ms ({:+.0}% of the {target_ms:.0} ms target), \
             slowest {max:.1} ms ({:.1}x the target)",
            (p90 - target_ms) / target_ms * 100.0,
            max / target_ms
        );
        let etas: Vec<String> = c
            .eta_errors()
            .iter()
            .map(|(percent, error)| format!("at {percent}%: {error:+.0}%"))
            .collect();
        println!(
            "      ETA error against the actual finish: {}",
            etas.join(", ")
        );

        if shape == Shape::Indexed {
            // The cause of the gap the hold-horizon closes: the same run with one worker and no snapshot held.
            fresh_shape(&client, args.rows, shape).await;
            let before = wal_lsn(&client).await;
            let c0 = tidegate_with(
                &url,
                BackfillOptions {
                    hold_horizon: None,
                    ..BackfillOptions::default()
                },
            )
            .await;
            let c0_wal = wal_since(&client, &before).await;
            check_done(&client, args.rows).await;
            println!(
                "  (c0) 1 worker, --hold-horizon 0     {:>7.2} s  WAL {:>7.1} MiB  {:.2}x the time of (a)",
                c0.elapsed.as_secs_f64(),
                mib(c0_wal),
                c0.elapsed.as_secs_f64() / a.as_secs_f64()
            );
            let c1 = {
                fresh_shape(&client, args.rows, shape).await;
                tidegate_with(&url, BackfillOptions::default()).await
            };
            check_done(&client, args.rows).await;
            let (p90, max) = c1.batch_times();
            let etas: Vec<String> = c1
                .eta_errors()
                .iter()
                .map(|(percent, error)| format!("at {percent}%: {error:+.0}%"))
                .collect();
            println!(
                "  (c1) 1 worker, --hold-horizon 1m    {:>7.2} s  {:.2}x the time of (a); batch p90 {p90:.1} ms, \
                 slowest {max:.1} ms; ETA error {}",
                c1.elapsed.as_secs_f64(),
                c1.elapsed.as_secs_f64() / a.as_secs_f64(),
                etas.join(", ")
            );
        }
    }

    if args.with_loop {
        fresh_table(&client, args.rows).await;
        let (b, done, finished) = postmortem_loop(&client, args.loop_limit).await;
        if finished {
            println!(
                "  (b) postmortem loop           {:>8.2} s  ({:.1}x of (a))",
                b.as_secs_f64(),
                b.as_secs_f64() / unloaded_update.as_secs_f64()
            );
        } else {
            println!(
                "  (b) postmortem loop           stopped at the {:.0} s limit with {done} of {} rows done ({:.1}%)",
                b.as_secs_f64(),
                args.rows,
                100.0 * done as f64 / args.rows as f64
            );
        }
    }

    println!(
        "\nforeground load, {}: pgbench -R {} (4 clients; each transaction = PK read + PK write on orders):",
        Shape::Indexed.describe(),
        args.rate
    );
    fresh_shape(&client, args.rows, Shape::Indexed).await;
    let baseline = start_load(&url, args.rate, args.fg_seconds, args.rows);
    let baseline = finish_load(baseline);
    show("baseline (no backfill)", &baseline);

    let seconds = (unloaded_update.as_secs_f64() * 2.0).ceil() as u64 + 6;
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

    fresh_shape(&client, args.rows, Shape::Indexed).await;
    // Long enough for the slowest run the budget allows; pgbench's own end cuts the window.
    let seconds = (unloaded_update.as_secs_f64() * 4.0).ceil() as u64 + 8;
    let load = start_load(&url, args.rate, seconds, args.rows);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let c_load = tidegate_with(&url, defaults()).await;
    let during_c = finish_load(load);
    show("during (c) tidegate", &during_c);
    println!(
        "  {:<26} (c) took {:.2} s under load ({} batches, workers {}, {} throttle(s)): {:.2}x the unloaded UPDATE; \
         p99 {:.2}x baseline",
        "",
        c_load.elapsed.as_secs_f64(),
        c_load.batches,
        c_load.workers(),
        c_load.throttles,
        c_load.elapsed.as_secs_f64() / unloaded_update.as_secs_f64(),
        during_c.p99_ms / baseline.p99_ms.max(0.001)
    );
    for note in &c_load.notes {
        println!("  {:<26} note: {note}", "");
    }
    drop(cluster);
}
