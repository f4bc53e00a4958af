//! # tidegate-metrics: live Prometheus metrics of backfill runs and apply phases
//!
//! `--metrics-addr HOST:PORT` on `tidegate backfill` and `tidegate apply` serves these over HTTP while the command
//! runs. The engine and apply do not know about it: [`Metrics`] consumes the typed events they already report
//! ([`tidegate_backfill::events::Event`], [`tidegate_apply::ApplyEvent`]) through the same sink that renders the
//! progress lines, and turns each into metric updates (atomics, no I/O: [`record`]). [`server`] answers scrapes from
//! tasks of its own, encoding into a buffer before it writes, so a slow or stuck scraper never holds up a batch.
//! [`addr`] reads the flag: a port alone means loopback.
//!
//! Every label is bounded: a run id, the run's table, a migration's version, a phase number, and enums
//! (state, throttle signal and level, phase kind) — never a message.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use tidegate_metrics::{addr::MetricsAddr, server, Metrics};
//! let metrics = Arc::new(Metrics::new());
//! let addr: MetricsAddr = "9187".parse()?; // 127.0.0.1:9187
//! let server = server::serve(addr.socket_addr(), metrics.clone()).await?;
//! println!("scrape http://{}/metrics", server.local_addr());
//! // the engine's event sink: `move |event| metrics.record_backfill(event)`
//! # Ok(()) }
//! ```

pub mod addr;
pub mod record;
pub mod server;

pub use record::{Metrics, PhaseState, RunState, ThrottleLevel};
