//! A steady single-row writer on one table: what an application's writes feel while a migration runs.
//!
//! Open loop: request *k* is scheduled at `start + k / rate` whatever the database does, a few connections take
//! requests from one queue, and a latency runs from the scheduled start to the answer, so time spent queued behind
//! a blocked connection counts. Every statement is bounded by `statement_timeout` on the server and by a client-side
//! timeout a little longer, so the writer never hangs a test.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Client;

/// The error class of a statement the client gave up on (the server's own timeout should have fired first).
pub const CLIENT_TIMEOUT: &str = "client-timeout";
/// The error class of a failure without a SQLSTATE: the connection broke.
pub const CONNECTION_ERROR: &str = "connection";

/// What the writer writes. `$1` of each statement is the row's key, sent as a `bigint` (write `$1::bigint` when
/// the key column has another type).
#[derive(Debug, Clone)]
pub struct WriteSpec {
    pub table: String,
    pub key_column: String,
    pub rate_per_second: u32,
    pub connections: usize,
    pub statement_timeout: Duration,
    /// `INSERT …` taking the new key as `$1`, and the first key to use (later ones count up from it).
    pub insert: Option<(String, i64)>,
    /// `UPDATE … WHERE key = $1`, and the keys of existing rows to pick from.
    pub update: Option<(String, RangeInclusive<i64>)>,
}

impl WriteSpec {
    /// 50 writes a second over 4 connections, each bounded by a 5 s statement_timeout; nothing to write yet.
    pub fn new(table: &str, key_column: &str) -> Self {
        Self {
            table: table.to_string(),
            key_column: key_column.to_string(),
            rate_per_second: 50,
            connections: 4,
            statement_timeout: Duration::from_secs(5),
            insert: None,
            update: None,
        }
    }

    pub fn inserting(mut self, sql: &str, first_key: i64) -> Self {
        self.insert = Some((sql.to_string(), first_key));
        self
    }

    /// Updates of existing rows. An update that writes a column's own value (`SET a = a`) takes the same locks as a
    /// real one and leaves the data as it was, which keeps a data comparison meaningful.
    pub fn updating(mut self, sql: &str, keys: RangeInclusive<i64>) -> Self {
        self.update = Some((sql.to_string(), keys));
        self
    }

    pub fn rate(mut self, per_second: u32) -> Self {
        self.rate_per_second = per_second.max(1);
        self
    }

    pub fn connections(mut self, connections: usize) -> Self {
        self.connections = connections.max(1);
        self
    }

    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// The statement that removes the writer's rows again.
    pub fn delete_sql(&self) -> String {
        format!(
            "DELETE FROM {} WHERE {} = ANY($1::bigint[])",
            self.table, self.key_column
        )
    }
}

#[derive(Debug, Clone, Copy)]
enum Write {
    Insert(i64),
    Update(i64),
}

struct Job {
    scheduled: Instant,
    write: Write,
}

struct Tally {
    latencies: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    inserted_keys: Vec<i64>,
}

impl Tally {
    fn new() -> Self {
        Self {
            // Microseconds, 1 µs to one hour, 3 significant digits.
            latencies: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("valid histogram bounds"),
            errors: BTreeMap::new(),
            inserted_keys: Vec::new(),
        }
    }
}

/// What the writer saw.
#[derive(Debug, Clone)]
pub struct WriteReport {
    latencies: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    inserted_keys: Vec<i64>,
    delete_sql: String,
}

impl WriteReport {
    /// Writes answered, successfully or not.
    pub fn count(&self) -> u64 {
        self.latencies.len()
    }

    pub fn max(&self) -> Duration {
        Duration::from_micros(self.latencies.max())
    }

    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }

    pub fn quantile(&self, quantile: f64) -> Duration {
        Duration::from_micros(self.latencies.value_at_quantile(quantile))
    }

    /// Failed writes by SQLSTATE (or [`CLIENT_TIMEOUT`], [`CONNECTION_ERROR`]).
    pub fn errors(&self) -> &BTreeMap<String, u64> {
        &self.errors
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Keys of the rows the writer inserted, including those whose outcome it could not learn (a client-side
    /// timeout): deleting a key that is not there is harmless, leaving one behind is not.
    pub fn inserted_keys(&self) -> &[i64] {
        &self.inserted_keys
    }

    /// Deletes the writer's rows, so the table can be compared with one that saw no writer. Returns how many rows
    /// went.
    pub async fn delete_inserted(&self, client: &Client) -> u64 {
        client
            .execute(&self.delete_sql, &[&self.inserted_keys])
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "could not delete the writer's rows ({}): {error}",
                    self.delete_sql
                )
            })
    }
}

impl std::fmt::Display for WriteReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} writes, p50 {:?}, p99 {:?}, max {:?}, errors {:?}",
            self.count(),
            self.quantile(0.5),
            self.p99(),
            self.max(),
            self.errors
        )
    }
}

/// A running writer. See the module docs.
pub struct WriteLoad {
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<Tally>>,
    thread: Option<std::thread::JoinHandle<()>>,
    delete_sql: String,
}

impl WriteLoad {
    /// Opens the writer's connections and prepares its statements, then starts writing; returns once it writes.
    /// Panics when it cannot connect or a statement does not prepare.
    pub async fn start(url: &str, spec: WriteSpec) -> Self {
        assert!(
            spec.insert.is_some() || spec.update.is_some(),
            "a WriteSpec needs an insert or an update to write"
        );
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (done_tx, done_rx) = oneshot::channel();
        let url = url.to_string();
        let delete_sql = spec.delete_sql();
        let thread = std::thread::Builder::new()
            .name("write-load".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready_tx.send(Err(format!("no runtime for the writer: {error}")));
                        return;
                    }
                };
                if let Some(tally) =
                    runtime.block_on(write_until_stopped(url, spec, ready_tx, stop_rx))
                {
                    let _ = done_tx.send(tally);
                }
            })
            .expect("could not start the writer's thread");
        match ready_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(message)) => panic!("{message}"),
            Err(_) => panic!("the writer's thread ended before it started writing"),
        }
        Self {
            stop: Some(stop_tx),
            done: Some(done_rx),
            thread: Some(thread),
            delete_sql,
        }
    }

    /// Stops scheduling writes, waits for the ones in flight (each is bounded) and reports.
    pub async fn stop(mut self) -> WriteReport {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let tally = self
            .done
            .take()
            .expect("stop runs once")
            .await
            .unwrap_or_else(|_| panic!("the writer's thread died"));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        WriteReport {
            latencies: tally.latencies,
            errors: tally.errors,
            inserted_keys: tally.inserted_keys,
            delete_sql: self.delete_sql.clone(),
        }
    }
}

impl Drop for WriteLoad {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct Worker {
    client: Client,
    insert: Option<tokio_postgres::Statement>,
    update: Option<tokio_postgres::Statement>,
}

async fn open_worker(url: &str, spec: &WriteSpec) -> Result<Worker, String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|error| format!("the writer could not connect to {url}: {error}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
        .batch_execute(&format!(
            "SET statement_timeout = {}",
            spec.statement_timeout.as_millis().max(1)
        ))
        .await
        .map_err(|error| format!("the writer could not set statement_timeout: {error}"))?;
    let prepare = |sql: Option<&String>| {
        let client = &client;
        let sql = sql.cloned();
        async move {
            match sql {
                None => Ok(None),
                Some(sql) => client.prepare(&sql).await.map(Some).map_err(|error| {
                    format!("the writer's statement `{sql}` failed to prepare: {error}")
                }),
            }
        }
    };
    let insert = prepare(spec.insert.as_ref().map(|(sql, _)| sql)).await?;
    let update = prepare(spec.update.as_ref().map(|(sql, _)| sql)).await?;
    Ok(Worker {
        client,
        insert,
        update,
    })
}

fn error_class(error: &tokio_postgres::Error) -> String {
    match error.code() {
        Some(code) => code.code().to_string(),
        None => CONNECTION_ERROR.to_string(),
    }
}

async fn write_until_stopped(
    url: String,
    spec: WriteSpec,
    ready: oneshot::Sender<Result<(), String>>,
    mut stop: oneshot::Receiver<()>,
) -> Option<Tally> {
    let mut workers = Vec::new();
    for _ in 0..spec.connections {
        match open_worker(&url, &spec).await {
            Ok(worker) => workers.push(worker),
            Err(message) => {
                let _ = ready.send(Err(message));
                return None;
            }
        }
    }
    let tally = Arc::new(Mutex::new(Tally::new()));
    let (jobs_tx, jobs_rx) = mpsc::unbounded_channel::<Job>();
    let jobs_rx = Arc::new(tokio::sync::Mutex::new(jobs_rx));
    let client_timeout = spec.statement_timeout + Duration::from_secs(2);
    let mut handles = Vec::new();
    for worker in workers {
        let jobs = Arc::clone(&jobs_rx);
        let tally = Arc::clone(&tally);
        handles.push(tokio::spawn(async move {
            loop {
                let Some(job) = jobs.lock().await.recv().await else {
                    break;
                };
                let (statement, key) = match job.write {
                    Write::Insert(key) => (worker.insert.as_ref(), key),
                    Write::Update(key) => (worker.update.as_ref(), key),
                };
                let statement = statement.expect("only prepared kinds are scheduled");
                let outcome =
                    tokio::time::timeout(client_timeout, worker.client.execute(statement, &[&key]))
                        .await;
                let latency = job.scheduled.elapsed();
                let mut tally = tally.lock().expect("the tally is never poisoned");
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                tally.latencies.saturating_record(micros.max(1));
                let inserted = matches!(job.write, Write::Insert(_));
                match outcome {
                    Ok(Ok(_)) => {
                        if inserted {
                            tally.inserted_keys.push(key);
                        }
                    }
                    Ok(Err(error)) => {
                        *tally.errors.entry(error_class(&error)).or_default() += 1;
                    }
                    Err(_) => {
                        *tally.errors.entry(CLIENT_TIMEOUT.to_string()).or_default() += 1;
                        if inserted {
                            tally.inserted_keys.push(key);
                        }
                    }
                }
            }
        }));
    }

    let started = Instant::now();
    let spacing = Duration::from_secs(1) / spec.rate_per_second;
    let mut next_insert = spec.insert.as_ref().map(|(_, first)| *first);
    let update_keys = spec.update.as_ref().map(|(_, keys)| keys.clone());
    let mut ready = Some(ready);
    let mut updates_done: i64 = 0;
    for k in 0u32.. {
        let scheduled = started + spacing * k;
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep_until(scheduled.into()) => {}
        }
        let want_update = match (&next_insert, &update_keys) {
            (Some(_), Some(_)) => k % 2 == 1,
            (None, Some(_)) => true,
            _ => false,
        };
        let write = if want_update {
            let keys = update_keys.as_ref().expect("checked above");
            let span = keys.end() - keys.start() + 1;
            // A stride coprime with most spans spreads the updates over the table instead of one hot row.
            let key = keys.start() + (updates_done * 7919).rem_euclid(span.max(1));
            updates_done += 1;
            Write::Update(key)
        } else {
            let key = next_insert.expect("an insert spec when not updating");
            next_insert = Some(key + 1);
            Write::Insert(key)
        };
        if jobs_tx.send(Job { scheduled, write }).is_err() {
            break;
        }
        if let Some(ready) = ready.take() {
            let _ = ready.send(Ok(()));
        }
    }
    drop(jobs_tx);
    for handle in handles {
        let _ = handle.await;
    }
    let tally = Arc::try_unwrap(tally)
        .ok()
        .expect("every worker has ended")
        .into_inner()
        .expect("the tally is never poisoned");
    Some(tally)
}
