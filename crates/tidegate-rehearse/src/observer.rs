//! The I/O edge of measurement: a connection and a thread of their own that sample `pg_locks` on some tables every
//! period, and take a *mark* (the WAL position and the tables' sizes) whenever asked.
//!
//! A mark can be asked for from synchronous code (`tidegate apply`'s event sink): [`Observer::mark_blocking`]
//! blocks the caller until the observer's thread has read the server, so a phase's marks are taken exactly at its
//! start and end, not at the next sample. The thread runs a runtime of its own, so blocking a task of the caller's
//! runtime never stalls the observer.

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use tidegate_db::connect::{ConnectError, ConnectionConfig, DbError};
use tidegate_db::driver::Session;
use tidegate_db::observe::{self, RelationSize};
use tokio::sync::mpsc;

use crate::locks::LockSample;

/// The WAL position and the watched tables' sizes at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// Since the observer started.
    pub at: Duration,
    pub wal_position: u64,
    /// In the order of the observer's tables.
    pub sizes: Vec<RelationSize>,
}

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("the observer could not connect to the scratch server: {0}")]
    Connect(#[from] ConnectError),
    #[error("observing the scratch server: {0}")]
    Database(#[from] DbError),
    #[error("the observer's thread: {0}")]
    Thread(String),
}

enum Request {
    Mark(std_mpsc::SyncSender<Result<Mark, String>>),
    Stop,
}

/// Samples locks until stopped; takes marks on request.
pub struct Observer {
    requests: mpsc::UnboundedSender<Request>,
    thread: Option<std::thread::JoinHandle<Result<Vec<LockSample>, String>>>,
    started: Instant,
    period: Duration,
}

impl Observer {
    /// 50 ms: twice as often as the 100 ms a rehearsal promises, so a late sample on a loaded machine still keeps
    /// the promise.
    pub const DEFAULT_PERIOD: Duration = Duration::from_millis(50);

    /// Connects, and returns once the first sample is taken. `tables` are oids on the server `config` reaches.
    pub async fn start(
        config: &ConnectionConfig,
        tables: Vec<u32>,
        period: Duration,
    ) -> Result<Self, ObserveError> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), ObserveError>>();
        let (requests, receiver) = mpsc::unbounded_channel();
        let config = config.with_application_name("tidegate-rehearse-observer");
        let started = Instant::now();
        let thread = std::thread::Builder::new()
            .name("rehearse-observer".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let message = format!("no runtime: {error}");
                        let _ = ready_tx.send(Err(ObserveError::Thread(message.clone())));
                        return Err(message);
                    }
                };
                runtime.block_on(observe(config, tables, period, started, ready_tx, receiver))
            })
            .map_err(|error| ObserveError::Thread(format!("could not start: {error}")))?;
        match ready_rx.await {
            Ok(Ok(())) => Ok(Self {
                requests,
                thread: Some(thread),
                started,
                period,
            }),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(ObserveError::Thread(
                "it ended before its first sample".into(),
            )),
        }
    }

    /// Time since the observer started: the clock of its samples and marks.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn period(&self) -> Duration {
        self.period
    }

    /// Takes a mark, blocking this thread until it is taken. For synchronous callers (an event sink); async code
    /// calls [`Observer::mark`].
    pub fn mark_blocking(&self) -> Result<Mark, String> {
        self.marker().mark_blocking()
    }

    /// Takes a mark.
    pub async fn mark(&self) -> Result<Mark, String> {
        let (reply, answer) = std_mpsc::sync_channel(1);
        self.requests
            .send(Request::Mark(reply))
            .map_err(|_| "the observer has stopped".to_string())?;
        tokio::task::spawn_blocking(move || answer.recv())
            .await
            .map_err(|error| error.to_string())?
            .map_err(|_| "the observer stopped before answering".to_string())?
    }

    /// A handle that takes marks from anywhere (an event sink that must be `'static`).
    pub fn marker(&self) -> Marker {
        Marker {
            requests: self.requests.clone(),
        }
    }

    /// Stops sampling and returns every sample. A failed sample fails the whole: a record with a hole would lie.
    pub async fn stop(mut self) -> Result<Vec<LockSample>, ObserveError> {
        let _ = self.requests.send(Request::Stop);
        let thread = self.thread.take();
        tokio::task::spawn_blocking(move || match thread {
            Some(thread) => thread
                .join()
                .map_err(|_| "it panicked".to_string())
                .and_then(|outcome| outcome),
            None => Err("stopped twice".to_string()),
        })
        .await
        .map_err(|error| ObserveError::Thread(error.to_string()))?
        .map_err(ObserveError::Thread)
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        // Dropped without stop (an error on the way): the thread and its connection must not stay behind.
        let _ = self.requests.send(Request::Stop);
    }
}

/// Takes marks for an [`Observer`] from synchronous code.
#[derive(Clone)]
pub struct Marker {
    requests: mpsc::UnboundedSender<Request>,
}

impl Marker {
    /// See [`Observer::mark_blocking`].
    pub fn mark_blocking(&self) -> Result<Mark, String> {
        let (reply, answer) = std_mpsc::sync_channel(1);
        self.requests
            .send(Request::Mark(reply))
            .map_err(|_| "the observer has stopped".to_string())?;
        answer
            .recv()
            .map_err(|_| "the observer stopped before answering".to_string())?
    }
}

async fn take_sample(
    client: &dyn Session,
    tables: &[u32],
    started: Instant,
) -> Result<LockSample, DbError> {
    let sent = started.elapsed();
    let locks = observe::relation_locks(client, tables).await?;
    // pg_locks is read during the query; its midpoint is the best guess of when.
    let at = (sent + started.elapsed()) / 2;
    Ok(LockSample { at, locks })
}

async fn take_mark(
    client: &dyn Session,
    tables: &[u32],
    started: Instant,
) -> Result<Mark, DbError> {
    let at = started.elapsed();
    let wal_position = observe::wal_position(client).await?;
    let sizes = observe::relation_sizes(client, tables).await?;
    Ok(Mark {
        at,
        wal_position,
        sizes,
    })
}

async fn observe(
    config: ConnectionConfig,
    tables: Vec<u32>,
    period: Duration,
    started: Instant,
    ready: tokio::sync::oneshot::Sender<Result<(), ObserveError>>,
    mut requests: mpsc::UnboundedReceiver<Request>,
) -> Result<Vec<LockSample>, String> {
    let client = match config.connect().await {
        Ok(client) => client,
        Err(error) => {
            let message = error.to_string();
            let _ = ready.send(Err(ObserveError::Connect(error)));
            return Err(message);
        }
    };
    let session: &dyn Session = &client;
    let mut samples = Vec::new();
    match take_sample(session, &tables, started).await {
        Ok(sample) => samples.push(sample),
        Err(error) => {
            let message = error.to_string();
            let _ = ready.send(Err(ObserveError::Database(error)));
            return Err(message);
        }
    }
    let _ = ready.send(Ok(()));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            request = requests.recv() => match request {
                Some(Request::Mark(reply)) => {
                    let mark = take_mark(session, &tables, started).await.map_err(|error| error.to_string());
                    let _ = reply.send(mark);
                }
                Some(Request::Stop) | None => break,
            },
            _ = ticks.tick() => samples.push(
                take_sample(session, &tables, started).await.map_err(|error| format!("a lock sample failed: {error}"))?,
            ),
        }
    }
    // One last look, so a lock still held at the stop is bracketed by it.
    samples.push(
        take_sample(session, &tables, started)
            .await
            .map_err(|error| format!("a lock sample failed: {error}"))?,
    );
    Ok(samples)
}
