//! # tidegate-backfill: batched, throttled, exactly-once data changes
//!
//! The engine behind `tidegate backfill` and behind every data phase of `tidegate apply`: an UPDATE or a DELETE run
//! in keyset batches over a key range fixed at start, each batch's change and its checkpoint committed together,
//! several workers (on several machines) sharing one run through `FOR UPDATE SKIP LOCKED`, paused and resumed from
//! anywhere through the `tidegate` schema.
//!
//! The decisions are pure and take time as input: [`controller::BatchController`] sizes batches,
//! [`throttle::ThrottlePolicy`] turns health observations into go/throttle/critical, [`retry::RetryPolicy`]
//! bounds batch retries, [`pacing`] holds the rate limit and the time window. [`engine`] is the I/O edge that runs a
//! backfill against PostgreSQL or MySQL/MariaDB through the [`dialect`] ([`dialect_mysql`] for MySQL) (every SQL string it sends lives there), keeping its
//! state in the `tidegate` schema ([`state`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use tidegate_backfill::engine::{run, BackfillOptions, RunTarget, StopHandle};
//! use tidegate_backfill::spec::BackfillSpec;
//! let config = tidegate_db::connect::ConnectionConfig::resolve(None)?;
//! let spec = BackfillSpec {
//!     predicate: Some("order_status_v2 IS NULL".into()),
//!     ..BackfillSpec::update("orders", "order_status_v2 = order_status")
//! };
//! // A batched delete runs on the same engine:
//! // BackfillSpec::delete("orders", Some("created_at < now() - interval '2 years'".into()))
//! let outcome = run(&config, RunTarget::Spec(spec), BackfillOptions::default(),
//!                   Arc::new(|event| println!("{}", event.to_json())), StopHandle::default()).await?;
//! println!("run {} ended: {:?}", outcome.run_id, outcome.end);
//! # Ok(()) }
//! ```

pub mod controller;
pub mod dialect;
pub mod dialect_mysql;
pub mod engine;
pub mod eta;
pub mod events;
pub mod pacing;
pub mod retry;
pub mod scaling;
pub mod spec;
pub mod state;
pub mod throttle;
