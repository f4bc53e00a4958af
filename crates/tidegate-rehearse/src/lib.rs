//! tidegate-rehearse: what it takes to run a migration against realistic data under realistic traffic, and measure
//! what the traffic felt.
//!
//! - [`workload`]: an open-loop foreground workload (fixed request rate, several connections, latency measured from
//!   each request's scheduled start so a blocked database cannot hide behind fewer requests).
//! - [`measure`]: per-second HDR latency histograms and errors classified by SQLSTATE.
//! - [`calibrate`]: `tidegate plan --calibrate`, the per-row and per-byte price of each kind of work measured
//!   on a scratch server for plan's cost model.
//! - [`orders`]: the postmortem's `orders` table, synthetic rows loaded with COPY, and its request mix.
//! - [`replay`]: the source's `pg_stat_statements` replayed on a rehearsal's copy, parameters drawn from the
//!   column statistics; what cannot be replayed is listed with why.
//!
//! `tidegate demo` drives these against a scratch server; rehearsals will drive them with workloads derived from
//! production statistics.
//!
//! ```no_run
//! # async fn example(url: &str, client: &tokio_postgres::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use tidegate_rehearse::{orders, workload::{Workload, WorkloadConfig}};
//!
//! orders::create_orders(client, 100_000, 42).await?;
//! let source = Arc::new(orders::OrdersWorkload::new(100_000));
//! let workload = Workload::start(url, WorkloadConfig::default(), source).await?;
//! tokio::time::sleep(std::time::Duration::from_secs(5)).await;
//! let report = workload.stop().await;
//! println!("p99 {} ms", report.recorder.summary().p99_ms);
//! # Ok(()) }
//! ```

pub mod act;
pub mod calibrate;
pub mod demo;
pub mod extrapolate;
pub mod fidelity;
pub mod locks;
pub mod measure;
pub mod measurement;
pub mod observer;
pub mod orders;
pub mod rehearsal;
pub mod rehearsal_render;
pub mod replay;
pub mod report;
pub mod settings;
pub mod synth;
pub mod workload;
