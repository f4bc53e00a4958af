//! Benchmark on MariaDB: one `UPDATE` vs tidegate's backfill on a 1M-row table, and a foreground writer's latency
//! (primary-key `UPDATE`s on random rows of the same table at a fixed rate, each from its scheduled start, so
//! waiting behind a lock counts) with no backfill, during the one UPDATE and during tidegate's run.
//!
//! ```text
//! cargo run --release -p tidegate-backfill --example bench_backfill_mysql -- [--rows 1000000] [--rate 200]
//!     [--fg-seconds 10] [--db mysql://...]   # default: a private throwaway MariaDB from the machine's binaries
//! ```
//! It prints figures; it asserts nothing. Results and the exact command go in docs/benchmarks.md.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tidegate_backfill::engine::{self, BackfillOptions, RunEnd, RunTarget, StopHandle};
use tidegate_backfill::spec::BackfillSpec;
use tidegate_db::driver::{Driver, Session, SessionExt};
use tidegate_db::mysql::MySqlConfig;

struct Args {
    rows: i64,
    rate: u32,
    fg_seconds: u64,
    db: Option<String>,
}

fn args() -> Args {
    let mut args = Args {
        rows: 1_000_000,
        rate: 200,
        fg_seconds: 10,
        db: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--rows" => args.rows = value.parse().expect("--rows N"),
            "--rate" => args.rate = value.parse().expect("--rate TPS"),
            "--fg-seconds" => args.fg_seconds = value.parse().expect("--fg-seconds N"),
            "--db" => args.db = Some(value),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

async fn make_orders(config: &MySqlConfig, rows: i64) {
    let s = config.open().await.unwrap();
    s.batch_execute(&format!(
        "drop table if exists orders; drop database if exists tidegate;
         create table orders (id bigint primary key, customer_id int not null, order_status varchar(20) not null,
           order_status_v2 varchar(20) null, n int not null default 0, note varchar(60) not null,
           key by_customer (customer_id)) engine=innodb;
         insert into orders (id, customer_id, order_status, note)
           select seq, seq % 5000, elt(1 + seq % 4, 'new', 'paid', 'shipped', 'done'), repeat('x', 60)
           from seq_1_to_{rows};
         analyze table orders"
    ))
    .await
    .unwrap();
}

/// Foreground: `clients` sessions, `rate` transactions a second in all, each a primary-key UPDATE of a random
/// row, timed from its scheduled start. Runs every transaction scheduled before `finish`.
struct Foreground {
    stop: Arc<Mutex<Option<Instant>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    latencies: Arc<Mutex<Histogram<u64>>>,
    failures: Arc<Mutex<Vec<String>>>,
}

impl Foreground {
    async fn start(config: &MySqlConfig, rows: i64, rate: u32) -> Foreground {
        let clients = 4u32;
        let stop = Arc::new(Mutex::new(None));
        let latencies = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let interval = Duration::from_secs_f64(f64::from(clients) / f64::from(rate.max(1)));
        let mut tasks = Vec::new();
        for client in 0..clients {
            let session: Box<dyn Session> = config.open().await.unwrap();
            let (stop, latencies, failures) = (stop.clone(), latencies.clone(), failures.clone());
            let offset = interval.mul_f64(f64::from(client) / f64::from(clients));
            tasks.push(tokio::spawn(async move {
                let start = Instant::now() + offset;
                let mut i = 0u32;
                loop {
                    let scheduled = start + interval * i;
                    i += 1;
                    // Every transaction scheduled before the stop runs, late or not: a backlog that built
                    // up behind a lock is counted, not dropped.
                    if let Some(stop_at) = *stop.lock().unwrap() {
                        if scheduled >= stop_at {
                            break;
                        }
                    }
                    if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
                        tokio::time::sleep(wait).await;
                    }
                    let id = 1 + fastrand::i64(0..rows);
                    let result = session
                        .run("update orders set n = n + 1 where id = ?", &[id.into()])
                        .await;
                    let took = scheduled.elapsed();
                    match result {
                        Ok(_) => {
                            let _ = latencies.lock().unwrap().record(took.as_micros() as u64);
                        }
                        Err(e) => failures.lock().unwrap().push(e.message),
                    }
                }
            }));
        }
        Foreground {
            stop,
            tasks,
            latencies,
            failures,
        }
    }

    async fn finish(self) -> (Histogram<u64>, usize) {
        *self.stop.lock().unwrap() = Some(Instant::now());
        for task in self.tasks {
            let _ = task.await;
        }
        let histogram = self.latencies.lock().unwrap().clone();
        let failures = self.failures.lock().unwrap().len();
        (histogram, failures)
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn latency_line(name: &str, h: &Histogram<u64>, failures: usize) -> String {
    format!(
        "{name:<28} n={:>6}  p50 {:>9.2} ms  p99 {:>9.2} ms  max {:>9.2} ms  failed {failures}",
        h.len(),
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let server = match &args.db {
        Some(_) => None,
        None => Some(tidegate_testkit::PrivateMariaDb::start()),
    };
    let url = args
        .db
        .clone()
        .unwrap_or_else(|| server.as_ref().unwrap().url());
    let config = MySqlConfig::from_url(&url).unwrap();
    let version: String = config
        .open()
        .await
        .unwrap()
        .query_one("select version() as v", &[])
        .await
        .unwrap()
        .get("v")
        .unwrap();
    println!(
        "server {version}; {} rows; foreground {} tx/s (4 clients)",
        args.rows, args.rate
    );

    // Baseline: the foreground alone.
    make_orders(&config, args.rows).await;
    let fg = Foreground::start(&config, args.rows, args.rate).await;
    tokio::time::sleep(Duration::from_secs(args.fg_seconds)).await;
    let (baseline, baseline_failed) = fg.finish().await;

    // (a) one UPDATE, the foreground running beside it.
    make_orders(&config, args.rows).await;
    let fg = Foreground::start(&config, args.rows, args.rate).await;
    let s = config.open().await.unwrap();
    let started = Instant::now();
    let changed = s
        .run("update orders set order_status_v2 = order_status", &[])
        .await
        .unwrap();
    let one_update = started.elapsed();
    let (during_update, update_failed) = fg.finish().await;

    // (c) tidegate's backfill with default settings, the foreground beside it.
    make_orders(&config, args.rows).await;
    let fg = Foreground::start(&config, args.rows, args.rate).await;
    let spec = BackfillSpec {
        predicate: Some("order_status_v2 IS NULL".into()),
        ..BackfillSpec::update("orders", "order_status_v2 = order_status")
    };
    let started = Instant::now();
    let outcome = engine::run(
        &config,
        RunTarget::Spec(spec),
        BackfillOptions::default(),
        Arc::new(|_| {}),
        StopHandle::default(),
    )
    .await
    .unwrap();
    let backfill = started.elapsed();
    let (during_backfill, backfill_failed) = fg.finish().await;
    assert_eq!(outcome.end, RunEnd::Completed);

    let rate = |rows: u64, d: Duration| rows as f64 / d.as_secs_f64();
    println!();
    println!(
        "(a) one UPDATE            {:>8.2} s  {:>9.0} rows/s  ({changed} rows)",
        one_update.as_secs_f64(),
        rate(changed, one_update)
    );
    println!(
        "(c) tidegate backfill     {:>8.2} s  {:>9.0} rows/s  ({} rows in {} batches; {:.2}x of (a))",
        backfill.as_secs_f64(),
        rate(outcome.rows_done, backfill),
        outcome.rows_done,
        outcome.batches,
        backfill.as_secs_f64() / one_update.as_secs_f64()
    );
    println!();
    println!(
        "{}",
        latency_line("foreground, no backfill", &baseline, baseline_failed)
    );
    println!(
        "{}",
        latency_line("foreground during (a)", &during_update, update_failed)
    );
    println!(
        "{}",
        latency_line("foreground during (c)", &during_backfill, backfill_failed)
    );
}
