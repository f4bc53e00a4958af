//! An open-loop foreground workload: requests are scheduled at a fixed rate whatever the database does, so a
//! blocked database shows up as queueing latency instead of as fewer requests (no coordinated omission).
//!
//! The workload is generic over a [`RequestSource`]: the demo drives it with [`crate::orders::OrdersWorkload`];
//! rehearsals with key lookups or the source's own statements ([`crate::replay`]), whose parameters are bound as
//! text ([`TextParam`]) for the server to parse as whatever type it inferred. Each statement's requests are
//! counted ([`WorkloadReport::per_statement`]). On MySQL/MariaDB it runs
//! over tidegate-db's session seam instead ([`Workload::start_sessions`] with a [`SessionRequestSource`], e.g.
//! [`crate::orders::MyOrdersWorkload`]); the scheduler and the measurement are the same.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidegate_db::connect::DbError;
use tidegate_db::driver::{Driver, Prepared, Session, Value};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};

use crate::measure::{ErrorClass, LatencyRecorder, Outcome};

/// The shortest gap between two scheduled requests: at most a million requests per second.
const MIN_INTERVAL: Duration = Duration::from_micros(1);

/// One parameter of a request.
pub type Param = Box<dyn ToSql + Sync + Send>;

/// A parameter sent in text format, whatever type the server inferred for it: a value drawn from a column's
/// statistics is the column's text, which the server parses as the column's type does (`None` is NULL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextParam(pub Option<String>);

impl ToSql for TextParam {
    fn to_sql(
        &self,
        _ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0 {
            Some(text) => {
                out.extend_from_slice(text.as_bytes());
                Ok(tokio_postgres::types::IsNull::No)
            }
            None => Ok(tokio_postgres::types::IsNull::Yes),
        }
    }

    fn accepts(_ty: &tokio_postgres::types::Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &tokio_postgres::types::Type) -> tokio_postgres::types::Format {
        tokio_postgres::types::Format::Text
    }

    tokio_postgres::types::to_sql_checked!();
}

/// One statement's requests: run to completion, and failed (errors, timeouts, no connection).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatementCount {
    pub ok: u64,
    pub failed: u64,
}

/// One request: which of the source's statements to run, with which parameters.
pub struct Request {
    pub statement: usize,
    pub params: Vec<Param>,
}

/// Where a workload's requests come from.
pub trait RequestSource: Send + Sync + 'static {
    /// The SQL of every statement the workload runs; each connection prepares them once.
    fn statements(&self) -> Vec<String>;
    /// The next request. `rng` is the calling connection's own, seeded for reproducible runs.
    fn next_request(&self, rng: &mut fastrand::Rng) -> Request;
}

/// One request over the session seam: which statement, with which values.
pub struct SessionRequest {
    pub statement: usize,
    pub params: Vec<Value>,
}

/// Where a workload over [`Session`]s (MySQL/MariaDB) gets its requests.
pub trait SessionRequestSource: Send + Sync + 'static {
    /// The SQL of every statement; each connection prepares them once.
    fn statements(&self) -> Vec<String>;
    fn next_request(&self, rng: &mut fastrand::Rng) -> SessionRequest;
    /// What each connection runs first: the application's request timeout as the server takes it.
    fn session_setup(&self, request_timeout: Duration) -> String;
}

/// How hard and how wide the workload pushes.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Requests scheduled per second, across all connections.
    pub rate_per_second: f64,
    pub connections: usize,
    /// The application's own request timeout, applied as `statement_timeout` on every connection.
    pub request_timeout: Duration,
    /// Seeds each connection's random stream (connection `i` uses `seed + i`).
    pub seed: u64,
    /// `application_name`, so the workload's sessions are recognisable in pg_stat_activity.
    pub application_name: String,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            rate_per_second: 200.0,
            connections: 8,
            request_timeout: Duration::from_secs(10),
            seed: 42,
            application_name: "tidegate-workload".into(),
        }
    }
}

/// Why a workload could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("the workload needs a rate between 0 and 1,000,000 requests per second and at least one connection (got {rate}/s over {connections})")]
    BadConfig { rate: f64, connections: usize },
    #[error("the workload could not connect: {0}")]
    Connect(#[source] tokio_postgres::Error),
    #[error("the workload could not prepare `{sql}`: {source}")]
    Prepare {
        sql: String,
        source: tokio_postgres::Error,
    },
    #[error("the workload could not open a session: {0}")]
    Session(#[source] DbError),
}

/// A running workload. Stop it to get its measurements.
pub struct Workload {
    started: Instant,
    stopping: Arc<AtomicBool>,
    recorder: Arc<Mutex<LatencyRecorder>>,
    dispatched: Arc<AtomicU64>,
    /// Per statement of the source: requests that ran, and that failed.
    per_statement: Arc<Vec<[AtomicU64; 2]>>,
    tasks: JoinSet<()>,
}

struct Connection {
    client: Client,
    statements: Vec<Statement>,
}

struct SessionConnection {
    session: Box<dyn Session>,
    statements: Vec<Prepared>,
}

/// What the connections of a workload talk to, and the requests they take.
#[derive(Clone)]
enum Target {
    Postgres {
        url: String,
        source: Arc<dyn RequestSource>,
    },
    Sessions {
        driver: Arc<dyn Driver>,
        source: Arc<dyn SessionRequestSource>,
    },
}

enum Link {
    Postgres(Connection),
    Session(SessionConnection),
}

impl Link {
    fn is_closed(&self) -> bool {
        match self {
            Link::Postgres(c) => c.client.is_closed(),
            Link::Session(c) => c.session.is_closed(),
        }
    }
}

enum AnyRequest {
    Postgres(Request),
    Session(SessionRequest),
}

impl AnyRequest {
    fn statement(&self) -> usize {
        match self {
            AnyRequest::Postgres(request) => request.statement,
            AnyRequest::Session(request) => request.statement,
        }
    }
}

impl Target {
    async fn open(&self, config: &WorkloadConfig) -> Result<Link, WorkloadError> {
        match self {
            Target::Postgres { url, source } => open_connection(url, config, &source.statements())
                .await
                .map(Link::Postgres),
            Target::Sessions { driver, source } => {
                let session = driver.open().await.map_err(WorkloadError::Session)?;
                session
                    .batch_execute(&source.session_setup(config.request_timeout))
                    .await
                    .map_err(WorkloadError::Session)?;
                let mut statements = Vec::new();
                for sql in source.statements() {
                    statements.push(
                        session
                            .prepare(&sql)
                            .await
                            .map_err(WorkloadError::Session)?,
                    );
                }
                Ok(Link::Session(SessionConnection {
                    session,
                    statements,
                }))
            }
        }
    }

    fn statement_count(&self) -> usize {
        match self {
            Target::Postgres { source, .. } => source.statements().len(),
            Target::Sessions { source, .. } => source.statements().len(),
        }
    }

    fn next_request(&self, rng: &mut fastrand::Rng) -> AnyRequest {
        match self {
            Target::Postgres { source, .. } => AnyRequest::Postgres(source.next_request(rng)),
            Target::Sessions { source, .. } => AnyRequest::Session(source.next_request(rng)),
        }
    }
}

async fn open_connection(
    url: &str,
    config: &WorkloadConfig,
    sqls: &[String],
) -> Result<Connection, WorkloadError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(WorkloadError::Connect)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let timeout_ms = config.request_timeout.as_millis();
    let name = config.application_name.replace('\'', "''");
    client
        .batch_execute(&format!(
            "set statement_timeout = {timeout_ms}; set application_name = '{name}'"
        ))
        .await
        .map_err(WorkloadError::Connect)?;
    let mut statements = Vec::with_capacity(sqls.len());
    for sql in sqls {
        let statement = client
            .prepare(sql)
            .await
            .map_err(|source| WorkloadError::Prepare {
                sql: sql.clone(),
                source,
            })?;
        statements.push(statement);
    }
    Ok(Connection { client, statements })
}

impl Workload {
    /// Connects, prepares, and starts scheduling requests at once.
    pub async fn start(
        url: &str,
        config: WorkloadConfig,
        source: Arc<dyn RequestSource>,
    ) -> Result<Self, WorkloadError> {
        Self::start_on(
            Target::Postgres {
                url: url.to_string(),
                source,
            },
            config,
        )
        .await
    }

    /// As [`Workload::start`], over sessions `driver` opens (MySQL/MariaDB): `config.application_name` is not
    /// set there; the source's `session_setup` bounds each request.
    pub async fn start_sessions(
        driver: Arc<dyn Driver>,
        config: WorkloadConfig,
        source: Arc<dyn SessionRequestSource>,
    ) -> Result<Self, WorkloadError> {
        Self::start_on(Target::Sessions { driver, source }, config).await
    }

    async fn start_on(target: Target, config: WorkloadConfig) -> Result<Self, WorkloadError> {
        // The gap between two requests must be a duration the scheduler can sleep: a rate so low that it
        // overflows Duration would panic, and one so high that it rounds to zero would spin and queue without end.
        let interval = Duration::try_from_secs_f64(1.0 / config.rate_per_second)
            .ok()
            .filter(|interval| *interval >= MIN_INTERVAL);
        let interval = match interval {
            Some(interval) if config.rate_per_second.is_finite() && config.connections > 0 => {
                interval
            }
            _ => {
                return Err(WorkloadError::BadConfig {
                    rate: config.rate_per_second,
                    connections: config.connections,
                })
            }
        };
        let mut connections = Vec::with_capacity(config.connections);
        for _ in 0..config.connections {
            connections.push(target.open(&config).await?);
        }

        let started = Instant::now();
        let stopping = Arc::new(AtomicBool::new(false));
        let recorder = Arc::new(Mutex::new(LatencyRecorder::new()));
        let dispatched = Arc::new(AtomicU64::new(0));
        let per_statement: Arc<Vec<[AtomicU64; 2]>> = Arc::new(
            (0..target.statement_count())
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect(),
        );
        let (queue, receiver) = mpsc::unbounded_channel::<Duration>();
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        let mut tasks = JoinSet::new();

        {
            let stopping = stopping.clone();
            let dispatched = dispatched.clone();
            tasks.spawn(async move {
                // Request k is due at start + k·interval, whether or not earlier ones have finished.
                for k in 0u64.. {
                    let due = interval.mul_f64(k as f64);
                    tokio::time::sleep_until(started + due).await;
                    if stopping.load(Ordering::Relaxed) || queue.send(due).is_err() {
                        break;
                    }
                    dispatched.fetch_add(1, Ordering::Relaxed);
                }
            });
        }

        for (index, connection) in connections.into_iter().enumerate() {
            let receiver = receiver.clone();
            let recorder = recorder.clone();
            let per_statement = per_statement.clone();
            let target = target.clone();
            let config = config.clone();
            let mut rng = fastrand::Rng::with_seed(config.seed.wrapping_add(index as u64));
            tasks.spawn(async move {
                let mut connection = Some(connection);
                loop {
                    let due = { receiver.lock().await.recv().await };
                    let Some(due) = due else { break };
                    let request = target.next_request(&mut rng);
                    // A request is due at `due` and gives up `request_timeout` later, as an application's
                    // client would: one that waited that long for a connection is not sent at all.
                    let counts = per_statement.get(request.statement());
                    if started.elapsed().saturating_sub(due) >= config.request_timeout {
                        if let Some(counts) = counts {
                            counts[1].fetch_add(1, Ordering::Relaxed);
                        }
                        let latency = started.elapsed().saturating_sub(due);
                        recorder
                            .lock()
                            .expect("the recorder lock is never poisoned")
                            .record(due, latency, Outcome::Failed(ErrorClass::QueueTimeout));
                        continue;
                    }
                    let outcome = match &connection {
                        Some(live) if !live.is_closed() => run(live, &request).await,
                        _ => {
                            // The server went away; try once per request to come back, and count the failure.
                            connection = target.open(&config).await.ok();
                            match &connection {
                                Some(live) => run(live, &request).await,
                                None => Outcome::Failed(ErrorClass::Connection),
                            }
                        }
                    };
                    let latency = started.elapsed().saturating_sub(due);
                    if let Some(counts) = counts {
                        let slot = usize::from(!matches!(outcome, Outcome::Ok));
                        counts[slot].fetch_add(1, Ordering::Relaxed);
                    }
                    recorder
                        .lock()
                        .expect("the recorder lock is never poisoned")
                        .record(due, latency, outcome);
                }
            });
        }

        Ok(Self {
            started,
            stopping,
            recorder,
            dispatched,
            per_statement,
            tasks,
        })
    }

    /// Time since the workload started: stamp phase boundaries (migration start, end) with it.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// A copy of what has been measured so far, for live displays.
    pub fn snapshot(&self) -> LatencyRecorder {
        self.recorder
            .lock()
            .expect("the recorder lock is never poisoned")
            .clone()
    }

    /// Requests scheduled so far.
    pub fn dispatched(&self) -> u64 {
        self.dispatched.load(Ordering::Relaxed)
    }

    /// Stops scheduling, lets every scheduled request finish (each is bounded by the request timeout), and returns
    /// the measurements.
    pub async fn stop(mut self) -> WorkloadReport {
        self.stopping.store(true, Ordering::Relaxed);
        while self.tasks.join_next().await.is_some() {}
        let recorder = self
            .recorder
            .lock()
            .expect("the recorder lock is never poisoned")
            .clone();
        WorkloadReport {
            duration: self.started.elapsed(),
            dispatched: self.dispatched(),
            recorder,
            per_statement: self
                .per_statement
                .iter()
                .map(|[ok, failed]| StatementCount {
                    ok: ok.load(Ordering::Relaxed),
                    failed: failed.load(Ordering::Relaxed),
                })
                .collect(),
        }
    }
}

async fn run(link: &Link, request: &AnyRequest) -> Outcome {
    match (link, request) {
        (Link::Postgres(connection), AnyRequest::Postgres(request)) => {
            run_postgres(connection, request).await
        }
        (Link::Session(connection), AnyRequest::Session(request)) => {
            let Some(statement) = connection.statements.get(request.statement) else {
                return Outcome::Failed(ErrorClass::Other);
            };
            match connection
                .session
                .execute(statement.into(), &request.params)
                .await
            {
                Ok(_) => Outcome::Ok,
                Err(error) => Outcome::Failed(ErrorClass::of_db(&error)),
            }
        }
        _ => Outcome::Failed(ErrorClass::Other),
    }
}

async fn run_postgres(connection: &Connection, request: &Request) -> Outcome {
    let Some(statement) = connection.statements.get(request.statement) else {
        return Outcome::Failed(ErrorClass::Other);
    };
    let params: Vec<&(dyn ToSql + Sync)> = request
        .params
        .iter()
        .map(|param| param.as_ref() as _)
        .collect();
    match connection.client.execute(statement, &params).await {
        Ok(_) => Outcome::Ok,
        Err(error) => Outcome::Failed(ErrorClass::of(&error)),
    }
}

/// What a stopped workload measured.
#[derive(Debug, Clone)]
pub struct WorkloadReport {
    pub duration: Duration,
    pub dispatched: u64,
    /// Per statement of the source's `statements()`, in its order.
    pub per_statement: Vec<StatementCount>,
    pub recorder: LatencyRecorder,
}
